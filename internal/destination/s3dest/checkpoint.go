package s3dest

import (
	"bytes"
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/destination/objectstore"
)

// Send puts batch (sendEvents: one object per event, or one object for the batch when the
// destination batches), then one object per checkpoint event of the batch, holding the signed
// note exactly, at objectstore.CheckpointKey. A checkpoint event is also written as an event
// like any other: its bytes are a leaf of the trail, which `auditstream verify --bucket`
// rebuilds from the bucket. Delivering the same batch again writes the same keys.
func (s *sender) Send(ctx context.Context, batch []destination.Event) error {
	if err := s.sendEvents(ctx, batch); err != nil {
		return err
	}
	keys, notes := objectstore.Checkpoints("", batch)
	for i, key := range keys {
		err := s.put(ctx, &s3.PutObjectInput{
			Key:           aws.String(key),
			Body:          bytes.NewReader(notes[i]),
			ContentLength: aws.Int64(int64(len(notes[i]))),
			ContentType:   aws.String(objectstore.CheckpointContentType),
		})
		if err != nil {
			return err
		}
	}
	return nil
}

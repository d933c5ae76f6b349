package gcsdest

import (
	"context"
	"errors"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/destination/objectstore"
)

// Send writes batch (sendEvents: one object when the destination batches, else one object per
// event), then one object per checkpoint event of the batch, holding the signed note exactly,
// at objectstore.CheckpointKey under config.prefix. A checkpoint event is also written as an
// event like any other: its bytes are a leaf of the trail, which `auditstream verify --bucket`
// rebuilds from the bucket. Delivering the same batch again writes the same keys.
func (s *sender) Send(ctx context.Context, batch []destination.Event) error {
	if err := s.sendEvents(ctx, batch); err != nil {
		return err
	}
	keys, notes := objectstore.Checkpoints(s.prefix, batch)
	if len(keys) == 0 {
		return nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return &destination.Failure{Kind: destination.Retryable, Message: "the sender is closed", Err: errors.New("gcsdest: Send after Close")}
	}
	for i, key := range keys {
		if err := s.put(ctx, key, notes[i], objectstore.CheckpointContentType, ""); err != nil {
			return err
		}
	}
	return nil
}

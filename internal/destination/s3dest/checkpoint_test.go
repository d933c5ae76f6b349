package s3dest_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/destination/objectstore"
	ev "github.com/auditstream/auditstream/internal/event"
)

// checkpointEvent is a checkpoint event as the trail publishes it.
func checkpointEvent(id, size int64, at time.Time) (destination.Event, string) {
	root := make([]byte, 32)
	root[0] = byte(size)
	note := fmt.Sprintf("auditstream\n%d\n%s\n\n— auditstream c2lnbmF0dXJl\n", size, base64.StdEncoding.EncodeToString(root))
	return destination.Event{ID: id, Type: ev.TypeTrailCheckpoint, CreatedAt: at, JSON: fmt.Appendf(nil,
		`{"id":%d,"entity_type":"Gitlab::Audit::InstanceScope","event_type":%q,"details":{"tree_size":%d,"root_hash":%q,"origin":"auditstream","checkpoint":%q},"created_at":%q}`,
		id, ev.TypeTrailCheckpoint, size, base64.StdEncoding.EncodeToString(root), note, at.Format(time.RFC3339Nano))}, note
}

// TestCheckpointObjects: a checkpoint event is written as an event like the others (its bytes
// are a leaf) and, next to it, as objectstore.CheckpointKey holding the signed note exactly,
// one object per event and in batches.
func TestCheckpointObjects(t *testing.T) {
	for _, batched := range []bool{false, true} {
		t.Run(fmt.Sprintf("batched=%v", batched), func(t *testing.T) {
			url, reader := fakeS3(t, bucket)
			var extra []string
			if batched {
				extra = append(extra, batchConfig)
			}
			snd := newSender(t, settings(url, bucket, secretKey, extra...), client)
			at := time.Date(2026, 3, 7, 9, 5, 1, 0, time.UTC)
			cp, note := checkpointEvent(3, 2, at)
			batch := []destination.Event{event(1, "User", "user_created", at), event(2, "User", "user_created", at), cp}
			if batched {
				require.NoError(t, snd.Send(context.Background(), batch))
				require.NoError(t, snd.Send(context.Background(), batch), "again: the same keys")
			} else {
				for _, e := range batch {
					require.NoError(t, snd.Send(context.Background(), []destination.Event{e}))
				}
			}
			key, _, ok := objectstore.Checkpoint("", cp)
			require.True(t, ok)
			var keys []string
			for _, o := range listObjects(t, reader, bucket) {
				keys = append(keys, o.Key)
				if o.Key == key {
					require.Equal(t, note, string(o.Body))
					require.Equal(t, objectstore.CheckpointContentType, o.ContentType)
				}
			}
			require.Contains(t, keys, "checkpoints/2-0200000000000000.checkpoint")
			if batched {
				require.Len(t, keys, 2, "the batch, with the checkpoint event in it, and the checkpoint")
				require.True(t, strings.HasSuffix(keys[0], "_1-3.ndjson.gz"), keys[0])
			} else {
				require.Len(t, keys, 4, "three events and the checkpoint")
				require.Contains(t, keys, objectstore.EventKey("", cp))
			}
		})
	}
}

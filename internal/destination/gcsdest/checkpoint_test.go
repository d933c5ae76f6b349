package gcsdest

import (
	"context"
	"encoding/base64"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/destination/objectstore"
	ev "github.com/auditstream/auditstream/internal/event"
)

// TestCheckpointObjects: a checkpoint event is written as an event like the others (its bytes
// are a leaf) and, next to it under the prefix, as objectstore.CheckpointKey holding the signed
// note exactly; delivering it again is a success.
func TestCheckpointObjects(t *testing.T) {
	for _, batched := range []bool{false, true} {
		t.Run(fmt.Sprintf("batched=%v", batched), func(t *testing.T) {
			srv := newFakeGCS(t)
			cfg := fmt.Sprintf(`{"bucketName":%q,"prefix":"p/"}`, bucket)
			if batched {
				cfg = fmt.Sprintf(`{"bucketName":%q,"prefix":"p/","batch":{"maxEvents":10}}`, bucket)
			}
			snd := startSender(t, settings(cfg, ""), localEnv(), srv.URL())
			root := make([]byte, 32)
			root[0] = 0x7f
			note := "auditstream\n2\n" + base64.StdEncoding.EncodeToString(root) + "\n\n— auditstream c2lnbmF0dXJl\n"
			cp := destination.Event{ID: 3, Type: ev.TypeTrailCheckpoint, CreatedAt: baseTime, JSON: fmt.Appendf(nil,
				`{"id":3,"entity_type":"Gitlab::Audit::InstanceScope","details":{"tree_size":2,"root_hash":%q,"origin":"auditstream","checkpoint":%q}}`,
				base64.StdEncoding.EncodeToString(root), note)}
			batch := append(events(1, 2), cp)
			if batched {
				require.NoError(t, snd.Send(context.Background(), batch))
			} else {
				for _, e := range batch {
					require.NoError(t, snd.Send(context.Background(), []destination.Event{e}))
				}
			}
			require.NoError(t, snd.Send(context.Background(), batch[2:]), "again: the same key, a success")
			key := "p/checkpoints/2-7f00000000000000.checkpoint"
			require.Equal(t, note, string(readObject(t, srv.Client(), key)))
			attrs, err := srv.Client().Bucket(bucket).Object(key).Attrs(context.Background())
			require.NoError(t, err)
			require.Equal(t, objectstore.CheckpointContentType, attrs.ContentType)
			if batched {
				require.Len(t, listObjects(t, srv.Client(), ""), 3, "two batches and the checkpoint")
			} else {
				require.Len(t, listObjects(t, srv.Client(), ""), 4, "three events and the checkpoint")
				readObject(t, srv.Client(), objectstore.EventKey("p/", cp))
			}
		})
	}
}

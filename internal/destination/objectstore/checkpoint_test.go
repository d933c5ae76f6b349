package objectstore

import (
	"encoding/base64"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/event"
)

// checkpointEvent is a checkpoint event as the trail publishes it.
func checkpointEvent(id, size int64, root []byte, note string) destination.Event {
	return destination.Event{ID: id, Type: event.TypeTrailCheckpoint, JSON: fmt.Appendf(nil,
		`{"id":%d,"entity_type":"Gitlab::Audit::InstanceScope","event_type":%q,"details":{"tree_size":%d,"root_hash":%q,"origin":"o","checkpoint":%q}}`,
		id, event.TypeTrailCheckpoint, size, base64.StdEncoding.EncodeToString(root), note)}
}

func TestCheckpoint(t *testing.T) {
	root := make([]byte, 32)
	root[0], root[7], root[8] = 0xab, 0x01, 0xff
	note := "o\n41\nqwAAAAAAAAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— o Zm9vYmFy\n"
	e := checkpointEvent(42, 41, root, note)
	key, body, ok := Checkpoint("audit/", e)
	require.True(t, ok)
	require.Equal(t, "audit/checkpoints/41-ab00000000000001.checkpoint", key)
	require.Equal(t, note, string(body), "the note exactly")

	_, _, ok = Checkpoint("", destination.Event{ID: 1, Type: "user_created", JSON: []byte(`{"id":1}`)})
	require.False(t, ok, "not a checkpoint event")
	_, _, ok = Checkpoint("", destination.Event{ID: 1, Type: event.TypeTrailCheckpoint, JSON: []byte(`{"id":1,"details":{}}`)})
	require.False(t, ok, "details without a checkpoint")

	keys, notes := Checkpoints("", []destination.Event{{ID: 1, Type: "x", JSON: []byte(`{"id":1}`)}, e})
	require.Equal(t, []string{"checkpoints/41-ab00000000000001.checkpoint"}, keys)
	require.Equal(t, [][]byte{[]byte(note)}, notes)
}

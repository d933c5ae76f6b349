package objectstore

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strconv"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/event"
)

// CheckpointDir is the folder, under a destination's prefix, of the trail's checkpoints: one
// object per checkpoint, next to the events and batches, as CloudTrail writes its digest files.
const CheckpointDir = "checkpoints/"

// CheckpointContentType is the content type of a checkpoint object: the signed note's text.
const CheckpointContentType = "text/plain; charset=utf-8"

// CheckpointKey names a checkpoint's object: <prefix>checkpoints/<tree size>-<the first 16 hex
// digits of the root hash>.checkpoint. Delivering the same checkpoint again writes the same key
// with the same content; two checkpoints of one size with different roots (a fork) get two keys.
func CheckpointKey(prefix string, size int64, root []byte) string {
	return prefix + CheckpointDir + strconv.FormatInt(size, 10) + "-" + hex.EncodeToString(root[:min(8, len(root))]) + ".checkpoint"
}

// Checkpoint returns the object of a checkpoint event (event.TypeTrailCheckpoint): its key and
// the signed note, byte for byte as the trail signed it. ok is false for any other event, and
// for a checkpoint event whose details do not carry a size, a root and a note.
func Checkpoint(prefix string, e destination.Event) (key string, note []byte, ok bool) {
	if e.Type != event.TypeTrailCheckpoint {
		return "", nil, false
	}
	var ev struct {
		Details struct {
			TreeSize   *int64 `json:"tree_size"`
			RootHash   string `json:"root_hash"`
			Checkpoint string `json:"checkpoint"`
		} `json:"details"`
	}
	if json.Unmarshal(e.JSON, &ev) != nil || ev.Details.TreeSize == nil || ev.Details.Checkpoint == "" {
		return "", nil, false
	}
	root, err := base64.StdEncoding.DecodeString(ev.Details.RootHash)
	if err != nil || len(root) == 0 {
		return "", nil, false
	}
	return CheckpointKey(prefix, *ev.Details.TreeSize, root), []byte(ev.Details.Checkpoint), true
}

// Checkpoints returns the checkpoint objects of a batch's checkpoint events, in order.
func Checkpoints(prefix string, batch []destination.Event) (keys []string, notes [][]byte) {
	for _, e := range batch {
		if k, n, ok := Checkpoint(prefix, e); ok {
			keys, notes = append(keys, k), append(notes, n)
		}
	}
	return keys, notes
}

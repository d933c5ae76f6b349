package trail

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strconv"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditstream/auditstream/internal/event"
)

// CheckpointDetails are the details of a checkpoint's event (event.TypeTrailCheckpoint).
type CheckpointDetails struct {
	CustomMessage string `json:"custom_message"`
	TreeSize      int64  `json:"tree_size"`
	// RootHash is the tree's root hash in standard base64, as the checkpoint writes it.
	RootHash string `json:"root_hash"`
	Origin   string `json:"origin"`
	// Checkpoint is the signed note: the checkpoint's body and its signature lines.
	Checkpoint string `json:"checkpoint"`
	// Frontier is the roots of the complete subtrees the tree is made of (one per bit set in
	// the size, largest first, standard base64), from which its root folds (RFC 6962). A copy
	// of the events that starts after the tree's first leaf (a destination created later)
	// can rebuild the tree from here: the hashes are checked against the signed root.
	Frontier []string `json:"frontier"`
}

// CheckpointEvent is the event that records a signed checkpoint in the log: instance scope,
// authored by auditstream, with an idempotency key of its size and root so that a Writer that
// publishes it twice (it restarted) leaves one copy in the log's duplicate window. Its own leaf
// comes after the tree it signs, so a later checkpoint covers it.
func CheckpointEvent(origin string, size int64, root tlog.Hash, signed []byte, frontier []tlog.Hash) event.Input {
	fr := make([]string, len(frontier))
	for i, h := range frontier {
		fr[i] = base64.StdEncoding.EncodeToString(h[:])
	}
	d, _ := json.Marshal(CheckpointDetails{
		Frontier:      fr,
		CustomMessage: "Signed a checkpoint of the trail",
		TreeSize:      size,
		RootHash:      base64.StdEncoding.EncodeToString(root[:]),
		Origin:        origin,
		Checkpoint:    string(signed),
	})
	return event.Input{
		EventType:      event.TypeTrailCheckpoint,
		EntityType:     event.EntityInstance,
		AuthorName:     "auditstream",
		Details:        d,
		IdempotencyKey: "trail-checkpoint-" + hex.EncodeToString(root[:8]) + "-" + strconv.FormatInt(size, 10),
	}
}

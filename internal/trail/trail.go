// Package trail keeps the tamper-evident trail of the log: a Merkle tree (RFC 6962, as Go's
// checksum database and certificate transparency build it, golang.org/x/mod/sumdb/tlog) with
// one leaf per event of the log, in id order, stored or stream-only, and signed checkpoints of
// it in the C2SP tlog-checkpoint format (golang.org/x/mod/sumdb/note, Ed25519).
//
// Event id N is leaf N-1. A leaf's bytes are the event's JSON exactly as the store keeps it and
// every destination receives it: GitLab's streaming JSON with "id" first (event.AppendWithID).
// An event the log lost before the tree had it is made a leaf from the store's copy when the
// store has one (the same bytes), or else from LostLeaf, so that ids and leaf positions never
// drift apart.
//
// The Writer appends (one at a time in a cluster: the caller holds a lease); the Prover answers
// proofs from the store; Verify checks a trail with nothing but the public key.
package trail

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/mod/sumdb/tlog"
)

// LeafID is the event id of leaf index n.
func LeafID(n int64) int64 { return n + 1 }

// LeafHash is the hash of a leaf's bytes.
func LeafHash(leaf []byte) tlog.Hash { return tlog.RecordHash(leaf) }

// LostLeaf is the leaf of an event the log lost before the tree had it and the store has no copy
// of: it records that id existed and that its content is unknown.
func LostLeaf(id int64) []byte {
	return []byte(`{"id":` + strconv.FormatInt(id, 10) + `,"auditstream_lost":true}`)
}

// Checkpoint is a tree head: its origin (the log's name), size and root hash.
type Checkpoint struct {
	Origin string
	Size   int64
	Root   tlog.Hash
}

// ErrCheckpoint means a checkpoint's text is not a tlog-checkpoint body.
var ErrCheckpoint = errors.New("trail: malformed checkpoint")

// Format returns the C2SP tlog-checkpoint body: origin, size in decimal and the root hash in
// standard base64, one per line. (tlog.FormatTree writes the same three lines with the origin
// "go.sum database tree"; ours names this log.)
func (c Checkpoint) Format() []byte {
	b := make([]byte, 0, len(c.Origin)+70)
	b = append(b, c.Origin...)
	b = append(b, '\n')
	b = strconv.AppendInt(b, c.Size, 10)
	b = append(b, '\n')
	b = base64.StdEncoding.AppendEncode(b, c.Root[:])
	return append(b, '\n')
}

// ParseCheckpoint reads a tlog-checkpoint body (Format); extension lines after the root are
// allowed, as the format says, and ignored.
func ParseCheckpoint(text []byte) (Checkpoint, error) {
	lines := bytes.SplitN(text, []byte("\n"), 4)
	if len(lines) < 4 || len(lines[0]) == 0 {
		return Checkpoint{}, fmt.Errorf("%w: want origin, size and root hash lines", ErrCheckpoint)
	}
	n, err := strconv.ParseInt(string(lines[1]), 10, 64)
	if err != nil || n < 0 || string(lines[1]) != strconv.FormatInt(n, 10) {
		return Checkpoint{}, fmt.Errorf("%w: bad size %q", ErrCheckpoint, lines[1])
	}
	h, err := base64.StdEncoding.DecodeString(string(lines[2]))
	if err != nil || len(h) != tlog.HashSize {
		return Checkpoint{}, fmt.Errorf("%w: bad root hash", ErrCheckpoint)
	}
	c := Checkpoint{Origin: string(lines[0]), Size: n}
	copy(c.Root[:], h)
	return c, nil
}

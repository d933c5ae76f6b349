package trail

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditstream/auditstream/internal/store"
)

// ProverStore is the part of the store the Prover reads.
type ProverStore interface {
	HashStore
	TrailSize(ctx context.Context) (int64, error)
	TrailCheckpointList(ctx context.Context, p store.TrailCheckpointListParams) ([]store.TrailCheckpoint, error)
	TrailCheckpointLatest(ctx context.Context) (store.TrailCheckpoint, error)
	EventList(ctx context.Context, p store.EventListParams) ([]store.EventRecord, error)
}

// Errors of the Prover, which the API maps to stable codes.
var (
	// ErrNoCheckpoint means no checkpoint was signed yet.
	ErrNoCheckpoint = errors.New("trail: no checkpoint yet")
	// ErrNotInTree means the event is not in the tree of the size asked for (yet).
	ErrNotInTree = errors.New("trail: the event is not in a tree of that size")
	// ErrBadSize means a tree size is out of range: negative, above the tree, or a consistency
	// proof's old size above its new size.
	ErrBadSize = errors.New("trail: tree size out of range")
)

// Prover answers proofs from the stored tree. Safe for concurrent use.
type Prover struct {
	Store ProverStore
	// VerifierKey is the public key checkpoints are signed with, served with them.
	VerifierKey string
}

// Latest returns the newest checkpoint and its parsed body.
func (p *Prover) Latest(ctx context.Context) (store.TrailCheckpoint, error) {
	c, err := p.Store.TrailCheckpointLatest(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return c, ErrNoCheckpoint
	}
	return c, err
}

// CheckpointPage returns at most limit checkpoints with an ID above afterID, oldest first.
func (p *Prover) CheckpointPage(ctx context.Context, afterID int64, limit int) ([]store.TrailCheckpoint, error) {
	return p.Store.TrailCheckpointList(ctx, store.TrailCheckpointListParams{AfterID: afterID, Limit: limit})
}

// Checkpoints returns every checkpoint's signed note, oldest first (Source).
func (p *Prover) Checkpoints(ctx context.Context) ([][]byte, error) {
	return p.checkpointsAfter(ctx, 0, nil)
}

// checkpointsAfter returns the signed notes of the checkpoints stored after ID afterID, oldest
// first, and tells each to seen when it is set.
func (p *Prover) checkpointsAfter(ctx context.Context, afterID int64, seen func(store.TrailCheckpoint)) ([][]byte, error) {
	var out [][]byte
	for after := afterID; ; {
		page, err := p.CheckpointPage(ctx, after, 1000)
		if err != nil {
			return nil, err
		}
		for _, c := range page {
			out = append(out, c.Note)
			after = c.ID
			if seen != nil {
				seen(c)
			}
		}
		if len(page) < 1000 {
			return out, nil
		}
	}
}

// Frontier returns the stored tree of size n as the roots of its complete subtrees. The
// store is not trusted: the caller checks its root against a signed checkpoint.
func (p *Prover) Frontier(ctx context.Context, n int64) (Frontier, error) {
	idx := frontier(n)
	hs, err := storeHashes(ctx, p.Store).ReadHashes(idx)
	if err != nil {
		return Frontier{}, err
	}
	slices.Reverse(hs) // frontier lists the smallest subtree first
	return Frontier{Size: n, Hashes: hs}, nil
}

// checkSize checks that a tree of size n exists.
func (p *Prover) checkSize(ctx context.Context, n int64) error {
	size, err := p.Store.TrailSize(ctx)
	if err != nil {
		return err
	}
	if n < 0 || n > size {
		return fmt.Errorf("%w: %d is not in 0..%d", ErrBadSize, n, size)
	}
	return nil
}

// Inclusion proves that event id is leaf id-1 of the tree of size n, and returns that leaf's
// stored hash with the proof.
func (p *Prover) Inclusion(ctx context.Context, id, n int64) (leafHash tlog.Hash, proof tlog.RecordProof, err error) {
	if err := p.checkSize(ctx, n); err != nil {
		return leafHash, nil, err
	}
	if id < 1 || id > n {
		return leafHash, nil, fmt.Errorf("%w: id %d, tree size %d", ErrNotInTree, id, n)
	}
	r := storeHashes(ctx, p.Store)
	hs, err := r.ReadHashes([]int64{tlog.StoredHashIndex(0, id-1)})
	if err != nil {
		return leafHash, nil, err
	}
	proof, err = tlog.ProveRecord(n, id-1, r)
	return hs[0], proof, err
}

// Consistency proves that the tree of size oldSize is a prefix of the tree of size newSize.
func (p *Prover) Consistency(ctx context.Context, oldSize, newSize int64) (tlog.TreeProof, error) {
	if err := p.checkSize(ctx, newSize); err != nil {
		return nil, err
	}
	if oldSize < 1 || oldSize > newSize {
		return nil, fmt.Errorf("%w: old size %d must be in 1..%d", ErrBadSize, oldSize, newSize)
	}
	return tlog.ProveTree(newSize, oldSize, storeHashes(ctx, p.Store))
}

// Leaf is one leaf of the tree: its event id, hash and kind.
type Leaf struct {
	ID   int64
	Hash tlog.Hash
	Kind store.TrailLeafKind
}

// Leaves returns the leaves of ids fromID..fromID+count-1 that the tree has, in id order, with
// the bytes of the events the store has (Source).
func (p *Prover) Leaves(ctx context.Context, fromID int64, count int) ([]SourceLeaf, error) {
	leaves, err := p.LeafHashes(ctx, fromID, count)
	if err != nil || len(leaves) == 0 {
		return nil, err
	}
	last := leaves[len(leaves)-1].ID
	recs, err := p.Store.EventList(ctx, store.EventListParams{AfterID: fromID - 1, Ascending: true, Limit: int(last - fromID + 1), DataOnly: true})
	if err != nil {
		return nil, err
	}
	out := make([]SourceLeaf, len(leaves))
	j := 0
	for i, l := range leaves {
		out[i] = SourceLeaf{ID: l.ID, Hash: l.Hash, Kind: l.Kind}
		for j < len(recs) && recs[j].ID < l.ID {
			j++
		}
		if j < len(recs) && recs[j].ID == l.ID {
			out[i].Event = recs[j].Data
		}
	}
	return out, nil
}

// LeafHashes returns the leaves of ids fromID..fromID+count-1 that the tree has, in id order.
func (p *Prover) LeafHashes(ctx context.Context, fromID int64, count int) ([]Leaf, error) {
	size, err := p.Store.TrailSize(ctx)
	if err != nil {
		return nil, err
	}
	last := min(fromID+int64(count)-1, size)
	if fromID < 1 || last < fromID {
		return nil, nil
	}
	// The leaves are the level-0 tiles' hashes, in one read.
	var keys []store.TrailTileKey
	for n := (fromID - 1) >> tileHeight; n <= (last-1)>>tileHeight; n++ {
		keys = append(keys, store.TrailTileKey{N: n})
	}
	tiles, err := p.Store.TrailTiles(ctx, keys)
	if err != nil {
		return nil, err
	}
	out := make([]Leaf, 0, last-fromID+1)
	for _, t := range tiles {
		start := t.N << tileHeight
		for i := max(fromID-1-start, 0); i < int64(len(t.Hashes)/tlog.HashSize) && start+i < last; i++ {
			l := Leaf{ID: start + i + 1}
			if i < int64(len(t.Kinds)) {
				l.Kind = t.Kinds[i]
			}
			copy(l.Hash[:], t.Hashes[i*tlog.HashSize:])
			out = append(out, l)
		}
	}
	return out, nil
}

// PurgeStore is the part of the store MarkPurged writes.
type PurgeStore interface {
	TrailMarkPurged(ctx context.Context, leaves []int64) error
}

// MarkPurged marks the leaves of events retention is about to delete (archive's BeforePurge):
// the hashes stay, and verification knows their rows are gone by design.
func MarkPurged(ctx context.Context, st PurgeStore, ids []int64) error {
	leaves := make([]int64, len(ids))
	for i, id := range ids {
		leaves[i] = id - 1
	}
	return st.TrailMarkPurged(ctx, leaves)
}

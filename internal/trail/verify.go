package trail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strconv"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditstream/auditstream/internal/store"
)

// Reasons a verification fails, as Failure.Reason.
const (
	ReasonMissing      = "missing"       // a stored event's row is gone, or the tree lacks a leaf
	ReasonAltered      = "altered"       // an event's bytes are not its leaf's
	ReasonReordered    = "reordered"     // an event is at another id than its own, or out of order
	ReasonBadSignature = "bad_signature" // a checkpoint's signature does not verify with the keys
	ReasonInconsistent = "inconsistent"  // checkpoints disagree with each other or with the events
	ReasonLost         = "lost"          // the log lost the event and no copy was kept
)

// Failure is the first thing verification found wrong.
type Failure struct {
	// ID is the event id it concerns; 0 when it concerns a checkpoint alone.
	ID     int64
	Reason string
	Detail string
}

func (f *Failure) Error() string {
	if f.ID == 0 {
		return fmt.Sprintf("%s: %s", f.Reason, f.Detail)
	}
	return fmt.Sprintf("id %d: %s: %s", f.ID, f.Reason, f.Detail)
}

// SourceLeaf is a leaf as a trail's source serves it: its stored hash and kind, and the event's
// bytes when the source has them.
type SourceLeaf struct {
	ID    int64
	Hash  tlog.Hash
	Kind  store.TrailLeafKind
	Event []byte
}

// Source is where a trail is verified from: a running service (HTTPSource) or anything that
// serves the same.
type Source interface {
	// Checkpoints returns every checkpoint ever signed, as signed notes, oldest first.
	Checkpoints(ctx context.Context) ([][]byte, error)
	// Leaves returns the leaves of ids fromID.. (at most count), in id order.
	Leaves(ctx context.Context, fromID int64, count int) ([]SourceLeaf, error)
}

// Verifier checks a trail with nothing but the public keys.
type Verifier struct {
	// Keys are the verifier keys (note's "<name>+<hash>+<key>"): the current one and, after a
	// rotation, the earlier ones that signed older checkpoints.
	Keys []string
	// Trusted are checkpoints the auditor kept from earlier runs (signed notes): the trail
	// must still agree with them (a rewritten history is a fork).
	Trusted [][]byte
	// Events, when set, are the events to check (an NDJSON export or a destination's copy, one
	// event per element, in id order) instead of the source's: every one must be its leaf, and
	// events the file does not have are not missing.
	Events iter.Seq2[[]byte, error]
	// Progress, when set, is told how far verification got every Every leaves.
	Progress func(done, total int64, rate float64)
	Every    int64
	// Page is how many leaves are asked for at once. Default 10,000.
	Page int
	// Parallel is how many pages are asked for at once beyond the one being checked. Default 2.
	Parallel int
	// UpTo, when positive, checks the leaves of ids 1..UpTo only, against the checkpoints of
	// sizes up to it (the others are checked for their signatures and forks): the service's
	// own audit stops where the store has caught up with the log.
	UpTo int64
	// Partial lets VerifyBucket start from a checkpoint when the copy lacks the first ids (a
	// destination created after the service's first events), using the frontier its event
	// carries; the ids before it are not checked.
	Partial bool
	// AllowLost counts leaves of events the log lost without a copy (Report.Lost) instead of
	// failing at the first.
	AllowLost bool
	// Start, when set, is a tree the caller verified earlier (an earlier Report.End): its
	// leaves are not checked again; verification goes on from the next leaf, and the
	// checkpoints the source serves must be roots of the tree Start grows into: one of Start's
	// size must have Start's root, and a smaller one must be a prefix of it by the source's
	// consistency proof (the source must then be a ConsistencySource). The service's audit
	// checks what was added since its last this way. Not used with Events.
	Start *Frontier
	// StoredUpTo, when set, is the id up to which the source's store is complete (the
	// service's stored_up_to, served beside its latest checkpoint): a leaf of a stored event
	// after it whose event the source does not serve is still on its way to the store, counted
	// in Report.NotYetStored instead of failing as missing. Nil: every stored leaf must be
	// served. Not used with Events.
	StoredUpTo *int64
}

// Report is what a verification covered.
type Report struct {
	Size        int64 // the largest checkpoint's size: leaves verified
	Checkpoints int
	Events      int64 // events whose bytes were checked against their leaves
	Recovered   int64 // leaves the service made from the store's copy after the log lost them
	Purged      int64 // leaves of stored events retention deleted
	Lost        int64 // leaves of events lost without a copy (AllowLost)
	FirstLost   int64 // the first of them
	// NotYetStored counts leaves of stored events after Verifier.StoredUpTo that the store
	// did not serve yet (their leaves are in the tree; their bytes were not checked).
	NotYetStored int64
	// End is the tree at the largest checkpoint the leaves made (Start when none after it):
	// where a later Verify can start. EndLost counts the Lost leaves up to it: those after it
	// a Verify from End reads again.
	End     Frontier
	EndLost int64
}

// ConsistencySource is a Source that also proves that a tree is a prefix of a larger one
// (Prover).
type ConsistencySource interface {
	Source
	Consistency(ctx context.Context, oldSize, newSize int64) (tlog.TreeProof, error)
}

// Frontier is a tree of Size leaves as the roots of its complete subtrees, largest first
// (one per bit set in Size): enough to append leaves to it and to fold its root.
type Frontier struct {
	Size   int64
	Hashes []tlog.Hash
}

// Root returns the tree's root hash.
func (f Frontier) Root() tlog.Hash {
	if f.Size == 0 {
		return tlog.Hash{}
	}
	c := f.compact()
	return c.root()
}

// compact returns f as a compactRange to push leaves onto.
func (f Frontier) compact() compactRange {
	c := compactRange{n: f.Size, hashes: slices.Clone(f.Hashes)}
	for l := 62; l >= 0; l-- {
		if f.Size>>l&1 == 1 {
			c.levels = append(c.levels, l)
		}
	}
	return c
}

type signedCheckpoint struct {
	Checkpoint
	note []byte
}

// Verify checks every checkpoint's signature, that all checkpoints (and the trusted ones) are
// roots of one tree, that the tree is made of the leaves the source serves, and that every
// event the source (or v.Events) has is its leaf, at its own id. It returns the first failure
// as a *Failure.
func (v *Verifier) Verify(ctx context.Context, src Source) (Report, error) {
	var rep Report
	if v.Start != nil && v.Events != nil {
		return rep, errors.New("trail: a verification of events cannot start from a tree verified before")
	}
	keys, err := v.keyList()
	if err != nil {
		return rep, err
	}
	notes, err := src.Checkpoints(ctx)
	if err != nil {
		return rep, err
	}
	cps, err := openCheckpoints(keys, append(notes, v.Trusted...), func(i int) string {
		if i >= len(notes) {
			return fmt.Sprintf("trusted checkpoint %d", i-len(notes)+1)
		}
		return fmt.Sprintf("checkpoint %d of the service's", i+1)
	})
	if err != nil {
		return rep, err
	}
	rep.Checkpoints = len(notes)
	var tree compactRange
	from, ci := int64(1), 0
	goodUpTo := int64(0) // the largest checkpoint size the events matched
	if s := v.Start; s != nil {
		tree, from, goodUpTo, rep.End = s.compact(), s.Size+1, s.Size, *s
		for ; ci < len(cps) && cps[ci].Size <= s.Size; ci++ {
			if err := checkBefore(ctx, src, *s, cps[ci].Checkpoint); err != nil {
				return rep, err
			}
		}
	} else if len(cps) == 0 {
		return rep, &Failure{Reason: ReasonMissing, Detail: "the service has no checkpoint yet"}
	}
	size := goodUpTo
	if len(cps) > 0 {
		size = max(size, cps[len(cps)-1].Size)
	}
	if v.UpTo > 0 {
		size = min(size, v.UpTo)
	}
	rep.Size = size

	var next func() ([]byte, bool, error)
	if v.Events != nil {
		pull, stop := iter.Pull2(v.Events)
		defer stop()
		next = func() ([]byte, bool, error) {
			b, err, ok := pull()
			return b, ok && err == nil, err
		}
	}
	var fileEv []byte
	var fileID, lastFileID int64
	advance := func() error { // reads the next event of v.Events into fileEv/fileID
		b, ok, err := next()
		if err != nil {
			return err
		}
		if !ok {
			fileEv, fileID = nil, 0
			return nil
		}
		id, ok := eventID(b)
		if !ok {
			return &Failure{ID: lastFileID, Reason: ReasonAltered, Detail: "an event after this id in the file does not start with its id ({\"id\":N,…})"}
		}
		if id <= lastFileID {
			return &Failure{ID: id, Reason: ReasonReordered, Detail: fmt.Sprintf("comes after id %d in the file", lastFileID)}
		}
		fileEv, fileID, lastFileID = b, id, id
		return nil
	}
	if next != nil {
		if err := advance(); err != nil {
			return rep, err
		}
	}

	page := cmpOr(v.Page, 10_000)
	every := cmpOr(v.Every, 100_000)
	start := time.Now()
	fctx, cancel := context.WithCancel(ctx)
	pages := v.fetch(fctx, src, from, size, page)
	defer func() {
		cancel()
		for range pages { // the fetches still running end into their buffers
		}
	}()
	for from <= size {
		res, ok := <-pages
		if !ok {
			return rep, context.Cause(ctx)
		}
		r := <-res
		leaves, err := r.leaves, r.err
		if err != nil {
			return rep, err
		}
		if len(leaves) == 0 {
			return rep, &Failure{ID: from, Reason: ReasonMissing, Detail: fmt.Sprintf("the service's tree has no leaf for it, though a checkpoint of size %d was signed", size)}
		}
		for _, l := range leaves {
			if l.ID != from {
				return rep, &Failure{ID: from, Reason: ReasonMissing, Detail: fmt.Sprintf("the service's tree has no leaf for it (next leaf served: id %d)", l.ID)}
			}
			h := l.Hash
			ev := l.Event
			if next != nil {
				ev = nil
				if fileID == l.ID {
					ev = fileEv
					if err := advance(); err != nil {
						return rep, err
					}
				}
			}
			switch {
			case ev != nil:
				if id, ok := eventID(ev); !ok || id != l.ID {
					return rep, &Failure{ID: l.ID, Reason: ReasonReordered, Detail: fmt.Sprintf("the event served at this id is event %d", id)}
				}
				h = LeafHash(ev)
				if h != l.Hash {
					return rep, &Failure{ID: l.ID, Reason: ReasonAltered, Detail: "its bytes are not those its leaf was made of"}
				}
				rep.Events++
			case next == nil && (l.Kind == store.TrailStored || l.Kind == store.TrailRecovered) &&
				v.StoredUpTo != nil && l.ID > *v.StoredUpTo:
				rep.NotYetStored++
			case next == nil && (l.Kind == store.TrailStored || l.Kind == store.TrailRecovered):
				return rep, &Failure{ID: l.ID, Reason: ReasonMissing, Detail: "the tree has it as a stored event, but the store does not serve it"}
			case l.Kind == store.TrailLost:
				if h != LeafHash(LostLeaf(l.ID)) {
					return rep, &Failure{ID: l.ID, Reason: ReasonAltered, Detail: "marked lost, but its leaf is not the lost placeholder"}
				}
				if !v.AllowLost {
					return rep, &Failure{ID: l.ID, Reason: ReasonLost, Detail: "the log lost it before the tree had it, and the store had no copy"}
				}
				if rep.Lost == 0 {
					rep.FirstLost = l.ID
				}
				rep.Lost++
			}
			switch {
			case l.Kind == store.TrailRecovered:
				rep.Recovered++
			case l.Kind == store.TrailPurged && ev == nil:
				rep.Purged++
			}
			tree.push(h)
			from++
			for ci < len(cps) && cps[ci].Size == tree.n {
				if tree.root() != cps[ci].Root {
					return rep, &Failure{ID: goodUpTo + 1, Reason: ReasonInconsistent,
						Detail: fmt.Sprintf("the checkpoint of size %d does not match the tree the events make: an event in ids %d-%d was altered, removed or reordered after it was signed (or the checkpoints fork)",
							cps[ci].Size, goodUpTo+1, cps[ci].Size)}
				}
				goodUpTo = cps[ci].Size
				rep.End, rep.EndLost = tree.frontier(), rep.Lost
				ci++
			}
			if v.Progress != nil && tree.n%every == 0 {
				v.Progress(tree.n, size, float64(tree.n)/time.Since(start).Seconds())
			}
		}
	}
	if next != nil && fileEv != nil && v.UpTo == 0 {
		return rep, &Failure{ID: fileID, Reason: ReasonMissing, Detail: fmt.Sprintf("the file has it, but no checkpoint covers it yet (the largest is of size %d)", size)}
	}
	return rep, nil
}

type pageResult struct {
	leaves []SourceLeaf
	err    error
}

// checkBefore checks a checkpoint no larger than the tree verified before: of its size, it
// must have its root; smaller, the source must prove it a prefix of it.
func checkBefore(ctx context.Context, src Source, verified Frontier, cp Checkpoint) error {
	root := verified.Root()
	if cp.Size == verified.Size {
		if cp.Root != root {
			return &Failure{Reason: ReasonInconsistent, Detail: fmt.Sprintf("fork: the checkpoint of size %d does not have the root of the tree verified before", cp.Size)}
		}
		return nil
	}
	cs, ok := src.(ConsistencySource)
	if !ok {
		return fmt.Errorf("trail: a checkpoint of size %d, before the tree verified before (%d), and the source proves no consistency", cp.Size, verified.Size)
	}
	proof, err := cs.Consistency(ctx, cp.Size, verified.Size)
	if err != nil {
		return err
	}
	if tlog.CheckTree(proof, verified.Size, root, cp.Size, cp.Root) != nil {
		return &Failure{Reason: ReasonInconsistent, Detail: fmt.Sprintf("fork: the checkpoint of size %d is not a prefix of the tree verified before (size %d)", cp.Size, verified.Size)}
	}
	return nil
}

// fetch asks for the pages of leaves first..size, up to Parallel (default 2) ahead, and hands
// them over in order: the source reads the next pages while this one is checked. The channel
// closes after the last page or when ctx ends; the caller cancels ctx when it stops early.
func (v *Verifier) fetch(ctx context.Context, src Source, first, size int64, page int) <-chan chan pageResult {
	out := make(chan chan pageResult, cmpOr(v.Parallel, 2)-1)
	go func() {
		defer close(out)
		for from := first; from <= size; from += int64(page) {
			res := make(chan pageResult, 1)
			select {
			case out <- res:
			case <-ctx.Done():
				return
			}
			go func(from int64) {
				leaves, err := src.Leaves(ctx, from, int(min(int64(page), size-from+1)))
				res <- pageResult{leaves, err}
			}(from)
		}
	}()
	return out
}

// eventID reads the id an event's JSON starts with ({"id":N,…}: how the store, the API's raw
// leaves and every destination write it).
func eventID(b []byte) (int64, bool) {
	rest, ok := bytes.CutPrefix(b, []byte(`{"id":`))
	if !ok {
		return 0, false
	}
	end := bytes.IndexAny(rest, ",}")
	if end <= 0 {
		return 0, false
	}
	id, err := strconv.ParseInt(string(rest[:end]), 10, 64)
	return id, err == nil
}

func cmpOr[T int | int64](v, d T) T {
	if v > 0 {
		return v
	}
	return d
}

// compactRange is a tree being built leaf by leaf: the roots of its complete subtrees, largest
// first (RFC 6962's decomposition), from which the root of the tree so far is folded.
type compactRange struct {
	n      int64
	hashes []tlog.Hash
	levels []int
}

func (c *compactRange) push(h tlog.Hash) {
	c.hashes, c.levels = append(c.hashes, h), append(c.levels, 0)
	for k := len(c.hashes); k >= 2 && c.levels[k-1] == c.levels[k-2]; k = len(c.hashes) {
		c.hashes[k-2] = tlog.NodeHash(c.hashes[k-2], c.hashes[k-1])
		c.levels[k-2]++
		c.hashes, c.levels = c.hashes[:k-1], c.levels[:k-1]
	}
	c.n++
}

// frontier returns a copy of the tree so far.
func (c *compactRange) frontier() Frontier {
	return Frontier{Size: c.n, Hashes: slices.Clone(c.hashes)}
}

// root is the tree's root hash (tlog.TreeHash of the leaves pushed).
func (c *compactRange) root() tlog.Hash {
	h := c.hashes[len(c.hashes)-1]
	for i := len(c.hashes) - 2; i >= 0; i-- {
		h = tlog.NodeHash(c.hashes[i], h)
	}
	return h
}

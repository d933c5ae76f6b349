package trail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/eventlog"
	"github.com/auditstream/auditstream/internal/store"
)

// Store is the part of the store the Writer uses.
type Store interface {
	HashStore
	TrailSize(ctx context.Context) (int64, error)
	TrailAppend(ctx context.Context, p store.TrailAppendParams) error
	TrailCheckpointAdd(ctx context.Context, c store.TrailCheckpoint) (store.TrailCheckpoint, error)
	TrailCheckpointLatest(ctx context.Context) (store.TrailCheckpoint, error)
	EventList(ctx context.Context, p store.EventListParams) ([]store.EventRecord, error)
}

// Log is the part of the log the Writer reads.
type Log interface {
	NewReader(ctx context.Context, after int64) (*eventlog.Reader, error)
	Info(ctx context.Context) (eventlog.Info, error)
	Holes(ctx context.Context) ([]int64, error)
}

// Metrics receives what the Writer did; any field may be nil.
type Metrics struct {
	Appended    func(n int)
	Size        func(n int64)
	Lost        func(n int) // events the log lost that the store had no copy of
	Recovered   func(n int) // events the log lost, made leaves from the store's copy
	Checkpoints func(n int)
}

// Writer appends every event of the log to the tree, in id order, and signs checkpoints. Run
// it in one process at a time (under a lease): a second writer's appends fail with
// store.ErrVersionConflict and it starts over from the stored size.
type Writer struct {
	Store   Store
	Log     Log
	Catalog *event.Catalog
	Signer  note.Signer
	// Origin is the first line of every checkpoint: the log's name.
	Origin string
	// CheckpointEvents signs a checkpoint once this many events were added since the last.
	// Default 100,000.
	CheckpointEvents int64
	// CheckpointInterval signs a checkpoint this long after the last one when events were added
	// since. Default 10s.
	CheckpointInterval time.Duration
	// Batch is the most events per append. Default 1000.
	Batch   int
	Logger  *slog.Logger
	Metrics Metrics
	// Status receives the losses the Writer finds; may be nil.
	Status *Status
	// Publish, when set, records the event of every checkpoint signed (CheckpointEvent) as the
	// service records its own events (ingest.Service.Record). A failed publish is logged and
	// tried again at the Writer's next turn. The event is itself a later leaf of the tree.
	Publish func(ctx context.Context, in event.Input) error

	cache *hashCache
	size  int64
	// since is the events added since the last checkpoint, and last its time.
	since int64
	last  time.Time
	// ownSince is how many of since are checkpoint events: a tree that grew by those alone
	// is not signed again, or every checkpoint would call for the next.
	ownSince int64
	// unpublished is the event of a checkpoint whose Publish failed.
	unpublished *event.Input
}

// Status is what the trail found wrong, for /-/ready and the admin: ids the log lost, and the
// latest audit's failure. Safe for concurrent use; the zero value is healthy.
type Status struct {
	mu       sync.Mutex
	problems []string
	audit    string // the last audit's failure; "" when it passed
	holes    string // the last audit's holes in the log; "" when none
}

// SetHoles records the latest audit's holes in the log: "" when there are none.
func (s *Status) SetHoles(msg string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.holes = msg
}

// SetAudit records the outcome of the latest audit: "" when it passed.
func (s *Status) SetAudit(failure string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.audit = failure
}

// Add records a problem.
func (s *Status) Add(p string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Contains(s.problems, p) {
		return // found again by a writer that started over
	}
	if len(s.problems) < 100 { // the first hundred say what happened; the log has them all
		s.problems = append(s.problems, p)
	}
}

// Problems returns what was recorded, oldest first.
func (s *Status) Problems() []string {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]string(nil), s.problems...)
	if s.holes != "" && !slices.Contains(out, s.holes) {
		out = append(out, s.holes)
	}
	if s.audit != "" {
		out = append(out, s.audit)
	}
	return out
}

func (w *Writer) defaults() {
	if w.CheckpointEvents <= 0 {
		w.CheckpointEvents = 100_000
	}
	if w.CheckpointInterval <= 0 {
		w.CheckpointInterval = 10 * time.Second
	}
	if w.Batch <= 0 {
		w.Batch = 1000
	}
}

// Run appends until ctx ends (nil) or reading fails (the log or the store went away: the
// caller runs it again).
func (w *Writer) Run(ctx context.Context) (err error) {
	defer func() {
		if ctx.Err() != nil {
			err = nil // whatever failed, failed because we were told to stop
		}
	}()
	w.defaults()
	if w.size, err = w.Store.TrailSize(ctx); err != nil {
		return err
	}
	w.cache = newHashCache(ctx, w.Store)
	w.last, w.since, w.ownSince = time.Now(), 0, 0
	if cp, err := w.Store.TrailCheckpointLatest(ctx); err == nil {
		w.since = w.size - cp.Size
		w.ownSince = w.countOwn(ctx, cp.Size, w.size)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	info, err := w.Log.Info(ctx)
	if err != nil {
		return err
	}
	last, first := int64(info.LastSeq), int64(info.FirstSeq)
	if msg, err := HoleReport(ctx, w.Log.Holes, w.size); err != nil {
		return err
	} else if msg != "" {
		w.lossf("%s", msg)
	}
	switch {
	case last < w.size:
		w.lossf("the log ends at id %d but the tree holds ids up to %d: the log lost ids %s (their leaves and, for stored types, the store's copies remain)",
			last, w.size, idRange(last+1, w.size))
	case last > w.size && (info.Messages == 0 || first > w.size+1):
		// The log no longer holds the events after the tree's end (they aged out or were cut
		// while no writer ran): no read will show the gap until the next event, so fill it now.
		end := last
		if info.Messages > 0 {
			end = first - 1
		}
		if err := w.fill(ctx, w.size+1, end); err != nil {
			return err
		}
	}
	rd, err := w.Log.NewReader(ctx, w.size)
	if err != nil {
		return err
	}
	defer rd.Close()
	pending := make([]eventlog.Read, 0, w.Batch)
	for {
		pending = pending[:0]
		wait := w.CheckpointInterval
		if w.since > w.ownSince {
			wait -= time.Since(w.last) // wake for the checkpoint that is due
		}
		for len(pending) < w.Batch {
			if len(pending) > 0 {
				wait = 20 * time.Millisecond // fill the batch with what is already there
			}
			r, err := rd.Next(ctx, max(wait, time.Millisecond))
			if errors.Is(err, eventlog.ErrNoEvent) {
				break
			}
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			// The reader's Data is its own per message; nothing reuses it.
			pending = append(pending, r)
		}
		if len(pending) > 0 {
			if err := w.append(ctx, pending); err != nil {
				return err
			}
		}
		if w.since > w.ownSince && (w.since >= w.CheckpointEvents || time.Since(w.last) >= w.CheckpointInterval) {
			if err := w.checkpoint(ctx); err != nil {
				return err
			}
		}
		w.publish(ctx)
	}
}

// leaf is one leaf to append.
type leaf struct {
	hash tlog.Hash
	kind store.TrailLeafKind
}

// append adds the events read to the tree, filling ids the log skipped.
func (w *Writer) append(ctx context.Context, reads []eventlog.Read) error {
	leaves := make([]leaf, 0, len(reads))
	next := w.size + 1
	var buf []byte
	for _, r := range reads {
		if r.Seq < next {
			continue // already in the tree (a reader that started before its position)
		}
		if r.Seq > next {
			// What came before the gap goes first, then the gap, in steps of its own.
			if err := w.store(ctx, leaves); err != nil {
				return err
			}
			leaves = leaves[:0]
			if err := w.fill(ctx, next, r.Seq-1); err != nil {
				return err
			}
		}
		buf = event.AppendWithID(buf[:0], r.Data, r.Seq)
		kind := store.TrailStored
		typ := r.Subject[strings.LastIndexByte(r.Subject, '.')+1:]
		if t := w.Catalog.Lookup(typ); t != nil && !t.SavedToDatabase {
			kind = store.TrailStreamOnly
		}
		if typ == event.TypeTrailCheckpoint {
			w.ownSince++
		}
		leaves = append(leaves, leaf{LeafHash(buf), kind})
		next = r.Seq + 1
	}
	return w.store(ctx, leaves)
}

// fillStep is how many ids of a gap are made leaves and stored at once: a tree added to a
// service whose log aged out millions of events fills them from the store in bounded steps.
const fillStep = 10_000

// fill adds the leaves of ids from..to, which the log no longer holds: from the store's copy
// where it has one, else LostLeaf. Either way the loss is reported, naming the ids.
func (w *Writer) fill(ctx context.Context, from, to int64) error {
	backfill := from == 1 && w.size == 0
	var recovered, lostCount int64
	var lost []int64 // the first thousand, to name them
	for lo := from; lo <= to; lo += fillStep {
		hi := min(lo+fillStep-1, to)
		stored := map[int64][]byte{}
		for after := lo - 1; after < hi; {
			recs, err := w.Store.EventList(ctx, store.EventListParams{AfterID: after, Ascending: true, Limit: int(min(hi-after, 1000))})
			if err != nil {
				return fmt.Errorf("trail: read the store's copies of ids %d-%d: %w", lo, hi, err)
			}
			for _, r := range recs {
				if r.ID <= hi {
					stored[r.ID] = r.Data
				}
			}
			if len(recs) == 0 || recs[len(recs)-1].ID >= hi {
				break
			}
			after = recs[len(recs)-1].ID
		}
		leaves := make([]leaf, 0, hi-lo+1)
		for id := lo; id <= hi; id++ {
			if data, ok := stored[id]; ok {
				leaves = append(leaves, leaf{LeafHash(data), store.TrailRecovered})
				recovered++
				continue
			}
			if len(lost) < 1000 {
				lost = append(lost, id)
			}
			lostCount++
			leaves = append(leaves, leaf{LeafHash(LostLeaf(id)), store.TrailLost})
		}
		if err := w.store(ctx, leaves); err != nil {
			return err
		}
	}
	if backfill {
		// A new tree over a log that aged out its first events (the trail was added to a
		// running service): the store's copies are the record of them.
		w.Logger.Warn("trail: the tree starts after events the log no longer holds; their leaves were made from the store",
			"ids", idRange(from, to), "from_store", recovered, "unknown", lostCount, "unknown_ids", Ranges(lost))
	} else {
		w.lossf("the log lost ids %s: %d made leaves from the store's copies, %d not in the store either (ids %s)",
			idRange(from, to), recovered, lostCount, Ranges(lost))
	}
	if w.Metrics.Recovered != nil {
		w.Metrics.Recovered(int(recovered))
	}
	if w.Metrics.Lost != nil {
		w.Metrics.Lost(int(lostCount))
	}
	return nil
}

func (w *Writer) lossf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	w.Logger.Error("trail: "+msg, "component", "trail")
	w.Status.Add(msg)
}

// store computes the hashes of leaves, stores the tiles they change and moves the size.
func (w *Writer) store(ctx context.Context, leaves []leaf) error {
	if len(leaves) == 0 {
		return nil
	}
	n := w.size
	for _, l := range leaves {
		hs, err := tlog.StoredHashesForRecordHash(n, l.hash, w.cache)
		if err != nil {
			return fmt.Errorf("trail: hashes of leaf %d: %w", n, err)
		}
		idx := tlog.StoredHashIndex(0, n)
		for i, h := range hs {
			w.cache.m[idx+int64(i)] = h
		}
		n++
	}
	tiles := tlog.NewTiles(tileHeight, w.size, n)
	out := make([]store.TrailTile, len(tiles))
	for i, t := range tiles {
		data, err := tlog.ReadTileData(t, w.cache)
		if err != nil {
			return fmt.Errorf("trail: tile %s: %w", t.Path(), err)
		}
		out[i] = store.TrailTile{TrailTileKey: store.TrailTileKey{Level: t.L, N: t.N}, Hashes: data}
		if t.L == 0 {
			// The kinds of the leaves this append adds to the tile.
			start := max(t.N<<t.H, w.size)
			for j := start; j < t.N<<t.H+int64(t.W); j++ {
				out[i].Kinds = append(out[i].Kinds, leaves[j-w.size].kind)
			}
		}
	}
	if err := w.Store.TrailAppend(ctx, store.TrailAppendParams{OldSize: w.size, NewSize: n, Tiles: out}); err != nil {
		return fmt.Errorf("trail: append ids %d-%d: %w", w.size+1, n, err)
	}
	w.cache.keep(n)
	w.since += n - w.size
	w.size = n
	if w.Metrics.Appended != nil {
		w.Metrics.Appended(len(leaves))
	}
	if w.Metrics.Size != nil {
		w.Metrics.Size(n)
	}
	return nil
}

// checkpoint signs and stores a checkpoint of the current tree.
func (w *Writer) checkpoint(ctx context.Context) error {
	root, err := tlog.TreeHash(w.size, w.cache)
	if err != nil {
		return fmt.Errorf("trail: tree hash at %d: %w", w.size, err)
	}
	// The frontier goes with the checkpoint's event: the cache holds it.
	hs, err := w.cache.ReadHashes(frontier(w.size))
	if err != nil {
		return fmt.Errorf("trail: the frontier of %d: %w", w.size, err)
	}
	slices.Reverse(hs) // largest subtree first
	msg, err := note.Sign(&note.Note{Text: string(Checkpoint{Origin: w.Origin, Size: w.size, Root: root}.Format())}, w.Signer)
	if err != nil {
		return fmt.Errorf("trail: sign checkpoint: %w", err)
	}
	if _, err := w.Store.TrailCheckpointAdd(ctx, store.TrailCheckpoint{Size: w.size, Note: msg}); err != nil {
		return err
	}
	w.since, w.ownSince, w.last = 0, 0, time.Now()
	if w.Metrics.Checkpoints != nil {
		w.Metrics.Checkpoints(1)
	}
	if w.Publish != nil {
		in := CheckpointEvent(w.Origin, w.size, root, msg, hs)
		w.unpublished = &in // an earlier one that failed is superseded: this one covers it
	}
	return nil
}

// maxOwnScan bounds the events countOwn reads.
const maxOwnScan = 64

// countOwn counts the checkpoint events among ids from+1..to, reading the log, so that a Writer
// that starts after its predecessor published the latest checkpoint's event does not sign
// again for it alone. It reads at most maxOwnScan events and counts what it could read: the
// worst a short count costs is one checkpoint more.
func (w *Writer) countOwn(ctx context.Context, from, to int64) int64 {
	if to <= from || to-from > maxOwnScan {
		return 0
	}
	rd, err := w.Log.NewReader(ctx, from)
	if err != nil {
		return 0
	}
	defer rd.Close()
	var n int64
	for {
		r, err := rd.Next(ctx, 100*time.Millisecond)
		if err != nil || r.Seq > to {
			return n
		}
		if r.Subject[strings.LastIndexByte(r.Subject, '.')+1:] == event.TypeTrailCheckpoint {
			n++
		}
		if r.Seq == to {
			return n
		}
	}
}

// publish publishes the event of the latest checkpoint, if it is not yet.
func (w *Writer) publish(ctx context.Context) {
	if w.unpublished == nil {
		return
	}
	if err := w.Publish(ctx, *w.unpublished); err != nil {
		if ctx.Err() == nil {
			w.Logger.Error("trail: the checkpoint's event was not published; trying again", "err", err)
		}
		return
	}
	w.unpublished = nil
}

// idRange formats from..to.
func idRange(from, to int64) string {
	if from == to {
		return strconv.FormatInt(from, 10)
	}
	return strconv.FormatInt(from, 10) + "-" + strconv.FormatInt(to, 10)
}

// Ranges formats ascending ids as ranges ("3-5,9"), the first 20 of them and then "…"; "none"
// when there are none.
func Ranges(ids []int64) string { return ranges(ids, 20) }

// AllRanges formats ascending ids as ranges, every one of them.
func AllRanges(ids []int64) string { return ranges(ids, -1) }

func ranges(ids []int64, limit int) string {
	if len(ids) == 0 {
		return "none"
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(ids); {
		j := i
		for j+1 < len(ids) && ids[j+1] == ids[j]+1 {
			j++
		}
		if n > 0 {
			b.WriteByte(',')
		}
		if n == limit {
			b.WriteString("…")
			break
		}
		b.WriteString(idRange(ids[i], ids[j]))
		n++
		i = j + 1
	}
	return b.String()
}

// HoleReport asks the log for its holes (eventlog.Log.Holes) and says which of them the tree
// already had when the log lost them (ids up to size): the tree and the store keep those, but
// the log can no longer deliver or replay them (an administrator re-publishes the stored ones
// with `auditstream trail republish`). "" when there are none. Holes above size are
// the Writer's to fill when it reads past them.
func HoleReport(ctx context.Context, holes func(context.Context) ([]int64, error), size int64) (string, error) {
	ids, err := holes(ctx)
	if err != nil {
		return "", err
	}
	var had []int64
	for _, id := range ids {
		if id <= size {
			had = append(had, id)
		}
	}
	if len(had) == 0 {
		return "", nil
	}
	return fmt.Sprintf("the log lost %d event(s) the tree already has, ids %s: the log can no longer deliver or replay them (the tree keeps their leaves, the store the stored ones: auditstream trail republish delivers those)",
		len(had), Ranges(had)), nil
}

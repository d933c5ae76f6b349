package trail

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/auditstream/auditstream/internal/store"
)

// LostIDs sorts the ids the log lost (docs/api.md, "Re-publishing what the log lost") by
// what the tree says of them.
type LostIDs struct {
	// Kept are the ones the store has a copy of, which can be delivered again: the leaves the
	// tree made from the store's copies (recovered), and stored events the log lost after the
	// tree had them (a hole of the log at a stored leaf).
	Kept []int64
	// Lost had no copy (lost leaves): nothing can deliver them.
	Lost []int64
	// StreamOnly are holes of the log at stream-only events: the store never had them.
	StreamOnly []int64
}

// add files id by the kind of its leaf and whether the log has a hole there; false when it is
// none of LostIDs' (the log still has it).
func (o *LostIDs) add(id int64, k store.TrailLeafKind, hole bool) bool {
	switch {
	case k == store.TrailRecovered, hole && k == store.TrailStored:
		o.Kept = append(o.Kept, id)
	case k == store.TrailLost:
		o.Lost = append(o.Lost, id)
	case hole && k == store.TrailStreamOnly:
		o.StreamOnly = append(o.StreamOnly, id)
	default:
		return false
	}
	return true
}

// SortLost files the ids asked for by the kinds of their leaves (LeafKinds) and the log's holes
// (ascending); the ids that are none of LostIDs' (the log still has them, or the tree does
// not) come back as other.
func SortLost(ids []int64, kinds map[int64]store.TrailLeafKind, holes []int64) (out LostIDs, other []int64) {
	for _, id := range ids {
		_, hole := slices.BinarySearch(holes, id)
		if k, inTree := kinds[id]; !inTree || !out.add(id, k, hole) {
			other = append(other, id)
		}
	}
	return out, other
}

// scanPage is how many leaves LostLeaves reads at once.
const scanPage = 10_000

// LostLeaves finds every id the log lost in the whole tree, in id order: the recovered and
// lost leaves, and the leaves at holes (ascending: the ids the log no longer holds inside its
// range, eventlog.Log.Holes). It reads every leaf's hash and kind (not the events): a tree of
// a million events is read in 100 pages.
func (p *Prover) LostLeaves(ctx context.Context, holes []int64) (LostIDs, error) {
	var out LostIDs
	for from := int64(1); ; from += scanPage {
		leaves, err := p.LeafHashes(ctx, from, scanPage)
		if err != nil {
			return out, err
		}
		for _, l := range leaves {
			_, hole := slices.BinarySearch(holes, l.ID)
			out.add(l.ID, l.Kind, hole)
		}
		if len(leaves) < scanPage {
			return out, nil
		}
	}
}

// LeafKinds returns the kind of each of the leaves of ids (ascending), by id; ids the tree does
// not have are left out. Ids within a tile's width of each other are read in one page of leaves.
func (p *Prover) LeafKinds(ctx context.Context, ids []int64) (map[int64]store.TrailLeafKind, error) {
	out := make(map[int64]store.TrailLeafKind, len(ids))
	for len(ids) > 0 {
		n := 1 // the ids within a page from ids[0]
		for n < len(ids) && ids[n]-ids[0] < store.TrailTileWidth {
			n++
		}
		leaves, err := p.LeafHashes(ctx, ids[0], int(ids[n-1]-ids[0]+1))
		if err != nil {
			return nil, err
		}
		for _, l := range leaves {
			if _, ok := slices.BinarySearch(ids[:n], l.ID); ok {
				out[l.ID] = l.Kind
			}
		}
		ids = ids[n:]
	}
	return out, nil
}

// ParseIDs reads a list of ids and ranges as Ranges writes it ("5-9,12"), ascending and
// without repeats. At most limit ids.
func ParseIDs(s string, limit int) ([]int64, error) {
	var out []int64
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		from, err := strconv.ParseInt(strings.TrimSpace(lo), 10, 64)
		if err != nil || from < 1 {
			return nil, fmt.Errorf("%q is not an id (a positive integer) or a range of ids (5-9)", part)
		}
		to := from
		if isRange {
			if to, err = strconv.ParseInt(strings.TrimSpace(hi), 10, 64); err != nil || to < from {
				return nil, fmt.Errorf("%q is not a range of ids (5-9)", part)
			}
		}
		if len(out) > 0 && from <= out[len(out)-1] {
			return nil, fmt.Errorf("%q: ids must be given in ascending order, each once", part)
		}
		if int64(len(out))+to-from+1 > int64(limit) {
			return nil, fmt.Errorf("more than %d ids", limit)
		}
		for id := from; id <= to; id++ {
			out = append(out, id)
		}
	}
	return out, nil
}

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

// SortLost files the ids asked for by the kinds of their leaves (LeafKinds) and the log's holes
// (ascending); the ids that are none of LostIDs' (the log still has them, or the tree does
// not) come back as other.
func SortLost(ids []int64, kinds map[int64]store.TrailLeafKind, holes []int64) (out LostIDs, other []int64) {
	for _, id := range ids {
		_, hole := slices.BinarySearch(holes, id)
		k, inTree := kinds[id]
		switch {
		case inTree && k == store.TrailRecovered, inTree && hole && k == store.TrailStored:
			out.Kept = append(out.Kept, id)
		case inTree && k == store.TrailLost:
			out.Lost = append(out.Lost, id)
		case inTree && hole && k == store.TrailStreamOnly:
			out.StreamOnly = append(out.StreamOnly, id)
		default:
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
			switch {
			case l.Kind == store.TrailRecovered, hole && l.Kind == store.TrailStored:
				out.Kept = append(out.Kept, l.ID)
			case l.Kind == store.TrailLost:
				out.Lost = append(out.Lost, l.ID)
			case hole && l.Kind == store.TrailStreamOnly:
				out.StreamOnly = append(out.StreamOnly, l.ID)
			}
		}
		if len(leaves) < scanPage {
			return out, nil
		}
	}
}

// LeafKinds returns the kind of each of the leaves of ids, by id; ids the tree does not have
// are left out.
func (p *Prover) LeafKinds(ctx context.Context, ids []int64) (map[int64]store.TrailLeafKind, error) {
	out := make(map[int64]store.TrailLeafKind, len(ids))
	for _, id := range ids {
		leaves, err := p.LeafHashes(ctx, id, 1)
		if err != nil {
			return nil, err
		}
		if len(leaves) == 1 && leaves[0].ID == id {
			out[id] = leaves[0].Kind
		}
	}
	return out, nil
}

// ParseIDs reads a list of ids and ranges as Ranges writes it ("5-9,12"), ascending and
// without repeats. At most max ids.
func ParseIDs(s string, max int) ([]int64, error) {
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
		if int64(len(out))+to-from+1 > int64(max) {
			return nil, fmt.Errorf("more than %d ids", max)
		}
		for id := from; id <= to; id++ {
			out = append(out, id)
		}
	}
	return out, nil
}

package trail

import (
	"context"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditstream/auditstream/internal/store"
)

// HashStore is the part of the store the tree's hashes are read from.
type HashStore interface {
	TrailHashes(ctx context.Context, indexes []int64) ([]store.TrailHash, error)
}

// storeHashes reads the tree's hashes from the store as a tlog.HashReader.
func storeHashes(ctx context.Context, st HashStore) tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		hs, err := st.TrailHashes(ctx, indexes)
		if err != nil {
			return nil, err
		}
		out := make([]tlog.Hash, len(hs))
		for i, h := range hs {
			if len(h.Hash) != tlog.HashSize {
				return nil, fmt.Errorf("trail: stored hash %d has %d bytes", h.Index, len(h.Hash))
			}
			copy(out[i][:], h.Hash)
		}
		return out, nil
	})
}

// frontier is the hashes an append of leaf n reads: the roots of the complete subtrees that
// make up a tree of n leaves (one per bit set in n).
func frontier(n int64) []int64 {
	var out []int64
	for l := 0; l < 63 && n>>l > 0; l++ {
		if (n>>l)&1 == 1 {
			out = append(out, tlog.StoredHashIndex(l, (n>>l)-1))
		}
	}
	return out
}

// hashCache keeps the hashes an appender needs in memory: those of the batch being built and
// the frontier of the tree, so that appending reads the store only when it starts.
type hashCache struct {
	ctx context.Context
	st  HashStore
	m   map[int64]tlog.Hash
}

func newHashCache(ctx context.Context, st HashStore) *hashCache {
	return &hashCache{ctx: ctx, st: st, m: map[int64]tlog.Hash{}}
}

// ReadHashes implements tlog.HashReader, reading what it does not have from the store.
func (c *hashCache) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var miss []int64
	for i, idx := range indexes {
		h, ok := c.m[idx]
		if !ok {
			miss = append(miss, idx)
			continue
		}
		out[i] = h
	}
	if len(miss) > 0 {
		got, err := storeHashes(c.ctx, c.st).ReadHashes(miss)
		if err != nil {
			return nil, err
		}
		for i, idx := range miss {
			c.m[idx] = got[i]
		}
		for i, idx := range indexes {
			out[i] = c.m[idx]
		}
	}
	return out, nil
}

// keepFrontier forgets every hash but the frontier of a tree of n leaves.
func (c *hashCache) keepFrontier(n int64) {
	keep := map[int64]tlog.Hash{}
	for _, idx := range frontier(n) {
		if h, ok := c.m[idx]; ok {
			keep[idx] = h
		}
	}
	c.m = keep
}

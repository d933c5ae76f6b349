package trail

import (
	"context"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditstream/auditstream/internal/store"
)

// HashStore is the part of the store the tree's hashes are read from.
type HashStore interface {
	TrailTiles(ctx context.Context, keys []store.TrailTileKey) ([]store.TrailTile, error)
}

// tileHeight is the height of the stored tiles.
const tileHeight = store.TrailTileHeight

// storeHashes reads the tree's hashes from the store's tiles as a tlog.HashReader: one
// TrailTiles call for the tiles of all the indexes asked for.
func storeHashes(ctx context.Context, st HashStore) tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		tiles := make([]tlog.Tile, len(indexes))
		var keys []store.TrailTileKey
		seen := map[store.TrailTileKey]bool{}
		for i, idx := range indexes {
			t := tlog.TileForIndex(tileHeight, idx)
			tiles[i] = t
			k := store.TrailTileKey{Level: t.L, N: t.N}
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
		got, err := st.TrailTiles(ctx, keys)
		if err != nil {
			return nil, err
		}
		data := make(map[store.TrailTileKey][]byte, len(got))
		for _, t := range got {
			data[t.TrailTileKey] = t.Hashes
		}
		out := make([]tlog.Hash, len(indexes))
		for i, idx := range indexes {
			t := tiles[i]
			d := data[store.TrailTileKey{Level: t.L, N: t.N}]
			// A stored tile may be wider than the index needs; its first W hashes are the same.
			if out[i], err = tlog.HashFromTile(t, d, idx); err != nil {
				return nil, fmt.Errorf("trail: stored hash %d: %w", idx, err)
			}
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

// edge returns the hashes at the bottom of the partial tiles at the right edge of a tree of n
// leaves: those the next append writes again, wider.
func edge(n int64) []int64 {
	var out []int64
	for l := 0; n>>(l*tileHeight) > 0; l++ {
		count := n >> (l * tileHeight) // hashes at the tile level's bottom
		for i := count &^ (store.TrailTileWidth - 1); i < count; i++ {
			out = append(out, tlog.StoredHashIndex(l*tileHeight, i))
		}
	}
	return out
}

// hashCache keeps the hashes an appender needs in memory: those of the batch being built, the
// frontier of the tree and the bottom of its partial tiles, so that appending reads the store
// only when it starts.
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

// keep forgets every hash but the frontier and the edge of a tree of n leaves.
func (c *hashCache) keep(n int64) {
	keep := map[int64]tlog.Hash{}
	for _, idx := range append(frontier(n), edge(n)...) {
		if h, ok := c.m[idx]; ok {
			keep[idx] = h
		}
	}
	c.m = keep
}

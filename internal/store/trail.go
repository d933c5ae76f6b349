package store

import (
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// TrailUpgradeStep is the part of the drivers' upgrade from the previous release's trail
// format (table trail_hashes: one row per tlog stored hash, the kind on leaves) to tiles: it
// returns the tiles an append of leaves from..to-1 writes (as TrailAppend takes them), read
// from the old rows by read. read returns the hash and kind stored at each stored hash index
// asked for, in that order, or an error when one is not stored. A driver converts a tree of n
// leaves by steps from 0 to n, applying each step's tiles as TrailAppend does.
func TrailUpgradeStep(from, to int64, read func(indexes []int64) (hashes [][]byte, kinds []TrailLeafKind, err error)) ([]TrailTile, error) {
	tiles := tlog.NewTiles(TrailTileHeight, from, to)
	var indexes []int64
	for _, t := range tiles {
		for i := range t.W {
			indexes = append(indexes, tlog.StoredHashIndex(t.L*t.H, t.N<<t.H+int64(i)))
		}
	}
	hashes, kinds, err := read(indexes)
	if err != nil {
		return nil, err
	}
	if len(hashes) != len(indexes) || len(kinds) != len(indexes) {
		return nil, fmt.Errorf("trail upgrade: read %d indexes, got %d hashes and %d kinds", len(indexes), len(hashes), len(kinds))
	}
	out := make([]TrailTile, len(tiles))
	j := 0
	for k, t := range tiles {
		tile := TrailTile{TrailTileKey: TrailTileKey{Level: t.L, N: t.N}, Hashes: make([]byte, 0, t.W*tlog.HashSize)}
		start := t.N << t.H
		for i := range t.W {
			h := hashes[j]
			if len(h) != tlog.HashSize {
				return nil, fmt.Errorf("trail upgrade: the hash at index %d has %d bytes", indexes[j], len(h))
			}
			tile.Hashes = append(tile.Hashes, h...)
			if t.L == 0 && start+int64(i) >= from {
				tile.Kinds = append(tile.Kinds, kinds[j])
			}
			j++
		}
		out[k] = tile
	}
	return out, nil
}

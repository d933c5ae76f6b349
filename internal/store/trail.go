package store

import (
	"cmp"
	"fmt"
	"slices"

	"golang.org/x/mod/sumdb/tlog"
)

// TrailUpgradeStep returns the tiles an append of leaves from..to-1 writes (as TrailAppend
// takes them), read by read from the previous release's trail format (table trail_hashes: one
// row per tlog stored hash, the kind on leaves): the drivers' upgrade to tiles, step by step.
// read returns the rows it found of the stored hash indexes asked for; one that is missing is
// an error. A driver converts a tree of n leaves by steps from 0 to n, applying each step's
// tiles as TrailAppend does.
func TrailUpgradeStep(from, to int64, read func(indexes []int64) (map[int64]TrailOldHash, error)) ([]TrailTile, error) {
	tiles := tlog.NewTiles(TrailTileHeight, from, to)
	var indexes []int64
	for _, t := range tiles {
		for i := range t.W {
			indexes = append(indexes, tlog.StoredHashIndex(t.L*t.H, t.N<<t.H+int64(i)))
		}
	}
	found, err := read(indexes)
	if err != nil {
		return nil, err
	}
	out := make([]TrailTile, len(tiles))
	j := 0
	for k, t := range tiles {
		tile := TrailTile{TrailTileKey: TrailTileKey{Level: t.L, N: t.N}, Hashes: make([]byte, 0, t.W*tlog.HashSize)}
		start := t.N << t.H
		for i := range t.W {
			old, ok := found[indexes[j]]
			if !ok {
				return nil, fmt.Errorf("trail upgrade: trail_hashes has no index %d", indexes[j])
			}
			if len(old.Hash) != tlog.HashSize {
				return nil, fmt.Errorf("trail upgrade: the hash at index %d has %d bytes", indexes[j], len(old.Hash))
			}
			tile.Hashes = append(tile.Hashes, old.Hash...)
			if t.L == 0 && start+int64(i) >= from {
				tile.Kinds = append(tile.Kinds, old.Kind)
			}
			j++
		}
		out[k] = tile
	}
	return out, nil
}

// TrailOldHash is a row of the previous release's trail_hashes.
type TrailOldHash struct {
	Hash []byte
	Kind TrailLeafKind // of a leaf's hash
}

// EncodeKinds returns leaf kinds as the drivers store them: one byte each.
func EncodeKinds(kinds []TrailLeafKind) []byte {
	b := make([]byte, len(kinds))
	for i, k := range kinds {
		b[i] = byte(k)
	}
	return b
}

// DecodeKinds returns the leaf kinds the drivers stored as b (EncodeKinds); nil when empty.
func DecodeKinds(b []byte) []TrailLeafKind {
	if len(b) == 0 {
		return nil
	}
	kinds := make([]TrailLeafKind, len(b))
	for i, k := range b {
		kinds[i] = TrailLeafKind(k)
	}
	return kinds
}

// PurgeTileKeys returns the keys of the level-0 tiles that hold leaves (leaf indexes, from 0),
// ascending and each once: the tiles TrailMarkPurged reads and rewrites.
func PurgeTileKeys(leaves []int64) []TrailTileKey {
	seen := map[int64]bool{}
	var keys []TrailTileKey
	for _, l := range leaves {
		if n := l / TrailTileWidth; l >= 0 && !seen[n] {
			seen[n] = true
			keys = append(keys, TrailTileKey{N: n})
		}
	}
	slices.SortFunc(keys, func(a, b TrailTileKey) int { return cmp.Compare(a.N, b.N) })
	return keys
}

// MarkPurged marks the stored and recovered leaves among leaves purged in kinds (the level-0
// tiles' kinds, by tile number) and returns the numbers of the tiles it changed, ascending.
func MarkPurged(kinds map[int64][]TrailLeafKind, leaves []int64) []int64 {
	var changed []int64
	for _, l := range leaves {
		n, i := l/TrailTileWidth, l%TrailTileWidth
		k := kinds[n]
		if l >= 0 && i < int64(len(k)) && (k[i] == TrailStored || k[i] == TrailRecovered) {
			k[i] = TrailPurged
			changed = append(changed, n)
		}
	}
	slices.Sort(changed)
	return slices.Compact(changed)
}

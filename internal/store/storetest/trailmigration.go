package storetest

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditstream/auditstream/internal/store"
)

// TrailLegacyRow is a row of trail_hashes as migration 0011 defines it: a tlog stored hash at
// its index, with the kind of its leaf (0 above the leaves).
type TrailLegacyRow struct {
	Index int64
	Hash  []byte
	Kind  int16
}

// TrailTilesMigration tests migration 0014_trail_tiles on a driver: a database of the previous
// release keeps its tree, its kinds and its checkpoints. st is a store on a database migrated up
// to version 13 only. The test adds a checkpoint through st and calls seed with a tree size
// and the rows of trail_hashes of a tree of that size, for the driver to insert with its own SQL
// (and to set trail_tree's size). It then migrates st to the latest version and checks through
// the store that every tile holds the hashes tlog computes from the old rows, that level 0 holds
// the leaves' kinds, that proofs and the tree hash read from the tiles are those of the old
// rows, and that the tree grows on from there.
func TrailTilesMigration(t *testing.T, st store.Store, seed func(size int64, rows []TrailLegacyRow)) {
	ctx := t.Context()
	// More than one step of the upgrade, and a tree with a tile on level 2.
	const size = 70_001
	var stored []tlog.Hash
	hashes := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, idx := range indexes {
			out[i] = stored[idx]
		}
		return out, nil
	})
	kindOf := func(leaf int64) store.TrailLeafKind { return store.TrailLeafKind(leaf%5 + 1) }
	var rows []TrailLegacyRow
	for n := int64(0); n < size; n++ {
		hs, err := tlog.StoredHashes(n, fmt.Appendf(nil, "event %d", n+1), hashes)
		require.NoError(t, err)
		for i, h := range hs {
			kind := int16(0)
			if i == 0 {
				kind = int16(kindOf(n))
			}
			rows = append(rows, TrailLegacyRow{Index: int64(len(stored)), Hash: h[:], Kind: kind})
			stored = append(stored, h)
		}
	}
	cp, err := st.TrailCheckpointAdd(ctx, store.TrailCheckpoint{Size: size, Note: []byte("a checkpoint of the old format\n"), CreatedAt: base})
	require.NoError(t, err)
	seed(size, rows)
	require.NoError(t, st.Migrate(ctx))

	got, err := st.TrailSize(ctx)
	require.NoError(t, err)
	require.EqualValues(t, size, got)
	latest, err := st.TrailCheckpointLatest(ctx)
	require.NoError(t, err)
	require.Equal(t, cp, latest)

	for _, tile := range tlog.NewTiles(store.TrailTileHeight, 0, size) {
		want, err := tlog.ReadTileData(tile, hashes)
		require.NoError(t, err)
		tiles, err := st.TrailTiles(ctx, []store.TrailTileKey{{Level: tile.L, N: tile.N}})
		require.NoError(t, err, tile.Path())
		require.Equal(t, want, tiles[0].Hashes, tile.Path())
		if tile.L == 0 {
			require.Len(t, tiles[0].Kinds, tile.W, tile.Path())
			for i, k := range tiles[0].Kinds {
				require.Equal(t, kindOf(tile.N<<tile.H+int64(i)), k, "leaf %d", tile.N<<tile.H+int64(i))
			}
		} else {
			require.Empty(t, tiles[0].Kinds)
		}
	}
	fromTiles := TileHashReader(t, st)
	wantRoot, err := tlog.TreeHash(size, hashes)
	require.NoError(t, err)
	root, err := tlog.TreeHash(size, fromTiles)
	require.NoError(t, err)
	require.Equal(t, wantRoot, root)
	for _, leaf := range []int64{0, 255, 256, 65_535, 65_536, size - 1} {
		proof, err := tlog.ProveRecord(size, leaf, fromTiles)
		require.NoError(t, err)
		require.NoError(t, tlog.CheckRecord(proof, size, root, leaf, stored[tlog.StoredHashIndex(0, leaf)]), "leaf %d", leaf)
	}
	old, err := tlog.TreeHash(1000, hashes)
	require.NoError(t, err)
	proof, err := tlog.ProveTree(size, 1000, fromTiles)
	require.NoError(t, err)
	require.NoError(t, tlog.CheckTree(proof, size, root, 1000, old))

	// Retention marks the migrated leaves, and the tree grows on from its size.
	require.NoError(t, st.TrailMarkPurged(ctx, []int64{0}))
	tiles, err := st.TrailTiles(ctx, []store.TrailTileKey{{}})
	require.NoError(t, err)
	require.Equal(t, store.TrailPurged, tiles[0].Kinds[0])
	require.NoError(t, st.TrailAppend(ctx, store.TrailAppendParams{OldSize: size, NewSize: size + 1,
		Tiles: []store.TrailTile{trailTile(0, size>>store.TrailTileHeight, size%store.TrailTileWidth+1, store.TrailStored)}}))
	require.NoError(t, st.Migrate(ctx), "migrating again changes nothing")
	tiles, err = st.TrailTiles(ctx, []store.TrailTileKey{{N: size >> store.TrailTileHeight}})
	require.NoError(t, err)
	require.Len(t, tiles[0].Kinds, size%store.TrailTileWidth+1)
	require.Equal(t, []store.TrailLeafKind{kindOf(size - 1), store.TrailStored}, tiles[0].Kinds[size%store.TrailTileWidth-1:])
}

// TileHashReader reads the tree's stored hashes from st's tiles, as the trail does, for tests
// that check a store's tiles against tlog's own computation.
func TileHashReader(t *testing.T, st store.Store) tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, idx := range indexes {
			tile := tlog.TileForIndex(store.TrailTileHeight, idx)
			tiles, err := st.TrailTiles(t.Context(), []store.TrailTileKey{{Level: tile.L, N: tile.N}})
			if err != nil {
				return nil, err
			}
			if out[i], err = tlog.HashFromTile(tile, tiles[0].Hashes, idx); err != nil {
				return nil, err
			}
		}
		return out, nil
	})
}

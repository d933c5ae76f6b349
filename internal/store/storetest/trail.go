package storetest

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/store"
)

// trailHashes is w distinct 32-byte hashes for tile (level, n), as a tile's data.
func trailHashes(level int, n int64, w int) []byte {
	var b []byte
	for i := range w {
		b = append(b, bytes.Repeat([]byte{byte(level), byte(n), byte(n >> 8), byte(i)}, 8)...)
	}
	return b
}

// trailTile is tile (level, n) of width w, with kinds on level 0.
func trailTile(level int, n int64, w int, kinds ...store.TrailLeafKind) store.TrailTile {
	return store.TrailTile{TrailTileKey: store.TrailTileKey{Level: level, N: n}, Hashes: trailHashes(level, n, w), Kinds: kinds}
}

// kindsOf is n kinds cycling through stored, stream-only, lost, recovered, from leaf first.
func kindsOf(first int64, n int) []store.TrailLeafKind {
	out := make([]store.TrailLeafKind, n)
	for i := range out {
		out[i] = store.TrailLeafKind((first+int64(i))%4 + 1)
	}
	return out
}

// testTrailAppend: a new store's tree is empty; appends move the size only from the size they
// name, store tiles byte for byte, write partial tiles over the narrower ones stored while
// appending level 0's kinds to those stored; a stale append writes nothing.
func (s *suite) testTrailAppend(t *testing.T) {
	ctx, st := s.setup(t)
	n, err := st.TrailSize(ctx)
	require.NoError(t, err)
	require.Zero(t, n)

	first := trailTile(0, 0, 3, store.TrailStored, store.TrailStreamOnly, store.TrailLost)
	require.NoError(t, st.TrailAppend(ctx, store.TrailAppendParams{OldSize: 0, NewSize: 3, Tiles: []store.TrailTile{first}}))
	n, err = st.TrailSize(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 3, n)
	got, err := st.TrailTiles(ctx, []store.TrailTileKey{{Level: 0, N: 0}})
	require.NoError(t, err)
	require.Equal(t, []store.TrailTile{first}, got)

	// A writer that read size 0 before the append above lost the race: nothing of its is kept.
	err = st.TrailAppend(ctx, store.TrailAppendParams{OldSize: 0, NewSize: 1, Tiles: []store.TrailTile{trailTile(0, 0, 1, store.TrailLost), trailTile(0, 9, 1, store.TrailLost)}})
	require.ErrorIs(t, err, store.ErrVersionConflict)
	require.ErrorIs(t, err, store.ErrConflict)
	_, err = st.TrailTiles(ctx, []store.TrailTileKey{{Level: 0, N: 9}})
	require.ErrorIs(t, err, store.ErrNotFound)
	got, err = st.TrailTiles(ctx, []store.TrailTileKey{{Level: 0, N: 0}})
	require.NoError(t, err)
	require.Equal(t, []store.TrailTile{first}, got, "the stale append's tile is not written")
	n, err = st.TrailSize(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 3, n)

	// Leaf 0 (id 1) is marked purged while its tile is partial: the next append widens the tile and
	// keeps the mark. Only stored and recovered leaves are marked; others, and leaves the tree
	// does not have, are left.
	require.NoError(t, st.TrailMarkPurged(ctx, []int64{0, 1, 2, 7, -1, 99999}))
	require.NoError(t, st.TrailMarkPurged(ctx, nil))
	got, err = st.TrailTiles(ctx, []store.TrailTileKey{{Level: 0, N: 0}})
	require.NoError(t, err)
	require.Equal(t, []store.TrailLeafKind{store.TrailPurged, store.TrailStreamOnly, store.TrailLost}, got[0].Kinds)
	require.Equal(t, first.Hashes, got[0].Hashes, "the hashes stay")

	// Many tiles in one append (more than one statement's worth): from 3 to 210*256+44 leaves,
	// tile 0 widened to full, 209 more full ones and a partial one; level 1's first tile.
	const size = 210*store.TrailTileWidth + 44
	tiles := []store.TrailTile{trailTile(0, 0, store.TrailTileWidth, kindsOf(3, store.TrailTileWidth-3)...)}
	for i := int64(1); i < 210; i++ {
		tiles = append(tiles, trailTile(0, i, store.TrailTileWidth, kindsOf(i*store.TrailTileWidth, store.TrailTileWidth)...))
	}
	tiles = append(tiles, trailTile(0, 210, 44, kindsOf(210*store.TrailTileWidth, 44)...), trailTile(1, 0, 210))
	require.NoError(t, st.TrailAppend(ctx, store.TrailAppendParams{OldSize: 3, NewSize: size, Tiles: tiles}))

	got, err = st.TrailTiles(ctx, []store.TrailTileKey{{Level: 1, N: 0}, {Level: 0, N: 210}, {Level: 0, N: 0}, {Level: 0, N: 7}})
	require.NoError(t, err)
	require.Equal(t, tiles[211], got[0])
	require.Empty(t, got[0].Kinds, "no kinds above level 0")
	require.Equal(t, tiles[210], got[1])
	require.Equal(t, tiles[0].Hashes, got[2].Hashes, "the wider tile replaces the narrower")
	require.Equal(t, append([]store.TrailLeafKind{store.TrailPurged, store.TrailStreamOnly, store.TrailLost}, tiles[0].Kinds...), got[2].Kinds,
		"the new leaves' kinds follow those stored")
	require.Equal(t, tiles[7], got[3])
	_, err = st.TrailTiles(ctx, []store.TrailTileKey{{Level: 0, N: 1}, {Level: 2, N: 0}})
	require.ErrorIs(t, err, store.ErrNotFound, "one missing tile is not found")
	none, err := st.TrailTiles(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, none)

	// Marks across tiles in one call; the partial tile's last leaf too.
	require.NoError(t, st.TrailMarkPurged(ctx, []int64{3, 4, 5, 6, 7*store.TrailTileWidth + 2, size - 1, size}))
	got, err = st.TrailTiles(ctx, []store.TrailTileKey{{Level: 0, N: 0}, {Level: 0, N: 7}, {Level: 0, N: 210}})
	require.NoError(t, err)
	// Leaves 3..6 were stored (3: 3%4+1 = 4 recovered, 4: stored, 5: stream-only, 6: lost).
	require.Equal(t, []store.TrailLeafKind{store.TrailPurged, store.TrailPurged, store.TrailStreamOnly, store.TrailLost}, got[0].Kinds[3:7])
	purge := func(kinds []store.TrailLeafKind, i int) []store.TrailLeafKind {
		if kinds[i] == store.TrailStored || kinds[i] == store.TrailRecovered {
			kinds[i] = store.TrailPurged
		}
		return kinds
	}
	require.Equal(t, purge(kindsOf(7*store.TrailTileWidth, store.TrailTileWidth), 2), got[1].Kinds)
	wantLast := purge(kindsOf(210*store.TrailTileWidth, 44), 43)
	require.Equal(t, wantLast, got[2].Kinds)
}

// testTrailAppendConcurrent: writers racing from one size: exactly one wins.
func (s *suite) testTrailAppendConcurrent(t *testing.T) {
	ctx, st := s.setup(t)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for w := range errs {
		wg.Go(func() {
			errs[w] = st.TrailAppend(ctx, store.TrailAppendParams{OldSize: 0, NewSize: 1,
				Tiles: []store.TrailTile{trailTile(0, int64(w), 1, store.TrailStored)}})
		})
	}
	wg.Wait()
	won := 0
	for w, err := range errs {
		_, terr := st.TrailTiles(ctx, []store.TrailTileKey{{N: int64(w)}})
		if err == nil {
			won++
			require.NoError(t, terr)
		} else {
			require.ErrorIs(t, err, store.ErrVersionConflict)
			require.ErrorIs(t, terr, store.ErrNotFound, "the losers wrote nothing")
		}
	}
	require.Equal(t, 1, won)
}

// testTrailCheckpoints: checkpoints come back byte for byte, oldest first, paged by keyset; two
// of one size are both kept (a fork must stay visible); the latest is the one stored last.
func (s *suite) testTrailCheckpoints(t *testing.T) {
	ctx, st := s.setup(t)
	_, err := st.TrailCheckpointLatest(ctx)
	require.ErrorIs(t, err, store.ErrNotFound)

	var added []store.TrailCheckpoint
	for i, size := range []int64{1, 10, 10, 5} {
		note := fmt.Sprintf("example.com/log\n%d\nroot%d=\n\n— example.com/log sig%d\n", size, i, i)
		c, err := st.TrailCheckpointAdd(ctx, store.TrailCheckpoint{Size: size, Note: []byte(note), CreatedAt: base.Add(time.Duration(i)*time.Second + 1500*time.Microsecond)})
		require.NoError(t, err)
		require.Positive(t, c.ID)
		require.Equal(t, ms(base.Add(time.Duration(i)*time.Second+1500*time.Microsecond)), c.CreatedAt)
		added = append(added, c)
	}
	now := time.Now()
	zero, err := st.TrailCheckpointAdd(ctx, store.TrailCheckpoint{Size: 6, Note: []byte("n")})
	require.NoError(t, err)
	require.WithinDuration(t, now, zero.CreatedAt, time.Minute, "a zero CreatedAt is now")
	added = append(added, zero)

	page, err := st.TrailCheckpointList(ctx, store.TrailCheckpointListParams{Limit: 3})
	require.NoError(t, err)
	require.Equal(t, added[:3], page)
	page, err = st.TrailCheckpointList(ctx, store.TrailCheckpointListParams{AfterID: page[2].ID, Limit: 10})
	require.NoError(t, err)
	require.Equal(t, added[3:], page)
	latest, err := st.TrailCheckpointLatest(ctx)
	require.NoError(t, err)
	require.Equal(t, zero, latest)
	require.Equal(t, time.UTC, latest.CreatedAt.Location())

	_, err = st.TrailCheckpointList(ctx, store.TrailCheckpointListParams{Limit: 0})
	require.Error(t, err)
}

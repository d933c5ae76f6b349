package trail

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/store/sqlite"
)

// tileFixture is a Writer on a SQLite store and, beside it, the tree computed by tlog alone.
type tileFixture struct {
	t      *testing.T
	path   string
	st     *rowCounter
	w      *Writer
	stored []tlog.Hash // every stored hash, by index, as tlog computes them
	kinds  []store.TrailLeafKind
}

func newTileFixture(t *testing.T) *tileFixture {
	t.Helper()
	t.Parallel()
	path := filepath.Join(t.TempDir(), "db")
	st, err := sqlite.Open(t.Context(), path)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	require.NoError(t, st.Migrate(t.Context()))
	f := &tileFixture{t: t, path: path, st: &rowCounter{Store: st}}
	f.restart()
	return f
}

// restart gives the fixture a new Writer, which knows nothing of the tree but its size.
func (f *tileFixture) restart() {
	size, err := f.st.TrailSize(f.t.Context())
	require.NoError(f.t, err)
	f.w = &Writer{Store: f.st, size: size}
	f.w.cache = newHashCache(f.t.Context(), f.st)
}

func (f *tileFixture) reader() tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, idx := range indexes {
			out[i] = f.stored[idx]
		}
		return out, nil
	})
}

// append appends n leaves through the Writer, and to the fixture's own tree.
func (f *tileFixture) append(n int) {
	f.t.Helper()
	var leaves []leaf
	for range n {
		id := f.w.size + int64(len(leaves)) + 1
		data := fmt.Appendf(nil, `{"id":%d}`, id)
		kind := store.TrailLeafKind(id%4 + 1)
		hs, err := tlog.StoredHashes(id-1, data, f.reader())
		require.NoError(f.t, err)
		f.stored = append(f.stored, hs...)
		f.kinds = append(f.kinds, kind)
		leaves = append(leaves, leaf{LeafHash(data), kind})
	}
	require.NoError(f.t, f.w.store(f.t.Context(), leaves))
}

// check compares every tile of the store with tlog's computation, and proofs read from the
// store with tlog's, at the tree's size.
func (f *tileFixture) check(oldSize int64) {
	f.t.Helper()
	ctx := f.t.Context()
	size := int64(len(f.kinds))
	got, err := f.st.TrailSize(ctx)
	require.NoError(f.t, err)
	require.Equal(f.t, size, got)
	for _, tile := range tlog.NewTiles(tileHeight, 0, size) {
		want, err := tlog.ReadTileData(tile, f.reader())
		require.NoError(f.t, err)
		tiles, err := f.st.TrailTiles(ctx, []store.TrailTileKey{{Level: tile.L, N: tile.N}})
		require.NoError(f.t, err, tile.Path())
		require.Equal(f.t, want, tiles[0].Hashes, "tile %s at size %d", tile.Path(), size)
		if tile.L == 0 {
			require.Equal(f.t, f.kinds[tile.N<<tileHeight:tile.N<<tileHeight+int64(tile.W)], tiles[0].Kinds, tile.Path())
		}
	}
	root, err := tlog.TreeHash(size, f.reader())
	require.NoError(f.t, err)
	p := &Prover{Store: f.st}
	for _, id := range []int64{1, size / 2, size - 255, size - 1, size} {
		if id < 1 {
			continue
		}
		leafHash, proof, err := p.Inclusion(ctx, id, size)
		require.NoError(f.t, err)
		require.Equal(f.t, f.stored[tlog.StoredHashIndex(0, id-1)], leafHash)
		require.NoError(f.t, tlog.CheckRecord(proof, size, root, id-1, leafHash), "id %d of %d", id, size)
	}
	if oldSize > 0 {
		old, err := tlog.TreeHash(oldSize, f.reader())
		require.NoError(f.t, err)
		proof, err := p.Consistency(ctx, oldSize, size)
		require.NoError(f.t, err)
		require.NoError(f.t, tlog.CheckTree(proof, size, root, oldSize, old))
	}
	from := max(size-300, 1)
	leaves, err := p.LeafHashes(ctx, from, 1000)
	require.NoError(f.t, err)
	require.Len(f.t, leaves, int(size-from+1))
	for i, l := range leaves {
		id := from + int64(i)
		require.Equal(f.t, Leaf{ID: id, Hash: f.stored[tlog.StoredHashIndex(0, id-1)], Kind: f.kinds[id-1]}, l)
	}
}

// TestWriterTiles appends batches of uneven sizes, some across tile boundaries and some inside
// one tile, with Writers that restart between them (reading the partial tiles back from the
// store): after each append every tile and every proof is what tlog computes.
func TestWriterTiles(t *testing.T) {
	f := newTileFixture(t)
	size := int64(0)
	for i, n := range []int{1, 1, 253, 1, 2, 255, 256, 513, 1000, 3, 65_536 - 2285, 1, 700} {
		f.append(n)
		f.check(size)
		size += int64(n)
		if i%3 == 2 {
			f.restart()
		}
	}
	require.EqualValues(t, 65_536+701, size, "the tree has a tile on level 2")
}

// TestWriterWritesFewRows: an append of 1,000 leaves writes a handful of tiles, and the store
// keeps about one row per 256 leaves.
func TestWriterWritesFewRows(t *testing.T) {
	f := newTileFixture(t)
	for range 20 {
		before := f.st.rows
		f.append(1000)
		require.LessOrEqual(t, f.st.rows-before, 8, "tiles written by an append of 1,000 leaves")
	}
	db, err := sql.Open("sqlite", f.path)
	require.NoError(t, err)
	defer db.Close()
	var rows int
	require.NoError(t, db.QueryRowContext(t.Context(), `SELECT count(*) FROM trail_tiles`).Scan(&rows))
	require.Equal(t, 20_000/256+1+1, rows, "79 level-0 tiles (the last partial), one on level 1")
}

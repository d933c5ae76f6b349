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

// trailHash is a distinct 32-byte hash for index i.
func trailHash(i int64) []byte { return bytes.Repeat([]byte{byte(i), byte(i >> 8)}, 16) }

// testTrailAppend: a new store's tree is empty; appends move the size only from the size they
// name, store hashes byte for byte with their kinds, and a stale append writes nothing.
func (s *suite) testTrailAppend(t *testing.T) {
	ctx, st := s.setup(t)
	n, err := st.TrailSize(ctx)
	require.NoError(t, err)
	require.Zero(t, n)

	first := []store.TrailHash{{Index: 0, Hash: trailHash(0), Kind: store.TrailStored}, {Index: 1, Hash: trailHash(1), Kind: store.TrailStreamOnly},
		{Index: 2, Hash: trailHash(2), Kind: store.TrailNode}}
	require.NoError(t, st.TrailAppend(ctx, store.TrailAppendParams{OldSize: 0, NewSize: 2, Hashes: first}))
	n, err = st.TrailSize(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, n)

	// A writer that read size 0 before the append above lost the race: nothing of its is kept.
	err = st.TrailAppend(ctx, store.TrailAppendParams{OldSize: 0, NewSize: 1, Hashes: []store.TrailHash{{Index: 9, Hash: trailHash(9)}}})
	require.ErrorIs(t, err, store.ErrVersionConflict)
	require.ErrorIs(t, err, store.ErrConflict)
	_, err = st.TrailHashes(ctx, []int64{9})
	require.ErrorIs(t, err, store.ErrNotFound)
	n, err = st.TrailSize(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, n)

	// Many hashes in one append (more than one statement's worth).
	var many []store.TrailHash
	for i := int64(3); i < 1003; i++ {
		many = append(many, store.TrailHash{Index: i, Hash: trailHash(i), Kind: store.TrailLeafKind(i % 5)})
	}
	require.NoError(t, st.TrailAppend(ctx, store.TrailAppendParams{OldSize: 2, NewSize: 500, Hashes: many}))

	got, err := st.TrailHashes(ctx, []int64{1000, 0, 2, 1, 500})
	require.NoError(t, err)
	require.Equal(t, []store.TrailHash{{Index: 1000, Hash: trailHash(1000), Kind: store.TrailLeafKind(0)}, first[0], first[2], first[1],
		{Index: 500, Hash: trailHash(500), Kind: store.TrailLeafKind(0)}}, got)
	_, err = st.TrailHashes(ctx, []int64{1, 5000})
	require.ErrorIs(t, err, store.ErrNotFound, "one missing index is not found")
	none, err := st.TrailHashes(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, none)

	rng, err := st.TrailHashRange(ctx, 1, 5)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2, 3, 4}, trailIndexes(rng))
	require.Equal(t, store.TrailLeafKind(3), rng[2].Kind)
	rng, err = st.TrailHashRange(ctx, 990, 2000)
	require.NoError(t, err)
	require.Len(t, rng, 13)
	empty, err := st.TrailHashRange(ctx, 5000, 6000)
	require.NoError(t, err)
	require.Empty(t, empty)

	// Only stored and recovered leaves become purged; missing indexes are ignored.
	require.NoError(t, st.TrailMarkPurged(ctx, []int64{0, 1, 2, 6, 9, 99999}))
	require.NoError(t, st.TrailMarkPurged(ctx, nil))
	got, err = st.TrailHashes(ctx, []int64{0, 1, 2, 6, 9, 7})
	require.NoError(t, err)
	kinds := []store.TrailLeafKind{}
	for _, h := range got {
		kinds = append(kinds, h.Kind)
	}
	// 0 stored → purged, 1 stream-only, 2 a node, 6 (kind 1) → purged, 9 (kind 4) → purged, 7 (kind 2) untouched.
	require.Equal(t, []store.TrailLeafKind{store.TrailPurged, store.TrailStreamOnly, store.TrailNode, store.TrailPurged, store.TrailPurged, store.TrailStreamOnly}, kinds)
	require.Equal(t, trailHash(6), got[3].Hash, "the hash stays")
}

func trailIndexes(hs []store.TrailHash) []int64 {
	out := make([]int64, 0, len(hs))
	for _, h := range hs {
		out = append(out, h.Index)
	}
	return out
}

// testTrailAppendConcurrent: writers racing from one size: exactly one wins.
func (s *suite) testTrailAppendConcurrent(t *testing.T) {
	ctx, st := s.setup(t)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for w := range errs {
		wg.Go(func() {
			errs[w] = st.TrailAppend(ctx, store.TrailAppendParams{OldSize: 0, NewSize: 1,
				Hashes: []store.TrailHash{{Index: int64(w), Hash: trailHash(int64(w)), Kind: store.TrailStored}}})
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
		} else {
			require.ErrorIs(t, err, store.ErrVersionConflict)
		}
	}
	require.Equal(t, 1, won)
	rng, err := st.TrailHashRange(ctx, 0, 100)
	require.NoError(t, err)
	require.Len(t, rng, 1, "the losers wrote nothing")
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

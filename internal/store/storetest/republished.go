package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testRepublished: RepublishedAdd records ids once (a second add of the same id is no error),
// and RepublishedList returns those of the ids asked for that were recorded, ascending.
func (s *suite) testRepublished(t *testing.T) {
	ctx, st := s.setup(t)
	got, err := st.RepublishedList(ctx, []int64{1, 2, 3})
	require.NoError(t, err)
	require.Empty(t, got)
	require.NoError(t, st.RepublishedAdd(ctx, []int64{7, 3}, time.Now()))
	require.NoError(t, st.RepublishedAdd(ctx, []int64{3, 9}, time.Now()), "an id recorded before is kept, not a conflict")
	require.NoError(t, st.RepublishedAdd(ctx, nil, time.Now()))
	got, err = st.RepublishedList(ctx, []int64{9, 1, 3, 7, 8})
	require.NoError(t, err)
	require.Equal(t, []int64{3, 7, 9}, got)
	got, err = st.RepublishedList(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, got)
	_, err = st.RepublishedList(ctx, make([]int64, 1001))
	require.Error(t, err)
}

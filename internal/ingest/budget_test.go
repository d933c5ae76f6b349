package ingest_test

import (
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/ingest"
)

// A body is charged what has arrived (at most one read ahead), per key and overall; a read that
// does not fit is ErrBusy; a body read to its end is charged its size; Release gives it back.
func TestBudgetChargesWhatArrives(t *testing.T) {
	t.Parallel()
	b := &ingest.Budget{Total: 100 << 10, PerKey: 60 << 10}
	a1 := b.Reader(1, strings.NewReader(strings.Repeat("a", 50<<10)))
	_, err := a1.Read(make([]byte, 10))
	require.NoError(t, err)
	total, ofKey := b.Used(1)
	require.Equal(t, int64(10), total, "charged what was read, not the 50 KiB the body holds")
	require.Equal(t, int64(10), ofKey)

	_, err = io.Copy(io.Discard, a1)
	require.NoError(t, err)
	total, _ = b.Used(1)
	require.Equal(t, int64(50<<10), total, "read to its end: charged its size")

	// Key 1 has 10 KiB of its 60 left: a second body of key 1 gets that much, then ErrBusy.
	a2 := b.Reader(1, strings.NewReader(strings.Repeat("a", 30<<10)))
	n, err := io.Copy(io.Discard, a2)
	require.ErrorIs(t, err, ingest.ErrBusy)
	require.Equal(t, int64(10<<10), n)
	require.True(t, b.Full(1))
	require.False(t, b.Full(2))

	// Key 2 has the rest of the total (40 KiB), not its 60.
	c := b.Reader(2, strings.NewReader(strings.Repeat("c", 45<<10)))
	n, err = io.Copy(io.Discard, c)
	require.ErrorIs(t, err, ingest.ErrBusy)
	require.Equal(t, int64(40<<10), n)
	require.True(t, b.Full(3), "the total is taken")

	for _, r := range []*ingest.BudgetReader{a1, a2, c} {
		r.Release()
	}
	total, ofKey = b.Used(1)
	require.Zero(t, total)
	require.Zero(t, ofKey)
}

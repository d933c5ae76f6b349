package delivery

import (
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/destination"
)

// TestHistoryBuckets: outcomes land in their minute and quarter hour, backlog reads keep their
// peak, old buckets are reused once their time has passed, and a destination that never
// delivered or failed holds no history at all. The clock is the engine's (Env.Now), faked.
func TestHistoryBuckets(t *testing.T) {
	t.Parallel()
	o := Options{}
	o.defaults()
	now := time.Date(2026, 12, 7, 5, 30, 20, 0, time.UTC)
	e := New(Config{Env: destination.Env{Now: func() time.Time { return now }}, Metrics: NewMetrics(prometheus.NewRegistry())})
	e.mu.Lock()
	st := e.stateLocked(7)
	idle := e.stateLocked(8)
	e.mu.Unlock()

	idle.noteBacklog(now, 5, now.Add(-time.Minute))
	require.Nil(t, idle.hist, "an idle destination allocates nothing, also when its backlog is read")
	h := e.History(8)
	require.Len(t, h.Hour, 60)
	require.Len(t, h.Day, 96)
	require.Equal(t, int64(-1), h.Hour[59].Pending)
	require.Equal(t, time.Date(2026, 12, 7, 5, 30, 0, 0, time.UTC), h.Hour[59].Start, "the last bucket holds now")
	require.Equal(t, time.Date(2026, 12, 7, 5, 30, 0, 0, time.UTC), h.Day[95].Start)
	require.Equal(t, time.Date(2026, 12, 6, 5, 45, 0, 0, time.UTC), h.Day[0].Start)
	require.Len(t, e.History(99).Hour, 60, "an unknown destination: empty buckets")

	fail := &destination.Failure{Kind: destination.Retryable, StatusCode: 503, Message: "503"}
	st.succeeded(10, 0, now.Add(-2*time.Minute))
	st.succeeded(5, 0, now)
	st.failed(fail, 3, 0, now, false, o)
	st.noteBacklog(now, 40, now.Add(-90*time.Second))
	st.noteBacklog(now, 12, now.Add(-10*time.Second))
	h = e.History(7)
	require.Equal(t, Sample{Start: h.Hour[59].Start, Delivered: 5, Failed: 3, Pending: 40, OldestAge: 90 * time.Second}, h.Hour[59])
	require.Equal(t, int64(10), h.Hour[57].Delivered)
	require.Equal(t, int64(-1), h.Hour[57].Pending, "no backlog read that minute")
	require.Equal(t, int64(5), h.Day[95].Delivered, "05:30 to 05:45")
	require.Equal(t, int64(10), h.Day[94].Delivered, "05:15 to 05:30")
	st.succeeded(2, 0, now.Add(5*time.Minute))
	require.Equal(t, int64(7), e.History(7).Day[95].Delivered, "the quarter hour sums its minutes")

	// An hour and a day later the slots are reused: the old counts are gone.
	now = now.Add(time.Hour)
	st.succeeded(1, 0, now)
	h = e.History(7)
	require.Equal(t, int64(1), h.Hour[59].Delivered)
	require.Zero(t, h.Hour[57].Delivered, "the minute of an hour ago is not this hour's")
	require.Equal(t, int64(7), h.Day[91].Delivered, "the day still has it")
	now = now.Add(24 * time.Hour)
	h = e.History(7)
	for _, s := range append(h.Hour, h.Day...) {
		require.Zero(t, s.Delivered+s.Failed, "a day later: %v", s.Start)
	}
}

// TestHistorySize: the history of a destination that delivers is a few KiB.
func TestHistorySize(t *testing.T) {
	t.Parallel()
	require.LessOrEqual(t, unsafe.Sizeof(history{}), uintptr(4<<10))
}

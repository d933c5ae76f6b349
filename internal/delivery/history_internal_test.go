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

// TestHistoryKeepsOnlyWhatItSaw: a destination that delivered once holds one bucket of each
// window (100,000 destinations with one event each would otherwise hold 300 MB of empty
// buckets); one that delivered every minute for two days holds a window's worth, a few KiB.
// A late time lands in its bucket; one older than the window is dropped.
func TestHistoryKeepsOnlyWhatItSaw(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	var h history
	h.count(t0, 1, 0)
	require.Len(t, h.hour, 1)
	require.Len(t, h.day, 1)
	for m := range 48 * 60 {
		h.count(t0.Add(time.Duration(m)*time.Minute), 1, 0)
	}
	end := t0.Add(48*60*time.Minute - time.Minute)
	require.Len(t, h.hour, hourBuckets)
	require.Len(t, h.day, dayBuckets)
	require.LessOrEqual(t, (cap(h.hour)+cap(h.day))*int(unsafe.Sizeof(bucket{})), 4<<10)
	h.count(end.Add(-30*time.Minute), 5, 0)
	h.count(end.Add(-2*time.Hour), 7, 0) // out of the hour's window, in the day's
	got := h.read(end)
	require.Equal(t, int64(6), got.Hour[29].Delivered, "the late event in its minute")
	for _, s := range got.Hour {
		require.LessOrEqual(t, s.Delivered, int64(6))
	}
	h.count(end.Add(-25*time.Hour), 9, 0) // out of both
	require.Len(t, h.hour, hourBuckets)
	require.Len(t, h.day, dayBuckets)
}

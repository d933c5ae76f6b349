package delivery

import (
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/store"
)

// TestCreatedAtFromIngestJSON: the scan finds created_at in the JSON ingest writes, without
// decoding it, including when a custom message mentions created_at.
func TestCreatedAtFromIngestJSON(t *testing.T) {
	cat, err := event.Load("")
	if err != nil {
		t.Fatal(err)
	}
	id := int64(5)
	in := event.Input{EventType: "user_created", EntityType: "User", EntityID: &id, EntityPath: "alice",
		Details: []byte(`{"custom_message":"\"created_at\":\"1999-01-01T00:00:00Z\""}`), CreatedAt: "2026-03-07T09:05:01.234Z"}
	ev, errs := event.Normalize(&in, cat, time.Now())
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	got := createdAt(ev.AppendJSON(nil))
	if want := time.Date(2026, 3, 7, 9, 5, 1, 234e6, time.UTC); !got.Equal(want) {
		t.Errorf("createdAt = %v, want %v", got, want)
	}
	if !createdAt([]byte(`{}`)).IsZero() {
		t.Error("no created_at: zero time")
	}
}

// TestCircuitProbesOnSchedule: after CircuitAfter failures in a row the circuit opens; probes
// go one at a time after 1 s, 2 s, 4 s, then every 5 s; a request waits while a probe is out;
// the first success closes the circuit and lets everyone go. Under synctest: no real waiting.
func TestCircuitProbesOnSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := Options{}
		o.defaults()
		st := &state{id: 1}
		ctx := t.Context()
		wait := func(w func() bool) bool { return w() } // no places to give up: wait in place
		fail := &destination.Failure{Kind: destination.Retryable, StatusCode: 503, Message: "503 Service Unavailable"}
		for range o.CircuitAfter {
			probe, ok := st.admit(ctx, time.Now, wait)
			require.True(t, ok)
			require.False(t, probe, "the circuit is closed: no probe")
			st.failed(fail, 1, 0, time.Now(), probe, o)
		}
		require.True(t, st.isOpen())
		require.Equal(t, StatusCircuitOpen, st.snapshot().Status)
		for _, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second} {
			start := time.Now()
			probe, ok := st.admit(ctx, time.Now, wait)
			require.True(t, ok && probe)
			require.Equal(t, want, time.Since(start), "the probe's wait")
			st.failed(fail, 1, 0, time.Now(), probe, o)
		}
		start := time.Now()
		probe, _ := st.admit(ctx, time.Now, wait)
		require.True(t, probe)
		waiting := make(chan time.Duration)
		go func() {
			_, ok := st.admit(ctx, time.Now, wait)
			require.True(t, ok)
			waiting <- time.Since(start)
		}()
		time.Sleep(3 * time.Second) // the probe takes 3 s (fake time); the other request waits
		synctest.Wait()
		st.succeeded(1, 3*time.Second, time.Now())
		require.Equal(t, 8*time.Second, <-waiting, "released by the probe's success")
		require.False(t, st.isOpen())
		require.Equal(t, StatusHealthy, st.snapshot().Status)
	})
}

// TestMetricsByCategoryAndOldestPending: a request's events count as delivered or failed under
// its category; the oldest pending event's time follows the backlog last read, 0 when empty.
func TestMetricsByCategoryAndOldestPending(t *testing.T) {
	t.Parallel()
	m := NewMetrics(prometheus.NewRegistry())
	m.observe("http", time.Millisecond, 3, nil)
	m.observe("http", time.Millisecond, 2, errors.New("503"))
	m.observe("aws", time.Millisecond, 1, nil)
	require.Equal(t, 3.0, testutil.ToFloat64(m.byCategory.WithLabelValues("http", "delivered")))
	require.Equal(t, 2.0, testutil.ToFloat64(m.byCategory.WithLabelValues("http", "failed")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.byCategory.WithLabelValues("aws", "delivered")))

	st := &state{id: 7}
	m.setSource(func() []*state { return []*state{st} }, func() (int64, int64) { return 0, 0 })
	oldestOf := func() float64 {
		ch := make(chan prometheus.Metric, 10)
		st.collect(ch)
		close(ch)
		for pm := range ch {
			if strings.Contains(pm.Desc().String(), "oldest_pending") {
				var out dto.Metric
				require.NoError(t, pm.Write(&out))
				return out.GetGauge().GetValue()
			}
		}
		t.Fatal("no oldest pending series")
		return 0
	}
	oldest := time.Date(2026, 3, 7, 9, 5, 1, 250e6, time.UTC)
	st.setPending(4, oldest)
	require.Equal(t, float64(oldest.UnixMilli())/1000, oldestOf())
	st.setPending(0, time.Time{})
	require.Equal(t, 0.0, oldestOf())
}

// BenchmarkPositionsSnapshot: a snapshot of the positions of 100,000 destinations at the head
// of the log, none with anything outstanding, taken every PositionEvery.
func BenchmarkPositionsSnapshot(b *testing.B) {
	defer func(c bool) { checkBehind = c }(checkBehind)
	checkBehind = false // the test's check walks every destination
	e := New(Config{})
	e.positions = &positions{saved: map[store.DeliveryPositionKey]store.DeliveryPosition{}}
	for k := range e.owned {
		e.owned[k] = true
	}
	e.head.mu.Lock()
	for id := range int64(100_000) {
		d := &dest{e: e, id: id + 1, part: partition(id + 1), st: &state{id: id + 1}}
		e.dests[d.id] = d
		e.head.addLocked(d, 0)
	}
	e.head.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.snapshotLocked()
	for b.Loop() {
		if s := e.snapshotLocked(); len(s.rows) != Partitions {
			b.Fatalf("%d rows, want the %d bases", len(s.rows), Partitions)
		}
	}
}

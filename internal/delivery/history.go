package delivery

import (
	"math"
	"slices"
	"time"
)

// History is a destination's recent deliveries as this process saw them, for plots: per
// minute over the last hour and per 15 minutes over the last day, oldest bucket first, the
// last one holding now. It is kept in memory only: each process has its own (a cluster's
// replicas each the part they delivered), and a restart begins it empty.
type History struct {
	Hour []Sample // 60 one-minute buckets
	Day  []Sample // 96 quarter-hour buckets
}

// Sample is one bucket of a History.
type Sample struct {
	Start time.Time
	// Delivered and Failed count events in requests that succeeded and failed (each retry
	// counts again), as Status's counters do.
	Delivered, Failed int64
	// Pending is the most events seen waiting during the bucket, and OldestAge the longest
	// an event had waited then (both read when the status is read: by the stream page, the
	// APIs, or every second by a cluster's board). Pending is -1 when nobody looked.
	Pending   int64
	OldestAge time.Duration
}

// The rings' sizes and steps.
const (
	hourBuckets = 60
	dayBuckets  = 96
	dayStep     = 15 * time.Minute
)

// history is the buckets behind History, made at a destination's first delivery or failure,
// so that destinations that only exist cost nothing. Only buckets that saw something are kept
// (in time order, those of the window): a destination that received one event today holds two
// buckets, one busy all day at most 156 (about 3 KiB). Guarded by its state's mu.
type history struct {
	hour, day []bucket
}

// bucket is one bucket of a history. unit is its start in steps since the Unix epoch; pending
// is the most seen plus one (0: none seen); age is in seconds. Counters saturate rather than
// wrap.
type bucket struct {
	unit                uint32
	delivered, failed   uint32
	pending, ageSeconds uint32
}

// slot returns the bucket of *r (of step, keeping n) holding t, added when it is new; nil for a
// time already out of the window.
func slot(r *[]bucket, n int, step time.Duration, t time.Time) *bucket {
	u := uint32(t.Unix() / int64(step/time.Second))
	b := *r
	i := len(b)
	for i > 0 && b[i-1].unit > u { // times come in order but for a rare late one
		i--
	}
	if i > 0 && b[i-1].unit == u {
		return &b[i-1]
	}
	if len(b) > 0 && u+uint32(n) <= b[len(b)-1].unit {
		return nil // older than the window
	}
	b = slices.Insert(b, i, bucket{unit: u})
	drop := 0
	for drop < len(b) && b[drop].unit+uint32(n) <= b[len(b)-1].unit {
		drop++
	}
	if drop > 0 {
		i -= drop
		b = slices.Delete(b, 0, drop)
	}
	*r = b
	return &b[i]
}

// slots returns the hour's and the day's buckets holding t (nil when out of the window).
func (h *history) slots(t time.Time) []*bucket {
	var out []*bucket
	if b := slot(&h.hour, hourBuckets, time.Minute, t); b != nil {
		out = append(out, b)
	}
	if b := slot(&h.day, dayBuckets, dayStep, t); b != nil {
		out = append(out, b)
	}
	return out
}

func sat(v uint32, n int64) uint32 {
	return uint32(min(int64(v)+max(n, 0), math.MaxUint32))
}

// count adds delivered and failed events at t.
func (h *history) count(t time.Time, delivered, failed int) {
	for _, b := range h.slots(t) {
		b.delivered = sat(b.delivered, int64(delivered))
		b.failed = sat(b.failed, int64(failed))
	}
}

// backlog records a backlog of pending events, the oldest stored at oldest, seen at t.
func (h *history) backlog(t time.Time, pending int64, oldest time.Time) {
	if pending < 0 {
		return
	}
	age := uint32(0)
	if pending > 0 && !oldest.IsZero() && t.After(oldest) {
		age = uint32(min(int64(t.Sub(oldest)/time.Second), math.MaxUint32))
	}
	for _, b := range h.slots(t) {
		b.pending = max(b.pending, sat(0, pending+1))
		b.ageSeconds = max(b.ageSeconds, age)
	}
}

// samples reads buckets b (of step, in time order) as the n samples up to the one holding now.
func samples(b []bucket, n int, step time.Duration, now time.Time) []Sample {
	out := make([]Sample, n)
	last := now.UTC().Truncate(step)
	j := 0
	for i := range out {
		start := last.Add(-time.Duration(n-1-i) * step)
		s := Sample{Start: start, Pending: -1}
		u := uint32(start.Unix() / int64(step/time.Second))
		for j < len(b) && b[j].unit < u {
			j++
		}
		if j < len(b) && b[j].unit == u {
			s.Delivered, s.Failed = int64(b[j].delivered), int64(b[j].failed)
			s.Pending = int64(b[j].pending) - 1
			s.OldestAge = time.Duration(b[j].ageSeconds) * time.Second
		}
		out[i] = s
	}
	return out
}

// read returns the history up to now. h may be nil.
func (h *history) read(now time.Time) History {
	var hour, day []bucket
	if h != nil {
		hour, day = h.hour, h.day
	}
	return History{Hour: samples(hour, hourBuckets, time.Minute, now), Day: samples(day, dayBuckets, dayStep, now)}
}

// record counts an outcome in the state's history, made at the first. Called with mu held.
func (s *state) record(now time.Time, delivered, failed int) {
	if s.hist == nil {
		s.hist = new(history)
	}
	s.hist.count(now, delivered, failed)
}

// noteBacklog records a backlog read for the status in the history, when the destination has
// one (it delivered or failed something).
func (s *state) noteBacklog(now time.Time, pending int64, oldest time.Time) {
	s.mu.Lock()
	if s.hist != nil {
		s.hist.backlog(now, pending, oldest)
	}
	s.mu.Unlock()
}

func (s *state) history(now time.Time) History {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hist.read(now)
}

// History returns destination id's recent deliveries, failures and backlog as this process
// saw them, up to the engine's now. A destination this process never delivered to has empty
// buckets. Safe for concurrent use.
func (e *Engine) History(id int64) History {
	now := e.env.Now()
	e.mu.Lock()
	var st *state
	if x, ok := e.dests[id]; ok {
		st = x.st
	} else {
		st = e.states[id] // not stateLocked: reading the history must not make a state
	}
	e.mu.Unlock()
	if st == nil {
		return (*history)(nil).read(now)
	}
	return st.history(now)
}

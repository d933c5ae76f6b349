package delivery

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditstream/auditstream/internal/destination"
)

// Status of a destination, as its owners see it.
const (
	StatusHealthy     = "healthy"      // the last request succeeded (or none was needed yet)
	StatusFailing     = "failing"      // the last requests failed (retried, or dead-lettered when refused for good)
	StatusCircuitOpen = "circuit_open" // failed CircuitAfter times in a row: one probe at a time
	StatusPaused      = "paused"       // inactive
	StatusError       = "error"        // cannot be delivered to at all (see LastError)
)

// LastError is the most recent failure.
type LastError struct {
	At         time.Time `json:"at"`
	StatusCode int       `json:"statusCode,omitempty"`
	Message    string    `json:"message"`
}

// state is one destination's delivery state and its circuit. It outlives workers.
type state struct {
	id      int64
	metrics *Metrics
	dm      *destMetrics // made at the first delivery: a destination that never receives has no series

	mu             sync.Mutex
	paused         bool
	delivering     bool // a worker of this process delivers it now
	setupErr       error
	consecutive    int // retryable failures in a row: they open the circuit
	failing        int // failures of any kind in a row: they make the status "failing"
	open           bool
	probing        bool
	nextProbe      time.Time
	probeWait      time.Duration
	lastSuccess    time.Time
	lastErr        *LastError
	delivered      int64
	failures       int64
	deadLetters    int64
	hist           *history      // made at the first delivery or failure (history.go)
	circuitChanged chan struct{} // closed when the circuit closes or a probe slot frees
	recovered      chan struct{} // closed at the next success, to end the backoffs waiting for it
}

func (s *state) setPaused(p bool) {
	s.mu.Lock()
	s.paused = p
	s.mu.Unlock()
}

func (s *state) setError(err error) {
	s.mu.Lock()
	s.setupErr = err
	s.mu.Unlock()
}

// wake tells requests waiting on the circuit to look again. Called with mu held.
func (s *state) wake() {
	if s.circuitChanged != nil {
		close(s.circuitChanged)
		s.circuitChanged = nil
	}
}

func (s *state) changed() chan struct{} {
	if s.circuitChanged == nil {
		s.circuitChanged = make(chan struct{})
	}
	return s.circuitChanged
}

// admit lets a request go: always while the circuit is closed; when it is open, one request
// at a time once the probe is due (probe is true then). false when ctx ended.
func (s *state) admit(ctx context.Context, now func() time.Time, o Options) (probe, ok bool) {
	for {
		s.mu.Lock()
		if !s.open {
			s.mu.Unlock()
			return false, true
		}
		if !s.probing && !now().Before(s.nextProbe) {
			s.probing = true
			s.mu.Unlock()
			return true, true
		}
		wait, ch := max(s.nextProbe.Sub(now()), 10*time.Millisecond), s.changed()
		s.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false, false
		case <-ch:
		case <-t.C:
		}
		t.Stop()
	}
}

func (s *state) isOpen() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open
}

// sleepUnlessRecovered waits d, or less when a request succeeds meanwhile (another request's
// success means the destination is back: there is no point in waiting out a backoff). false
// when ctx ended.
func (s *state) sleepUnlessRecovered(ctx context.Context, d time.Duration) bool {
	s.mu.Lock()
	ch := s.recovered
	if ch == nil {
		ch = make(chan struct{})
		s.recovered = ch
	}
	s.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-ch:
	}
	return true
}

// release gives back a probe slot that was not used to completion.
func (s *state) release(probe bool) {
	if !probe {
		return
	}
	s.mu.Lock()
	s.probing = false
	s.wake()
	s.mu.Unlock()
}

// setDelivering records whether a worker of this process is delivering the destination now
// (an ordered destination's other replicas wait for its lease).
func (s *state) setDelivering(d bool) {
	s.mu.Lock()
	s.delivering = d
	s.mu.Unlock()
}

func (s *state) succeeded(n int, took time.Duration, now time.Time) {
	s.mu.Lock()
	s.consecutive, s.failing = 0, 0
	s.lastSuccess = now
	if s.recovered != nil {
		close(s.recovered)
		s.recovered = nil
	}
	s.delivered += int64(n)
	s.record(now, n, 0)
	if s.open {
		s.open, s.probing, s.probeWait = false, false, 0
		s.instruments().circuit.Set(0)
	}
	s.wake()
	c := s.instruments().delivered
	s.mu.Unlock()
	c.Add(float64(n))
}

func (s *state) failed(f *destination.Failure, n int, took time.Duration, now time.Time, probe bool, o Options) {
	s.mu.Lock()
	s.failures += int64(n)
	s.record(now, 0, n)
	s.lastErr = &LastError{At: now, StatusCode: f.StatusCode, Message: f.Message}
	s.failing++
	if f.Kind != destination.Permanent { // one refused event must not stop the others
		s.consecutive++
	}
	switch {
	case s.open && probe:
		s.probing = false
		s.probeWait = min(max(s.probeWait*2, o.ProbeMin), o.ProbeMax)
		s.nextProbe = now.Add(s.probeWait)
	case !s.open && s.consecutive >= o.CircuitAfter:
		s.open, s.probeWait = true, o.ProbeMin
		s.nextProbe = now.Add(o.ProbeMin)
		s.instruments().circuit.Set(1)
	}
	s.wake()
	m := s.instruments()
	c := m.counter(&m.failed, s.metrics.failed)
	s.mu.Unlock()
	c.Add(float64(n))
}

// noteLoss records events the destination can no longer receive as its last error.
func (s *state) noteLoss(now time.Time, msg string) {
	s.mu.Lock()
	s.lastErr = &LastError{At: now, Message: msg}
	s.mu.Unlock()
}

// deadLettered counts n more dead letters and returns the total since the process started.
func (s *state) deadLettered(n int) int64 {
	s.mu.Lock()
	s.deadLetters += int64(n)
	total := s.deadLetters
	m := s.instruments()
	c := m.counter(&m.deadLettered, s.metrics.deadLettered)
	s.mu.Unlock()
	c.Add(float64(n))
	return total
}

// instruments returns the destination's metrics, made at first use. Called with mu held.
func (s *state) instruments() *destMetrics {
	if s.dm == nil {
		s.dm = s.metrics.destination(s.id)
	}
	return s.dm
}

// setPending exports the backlog last read.
func (s *state) setPending(n int64) {
	s.mu.Lock()
	m := s.instruments()
	if m.pending == nil {
		m.pending = s.metrics.pending.WithLabelValues(m.label)
	}
	g := m.pending
	s.mu.Unlock()
	g.Set(float64(n))
}

func (s *state) lastErrorMessage() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastErr == nil {
		return "none"
	}
	return s.lastErr.Message
}

// Status is what owners see of a destination's delivery.
type Status struct {
	Status      string
	LastSuccess time.Time
	LastError   *LastError
	// Pending counts the events not yet delivered (or dead-lettered); OldestPending is when
	// the oldest of them was stored. Both come from the log; -1 and zero when it cannot say.
	Pending       int64
	OldestPending time.Time
	// Since each process started: this one, and the other replicas sharing a board.
	Delivered, Failed, DeadLettered int64

	delivering bool // a worker of this process delivers the destination now
}

func (s *state) snapshot() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{LastSuccess: s.lastSuccess, LastError: s.lastErr, Delivered: s.delivered, Failed: s.failures, DeadLettered: s.deadLetters, Pending: -1,
		delivering: s.delivering}
	switch {
	case s.paused:
		st.Status = StatusPaused
	case s.setupErr != nil:
		st.Status = StatusError
		st.LastError = &LastError{Message: s.setupErr.Error()}
	case s.open:
		st.Status = StatusCircuitOpen
	case s.failing > 0:
		st.Status = StatusFailing
	default:
		st.Status = StatusHealthy
	}
	return st
}

// Metrics are the engine's Prometheus instruments, labelled by destination id.
type Metrics struct {
	delivered, failed, deadLettered *prometheus.CounterVec
	request                         *prometheus.HistogramVec
	circuit, pending                *prometheus.GaugeVec
}

// NewMetrics registers the engine's instruments.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditstream_delivery_events_delivered_total",
			Help: "Events a destination accepted."}, []string{"destination"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditstream_delivery_events_failed_total",
			Help: "Events in requests that failed (each retry counts again)."}, []string{"destination"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditstream_delivery_events_dead_lettered_total",
			Help: "Events moved to a destination's dead letters."}, []string{"destination"}),
		// By category, not destination: a histogram per destination is 20 series each, too
		// many with thousands of destinations.
		request: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "auditstream_delivery_request_duration_seconds",
			Help: "Time of one request to a destination, by category.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"category"}),
		circuit: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "auditstream_delivery_circuit_open",
			Help: "1 while a destination's circuit is open."}, []string{"destination"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "auditstream_delivery_pending_events",
			Help: "Events not yet delivered to a destination, as of the last status read."}, []string{"destination"}),
	}
	reg.MustRegister(m.delivered, m.failed, m.deadLettered, m.request, m.circuit, m.pending)
	return m
}

// destMetrics are one destination's instruments. delivered and circuit are made with it (at
// its first delivery); the others at their first use: each series costs about a kilobyte, and
// most of 100,000 destinations never fail.
type destMetrics struct {
	label                           string
	delivered, failed, deadLettered prometheus.Counter
	circuit, pending                prometheus.Gauge
}

// counter returns *c, made from vec at first use.
func (m *destMetrics) counter(c *prometheus.Counter, vec *prometheus.CounterVec) prometheus.Counter {
	if *c == nil {
		*c = vec.WithLabelValues(m.label)
	}
	return *c
}

// observe records one request's time for its category.
func (m *Metrics) observe(category string, took time.Duration) {
	m.request.WithLabelValues(category).Observe(took.Seconds())
}

func (m *Metrics) destination(id int64) *destMetrics {
	l := strconv.FormatInt(id, 10)
	return &destMetrics{label: l, delivered: m.delivered.WithLabelValues(l), circuit: m.circuit.WithLabelValues(l)}
}

func (m *Metrics) forget(id int64) {
	l := strconv.FormatInt(id, 10)
	for _, v := range []*prometheus.CounterVec{m.delivered, m.failed, m.deadLettered} {
		v.DeleteLabelValues(l)
	}
	m.circuit.DeleteLabelValues(l)
	m.pending.DeleteLabelValues(l)
}

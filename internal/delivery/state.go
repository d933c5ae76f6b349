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
	id int64

	mu             sync.Mutex
	exported       bool // delivered or failed once: it has series in /metrics
	pending        int64
	oldestPending  time.Time // of the backlog last read; zero when none
	pendingKnown   bool
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
// at a time once the probe is due (probe is true then), waiting meanwhile through idle. false
// when ctx ended or idle returned false.
func (s *state) admit(ctx context.Context, now func() time.Time, idle func(wait func() bool) bool) (probe, ok bool) {
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
		if !idle(func() bool {
			t := time.NewTimer(wait)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return false
			case <-ch:
			case <-t.C:
			}
			return true
		}) {
			return false, false
		}
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
	}
	s.exported = true
	s.wake()
	s.mu.Unlock()
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
	}
	s.exported = true
	s.wake()
	s.mu.Unlock()
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
	s.exported = true
	total := s.deadLetters
	s.mu.Unlock()
	return total
}

// setPending exports the backlog last read and when its oldest event was written (zero: none).
func (s *state) setPending(n int64, oldest time.Time) {
	s.mu.Lock()
	s.pending, s.oldestPending, s.pendingKnown = n, oldest, true
	s.mu.Unlock()
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

// Metrics are the engine's Prometheus instruments. The series of each destination are made
// when /metrics is scraped, from the counts its state keeps anyway: kept as Prometheus series,
// they cost about a kilobyte each for as long as the process runs (85 MB with 100,000
// destinations). A destination has its delivered and circuit series once it delivered or
// failed, its failed and dead-lettered series once they are not zero, and its pending series
// once its backlog was read (a status).
type Metrics struct {
	request    *prometheus.HistogramVec
	byCategory *prometheus.CounterVec
	// Events read from the log by the head and by the catch-up readers: what the catch-up
	// readers read again is the cost of destinations falling behind.
	headReads, catchUpReads prometheus.Counter
	// Times a reader waited for the destinations that keep up to take their events
	// (Engine.room): a burst larger than Options.ReadAheadBytes.
	readerWaits prometheus.Counter

	mu     sync.Mutex
	states func() []*state // the engine's destinations; set by New
	// queued is the bytes of events in the destinations' queues: those of the destinations
	// that are members of a reader, and all; set by New.
	queued func() (reading, all int64)
}

var (
	deliveredDesc = prometheus.NewDesc("auditstream_delivery_events_delivered_total",
		"Events a destination accepted.", []string{"destination"}, nil)
	failedDesc = prometheus.NewDesc("auditstream_delivery_events_failed_total",
		"Events in requests that failed (each retry counts again).", []string{"destination"}, nil)
	deadLetteredDesc = prometheus.NewDesc("auditstream_delivery_events_dead_lettered_total",
		"Events moved to a destination's dead letters.", []string{"destination"}, nil)
	circuitDesc = prometheus.NewDesc("auditstream_delivery_circuit_open",
		"1 while a destination's circuit is open.", []string{"destination"}, nil)
	pendingDesc = prometheus.NewDesc("auditstream_delivery_pending_events",
		"Events not yet delivered to a destination, as of the last status read.", []string{"destination"}, nil)
	queuedDesc = prometheus.NewDesc("auditstream_delivery_queued_bytes",
		"Bytes of events in the destinations' queues, of those keeping up (members of a reader: the readers wait for them past 64 MiB) and of those behind.", []string{"destinations"}, nil)
	oldestDesc = prometheus.NewDesc("auditstream_delivery_oldest_pending_timestamp_seconds",
		"When the oldest event not yet delivered to a destination was written (Unix seconds; 0 when none), as of the last status read.", []string{"destination"}, nil)
)

// NewMetrics registers the engine's instruments.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		// By category, not destination: a histogram per destination is 20 series each, too
		// many with thousands of destinations.
		request: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "auditstream_delivery_request_duration_seconds",
			Help: "Time of one request to a destination, by category.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"category"}),
		// By category and outcome, for dashboards and alerts that cannot sum thousands of
		// destinations' series: a handful of series in all.
		byCategory: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditstream_delivery_category_events_total",
			Help: "Events in requests to destinations, by category and outcome (delivered, failed: each retry counts again)."}, []string{"category", "outcome"}),
	}
	reads := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditstream_delivery_log_reads_total",
		Help: "Events delivery read from the log, by reader: the head, which every destination that keeps up shares, or the catch-up readers."}, []string{"reader"})
	m.headReads, m.catchUpReads = reads.WithLabelValues("head"), reads.WithLabelValues("catch_up")
	m.readerWaits = prometheus.NewCounter(prometheus.CounterOpts{Name: "auditstream_delivery_reader_waits_total",
		Help: "Times a delivery reader waited for the destinations keeping up to take the events queued for them, which were over the read-ahead bound (64 MiB): a burst."})
	reg.MustRegister(m.request, m.byCategory, reads, m.readerWaits, m)
	return m
}

// Describe is prometheus.Collector's.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{deliveredDesc, failedDesc, deadLetteredDesc, circuitDesc, pendingDesc, oldestDesc, queuedDesc} {
		ch <- d
	}
}

// Collect is prometheus.Collector's: the series of every destination of the engine.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	states, queued := m.states, m.queued
	m.mu.Unlock()
	if states == nil {
		return
	}
	reading, all := queued()
	ch <- prometheus.MustNewConstMetric(queuedDesc, prometheus.GaugeValue, float64(reading), "keeping_up")
	ch <- prometheus.MustNewConstMetric(queuedDesc, prometheus.GaugeValue, float64(max(all-reading, 0)), "behind") // two loads: may cross
	for _, s := range states() {
		s.collect(ch)
	}
}

func (m *Metrics) setSource(states func() []*state, queued func() (reading, all int64)) {
	m.mu.Lock()
	m.states, m.queued = states, queued
	m.mu.Unlock()
}

// collect sends the destination's series.
func (s *state) collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	exported, delivered, failed, dead, open := s.exported, s.delivered, s.failures, s.deadLetters, s.open
	pending, oldest, pendingKnown := s.pending, s.oldestPending, s.pendingKnown
	s.mu.Unlock()
	if !exported && !pendingKnown {
		return
	}
	l := strconv.FormatInt(s.id, 10)
	if pendingKnown {
		ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(pending), l)
		at := 0.0
		if !oldest.IsZero() && pending > 0 {
			at = float64(oldest.UnixMilli()) / 1000
		}
		ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, at, l)
	}
	if !exported {
		return
	}
	circuit := 0.0
	if open {
		circuit = 1
	}
	ch <- prometheus.MustNewConstMetric(deliveredDesc, prometheus.CounterValue, float64(delivered), l)
	ch <- prometheus.MustNewConstMetric(circuitDesc, prometheus.GaugeValue, circuit, l)
	if failed > 0 {
		ch <- prometheus.MustNewConstMetric(failedDesc, prometheus.CounterValue, float64(failed), l)
	}
	if dead > 0 {
		ch <- prometheus.MustNewConstMetric(deadLetteredDesc, prometheus.CounterValue, float64(dead), l)
	}
}

// observe records one request's time for its category, and its n events as delivered or
// failed. A request cut by shutdown is neither.
func (m *Metrics) observe(category string, took time.Duration, n int, err error) {
	m.request.WithLabelValues(category).Observe(took.Seconds())
	outcome := "delivered"
	if err != nil {
		outcome = "failed"
	}
	m.byCategory.WithLabelValues(category, outcome).Add(float64(n))
}

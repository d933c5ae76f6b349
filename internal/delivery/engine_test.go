package delivery_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/delivery"
	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/destination/httpdest"
	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/eventlog"
	"github.com/auditstream/auditstream/internal/namespace"
	"github.com/auditstream/auditstream/internal/netguard"
	"github.com/auditstream/auditstream/internal/poll"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/store/sqlite"
)

// rig is an engine on a real embedded log, a real SQLite store and real HTTP receivers.
type rig struct {
	t       *testing.T
	log     *eventlog.Log
	st      store.Store
	cat     *event.Catalog
	engine  *delivery.Engine
	cancel  context.CancelFunc
	stopped chan struct{}
	opts    delivery.Options
	ns      *namespace.Resolver
	groups  int                  // made by groupDestination
	metrics *prometheus.Registry // the engine's
	// factories are more categories' senders for the next start, beside "http", and
	// checkpointKeepers the categories that keep every checkpoint.
	factories         map[string]destination.Factory
	checkpointKeepers map[string]bool
}

func newRig(t *testing.T, opts delivery.Options) *rig {
	t.Helper()
	return newRigListening(t, opts, "")
}

// newRigListening is newRig with the embedded NATS server also listening on listen (when not
// empty), for a test that talks to the log as another program would.
func newRigListening(t *testing.T, opts delivery.Options, listen string) *rig {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	l, err := eventlog.Open(ctx, eventlog.Options{DataDir: dir, MaxAge: time.Hour, DuplicateWindow: time.Minute, Listen: listen, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(l.Close)
	st, err := sqlite.Open(ctx, dir+"/db.sqlite")
	require.NoError(t, err)
	require.NoError(t, st.Migrate(ctx))
	t.Cleanup(func() { st.Close() })
	cat, err := event.Load("")
	require.NoError(t, err)
	r := &rig{t: t, log: l, st: st, cat: cat, opts: opts, ns: namespace.NewResolver(st, nil)}
	r.start()
	t.Cleanup(r.stop)
	return r
}

// open is the engine's Opener: the test stores secrets unsealed.
func open(d store.Destination) (destination.Settings, error) {
	s := destination.Settings{ID: d.ID, Category: d.Category, Config: d.Config, SecretToken: d.SecretToken, SigningSecret: d.SigningSecret}
	for _, h := range d.Headers {
		s.Headers = append(s.Headers, destination.Header{Name: h.Name, Value: h.Value, Active: h.Active})
	}
	return s, nil
}

func (r *rig) start() {
	r.metrics = prometheus.NewRegistry()
	r.engine = delivery.New(delivery.Config{Log: r.log, Store: r.st, Namespaces: r.ns, Open: open, Catalog: r.cat,
		Factories: r.allFactories(), CheckpointKeepers: r.checkpointKeepers,
		Env:    destination.Env{HTTPClient: netguard.Policy{AllowPrivate: true}.HTTPClient()},
		Logger: slog.New(slog.NewTextHandler(testWriter{r.t}, &slog.HandlerOptions{Level: slog.LevelDebug})), Options: r.opts,
		Metrics: delivery.NewMetrics(r.metrics)})
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.stopped = cancel, make(chan struct{})
	go func() { defer close(r.stopped); _ = r.engine.Run(ctx) }()
}

func (r *rig) stop() {
	if r.cancel != nil {
		r.cancel()
		<-r.stopped
		r.cancel = nil
	}
}

// publish appends events of the given types for user 5 (instance subjects) and returns ids.
func (r *rig) publish(types ...string) []int64 {
	r.t.Helper()
	msgs := make([]eventlog.Message, len(types))
	for i, typ := range types {
		msgs[i] = eventlog.Message{Subject: eventlog.Subject("user", typ),
			Data: fmt.Appendf(nil, `{"author_id":1,"entity_id":5,"entity_type":"User","entity_path":"alice","event_type":%q,"created_at":%q}`,
				typ, time.Now().UTC().Format(time.RFC3339Nano))}
	}
	ids, err := r.log.Publish(context.Background(), msgs)
	require.NoError(r.t, err)
	return ids
}

// destination stores an active instance http destination to url and lets the engine know.
func (r *rig) destination(url string, mutate ...func(*store.DestinationCreateParams)) store.Destination {
	r.t.Helper()
	p := store.DestinationCreateParams{Scope: store.ScopeInstance, Name: "d-" + url, Category: "http", Active: true,
		Config: fmt.Appendf(nil, `{"url":%q}`, url), SecretToken: "verification-token-1234", SigningSecret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		CreatedAt: time.Now().Add(-time.Second)}
	for _, m := range mutate {
		m(&p)
	}
	d, err := r.st.DestinationCreate(context.Background(), p)
	require.NoError(r.t, err)
	r.engine.Notify()
	r.waitConsumer(d.ID)
	return d
}

// waitConsumer waits until the engine has a consumer for the destination.
func (r *rig) waitConsumer(id int64) {
	r.t.Helper()
	poll.Until(r.t, 10*time.Second, func() error {
		d, err := r.st.DestinationGet(context.Background(), id)
		if err != nil {
			return err
		}
		if st := r.engine.Status(context.Background(), d); st.Pending < 0 {
			return fmt.Errorf("no consumer yet: %+v", st)
		}
		return nil
	})
}

// receiver is a real HTTP endpoint that records what it accepts and answers as told.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	got      []int64 // webhook-id of accepted requests, in arrival order (batches: every event id)
	requests int
	answer   func(r *http.Request, body []byte) int
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{answer: func(*http.Request, []byte) int { return http.StatusOK }}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.requests++
		answer := rc.answer
		rc.mu.Unlock()
		code := answer(r, body)
		if code == 0 { // drop the connection: a network error
			hj, _ := w.(http.Hijacker)
			conn, _, _ := hj.Hijack()
			conn.Close()
			return
		}
		if code >= 200 && code < 300 {
			rc.mu.Lock()
			rc.got = append(rc.got, ids(body)...)
			rc.mu.Unlock()
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) setAnswer(f func(r *http.Request, body []byte) int) {
	rc.mu.Lock()
	rc.answer = f
	rc.mu.Unlock()
}

func (rc *receiver) received() []int64 {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

// ids reads the ids of a delivered body: one event or a batch.
func ids(body []byte) []int64 {
	var one struct {
		ID json.Number `json:"id"`
	}
	if json.Unmarshal(body, &one) == nil && one.ID != "" {
		n, _ := strconv.ParseInt(one.ID.String(), 10, 64)
		return []int64{n}
	}
	var many []struct {
		ID json.Number `json:"id"`
	}
	_ = json.Unmarshal(body, &many)
	var out []int64
	for _, e := range many {
		n, _ := strconv.ParseInt(e.ID.String(), 10, 64)
		out = append(out, n)
	}
	return out
}

// waitReceived polls until the receiver has every id in want (duplicates allowed).
func (rc *receiver) waitReceived(t *testing.T, want []int64, timeout time.Duration) {
	t.Helper()
	poll.Until(t, timeout, func() error {
		got := rc.received()
		for _, id := range want {
			if !slices.Contains(got, id) {
				return fmt.Errorf("event %d not received (%d received)", id, len(got))
			}
		}
		return nil
	})
}

func TestDeliversWhatTheFilterTakes(t *testing.T) {
	r := newRig(t, delivery.Options{})
	rc := newReceiver(t)
	d := r.destination(rc.URL, func(p *store.DestinationCreateParams) { p.EventTypes = []string{"user_created"} })
	created := r.publish("user_created", "user_blocked", "user_created")
	rc.waitReceived(t, []int64{created[0], created[2]}, 10*time.Second)
	require.NotContains(t, rc.received(), created[1], "filtered out")
	poll.Until(t, 5*time.Second, func() error {
		if st := r.engine.Status(context.Background(), d); st.Pending != 0 || st.Status != delivery.StatusHealthy || st.Delivered != 2 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
}

// TestNewDestinationStartsAtItsCreation: a destination created while the shared reader is still
// reading events stored before it gets none of them (the e2e tests' destinations once got the
// self-audit event of the destination created just before), only what comes after.
func TestNewDestinationStartsAtItsCreation(t *testing.T) {
	r := newRig(t, delivery.Options{})
	rc := newReceiver(t)
	types := make([]string, 5000)
	for i := range types {
		types[i] = "user_created"
	}
	before := r.publish(types...) // the head reads these while the destination starts
	created := time.Now().Add(time.Millisecond)
	r.destination(rc.URL, func(p *store.DestinationCreateParams) { p.CreatedAt = created })
	poll.Until(t, 5*time.Second, func() error { // the next event is stored after the creation
		if !time.Now().After(created) {
			return errors.New("not yet")
		}
		return nil
	})
	after := r.publish("user_blocked")
	rc.waitReceived(t, after, 10*time.Second)
	early := slices.DeleteFunc(rc.received(), func(id int64) bool { return id > before[len(before)-1] })
	require.Zero(t, len(early), "events stored before the destination was created, from %v", early[:min(len(early), 1)])
}

func TestOutageThenRecovery(t *testing.T) {
	r := newRig(t, delivery.Options{BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond, ProbeMin: 20 * time.Millisecond, ProbeMax: 100 * time.Millisecond})
	rc := newReceiver(t)
	var mu sync.Mutex
	mode := http.StatusServiceUnavailable
	rc.setAnswer(func(*http.Request, []byte) int { mu.Lock(); defer mu.Unlock(); return mode })
	d := r.destination(rc.URL)
	var want []int64
	for range 10 {
		want = append(want, r.publish(slices.Repeat([]string{"user_created"}, 50)...)...)
	}
	poll.Until(t, 10*time.Second, func() error {
		if st := r.engine.Status(context.Background(), d); st.Status != delivery.StatusCircuitOpen {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	st := r.engine.Status(context.Background(), d)
	require.EqualValues(t, 500, st.Pending, "every event waits in the log")
	require.Equal(t, http.StatusServiceUnavailable, st.LastError.StatusCode)
	// Dropped connections are failures too, and keep the circuit open.
	mu.Lock()
	mode = 0
	mu.Unlock()
	poll.Until(t, 10*time.Second, func() error {
		if st := r.engine.Status(context.Background(), d); st.LastError == nil || st.LastError.StatusCode != 0 || st.Status != delivery.StatusCircuitOpen {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	mu.Lock()
	mode = http.StatusOK
	mu.Unlock()
	rc.waitReceived(t, want, 20*time.Second)
	poll.Until(t, 5*time.Second, func() error {
		if st := r.engine.Status(context.Background(), d); st.Status != delivery.StatusHealthy || st.Pending != 0 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
}

func TestPermanentFailuresGoToDeadLettersAndRedeliver(t *testing.T) {
	r := newRig(t, delivery.Options{})
	rc := newReceiver(t)
	var mu sync.Mutex
	reject := true
	rc.setAnswer(func(req *http.Request, _ []byte) int {
		mu.Lock()
		defer mu.Unlock()
		if reject && req.Header.Get("X-Gitlab-Audit-Event-Type") == "user_blocked" {
			return http.StatusBadRequest
		}
		return http.StatusOK
	})
	d := r.destination(rc.URL)
	evs := r.publish("user_created", "user_blocked", "user_created", "user_blocked")
	rc.waitReceived(t, []int64{evs[0], evs[2]}, 10*time.Second)
	var dls []store.DeadLetter
	poll.Until(t, 10*time.Second, func() error {
		var err error
		dls, err = r.st.DeadLetterList(context.Background(), store.DeadLetterListParams{DestinationID: d.ID, Limit: 10})
		if err != nil || len(dls) != 2 {
			return fmt.Errorf("dead letters %d, %v", len(dls), err)
		}
		return nil
	})
	require.Equal(t, http.StatusBadRequest, dls[0].StatusCode)
	require.ElementsMatch(t, []int64{evs[1], evs[3]}, []int64{dls[0].EventID, dls[1].EventID})
	require.EqualValues(t, 0, r.engine.Status(context.Background(), d).Pending, "dead letters leave the log's backlog")

	res, err := r.engine.Redeliver(context.Background(), d, nil)
	require.NoError(t, err)
	require.Equal(t, delivery.RedeliverResult{Failed: 2, LastError: res.LastError}, res, "still refused")
	mu.Lock()
	reject = false
	mu.Unlock()
	res, err = r.engine.Redeliver(context.Background(), d, nil)
	require.NoError(t, err)
	require.Equal(t, 2, res.Delivered)
	rc.waitReceived(t, evs, time.Second)
	n, err := r.st.DeadLetterCount(context.Background(), d.ID)
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestSlowDestinationDoesNotHoldOthersBack(t *testing.T) {
	r := newRig(t, delivery.Options{})
	slow, fast := newReceiver(t), newReceiver(t)
	release := make(chan struct{})
	slow.setAnswer(func(*http.Request, []byte) int { <-release; return http.StatusOK })
	t.Cleanup(func() { close(release) })
	r.destination(slow.URL)
	r.destination(fast.URL)
	evs := r.publish(slices.Repeat([]string{"user_created"}, 200)...)
	fast.waitReceived(t, evs, 10*time.Second)
	require.Empty(t, slow.received())
}

// crashStore is a store whose position writes can be made to fail, as if the process died
// before it wrote them.
type crashStore struct {
	store.Store
	dead atomic.Bool
}

func (c *crashStore) DeliveryPositionSave(ctx context.Context, p store.DeliveryPositionSaveParams) error {
	if c.dead.Load() {
		return errors.New("the process is dead")
	}
	return c.Store.DeliveryPositionSave(ctx, p)
}

// TestCrashResumesFromWrittenPositions: the positions written while the engine ran (not at a
// clean stop) are enough to deliver every event after a crash, also for a destination created
// too shortly before it for any position of its own.
func TestCrashResumesFromWrittenPositions(t *testing.T) {
	r := newRig(t, delivery.Options{PositionEvery: 50 * time.Millisecond})
	cs := &crashStore{Store: r.st}
	r.st = cs
	r.stop()
	r.start()
	rc := newReceiver(t)
	r.destination(rc.URL)
	first := r.publish(slices.Repeat([]string{"user_created"}, 100)...)
	rc.waitReceived(t, first, 10*time.Second)
	hold := make(chan struct{})
	rc.setAnswer(func(*http.Request, []byte) int { <-hold; return http.StatusOK })
	inflight := r.publish(slices.Repeat([]string{"user_created"}, 10)...)
	poll.Until(t, 5*time.Second, func() error {
		ps, err := r.st.DeliveryPositionList(context.Background())
		if err != nil {
			return err
		}
		for _, p := range ps {
			if p.DestinationID != 0 && p.Position == inflight[0]-1 {
				return nil
			}
		}
		return fmt.Errorf("positions %+v", ps)
	})
	cs.dead.Store(true) // "crash": nothing is written from here on
	young := newReceiver(t)
	r.destination(young.URL)
	youngEvents := r.publish("user_created")
	young.waitReceived(t, youngEvents, 10*time.Second)
	close(hold)
	r.stop()
	cs.dead.Store(false)
	rc.setAnswer(func(*http.Request, []byte) int { return http.StatusOK })
	after := r.publish(slices.Repeat([]string{"user_created"}, 100)...) // while nobody delivers
	r.start()
	rc.waitReceived(t, append(inflight, after...), 10*time.Second)
	young.waitReceived(t, after, 10*time.Second)
}

func TestRestartResumesWithoutLoss(t *testing.T) {
	r := newRig(t, delivery.Options{})
	rc := newReceiver(t)
	r.destination(rc.URL)
	first := r.publish(slices.Repeat([]string{"user_created"}, 100)...)
	rc.waitReceived(t, first, 10*time.Second)
	r.stop()
	second := r.publish(slices.Repeat([]string{"user_created"}, 100)...) // while nobody delivers
	r.start()
	rc.waitReceived(t, second, 10*time.Second)
}

func TestPauseSemantics(t *testing.T) {
	r := newRig(t, delivery.Options{})
	gitlab, buffered := newReceiver(t), newReceiver(t)
	dg := r.destination(gitlab.URL)
	db := r.destination(buffered.URL, func(p *store.DestinationCreateParams) {
		p.Config = fmt.Appendf(nil, `{"url":%q,"delivery":{"concurrency":4,"ordered":false,"bufferWhilePaused":true}}`, buffered.URL)
	})
	setActive := func(d store.Destination, active bool) {
		_, err := r.st.DestinationUpdate(context.Background(), store.DestinationUpdateParams{ID: d.ID, Active: &active})
		require.NoError(t, err)
		r.engine.Notify()
	}
	setActive(dg, false)
	setActive(db, false)
	poll.Until(t, 5*time.Second, func() error {
		for _, d := range []store.Destination{dg, db} {
			cur, _ := r.st.DestinationGet(context.Background(), d.ID)
			if st := r.engine.Status(context.Background(), cur); st.Status != delivery.StatusPaused {
				return fmt.Errorf("%d: %+v", d.ID, st)
			}
		}
		return nil
	})
	during := r.publish("user_created", "user_created")
	// The store keeps the activation time to the millisecond: activate in a later one than the
	// events of the pause, or the new consumer's start may fall before them.
	published := time.Now()
	poll.Until(t, time.Second, func() error {
		if !time.Now().Truncate(time.Millisecond).After(published) {
			return fmt.Errorf("still in the millisecond of the pause's events")
		}
		return nil
	})
	setActive(dg, true)
	setActive(db, true)
	after := r.publish("user_created")
	gitlab.waitReceived(t, after, 10*time.Second)
	buffered.waitReceived(t, append(during, after...), 10*time.Second)
	require.NotContains(t, gitlab.received(), during[0], "GitLab's pause drops what happened meanwhile")
}

// TestSuccessfulAttemptsHaveTheirStatus: the delivery log's summary of successes has the
// status the receiver answered with, as the test event has.
func TestSuccessfulAttemptsHaveTheirStatus(t *testing.T) {
	r := newRig(t, delivery.Options{})
	rc := newReceiver(t)
	rc.setAnswer(func(*http.Request, []byte) int { return http.StatusNoContent })
	d := r.destination(rc.URL)
	evs := r.publish("user_created", "user_created")
	rc.waitReceived(t, evs, 10*time.Second)
	r.stop() // writes the summaries of the last window
	as, err := r.st.DeliveryAttemptList(context.Background(), d.ID, 10)
	require.NoError(t, err)
	require.NotEmpty(t, as)
	for _, a := range as {
		require.True(t, a.Success)
		require.Equal(t, http.StatusNoContent, a.StatusCode)
	}
}

// TestChangesWhileCatchingUpLoseNothing: a destination changed again and again while it waits
// for a catch-up reader, or reads with one, is enqueued more than once; it is read once, and
// every event reaches it.
func TestChangesWhileCatchingUpLoseNothing(t *testing.T) {
	r := newRig(t, delivery.Options{CatchUpReaders: 1})
	rc := newReceiver(t)
	d := r.destination(rc.URL, func(p *store.DestinationCreateParams) {
		p.Config = fmt.Appendf(nil, `{"url":%q,"delivery":{"ordered":true}}`, rc.URL)
	})
	var want []int64
	for i := range 40 {
		want = append(want, r.publish(slices.Repeat([]string{"user_created"}, 25)...)...)
		name := fmt.Sprintf("renamed-%d", i)
		_, err := r.st.DestinationUpdate(context.Background(), store.DestinationUpdateParams{ID: d.ID, Name: &name})
		require.NoError(t, err)
		r.engine.Notify()
		if i%4 == 0 { // let the engine start it between some of the changes
			poll.Until(t, 5*time.Second, func() error {
				if st := r.engine.Status(context.Background(), d); st.Pending < 0 {
					return fmt.Errorf("not started")
				}
				return nil
			})
		}
	}
	rc.waitReceived(t, want, 30*time.Second)
	more := r.publish(slices.Repeat([]string{"user_created"}, 50)...)
	rc.waitReceived(t, more, 10*time.Second)
	var firsts []int64
	seen := map[int64]bool{}
	for _, id := range rc.received() {
		if !seen[id] {
			seen[id] = true
			firsts = append(firsts, id)
		}
	}
	require.True(t, slices.IsSorted(firsts), "an ordered destination receives each event for the first time in log order")
}

func TestReplayFromTime(t *testing.T) {
	r := newRig(t, delivery.Options{})
	rc := newReceiver(t)
	d := r.destination(rc.URL)
	evs := r.publish("user_created", "user_blocked")
	rc.waitReceived(t, evs, 10*time.Second)
	require.NoError(t, r.engine.Replay(context.Background(), d, time.Now().Add(-time.Minute)))
	poll.Until(t, 10*time.Second, func() error {
		if n := len(rc.received()); n < 4 {
			return fmt.Errorf("%d received", n)
		}
		return nil
	})
}

// TestSendTestEvent: a test event reports the receiver's answer; every test event has an id
// (and webhook-id) of its own, so that a receiver that drops ids it saw takes each, and says it
// is a test.
func TestSendTestEvent(t *testing.T) {
	r := newRig(t, delivery.Options{})
	rc := newReceiver(t)
	var mu sync.Mutex
	var hooks []string
	var bodies [][]byte
	rc.setAnswer(func(req *http.Request, body []byte) int {
		mu.Lock()
		defer mu.Unlock()
		hooks = append(hooks, req.Header.Get("Webhook-Id"))
		bodies = append(bodies, body)
		return http.StatusAccepted
	})
	d := r.destination(rc.URL)
	for range 2 {
		res := r.engine.SendTest(context.Background(), d, "root")
		require.Empty(t, res.Error)
		require.Equal(t, http.StatusAccepted, res.StatusCode, "the receiver's status")
	}
	mu.Lock()
	require.Len(t, hooks, 2)
	require.NotEqual(t, hooks[0], hooks[1], "each test event has a webhook-id of its own")
	for i, b := range bodies {
		var ev struct {
			ID        int64          `json:"id"`
			EventType string         `json:"event_type"`
			Details   map[string]any `json:"details"`
		}
		require.NoError(t, json.Unmarshal(b, &ev))
		require.Equal(t, hooks[i], strconv.FormatInt(ev.ID, 10))
		require.Greater(t, ev.ID, int64(1)<<52, "beyond any id of the log")
		require.Equal(t, delivery.TestEventType, ev.EventType)
		require.Equal(t, true, ev.Details["test"])
	}
	mu.Unlock()
	rc.setAnswer(func(*http.Request, []byte) int { return http.StatusOK })
	res := r.engine.SendTest(context.Background(), d, "root")
	require.Equal(t, http.StatusOK, res.StatusCode)
	rc.setAnswer(func(*http.Request, []byte) int { return http.StatusUnauthorized })
	res = r.engine.SendTest(context.Background(), d, "root")
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)
	require.NotEmpty(t, res.Error)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// TestPositionsOfDeletedDestinationsAreRemoved: a destination deleted while no engine ran leaves
// no position behind once the engine runs again.
func TestPositionsOfDeletedDestinationsAreRemoved(t *testing.T) {
	r := newRig(t, delivery.Options{PositionEvery: 20 * time.Millisecond})
	rc := newReceiver(t)
	slow := make(chan struct{})
	rc.setAnswer(func(*http.Request, []byte) int { <-slow; return http.StatusOK })
	d := r.destination(rc.URL)
	r.publish("user_created")
	rows := func() map[int64]bool {
		ps, err := r.st.DeliveryPositionList(context.Background())
		require.NoError(t, err)
		out := map[int64]bool{}
		for _, p := range ps {
			out[p.DestinationID] = true
		}
		return out
	}
	poll.Until(t, 10*time.Second, func() error {
		if !rows()[d.ID] {
			return fmt.Errorf("no row for a destination with an event in flight: %v", rows())
		}
		return nil
	})
	r.stop()
	close(slow)
	require.NoError(t, r.st.DestinationDelete(context.Background(), d.ID)) // while no engine runs
	r.start()
	poll.Until(t, 10*time.Second, func() error {
		if rows()[d.ID] {
			return fmt.Errorf("the deleted destination's row is still there")
		}
		return nil
	})
}

// TestEarlierConsumersAreTakenOver: the per-destination consumers of earlier versions give
// their positions to the engine and are removed; nothing acknowledged is sent again.
func TestEarlierConsumersAreTakenOver(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	r := newRigListening(t, delivery.Options{}, addr)
	r.stop()
	rc := newReceiver(t)
	old := r.publish("user_created", "user_created")
	d, err := r.st.DestinationCreate(context.Background(), store.DestinationCreateParams{Scope: store.ScopeInstance, Name: "old", Category: "http", Active: true,
		Config: fmt.Appendf(nil, `{"url":%q}`, rc.URL), SecretToken: "verification-token-1234", SigningSecret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		CreatedAt: time.Now().Add(-time.Hour)})
	require.NoError(t, err)

	// An earlier version's consumer of the destination, which had acknowledged the first event.
	nc, err := nats.Connect("nats://" + addr)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	durable := "dest-" + strconv.FormatInt(d.ID, 10)
	cons, err := js.CreateConsumer(context.Background(), eventlog.StreamName, jetstream.ConsumerConfig{Durable: durable, AckPolicy: jetstream.AckExplicitPolicy})
	require.NoError(t, err)
	msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	require.NoError(t, err)
	require.NoError(t, msg.DoubleAck(context.Background()))

	r.start()
	rc.waitReceived(t, old[1:], 10*time.Second)
	require.Equal(t, []int64{old[1]}, rc.received(), "the acknowledged event is not sent again")
	names, err := r.log.ConsumerNames(context.Background(), "dest-")
	require.NoError(t, err)
	require.Empty(t, names)
}

// TestManyDestinationsShareOneReader: 2,000 groups with a destination each. Every event reaches
// its group's destination and no other, the log has no consumer per destination, and idle
// destinations cost no goroutines, nor a look from each write of the positions.
func TestManyDestinationsShareOneReader(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 destinations")
	}
	r := newRig(t, delivery.Options{})
	ctx := context.Background()
	var mu sync.Mutex
	got := map[string][]int64{} // path → event ids
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		mu.Lock()
		got[req.URL.Path] = append(got[req.URL.Path], ids(body)...)
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	const n = 2000
	keys := make([]int64, n)
	for i := range n {
		keys[i] = r.groupDestination(srv.URL)
	}
	r.waitStarted()
	idle := runtime.NumGoroutine()
	require.Less(t, idle, 200, "idle destinations have no goroutines")
	names, err := r.log.ConsumerNames(ctx, "")
	require.NoError(t, err)
	require.LessOrEqual(t, len(names), 1+4, "the log's consumers are the head's and the catch-up readers', not one per destination")
	r.waitAtHead() // the positions' snapshot looks at none of them

	// Two events per group, in batches as producers send them.
	var msgs []eventlog.Message
	for _, k := range keys {
		for range 2 {
			msgs = append(msgs, groupEvent(k))
		}
	}
	want := map[string][]int64{}
	for i := 0; i < len(msgs); i += 1000 {
		seqs, err := r.log.Publish(ctx, msgs[i:i+1000])
		require.NoError(t, err)
		for j, seq := range seqs {
			k := keys[(i+j)/2]
			want[fmt.Sprintf("/g%d", k)] = append(want[fmt.Sprintf("/g%d", k)], seq)
		}
	}
	poll.Until(t, 60*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		for path, ids := range want {
			for _, id := range ids {
				if !slices.Contains(got[path], id) {
					return fmt.Errorf("%s: event %d not received", path, id)
				}
			}
		}
		return nil
	})
	mu.Lock()
	for path, ids := range got {
		for _, id := range ids {
			require.Contains(t, want[path], id, "an event went to another group's destination")
		}
	}
	mu.Unlock()
	r.waitAtHead()
}

// TestReadersDoNotWaitForDestinationsThatHang: destinations whose receivers take requests
// and never answer hold more than the read-ahead bound in their queues. The head waits a
// second for them, then goes on: another destination gets its events.
func TestReadersDoNotWaitForDestinationsThatHang(t *testing.T) {
	r := newRig(t, delivery.Options{ReadAheadBytes: 32 << 10})
	hang := make(chan struct{})
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		select {
		case <-hang:
		case <-req.Context().Done():
		}
	}))
	t.Cleanup(stuck.Close)
	t.Cleanup(func() { close(hang) }) // before stuck.Close, which waits for its handlers
	var stuckKeys []int64
	for range 10 {
		stuckKeys = append(stuckKeys, r.groupDestination(stuck.URL))
	}
	healthy := newReceiver(t)
	ok := r.groupDestination(healthy.URL)
	r.waitStarted()
	r.waitAtHead()
	var msgs []eventlog.Message
	for range 30 { // 240 events queued beyond the 80 in requests: about 70 KB
		for _, k := range stuckKeys {
			msgs = append(msgs, groupEvent(k))
		}
	}
	_, err := r.log.Publish(context.Background(), msgs)
	require.NoError(t, err)
	msgs = nil
	for range 100 {
		msgs = append(msgs, groupEvent(ok))
	}
	want, err := r.log.Publish(context.Background(), msgs)
	require.NoError(t, err)
	healthy.waitReceived(t, want, 30*time.Second)
	require.Positive(t, r.counter("auditstream_delivery_reader_waits_total", ""), "the hanging destinations' queues were over the read-ahead bound")
}

// waitAtHead waits until every destination is a member of the head with nothing outstanding:
// none is looked at by the positions' snapshot.
func (r *rig) waitAtHead() {
	r.t.Helper()
	poll.Until(r.t, 10*time.Second, func() error {
		if n := r.engine.Behind(); n > 0 {
			return fmt.Errorf("%d destinations may be behind the head", n)
		}
		return nil
	})
}

// TestMetricsFollowTheDestinations: a destination has series in /metrics once it delivered or
// failed, with the counts of its status; one that received nothing has none (but its pending
// events, once its status was read), and a deleted one's go.
func TestMetricsFollowTheDestinations(t *testing.T) {
	r := newRig(t, delivery.Options{})
	ok, refusing := newReceiver(t), newReceiver(t)
	refusing.setAnswer(func(*http.Request, []byte) int { return http.StatusBadRequest })
	a := r.destination(ok.URL)
	b := r.destination(refusing.URL)
	r.destination(ok.URL+"/idle", func(p *store.DestinationCreateParams) { p.EventTypes = []string{"user_blocked"} })
	evs := r.publish("user_created", "user_created")
	ok.waitReceived(t, evs, 10*time.Second)
	want := map[string]float64{
		fmt.Sprintf("auditstream_delivery_events_delivered_total %d", a.ID):     2,
		fmt.Sprintf("auditstream_delivery_circuit_open %d", a.ID):               0,
		fmt.Sprintf("auditstream_delivery_events_delivered_total %d", b.ID):     0,
		fmt.Sprintf("auditstream_delivery_events_failed_total %d", b.ID):        2,
		fmt.Sprintf("auditstream_delivery_events_dead_lettered_total %d", b.ID): 2,
		fmt.Sprintf("auditstream_delivery_circuit_open %d", b.ID):               0,
	}
	poll.Until(t, 10*time.Second, func() error {
		if got := r.destinationSeries(); !maps.Equal(got, want) {
			return fmt.Errorf("series %v, want %v", got, want)
		}
		return nil
	})
	for _, d := range []store.Destination{a, b} {
		require.NoError(t, r.st.DestinationDelete(context.Background(), d.ID))
	}
	r.engine.Notify()
	poll.Until(t, 10*time.Second, func() error {
		if got := r.destinationSeries(); len(got) > 0 {
			return fmt.Errorf("series of deleted destinations: %v", got)
		}
		return nil
	})
}

// destinationSeries gathers the engine's series labelled by destination but those of pending events:
// "name id" → value.
func (r *rig) destinationSeries() map[string]float64 {
	r.t.Helper()
	mfs, err := r.metrics.Gather()
	require.NoError(r.t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "destination" && !strings.Contains(mf.GetName(), "pending") { // counts of the log, when read
					out[mf.GetName()+" "+l.GetValue()] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
				}
			}
		}
	}
	return out
}

// groupDestination stores a top-level group and a destination of it to url/g<key>, and
// returns the group's key. The engine picks it up at its next look (waitStarted).
func (r *rig) groupDestination(url string) int64 {
	r.t.Helper()
	ctx := context.Background()
	g, err := r.st.NamespaceCreate(ctx, store.NamespaceCreateParams{Kind: store.KindGroup, Name: "g", FullPath: fmt.Sprintf("g%d", r.groups), CreatedAt: time.Now()})
	require.NoError(r.t, err)
	r.groups++
	_, err = r.st.DestinationCreate(ctx, store.DestinationCreateParams{Scope: store.ScopeGroup, NamespaceKey: g.Key, Name: "d", Category: "http", Active: true,
		Config: fmt.Appendf(nil, `{"url":"%s/g%d"}`, url, g.Key), SecretToken: "verification-token-1234",
		SigningSecret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", CreatedAt: time.Now().Add(-time.Minute)})
	require.NoError(r.t, err)
	return g.Key
}

// waitStarted lets the engine know of changed destinations and waits until it has started
// every one.
func (r *rig) waitStarted() {
	r.t.Helper()
	ctx := context.Background()
	r.engine.Notify()
	ds, err := r.st.DestinationList(ctx, store.DestinationListParams{})
	require.NoError(r.t, err)
	poll.Until(r.t, 30*time.Second, func() error {
		for _, d := range ds {
			if st := r.engine.Status(ctx, d); st.Pending < 0 {
				return fmt.Errorf("destination %d not started", d.ID)
			}
		}
		return nil
	})
}

// groupEvent is an event of the top-level group with key k, filed under it.
func groupEvent(k int64) eventlog.Message {
	return eventlog.Message{Subject: eventlog.Subject(eventlog.RootGroup(k), "member_created"),
		Data:      fmt.Appendf(nil, `{"entity_type":"Group","entity_id":%d,"entity_path":"g","event_type":"member_created","created_at":%q}`, k, time.Now().UTC().Format(time.RFC3339Nano)),
		Namespace: eventlog.FormatNamespace([]int64{k}, false)}
}

// TestSendersWaitInLine: one event to each of 500 destinations while the receiver holds every
// request: no more than Options.Senders requests are out at once, and the destinations waiting
// for a place have no goroutine, neither before their turn nor after it (the receiver holds
// the requests again after 400 deliveries). Eight destinations that fail and then back off
// for an hour give their places up meanwhile: the 500 are all delivered.
func TestSendersWaitInLine(t *testing.T) {
	const senders = 8
	r := newRig(t, delivery.Options{Senders: senders, BackoffMin: time.Hour, BackoffMax: time.Hour})
	ctx := context.Background()
	first, then := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	out, peak, delivered := 0, 0, 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		if strings.HasPrefix(req.URL.Path, "/fail/") {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		out++
		peak = max(peak, out)
		hold := first
		if delivered >= 400 {
			hold = then
		}
		mu.Unlock()
		<-hold
		mu.Lock()
		out--
		delivered++
		mu.Unlock()
	}))
	releaseFirst, releaseThen := sync.OnceFunc(func() { close(first) }), sync.OnceFunc(func() { close(then) })
	t.Cleanup(srv.Close)
	t.Cleanup(releaseFirst) // before Close, which waits for the held requests
	t.Cleanup(releaseThen)
	var keys []int64
	for range 8 {
		keys = append(keys, r.groupDestination(srv.URL+"/fail"))
	}
	for range 500 {
		keys = append(keys, r.groupDestination(srv.URL))
	}
	r.waitStarted()
	idle := runtime.NumGoroutine()
	msgs := make([]eventlog.Message, len(keys))
	for i, k := range keys {
		msgs[i] = groupEvent(k)
	}
	_, err := r.log.Publish(ctx, msgs)
	require.NoError(t, err)
	held := func(want int) {
		t.Helper()
		poll.Until(t, 30*time.Second, func() error {
			mu.Lock()
			defer mu.Unlock()
			if out < senders || delivered < want {
				return fmt.Errorf("%d requests held by the receiver after %d delivered, want %d after %d", out, delivered, senders, want)
			}
			return nil
		})
		// The held requests' goroutines (engine, client and server side) and the failing
		// destinations' backoffs; hundreds of waiting runners would be far more.
		require.Less(t, runtime.NumGoroutine()-idle, 100, "destinations waiting in line have no goroutines")
	}
	held(0)
	releaseFirst()
	held(400)
	releaseThen()
	poll.Until(t, 30*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if delivered < 500 {
			return fmt.Errorf("%d of 500 delivered", delivered)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	require.LessOrEqual(t, peak, senders, "requests out at once")
}

// TestOpenSendersAreBounded: destinations keep no sender of their own while they do not send:
// after 600 destinations each delivered, at most 4 × Options.Senders senders are open, and a
// destination whose sender was closed opens it again and delivers.
func TestOpenSendersAreBounded(t *testing.T) {
	const places = 8
	r := newRig(t, delivery.Options{Senders: places, IdleSenders: 4 * places})
	r.stop()
	var open atomic.Int64
	r.factories = map[string]destination.Factory{"http": func(s destination.Settings, env destination.Env) (destination.Sender, error) {
		snd, err := httpdest.New(s, env)
		if err != nil {
			return nil, err
		}
		open.Add(1)
		return closeCounter{snd, &open}, nil
	}}
	r.start()
	rec := newReceiver(t)
	var keys []int64
	for range 600 {
		keys = append(keys, r.groupDestination(rec.URL))
	}
	r.waitStarted()
	require.Zero(t, open.Load(), "destinations that have not sent hold no sender")
	ctx := context.Background()
	publish := func() []int64 {
		msgs := make([]eventlog.Message, len(keys))
		for i, k := range keys {
			msgs[i] = groupEvent(k)
		}
		ids, err := r.log.Publish(ctx, msgs)
		require.NoError(t, err)
		return ids
	}
	// Once the destinations have nothing left to send, at most 4 × places senders stay open.
	bounded := func(what string) {
		poll.Until(t, 10*time.Second, func() error {
			if n := open.Load(); n > 4*places {
				return fmt.Errorf("%d senders open %s", n, what)
			}
			return nil
		})
	}
	first := publish()
	rec.waitReceived(t, first, 60*time.Second)
	bounded("after 600 destinations sent")
	second := publish() // most of them were closed: opened again
	rec.waitReceived(t, append(first, second...), 60*time.Second)
	bounded("after 600 destinations sent again")
}

// closeCounter is a sender that counts itself out of open when it is closed.
type closeCounter struct {
	destination.Sender
	open *atomic.Int64
}

func (c closeCounter) Close() error {
	c.open.Add(-1)
	return c.Sender.Close()
}

// TestFallsBehindAndCatchesUp: an ordered destination that stops answering falls behind
// (more events than it can hold in memory) without holding another destination back, then,
// when it answers again, catches up from the log and receives every event in order.
func TestFallsBehindAndCatchesUp(t *testing.T) {
	r := newRig(t, delivery.Options{BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond, ProbeMin: 20 * time.Millisecond, ProbeMax: 100 * time.Millisecond})
	stuck, fast := newReceiver(t), newReceiver(t)
	var mu sync.Mutex
	refuse := true
	stuck.setAnswer(func(*http.Request, []byte) int {
		mu.Lock()
		defer mu.Unlock()
		if refuse {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	r.destination(stuck.URL, func(p *store.DestinationCreateParams) {
		p.Config = fmt.Appendf(nil, `{"url":%q,"delivery":{"ordered":true}}`, stuck.URL)
	})
	r.destination(fast.URL)
	var want []int64
	for range 12 {
		want = append(want, r.publish(slices.Repeat([]string{"user_created"}, 1000)...)...)
	}
	fast.waitReceived(t, want, 90*time.Second) // 12,000 deliveries under -race on a busy machine: 30 s was not always enough
	require.Empty(t, stuck.received())
	mu.Lock()
	refuse = false
	mu.Unlock()
	stuck.waitReceived(t, want, 60*time.Second)
	require.True(t, slices.IsSorted(stuck.received()), "an ordered destination receives in log order")
}

// TestCatchUpReadersJoinTheOneAhead: destinations resumed one after another from the same place
// in the log (paused with bufferWhilePaused) read their backlog together: a catch-up reader
// that starts a little behind another merges into it, so the log is read about once for them
// all, not once each (auditstream_delivery_log_reads_total).
func TestCatchUpReadersJoinTheOneAhead(t *testing.T) {
	r := newRig(t, delivery.Options{})
	ctx := context.Background()
	const n, backlog = 6, 30_000
	setActive := func(d store.Destination, active bool) {
		_, err := r.st.DestinationUpdate(ctx, store.DestinationUpdateParams{ID: d.ID, Active: &active})
		require.NoError(t, err)
		r.engine.Notify()
	}
	var ds []store.Destination
	var rcs []*receiver
	for range n {
		rc := newReceiver(t)
		rcs = append(rcs, rc)
		url := rc.URL
		d := r.destination(url, func(p *store.DestinationCreateParams) {
			// Batches of 1,000: each destination's queue holds the whole backlog, so that none
			// falls behind its reader and reads again.
			p.Config = fmt.Appendf(nil, `{"url":%q,"batch":{"maxEvents":1000,"maxBytes":1048576,"maxWaitMs":200},"delivery":{"concurrency":8,"bufferWhilePaused":true}}`, url)
		})
		setActive(d, false)
		ds = append(ds, d)
	}
	poll.Until(t, 5*time.Second, func() error {
		for _, d := range ds {
			cur, _ := r.st.DestinationGet(ctx, d.ID)
			if st := r.engine.Status(ctx, cur); st.Status != delivery.StatusPaused {
				return fmt.Errorf("%d: %+v", d.ID, st)
			}
		}
		return nil
	})
	var want []int64
	for range backlog / 1000 {
		want = append(want, r.publish(slices.Repeat([]string{"user_created"}, 1000)...)...)
	}
	before := r.catchUpReads()
	for _, d := range ds { // one at a time: each starts a reader of its own, behind the others
		read := r.catchUpReads()
		setActive(d, true)
		poll.Until(t, 10*time.Second, func() error {
			if r.catchUpReads() == read {
				return fmt.Errorf("destination %d is not reading yet", d.ID)
			}
			return nil
		})
	}
	poll.Until(t, 60*time.Second, func() error {
		for i, rc := range rcs {
			if got := len(rc.received()); got < len(want) {
				return fmt.Errorf("destination %d: %d of %d received", ds[i].ID, got, len(want))
			}
		}
		return nil
	})
	for _, rc := range rcs {
		got := map[int64]bool{}
		for _, id := range rc.received() {
			got[id] = true
		}
		for _, id := range want {
			require.True(t, got[id], "event %d not received", id)
		}
	}
	reads := r.catchUpReads() - before
	t.Logf("%d destinations caught up on %d events with %.0f reads of the log", n, backlog, reads)
	require.Less(t, reads, float64(2*backlog), "the catch-up readers read the backlog about once, not %d times", n)
}

// catchUpReads is auditstream_delivery_log_reads_total{reader="catch_up"}.
func (r *rig) catchUpReads() float64 {
	return r.counter("auditstream_delivery_log_reads_total", "catch_up")
}

// counter is the engine's counter name, of the series whose first label is label ("" for a
// counter without labels).
func (r *rig) counter(name, label string) float64 {
	r.t.Helper()
	mfs, err := r.metrics.Gather()
	require.NoError(r.t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 0 && label == "" || len(m.GetLabel()) > 0 && m.GetLabel()[0].GetValue() == label {
				return m.GetCounter().GetValue()
			}
		}
	}
	r.t.Fatalf("no %s{%s}", name, label)
	return 0
}

// TestABurstWaitsForTheQueuesInsteadOfLeavingDestinationsBehind: a burst of 5,000 events to
// 50 destinations that each keep up but are all a little behind, with room for about 800 in
// memory (Options.MaxQueuedBytes). The head waits for them to take their events once the
// queues hold Options.ReadAheadBytes; before, it filled the memory and refused every
// destination with something queued, and each caught up from the log, again and again.
func TestABurstWaitsForTheQueuesInsteadOfLeavingDestinationsBehind(t *testing.T) {
	r := newRig(t, delivery.Options{MaxQueuedBytes: 256 << 10})
	rc := newReceiver(t)
	const n = 50
	keys := make([]int64, n)
	for i := range keys {
		keys[i] = r.groupDestination(rc.URL)
	}
	r.waitStarted()
	r.waitAtHead()
	before := r.catchUpReads()
	var msgs []eventlog.Message
	for range 100 {
		for _, k := range keys {
			msgs = append(msgs, groupEvent(k))
		}
	}
	var want []int64
	for batch := range slices.Chunk(msgs, 1000) {
		seqs, err := r.log.Publish(context.Background(), batch)
		require.NoError(t, err)
		want = append(want, seqs...)
	}
	rc.waitReceived(t, want, 60*time.Second)
	require.Zero(t, r.catchUpReads()-before, "destinations were left behind to catch up from the log")
	require.Positive(t, r.counter("auditstream_delivery_reader_waits_total", ""), "the burst filled the queues' memory")
	r.waitAtHead()
	require.Zero(t, r.engine.ReadingQueued(), "bytes counted as queued for the destinations at the head, with nothing queued")
}

// TestFailingDestinationsDoNotHoldTheQueuesMemory: destinations whose receivers refuse
// everything hold no queue once their circuit is open (they catch up from the log when they
// recover), so that however many of them there are, the memory for queued events
// (Options.MaxQueuedBytes) stays free for the destinations that work, which keep reading
// from the head instead of being left behind to catch up, again and again.
func TestFailingDestinationsDoNotHoldTheQueuesMemory(t *testing.T) {
	r := newRig(t, delivery.Options{MaxQueuedBytes: 1 << 20, BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
		ProbeMin: 50 * time.Millisecond, ProbeMax: 200 * time.Millisecond})
	ctx := context.Background()
	var failing []store.Destination
	var mu sync.Mutex
	refuse := true
	var down []*receiver
	for range 4 { // each would hold the 4,000 events, about 1 MiB of these: together four times the bound
		rc := newReceiver(t)
		rc.setAnswer(func(*http.Request, []byte) int {
			mu.Lock()
			defer mu.Unlock()
			if refuse {
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		})
		down = append(down, rc)
		failing = append(failing, r.destination(rc.URL, func(p *store.DestinationCreateParams) {
			p.Config = fmt.Appendf(nil, `{"url":%q,"delivery":{"concurrency":8}}`, rc.URL)
		}))
	}
	healthy := newReceiver(t)
	r.destination(healthy.URL, func(p *store.DestinationCreateParams) {
		p.Config = fmt.Appendf(nil, `{"url":%q,"delivery":{"concurrency":8}}`, healthy.URL)
	})
	want := r.publish(slices.Repeat([]string{"user_created"}, 4000)...)
	poll.Until(t, 30*time.Second, func() error {
		for _, d := range failing {
			if st := r.engine.Status(ctx, d); st.Status != delivery.StatusCircuitOpen {
				return fmt.Errorf("destination %d: %s", d.ID, st.Status)
			}
		}
		return nil
	})
	healthy.waitReceived(t, want, 60*time.Second)

	before := r.catchUpReads()
	for range 5 {
		more := r.publish(slices.Repeat([]string{"user_created"}, 1000)...)
		want = append(want, more...)
		healthy.waitReceived(t, want, 30*time.Second)
	}
	reads := r.catchUpReads() - before
	t.Logf("catch-up reads while 5,000 events went to the working destination: %.0f", reads)
	require.Less(t, reads, 1000.0, "the working destination was left behind the head: the failing ones held the memory for queued events")

	// They come back after a restart with the default room for queues (four destinations
	// catching up through 1 MiB crawl): what they gave back to the log reaches them all.
	r.stop()
	r.opts.MaxQueuedBytes = 0
	mu.Lock()
	refuse = false
	mu.Unlock()
	r.start()
	for _, rc := range down {
		rc.waitReceived(t, want, 60*time.Second)
	}
}

// TestOpenCircuitWithNothingLeftToSendStillRecovers: a destination whose circuit is open gives
// its queue back to the log; when its last request in flight is then refused for good (dead
// lettered), it has nothing left to probe with, and must still find out that the receiver is
// back: it catches up, and its next request is the probe.
func TestOpenCircuitWithNothingLeftToSendStillRecovers(t *testing.T) {
	r := newRig(t, delivery.Options{BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
		ProbeMin: 50 * time.Millisecond, ProbeMax: 200 * time.Millisecond})
	ctx := context.Background()
	rc := newReceiver(t)
	var mu sync.Mutex
	answer := http.StatusServiceUnavailable
	rc.setAnswer(func(*http.Request, []byte) int {
		mu.Lock()
		defer mu.Unlock()
		return answer
	})
	set := func(code int) {
		mu.Lock()
		answer = code
		mu.Unlock()
	}
	d := r.destination(rc.URL, func(p *store.DestinationCreateParams) {
		p.Config = fmt.Appendf(nil, `{"url":%q,"delivery":{"concurrency":1}}`, rc.URL)
	})
	r.publish(slices.Repeat([]string{"user_created"}, 50)...)
	poll.Until(t, 30*time.Second, func() error {
		if st := r.engine.Status(ctx, d); st.Status != delivery.StatusCircuitOpen {
			return fmt.Errorf("status %s", st.Status)
		}
		return nil
	})
	set(http.StatusBadRequest) // the probe is refused for good: its event goes to the dead letters
	poll.Until(t, 30*time.Second, func() error {
		if st := r.engine.Status(ctx, d); st.DeadLettered == 0 {
			return fmt.Errorf("nothing dead-lettered yet: %+v", st)
		}
		return nil
	})
	set(http.StatusOK)
	want := r.publish(slices.Repeat([]string{"user_created"}, 10)...)
	rc.waitReceived(t, want, 30*time.Second)
}

// TestApplyReturnsOnceAChangeHasTakenEffect: once Apply returns, a destination deactivated in
// the store is sent nothing ingested after, however long the engine's poll (the API calls Apply
// before it answers a change).
func TestApplyReturnsOnceAChangeHasTakenEffect(t *testing.T) {
	r := newRig(t, delivery.Options{Reconcile: time.Hour})
	r.stop()
	r.st = slowListing{r.st} // an engine that takes a while to reread: the rereads race the events
	r.start()
	ctx := context.Background()
	paused, other := newReceiver(t), newReceiver(t)
	d := r.destination(paused.URL)
	r.destination(other.URL)
	setActive := func(active bool) {
		_, err := r.st.DestinationUpdate(ctx, store.DestinationUpdateParams{ID: d.ID, Active: &active})
		require.NoError(t, err)
		r.engine.Apply(ctx)
	}
	for range 20 {
		setActive(false)
		ids := r.publish("user_created")
		other.waitReceived(t, ids, 10*time.Second)
		require.NotContains(t, paused.received(), ids[0], "delivered after its deactivation was applied")
		setActive(true)
	}
}

// slowListing is a store whose listing of destinations takes 50 ms, as a busy or a large one
// may.
type slowListing struct{ store.Store }

func (s slowListing) DestinationVersions(ctx context.Context) ([]store.DestinationVersion, error) {
	time.Sleep(50 * time.Millisecond)
	return s.Store.DestinationVersions(ctx)
}

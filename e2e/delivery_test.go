package e2e

// Delivery through the real binary to real HTTP receivers on loopback: outages (connection
// refused, then 503s) lose nothing, a SIGKILL mid-delivery loses nothing, permanent 4xx go to
// the dead letters and can be redelivered, a slow destination does not hold up another one or
// ingest, the SSRF guard refuses internal addresses unless the operator allows them, and the
// test event and replay mutations reach the receiver.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/poll"
)

const (
	allowPrivate  = "AUDITSTREAM_ALLOW_PRIVATE_DESTINATIONS=true"
	testEventType = "audit_events_streaming_test_event"
	createdType   = "created_instance_audit_event_streaming_destination"
)

// receiver is a real HTTP server on loopback that takes deliveries. It records the ids it
// accepted (a 2xx answer), how often, and whatever in a request breaks the wire format. It can
// go down (connection refused) and come back on the same port, answer another status per event
// type, and take its time.
type receiver struct {
	t    *testing.T
	addr string
	stop chan struct{}

	requests atomic.Int64 // every request, whatever the answer

	mu       sync.Mutex
	srv      *http.Server
	status   func(eventType string) int // nil: 200
	delay    time.Duration
	onAccept func(distinct int)
	accepted map[int64]int
	first    map[int64]time.Time // when each id was first accepted
	order    []int64             // ids in the order each was first accepted
	types    map[int64]string
	tests    []http.Header // test events accepted
	answered map[int]int   // non-2xx answers by status
	problems []string
}

func newReceiver(t *testing.T, listen string) *receiver {
	t.Helper()
	l, err := net.Listen("tcp", listen)
	require.NoError(t, err)
	rc := &receiver{t: t, addr: l.Addr().String(), stop: make(chan struct{}), accepted: map[int64]int{}, first: map[int64]time.Time{}, types: map[int64]string{}, answered: map[int]int{}}
	rc.serveOn(l)
	t.Cleanup(func() {
		close(rc.stop)
		rc.down()
		if p := rc.wireProblems(); len(p) > 0 {
			t.Errorf("receiver %s saw requests off the wire format: %v", rc.addr, p)
		}
	})
	return rc
}

func (rc *receiver) url() string { return "http://" + rc.addr + "/" }

func (rc *receiver) port() string {
	_, port, _ := net.SplitHostPort(rc.addr)
	return port
}

func (rc *receiver) serveOn(l net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(rc.handle), ReadHeaderTimeout: 10 * time.Second}
	rc.mu.Lock()
	rc.srv = srv
	rc.mu.Unlock()
	go func() { _ = srv.Serve(l) }()
}

// down closes the listener and every connection: new requests get "connection refused".
func (rc *receiver) down() {
	rc.mu.Lock()
	srv := rc.srv
	rc.srv = nil
	rc.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// up listens again on the same address.
func (rc *receiver) up() {
	rc.t.Helper()
	poll.Until(rc.t, 10*time.Second, func() error {
		l, err := net.Listen("tcp", rc.addr)
		if err != nil {
			return err
		}
		rc.serveOn(l)
		return nil
	})
}

func (rc *receiver) setStatus(f func(eventType string) int) {
	rc.mu.Lock()
	rc.status = f
	rc.mu.Unlock()
}

func (rc *receiver) setDelay(d time.Duration) {
	rc.mu.Lock()
	rc.delay = d
	rc.mu.Unlock()
}

func (rc *receiver) setOnAccept(f func(distinct int)) {
	rc.mu.Lock()
	rc.onAccept = f
	rc.mu.Unlock()
}

func (rc *receiver) problem(format string, args ...any) {
	rc.mu.Lock()
	rc.problems = append(rc.problems, fmt.Sprintf(format, args...))
	rc.mu.Unlock()
}

type wireEvent struct {
	ID        int64  `json:"id"`
	EventType string `json:"event_type"`
}

func (rc *receiver) handle(w http.ResponseWriter, r *http.Request) {
	rc.requests.Add(1)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if r.Method != http.MethodPost {
		rc.problem("method %s", r.Method)
	}
	var evs []wireEvent
	trimmed := bytes.TrimSpace(body)
	wantID := ""
	if len(trimmed) > 0 && trimmed[0] == '[' {
		err = json.Unmarshal(trimmed, &evs)
		if err == nil && len(evs) > 0 {
			wantID = fmt.Sprintf("%d-%d", evs[0].ID, evs[len(evs)-1].ID)
		}
	} else {
		var ev wireEvent
		err = json.Unmarshal(trimmed, &ev)
		evs = []wireEvent{ev}
		wantID = strconv.FormatInt(ev.ID, 10)
		if err == nil && r.Header.Get("X-Gitlab-Audit-Event-Type") != ev.EventType {
			rc.problem("event %d of type %q came with X-Gitlab-Audit-Event-Type %q", ev.ID, ev.EventType, r.Header.Get("X-Gitlab-Audit-Event-Type"))
		}
	}
	if err != nil || len(evs) == 0 {
		rc.problem("body is not an event: %v: %.200s", err, body)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if got := r.Header.Get("webhook-id"); got != wantID {
		rc.problem("webhook-id %q for body id %s", got, wantID)
	}

	rc.mu.Lock()
	delay, status := rc.delay, rc.status
	rc.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-rc.stop:
		case <-r.Context().Done():
			return
		}
	}
	code := http.StatusOK
	if status != nil {
		code = status(evs[0].EventType)
	}
	if code/100 != 2 {
		rc.mu.Lock()
		rc.answered[code]++
		rc.mu.Unlock()
		w.WriteHeader(code)
		_, _ = io.WriteString(w, http.StatusText(code))
		return
	}
	rc.mu.Lock()
	for _, ev := range evs {
		if ev.EventType == testEventType {
			rc.tests = append(rc.tests, r.Header.Clone())
			continue
		}
		if rc.accepted[ev.ID] == 0 {
			rc.first[ev.ID] = time.Now()
			rc.order = append(rc.order, ev.ID)
		}
		rc.accepted[ev.ID]++
		rc.types[ev.ID] = ev.EventType
	}
	distinct, hook := len(rc.accepted), rc.onAccept
	rc.mu.Unlock()
	if hook != nil {
		hook(distinct)
	}
	w.WriteHeader(code)
}

// ids returns the distinct ids accepted, in order.
func (rc *receiver) ids() []int64 {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make([]int64, 0, len(rc.accepted))
	for id := range rc.accepted {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

func (rc *receiver) times(id int64) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.accepted[id]
}

// firstAccepted is when id was first accepted (zero: never).
func (rc *receiver) firstAccepted(id int64) time.Time {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.first[id]
}

func (rc *receiver) typeOf(id int64) string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.types[id]
}

// firstDeliveryOrder returns the accepted ids in the order each first arrived.
func (rc *receiver) firstDeliveryOrder() []int64 {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]int64(nil), rc.order...)
}

// missing returns the ids of want the receiver has not accepted.
func (rc *receiver) missing(want []int64) []int64 {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []int64
	for _, id := range want {
		if rc.accepted[id] == 0 {
			out = append(out, id)
		}
	}
	return out
}

// countOf returns how many of ids the receiver accepted.
func (rc *receiver) countOf(ids []int64) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	n := 0
	for _, id := range ids {
		if rc.accepted[id] > 0 {
			n++
		}
	}
	return n
}

// duplicates is how many accepted deliveries repeated an id accepted before.
func (rc *receiver) duplicates() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	n := 0
	for _, c := range rc.accepted {
		n += c - 1
	}
	return n
}

func (rc *receiver) answers() map[int]int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := map[int]int{}
	for k, v := range rc.answered {
		out[k] = v
	}
	return out
}

func (rc *receiver) testEvents() []http.Header {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.tests)
}

func (rc *receiver) wireProblems() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.problems)
}

// waitCreation waits for the self-audit event of the destination's creation, the first event
// its consumer takes, and returns its id.
func (rc *receiver) waitCreation(t *testing.T) int64 {
	t.Helper()
	var id int64
	poll.Until(t, 30*time.Second, func() error {
		ids := rc.ids()
		if len(ids) != 1 {
			return fmt.Errorf("receiver has %v, want the creation's self-audit event", ids)
		}
		id = ids[0]
		return nil
	})
	require.Equal(t, createdType, rc.typeOf(id))
	return id
}

// events makes n ingestable events; typ names the type of the i-th.
func events(n int, typ func(i int) string) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"event_type":%q,"entity_type":"User","entity_id":%d,"entity_path":"user%d","author_id":1,"details":{"custom_message":"e2e delivery %d"}}`,
			typ(i), 1000+i, 1000+i, i)
	}
	b.WriteByte(']')
	return b.Bytes()
}

func userCreated(int) string { return "user_created" }

// ingest posts a JSON array of events and returns their ids and the request's time. It does not
// use t, so that goroutines may call it.
func ingest(base string, body []byte) ([]int64, time.Duration, error) {
	req, err := http.NewRequest(http.MethodPost, base+"/api/v4/audit_events", bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("PRIVATE-TOKEN", adminToken)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if resp.StatusCode != http.StatusCreated {
		return nil, took, fmt.Errorf("ingest: %d %s", resp.StatusCode, b)
	}
	var res struct {
		IDs []int64 `json:"ids"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, took, err
	}
	return res.IDs, took, nil
}

func mustIngest(t *testing.T, base string, body []byte) []int64 {
	t.Helper()
	ids, _, err := ingest(base, body)
	require.NoError(t, err)
	return ids
}

// createDestination creates an instance http destination and returns its global id and number.
func createDestination(t *testing.T, base, url string) (string, int64) {
	t.Helper()
	data := gql(t, base, `mutation($cfg: JSON!) { instanceAuditEventStreamingDestinationsCreate(input: {category: "http", config: $cfg}) { errors externalAuditEventDestination { id } } }`,
		map[string]any{"cfg": map[string]any{"url": url}})
	p := data["instanceAuditEventStreamingDestinationsCreate"].(map[string]any)
	require.Empty(t, p["errors"], "creating a destination for %s", url)
	gid := p["externalAuditEventDestination"].(map[string]any)["id"].(string)
	n, err := strconv.ParseInt(gid[strings.LastIndexByte(gid, '/')+1:], 10, 64)
	require.NoError(t, err, gid)
	return gid, n
}

type deliveryError struct {
	At         *string `json:"at"`
	StatusCode *int    `json:"statusCode"`
	Message    string  `json:"message"`
}

type deliveryStatus struct {
	Status               string         `json:"status"`
	LastSuccessAt        *string        `json:"lastSuccessAt"`
	LastError            *deliveryError `json:"lastError"`
	PendingEvents        *int           `json:"pendingEvents"`
	OldestPendingEventAt *string        `json:"oldestPendingEventAt"`
	DeliveredEvents      int            `json:"deliveredEvents"`
	FailedEvents         int            `json:"failedEvents"`
	DeadLetteredEvents   int            `json:"deadLetteredEvents"`
	DeadLetterCount      int            `json:"deadLetterCount"`
}

func (s deliveryStatus) String() string {
	b, _ := json.Marshal(s)
	return string(b)
}

func (s deliveryStatus) pending() int {
	if s.PendingEvents == nil {
		return -1
	}
	return *s.PendingEvents
}

type deadLetter struct {
	ID         string `json:"id"`
	EventID    string `json:"eventId"`
	EventType  string `json:"eventType"`
	StatusCode *int   `json:"statusCode"`
	Error      string `json:"error"`
	Attempts   int    `json:"attempts"`
}

type deadLetters struct {
	Count int          `json:"count"`
	Nodes []deadLetter `json:"nodes"`
}

// instanceDestination reads one instance destination's field (a selection) by global id. The
// tests make a few instance destinations: a page of 20 finds them, and keeps the query's cost
// (the page multiplies the selection) within the server's limit.
func instanceDestination(t *testing.T, base, gid, selection string, out any) {
	t.Helper()
	data := gql(t, base, `{ auditEventsInstanceStreamingDestinations(first: 20) { nodes { id `+selection+` } } }`, nil)
	nodes := data["auditEventsInstanceStreamingDestinations"].(map[string]any)["nodes"].([]any)
	for _, n := range nodes {
		node := n.(map[string]any)
		if node["id"] != gid {
			continue
		}
		field := strings.Fields(selection)[0]
		if i := strings.IndexAny(field, "({"); i >= 0 {
			field = field[:i]
		}
		b, err := json.Marshal(node[field])
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, out))
		return
	}
	t.Fatalf("destination %s not listed", gid)
}

func statusOf(t *testing.T, base, gid string) deliveryStatus {
	t.Helper()
	var st deliveryStatus
	instanceDestination(t, base, gid, `deliveryStatus { status lastSuccessAt lastError { at statusCode message } pendingEvents oldestPendingEventAt deliveredEvents failedEvents deadLetteredEvents deadLetterCount }`, &st)
	return st
}

func deadLettersOf(t *testing.T, base, gid string) deadLetters {
	t.Helper()
	var dl deadLetters
	instanceDestination(t, base, gid, `deadLetters(first: 50) { count nodes { id eventId eventType statusCode error attempts } }`, &dl)
	return dl
}

type testEventResult struct {
	Errors     []string `json:"errors"`
	Success    bool     `json:"success"`
	StatusCode *int     `json:"statusCode"`
	LatencyMs  int      `json:"latencyMs"`
	Error      *string  `json:"error"`
}

func sendTestEvent(t *testing.T, base, gid string) testEventResult {
	t.Helper()
	data := gql(t, base, `mutation($id: ID!) { auditEventStreamingDestinationTestEventSend(input: {destinationId: $id}) { errors success statusCode latencyMs error } }`,
		map[string]any{"id": gid})
	var res testEventResult
	b, _ := json.Marshal(data["auditEventStreamingDestinationTestEventSend"])
	require.NoError(t, json.Unmarshal(b, &res))
	return res
}

// circuitMetric reads auditstream_delivery_circuit_open for a destination from /metrics.
func circuitMetric(base string, dest int64) (string, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	prefix := fmt.Sprintf(`auditstream_delivery_circuit_open{destination="%d"} `, dest)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("no %s… in /metrics", prefix)
}

// TestDeliveryOutagesLoseNothing: the receiver refuses connections for 30s, then answers 503
// for 30s, while 5,000 events are ingested; once it recovers, every event arrives, with few
// duplicates, and the status told the story on the way.
func TestDeliveryOutagesLoseNothing(t *testing.T) {
	const (
		total   = 5000
		batches = 50
		phase   = 30 * time.Second
	)
	rc := newReceiver(t, "127.0.0.1:0")
	p := serve(t, t.TempDir(), allowPrivate)
	gid, num := createDestination(t, p.base, rc.url())
	selfID := rc.waitCreation(t)
	// The server counts the delivery once the receiver has answered: a moment after it arrived.
	poll.Until(t, 5*time.Second, func() error {
		m, err := circuitMetric(p.base, num)
		if err == nil && m != "0" {
			err = fmt.Errorf("circuit_open %s, want 0", m)
		}
		return err
	})

	start := time.Now()
	rc.down()

	// Ingest in batches over both phases of the outage.
	type ingested struct {
		ids  []int64
		took time.Duration
		err  error
	}
	results := make(chan ingested, batches)
	go func() {
		tick := time.NewTicker(2 * phase / batches)
		defer tick.Stop()
		for range batches {
			<-tick.C
			ids, took, err := ingest(p.base, events(total/batches, userCreated))
			results <- ingested{ids, took, err}
		}
		close(results)
	}()

	// Refused: the circuit opens, the error says why, and events wait.
	var st deliveryStatus
	poll.Until(t, phase-5*time.Second, func() error {
		st = statusOf(t, p.base, gid)
		if st.Status != "circuit_open" || st.LastError == nil || st.LastError.StatusCode != nil ||
			!strings.Contains(st.LastError.Message, "connection refused") || st.pending() <= 0 {
			return fmt.Errorf("status %s", st)
		}
		if m, err := circuitMetric(p.base, num); err != nil || m != "1" {
			return fmt.Errorf("circuit metric %q %v", m, err)
		}
		return nil
	})
	t.Logf("refused phase, after %s: %s; metric auditstream_delivery_circuit_open=1", time.Since(start).Round(time.Millisecond), st)
	<-time.After(time.Until(start.Add(phase)))

	// 503: the receiver is back but failing.
	rc.setStatus(func(string) int { return http.StatusServiceUnavailable })
	rc.up()
	// The open circuit probes every 2s, 4s, ... 60s: the probe of this phase may come late.
	poll.Until(t, 2*phase+10*time.Second, func() error {
		st = statusOf(t, p.base, gid)
		if st.Status != "circuit_open" || st.LastError == nil || st.LastError.StatusCode == nil || *st.LastError.StatusCode != 503 || st.pending() <= 0 {
			return fmt.Errorf("status %s", st)
		}
		if m, err := circuitMetric(p.base, num); err != nil || m != "1" {
			return fmt.Errorf("circuit metric %q %v", m, err)
		}
		return nil
	})
	t.Logf("503 phase, after %s: %s", time.Since(start).Round(time.Millisecond), st)
	<-time.After(time.Until(start.Add(2 * phase)))

	// Recovery.
	rc.setStatus(nil)
	recoveredAt := time.Since(start)
	var want []int64
	var maxIngest time.Duration
	for r := range results {
		require.NoError(t, r.err)
		want = append(want, r.ids...)
		maxIngest = max(maxIngest, r.took)
	}
	require.Len(t, want, total)
	want = append(want, selfID)
	poll.Until(t, 150*time.Second, func() error {
		if miss := rc.missing(want); len(miss) > 0 {
			return fmt.Errorf("%d of %d events not delivered, e.g. %v", len(miss), len(want), miss[:min(len(miss), 10)])
		}
		return nil
	})
	allAt := time.Since(start)
	poll.Until(t, 30*time.Second, func() error {
		st = statusOf(t, p.base, gid)
		if st.Status != "healthy" || st.pending() != 0 || st.LastSuccessAt == nil {
			return fmt.Errorf("status %s", st)
		}
		if m, err := circuitMetric(p.base, num); err != nil || m != "0" {
			return fmt.Errorf("circuit metric %q %v", m, err)
		}
		return nil
	})
	dups := rc.duplicates()
	extra := len(rc.ids()) - len(want)
	t.Logf("recovered at %s; all %d events delivered at %s; duplicates %d; other ids %d; non-2xx answers %v; slowest ingest %s; final status %s",
		recoveredAt.Round(time.Millisecond), len(want), allAt.Round(time.Millisecond), dups, extra, rc.answers(), maxIngest.Round(time.Millisecond), st)
	require.LessOrEqual(t, dups, 64, "duplicates beyond the in-flight window")
	require.GreaterOrEqual(t, st.DeliveredEvents, len(want))
	require.Positive(t, st.FailedEvents)
	require.Zero(t, st.DeadLetterCount, "a retryable outage dead-letters nothing")
}

// TestDeliverySurvivesSIGKILL kills the process while it delivers a steady stream; after a
// restart on the same data dir, every acknowledged event arrives at least once.
func TestDeliverySurvivesSIGKILL(t *testing.T) {
	// About 250 events/s, so that the process has run for seconds (and written its positions
	// several times) when it is killed.
	const total, batch, killAt = 3000, 5, 1000
	rc := newReceiver(t, "127.0.0.1:0")
	rc.setDelay(time.Millisecond)
	dataDir := t.TempDir()
	p := serve(t, dataDir, allowPrivate)
	createDestination(t, p.base, rc.url())
	selfID := rc.waitCreation(t)

	// The receiver kills the process while it holds a request: that event is surely in flight.
	var killed atomic.Bool
	var killedAt atomic.Int64
	rc.setOnAccept(func(distinct int) {
		if distinct >= killAt && killed.CompareAndSwap(false, true) {
			killedAt.Store(time.Now().UnixNano())
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
		}
	})
	var acked []int64
	for len(acked) < total {
		ids, _, err := ingest(p.base, events(batch, userCreated))
		if err != nil {
			break // the process died
		}
		acked = append(acked, ids...)
		if killed.Load() {
			break
		}
		<-time.After(20 * time.Millisecond) // a steady stream, not one burst
	}
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("not killed: the receiver accepted %d events", len(rc.ids()))
	}
	require.True(t, killed.Load())
	atKill := len(rc.ids())
	t.Logf("killed with %d events acknowledged, %d accepted by the receiver", len(acked), atKill)
	rc.setOnAccept(nil)

	restart := time.Now()
	p2 := serve(t, dataDir, allowPrivate)
	for len(acked) < total {
		acked = append(acked, mustIngest(t, p2.base, events(min(50, total-len(acked)), userCreated))...)
	}
	want := append(slices.Clone(acked), selfID)
	poll.Until(t, 90*time.Second, func() error {
		if miss := rc.missing(want); len(miss) > 0 {
			return fmt.Errorf("%d of %d events not delivered, e.g. %v", len(miss), len(want), miss[:min(len(miss), 10)])
		}
		return nil
	})
	// What is sent again is bounded by what was in flight and what was delivered since the
	// positions were last written (every second): at most the events first accepted in the two
	// seconds before the kill (a margin for the write itself), plus the requests under way.
	recent := 0
	kill := time.Unix(0, killedAt.Load())
	for _, id := range rc.ids() {
		if at := rc.firstAccepted(id); !at.Before(kill.Add(-2*time.Second)) && !at.After(kill) {
			recent++
		}
	}
	require.LessOrEqual(t, rc.duplicates(), recent+64, "events sent again after the SIGKILL")
	var late int
	var last time.Duration
	for _, id := range want {
		at := rc.firstAccepted(id).Sub(restart)
		last = max(last, at)
		if at > 10*time.Second {
			late++
		}
	}
	t.Logf("all %d events delivered %s after the restart (last first-arrival at +%s; %d arrived more than 10s after it); duplicates %d (bound %d)",
		len(want), time.Since(restart).Round(time.Millisecond), last.Round(time.Millisecond), late, rc.duplicates(), recent+64)

	// Nothing arrived that is not a stored event.
	received := rc.ids()
	poll.Until(t, 30*time.Second, func() error {
		stored := allIDs(t, p2.base)
		for _, id := range received {
			if _, ok := slices.BinarySearch(stored, id); !ok {
				return fmt.Errorf("received id %d is not stored (yet)", id)
			}
		}
		return nil
	})
}

// TestDeadLettersAndRedeliver: a receiver refusing one event type with 400 gets the others;
// the refused ones are dead letters, and once the receiver takes them they are redelivered.
func TestDeadLettersAndRedeliver(t *testing.T) {
	rc := newReceiver(t, "127.0.0.1:0")
	rc.setStatus(func(typ string) int {
		if typ == "user_blocked" {
			return http.StatusBadRequest
		}
		return http.StatusOK
	})
	p := serve(t, t.TempDir(), allowPrivate)
	gid, _ := createDestination(t, p.base, rc.url())
	rc.waitCreation(t)

	ids := mustIngest(t, p.base, events(300, func(i int) string {
		if i%10 == 3 {
			return "user_blocked"
		}
		return "user_created"
	}))
	require.Len(t, ids, 300)
	var blocked, others []int64
	for i, id := range ids {
		if i%10 == 3 {
			blocked = append(blocked, id)
		} else {
			others = append(others, id)
		}
	}
	poll.Until(t, 30*time.Second, func() error {
		if miss := rc.missing(others); len(miss) > 0 {
			return fmt.Errorf("%d of %d not delivered", len(miss), len(others))
		}
		return nil
	})
	var dl deadLetters
	poll.Until(t, 30*time.Second, func() error {
		dl = deadLettersOf(t, p.base, gid)
		if dl.Count != len(blocked) {
			return fmt.Errorf("%d dead letters, want %d", dl.Count, len(blocked))
		}
		return nil
	})
	require.Len(t, dl.Nodes, len(blocked))
	var got []int64
	for _, n := range dl.Nodes {
		id, err := strconv.ParseInt(n.EventID, 10, 64)
		require.NoError(t, err)
		got = append(got, id)
		require.Equal(t, "user_blocked", n.EventType)
		require.NotNil(t, n.StatusCode)
		require.Equal(t, 400, *n.StatusCode)
		require.Contains(t, n.Error, "400")
		require.Equal(t, 1, n.Attempts, "a permanent failure is not retried")
	}
	slices.Sort(got)
	require.Equal(t, blocked, got)
	require.Zero(t, rc.countOf(blocked))

	st := statusOf(t, p.base, gid)
	t.Logf("before redelivery: %s; receiver answered %v", st, rc.answers())
	require.Equal(t, len(blocked), st.DeadLetterCount)
	require.Equal(t, len(blocked), st.DeadLetteredEvents)
	require.NotNil(t, st.LastError)
	require.NotNil(t, st.LastError.StatusCode)
	require.Equal(t, 400, *st.LastError.StatusCode)

	// The receiver is fixed: redeliver them all.
	rc.setStatus(nil)
	data := gql(t, p.base, `mutation($id: ID!) { auditEventStreamingDestinationDeadLettersRedeliver(input: {destinationId: $id}) { errors delivered failed lastError } }`,
		map[string]any{"id": gid})
	res := data["auditEventStreamingDestinationDeadLettersRedeliver"].(map[string]any)
	require.Empty(t, res["errors"])
	require.EqualValues(t, len(blocked), res["delivered"])
	require.EqualValues(t, 0, res["failed"])
	require.Nil(t, res["lastError"])
	require.Zero(t, deadLettersOf(t, p.base, gid).Count)
	st = statusOf(t, p.base, gid)
	require.Zero(t, st.DeadLetterCount)
	for _, id := range blocked {
		require.Equal(t, 1, rc.times(id), "dead letter %d redelivered once", id)
	}
	t.Logf("after redelivery: %s", st)
}

// TestSlowDestinationDoesNotSlowOthers: one receiver takes 2s per request, another answers at
// once. The fast one gets every event promptly and ingest stays fast.
func TestSlowDestinationDoesNotSlowOthers(t *testing.T) {
	slow := newReceiver(t, "127.0.0.1:0")
	slow.setDelay(2 * time.Second)
	fast := newReceiver(t, "127.0.0.1:0")
	p := serve(t, t.TempDir(), allowPrivate)
	slowID, _ := createDestination(t, p.base, slow.url())
	fastID, _ := createDestination(t, p.base, fast.url())
	fast.waitCreation(t)

	start := time.Now()
	var ids []int64
	var slowest time.Duration
	for range 20 {
		got, took, err := ingest(p.base, events(100, userCreated))
		require.NoError(t, err)
		ids = append(ids, got...)
		slowest = max(slowest, took)
	}
	ingestTime := time.Since(start)
	poll.Until(t, 30*time.Second, func() error {
		if miss := fast.missing(ids); len(miss) > 0 {
			return fmt.Errorf("fast receiver lacks %d of %d", len(miss), len(ids))
		}
		return nil
	})
	fastTime := time.Since(start)
	slowGot := slow.countOf(ids)
	slowSt := statusOf(t, p.base, slowID)
	fastSt := statusOf(t, p.base, fastID)
	t.Logf("2,000 events: ingested in %s (slowest request %s); fast receiver had all after %s; slow receiver had %d; slow status %s; fast status %s",
		ingestTime.Round(time.Millisecond), slowest.Round(time.Millisecond), fastTime.Round(time.Millisecond), slowGot, slowSt, fastSt)
	require.Less(t, slowest, time.Second, "ingest latency")
	require.Less(t, fastTime, 10*time.Second, "the fast destination is held up")
	require.Less(t, slowGot, 200, "the slow destination cannot be this far")
	require.Greater(t, slowSt.pending(), 1500)
	poll.Until(t, 10*time.Second, func() error {
		if st := statusOf(t, p.base, fastID); st.pending() != 0 || st.Status != "healthy" {
			return fmt.Errorf("fast status %s", st)
		}
		return nil
	})
}

// TestSSRFRefusedByDefault: without --allow-private-destinations, destinations on loopback,
// private and metadata addresses are refused at dial time, say why, and the receivers behind
// them see nothing. --destination-allow-cidrs lets one range through.
func TestSSRFRefusedByDefault(t *testing.T) {
	rc4 := newReceiver(t, "127.0.0.1:0")
	var rc6 *receiver
	if l, err := net.Listen("tcp", "[::1]:0"); err == nil {
		l.Close()
		rc6 = newReceiver(t, "[::1]:0")
	} else {
		t.Logf("no IPv6 loopback here (%v): the [::1] cases are skipped", err)
	}
	p := serve(t, t.TempDir())
	cases := []struct{ name, url, reason string }{
		{"loopback", rc4.url(), "loopback"},
		{"private", "http://10.0.0.1/", "private"},
		{"metadata", "http://169.254.169.254/latest/meta-data", "metadata"},
		{"localhost", "http://localhost:" + rc4.port() + "/", "loopback"},
	}
	if rc6 != nil {
		cases = append(cases, struct{ name, url, reason string }{"IPv6 loopback", rc6.url(), "loopback"})
	}
	gids := make([]string, len(cases))
	for i, c := range cases {
		gids[i], _ = createDestination(t, p.base, c.url)
		res := sendTestEvent(t, p.base, gids[i])
		t.Logf("%s (%s): test event %+v, error %q", c.name, c.url, res, deref(res.Error))
		require.False(t, res.Success, c.name)
		require.NotNil(t, res.Error, c.name)
		require.Contains(t, *res.Error, c.reason, c.name)
		require.Contains(t, *res.Error, "--allow-private-destinations", c.name)
		require.Nil(t, res.StatusCode, c.name)
	}
	mustIngest(t, p.base, events(1, userCreated))
	for i, c := range cases {
		var st deliveryStatus
		poll.Until(t, 30*time.Second, func() error {
			st = statusOf(t, p.base, gids[i])
			if st.LastError == nil || !strings.Contains(st.LastError.Message, c.reason) || st.DeadLetterCount < 1 {
				return fmt.Errorf("status %s", st)
			}
			return nil
		})
		// Refused for good: no circuit (one refused event must not hold others back), but the
		// status says the destination is failing.
		require.Equal(t, "failing", st.Status, c.name)
		require.Nil(t, st.LastError.StatusCode, c.name)
		require.Zero(t, st.DeliveredEvents, c.name)
	}
	require.Zero(t, rc4.requests.Load(), "the IPv4 loopback receiver got requests")
	if rc6 != nil {
		require.Zero(t, rc6.requests.Load(), "the IPv6 loopback receiver got requests")
	}

	// Allowed by CIDR: 127.0.0.1 works, ::1 stays refused.
	p2 := serve(t, t.TempDir(), "AUDITSTREAM_DESTINATION_ALLOW_CIDRS=127.0.0.1/32")
	ok := newReceiver(t, "127.0.0.1:0")
	gid, _ := createDestination(t, p2.base, ok.url())
	res := sendTestEvent(t, p2.base, gid)
	require.True(t, res.Success, "%+v %s", res, deref(res.Error))
	require.NotNil(t, res.StatusCode)
	require.Equal(t, 200, *res.StatusCode)
	ids := mustIngest(t, p2.base, events(1, userCreated))
	poll.Until(t, 30*time.Second, func() error {
		if miss := ok.missing(ids); len(miss) > 0 {
			return fmt.Errorf("not delivered: %v", miss)
		}
		return nil
	})
	if rc6 != nil {
		gid6, _ := createDestination(t, p2.base, rc6.url())
		res = sendTestEvent(t, p2.base, gid6)
		require.False(t, res.Success)
		require.Contains(t, deref(res.Error), "loopback")
		require.Zero(t, rc6.requests.Load())
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// TestTestEventAndReplay: the test event reaches the receiver with its own type, and a replay
// since a minute ago delivers the earlier events a second time.
func TestTestEventAndReplay(t *testing.T) {
	rc := newReceiver(t, "127.0.0.1:0")
	p := serve(t, t.TempDir(), allowPrivate)
	gid, _ := createDestination(t, p.base, rc.url())
	selfID := rc.waitCreation(t)
	ids := append(mustIngest(t, p.base, events(20, userCreated)), selfID)
	poll.Until(t, 30*time.Second, func() error {
		if miss := rc.missing(ids); len(miss) > 0 {
			return fmt.Errorf("not delivered: %v", miss)
		}
		return nil
	})

	res := sendTestEvent(t, p.base, gid)
	require.True(t, res.Success, "%+v %s", res, deref(res.Error))
	require.NotNil(t, res.StatusCode)
	require.Equal(t, 200, *res.StatusCode)
	require.Nil(t, res.Error)
	tests := rc.testEvents()
	require.Len(t, tests, 1, "the test event is sent synchronously")
	require.Equal(t, testEventType, tests[0].Get("X-Gitlab-Audit-Event-Type"))
	require.NotEmpty(t, tests[0].Get("webhook-signature"))

	data := gql(t, p.base, `mutation($id: ID!, $since: Time!) { auditEventStreamingDestinationReplay(input: {destinationId: $id, since: $since}) { errors } }`,
		map[string]any{"id": gid, "since": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)})
	require.Empty(t, data["auditEventStreamingDestinationReplay"].(map[string]any)["errors"])
	poll.Until(t, 30*time.Second, func() error {
		for _, id := range ids {
			if n := rc.times(id); n < 2 {
				return fmt.Errorf("event %d delivered %d times", id, n)
			}
		}
		return nil
	})
	for _, id := range ids {
		require.Equal(t, 2, rc.times(id), "event %d", id)
	}
}

// createGroupDestinations creates n top-level groups (through an event each) with an http
// destination each, to url, a few at a time, and returns the groups' paths. The process must
// run with AUDITSTREAM_CONFIG_MUTATIONS_PER_MINUTE=0.
func createGroupDestinations(t *testing.T, base, url string, n int) []string {
	t.Helper()
	paths := make([]string, n)
	for i := range n {
		paths[i] = fmt.Sprintf("many-%d", i)
	}
	mustIngest(t, base, groupEvents(paths, "group_created"))
	work := make(chan string)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for path := range work {
				data := gql(t, base, `mutation($path: ID!, $cfg: JSON!) { groupAuditEventStreamingDestinationsCreate(input: {groupPath: $path, category: "http", config: $cfg}) { errors } }`,
					map[string]any{"path": path, "cfg": map[string]any{"url": url}})
				if errs := data["groupAuditEventStreamingDestinationsCreate"].(map[string]any)["errors"]; len(errs.([]any)) > 0 {
					t.Errorf("creating the destination of %s: %v", path, errs)
				}
			}
		}()
	}
	for _, p := range paths {
		work <- p
	}
	close(work)
	wg.Wait()
	return paths
}

// groupEvents is one event of the type for each group path (made by createGroupDestinations),
// as a JSON array.
func groupEvents(paths []string, eventType string) []byte {
	evs := make([]map[string]any, len(paths))
	for i, p := range paths {
		evs[i] = map[string]any{"event_type": eventType, "entity_type": "Group", "entity_id": 900000 + i, "entity_path": p, "author_id": 1}
	}
	b, _ := json.Marshal(evs)
	return b
}

// TestShutdownWithManyDestinations: with a thousand destinations and requests hanging at a
// receiver, SIGTERM ends the process within 5 s with exit code 0, and the events it could not
// deliver are delivered after the restart.
func TestShutdownWithManyDestinations(t *testing.T) {
	if testing.Short() {
		t.Skip("a thousand destinations")
	}
	rc := newReceiver(t, "127.0.0.1:0")
	dataDir := t.TempDir()
	// info: a failure shows the server's "stopped" line, with how long each step took.
	env := []string{allowPrivate, "AUDITSTREAM_CONFIG_MUTATIONS_PER_MINUTE=0", "AUDITSTREAM_LOG_LEVEL=info"}
	p := serve(t, dataDir, env...)
	paths := createGroupDestinations(t, p.base, rc.url(), 1000)
	rc.setDelay(time.Hour) // every request hangs: deliveries are under way at SIGTERM
	want := mustIngest(t, p.base, groupEvents(paths, "member_created"))
	poll.Until(t, 30*time.Second, func() error {
		if n := rc.requests.Load(); n < 100 {
			return fmt.Errorf("%d requests under way", n)
		}
		return nil
	})
	start := time.Now()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("did not exit within 30s of SIGTERM")
	}
	took := time.Since(start)
	require.Equal(t, 0, p.cmd.ProcessState.ExitCode(), p.out.String())
	require.LessOrEqual(t, took, 5*time.Second, "SIGTERM to exit")
	t.Logf("exited %s after SIGTERM with %d requests under way", took.Round(time.Millisecond), rc.requests.Load())

	rc.setDelay(0)
	p2 := serve(t, dataDir, env...)
	_ = p2
	poll.Until(t, 60*time.Second, func() error {
		if miss := rc.missing(want); len(miss) > 0 {
			return fmt.Errorf("%d of %d events not delivered, e.g. %v", len(miss), len(want), miss[:min(len(miss), 10)])
		}
		return nil
	})
}

package splunkhec

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// hecServer is a Splunk HTTP Event Collector for tests, written from Splunk's documentation
// ("Format events for HTTP Event Collector", "HTTP Event Collector REST API endpoints",
// "About HTTP Event Collector Indexer Acknowledgment", "Troubleshoot HTTP Event Collector"),
// independently of the Sender: it has its own table of HEC codes. It is proven against a real
// HEC client, npm's splunk-logging (splunklogging_test.go), before the Sender is tested
// against it.
//
// What it implements:
//   - POST /services/collector/event (also /services/collector and /services/collector/event/1.0,
//     which HEC serves the same): concatenated JSON event objects, optionally gzip-compressed.
//     Empty body: 400 code 5. A body that is not a series of JSON objects: 400 code 6. An object
//     without "event": 400 code 12; with a null or "" event: 400 code 13; with a time that is
//     not a number (or a string holding one), or host/source/sourcetype/index that are not
//     strings: 400 code 6; with "fields" that are not an object of strings or string arrays:
//     400 code 15; with an index the token may not write to: 400 code 7. These carry
//     "invalid-event-number", the index from 0 of the event at fault. A request is taken all
//     or nothing (real HEC may index the events before the bad one).
//   - POST /services/collector/raw: one event per line, metadata from the query string.
//   - authentication: Authorization: Splunk <token> (or Basic with the token as password).
//     No header: 401 code 2; another scheme or an empty token: 401 code 3; an unknown token:
//     403 code 4; a disabled token: 403 code 1; the token in the query string: 400 code 16.
//   - channels: X-Splunk-Request-Channel or the channel query parameter. Required when the
//     token has indexer acknowledgement (400 code 10); must be a GUID (400 code 11). With
//     acknowledgement the answer carries ackId, counted per channel from 0.
//   - POST /services/collector/ack?channel=<GUID> with {"acks":[ids]}: {"acks":{"<id>":bool}}.
//     An id reads true from poll ackAfter on (1: the first poll; -1: never) and is then
//     forgotten, as HEC does. A token without acknowledgement: 400 code 14.
//   - GET /services/collector/health: 200 code 17, or 503 code 18 when busy; with a token,
//     400 code 21 (unknown) or 22 (disabled).
//   - busy mode: data requests get 503 code 9 "Server is busy" (with Retry-After if set).
//   - failWith: data requests get the given code with its documented HTTP status.
//   - other paths: 404.
//
// It records every request and every event it indexed.
type hecServer struct {
	*httptest.Server

	mu             sync.Mutex
	tokens         map[string]hecToken
	busy           bool
	busyRetryAfter string
	failCode       int // when non-zero, data requests get this code
	ackAfter       int
	channels       map[string]*hecChannel
	indexed        []indexedEvent
	requests       []hecRequest
	ackQueries     int
}

// hecToken is a HEC token's settings.
type hecToken struct {
	Disabled bool
	Ack      bool     // indexer acknowledgement
	Indexes  []string // the indexes it may write to; empty: any
}

type hecChannel struct {
	next    int64
	pending map[int64]int // ackId → polls so far
}

// indexedEvent is an event the server took.
type indexedEvent struct {
	Endpoint   string   // "event" or "raw"
	Channel    string   // the request's channel, if any
	Keys       []string // the members of the event object, sorted (raw: none)
	Time       string   // the time member as sent: a JSON number's text, or a string's content
	Host       string
	Source     string
	Sourcetype string
	Index      string
	Event      json.RawMessage // raw: the line as a JSON string
	Fields     map[string]json.RawMessage
}

// hecRequest is a request the server received.
type hecRequest struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   []byte
}

// hecStatus is a documented HEC code: its HTTP status and text.
type hecStatus struct {
	status int
	text   string
}

// hecStatuses are HEC's documented codes (Troubleshoot HTTP Event Collector).
var hecStatuses = map[int]hecStatus{
	0:  {200, "Success"},
	1:  {403, "Token disabled"},
	2:  {401, "Token is required"},
	3:  {401, "Invalid authorization"},
	4:  {403, "Invalid token"},
	5:  {400, "No data"},
	6:  {400, "Invalid data format"},
	7:  {400, "Incorrect index"},
	8:  {500, "Internal server error"},
	9:  {503, "Server is busy"},
	10: {400, "Data channel is missing"},
	11: {400, "Invalid data channel"},
	12: {400, "Event field is required"},
	13: {400, "Event field cannot be blank"},
	14: {400, "ACK is disabled"},
	15: {400, "Error in handling indexed fields"},
	16: {400, "Query string authorization is not enabled"},
	17: {200, "HEC is healthy"},
	18: {503, "HEC is unhealthy, queues are full"},
	19: {503, "HEC is unhealthy, ack service unavailable"},
	20: {503, "HEC is unhealthy, queues are full, ack service unavailable"},
	21: {400, "Invalid token"},
	22: {400, "Token disabled"},
	23: {503, "Server is shutting down"},
	24: {200, "HEC queue is approaching its capacity limit"},
	25: {200, "HEC ACK is approaching its capacity limit"},
	26: {429, "HEC queue is at capacity and cannot process any more requests"},
	27: {429, "HEC ACK channel is at capacity and cannot process any more requests"},
}

var guidPattern = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)

// newHECServer starts a HEC server that knows no token yet and acknowledges on the first poll.
func newHECServer(t testing.TB) *hecServer {
	s := &hecServer{tokens: map[string]hecToken{}, channels: map[string]*hecChannel{}, ackAfter: 1}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *hecServer) addToken(token string, t hecToken) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[token] = t
}

// setBusy turns the busy mode on or off; retryAfter, when not empty, is sent as Retry-After.
func (s *hecServer) setBusy(busy bool, retryAfter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.busy, s.busyRetryAfter = busy, retryAfter
}

// failWith makes data requests fail with code (0: no more).
func (s *hecServer) failWith(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failCode = code
}

// setAckAfter makes ackIds read true from poll n on (1: the first), never when n < 0.
func (s *hecServer) setAckAfter(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ackAfter = n
}

func (s *hecServer) indexedEvents() []indexedEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.indexed)
}

func (s *hecServer) received() []hecRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// dataRequests are the requests to the event and raw endpoints.
func (s *hecServer) dataRequests() []hecRequest {
	var out []hecRequest
	for _, r := range s.received() {
		if strings.HasPrefix(r.Path, "/services/collector") && !strings.HasPrefix(r.Path, "/services/collector/ack") &&
			!strings.HasPrefix(r.Path, "/services/collector/health") {
			out = append(out, r)
		}
	}
	return out
}

func (s *hecServer) ackQueryCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ackQueries
}

// hecReply is the body of a HEC answer, members in HEC's order.
type hecReply struct {
	Text         string `json:"text"`
	Code         int    `json:"code"`
	InvalidEvent *int   `json:"invalid-event-number,omitempty"`
	AckID        *int64 `json:"ackId,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeCode answers code with its documented HTTP status and text.
func writeCode(w http.ResponseWriter, code int) {
	writeJSON(w, hecStatuses[code].status, hecReply{Text: hecStatuses[code].text, Code: code})
}

func writeEventCode(w http.ResponseWriter, code, invalidEvent int) {
	writeJSON(w, hecStatuses[code].status, hecReply{Text: hecStatuses[code].text, Code: code, InvalidEvent: &invalidEvent})
}

func (s *hecServer) serve(w http.ResponseWriter, r *http.Request) {
	body, err := readRequestBody(r)
	s.mu.Lock()
	s.requests = append(s.requests, hecRequest{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
	s.mu.Unlock()
	if err != nil {
		writeCode(w, 6)
		return
	}
	path := strings.TrimSuffix(r.URL.Path, "/")
	switch path {
	case "/services/collector/health", "/services/collector/health/1.0":
		s.health(w, r)
	case "/services/collector", "/services/collector/event", "/services/collector/event/1.0":
		s.data(w, r, body, false)
	case "/services/collector/raw", "/services/collector/raw/1.0":
		s.data(w, r, body, true)
	case "/services/collector/ack":
		s.ack(w, r, body)
	default:
		writeJSON(w, http.StatusNotFound, hecReply{Text: "The requested URL was not found on this server.", Code: 404})
	}
}

func readRequestBody(r *http.Request) ([]byte, error) {
	var rd io.Reader = r.Body
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, err
		}
		rd = zr
	}
	return io.ReadAll(rd)
}

// authenticate returns the request's token, or the HEC code that refuses it.
func (s *hecServer) authenticate(r *http.Request) (hecToken, int) {
	if r.URL.Query().Has("token") {
		return hecToken{}, 16
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return hecToken{}, 2
	}
	scheme, cred, _ := strings.Cut(h, " ")
	var token string
	switch strings.ToLower(scheme) {
	case "splunk":
		token = strings.TrimSpace(cred)
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
		if err != nil {
			return hecToken{}, 3
		}
		_, token, _ = strings.Cut(string(raw), ":")
	default:
		return hecToken{}, 3
	}
	if token == "" {
		return hecToken{}, 3
	}
	s.mu.Lock()
	t, ok := s.tokens[token]
	s.mu.Unlock()
	switch {
	case !ok:
		return hecToken{}, 4
	case t.Disabled:
		return hecToken{}, 1
	}
	return t, 0
}

// channelOf returns the request's channel: the header, or the query parameter.
func channelOf(r *http.Request) string {
	if c := r.Header.Get("X-Splunk-Request-Channel"); c != "" {
		return c
	}
	return r.URL.Query().Get("channel")
}

func (s *hecServer) health(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "" {
		switch _, code := s.authenticate(r); code {
		case 0:
		case 1:
			writeCode(w, 22)
			return
		default:
			writeCode(w, 21)
			return
		}
	}
	s.mu.Lock()
	busy := s.busy
	s.mu.Unlock()
	if busy {
		writeCode(w, 18)
		return
	}
	writeCode(w, 17)
}

func (s *hecServer) data(w http.ResponseWriter, r *http.Request, body []byte, raw bool) {
	if r.Method != http.MethodPost {
		// Not in Splunk's table: HEC takes data by POST only.
		writeJSON(w, http.StatusMethodNotAllowed, hecReply{Text: hecStatuses[6].text, Code: 6})
		return
	}
	token, code := s.authenticate(r)
	if code != 0 {
		writeCode(w, code)
		return
	}
	s.mu.Lock()
	busy, retryAfter, failCode := s.busy, s.busyRetryAfter, s.failCode
	s.mu.Unlock()
	if busy {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		writeCode(w, 9)
		return
	}
	if failCode != 0 {
		writeCode(w, failCode)
		return
	}
	channel := channelOf(r)
	switch {
	case channel == "" && token.Ack:
		writeCode(w, 10)
		return
	case channel != "" && !guidPattern.MatchString(channel):
		writeCode(w, 11)
		return
	}
	if len(bytes.TrimSpace(body)) == 0 {
		writeCode(w, 5)
		return
	}
	var events []indexedEvent
	if raw {
		events, code = parseRaw(r, body, token)
		if code != 0 {
			writeCode(w, code)
			return
		}
	} else {
		var at int
		events, code, at = parseEvents(body, token)
		if code != 0 {
			writeEventCode(w, code, at)
			return
		}
	}
	for i := range events {
		events[i].Channel = channel
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.indexed = append(s.indexed, events...)
	rep := hecReply{Text: "Success", Code: 0}
	if token.Ack {
		ch := s.channels[channel]
		if ch == nil {
			ch = &hecChannel{pending: map[int64]int{}}
			s.channels[channel] = ch
		}
		id := ch.next
		ch.next++
		ch.pending[id] = 0
		rep.AckID = &id
	}
	writeJSON(w, http.StatusOK, rep)
}

// parseEvents reads concatenated HEC event objects. On a problem it returns the HEC code and
// the index of the event at fault.
func parseEvents(body []byte, token hecToken) ([]indexedEvent, int, int) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var events []indexedEvent
	for i := 0; ; i++ {
		var obj map[string]json.RawMessage
		err := dec.Decode(&obj)
		if err == io.EOF {
			return events, 0, 0
		}
		if err != nil || obj == nil {
			return nil, 6, i
		}
		ev, code := parseEvent(obj, token)
		if code != 0 {
			return nil, code, i
		}
		events = append(events, ev)
	}
}

func parseEvent(obj map[string]json.RawMessage, token hecToken) (indexedEvent, int) {
	ev := indexedEvent{Endpoint: "event"}
	for k := range obj {
		ev.Keys = append(ev.Keys, k)
	}
	sort.Strings(ev.Keys)
	e, ok := obj["event"]
	if !ok {
		return ev, 12
	}
	if t := string(bytes.TrimSpace(e)); t == "null" || t == `""` {
		return ev, 13
	}
	ev.Event = e
	if t, ok := obj["time"]; ok {
		var num json.Number
		var str string
		switch {
		case json.Unmarshal(t, &num) == nil:
			ev.Time = num.String()
		case json.Unmarshal(t, &str) == nil:
			if _, err := strconv.ParseFloat(str, 64); err != nil {
				return ev, 6
			}
			ev.Time = str
		default:
			return ev, 6
		}
	}
	for key, dst := range map[string]*string{"host": &ev.Host, "source": &ev.Source, "sourcetype": &ev.Sourcetype, "index": &ev.Index} {
		if v, ok := obj[key]; ok && json.Unmarshal(v, dst) != nil {
			return ev, 6
		}
	}
	if f, ok := obj["fields"]; ok {
		if json.Unmarshal(f, &ev.Fields) != nil {
			return ev, 15
		}
		for _, v := range ev.Fields {
			var str string
			var strs []string
			if json.Unmarshal(v, &str) != nil && json.Unmarshal(v, &strs) != nil {
				return ev, 15
			}
		}
	}
	if !indexAllowed(token, ev.Index) {
		return ev, 7
	}
	return ev, 0
}

func indexAllowed(token hecToken, index string) bool {
	return index == "" || len(token.Indexes) == 0 || slices.Contains(token.Indexes, index)
}

// parseRaw reads the body of a raw request: one event per line.
func parseRaw(r *http.Request, body []byte, token hecToken) ([]indexedEvent, int) {
	q := r.URL.Query()
	if !indexAllowed(token, q.Get("index")) {
		return nil, 7
	}
	var events []indexedEvent
	for line := range strings.Lines(string(body)) {
		line = strings.TrimRight(line, "\r\n")
		if strings.TrimSpace(line) == "" {
			continue
		}
		js, _ := json.Marshal(line)
		events = append(events, indexedEvent{
			Endpoint: "raw", Event: js,
			Host: q.Get("host"), Source: q.Get("source"), Sourcetype: q.Get("sourcetype"), Index: q.Get("index"),
		})
	}
	if len(events) == 0 {
		return nil, 5
	}
	return events, 0
}

func (s *hecServer) ack(w http.ResponseWriter, r *http.Request, body []byte) {
	s.mu.Lock()
	s.ackQueries++
	s.mu.Unlock()
	if r.Method != http.MethodPost {
		writeJSON(w, http.StatusMethodNotAllowed, hecReply{Text: hecStatuses[6].text, Code: 6})
		return
	}
	token, code := s.authenticate(r)
	if code != 0 {
		writeCode(w, code)
		return
	}
	if !token.Ack {
		writeCode(w, 14)
		return
	}
	channel := channelOf(r)
	switch {
	case channel == "":
		writeCode(w, 10)
		return
	case !guidPattern.MatchString(channel):
		writeCode(w, 11)
		return
	}
	var q struct {
		Acks []int64 `json:"acks"`
	}
	if json.Unmarshal(body, &q) != nil || q.Acks == nil {
		writeCode(w, 6)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]bool{}
	ch := s.channels[channel]
	for _, id := range q.Acks {
		key := strconv.FormatInt(id, 10)
		out[key] = false
		if ch == nil {
			continue
		}
		polls, ok := ch.pending[id]
		if !ok {
			continue
		}
		polls++
		ch.pending[id] = polls
		if s.ackAfter >= 0 && polls >= max(s.ackAfter, 1) {
			out[key] = true
			delete(ch.pending, id) // HEC forgets an ackId once it has reported it true
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"acks": out})
}

// The server's own tests: what it answers to plain HTTP requests.

const (
	testToken     = "11111111-2222-3333-4444-555555555555"
	ackToken      = "66666666-7777-8888-9999-000000000000"
	disabledToken = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
	testChannel   = "FE0ECFAD-13D5-401B-847D-77833BD77131"
)

func newTestHEC(t testing.TB) *hecServer {
	s := newHECServer(t)
	s.addToken(testToken, hecToken{Indexes: []string{"main", "audit"}})
	s.addToken(ackToken, hecToken{Ack: true})
	s.addToken(disabledToken, hecToken{Disabled: true})
	return s
}

// do sends a request to the server and returns the status and the decoded HEC reply.
func do(t *testing.T, method, url, auth, channel, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if channel != "" {
		req.Header.Set("X-Splunk-Request-Channel", channel)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type %q", ct)
	}
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

func wantCode(t *testing.T, status int, out map[string]any, wantStatus, code int) {
	t.Helper()
	if status != wantStatus || out["code"] != float64(code) || out["text"] != hecStatuses[code].text {
		t.Fatalf("got %d %v, want %d code %d %q", status, out, wantStatus, code, hecStatuses[code].text)
	}
}

func TestHECServerAnswersAsDocumented(t *testing.T) {
	s := newTestHEC(t)
	ev := s.URL + "/services/collector/event"
	auth := "Splunk " + testToken
	cases := []struct {
		name, method, url, auth, channel, body string
		status, code                           int
	}{
		{"success", "POST", ev, auth, "", `{"event":{"a":1}}`, 200, 0},
		{"no authorization", "POST", ev, "", "", `{"event":"x"}`, 401, 2},
		{"other scheme", "POST", ev, "Bearer " + testToken, "", `{"event":"x"}`, 401, 3},
		{"empty token", "POST", ev, "Splunk ", "", `{"event":"x"}`, 401, 3},
		{"unknown token", "POST", ev, "Splunk nope-nope", "", `{"event":"x"}`, 403, 4},
		{"disabled token", "POST", ev, "Splunk " + disabledToken, "", `{"event":"x"}`, 403, 1},
		{"query string token", "POST", ev + "?token=" + testToken, "", "", `{"event":"x"}`, 400, 16},
		{"basic auth", "POST", ev, "Basic " + base64.StdEncoding.EncodeToString([]byte("x:"+testToken)), "", `{"event":"x"}`, 200, 0},
		{"no data", "POST", ev, auth, "", " \n", 400, 5},
		{"not JSON", "POST", ev, auth, "", `{"event":`, 400, 6},
		{"array", "POST", ev, auth, "", `[{"event":"x"}]`, 400, 6},
		{"event required", "POST", ev, auth, "", `{"time":1}`, 400, 12},
		{"event null", "POST", ev, auth, "", `{"event":null}`, 400, 13},
		{"event empty", "POST", ev, auth, "", `{"event":""}`, 400, 13},
		{"time not a number", "POST", ev, auth, "", `{"time":"soon","event":"x"}`, 400, 6},
		{"host not a string", "POST", ev, auth, "", `{"host":1,"event":"x"}`, 400, 6},
		{"bad fields", "POST", ev, auth, "", `{"fields":{"a":{"b":1}},"event":"x"}`, 400, 15},
		{"index not allowed", "POST", ev, auth, "", `{"index":"secret","event":"x"}`, 400, 7},
		{"ack token without channel", "POST", ev, "Splunk " + ackToken, "", `{"event":"x"}`, 400, 10},
		{"invalid channel", "POST", ev, auth, "not-a-guid", `{"event":"x"}`, 400, 11},
		{"ack disabled", "POST", s.URL + "/services/collector/ack?channel=" + testChannel, auth, "", `{"acks":[0]}`, 400, 14},
		{"health", "GET", s.URL + "/services/collector/health", "", "", "", 200, 17},
		{"health unknown token", "GET", s.URL + "/services/collector/health", "Splunk nope-nope", "", "", 400, 21},
		{"health disabled token", "GET", s.URL + "/services/collector/health", "Splunk " + disabledToken, "", "", 400, 22},
		{"event/1.0", "POST", ev + "/1.0", auth, "", `{"event":"x"}`, 200, 0},
		{"collector", "POST", s.URL + "/services/collector", auth, "", `{"event":"x"}`, 200, 0},
		{"raw", "POST", s.URL + "/services/collector/raw?sourcetype=st", auth, "", "line one\nline two\n", 200, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, out := do(t, c.method, c.url, c.auth, c.channel, c.body)
			wantCode(t, status, out, c.status, c.code)
		})
	}

	status, out := do(t, "POST", ev, auth, "", `{"event":"a"}{"event":"b"}{"event":null}`)
	wantCode(t, status, out, 400, 13)
	if out["invalid-event-number"] != float64(2) {
		t.Fatalf("invalid-event-number: %v", out)
	}
	status, out = do(t, "POST", s.URL+"/nope", auth, "", "")
	if status != 404 || out["code"] != float64(404) {
		t.Fatalf("unknown path: %d %v", status, out)
	}

	var raws []indexedEvent
	for _, e := range s.indexedEvents() {
		if e.Endpoint == "raw" {
			raws = append(raws, e)
		}
	}
	if len(raws) != 2 || string(raws[0].Event) != `"line one"` || raws[1].Sourcetype != "st" {
		t.Fatalf("raw events: %+v", raws)
	}
}

func TestHECServerBatchIsAllOrNothingAndRecorded(t *testing.T) {
	s := newTestHEC(t)
	ev := s.URL + "/services/collector/event"
	status, out := do(t, "POST", ev, "Splunk "+testToken, "", `{"event":"a"}`+"\n"+`{"event":"b","index":"nope"}`)
	wantCode(t, status, out, 400, 7)
	if out["invalid-event-number"] != float64(1) || len(s.indexedEvents()) != 0 {
		t.Fatalf("%v, indexed %d", out, len(s.indexedEvents()))
	}
	status, out = do(t, "POST", ev, "Splunk "+testToken, "",
		`{"time":"1732626000.123","host":"h","source":"s","sourcetype":"st","index":"audit","fields":{"f":"v","g":["1","2"]},"event":{"a":1}}{"time":1.5,"event":"b"}`)
	wantCode(t, status, out, 200, 0)
	got := s.indexedEvents()
	if len(got) != 2 {
		t.Fatalf("indexed %+v", got)
	}
	e := got[0]
	if e.Time != "1732626000.123" || e.Host != "h" || e.Source != "s" || e.Sourcetype != "st" || e.Index != "audit" ||
		string(e.Event) != `{"a":1}` || len(e.Fields) != 2 || got[1].Time != "1.5" {
		t.Fatalf("indexed %+v", got)
	}
}

func TestHECServerBusy(t *testing.T) {
	s := newTestHEC(t)
	s.setBusy(true, "7")
	req, _ := http.NewRequest("POST", s.URL+"/services/collector/event", strings.NewReader(`{"event":"x"}`))
	req.Header.Set("Authorization", "Splunk "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	wantCode(t, resp.StatusCode, out, 503, 9)
	if resp.Header.Get("Retry-After") != "7" {
		t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	status, out := do(t, "GET", s.URL+"/services/collector/health", "", "", "")
	wantCode(t, status, out, 503, 18)
}

func TestHECServerAcknowledgement(t *testing.T) {
	s := newTestHEC(t)
	s.setAckAfter(2)
	ev := s.URL + "/services/collector/event"
	auth := "Splunk " + ackToken
	for want := range 2 {
		status, out := do(t, "POST", ev, auth, testChannel, `{"event":"x"}`)
		wantCode(t, status, out, 200, 0)
		if out["ackId"] != float64(want) {
			t.Fatalf("ackId %v, want %d", out["ackId"], want)
		}
	}
	ackURL := s.URL + "/services/collector/ack?channel=" + testChannel
	poll := func() map[string]any {
		status, out := do(t, "POST", ackURL, auth, "", `{"acks":[0,1,7]}`)
		if status != 200 {
			t.Fatalf("ack: %d %v", status, out)
		}
		return out["acks"].(map[string]any)
	}
	if got := poll(); got["0"] != false || got["1"] != false || got["7"] != false {
		t.Fatalf("first poll %v", got)
	}
	if got := poll(); got["0"] != true || got["1"] != true || got["7"] != false {
		t.Fatalf("second poll %v", got)
	}
	if got := poll(); got["0"] != false { // reported once, then forgotten
		t.Fatalf("third poll %v", got)
	}
	status, out := do(t, "POST", s.URL+"/services/collector/ack", auth, "", `{"acks":[0]}`)
	wantCode(t, status, out, 400, 10)
	status, out = do(t, "POST", ackURL, auth, "", `{"acks":"x"}`)
	wantCode(t, status, out, 400, 6)
	if s.ackQueryCount() != 5 {
		t.Fatalf("ack queries %d", s.ackQueryCount())
	}
}

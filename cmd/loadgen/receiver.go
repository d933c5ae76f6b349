package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// clock is the time base of everything the delivery modes record: nanoseconds since the process
// started, monotonic, the same for the sender (send and ack times) and the receivers (arrival).
var clockBase = time.Now()

func clock() int64 { return int64(time.Since(clockBase)) }

// maxTrackedID bounds the event ids a receiver keeps a slot for (ids are the log's sequence
// numbers, dense from 1 on a fresh data directory); larger ones are counted as "other".
const maxTrackedID = 50_000_000

// receiver is one destination's HTTP endpoint: it accepts every POST with 200, parses the event
// ids of the body (one event object, or a JSON array of them), and records when each id first
// arrived, how often ids arrived again, and the send-to-arrival latency of events that carry
// loadgen's send stamp (details.lg_sent_ns).
type receiver struct {
	name string
	addr string // host:port, fixed at creation; the listener may open later (a destination down)

	mu       sync.Mutex
	arrival  []int64 // by event id: clock() of the first arrival, 0 if none
	unique   int64   // ids that arrived at least once
	dups     int64   // arrivals of an id that had already arrived
	dupIDs   []int64 // those ids (the first 100,000)
	other    int64   // events without a usable id
	first    int64   // clock() of the first arrival of anything
	last     int64   // clock() of the last arrival of a new id
	sentLat  []int64 // arrival − lg_sent_ns, per first arrival of a stamped event
	requests int64
	badID    int64 // requests whose webhook-id did not match the body's ids
	badBody  int64 // bodies that were not an event or an array of events

	srv *http.Server
	up  atomic.Bool
}

func newReceiver(name, addr string) *receiver { return &receiver{name: name, addr: addr} }

// freeAddr returns a loopback address nothing listens on right now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// start listens on the receiver's address (from then on requests are accepted).
func (r *receiver) start() error {
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		return err
	}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	r.up.Store(true)
	go func() { _ = r.srv.Serve(ln) }()
	return nil
}

func (r *receiver) stop() {
	if r.srv != nil {
		_ = r.srv.Close()
	}
	r.up.Store(false)
}

var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	buf := bodyPool.Get().(*bytes.Buffer)
	buf.Reset()
	_, err := buf.ReadFrom(req.Body)
	now := clock()
	if err == nil {
		r.record(buf.Bytes(), req.Header.Get("Webhook-Id"), now)
	}
	if buf.Cap() <= 4<<20 {
		bodyPool.Put(buf)
	}
	w.WriteHeader(http.StatusOK)
}

// parsed is what the receiver reads of one event.
type parsed struct {
	id, sent int64 // 0: absent
}

var (
	idPrefix = []byte(`{"id":`)
	sentKey  = []byte(`"lg_sent_ns":`)
)

// parseBody returns the events of a body: one event object or a JSON array of event objects.
func parseBody(b []byte, out []parsed) ([]parsed, error) {
	err := eachEvent(b, func(ev []byte) {
		var p parsed
		if rest, ok := bytes.CutPrefix(ev, idPrefix); ok { // auditstream writes the id first
			p.id = leadingInt(rest)
		} else {
			var v struct {
				ID int64 `json:"id"`
			}
			if json.Unmarshal(ev, &v) == nil {
				p.id = v.ID
			}
		}
		if i := bytes.Index(ev, sentKey); i >= 0 {
			p.sent = leadingInt(ev[i+len(sentKey):])
		}
		out = append(out, p)
	})
	return out, err
}

// leadingInt parses the decimal integer at the start of b (0 if none).
func leadingInt(b []byte) int64 {
	var n int64
	for i, c := range b {
		if c < '0' || c > '9' {
			if i == 0 {
				return 0
			}
			break
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

var errNotEvents = errors.New("not an event object or an array of event objects")

// eachEvent calls f with each top-level event object of b: b itself when it is an object, each
// element when it is an array. Strings are skipped with IndexByte, so a 1 KB event costs little
// more than its structural characters.
func eachEvent(b []byte, f func(ev []byte)) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return errNotEvents
	}
	base := 0 // depth at which events open
	if b[0] == '[' {
		base = 1
	} else if b[0] != '{' {
		return errNotEvents
	}
	depth, start := 0, -1
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			j := i + 1
			for {
				k := bytes.IndexByte(b[j:], '"')
				if k < 0 {
					return errNotEvents
				}
				j += k
				n := 0
				for m := j - 1; m > i && b[m] == '\\'; m-- {
					n++
				}
				if n%2 == 0 {
					break
				}
				j++
			}
			i = j
		case '{', '[':
			if depth == base && b[i] == '{' {
				start = i
			}
			depth++
		case '}', ']':
			depth--
			if depth < 0 {
				return errNotEvents
			}
			if depth == base && b[i] == '}' && start >= 0 {
				f(b[start : i+1])
				start = -1
			}
		}
	}
	if depth != 0 {
		return errNotEvents
	}
	return nil
}

var parsedPool = sync.Pool{New: func() any { s := make([]parsed, 0, 128); return &s }}

func (r *receiver) record(body []byte, webhookID string, now int64) {
	pp := parsedPool.Get().(*[]parsed)
	evs, err := parseBody(body, (*pp)[:0])
	defer func() { *pp = evs[:0]; parsedPool.Put(pp) }()
	wantID := ""
	if len(evs) == 1 && body[0] == '{' {
		wantID = strconv.FormatInt(evs[0].id, 10)
	} else if len(evs) > 0 {
		wantID = strconv.FormatInt(evs[0].id, 10) + "-" + strconv.FormatInt(evs[len(evs)-1].id, 10)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if err != nil || len(evs) == 0 {
		r.badBody++
		return
	}
	if webhookID != wantID {
		r.badID++
	}
	if r.first == 0 {
		r.first = now
	}
	for _, e := range evs {
		if e.id <= 0 || e.id > maxTrackedID {
			r.other++
			continue
		}
		if int(e.id) >= len(r.arrival) {
			r.arrival = append(r.arrival, make([]int64, int(e.id)-len(r.arrival)+1+len(r.arrival)/2)...)
		}
		if r.arrival[e.id] != 0 {
			r.dups++
			if len(r.dupIDs) < 100_000 {
				r.dupIDs = append(r.dupIDs, e.id)
			}
			continue
		}
		r.arrival[e.id] = now
		r.unique++
		r.last = now
		if e.sent > 0 {
			r.sentLat = append(r.sentLat, now-e.sent)
		}
	}
}

// receiverStats is a copy of what a receiver counted.
type receiverStats struct {
	requests, unique, dups, other, badID, badBody int64
	first, last                                   int64
}

func (r *receiver) stats() receiverStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return receiverStats{requests: r.requests, unique: r.unique, dups: r.dups, other: r.other, badID: r.badID, badBody: r.badBody, first: r.first, last: r.last}
}

// arrivalOf returns when id first arrived (0: not yet).
func (r *receiver) arrivalOf(id int64) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if id <= 0 || int(id) >= len(r.arrival) {
		return 0
	}
	return r.arrival[id]
}

// missing counts the ids of want that have not arrived.
func (r *receiver) missing(want []int64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, id := range want {
		if id <= 0 || int(id) >= len(r.arrival) || r.arrival[id] == 0 {
			n++
		}
	}
	return n
}

// arrivals returns the first-arrival times of the ids of want that arrived.
func (r *receiver) arrivals(want []int64) []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]int64, 0, len(want))
	for _, id := range want {
		if id > 0 && int(id) < len(r.arrival) && r.arrival[id] != 0 {
			out = append(out, r.arrival[id])
		}
	}
	return out
}

// duplicatesOf counts the repeated arrivals of ids of want.
func (r *receiver) duplicatesOf(want map[int64]bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, id := range r.dupIDs {
		if want[id] {
			n++
		}
	}
	return n
}

func (r *receiver) sentLatencies() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.sentLat...)
}

func (s receiverStats) String() string {
	return fmt.Sprintf("requests=%d events=%d duplicates=%d other=%d bad-webhook-id=%d bad-body=%d", s.requests, s.unique, s.dups, s.other, s.badID, s.badBody)
}

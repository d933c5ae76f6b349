package eventlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// NamespaceHeader carries the namespace an event was filed under: the keys of its group or
// project and every ancestor, nearest first, comma-separated, prefixed "p:" for a project's
// event and "g:" for a group's. Delivery filters by it without looking a path up again, so a
// rename between ingest and delivery cannot send an event to the wrong group's destinations.
const NamespaceHeader = "Auditstream-Namespace"

// FormatNamespace encodes a namespace chain for NamespaceHeader.
func FormatNamespace(chain []int64, project bool) string {
	if len(chain) == 0 {
		return ""
	}
	b := make([]byte, 0, 2+len(chain)*8)
	if project {
		b = append(b, "p:"...)
	} else {
		b = append(b, "g:"...)
	}
	for i, k := range chain {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, k, 10)
	}
	return string(b)
}

// ParseNamespace decodes NamespaceHeader; ok is false for an empty or malformed value.
func ParseNamespace(v string) (chain []int64, project, ok bool) {
	kind, keys, found := strings.Cut(v, ":")
	if !found || (kind != "p" && kind != "g") || keys == "" {
		return nil, false, false
	}
	for s := range strings.SplitSeq(keys, ",") {
		k, err := strconv.ParseInt(s, 10, 64)
		if err != nil || k <= 0 {
			return nil, false, false
		}
		chain = append(chain, k)
	}
	return chain, kind == "p", true
}

// Reader reads the log in order from a position, with no acknowledgements. Not safe for
// concurrent use.
//
// A process reads the end of the log once however many Readers follow it: a Reader that is at
// the end joins the Log's tail, one reader that hands each event to every Reader on it, and a
// Reader behind it reads with a JetStream ordered consumer of its own until it has caught up.
// A Reader on the tail that does not keep up (its buffer of tailBuffer events is full) leaves
// it and reads on its own again from where it was. So the delivery engine's readers and the
// trail's writer cost one read of each event together, not one each.
type Reader struct {
	l   *Log
	pos int64 // the last event Next returned, or where the reader started
	// Exactly one of own and sub is set until Close.
	own *consumerReader
	sub *tailSub
	// reads counts Next's reads on its own since it last tried to join the tail.
	reads  int
	timer  *time.Timer
	closed bool
}

// Read is one event read by a Reader.
type Read struct {
	Seq       int64
	Subject   string
	Data      []byte // shared by every Reader that read it: never modify it
	Namespace string // NamespaceHeader; "" for events written before it existed
	Time      time.Time
	// Pending is how many events the log held after this one when it was read.
	Pending uint64
}

// NewReader starts reading at the event after seq (0: the first event the log holds). When
// the log no longer holds that event (it aged out), reading starts at the first it holds.
func (l *Log) NewReader(ctx context.Context, after int64) (*Reader, error) {
	r := &Reader{l: l, pos: after, timer: time.NewTimer(time.Hour)}
	r.timer.Stop()
	if r.sub = l.tail.join(l, after, nil); r.sub != nil {
		return r, nil
	}
	var err error
	if r.own, err = l.openConsumer(ctx, after); err != nil {
		return nil, err
	}
	return r, nil
}

// joinEvery is how many events a Reader behind the tail reads between its tries to join it.
const joinEvery = 256

// ErrNoEvent is returned by Reader.Next when no event came within its wait.
var ErrNoEvent = errors.New("eventlog: no event yet")

// Next returns the next event, waiting at most wait for it (ErrNoEvent), or until ctx ends.
// After an error other than ErrNoEvent the reader is done: Close it and make another.
func (r *Reader) Next(ctx context.Context, wait time.Duration) (Read, error) {
	for r.sub != nil {
		ev, ok, err := r.sub.next(ctx, r.timer, wait)
		if err != nil {
			return Read{}, err
		}
		if ok {
			r.pos = ev.Seq
			return ev, nil
		}
		// It fell behind the tail, or the tail's reader failed: read on from where it was.
		r.sub = nil
		if r.own, err = r.l.openConsumer(ctx, r.pos); err != nil {
			return Read{}, err
		}
	}
	ev, err := r.own.next(ctx, r.timer, wait)
	if errors.Is(err, ErrNoEvent) {
		r.tryJoin(true)
		return Read{}, err
	}
	if err != nil {
		return Read{}, err
	}
	r.pos = ev.Seq
	if r.reads++; r.reads >= joinEvery {
		r.tryJoin(ev.Pending < joinEvery)
	}
	return ev, nil
}

// tryJoin moves the reader onto the tail when the tail is at most tailBuffer events behind it
// and not ahead. When no tail runs, a reader at the end of the log (atEnd) becomes it, handing
// it its consumer; one far behind would take the tail along, and the readers at the end would
// wait for it.
func (r *Reader) tryJoin(atEnd bool) {
	r.reads = 0
	var own *consumerReader
	if atEnd {
		own = r.own
	}
	if r.sub = r.l.tail.join(r.l, r.pos, own); r.sub == nil {
		return
	}
	if r.sub.run.own != r.own {
		r.own.close()
	}
	r.own = nil
}

// Close stops the reader; a consumer of its own is removed from the server (which would
// otherwise keep it until it has been idle for a minute). Idempotent.
func (r *Reader) Close() {
	if r.closed {
		return
	}
	r.closed = true
	if r.sub != nil {
		r.l.tail.leave(r.sub)
	}
	if r.own != nil {
		r.own.close()
	}
}

// tailBuffer is how many events the tail holds for one Reader: a third of a second at 50,000
// events/s, which the trail's writer may wait for SQLite while the store writes (with 4,096 it
// left the tail every few seconds in the batch benchmark and read on its own).
const tailBuffer = 16384

// tail is the one reader of the end of the log in a process (see Reader). It runs while a
// Reader is on it.
type tail struct {
	mu  sync.Mutex
	cur *tailRun // nil when no Reader is on the tail
}

// tailRun is one run of the tail's reader, from when a Reader started it until none is left.
type tailRun struct {
	cancel context.CancelFunc
	own    *consumerReader // the consumer of the reader that started the run
	pos    int64           // the last event handed out, or where the run started
	subs   map[*tailSub]struct{}
}

// tailSub is one Reader on the tail. Its queue grows with what it has not taken yet, up to
// tailBuffer, instead of being a channel of that size: a reader that keeps up (and the
// catch-up readers that join for a moment) hold almost nothing.
type tailSub struct {
	run   *tailRun
	after int64 // events up to this one are not the reader's: it had them before it joined
	wake  chan struct{}

	mu      sync.Mutex
	queue   []Read // queue[head:] are waiting
	head    int
	dropped bool // no more will come: the reader reads on its own after the queue
}

// keptQueue is the most capacity a tailSub keeps when its queue empties.
const keptQueue = 1024

// push queues ev; false when the queue is full (the reader is then dropped).
func (s *tailSub) push(ev Read) bool {
	s.mu.Lock()
	full := len(s.queue)-s.head >= tailBuffer
	if !full {
		s.queue = append(s.queue, ev)
	}
	s.mu.Unlock()
	s.signal()
	return !full
}

// drop tells the reader that nothing more comes from the tail.
func (s *tailSub) drop() {
	s.mu.Lock()
	s.dropped = true
	s.mu.Unlock()
	s.signal()
}

func (s *tailSub) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// take returns the next queued event; ok is false when there is none, done when there will be
// none (the reader was dropped).
func (s *tailSub) take() (ev Read, ok, done bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.head == len(s.queue) {
		return Read{}, false, s.dropped
	}
	ev = s.queue[s.head]
	s.queue[s.head] = Read{} // its Data is not kept alive by the queue
	if s.head++; s.head == len(s.queue) {
		s.head = 0
		if s.queue = s.queue[:0]; cap(s.queue) > keptQueue {
			s.queue = nil
		}
	}
	return ev, true, false
}

// join puts a reader at after on the tail or, when none runs, starts the tail with own, the
// reader's consumer, which has read up to after (nil: do not start one). It returns nil when
// the tail is ahead of after (the reader would miss the events between) or more than
// tailBuffer behind it (the reader would wait for it).
func (t *tail) join(l *Log, after int64, own *consumerReader) *tailSub {
	t.mu.Lock()
	defer t.mu.Unlock()
	if l.closed.Load() {
		return nil
	}
	run := t.cur
	if run == nil {
		if own == nil {
			return nil
		}
		ctx, cancel := context.WithCancel(context.Background())
		run = &tailRun{cancel: cancel, own: own, pos: after, subs: map[*tailSub]struct{}{}}
		t.cur = run
		go t.run(ctx, run)
	} else if run.pos > after || after-run.pos > tailBuffer {
		return nil
	}
	s := &tailSub{run: run, after: after, wake: make(chan struct{}, 1)}
	run.subs[s] = struct{}{}
	return s
}

// leave takes a reader off the tail; the tail's reader stops with its last one.
func (t *tail) leave(s *tailSub) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := s.run.subs[s]; !ok {
		return // dropped already
	}
	delete(s.run.subs, s)
	t.stopIfIdleLocked(s.run)
}

func (t *tail) stopIfIdleLocked(run *tailRun) {
	if len(run.subs) == 0 && t.cur == run {
		t.cur = nil
		run.cancel()
	}
}

// run reads the log for the readers on the tail until none is left or its reader fails (then
// every reader reads on its own).
func (t *tail) run(ctx context.Context, run *tailRun) {
	defer run.cancel()
	own := run.own
	defer own.close()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		ev, err := own.next(ctx, timer, time.Minute)
		if errors.Is(err, ErrNoEvent) {
			continue
		}
		if err != nil {
			t.drop(run)
			return
		}
		t.mu.Lock()
		if t.cur != run {
			t.mu.Unlock()
			return
		}
		run.pos = ev.Seq
		for s := range run.subs {
			if ev.Seq <= s.after {
				continue
			}
			if !s.push(ev) { // it fell behind: it reads on its own from what it has taken
				delete(run.subs, s)
				s.drop()
			}
		}
		t.stopIfIdleLocked(run)
		t.mu.Unlock()
	}
}

// stop ends the tail's run when the log closes: its readers fail as their own reads do.
func (t *tail) stop() {
	t.mu.Lock()
	run := t.cur
	t.mu.Unlock()
	if run != nil {
		t.drop(run)
		run.cancel()
	}
}

// drop ends a run that cannot read: its readers read on their own.
func (t *tail) drop(run *tailRun) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for s := range run.subs {
		delete(run.subs, s)
		s.drop()
	}
	if t.cur == run {
		t.cur = nil
	}
}

// next returns the tail's next event for the reader; ok is false when the reader was dropped
// from the tail (it has taken every event queued for it).
func (s *tailSub) next(ctx context.Context, timer *time.Timer, wait time.Duration) (ev Read, ok bool, err error) {
	armed := false
	defer func() {
		if armed {
			timer.Stop()
		}
	}()
	for {
		ev, ok, done := s.take()
		if ok || done {
			return ev, ok, nil
		}
		if !armed {
			timer.Reset(wait)
			armed = true
		}
		select {
		case <-s.wake:
		case <-timer.C:
			return Read{}, false, ErrNoEvent
		case <-ctx.Done():
			return Read{}, false, context.Cause(ctx)
		}
	}
}

// consumerReader reads the log with a JetStream ordered consumer of its own, which the server
// does not keep after the reader is gone.
//
// A goroutine takes the consumer's messages with calls that wait as long as they must, and next
// waits on it: nats.go checks the consumer's heartbeats only within one call of its Next, so
// calls shorter than two heartbeats (Next's short waits) would never notice that the server
// holding the consumer went away, and the reader would wait forever instead of moving to
// another server.
type consumerReader struct {
	l     *Log
	cons  jetstream.Consumer
	it    jetstream.MessagesContext
	reads chan readResult
	done  chan struct{} // closed by close
	pump  chan struct{} // closed when the goroutine has returned
}

type readResult struct {
	m   jetstream.Msg
	err error
}

// readerHeartbeat is how often the server that holds a reader's consumer says it is alive: the
// reader moves to another server within two of them when it is gone.
const readerHeartbeat = 2 * time.Second

// openConsumer starts a consumerReader at the event after seq (see NewReader).
func (l *Log) openConsumer(ctx context.Context, after int64) (*consumerReader, error) {
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy, InactiveThreshold: time.Minute}
	if after > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, uint64(after)+1
	}
	cons, err := l.stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: reader: %w", ErrUnavailable, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(2000), jetstream.PullHeartbeat(readerHeartbeat))
	if err != nil {
		return nil, fmt.Errorf("%w: reader: %w", ErrUnavailable, err)
	}
	r := &consumerReader{l: l, cons: cons, it: it, reads: make(chan readResult, 256), done: make(chan struct{}), pump: make(chan struct{})}
	go r.take()
	return r, nil
}

// take hands the consumer's messages to next until the iterator fails or close.
func (r *consumerReader) take() {
	defer close(r.pump)
	for {
		m, err := r.it.Next()
		select {
		case r.reads <- readResult{m, err}:
		case <-r.done:
			return
		}
		if err != nil {
			return
		}
	}
}

// next is Reader.Next for a consumer of its own.
func (r *consumerReader) next(ctx context.Context, timer *time.Timer, wait time.Duration) (Read, error) {
	for {
		var res readResult
		select {
		case res = <-r.reads:
		default:
			timer.Reset(wait)
			select {
			case res = <-r.reads:
				timer.Stop()
			case <-timer.C:
				return Read{}, ErrNoEvent
			case <-ctx.Done():
				timer.Stop()
				return Read{}, context.Cause(ctx)
			}
		}
		if res.err != nil {
			return Read{}, fmt.Errorf("%w: read: %w", ErrUnavailable, res.err)
		}
		md, err := res.m.Metadata()
		if err != nil {
			continue // not an event of the stream
		}
		return Read{Seq: int64(md.Sequence.Stream), Subject: res.m.Subject(), Data: res.m.Data(), Namespace: res.m.Headers().Get(NamespaceHeader),
			Time: md.Timestamp, Pending: md.NumPending}, nil
	}
}

// close stops the reader and removes its consumer from the server. Idempotent.
func (r *consumerReader) close() {
	select {
	case <-r.done:
		return
	default:
	}
	close(r.done)
	r.it.Stop()
	<-r.pump
	r.l.deleteEphemeral(r.cons)
}

// SeqAt returns the id of the first event the log stored at or after t, or the log's next id
// when there is none yet. It asks the stream's leader (JetStream's message get by start time):
// no consumer is made, which on a cluster would take a round of its meta group.
func (l *Log) SeqAt(ctx context.Context, t time.Time) (int64, error) {
	// The end of the log before asking: when nothing is found at or after t, whatever comes
	// after this end was stored later, so the answer is the id after it. (Read after the
	// answer, it could pass over an event stored in between.)
	info, err := l.Info(ctx)
	if err != nil {
		return 0, err
	}
	req, _ := json.Marshal(struct {
		StartTime time.Time `json:"start_time"`
		NoHeaders bool      `json:"no_hdr"`
	}{t.UTC(), true})
	msg, err := l.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+StreamName, req)
	if err != nil {
		return 0, fmt.Errorf("%w: find the event at %s: %w", ErrUnavailable, t, err)
	}
	var resp struct {
		Message *struct {
			Seq int64 `json:"seq"`
		} `json:"message"`
		Error *struct {
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return 0, fmt.Errorf("%w: find the event at %s: %w", ErrUnavailable, t, err)
	}
	switch {
	case resp.Message != nil:
		return resp.Message.Seq, nil
	case resp.Error != nil && resp.Error.ErrCode == 10037: // no message found: nothing stored since
		return int64(info.LastSeq) + 1, nil
	case resp.Error != nil:
		return 0, fmt.Errorf("%w: find the event at %s: %s", ErrUnavailable, t, resp.Error.Description)
	}
	return 0, fmt.Errorf("%w: find the event at %s: empty answer", ErrUnavailable, t)
}

// BacklogState is what waits in the log after a position.
type BacklogState struct {
	// Pending counts the events after the position.
	Pending uint64
	// OldestPending is when the first of them was stored; zero when there is none.
	OldestPending time.Time
}

// Backlog reports how many events after seq match subjects (every event when empty), and when
// the first of them was stored (zero when there is none).
func (l *Log) Backlog(ctx context.Context, subjects []string, after int64) (BacklogState, error) {
	cons, err := l.stream.CreateConsumer(ctx, jetstream.ConsumerConfig{AckPolicy: jetstream.AckNonePolicy, MemoryStorage: true,
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: uint64(max(after, 0)) + 1, FilterSubjects: subjects,
		InactiveThreshold: time.Minute, Replicas: 1})
	if err != nil {
		return BacklogState{}, fmt.Errorf("%w: backlog: %w", ErrUnavailable, err)
	}
	defer l.deleteEphemeral(cons)
	st := BacklogState{Pending: cons.CachedInfo().NumPending}
	if st.Pending == 0 {
		return st, nil
	}
	var opts []jetstream.GetMsgOpt
	if len(subjects) == 1 {
		opts = append(opts, jetstream.WithGetMsgSubject(subjects[0]))
	}
	if m, err := l.stream.GetMsg(ctx, uint64(max(after, 0))+1, opts...); err == nil {
		st.OldestPending = m.Time
	}
	return st, nil
}

// deleteEphemeral removes a consumer made for one read; the server would remove it once idle.
func (l *Log) deleteEphemeral(c jetstream.Consumer) {
	info := c.CachedInfo()
	if info == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = l.stream.DeleteConsumer(ctx, info.Name)
}

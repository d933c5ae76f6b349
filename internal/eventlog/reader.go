package eventlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
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

// Reader reads the log in order from a position, with no acknowledgements: a JetStream ordered
// consumer, which the server does not keep after the reader is gone. The delivery engine reads
// the log through a few of them however many destinations there are. Not safe for concurrent
// use.
//
// A goroutine takes the consumer's messages with calls that wait as long as they must, and Next
// waits on it: nats.go checks the consumer's heartbeats only within one call of its Next, so
// calls shorter than two heartbeats (Next's short waits) would never notice that the server
// holding the consumer went away, and the reader would wait forever instead of moving to
// another server.
type Reader struct {
	l     *Log
	cons  jetstream.Consumer
	it    jetstream.MessagesContext
	reads chan readResult
	done  chan struct{} // closed by Close
	pump  chan struct{} // closed when the goroutine has returned
	timer *time.Timer
}

type readResult struct {
	m   jetstream.Msg
	err error
}

// readerHeartbeat is how often the server that holds a reader's consumer says it is alive: the
// reader moves to another server within two of them when it is gone.
const readerHeartbeat = 2 * time.Second

// Read is one event read by a Reader.
type Read struct {
	Seq       int64
	Subject   string
	Data      []byte
	Namespace string // NamespaceHeader; "" for events written before it existed
	Time      time.Time
	// Pending is how many events the log held after this one when it was read.
	Pending uint64
}

// NewReader starts reading at the event after seq (0: the first event the log holds). When
// the log no longer holds that event (it aged out), reading starts at the first it holds.
func (l *Log) NewReader(ctx context.Context, after int64) (*Reader, error) {
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
	r := &Reader{l: l, cons: cons, it: it, reads: make(chan readResult, 256), done: make(chan struct{}), pump: make(chan struct{}),
		timer: time.NewTimer(time.Hour)}
	r.timer.Stop()
	go r.take()
	return r, nil
}

// take hands the consumer's messages to Next until the iterator fails or Close.
func (r *Reader) take() {
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

// ErrNoEvent is returned by Reader.Next when no event came within its wait.
var ErrNoEvent = errors.New("eventlog: no event yet")

// Next returns the next event, waiting at most wait for it (ErrNoEvent), or until ctx ends.
// After an error other than ErrNoEvent the reader is done: Close it and make another.
func (r *Reader) Next(ctx context.Context, wait time.Duration) (Read, error) {
	for {
		var res readResult
		select {
		case res = <-r.reads:
		default:
			r.timer.Reset(wait)
			select {
			case res = <-r.reads:
				r.timer.Stop()
			case <-r.timer.C:
				return Read{}, ErrNoEvent
			case <-ctx.Done():
				r.timer.Stop()
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

// Close stops the reader and removes its consumer from the server (which would otherwise keep
// it until it has been idle for a minute). Idempotent.
func (r *Reader) Close() {
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

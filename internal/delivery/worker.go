package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/eventlog"
	"github.com/auditstream/auditstream/internal/namespace"
	"github.com/auditstream/auditstream/internal/store"
)

// worker delivers one destination's events: it fetches from the destination's consumer, drops
// what the filter does not want (acknowledging it), and sends the rest, retrying each request
// in place until the destination accepts it, it fails for good, or it is too old. Events a
// failing destination has not taken stay unacknowledged in the log.
type worker struct {
	e *Engine
	prepared
	version int64
	st      *state
	durable string
	widest  string

	cancel context.CancelFunc
	done   chan struct{}
}

func (w *worker) start() {
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel, w.done = cancel, make(chan struct{})
	go func() {
		defer close(w.done)
		defer w.sender.Close()
		w.run(ctx)
	}()
}

// stop ends the worker and waits for it: events it held are not acknowledged.
func (w *worker) stop() {
	w.cancel()
	<-w.done
}

// fetchSize is how many events one fetch takes: enough to keep every request slot busy.
func (w *worker) fetchSize() int {
	if b := w.delivery.Batch; b != nil {
		return min(b.MaxEvents*max(w.delivery.Concurrency, 1), 10_000)
	}
	return min(w.delivery.Concurrency*32, 1024)
}

// run delivers until ctx ends. An ordered destination is delivered by one process of the
// cluster at a time, the holder of its lease, and starts by rewinding the consumer to its ack
// floor: what an earlier worker fetched but did not acknowledge comes first, in order.
func (w *worker) run(ctx context.Context) {
	deliver := func(ctx context.Context) {
		w.st.setDelivering(true)
		defer w.st.setDelivering(false)
		if w.delivery.Ordered {
			w.rewind(ctx)
		}
		w.loop(ctx)
	}
	if !w.delivery.Ordered || w.e.leases == nil {
		deliver(ctx)
		return
	}
	w.e.leases.Run(ctx, "delivery-"+w.durable, deliver)
}

// rewind makes what is not acknowledged come again before anything newer.
func (w *worker) rewind(ctx context.Context) {
	if err := w.e.log.RewindToAckFloor(ctx, w.durable); err != nil && ctx.Err() == nil {
		w.e.logger.Warn("delivery: rewinding an ordered destination's consumer failed; delivering from where it is", "destination_id", w.d.ID, "err", err)
	}
}

func (w *worker) loop(ctx context.Context) {
	maxWait := 100 * time.Millisecond
	if b := w.delivery.Batch; b != nil && b.MaxWait > maxWait {
		maxWait = b.MaxWait
	}
	failures := 0
	for ctx.Err() == nil {
		if !w.st.waitCircuit(ctx, w.e.env.Now) {
			return
		}
		// Unbatched, send what is there at once; batched, wait up to maxWait for a fuller batch.
		msgs, err := w.e.log.Fetch(ctx, w.durable, w.fetchSize(), maxWait, w.delivery.Batch == nil)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			if failures == 1 || failures%60 == 0 {
				w.e.logger.Warn("delivery: fetching events failed; retrying", "destination_id", w.d.ID, "err", err)
			}
			if !sleep(ctx, time.Second) {
				return
			}
			continue
		}
		failures = 0
		if len(msgs) > 0 && !w.handle(ctx, msgs) && w.delivery.Ordered && ctx.Err() == nil {
			w.rewind(ctx) // events were left unacknowledged: they must come before newer ones
		}
	}
}

// item is one fetched event on its way.
type item struct {
	msg   eventlog.Delivered
	event destination.Event
	done  atomic.Bool
}

// handle delivers one fetch's events. While it works, it keeps telling the log the events are
// in progress, so that a slow destination's events are not handed out again. settled reports
// whether every event was acknowledged (delivered, filtered out or dead-lettered).
func (w *worker) handle(ctx context.Context, msgs []eventlog.Delivered) (settled bool) {
	items := make([]*item, len(msgs))
	for i, m := range msgs {
		items[i] = &item{msg: m}
	}
	defer func() {
		settled = !slices.ContainsFunc(items, func(it *item) bool { return !it.done.Load() })
	}()
	hbDone := make(chan struct{})
	var hb sync.WaitGroup
	hb.Add(1)
	go func() {
		defer hb.Done()
		t := time.NewTicker(w.e.opts.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-hbDone:
				return
			case <-t.C:
				for _, it := range items {
					if !it.done.Load() {
						_ = it.msg.InProgress()
					}
				}
			}
		}
	}()
	defer func() { close(hbDone); hb.Wait() }()

	var send []*item
	for _, it := range items {
		ok, err := w.wants(ctx, it)
		if err != nil {
			// The namespace could not be resolved (the store is down): leave the rest of the
			// fetch unacknowledged for a later try rather than guess.
			w.e.logger.Warn("delivery: matching an event failed; it will be tried again", "destination_id", w.d.ID, "event_id", it.msg.Seq, "err", err)
			return
		}
		if !ok {
			w.ack(it)
			continue
		}
		send = append(send, it)
	}
	if len(send) == 0 {
		return
	}
	batches := w.split(send)
	// A few senders take the requests in turn: one goroutine per request cost more than the
	// request's own work at fan-out rates.
	work := make(chan []*item)
	var wg sync.WaitGroup
	for range min(max(w.delivery.Concurrency, 1), len(batches)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				w.deliver(ctx, b)
			}
		}()
	}
feed:
	for _, b := range batches {
		select {
		case work <- b:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	return settled // set by the deferred check
}

// split groups events into requests: one each, or batches bounded by the batch settings.
func (w *worker) split(items []*item) [][]*item {
	b := w.delivery.Batch
	if b == nil {
		out := make([][]*item, len(items))
		for i, it := range items {
			out[i] = []*item{it}
		}
		return out
	}
	var out [][]*item
	var cur []*item
	size := 2 // the array's brackets
	for _, it := range items {
		n := len(it.event.JSON) + 1
		if len(cur) > 0 && (len(cur) >= b.MaxEvents || size+n > b.MaxBytes) {
			out = append(out, cur)
			cur, size = nil, 2
		}
		cur = append(cur, it)
		size += n
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// eventHead is what namespace filters need of an event's JSON.
type eventHead struct {
	EntityType string `json:"entity_type"`
	EntityPath string `json:"entity_path"`
}

// createdAtKey precedes the creation time in the event JSON that ingest writes.
var createdAtKey = []byte(`"created_at":"`)

// createdAt finds the event's created_at without decoding the event: JSON decoding once per
// event and destination was the engine's largest cost (docs/benchmarks.md).
func createdAt(data []byte) time.Time {
	i := bytes.LastIndex(data, createdAtKey)
	if i < 0 {
		return time.Time{}
	}
	rest := data[i+len(createdAtKey):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339Nano, string(rest[:j]))
	return t
}

// wants asks the destination's filter about an event. The type comes from the subject
// (audit.<root>.<type>); the JSON is decoded only for namespace filters.
func (w *worker) wants(ctx context.Context, it *item) (bool, error) {
	subj := it.msg.Subject
	typ := subj[strings.LastIndexByte(subj, '.')+1:]
	// The log holds events without their id (it is the log's sequence): add it, as the store does.
	it.event = destination.Event{ID: it.msg.Seq, Type: typ, CreatedAt: createdAt(it.msg.Data), JSON: event.AppendWithID(nil, it.msg.Data, it.msg.Seq)}
	info := destination.EventInfo{EventType: typ}
	if t := w.e.catalog.Lookup(typ); t != nil {
		info.Category = t.FeatureCategory
	}
	if w.filter.NeedsNamespace() {
		var h eventHead
		if err := json.Unmarshal(it.msg.Data, &h); err != nil {
			w.e.logger.Error("delivery: an event in the log is not valid JSON; skipping it", "event_id", it.msg.Seq, "err", err)
			return false, nil
		}
		var kind store.NamespaceKind
		switch h.EntityType {
		case "Group":
			kind = store.KindGroup
		case "Project":
			kind = store.KindProject
		}
		if kind != "" && h.EntityPath != "" {
			ns, err := w.e.namespaces.Find(ctx, kind, h.EntityPath)
			if err != nil && !isNotFound(err) {
				return false, err
			}
			if err == nil {
				chain, err := w.e.namespaces.Chain(ctx, ns)
				if err != nil {
					return false, err
				}
				for _, n := range chain {
					info.NamespaceChain = append(info.NamespaceChain, n.Key)
				}
				if kind == store.KindProject {
					info.ProjectKey = ns.Key
				}
			}
		}
	}
	return w.filter.Match(info), nil
}

// isNotFound: the event names a namespace the store does not know (yet); no namespace filter
// can match it.
func isNotFound(err error) bool {
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, namespace.ErrNotFound)
}

func (w *worker) ack(it *item) {
	it.done.Store(true)
	if err := it.msg.Ack(); err != nil {
		w.e.logger.Warn("delivery: ack failed; the event will be delivered again", "destination_id", w.d.ID, "event_id", it.msg.Seq, "err", err)
	}
}

// deliver sends one request until the destination accepts it, it fails for good, or ctx ends
// (then its events stay unacknowledged).
func (w *worker) deliver(ctx context.Context, batch []*item) {
	events := make([]destination.Event, len(batch))
	for i, it := range batch {
		events[i] = it.event
	}
	attempt := 0
	for ctx.Err() == nil {
		oldest := batch[0].msg.Time
		if age := w.e.env.Now().Sub(oldest); age > w.e.opts.RetryHorizon && attempt > 0 {
			w.deadLetter(ctx, batch, &destination.Failure{Kind: destination.Permanent,
				Message: "not delivered within the retry horizon (" + w.e.opts.RetryHorizon.String() + "); last error: " + w.st.lastErrorMessage()}, attempt)
			return
		}
		probe, ok := w.st.admit(ctx, w.e.env.Now, w.e.opts)
		if !ok {
			return
		}
		start := time.Now()
		err := w.sender.Send(ctx, events)
		took := time.Since(start)
		if err == nil {
			w.st.succeeded(len(batch), took, w.e.env.Now())
			w.e.attempts.success(w.d.ID, len(batch), events[0].ID, events[len(events)-1].ID, took, w.e.env.Now())
			for _, it := range batch {
				w.ack(it)
			}
			return
		}
		if ctx.Err() != nil {
			w.st.release(probe)
			return
		}
		f := destination.Classify(err)
		attempt++
		w.st.failed(f, len(batch), took, w.e.env.Now(), probe, w.e.opts)
		w.e.attempts.failure(w.d.ID, len(batch), events[0].ID, events[len(events)-1].ID, f, took, w.e.env.Now())
		switch f.Kind {
		case destination.Permanent:
			w.deadLetter(ctx, batch, f, attempt)
			return
		case destination.Throttled:
			if !sleep(ctx, max(f.RetryAfter, time.Second)) {
				return
			}
		default:
			if w.st.isOpen() {
				continue // admit waits for the probe schedule, and lets everyone go once it closes
			}
			if !w.st.sleepUnlessRecovered(ctx, max(backoff(attempt, w.e.opts), f.RetryAfter)) {
				return
			}
		}
	}
}

// backoff is capped exponential backoff with full jitter.
func backoff(attempt int, o Options) time.Duration {
	d := o.BackoffMin << min(attempt-1, 20)
	if d <= 0 || d > o.BackoffMax {
		d = o.BackoffMax
	}
	return d/2 + rand.N(d/2+1)
}

// deadLetter keeps the events in the dead letters, then acknowledges them.
func (w *worker) deadLetter(ctx context.Context, batch []*item, f *destination.Failure, attempts int) {
	now := w.e.env.Now()
	for _, it := range batch {
		_, err := w.e.store.DeadLetterAdd(ctx, store.DeadLetterAddParams{DestinationID: w.d.ID, EventID: it.event.ID, EventType: it.event.Type,
			Event: it.event.JSON, StatusCode: f.StatusCode, Error: f.Message, Attempts: attempts, LastFailedAt: now})
		if err != nil {
			// Without its dead letter the event must not be acknowledged: it comes back.
			w.e.logger.Error("delivery: storing a dead letter failed; the event stays in the log", "destination_id", w.d.ID, "event_id", it.event.ID, "err", err)
			return
		}
		w.ack(it)
	}
	if total := w.st.deadLettered(len(batch)); total/1000 != (total-int64(len(batch)))/1000 {
		// Every thousand, drop the oldest beyond the cap, so a long refusal cannot fill the disk.
		if _, err := w.e.store.DeadLetterTrim(ctx, w.d.ID, w.e.opts.KeepDeadLetters); err != nil {
			w.e.logger.Warn("delivery: trimming the dead letters failed", "destination_id", w.d.ID, "err", err)
		}
	}
	w.e.logger.Warn("delivery: events moved to the dead letters", "destination_id", w.d.ID, "events", len(batch), "status", f.StatusCode, "error", f.Message)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

package delivery

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/store"
)

// mode is where a destination stands in this process.
type mode int

const (
	// modeStopped: not delivered by this process (paused, cannot start, or another replica's).
	modeStopped mode = iota
	// modeWaiting: waits for a catch-up reader, from resume.
	modeWaiting
	// modeBlocked: its queue is full (the destination is slow or failing); once the queue has
	// drained to half, it waits for a catch-up reader from resume.
	modeBlocked
	// modeReading: a member of a reader (the shared head, or a catch-up reader).
	modeReading
)

// fromUpdatedAt as a position means: start at the destination's UpdatedAt (a new destination,
// or one activated after a pause that drops events).
const fromUpdatedAt = -1

// item is one event handed to a destination.
type item struct {
	event destination.Event
	time  time.Time // when the log stored it
	size  int
	done  bool // guarded by the destination's mu
}

// dest is one destination in the engine. It costs no goroutine, timer or log consumer while
// it has nothing to send: a reader hands it events (push), and a runner goroutine exists only
// while its queue is not empty.
type dest struct {
	e    *Engine
	id   int64
	part int
	st   *state

	// Set while the destination is not a member of a reader and has no runner, under e.mu
	// (and mu, for d, known and subjects, which Status reads).
	d        store.Destination
	p        *prepared          // nil when it cannot be prepared (st has the error)
	snd      destination.Sender // nil until it sends, and after its run ended with too many open (senders)
	root     string             // the subject root it reads: "g<key>", or "" for every root
	version  int64
	known    bool // started at least once in this process: its position is its own
	subjects []string

	mu     sync.Mutex
	mode   mode
	listed bool    // in e.behind: it may be behind the head (Engine.snapshotLocked)
	cur    *reader // the reader it is a member of, in modeReading
	skip   int64   // in modeReading: events at or below are done or handed already
	// In modeReading, under the reader's mu: events stored before notBefore are not its own.
	// It joined the head at its UpdatedAt (joinAfter) while the head may still have events
	// stored before that to read; cleared at the first event stored at or after it, so that
	// only the join depends on the log's clock.
	notBefore   time.Time
	resume      int64   // otherwise: every event at or below is done or handed
	queue       []*item // handed, not yet taken by the runner
	queueBytes  int
	outstanding []*item // handed and not done, in log order
	running     bool
	started     bool            // deliverable: start ran, stop did not
	parent      context.Context // what its runners' contexts derive from, while started
	ctx         context.Context // the runner's; nil while it has none (made for each run)
	cancel      context.CancelFunc
	wg          sync.WaitGroup
	more        chan struct{} // a push while the runner waits to fill a batch
	turn        *turn         // its runner's place in line (guarded by e.places.mu)
	counted     logCount      // the last count of its events in the log (Status)
	countMu     sync.Mutex    // held while counting the log (pending)
}

// Queue bounds. A destination whose queue is full falls behind on its own: readers stop
// handing it events, and it catches up from the log later.
const (
	maxQueueBytes = 16 << 20
	minQueue      = 4096
)

func (d *dest) queueCap() int {
	if d.p == nil {
		return minQueue
	}
	return min(max(4*d.p.fetchSize(), minQueue), 40_000)
}

// push hands the destination an event. false: its queue is full, and it takes no more from
// this reader (the caller ejects it).
func (d *dest) push(it *item) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.started {
		return false
	}
	if len(d.queue) > 0 && (len(d.queue) >= d.queueCap() || d.queueBytes+it.size > maxQueueBytes || d.e.queued.Load() > d.e.opts.MaxQueuedBytes) {
		return false
	}
	d.queue = append(d.queue, it)
	d.outstanding = append(d.outstanding, it)
	d.listLocked()
	d.addQueuedLocked(it.size)
	if !d.running {
		// The run's context and channel are made for it and let go after it: 100,000 idle
		// destinations would hold 100,000 of each.
		if d.ctx == nil {
			d.ctx, d.cancel = context.WithCancel(d.parent)
			d.more = make(chan struct{}, 1)
		}
		d.running = true
		d.wg.Add(1)
		d.e.places.start(d, d.ctx)
	} else {
		select {
		case d.more <- struct{}{}:
		default:
		}
	}
	return true
}

// addQueuedLocked counts n more bytes (fewer, when negative) in the destination's queue: in
// e.queued and, while it is a member of a reader, in e.readingQueued. Called with d.mu held.
func (d *dest) addQueuedLocked(n int) {
	d.queueBytes += n
	d.e.queued.Add(int64(n))
	if d.mode == modeReading {
		d.e.readingQueued.Add(int64(n))
	}
}

// setModeLocked moves the destination to mode m (cur: its reader, in modeReading), lists it as
// maybe behind the head (listLocked), and keeps the bytes of its queue counted in
// e.readingQueued while it is a member of a reader. Called with d.mu held.
func (d *dest) setModeLocked(m mode, cur *reader) {
	if was, is := d.mode == modeReading, m == modeReading; was != is {
		n := int64(d.queueBytes)
		if was {
			n = -n
		}
		d.e.readingQueued.Add(n)
	}
	d.mode, d.cur = m, cur
	d.listLocked()
}

// floorLocked is the position of the destination: every event at or below it is done. Called
// with mu held.
func (d *dest) floorLocked() int64 {
	pos := d.resume
	if d.mode == modeReading {
		pos = max(d.skip, d.cur.position())
	}
	if len(d.outstanding) > 0 {
		pos = min(pos, d.outstanding[0].event.ID-1)
	}
	return pos
}

// start makes the destination deliverable from position (everything at or below it done), or
// from its UpdatedAt. Called under e.mu with the destination stopped.
func (d *dest) start(ctx context.Context, position int64) {
	d.mu.Lock()
	d.started, d.parent = true, ctx
	d.mu.Unlock()
	d.known = true
	d.st.setDelivering(true)
	// The head has read nothing stored since UpdatedAt: the destination joins it at once. Else
	// it waits for a catch-up reader, which finds where UpdatedAt is in the log first.
	if position == fromUpdatedAt && d.e.head.joinAfter(d, d.d.UpdatedAt) {
		d.e.logger.Debug("delivery: a destination joins the head", "destination_id", d.id, "head", d.e.head.position())
		return
	}
	d.e.logger.Debug("delivery: a destination waits to catch up", "destination_id", d.id, "from", position)
	d.mu.Lock()
	d.resume = position
	d.setModeLocked(modeWaiting, nil)
	d.mu.Unlock()
	d.e.catchUps.enqueue(d)
}

// stop takes the destination out of its reader and stops its runner (events it held are not
// done), and returns its position. Called under e.mu.
func (d *dest) stop() int64 {
	d.leaveReader()
	d.cancelRun()
	d.wg.Wait()
	d.mu.Lock()
	defer d.mu.Unlock()
	pos := d.floorLocked()
	d.addQueuedLocked(-d.queueBytes)
	d.resume = pos
	d.setModeLocked(modeStopped, nil)
	d.queue, d.outstanding = nil, nil
	d.ctx, d.cancel, d.running, d.started, d.parent = nil, nil, false, false, nil
	d.st.setDelivering(false)
	return pos
}

// leaveReader takes the destination out of the reader it is a member of, if any.
func (d *dest) leaveReader() {
	for { // a catch-up reader may hand it to the head meanwhile: leave whichever has it
		d.mu.Lock()
		cur := d.cur
		d.mu.Unlock()
		if cur == nil || cur.leave(d) {
			return
		}
		d.mu.Lock()
		moved := d.cur != cur
		d.mu.Unlock()
		if !moved {
			return
		}
	}
}

// shed gives back what the destination was handed and has not taken, once its circuit is
// open: it leaves its reader and drops its queue, to read those events from the log again when
// it has recovered (unblock). A destination that cannot deliver is handed nothing more, and
// holds none of the memory the destinations share for queued events (Options.MaxQueuedBytes):
// about 60 failing destinations would otherwise fill it (4,096 events of 1 KB each), and every
// destination that works would be refused by its reader and left to catch up, again and again.
// Called by its runner.
func (d *dest) shed() {
	d.leaveReader()
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.started || d.mode == modeReading { // stopped meanwhile, or a reader took it again
		return
	}
	d.setModeLocked(modeBlocked, nil)
	if len(d.queue) == 0 {
		return
	}
	// The queue is the newest part of outstanding: taken events go before those not taken.
	n := len(d.outstanding) - len(d.queue)
	clear(d.outstanding[n:])
	d.outstanding = d.outstanding[:n]
	d.resume = min(d.resume, d.queue[0].event.ID-1)
	clear(d.queue)
	d.queue = nil
	d.addQueuedLocked(-d.queueBytes)
	d.e.logger.Debug("delivery: a destination whose circuit is open gives its queue back to the log", "destination_id", d.id, "resume", d.resume)
}

// block takes the destination off reader r at seq: it resumes after seq-1 once its queue has
// drained. Called by r, which took it out of its index. A destination no longer r's (stopped
// meanwhile: push refuses it too) keeps its own position.
func (d *dest) block(r *reader, seq int64) {
	d.mu.Lock()
	if d.mode != modeReading || d.cur != r {
		d.mu.Unlock()
		return
	}
	d.resume = seq - 1
	d.setModeLocked(modeBlocked, nil)
	running := d.running
	d.mu.Unlock()
	if !running {
		d.unblock()
	}
}

// unblock moves a blocked destination whose queue has drained to half to the catch-up queue,
// unless its circuit is open while its runner still sends (that runner's success is the end of
// the outage; with no runner, the next request after catching up is the probe).
func (d *dest) unblock() {
	d.mu.Lock() // d.mu before st.mu, as in stop; the circuit is asked only of a blocked runner
	ok := d.mode == modeBlocked && len(d.queue) <= d.queueCap()/2 && (!d.running || !d.st.isOpen())
	if ok {
		d.setModeLocked(modeWaiting, nil)
	}
	d.mu.Unlock()
	if ok {
		d.e.catchUps.enqueue(d)
	}
}

// run delivers the queue until it is empty or ctx ends; s holds its place. When others wait
// for a place and its queue is not empty after a chunk, it goes to the back of the line
// without a goroutine: destinations take turns, and 10,000 of them with events cost 256
// goroutines, not 10,000.
func (d *dest) run(ctx context.Context, s *ticket) {
	places := d.e.places
	for {
		chunk := d.take(ctx, s)
		if chunk == nil {
			break
		}
		d.handle(ctx, chunk, s)
		if ctx.Err() != nil || !s.held {
			d.mu.Lock()
			d.running = false
			d.mu.Unlock()
			break
		}
		d.unblock()
		d.mu.Lock()
		more := len(d.queue) > 0
		d.mu.Unlock()
		if more && places.waiting() {
			places.release(s)
			places.start(d, ctx)                      // the run (and d.wg's count) goes on in the turn
			if ctx.Err() != nil && places.forget(d) { // stopped meanwhile, and stop missed the turn
				d.mu.Lock()
				d.running = false
				d.mu.Unlock()
				d.wg.Done()
			}
			return
		}
	}
	places.release(s)
	d.wg.Done()
}

// take returns the next events to send, waiting up to the batch's MaxWait for a fuller batch;
// nil when there are none (the runner ends) or ctx ended.
func (d *dest) take(ctx context.Context, s *ticket) []*item {
	d.mu.Lock()
	if b := d.p.delivery.Batch; b != nil && len(d.queue) > 0 && len(d.queue) < b.MaxEvents {
		wait := b.MaxWait - d.e.env.Now().Sub(d.queue[0].time)
		for wait > 0 && len(d.queue) < b.MaxEvents && ctx.Err() == nil && s.held {
			d.mu.Unlock()
			d.e.places.idle(ctx, s, func() bool {
				t := time.NewTimer(wait)
				defer t.Stop()
				select {
				case <-ctx.Done():
					return false
				case <-t.C:
				case <-d.more:
				}
				return true
			})
			d.mu.Lock()
			wait = b.MaxWait - d.e.env.Now().Sub(d.queue[0].time)
		}
	}
	if len(d.queue) == 0 || ctx.Err() != nil || !s.held {
		d.running = false
		done := ctx.Err() == nil     // not stopped: nothing left to send
		if done && d.cancel != nil { // the next push makes another run
			d.cancel()
			d.ctx, d.cancel, d.more = nil, nil, nil
		}
		// Blocked with its circuit open, it has nothing left to probe with: it catches up.
		retry := done && d.mode == modeBlocked
		idle := d.idleSenderLocked()
		d.mu.Unlock()
		if idle != nil {
			idle.Close()
		}
		if retry {
			d.unblock()
		}
		return nil
	}
	n := min(len(d.queue), d.p.fetchSize())
	chunk := make([]*item, n)
	copy(chunk, d.queue)
	clear(d.queue[:n])
	d.queue = d.queue[n:]
	if len(d.queue) == 0 {
		d.queue = nil // let the backing array go
	}
	taken := 0
	for _, it := range chunk {
		taken += it.size
	}
	d.addQueuedLocked(-taken)
	d.mu.Unlock()
	return chunk
}

// settle marks items done (delivered or dead-lettered) and advances the position.
func (d *dest) settle(items []*item) {
	d.mu.Lock()
	for _, it := range items {
		it.done = true
	}
	i := 0
	for i < len(d.outstanding) && d.outstanding[i].done {
		i++
	}
	if i > 0 {
		clear(d.outstanding[:i])
		d.outstanding = d.outstanding[i:]
		if len(d.outstanding) == 0 {
			d.outstanding = nil
		}
	}
	d.mu.Unlock()
}

// handle sends one chunk of events in requests, up to the destination's concurrency at a
// time: the runner and concurrency-1 helpers take them in turn (one goroutine per request cost
// more than the request's own work at fan-out rates). Each helper sends in a place of its own;
// the runner gives its place up while it waits for them, so that runners waiting for helpers
// waiting for places cannot hold every place.
func (d *dest) handle(ctx context.Context, items []*item, s *ticket) {
	batches := d.split(items)
	work := make(chan []*item, len(batches))
	for _, b := range batches {
		work <- b
	}
	close(work)
	send := func(s *ticket) {
		for b := range work {
			d.deliver(ctx, b, s) // returns at once once ctx ended: the rest stays outstanding
		}
	}
	helpers := min(max(d.p.delivery.Concurrency, 1), len(batches)) - 1
	if helpers == 0 {
		send(s)
		return
	}
	places := d.e.places
	inLine, leave := context.WithCancel(ctx) // helpers still in line when the work is done leave
	defer leave()
	var wg sync.WaitGroup
	for range helpers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hs := &ticket{}
			if places.acquire(inLine, hs) {
				send(hs)
				places.release(hs)
			}
		}()
	}
	send(s)
	leave()
	places.idle(ctx, s, func() bool { wg.Wait(); return ctx.Err() == nil })
}

// split groups events into requests: one each, or batches bounded by the batch settings.
func (d *dest) split(items []*item) [][]*item {
	b := d.p.delivery.Batch
	if b == nil {
		out := make([][]*item, len(items))
		for i, it := range items {
			out[i] = items[i : i+1 : i+1]
			_ = it
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

// deliver sends one request until the destination accepts it, it fails for good, or ctx ends
// (then its events stay outstanding). false when ctx ended.
// s holds the sender's place, which it gives up while it waits.
func (d *dest) deliver(ctx context.Context, batch []*item, s *ticket) bool {
	e := d.e
	events := make([]destination.Event, len(batch))
	for i, it := range batch {
		events[i] = it.event
	}
	attempt := 0
	idle := func(wait func() bool) bool { return e.places.idle(ctx, s, wait) }
	for ctx.Err() == nil && s.held {
		if age := e.env.Now().Sub(batch[0].time); age > e.opts.RetryHorizon && attempt > 0 {
			d.deadLetter(ctx, batch, &destination.Failure{Kind: destination.Permanent,
				Message: "not delivered within the retry horizon (" + e.opts.RetryHorizon.String() + "); last error: " + d.st.lastErrorMessage()}, attempt)
			return ctx.Err() == nil
		}
		probe, ok := d.st.admit(ctx, e.env.Now, idle)
		if !ok {
			return false
		}
		start := e.env.Now()
		var code int
		snd, err := d.sender()
		if err == nil {
			err = snd.Send(destination.WithStatusReport(ctx, &code), events)
		}
		took := e.env.Now().Sub(start)
		if err == nil || ctx.Err() == nil {
			e.metrics.observe(d.p.category, took, len(batch), err)
		}
		if err == nil {
			d.st.succeeded(len(batch), took, e.env.Now())
			e.attempts.success(d.id, len(batch), events[0].ID, events[len(events)-1].ID, code, took, e.env.Now())
			d.settle(batch)
			return true
		}
		if ctx.Err() != nil {
			d.st.release(probe)
			return false
		}
		f := destination.Classify(err)
		attempt++
		d.st.failed(f, len(batch), took, e.env.Now(), probe, e.opts)
		e.attempts.failure(d.id, len(batch), events[0].ID, events[len(events)-1].ID, f, took, e.env.Now())
		if d.st.isOpen() {
			d.shed()
		}
		switch f.Kind {
		case destination.Permanent:
			d.deadLetter(ctx, batch, f, attempt)
			return ctx.Err() == nil
		case destination.Throttled:
			if !idle(func() bool { return sleep(ctx, max(f.RetryAfter, time.Second)) }) {
				return false
			}
		default:
			if d.st.isOpen() {
				continue // admit waits for the probe schedule, and lets everyone go once it closes
			}
			if !idle(func() bool { return d.st.sleepUnlessRecovered(ctx, max(backoff(attempt, e.opts), f.RetryAfter)) }) {
				return false
			}
		}
	}
	return false
}

// backoff is capped exponential backoff with full jitter.
func backoff(attempt int, o Options) time.Duration {
	d := o.BackoffMin << min(attempt-1, 20)
	if d <= 0 || d > o.BackoffMax {
		d = o.BackoffMax
	}
	return d/2 + rand.N(d/2+1)
}

// deadLetter keeps the events in the dead letters; they are done once kept.
func (d *dest) deadLetter(ctx context.Context, batch []*item, f *destination.Failure, attempts int) {
	e := d.e
	now := e.env.Now()
	for i, it := range batch {
		_, err := e.store.DeadLetterAdd(ctx, store.DeadLetterAddParams{DestinationID: d.id, EventID: it.event.ID, EventType: it.event.Type,
			Event: it.event.JSON, StatusCode: f.StatusCode, Error: f.Message, Attempts: attempts, LastFailedAt: now})
		if err != nil {
			// Without its dead letter the event is not done: it is sent again after a restart.
			e.logger.Error("delivery: storing a dead letter failed; the event stays undelivered", "destination_id", d.id, "event_id", it.event.ID, "err", err)
			return
		}
		d.settle(batch[i : i+1])
	}
	if total := d.st.deadLettered(len(batch)); total/1000 != (total-int64(len(batch)))/1000 {
		// Every thousand, drop the oldest beyond the cap, so a long refusal cannot fill the disk.
		if _, err := e.store.DeadLetterTrim(ctx, d.id, e.opts.KeepDeadLetters); err != nil {
			e.logger.Warn("delivery: trimming the dead letters failed", "destination_id", d.id, "err", err)
		}
	}
	e.logger.Warn("delivery: events moved to the dead letters", "destination_id", d.id, "events", len(batch), "status", f.StatusCode, "error", f.Message)
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

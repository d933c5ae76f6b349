package delivery

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/store"
)

// Status returns the destination's delivery status as this engine has it (a change not yet
// picked up shows at the next reconcile), merged with the other replicas' views when there is
// a board. Pending counts what is held in memory plus what waits in the log; -1 when nobody
// delivers the destination (paused, or not yet started).
func (e *Engine) Status(ctx context.Context, d store.Destination) Status {
	e.mu.Lock()
	st := e.stateLocked(d.ID)
	x := e.dests[d.ID]
	e.mu.Unlock()
	out := st.snapshot()
	if x != nil {
		out.Pending, out.OldestPending = x.backlog(ctx)
		if out.Pending >= 0 {
			st.setPending(out.Pending, out.OldestPending)
		}
		st.noteBacklog(e.env.Now(), out.Pending, out.OldestPending)
	}
	if e.board != nil {
		out = merge(out, e.board.Others(boardKey(d.ID)))
	}
	return out
}

// backlog counts the destination's events not yet done, for its status: those it holds, and
// those after its position in the log, counted again when the position moved or a second
// passed.
func (d *dest) backlog(ctx context.Context) (int64, time.Time) {
	return d.pending(ctx, func(c logCount, after int64) bool { return c.after == after && time.Since(c.at) <= time.Second })
}

// boardBacklog is backlog for the board (every second for every destination): a count of the
// log is reused for boardRefresh though the position moved since.
func (d *dest) boardBacklog(ctx context.Context) (int64, time.Time) {
	return d.pending(ctx, func(c logCount, _ int64) bool { return time.Since(c.at) <= boardRefresh })
}

// pending counts the destination's events not yet done. A destination at the head, when the
// head has read to the end of the log, counts what it holds; otherwise it counts the log after
// its position too, unless reuse takes the last count. Counting makes a consumer on the log, a
// JetStream API call that publishing waits behind: many readers of the status must not make
// one each.
func (d *dest) pending(ctx context.Context, reuse func(c logCount, after int64) bool) (int64, time.Time) {
	d.mu.Lock()
	buffering := !d.d.Active && d.resume >= 0 && d.known // a paused destination that keeps its position
	if !d.started && !buffering {
		d.mu.Unlock()
		return -1, time.Time{}
	}
	n := int64(len(d.outstanding))
	var oldest time.Time
	if n > 0 {
		oldest = d.outstanding[0].time
	}
	after := d.resume
	if d.mode == modeReading {
		after = max(d.skip, d.cur.position())
	}
	if len(d.outstanding) > 0 {
		after = max(after, d.outstanding[len(d.outstanding)-1].event.ID)
	}
	subjects, atHead := d.subjects, d.mode == modeReading && d.cur == d.e.head
	d.mu.Unlock()
	if atHead {
		if last, err := d.e.logEnd(ctx); err == nil && d.e.head.position() >= last {
			return n, oldest
		}
	}
	d.countMu.Lock() // one count at a time: those who wait for it reuse it
	defer d.countMu.Unlock()
	d.mu.Lock()
	counted := d.counted
	d.mu.Unlock()
	if counted.at.IsZero() || !reuse(counted, after) {
		counted = logCount{after: after, at: time.Now()}
		bctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if info, err := d.e.log.Info(bctx); err != nil || int64(info.LastSeq) > after { // else nothing after it: no need to count
			b, err := d.e.log.Backlog(bctx, subjects, after)
			if err != nil {
				return -1, time.Time{}
			}
			counted.n, counted.oldest = int64(b.Pending), b.OldestPending
		}
		d.mu.Lock()
		d.counted = counted
		d.mu.Unlock()
	}
	if oldest.IsZero() {
		oldest = counted.oldest
	}
	return n + counted.n, oldest
}

// logEndAge is how long the end of the log, once read, answers for: statuses asked at once
// (a list of destinations, many readers) share one look.
const logEndAge = 100 * time.Millisecond

// logEnd returns the last id of the log, as read at most logEndAge ago.
func (e *Engine) logEnd(ctx context.Context) (int64, error) {
	e.end.mu.Lock()
	defer e.end.mu.Unlock()
	if time.Since(e.end.at) < logEndAge {
		return e.end.last, nil
	}
	info, err := e.log.Info(ctx)
	if err != nil {
		return 0, err
	}
	e.end.last, e.end.at = int64(info.LastSeq), time.Now()
	return e.end.last, nil
}

// logCount is what a destination last counted in the log after a position.
type logCount struct {
	after  int64
	n      int64
	oldest time.Time
	at     time.Time
}

// TestResult is the outcome of a test event.
type TestResult struct {
	StatusCode int
	Latency    time.Duration
	Error      string // "" when the destination accepted it
}

// TestEventType is the event_type of test events. It is not in the catalog: producers cannot
// send it, and receivers can tell a test from an audit event.
const TestEventType = "audit_events_streaming_test_event"

// SendTest sends one synthetic event to the destination, whatever its filters and whether it
// is active, and reports what happened. It is not retried. Each test event has an id of its own
// (a random number from 2^52, a range the log's ids never reach), so that a receiver that drops
// events whose id it saw before still takes every test, and says in details.test that it is
// one.
func (e *Engine) SendTest(ctx context.Context, d store.Destination, actor string) TestResult {
	p, err := e.prepare(d)
	if err != nil {
		return TestResult{Error: err.Error()}
	}
	defer p.sender.Close()
	now := e.env.Now().UTC()
	id := testEventIDBase + rand.Int64N(testEventIDBase)
	body := fmt.Appendf(nil, `{"id":%d,"author_id":0,"author_name":%q,"entity_id":%d,"entity_type":"Gitlab::Audit::InstanceScope","entity_path":"gitlab_instance",`+
		`"details":{"custom_message":"auditstream test event: if you can read this, the destination works","event_name":%q,"test":true},"ip_address":null,`+
		`"target_id":%d,"target_type":"AuditEvents::ExternalStreamingDestination","target_details":%q,"created_at":%q,"event_type":%q}`,
		id, actor, 1, TestEventType, d.ID, d.Name, now.Format("2006-01-02T15:04:05.000Z"), TestEventType)
	start := time.Now()
	var code int
	err = p.sender.Send(destination.WithStatusReport(ctx, &code), []destination.Event{{ID: id, Type: TestEventType, CreatedAt: now, JSON: body}})
	res := TestResult{Latency: time.Since(start)}
	a := store.DeliveryAttempt{DestinationID: d.ID, At: now, Count: 1, Success: err == nil, DurationMs: res.Latency.Milliseconds(), Test: true}
	if err != nil {
		f := destination.Classify(err)
		res.StatusCode, res.Error = f.StatusCode, f.Message
	} else {
		res.StatusCode = code // 0 (none) for a category that does not speak HTTP
	}
	a.StatusCode, a.Error = res.StatusCode, res.Error
	e.attempts.add(a)
	return res
}

// testEventIDBase starts the range of test events' ids: 2^52, far beyond any id the log hands
// out, and below 2^53, so that JavaScript reads them exactly.
const testEventIDBase = 1 << 52

// Replay delivers again every event since the given time that the destination's filters take.
// Events already delivered arrive a second time. With several replicas, the replica that
// delivers the destination does it (the request goes on the board).
func (e *Engine) Replay(ctx context.Context, d store.Destination, since time.Time) error {
	if !d.Active {
		return errors.New("the destination is paused: activate it first")
	}
	e.mu.Lock()
	x := e.dests[d.ID]
	owned := x != nil && e.owned[x.part]
	e.mu.Unlock()
	if !owned {
		if e.board == nil {
			return fmt.Errorf("the destination is not running yet; try again in a few seconds")
		}
		return e.requestReplay(ctx, d.ID, since)
	}
	return e.replay(ctx, d.ID, since)
}

// replay restarts the destination from the first event stored at or after since.
func (e *Engine) replay(ctx context.Context, id int64, since time.Time) error {
	seq, err := e.log.SeqAt(ctx, since)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	x := e.dests[id]
	if x == nil || !e.owned[x.part] || x.p == nil {
		return fmt.Errorf("the destination is not running here")
	}
	x.stop()
	x.start(e.runCtx, seq-1)
	return nil
}

// RedeliverResult counts what a redelivery did.
type RedeliverResult struct {
	Delivered, Failed int
	LastError         string
}

// MaxRedeliver bounds one redelivery; the rest wait for the next call.
const MaxRedeliver = 1000

// Redeliver sends dead letters again, oldest first, one request each: delivered ones are
// removed, failed ones stay with their new error. ids nil: all of the destination's (up to
// MaxRedeliver).
func (e *Engine) Redeliver(ctx context.Context, d store.Destination, ids []int64) (RedeliverResult, error) {
	var letters []store.DeadLetter
	if len(ids) == 0 {
		var err error
		if letters, err = e.store.DeadLetterList(ctx, store.DeadLetterListParams{DestinationID: d.ID, Limit: MaxRedeliver}); err != nil {
			return RedeliverResult{}, err
		}
	} else {
		for _, id := range ids[:min(len(ids), MaxRedeliver)] {
			dl, err := e.store.DeadLetterGet(ctx, id)
			if errors.Is(err, store.ErrNotFound) || err == nil && dl.DestinationID != d.ID {
				return RedeliverResult{}, fmt.Errorf("dead letter %d: %w", id, store.ErrNotFound)
			}
			if err != nil {
				return RedeliverResult{}, err
			}
			letters = append(letters, dl)
		}
	}
	p, err := e.prepare(d)
	if err != nil {
		return RedeliverResult{}, err
	}
	defer p.sender.Close()
	e.mu.Lock()
	st := e.stateLocked(d.ID)
	e.mu.Unlock()
	var res RedeliverResult
	for i := len(letters) - 1; i >= 0; i-- { // the list is newest first
		dl := letters[i]
		start := time.Now()
		var code int
		err := p.sender.Send(destination.WithStatusReport(ctx, &code), []destination.Event{{ID: dl.EventID, Type: dl.EventType, JSON: dl.Event}})
		took := time.Since(start)
		if err == nil || ctx.Err() == nil {
			e.metrics.observe(d.Category, took, 1, err)
		}
		if err == nil {
			if _, err := e.store.DeadLetterDelete(ctx, d.ID, []int64{dl.ID}); err != nil {
				return res, err
			}
			res.Delivered++
			st.succeeded(1, took, e.env.Now())
			e.attempts.success(d.ID, 1, dl.EventID, dl.EventID, code, took, e.env.Now())
			continue
		}
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		f := destination.Classify(err)
		res.Failed++
		st.failed(f, 1, took, e.env.Now(), false, e.opts)
		res.LastError = f.Message
		e.attempts.failure(d.ID, 1, dl.EventID, dl.EventID, f, took, e.env.Now())
		if _, err := e.store.DeadLetterAdd(ctx, store.DeadLetterAddParams{DestinationID: d.ID, EventID: dl.EventID, EventType: dl.EventType,
			Event: dl.Event, StatusCode: f.StatusCode, Error: f.Message, Attempts: dl.Attempts + 1, LastFailedAt: e.env.Now()}); err != nil {
			return res, err
		}
	}
	return res, nil
}

package delivery

import (
	"context"
	"sync"
	"time"

	"github.com/auditstream/auditstream/internal/eventlog"
)

// catchUps runs the catch-up readers: a few at a time, each for the first destination waiting
// and those waiting a little after it, first come first served. A reader that has not caught up within its turn hands its
// destinations back to the end of the queue when others wait, so one far-behind destination
// cannot keep the rest waiting.
type catchUps struct {
	e *Engine

	mu      sync.Mutex
	waiting []*dest
	running int
	readers map[*reader]bool // the catch-up readers reading
	wake    chan struct{}
}

func (c *catchUps) enqueue(d *dest) {
	c.mu.Lock()
	c.waiting = append(c.waiting, d)
	c.mu.Unlock()
	c.signal()
}

func (c *catchUps) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *catchUps) othersWaiting() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiting) > 0
}

// joinWindow is how far after the first waiting destination's position another may be to
// share its catch-up reader (it skips what comes before its own position).
const joinWindow = 10_000

// take returns the first destination in the queue (skipping those no longer waiting) and those
// waiting at most joinWindow events after it, and the first's position.
func (c *catchUps) take() ([]*dest, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var group []*dest
	var at int64
	rest := c.waiting[:0]
	seen := make(map[*dest]bool, len(c.waiting))
	for _, d := range c.waiting {
		if seen[d] { // enqueued again (stopped and started while it waited): once is enough
			continue
		}
		seen[d] = true
		d.mu.Lock()
		waiting, pos := d.mode == modeWaiting, d.resume
		d.mu.Unlock()
		switch {
		case !waiting:
		case pos == fromUpdatedAt: // its start is not found yet
			rest = append(rest, d)
		case group == nil:
			group, at = append(group, d), pos
		case pos >= at && pos-at <= joinWindow:
			group = append(group, d)
		default:
			rest = append(rest, d)
		}
	}
	clear(c.waiting[len(rest):])
	c.waiting = rest
	return group, at
}

// resolve finds where the destinations waiting to start at a time (fromUpdatedAt) start: the
// event before the first one stored at or after it. One the log cannot answer for keeps
// waiting (false: try again later).
func (c *catchUps) resolve(ctx context.Context) bool {
	c.mu.Lock()
	var todo []*dest
	for _, d := range c.waiting {
		d.mu.Lock()
		if d.mode == modeWaiting && d.resume == fromUpdatedAt {
			todo = append(todo, d)
		}
		d.mu.Unlock()
	}
	c.mu.Unlock()
	for _, d := range todo {
		d.mu.Lock()
		at := d.d.UpdatedAt
		d.mu.Unlock()
		seq, err := c.e.log.SeqAt(ctx, at)
		if err != nil {
			if ctx.Err() == nil {
				c.e.logger.Warn("delivery: finding where a destination starts failed; retrying", "destination_id", d.id, "at", at, "err", err)
			}
			return false
		}
		d.mu.Lock()
		if d.mode == modeWaiting && d.resume == fromUpdatedAt {
			d.resume = seq - 1
		}
		d.mu.Unlock()
	}
	return true
}

// run starts catch-up readers while destinations wait, until ctx ends; it waits for them.
func (c *catchUps) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	done := make(chan struct{}, c.e.opts.CatchUpReaders)
	retry := time.NewTicker(time.Second) // for destinations whose start could not be found yet
	defer retry.Stop()
	for {
		c.resolve(ctx)
		for c.running < c.e.opts.CatchUpReaders {
			group, at := c.take()
			if len(group) == 0 {
				break
			}
			c.running++
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.e.catchUp(ctx, group, at)
				done <- struct{}{}
			}()
		}
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		case <-retry.C:
		case <-done:
			c.running--
		}
	}
}

// mergeWindow is how close to the head a catch-up reader must be before it stops the head for
// the last few events and merges into it.
const mergeWindow = 2000

// ahead returns the catch-up reader closest ahead of r within joinWindow, or nil: r reads up to
// it and merges into it, so that destinations that start catching up a moment apart (activated
// one after the other, or back from the same outage) read the log once, not once each. The
// window is joinWindow's, as for destinations that wait together: holding a catch-up reader
// while r reaches it delays only destinations that are behind already.
func (c *catchUps) ahead(r *reader) *reader {
	c.mu.Lock()
	defer c.mu.Unlock()
	var best *reader
	for t := range c.readers {
		// Strictly ahead: two readers at one position cannot each wait for the other.
		if gap := t.position() - r.position(); gap > 0 && gap <= joinWindow && (best == nil || t.position() < best.position()) {
			best = t
		}
	}
	return best
}

// track adds r to the catch-up readers reading, or (on false) removes it.
func (c *catchUps) track(r *reader, reading bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if reading {
		c.readers[r] = true
	} else {
		delete(c.readers, r)
	}
}

// catchUp reads the log from at for the group until it merges into the head (or a catch-up
// reader ahead), its turn ends while others wait, or every member has fallen behind again.
func (e *Engine) catchUp(ctx context.Context, group []*dest, at int64) {
	r := newReader(e, at)
	r.mu.Lock()
	for _, d := range group {
		r.addWaitingLocked(d)
	}
	members := r.members
	r.mu.Unlock()
	if members == 0 {
		return
	}
	e.logger.Debug("delivery: catching up", "from", at, "destinations", members, "head", e.head.position())
	e.catchUps.track(r, true)
	defer e.catchUps.track(r, false)
	turnEnds := time.Now().Add(e.opts.CatchUpTurn)
	merged := false
	e.follow(ctx, r, func(lr *eventlog.Reader, ev eventlog.Read, ok bool) bool {
		r.mu.Lock()
		left := r.members
		r.mu.Unlock()
		if left == 0 {
			return true
		}
		if e.head.position()-r.position() <= mergeWindow && e.merge(ctx, r, lr, e.head) {
			merged = true
			return true
		}
		if t := e.catchUps.ahead(r); t != nil && e.merge(ctx, r, lr, t) {
			merged = true
			return true
		}
		return time.Now().After(turnEnds) && e.catchUps.othersWaiting()
	})
	if merged {
		return
	}
	// Its turn ended, or ctx did: the members wait again where the reader stands. Closed, it
	// takes no more members from readers behind it.
	r.mu.Lock()
	r.closed = true
	back := r.membersLocked()
	for _, d := range back {
		r.removeLocked(d)
		d.mu.Lock()
		d.resume = max(d.skip, r.position())
		d.setModeLocked(modeWaiting, nil)
		d.mu.Unlock()
	}
	r.mu.Unlock()
	if ctx.Err() == nil {
		for _, d := range back {
			e.catchUps.enqueue(d)
		}
	}
}

// merge moves the catch-up reader's members into h, the head or a catch-up reader ahead:
// with h held, it reads the few events up to h's position, then hands the members over, so
// that no event is missed or handed twice. false when h no longer takes members or could not
// be reached in time.
func (e *Engine) merge(ctx context.Context, r *reader, lr *eventlog.Reader, h *reader) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	deadline := time.Now().Add(2 * time.Second)
	for r.position() < h.position() {
		wait := time.Until(deadline)
		if wait <= 0 {
			return false
		}
		ev, err := lr.Next(ctx, wait)
		if err != nil {
			return false
		}
		r.mu.Lock()
		r.dispatchLocked(ctx, ev)
		r.mu.Unlock()
		e.metrics.catchUpReads.Inc()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	members := r.membersLocked()
	for _, d := range members {
		r.removeLocked(d)
		d.mu.Lock()
		skip := max(d.skip, r.position())
		d.mu.Unlock()
		h.addLocked(d, skip)
	}
	r.closed = true
	if h == e.head {
		e.logger.Debug("delivery: caught up", "at", r.position(), "destinations", len(members))
	} else {
		e.logger.Debug("delivery: joined the catch-up reader ahead", "at", r.position(), "destinations", len(members))
	}
	return true
}

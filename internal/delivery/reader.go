package delivery

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/eventlog"
	"github.com/auditstream/auditstream/internal/store"
)

// reader hands the events of the log, in order, to the destinations that are its members: it
// reads each event once, finds the destinations that can want it in an index by subject root
// (a group's destinations, and the instance's, which read every root), asks each one's filter,
// and pushes the event to those that take it. The head reader follows the end of the log for
// every destination that keeps up; catch-up readers bring destinations that fell behind (or
// start behind) to the head, where they merge.
type reader struct {
	e *Engine

	mu       sync.Mutex
	pos      atomic.Int64 // the last event dispatched
	lastTime time.Time    // when the last event dispatched was stored
	byRoot   map[string][]*dest
	all      []*dest // the instance's destinations: every root
	members  int
	closed   bool // a catch-up reader that stopped, or merged: it takes no more members
}

func newReader(e *Engine, pos int64) *reader {
	r := &reader{e: e, byRoot: map[string][]*dest{}}
	r.pos.Store(pos)
	return r
}

func (r *reader) position() int64 { return r.pos.Load() }

// addLocked makes d a member from skip on. Called with r.mu held.
func (r *reader) addLocked(d *dest, skip int64) {
	d.mu.Lock()
	d.setModeLocked(modeReading, r)
	d.skip = skip
	d.mu.Unlock()
	r.indexLocked(d)
}

// addWaitingLocked makes d a member from its resume position if it still waits for a catch-up
// reader: checked and changed at once, since its runner may give its queue back to the log
// meanwhile (shed), which moves resume back. Called with r.mu held.
func (r *reader) addWaitingLocked(d *dest) {
	d.mu.Lock()
	ok := d.mode == modeWaiting
	if ok {
		d.setModeLocked(modeReading, r)
		d.skip = d.resume
	}
	d.mu.Unlock()
	if ok {
		r.indexLocked(d)
	}
}

// indexLocked adds d, a member now, to the index. Called with r.mu held.
func (r *reader) indexLocked(d *dest) {
	if d.root == "" {
		r.all = append(r.all, d)
	} else {
		r.byRoot[d.root] = append(r.byRoot[d.root], d)
	}
	r.members++
}

// removeLocked takes d out of the index. Called with r.mu held.
func (r *reader) removeLocked(d *dest) bool {
	list := &r.all
	if d.root != "" {
		l := r.byRoot[d.root]
		list = &l
	}
	for i, x := range *list {
		if x == d {
			last := len(*list) - 1
			(*list)[i] = (*list)[last]
			(*list)[last] = nil
			*list = (*list)[:last]
			if d.root != "" {
				if len(*list) == 0 {
					delete(r.byRoot, d.root)
				} else {
					r.byRoot[d.root] = *list
				}
			}
			r.members--
			return true
		}
	}
	return false
}

// leave takes d out of the reader, at the position the reader has reached. false: d is not
// (or no longer) a member.
func (r *reader) leave(d *dest) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.removeLocked(d) {
		return false
	}
	d.mu.Lock()
	d.resume = max(d.skip, r.pos.Load())
	d.setModeLocked(modeWaiting, nil)
	d.mu.Unlock()
	return true
}

// joinAfter makes d a member of the head at once when the head has read no event stored at or
// after t: it reads what comes next, but none stored before t. false: d must catch up.
func (r *reader) joinAfter(d *dest, t time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.lastTime.Before(t) {
		return false
	}
	r.addLocked(d, r.pos.Load())
	d.notBefore = t
	return true
}

// dispatchLocked hands one event to the members that take it, and leaves those whose queue is
// full behind. Called with r.mu held.
func (r *reader) dispatchLocked(ctx context.Context, ev eventlog.Read) {
	defer func() {
		r.pos.Store(ev.Seq)
		r.lastTime = ev.Time
	}()
	root, typ := splitSubject(ev.Subject)
	group, all := r.byRoot[root], r.all
	if len(group) == 0 && len(all) == 0 {
		return
	}
	var (
		info     destination.EventInfo
		infoDone bool
		nsDone   bool
		shared   destination.Event
		size     int
		full     []*dest
	)
	for _, list := range [2][]*dest{group, all} {
		for _, d := range list {
			if ev.Seq <= d.skip {
				continue
			}
			if !d.notBefore.IsZero() {
				if ev.Time.Before(d.notBefore) {
					continue // stored before the destination began
				}
				d.notBefore = time.Time{}
			}
			if !infoDone {
				info = destination.EventInfo{EventType: typ}
				if t := r.e.catalog.Lookup(typ); t != nil {
					info.Category = t.FeatureCategory
				}
				infoDone = true
			}
			if d.p.filter.NeedsNamespace() && !nsDone {
				r.e.namespaceOf(ctx, ev, &info)
				nsDone = true
			}
			if d.p.filter.NeedsEvent() && info.Vars == nil {
				// Decoded at most once, and only if an expression gets to read it.
				info.Vars = destination.NewVars(ev.Data)
			}
			if typ == event.TypeTrailCheckpoint {
				if rule := d.p.checkpoints; rule == checkpointsSkipped || rule == checkpointsFiltered && !d.p.filter.Match(info) {
					continue
				}
			} else if !d.p.filter.Match(info) {
				continue
			}
			if shared.JSON == nil {
				// The log holds events without their id (it is the log's sequence): add it once for all.
				shared = destination.Event{ID: ev.Seq, Type: typ, CreatedAt: createdAt(ev.Data), JSON: event.AppendWithID(nil, ev.Data, ev.Seq)}
				size = len(shared.JSON) + 64
			}
			if !d.push(&item{event: shared, time: ev.Time, size: size}) {
				full = append(full, d)
			}
		}
	}
	for _, d := range full {
		if r.removeLocked(d) {
			d.block(r, ev.Seq)
		}
	}
}

// lostLocked tells the members that the events first…last are gone from the log before they
// read them (older than the log's max age, or over its size cap): in the log and in each
// member's status, since nobody else could tell. Called with r.mu held.
func (r *reader) lostLocked(first, last int64) {
	if r.members == 0 {
		return
	}
	msg := fmt.Sprintf("events %d to %d were gone from the log before they could be delivered (older than --log-max-age, or over --log-max-bytes)", first, last)
	r.e.logger.Warn("delivery: "+msg, "members", r.members)
	now := r.e.env.Now()
	for _, d := range r.membersLocked() {
		d.st.noteLoss(now, msg)
	}
}

// membersLocked returns the reader's members. Called with r.mu held.
func (r *reader) membersLocked() []*dest {
	out := make([]*dest, 0, r.members)
	for _, list := range r.byRoot {
		out = append(out, list...)
	}
	return append(out, r.all...)
}

// splitSubject returns the root and the event type of audit.<root>.<type>.
func splitSubject(s string) (root, typ string) {
	rest := strings.TrimPrefix(s, eventlog.SubjectPrefix+".")
	root, typ, _ = strings.Cut(rest, ".")
	return root, typ
}

// namespaceOf fills in the event's namespace: from the header ingest wrote, or, for events
// written before it existed, by looking the path up.
func (e *Engine) namespaceOf(ctx context.Context, ev eventlog.Read, info *destination.EventInfo) {
	if chain, project, ok := eventlog.ParseNamespace(ev.Namespace); ok {
		info.NamespaceChain = chain
		if project {
			info.ProjectKey = chain[0]
		}
		return
	}
	e.lookupNamespace(ctx, ev.Data, info)
}

// lookupNamespace fills in the namespace chain of an event's JSON by looking its entity's path
// up (nothing for an instance or user event, or a path the service no longer knows).
func (e *Engine) lookupNamespace(ctx context.Context, data []byte, info *destination.EventInfo) {
	var h eventHead
	if err := jsonUnmarshal(data, &h); err != nil {
		return
	}
	var kind store.NamespaceKind
	switch h.EntityType {
	case "Group":
		kind = store.KindGroup
	case "Project":
		kind = store.KindProject
	default:
		return
	}
	ns, err := e.namespaces.Find(ctx, kind, h.EntityPath)
	if err != nil {
		return // unknown: no namespace filter can match it
	}
	chain, err := e.namespaces.Chain(ctx, ns)
	if err != nil {
		return
	}
	for _, n := range chain {
		info.NamespaceChain = append(info.NamespaceChain, n.Key)
	}
	if kind == store.KindProject {
		info.ProjectKey = ns.Key
	}
}

// runHead follows the end of the log until ctx ends.
func (e *Engine) runHead(ctx context.Context) {
	e.follow(ctx, e.head, nil)
}

// follow reads the log into r from its position until ctx ends or, for a catch-up reader, until
// step says it is done.
func (e *Engine) follow(ctx context.Context, r *reader, step func(lr *eventlog.Reader, ev eventlog.Read, ok bool) (done bool)) {
	reads := e.metrics.catchUpReads
	if r == e.head {
		reads = e.metrics.headReads
	}
	failures := 0
	gaveUp := false // waiting for room (room)
	for ctx.Err() == nil {
		lr, err := e.log.NewReader(ctx, r.position())
		if err != nil {
			failures++
			if failures == 1 || failures%60 == 0 {
				e.logger.Warn("delivery: reading the log failed; retrying", "err", err)
			}
			if !sleep(ctx, time.Second) {
				return
			}
			continue
		}
		failures = 0
		for {
			ev, err := lr.Next(ctx, 200*time.Millisecond)
			if errors.Is(err, eventlog.ErrNoEvent) {
				if step != nil && step(lr, eventlog.Read{}, false) {
					lr.Close()
					return
				}
				continue
			}
			if err != nil {
				lr.Close()
				if ctx.Err() == nil {
					e.logger.Warn("delivery: reading the log failed; reading again", "err", err)
					sleep(ctx, time.Second)
				}
				break
			}
			e.room(ctx, &gaveUp)
			r.mu.Lock()
			if gap := ev.Seq - r.position() - 1; gap > 0 && r.position() > 0 {
				r.lostLocked(r.position()+1, ev.Seq-1)
			}
			r.dispatchLocked(ctx, ev)
			r.mu.Unlock()
			reads.Inc()
			if step != nil && step(lr, ev, true) {
				lr.Close()
				return
			}
		}
	}
}

// queueWait is how long a reader waits for room in the queues (room) while they do not drain,
// and queuePoll how often it looks meanwhile.
const (
	queueWait = time.Second
	queuePoll = 5 * time.Millisecond
)

// room waits, before a reader hands on its next event, while the events queued for the
// destinations that are members of a reader are over Options.ReadAheadBytes, until they are
// down to three quarters of it. In a burst, when every destination is a little behind, the
// readers thus wait for the runners instead of filling memory up to Options.MaxQueuedBytes,
// past which they refuse destination after destination, each then catching up from the log
// (at 10,000 destinations and a 64 MiB bound, that doubled a burst's delivery time).
// Destinations that fell behind (slow ones, at their queue's bound) are not waited for: their
// queues are no longer counted. If the queues do not drain for queueWait (destinations that
// hang, with room left in their queues), the reader stops waiting (gaveUp) until they are down
// to three quarters: it hands those destinations events until their queues are full, which
// leaves them behind.
func (e *Engine) room(ctx context.Context, gaveUp *bool) {
	limit := e.opts.ReadAheadBytes
	low := limit / 4 * 3
	q := e.readingQueued.Load()
	if q <= low {
		*gaveUp = false
	}
	if q <= limit || *gaveUp {
		return
	}
	e.metrics.readerWaits.Inc()
	deadline := time.Now().Add(queueWait)
	t := time.NewTicker(queuePoll)
	defer t.Stop()
	for least := q; q > low; q = e.readingQueued.Load() {
		if q < least {
			least, deadline = q, time.Now().Add(queueWait)
		}
		if !time.Now().Before(deadline) {
			*gaveUp = true
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

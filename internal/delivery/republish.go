package delivery

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/store"
)

// MaxRepublish bounds the events of one Republish; the rest wait for the next call.
const MaxRepublish = 1000

// RepublishEvent is an event to deliver again from the store's copy: its id, type and exact
// bytes ({"id":N,…}, as the store keeps them and destinations receive them).
type RepublishEvent struct {
	ID        int64
	Type      string
	CreatedAt time.Time
	JSON      []byte
}

// RepublishedTo counts what one destination got of a Republish.
type RepublishedTo struct {
	DestinationID int64
	Name          string
	Delivered     int
	Failed        int // now dead letters of the destination, to redeliver later
	LastError     string
}

// Republish hands events the log lost (and the store kept) to every enabled destination whose
// filters take them, as the shared reader would have: a group's destinations get the events
// of their group's tree, the instance's get all, then the event-type, category, namespace and
// expression filters decide. A destination created after an event does not get it (as one
// that starts from its creation never would have). Each event goes in one request of its own,
// with its own id and bytes, through the destination's sender (as Redeliver does); a failure
// becomes a dead letter at once, not retried here. At least once: a destination that got an
// event before the log lost it gets it again, with the same id. It returns one entry per
// destination that took any event, ordered by destination id; at most MaxRepublish events are
// sent, the caller passes the rest in a next call.
func (e *Engine) Republish(ctx context.Context, events []RepublishEvent) ([]RepublishedTo, error) {
	events = events[:min(len(events), MaxRepublish)]
	if len(events) == 0 {
		return nil, nil
	}
	ds, err := e.store.DestinationList(ctx, store.DestinationListParams{ActiveOnly: true})
	if err != nil {
		return nil, err
	}
	type target struct {
		p   *prepared
		st  *state
		out *RepublishedTo
	}
	targets := make([]*target, len(ds))
	defer func() {
		for _, t := range targets {
			if t != nil && t.p != nil {
				t.p.sender.Close()
			}
		}
	}()
	// The candidates of an event: its top-level group's destinations and the instance's (as
	// the reader's index), so that the work grows with the deliveries, not the destinations.
	byGroup := map[int64][]int{}
	var instance []int
	for i, d := range ds {
		if d.Scope == store.ScopeGroup {
			byGroup[d.NamespaceKey] = append(byGroup[d.NamespaceKey], i)
		} else {
			instance = append(instance, i)
		}
	}
	var out []*RepublishedTo
	for _, ev := range events {
		typ := ev.Type
		if typ == event.TypeTrailCheckpoint {
			continue // stream-only: never stored, never re-published
		}
		info := destination.EventInfo{EventType: typ}
		if t := e.catalog.Lookup(typ); t != nil {
			info.Category = t.FeatureCategory
		}
		top := e.topKeyOf(ctx, ev.JSON, &info)
		var candidates []int
		if top != 0 {
			candidates = byGroup[top]
		}
		for _, i := range slices.Concat(candidates, instance) {
			d := ds[i]
			if !ev.CreatedAt.IsZero() && d.CreatedAt.After(ev.CreatedAt) {
				continue
			}
			t := targets[i]
			if t == nil {
				t = &target{out: &RepublishedTo{DestinationID: d.ID, Name: d.Name}}
				targets[i] = t
				p, err := e.prepare(d)
				if err != nil {
					e.logger.Warn("delivery: a destination cannot be delivered to, so it gets no re-published event", "destination_id", d.ID, "err", err)
				} else {
					t.p = &p
					e.mu.Lock()
					t.st = e.stateLocked(d.ID)
					e.mu.Unlock()
				}
			}
			if t.p == nil {
				continue // it cannot be delivered to (its error says why): nothing matches
			}
			if t.p.filter.NeedsEvent() && info.Vars == nil {
				info.Vars = destination.NewVars(ev.JSON)
			}
			if !t.p.filter.Match(info) {
				continue
			}
			if t.out.Delivered+t.out.Failed == 0 {
				out = append(out, t.out)
			}
			if err := e.republishOne(ctx, d, t.p, t.st, t.out, ev); err != nil {
				return flatten(out), err
			}
		}
	}
	return flatten(out), nil
}

// republishOne sends one event to one destination; a failure is a dead letter. The error is
// the store's or the context's.
func (e *Engine) republishOne(ctx context.Context, d store.Destination, p *prepared, st *state, out *RepublishedTo, ev RepublishEvent) error {
	start := time.Now()
	var code int
	err := p.sender.Send(destination.WithStatusReport(ctx, &code), []destination.Event{{ID: ev.ID, Type: ev.Type, CreatedAt: ev.CreatedAt, JSON: ev.JSON}})
	took := time.Since(start)
	if err == nil || ctx.Err() == nil {
		e.metrics.observe(d.Category, took, 1, err)
	}
	if err == nil {
		out.Delivered++
		st.succeeded(1, took, e.env.Now())
		e.attempts.success(d.ID, 1, ev.ID, ev.ID, code, took, e.env.Now())
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	f := destination.Classify(err)
	out.Failed++
	out.LastError = f.Message
	st.failed(f, 1, took, e.env.Now(), false, e.opts)
	e.attempts.failure(d.ID, 1, ev.ID, ev.ID, f, took, e.env.Now())
	_, err = e.store.DeadLetterAdd(ctx, store.DeadLetterAddParams{DestinationID: d.ID, EventID: ev.ID, EventType: ev.Type,
		Event: ev.JSON, StatusCode: f.StatusCode, Error: f.Message, Attempts: 1, LastFailedAt: e.env.Now()})
	return err
}

// flatten returns the counts, by destination id.
func flatten(ps []*RepublishedTo) []RepublishedTo {
	out := make([]RepublishedTo, len(ps))
	for i, p := range ps {
		out[i] = *p
	}
	slices.SortFunc(out, func(a, b RepublishedTo) int { return cmp.Compare(a.DestinationID, b.DestinationID) })
	return out
}

// topKeyOf finds the top-level group of a stored event (0: an instance or user event, or a
// group or project the service no longer knows by the path the event names) and fills in the
// namespace chain the namespace filters read, as the reader does for events without a
// namespace header.
func (e *Engine) topKeyOf(ctx context.Context, data []byte, info *destination.EventInfo) int64 {
	e.lookupNamespace(ctx, data, info)
	if n := len(info.NamespaceChain); n > 0 {
		return info.NamespaceChain[n-1]
	}
	return 0
}

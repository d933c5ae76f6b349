// Package republish delivers again the events the log lost and the store kept: an
// administrator's command (POST /api/v4/auditstream/trail/republish, `auditstream trail
// republish`). An event's id is its place in the log, so it cannot go back into the log with
// it; its stored copy goes straight to the destinations instead, with its id.
package republish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/auditstream/auditstream/internal/adminaudit"
	"github.com/auditstream/auditstream/internal/api/rest"
	"github.com/auditstream/auditstream/internal/delivery"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/trail"
)

// Service re-publishes the events the log lost and the store kept (rest.Republisher): it finds
// them (the trail's recovered leaves, and stored leaves at the log's holes), skips those
// re-published before, reads each event from the store, hands it to the delivery engine (every
// destination whose filters take it), then records the ids as re-published and the action as an
// audit event. At most delivery.MaxRepublish events per call. Calls in this process take turns;
// two replicas running it at once may both send an event (delivery is at least once anyway).
type Service struct {
	Prover   *trail.Prover
	Holes    func(ctx context.Context) ([]int64, error) // eventlog.Log.Holes
	Store    Store
	Engine   Engine
	Recorder rest.Auditor
	Logger   *slog.Logger

	mu sync.Mutex
}

// Store is the part of the store the Service reads and records in.
type Store interface {
	EventGet(ctx context.Context, id int64) (store.EventRecord, error)
	RepublishedList(ctx context.Context, ids []int64) ([]int64, error)
	RepublishedAdd(ctx context.Context, ids []int64, at time.Time) error
}

// Engine is the delivery engine (delivery.Engine.Republish).
type Engine interface {
	Republish(ctx context.Context, events []delivery.RepublishEvent) ([]delivery.RepublishedTo, error)
}

// Republish implements rest.Republisher.
func (r *Service) Republish(ctx context.Context, req rest.RepublishRequest) (rest.RepublishReport, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var rep rest.RepublishReport
	holes, err := r.Holes(ctx)
	if err != nil {
		return rep, err
	}
	var found trail.LostIDs
	if req.IDs == nil {
		if found, err = r.Prover.LostLeaves(ctx, holes); err != nil {
			return rep, err
		}
	} else {
		kinds, err := r.Prover.LeafKinds(ctx, req.IDs)
		if err != nil {
			return rep, err
		}
		var wrong []int64
		if found, wrong = trail.SortLost(req.IDs, kinds, holes); len(wrong) > 0 {
			return rep, fmt.Errorf("%w: ids %s (the log still holds them, or the tree does not have them yet)", rest.ErrNotRecovered, trail.Ranges(wrong))
		}
	}
	candidates, lost := found.Kept, found.Lost
	rep.StreamOnly = len(found.StreamOnly)
	rep.SkippedLost, rep.LostIDs = len(lost), trail.Ranges(lost)

	// Those not re-published before and still stored, up to the bound. The candidates past
	// the batch are not looked at (Remaining counts them): each call reads what it sends, not
	// the whole backlog.
	events := make([]delivery.RepublishEvent, 0, min(len(candidates), delivery.MaxRepublish))
	var ids []int64
	for left := candidates; len(left) > 0; {
		if len(events) == delivery.MaxRepublish {
			rep.Remaining = len(left)
			break
		}
		n := min(len(left), store.MaxListIDs, delivery.MaxRepublish-len(events))
		done, err := r.Store.RepublishedList(ctx, left[:n])
		if err != nil {
			return rep, err
		}
		rep.AlreadyRepublished += len(done)
		for _, id := range left[:n] {
			if len(done) > 0 && done[0] == id {
				done = done[1:]
				continue
			}
			rec, err := r.Store.EventGet(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				// Never stored (the store consumer was behind when the log lost it) or
				// deleted by retention since: it takes no place in the batch.
				rep.Missing++
				continue
			}
			if err != nil {
				return rep, err
			}
			events = append(events, delivery.RepublishEvent{ID: rec.ID, Type: rec.EventType, CreatedAt: rec.CreatedAt, JSON: rec.Data})
			ids = append(ids, id)
		}
		left = left[n:]
	}
	rep.Destinations = []rest.RepublishDestination{}
	if len(events) == 0 {
		rep.IDs = trail.Ranges(nil)
		return rep, nil
	}
	to, err := r.Engine.Republish(ctx, events)
	audit := make([]adminaudit.RepublishedTo, 0, len(to))
	for _, d := range to {
		rep.Destinations = append(rep.Destinations, rest.RepublishDestination{ID: d.DestinationID, Name: d.Name, Delivered: d.Delivered, Failed: d.Failed, LastError: d.LastError})
		audit = append(audit, adminaudit.RepublishedTo{ID: d.DestinationID, Name: d.Name, Delivered: d.Delivered, Failed: d.Failed})
	}
	if err != nil {
		// Some were sent: they are not recorded, so the next call sends them again (at least once).
		return rep, err
	}
	// Recorded after sending: a crash in between sends them again next time, rather than never.
	wctx := context.WithoutCancel(ctx)
	if err := r.Store.RepublishedAdd(wctx, ids, time.Now()); err != nil {
		return rep, err
	}
	rep.Republished, rep.IDs = len(ids), trail.Ranges(ids)
	r.Logger.Warn("trail: re-published events the log lost from the store's copies", "count", len(ids), "ids", rep.IDs, "by", req.Author.Name)
	if err := r.Recorder.Record(wctx, adminaudit.TrailRepublished(req.Author, len(ids), trail.AllRanges(ids), audit), req.Producer); err != nil {
		r.Logger.Error("self-audit event not recorded", "event_type", adminaudit.TypeTrailRepublished, "err", err)
	}
	return rep, nil
}

var _ rest.Republisher = (*Service)(nil)

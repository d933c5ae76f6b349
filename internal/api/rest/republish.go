package rest

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/auditstream/auditstream/internal/adminaudit"
	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/trail"
)

// Republisher re-publishes, for delivery, the events the log lost and the store kept (the
// trail's recovered leaves), with their original ids and bytes.
type Republisher interface {
	Republish(ctx context.Context, req RepublishRequest) (RepublishReport, error)
}

// RepublishRequest is one call: which ids, and who asks (for the audit event).
type RepublishRequest struct {
	// IDs are the ids to re-publish, ascending; nil: every id the log lost and the store kept
	// that was not re-published yet.
	IDs      []int64
	Author   adminaudit.Author
	Producer event.Producer
}

// RepublishReport is what a call did (POST /api/v4/auditstream/trail/republish's answer).
type RepublishReport struct {
	// Republished counts the events handed to the destinations in this call; IDs names them
	// (ranges: "5-9,12", the first 20 ranges).
	Republished  int                    `json:"republished"`
	IDs          string                 `json:"ids"`
	Destinations []RepublishDestination `json:"destinations"`
	// AlreadyRepublished counts ids skipped because an earlier call re-published them.
	AlreadyRepublished int `json:"already_republished"`
	// SkippedLost counts ids the log lost without a copy in the store (LostIDs names them):
	// nothing can deliver them.
	SkippedLost int    `json:"skipped_lost"`
	LostIDs     string `json:"lost_ids"`
	// StreamOnly counts ids the log lost of stream-only events: the store never had them.
	StreamOnly int `json:"stream_only"`
	// Missing counts kept ids the store has no row of: never stored (the store consumer was
	// behind when the log lost them) or deleted by retention since. They take no place in the
	// batch and are counted again by every call.
	Missing int `json:"missing"`
	// Remaining counts the ids this call did not look at, once it had its 1,000 events: at
	// most that many wait for the next call (some may have been re-published before, or be
	// missing).
	Remaining int `json:"remaining"`
}

// RepublishDestination is what one destination got.
type RepublishDestination struct {
	ID        int64  `json:"id"`
	Name      string `json:"name"`
	Delivered int    `json:"delivered"`
	// Failed events are the destination's dead letters now, to redeliver later.
	Failed    int    `json:"failed"`
	LastError string `json:"last_error,omitempty"`
}

// ErrNotRecovered means an id asked for is not one the log lost (a recovered leaf of the
// tree, or a leaf at a hole of the log): the log still has it, or the tree does not yet.
var ErrNotRecovered = errors.New("not an event the log lost and the store kept")

// republishTimeout bounds one call, detached from the client's context.
const republishTimeout = 15 * time.Minute

// maxRepublishIDs bounds the ids of one call (delivery.MaxRepublish).
const maxRepublishIDs = 1000

// trailRepublish re-publishes the events the log lost from the store's copies: administrators
// only, with a token that may write (api).
func (a *API) trailRepublish(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	if !a.trailOn(w) {
		return
	}
	if !a.requireAdmin(w, p) {
		return
	}
	if a.opts.Republisher == nil {
		writeError(w, http.StatusNotFound, "trail_disabled", "404 Not Found: this service cannot re-publish events")
		return
	}
	var body struct {
		IDs string `json:"ids"`
	}
	if r.ContentLength != 0 {
		if err := decodeBody(r, &body); err != nil {
			a.handleBad(w, r, err)
			return
		}
	}
	req := RepublishRequest{Author: author(r, p), Producer: p.Producer(event.ViaService)}
	if body.IDs != "" {
		ids, err := trail.ParseIDs(body.IDs, maxRepublishIDs)
		if err != nil {
			a.writeBad(w, "invalid_ids", "ids: "+err.Error())
			return
		}
		req.IDs = ids
	}
	// Detached from the client: one that hangs up does not stop the sending half-way (what was
	// sent and not recorded would be sent again by the next call).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), republishTimeout)
	defer cancel()
	rep, err := a.opts.Republisher.Republish(ctx, req)
	if errors.Is(err, ErrNotRecovered) {
		writeError(w, http.StatusUnprocessableEntity, "not_recovered", "422 Unprocessable Entity - "+err.Error())
		return
	}
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

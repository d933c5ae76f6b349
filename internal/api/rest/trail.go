package rest

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/trail"
)

// Trail answers the tamper-evident trail's proofs (trail.Prover).
type Trail interface {
	Latest(ctx context.Context) (store.TrailCheckpoint, error)
	CheckpointPage(ctx context.Context, afterID int64, limit int) ([]store.TrailCheckpoint, error)
	Inclusion(ctx context.Context, id, n int64) (tlog.Hash, tlog.RecordProof, error)
	Consistency(ctx context.Context, oldSize, newSize int64) (tlog.TreeProof, error)
	Leaves(ctx context.Context, fromID int64, count int) ([]trail.SourceLeaf, error)
}

// maxLeavesPerPage bounds GET …/trail/leaves: a page of 10,000 events is a few MB.
const maxLeavesPerPage = 10_000

func (a *API) trailRoutes() {
	m := a.mux
	m.HandleFunc("GET /api/v4/auditstream/trail/checkpoint", a.authed(a.trailCheckpoint))
	m.HandleFunc("GET /api/v4/auditstream/trail/checkpoints", a.authed(a.trailCheckpoints))
	m.HandleFunc("GET /api/v4/auditstream/trail/consistency", a.authed(a.trailConsistency))
	m.HandleFunc("GET /api/v4/auditstream/trail/leaves", a.authed(a.trailLeaves))
	m.HandleFunc("POST /api/v4/auditstream/trail/republish", a.authed(a.trailRepublish))
	m.HandleFunc("GET /api/v4/audit_events/{event_id}/inclusion_proof", a.authed(a.instanceInclusion))
	m.HandleFunc("GET /api/v4/groups/{id}/audit_events/{event_id}/inclusion_proof", a.authed(a.namespaceInclusion(store.KindGroup)))
	m.HandleFunc("GET /api/v4/projects/{id}/audit_events/{event_id}/inclusion_proof", a.authed(a.namespaceInclusion(store.KindProject)))
}

// trailOn writes 404 trail_disabled when the service keeps no trail.
func (a *API) trailOn(w http.ResponseWriter) bool {
	if a.opts.Trail == nil {
		writeError(w, http.StatusNotFound, "trail_disabled", "404 Not Found: this service keeps no tamper-evident trail (--trail=false)")
		return false
	}
	return true
}

// trailCheckpoint is the latest checkpoint and the public key: for anyone signed in, since it
// reveals only the number of events and a hash.
func (a *API) trailCheckpoint(w http.ResponseWriter, r *http.Request, _ *auth.Principal) {
	if !a.trailOn(w) {
		return
	}
	c, err := a.opts.Trail.Latest(r.Context())
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	out := trail.NewCheckpointJSON(c)
	out.VerifierKey = a.opts.TrailVerifierKey
	if a.opts.StoredUpTo != nil {
		// Left out, not an error, when the log cannot say: the checkpoint stands on its own.
		if n, err := a.opts.StoredUpTo(r.Context()); err != nil {
			a.opts.Logger.Warn("trail: cannot read how far the store is complete", "err", err)
		} else {
			out.StoredUpTo = &n
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// trailCheckpoints lists every checkpoint ever signed, oldest first, by keyset (after_id).
func (a *API) trailCheckpoints(w http.ResponseWriter, r *http.Request, _ *auth.Principal) {
	if !a.trailOn(w) {
		return
	}
	after, ok := a.intParam(w, r, "after_id", 0, 0)
	if !ok {
		return
	}
	perPage, ok := a.intParam(w, r, "per_page", defaultPerPage, 1)
	if !ok {
		return
	}
	page, err := a.opts.Trail.CheckpointPage(r.Context(), after, int(min(perPage, maxPerPage)))
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	out := make([]trail.CheckpointJSON, 0, len(page))
	for _, c := range page {
		out = append(out, trail.NewCheckpointJSON(c))
	}
	writeJSON(w, http.StatusOK, out)
}

// trailConsistency proves that the tree of old_size is a prefix of the tree of new_size.
func (a *API) trailConsistency(w http.ResponseWriter, r *http.Request, _ *auth.Principal) {
	if !a.trailOn(w) {
		return
	}
	oldSize, ok := a.intParam(w, r, "old_size", -1, 1)
	if !ok {
		return
	}
	newSize, ok := a.intParam(w, r, "new_size", -1, 1)
	if !ok {
		return
	}
	proof, err := a.opts.Trail.Consistency(r.Context(), oldSize, newSize)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, trail.ConsistencyJSON{OldSize: oldSize, NewSize: newSize, Proof: trail.Hashes(proof)})
}

// trailLeaves serves the leaves of the tree with the stored events' bytes, as NDJSON: all of
// the instance's events, so administrators only (what `auditstream verify` reads).
func (a *API) trailLeaves(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	if !a.trailOn(w) {
		return
	}
	if !p.User.Admin {
		writeError(w, http.StatusForbidden, "forbidden", "403 Forbidden")
		return
	}
	from, ok := a.intParam(w, r, "from_id", 1, 1)
	if !ok {
		return
	}
	count, ok := a.intParam(w, r, "count", 1000, 1)
	if !ok {
		return
	}
	leaves, err := a.opts.Trail.Leaves(r.Context(), from, int(min(count, maxLeavesPerPage)))
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	var buf []byte
	for _, l := range leaves {
		buf = trail.AppendLeafLine(buf, l)
		if len(buf) > 64<<10 {
			if _, err := w.Write(buf); err != nil {
				return
			}
			buf = buf[:0]
		}
	}
	_, _ = w.Write(buf)
}

// instanceInclusion proves any event: administrators only, as GET /audit_events/:id.
func (a *API) instanceInclusion(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	if !p.User.Admin {
		writeError(w, http.StatusForbidden, "forbidden", "403 Forbidden")
		return
	}
	a.inclusion(w, r, nil)
}

// namespaceInclusion proves an event of a group or project to whoever may read it there.
func (a *API) namespaceInclusion(kind store.NamespaceKind) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
		ns, scope, ok := a.namespaceScope(w, r, p, kind)
		if !ok {
			return
		}
		if scope != auth.SeeAll {
			writeError(w, http.StatusForbidden, "forbidden", "403 Forbidden")
			return
		}
		a.inclusion(w, r, func(rec store.EventRecord) bool {
			return rec.EntityType == entityTypeOf(kind) && (rec.EntityID == ns.ID || rec.EntityID == store.LocalID(ns.Key))
		})
	}
}

// inclusion proves an event is in the tree of tree_size (default: the latest checkpoint's,
// which is returned with the proof). visible, when set, must hold for the stored event; nil
// proves any event in the tree, stored or stream-only.
func (a *API) inclusion(w http.ResponseWriter, r *http.Request, visible func(store.EventRecord) bool) {
	if !a.trailOn(w) {
		return
	}
	id, err := strconv.ParseInt(r.PathValue("event_id"), 10, 64)
	if err != nil || id <= 0 {
		writeError(w, http.StatusNotFound, "not_found", "404 Audit Event Not Found")
		return
	}
	if visible != nil {
		rec, err := a.opts.Events.EventGet(r.Context(), id)
		if errors.Is(err, store.ErrNotFound) || (err == nil && !visible(rec)) {
			writeError(w, http.StatusNotFound, "not_found", "404 Audit Event Not Found")
			return
		}
		if err != nil {
			a.writeErr(w, r, err)
			return
		}
	}
	size, ok := a.intParam(w, r, "tree_size", 0, 1)
	if !ok {
		return
	}
	out := trail.InclusionJSON{ID: id, LeafIndex: id - 1}
	if size == 0 {
		c, err := a.opts.Trail.Latest(r.Context())
		if err != nil {
			a.writeErr(w, r, err)
			return
		}
		cj := trail.NewCheckpointJSON(c)
		out.Checkpoint, size = &cj, c.Size
	}
	leaf, proof, err := a.opts.Trail.Inclusion(r.Context(), id, size)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	out.TreeSize, out.LeafHash, out.Proof = size, trail.Hashes([]tlog.Hash{leaf})[0], trail.Hashes(proof)
	writeJSON(w, http.StatusOK, out)
}

// intParam reads an integer query parameter of at least lowest; def when absent, and a
// required parameter when def is -1.
func (a *API) intParam(w http.ResponseWriter, r *http.Request, name string, def, lowest int64) (int64, bool) {
	v := r.URL.Query().Get(name)
	if v == "" {
		if def == -1 {
			a.writeBad(w, "invalid_parameter", name+" is required")
			return 0, false
		}
		return def, true
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lowest {
		a.writeBad(w, "invalid_parameter", name+" must be an integer of at least "+strconv.FormatInt(lowest, 10))
		return 0, false
	}
	return n, true
}

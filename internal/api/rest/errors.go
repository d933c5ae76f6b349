package rest

import (
	"errors"
	"net/http"

	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/eventlog"
	"github.com/auditstream/auditstream/internal/ingest"
	"github.com/auditstream/auditstream/internal/namespace"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/trail"
)

// errorBody is every error response: GitLab clients read "message"; "code" is our stable code.
type errorBody struct {
	Message string              `json:"message"`
	Code    string              `json:"code"`
	Events  []ingest.EventError `json:"events,omitempty"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, errorBody{Message: msg, Code: code})
}

// writeErr maps an error to its status and stable code. Unknown errors are logged in full and
// answered opaquely.
func (a *API) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	var reqErr *ingest.RequestError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &reqErr):
		status := http.StatusUnprocessableEntity
		switch reqErr.Code {
		case ingest.CodeInvalidJSON, ingest.CodeEmpty, ingest.CodeIdempotencyKey, ingest.CodeDuplicateKey, ingest.CodeReservedField:
			status = http.StatusBadRequest
		case ingest.CodeTooManyEvents, ingest.CodeEventTooLarge:
			status = http.StatusRequestEntityTooLarge
		case ingest.CodeProducerScope:
			status = http.StatusForbidden
		case ingest.CodeRateLimited:
			status = http.StatusTooManyRequests
			w.Header().Set("Retry-After", "1")
		}
		writeJSON(w, status, errorBody{Message: reqErr.Message, Code: reqErr.Code, Events: reqErr.Events})
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, "request_too_large", "413 Request Entity Too Large: the body is larger than the limit")
	case errors.Is(err, ingest.ErrBusy):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "busy", "503 Service Unavailable: too many bytes of events are being ingested at once, by this token or overall; nothing was accepted, retry")
	case errors.Is(err, errBodyTooSlow):
		writeError(w, http.StatusRequestTimeout, "body_too_slow", "408 Request Timeout: the body arrived slower than the minimum rate, or took too long; nothing was accepted")
	case errors.Is(err, ingest.ErrReadBody):
		writeError(w, http.StatusBadRequest, "unreadable_body", "400 Bad Request: the request body could not be read")
	case errors.Is(err, ingest.ErrNamespaces), errors.Is(err, auth.ErrUnavailable):
		a.opts.Logger.Error("store unavailable", "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "store_unavailable", "503 Service Unavailable: the database cannot be reached right now; nothing was accepted, retry")
	case errors.Is(err, trail.ErrNoCheckpoint):
		writeError(w, http.StatusNotFound, "no_checkpoint", "404 Not Found: no checkpoint has been signed yet; one follows the first events within --trail-checkpoint-interval")
	case errors.Is(err, trail.ErrNotInTree):
		writeError(w, http.StatusNotFound, "not_in_checkpoint", "404 Not Found: the event is not in the tree of that size (not yet covered by a checkpoint, or no such event)")
	case errors.Is(err, trail.ErrBadSize):
		writeError(w, http.StatusBadRequest, "invalid_tree_size", "400 Bad request - "+err.Error())
	case errors.Is(err, auth.ErrUnauthenticated):
		writeError(w, http.StatusUnauthorized, "unauthorized", "401 Unauthorized")
	case errors.Is(err, store.ErrNotFound), errors.Is(err, namespace.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "404 Not Found")
	case errors.Is(err, store.ErrConflict):
		writeError(w, http.StatusConflict, "conflict", "409 Conflict: already taken")
	case errors.Is(err, namespace.ErrKindMismatch):
		writeError(w, http.StatusUnprocessableEntity, "namespace_conflict", err.Error())
	case errors.Is(err, eventlog.ErrUnavailable):
		a.opts.Logger.Error("log unavailable", "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, ingest.CodeLogUnavailable, "503 Service Unavailable: the event log cannot accept writes right now; retry (with idempotency keys, retries never duplicate)")
	default:
		a.opts.Logger.Error("internal error", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "500 Internal Server Error")
	}
}

// badRequest is invalid input to a non-ingest endpoint.
type badRequest struct{ code, msg string }

func (e *badRequest) Error() string { return e.msg }

func (a *API) writeBad(w http.ResponseWriter, code, msg string) {
	writeError(w, http.StatusBadRequest, code, "400 Bad request - "+msg)
}

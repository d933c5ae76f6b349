package rest

import (
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/ingest"
)

// handleIngest is POST /api/v4/audit_events: one JSON event, a JSON array, or NDJSON. Needs a
// token with the ingest scope.
func (a *API) handleIngest(w http.ResponseWriter, r *http.Request) {
	start := a.opts.NowFunc()
	cw := &countingWriter{ResponseWriter: w}
	var events int
	var read int64
	defer func() {
		if a.opts.ObserveIngest != nil {
			a.opts.ObserveIngest(events, read, a.opts.NowFunc().Sub(start), cw.status)
		}
	}()
	w = cw

	p, ok := a.authenticate(w, r)
	if !ok {
		return
	}
	if !p.HasScope(auth.ScopeIngest) {
		writeError(w, http.StatusForbidden, "insufficient_scope", "403 Forbidden: publishing events needs a token with the ingest scope")
		return
	}
	format := ingest.FormatJSON
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case err != nil && r.Header.Get("Content-Type") != "":
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "415 Unsupported Media Type: use application/json or application/x-ndjson")
		return
	case mt == "application/json" || mt == "":
	case mt == "application/x-ndjson" || mt == "application/jsonl" || mt == "application/json-seq":
		format = ingest.FormatNDJSON
	default:
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "415 Unsupported Media Type: use application/json or application/x-ndjson, not "+mt)
		return
	}
	if r.ContentLength > a.opts.MaxRequestBytes {
		writeError(w, http.StatusRequestEntityTooLarge, "request_too_large", "413 Request Entity Too Large: the body is larger than the limit")
		return
	}
	weight := r.ContentLength
	if weight < 0 {
		weight = a.opts.MaxRequestBytes
	}
	if !a.inflight.TryAcquire(weight) {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "busy", "503 Service Unavailable: too many bytes of events are being ingested at once; retry")
		return
	}
	defer a.inflight.Release(weight)
	// A client that stalls mid-body must not hold its share of the in-flight budget for long.
	_ = http.NewResponseController(w).SetReadDeadline(a.opts.NowFunc().Add(ingestReadTimeout))
	body := &countingReader{r: http.MaxBytesReader(w, r.Body, a.opts.MaxRequestBytes)}
	res, err := a.opts.Ingester.Ingest(r.Context(), ingest.Request{Body: body, Format: format,
		Producer: "u" + strconv.FormatInt(p.User.ID, 10), IdempotencyKey: r.Header.Get("Idempotency-Key"), Allow: a.allow(p)})
	read = body.n
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	events = len(res.IDs)
	writeJSON(w, http.StatusCreated, struct {
		IDs []int64 `json:"ids"`
	}{res.IDs})
}

// allow returns the rate-limit check for p's token, called with the number of valid events
// before anything is published.
func (a *API) allow(p *auth.Principal) func(n int) bool {
	if a.opts.RateLimiter == nil {
		return nil
	}
	return func(n int) bool { return a.opts.RateLimiter.Allow(p.Token.ID, n) }
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// ingestReadTimeout bounds how long an ingest body may take to arrive.
const ingestReadTimeout = 30 * time.Second

type countingWriter struct {
	http.ResponseWriter
	status int
}

// Unwrap lets http.ResponseController reach the connection.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

func (c *countingWriter) WriteHeader(s int) {
	c.status = s
	c.ResponseWriter.WriteHeader(s)
}

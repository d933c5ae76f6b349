package rest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/ingest"
	"github.com/auditstream/auditstream/internal/namespace"
	"github.com/auditstream/auditstream/internal/store"
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
	// The body is charged to the in-flight budget (overall and the token's) as it arrives,
	// whatever it announces, and must keep arriving at the minimum rate: a client that trickles
	// cannot hold the budget, and one token cannot take all of it.
	if a.inflight.Full(p.Token.ID) {
		a.writeErr(w, r, ingest.ErrBusy)
		return
	}
	paced := &pacedReader{r: http.MaxBytesReader(w, r.Body, a.opts.MaxRequestBytes), rc: http.NewResponseController(w),
		start: time.Now(), rate: a.opts.MinBodyRate, grace: a.opts.BodyGrace, timeout: a.opts.BodyTimeout}
	body := a.inflight.Reader(p.Token.ID, paced)
	defer body.Release()
	res, err := a.opts.Ingester.Ingest(r.Context(), ingest.Request{Body: body, Format: format,
		Producer: "u" + strconv.FormatInt(p.User.ID, 10), IdempotencyKey: r.Header.Get("Idempotency-Key"), Allow: a.allow(p),
		MayWrite: a.mayWrite(p), Provenance: p.Producer(event.ViaIngest)})
	read = body.N()
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	events = len(res.IDs)
	writeJSON(w, http.StatusCreated, struct {
		IDs []int64 `json:"ids"`
	}{res.IDs})
}

// mayWrite returns nil for an instance producer — an administrator's token — which may write
// any namespace, and for anyone else the check of a namespace-bound producer: a group access
// token writes only in the tree of its group (groupTokenMayWrite), any other token only in the
// trees of the top-level groups its user owns. The answers are kept for the request, so that a
// batch costs a lookup per top-level group, not per event.
func (a *API) mayWrite(p *auth.Principal) func(ctx context.Context, entityPath string) (string, error) {
	if p.User.Admin {
		return nil
	}
	if p.Token.NamespaceKey != 0 {
		return a.groupTokenMayWrite(p)
	}
	const refusal = "a namespace-bound producer writes only in the top-level groups its user owns"
	owned := map[string]bool{}
	return func(ctx context.Context, entityPath string) (string, error) {
		top, _, _ := strings.Cut(entityPath, "/")
		ok, seen := owned[top]
		if !seen {
			var err error
			if ok, err = a.ownsTop(ctx, p, top); err != nil {
				return "", err
			}
			owned[top] = ok
		}
		if !ok {
			return refusal, nil
		}
		return "", nil
	}
}

// ownsTop reports whether p's user owns the top-level group at topPath.
func (a *API) ownsTop(ctx context.Context, p *auth.Principal, topPath string) (bool, error) {
	ns, err := a.opts.Namespaces.FindPath(ctx, store.KindGroup, topPath)
	if errors.Is(err, namespace.ErrNotFound) {
		return false, nil // creating a top-level group is an instance producer's
	}
	if err != nil {
		return false, err
	}
	if ns.ParentKey != 0 {
		return false, nil
	}
	level, err := a.opts.Auth.AccessLevel(ctx, p, []store.Namespace{ns})
	return level >= auth.Owner, err
}

// groupTokenMayWrite is the check of a group access token: it writes only in the tree of the
// group it was issued for, wherever that group is now (it is bound by key, not path), and only
// while its bot is still a member there. The group and the membership are read once per
// request.
func (a *API) groupTokenMayWrite(p *auth.Principal) func(ctx context.Context, entityPath string) (string, error) {
	var group store.Namespace
	var refusal string
	read := false
	return func(ctx context.Context, entityPath string) (string, error) {
		if !read {
			var err error
			if group, refusal, err = a.tokenGroup(ctx, p); err != nil {
				return "", err
			}
			read = true
		}
		if refusal != "" {
			return refusal, nil
		}
		if entityPath != group.FullPath && !strings.HasPrefix(entityPath, group.FullPath+"/") {
			return fmt.Sprintf("a group access token writes only in the tree of its group, %s", group.FullPath), nil
		}
		return "", nil
	}
}

// tokenGroup returns the group p's group access token is bound to, or why the token may write
// nowhere.
func (a *API) tokenGroup(ctx context.Context, p *auth.Principal) (store.Namespace, string, error) {
	group, err := a.opts.Namespaces.ByKey(ctx, p.Token.NamespaceKey)
	if errors.Is(err, namespace.ErrNotFound) || errors.Is(err, store.ErrNotFound) {
		return group, "the group this group access token was issued for no longer exists", nil
	}
	if err != nil {
		return group, "", err
	}
	level, err := a.opts.Auth.AccessLevel(ctx, p, []store.Namespace{group})
	if err != nil {
		return group, "", err
	}
	if level == auth.NoAccess {
		return group, fmt.Sprintf("this group access token's bot user is no longer a member of %s", group.FullPath), nil
	}
	return group, "", nil
}

// allow returns the rate-limit check for p's token, called with the number of valid events
// before anything is published.
func (a *API) allow(p *auth.Principal) func(n int) bool {
	if a.opts.RateLimiter == nil {
		return nil
	}
	return func(n int) bool { return a.opts.RateLimiter.Allow(p.Token.ID, n) }
}

// errBodyTooSlow is a body that arrived slower than the minimum rate, or not within the timeout.
var errBodyTooSlow = errors.New("rest: the request body arrived too slowly")

// pacedReader reads a request body that must arrive at rate bytes per second on average once
// grace has passed, and within timeout. Before each read it moves the connection's read
// deadline to when the next byte is due, so a client that trickles is cut when it falls
// behind, not after the whole timeout; that read then fails with errBodyTooSlow.
type pacedReader struct {
	r       io.Reader
	rc      *http.ResponseController
	start   time.Time
	rate    int64 // bytes per second; <= 0: none
	grace   time.Duration
	timeout time.Duration

	n        int64
	deadline time.Time // the read deadline last set
}

// deadlineSlack is how much later than the last one a new read deadline must be before it is
// set again (each set is a syscall-free but not free timer update).
const deadlineSlack = 10 * time.Millisecond

func (pr *pacedReader) Read(p []byte) (int, error) {
	due := pr.start.Add(pr.timeout)
	if pr.rate > 0 {
		// The (n+1)th byte is due when the average since grace would drop below rate.
		byRate := pr.start.Add(pr.grace + time.Duration(float64(pr.n+1)/float64(pr.rate)*float64(time.Second)))
		if byRate.Before(due) {
			due = byRate
		}
	}
	if pr.deadline.IsZero() || due.Sub(pr.deadline) > deadlineSlack || due.Before(pr.deadline) {
		if err := pr.rc.SetReadDeadline(due); err == nil {
			pr.deadline = due
		}
	}
	n, err := pr.r.Read(p)
	pr.n += int64(n)
	if err == io.EOF { // the whole body is here: no deadline on what the connection reads next
		_ = pr.rc.SetReadDeadline(time.Time{})
	}
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		return n, fmt.Errorf("%w after %d bytes in %s: %w", errBodyTooSlow, pr.n, time.Since(pr.start).Round(time.Millisecond), err)
	}
	return n, err
}

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

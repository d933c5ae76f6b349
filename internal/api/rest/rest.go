// Package rest is the GitLab-compatible REST transport under /api/v4: event ingest, the
// classic audit-events API, and the admin API for users, tokens, groups, projects and members.
// Handlers only decode, authorize, call and encode; errors are mapped in errors.go.
package rest

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/ingest"
	"github.com/auditstream/auditstream/internal/store"
)

// Events reads stored audit events.
type Events interface {
	EventList(ctx context.Context, p store.EventListParams) ([]store.EventRecord, error)
	EventCount(ctx context.Context, p store.EventListParams) (int64, error)
	EventGet(ctx context.Context, id int64) (store.EventRecord, error)
}

// Users manages users and their tokens: personal access, impersonation and group access tokens.
type Users interface {
	UserCreate(ctx context.Context, p store.UserCreateParams) (store.User, error)
	UserGet(ctx context.Context, id int64) (store.User, error)
	UserList(ctx context.Context) ([]store.User, error)
	TokenCreate(ctx context.Context, p store.TokenCreateParams) (store.Token, error)
	TokenList(ctx context.Context, userID int64) ([]store.Token, error)
	TokenListByNamespace(ctx context.Context, namespaceKey int64) ([]store.Token, error)
	TokenRevoke(ctx context.Context, id int64) error
}

// Members manages memberships of groups and projects.
type Members interface {
	MemberUpsert(ctx context.Context, p store.MemberUpsertParams) (store.Member, error)
	MemberGet(ctx context.Context, namespaceKey, userID int64) (store.Member, error)
	MemberList(ctx context.Context, namespaceKey int64) ([]store.Member, error)
	MemberDelete(ctx context.Context, namespaceKey, userID int64) error
}

// Namespaces resolves groups and projects (namespace.Resolver).
type Namespaces interface {
	Find(ctx context.Context, kind store.NamespaceKind, idOrPath string) (store.Namespace, error)
	FindPath(ctx context.Context, kind store.NamespaceKind, fullPath string) (store.Namespace, error)
	ByKey(ctx context.Context, key int64) (store.Namespace, error)
	Chain(ctx context.Context, ns store.Namespace) ([]store.Namespace, error)
	Create(ctx context.Context, kind store.NamespaceKind, name, path string, parentKey, id int64) (store.Namespace, error)
}

// Authenticator checks tokens and access levels (auth.Authenticator).
type Authenticator interface {
	Authenticate(ctx context.Context, raw string) (*auth.Principal, error)
	AccessLevel(ctx context.Context, p *auth.Principal, chain []store.Namespace) (int, error)
	Forget()
}

// Ingester appends events to the log (ingest.Service).
type Ingester interface {
	Ingest(ctx context.Context, req ingest.Request) (ingest.Result, error)
}

// Auditor records the audit event of a change made through the API (ingest.Service.Record),
// through the same validation and log as a producer's event.
type Auditor interface {
	Record(ctx context.Context, in event.Input, by event.Producer) error
}

// RateLimiter decides whether a token may ingest n more events now.
type RateLimiter interface {
	Allow(tokenID int64, n int) bool
}

// Options configures the API.
type Options struct {
	Events     Events
	Users      Users
	Members    Members
	Namespaces Namespaces
	Auth       Authenticator
	Ingester   Ingester
	// Auditor records the changes made through the admin API (users, tokens, members, groups,
	// projects); nil records nothing.
	Auditor Auditor
	// Trail answers the tamper-evident trail's proofs; nil: the service keeps no trail.
	Trail Trail
	// TrailVerifierKey is the public key checkpoints are signed with (note's verifier key).
	TrailVerifierKey string
	// Republisher re-publishes the events the log lost from the store's copies; nil: the
	// endpoint answers 404 trail_disabled.
	Republisher Republisher
	// StoredUpTo, when set, returns the id up to which the store is complete (the store
	// consumer's acknowledged position), served beside the latest checkpoint as stored_up_to.
	StoredUpTo func(ctx context.Context) (int64, error)
	// RateLimiter limits ingest per token; nil: no limit.
	RateLimiter RateLimiter
	Logger      *slog.Logger
	// MaxRequestBytes bounds an ingest body. Default 32 MiB.
	MaxRequestBytes int64
	// MaxInflightBytes bounds the bytes of ingest bodies held at once, each charged what has
	// arrived of it (not what it announces); past it, ingest answers 503 busy. Default 256 MiB.
	MaxInflightBytes int64
	// MaxInflightBytesPerToken bounds the same for the requests of one token, so that one
	// producer cannot take the whole budget. Default a quarter of MaxInflightBytes, and at
	// least MaxRequestBytes.
	MaxInflightBytesPerToken int64
	// MinBodyRate is the slowest an ingest body may arrive, in bytes per second on average,
	// once BodyGrace has passed; a slower body is cut with 408 body_too_slow. Default 16 KiB/s;
	// negative: no minimum.
	MinBodyRate int64
	// BodyGrace is how long a body may take before MinBodyRate applies. Default 5s.
	BodyGrace time.Duration
	// BodyTimeout is the longest an ingest body may take to arrive. Default 30s.
	BodyTimeout time.Duration
	// ExternalURL is the base URL written into Link headers and web_url fields; default: taken
	// from the request's Host.
	ExternalURL string
	// ObserveIngest, when set, is told about every ingest request.
	ObserveIngest func(events int, bytes int64, d time.Duration, status int)
	NowFunc       func() time.Time
}

// API is the REST handler.
type API struct {
	opts     Options
	mux      *http.ServeMux
	inflight *ingest.Budget // ingest body bytes held, overall and per token
}

// New returns the API. Mount it at the server's root: it serves /api/v4/.
func New(opts Options) *API {
	if opts.MaxRequestBytes == 0 {
		opts.MaxRequestBytes = 32 << 20
	}
	if opts.NowFunc == nil {
		opts.NowFunc = time.Now
	}
	if opts.MaxInflightBytes == 0 {
		opts.MaxInflightBytes = 256 << 20
	}
	opts.MaxInflightBytes = max(opts.MaxInflightBytes, opts.MaxRequestBytes)
	if opts.MaxInflightBytesPerToken == 0 {
		opts.MaxInflightBytesPerToken = max(opts.MaxInflightBytes/4, opts.MaxRequestBytes)
	}
	opts.MaxInflightBytesPerToken = min(max(opts.MaxInflightBytesPerToken, opts.MaxRequestBytes), opts.MaxInflightBytes)
	if opts.MinBodyRate == 0 {
		opts.MinBodyRate = 16 << 10
	}
	if opts.BodyGrace == 0 {
		opts.BodyGrace = 5 * time.Second
	}
	if opts.BodyTimeout == 0 {
		opts.BodyTimeout = 30 * time.Second
	}
	a := &API{opts: opts, mux: http.NewServeMux(),
		inflight: &ingest.Budget{Total: opts.MaxInflightBytes, PerKey: opts.MaxInflightBytesPerToken}}
	a.routes()
	return a
}

func (a *API) routes() {
	m := a.mux
	m.HandleFunc("POST /api/v4/audit_events", a.handleIngest)
	m.HandleFunc("GET /api/v4/audit_events", a.authed(a.listInstanceEvents))
	m.HandleFunc("GET /api/v4/audit_events/{event_id}", a.authed(a.getInstanceEvent))
	m.HandleFunc("GET /api/v4/groups/{id}/audit_events", a.authed(a.listNamespaceEvents(store.KindGroup)))
	m.HandleFunc("GET /api/v4/groups/{id}/audit_events/{event_id}", a.authed(a.getNamespaceEvent(store.KindGroup)))
	m.HandleFunc("GET /api/v4/projects/{id}/audit_events", a.authed(a.listNamespaceEvents(store.KindProject)))
	m.HandleFunc("GET /api/v4/projects/{id}/audit_events/{event_id}", a.authed(a.getNamespaceEvent(store.KindProject)))

	a.trailRoutes()
	m.HandleFunc("GET /api/v4/user", a.authed(a.currentUser))
	m.HandleFunc("GET /api/v4/users", a.authed(a.listUsers))
	m.HandleFunc("POST /api/v4/users", a.authed(a.createUser))
	m.HandleFunc("GET /api/v4/users/{id}", a.authed(a.getUser))
	m.HandleFunc("POST /api/v4/users/{id}/personal_access_tokens", a.authed(a.createToken))
	m.HandleFunc("POST /api/v4/users/{id}/impersonation_tokens", a.authed(a.createImpersonationToken))
	m.HandleFunc("GET /api/v4/users/{id}/impersonation_tokens", a.authed(a.listImpersonationTokens))
	m.HandleFunc("GET /api/v4/users/{id}/impersonation_tokens/{token_id}", a.authed(a.getImpersonationToken))
	m.HandleFunc("DELETE /api/v4/users/{id}/impersonation_tokens/{token_id}", a.authed(a.revokeImpersonationToken))
	m.HandleFunc("GET /api/v4/personal_access_tokens", a.authed(a.listTokens))
	m.HandleFunc("DELETE /api/v4/personal_access_tokens/{token_id}", a.authed(a.revokeToken))

	m.HandleFunc("POST /api/v4/groups", a.authed(a.createNamespace(store.KindGroup)))
	m.HandleFunc("GET /api/v4/groups/{id}", a.authed(a.getNamespace(store.KindGroup)))
	m.HandleFunc("POST /api/v4/projects", a.authed(a.createNamespace(store.KindProject)))
	m.HandleFunc("GET /api/v4/projects/{id}", a.authed(a.getNamespace(store.KindProject)))
	m.HandleFunc("GET /api/v4/groups/{id}/access_tokens", a.authed(a.listGroupTokens))
	m.HandleFunc("POST /api/v4/groups/{id}/access_tokens", a.authed(a.createGroupToken))
	m.HandleFunc("GET /api/v4/groups/{id}/access_tokens/{token_id}", a.authed(a.getGroupToken))
	m.HandleFunc("DELETE /api/v4/groups/{id}/access_tokens/{token_id}", a.authed(a.revokeGroupToken))
	m.HandleFunc("POST /api/v4/groups/{id}/access_tokens/{token_id}/rotate", a.authed(a.rotateGroupToken))
	for _, k := range []store.NamespaceKind{store.KindGroup, store.KindProject} {
		base := "/api/v4/" + string(k) + "s/{id}/members"
		m.HandleFunc("GET "+base, a.authed(a.listMembers(k)))
		m.HandleFunc("POST "+base, a.authed(a.addMember(k)))
		m.HandleFunc("GET "+base+"/{user_id}", a.authed(a.getMember(k)))
		m.HandleFunc("PUT "+base+"/{user_id}", a.authed(a.editMember(k)))
		m.HandleFunc("DELETE "+base+"/{user_id}", a.authed(a.removeMember(k)))
	}
	m.HandleFunc("/api/v4/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "404 Not Found")
	})
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

type authedHandler func(w http.ResponseWriter, r *http.Request, p *auth.Principal)

// authed authenticates the request's token (PRIVATE-TOKEN or Authorization: Bearer) and
// refuses tokens that may not use the REST API (ingest-only tokens).
func (a *API) authed(h authedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := a.authenticate(w, r)
		if !ok {
			return
		}
		if !p.CanRead() {
			writeError(w, http.StatusForbidden, "insufficient_scope", "403 Forbidden: this token's scopes do not allow reading the API (needs api or read_api)")
			return
		}
		if r.Method != http.MethodGet && !p.CanWrite() {
			writeError(w, http.StatusForbidden, "insufficient_scope", "403 Forbidden: this token's scopes do not allow changes (needs api)")
			return
		}
		h(w, r, p)
	}
}

func (a *API) authenticate(w http.ResponseWriter, r *http.Request) (*auth.Principal, bool) {
	raw := r.Header.Get("PRIVATE-TOKEN")
	if raw == "" {
		if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
			raw = h[7:]
		}
	}
	p, err := a.opts.Auth.Authenticate(r.Context(), raw)
	if err != nil {
		a.writeErr(w, r, err)
		return nil, false
	}
	return p, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

func (a *API) baseURL(r *http.Request) string {
	if a.opts.ExternalURL != "" {
		return strings.TrimSuffix(a.opts.ExternalURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

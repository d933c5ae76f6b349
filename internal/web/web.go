// Package web is the browser UI served at /: sign-in with a personal access token, audit
// events (table, filters, detail, CSV export) for the instance, a group or a project, and the
// streaming destinations of a top-level group or the instance (status, create and edit every
// category, headers, filters, secrets, test events, attempts, dead letters, replay).
//
// Pages are rendered on the server from embedded templates, so what a page shows first comes
// in one request and every page works without scripts; the one embedded script only adds
// conveniences (copy, filter search, select a whole category). The UI holds no rules of its
// own: events are scoped with auth's event scopes as the REST API does, and destinations go
// through streamconfig.Service as the GraphQL API does, with the signed-in token's principal.
package web

import (
	"bytes"
	"compress/gzip"
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/httpgzip"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/streamconfig"
)

// Events reads stored audit events.
type Events interface {
	EventList(ctx context.Context, p store.EventListParams) ([]store.EventRecord, error)
	EventGet(ctx context.Context, id int64) (store.EventRecord, error)
}

// Sessions stores signed-in sessions (store.Store).
type Sessions interface {
	WebSessionCreate(ctx context.Context, s store.WebSession) error
	WebSessionGet(ctx context.Context, idHash []byte) (store.WebSession, error)
	WebSessionDelete(ctx context.Context, idHash []byte) error
	WebSessionDeleteExpired(ctx context.Context, now time.Time) (int64, error)
}

// Members lists a user's memberships, and every group and project for administrators, for the
// home page (store.Store).
type Members interface {
	MemberListByUser(ctx context.Context, userID int64) ([]store.Member, error)
	NamespaceList(ctx context.Context) ([]store.Namespace, error)
}

// Users finds the users events name as their authors, to show who they are (store.Store).
type Users interface {
	UserGet(ctx context.Context, id int64) (store.User, error)
}

// Namespaces resolves groups and projects (namespace.Resolver).
type Namespaces interface {
	Find(ctx context.Context, kind store.NamespaceKind, idOrPath string) (store.Namespace, error)
	ByKey(ctx context.Context, key int64) (store.Namespace, error)
	Chain(ctx context.Context, ns store.Namespace) ([]store.Namespace, error)
}

// Authenticator checks tokens and access levels (auth.Authenticator).
type Authenticator interface {
	Authenticate(ctx context.Context, raw string) (*auth.Principal, error)
	AuthenticateHash(ctx context.Context, hash [32]byte) (*auth.Principal, error)
	AccessLevel(ctx context.Context, p *auth.Principal, chain []store.Namespace) (int, error)
}

// Options configure the UI.
type Options struct {
	Streams  *streamconfig.Service
	Events   Events
	Sessions Sessions
	Members  Members
	// Users names the authors of events by their user; nil shows what the events say.
	Users      Users
	Namespaces Namespaces
	Auth       Authenticator
	Catalog    *event.Catalog
	Logger     *slog.Logger
	// SessionTTL is how long a sign-in lasts (never longer than the token). Default 12 h.
	SessionTTL time.Duration
	// SecureCookies marks cookies Secure even on plain HTTP requests, for a UI served over
	// TLS by a proxy in front. Requests that arrive over TLS always get Secure cookies.
	SecureCookies bool
	// TrailProblems, when set, says what the tamper-evident trail found wrong (ids the log
	// lost, a failed audit), shown to administrators on the home page.
	TrailProblems func() []string
	NowFunc       func() time.Time
}

// DefaultSessionTTL is how long a sign-in lasts by default.
const DefaultSessionTTL = 12 * time.Hour

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// UI is the web UI's handler.
type UI struct {
	opts  Options
	mux   *http.ServeMux
	pages map[string]*template.Template
	cop   *http.CrossOriginProtection
	types []typeGroup // the catalog by category, for filters: it never changes
	// categories are the destination categories' forms (opts.Streams.Types): they never change.
	categories []categoryInfo
}

// New returns the UI. Mount it at the server's root; it serves every path the API does not.
func New(opts Options) *UI {
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = DefaultSessionTTL
	}
	if opts.NowFunc == nil {
		opts.NowFunc = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	u := &UI{opts: opts, mux: http.NewServeMux(), pages: parsePages(), cop: http.NewCrossOriginProtection(), types: typeGroups(opts.Catalog)}
	if opts.Streams != nil && opts.Streams.Types != nil {
		u.categories = categoriesOf(opts.Streams.Types)
	}
	u.cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.errorPage(w, r, http.StatusForbidden, "This form did not come from this site, so nothing was changed.")
	}))
	u.routes()
	return u
}

func (u *UI) routes() {
	m := u.mux
	static, _ := fs.Sub(staticFS, "static")
	files := http.FileServerFS(static)
	m.Handle("GET /-/static/", http.StripPrefix("/-/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})))
	m.HandleFunc("GET /{$}", u.signedIn(u.home))
	m.HandleFunc("GET /-/go", u.signedIn(u.goTo))
	m.HandleFunc("GET /users/sign_in", u.signInPage)
	m.HandleFunc("POST /users/sign_in", u.signIn)
	m.HandleFunc("POST /users/sign_out", u.signedIn(u.signOut))
	m.HandleFunc("GET /admin/audit_events", u.signedIn(u.scoped(instanceEvents, u.eventsPage)))
	m.HandleFunc("GET /admin/audit_events.csv", u.signedIn(u.scoped(instanceEvents, u.eventsCSV)))
	m.HandleFunc("GET /admin/audit_events/{rest}", u.signedIn(u.scoped(instanceEvents, u.eventPage)))
	m.HandleFunc("GET /admin/streams", u.signedIn(u.scoped(instanceStreams, u.streamsPage)))
	m.HandleFunc("GET /admin/streams/{rest...}", u.signedIn(u.scoped(instanceStreams, u.streamRoute)))
	m.HandleFunc("POST /admin/streams/{rest...}", u.signedIn(u.scoped(instanceStreams, u.streamRoute)))
	m.HandleFunc("POST /admin/streams", u.signedIn(u.scoped(instanceStreams, u.streamRoute)))
	for _, kind := range []store.NamespaceKind{store.KindGroup, store.KindProject} {
		h := u.signedIn(u.namespaceRoute(kind))
		m.HandleFunc("GET /"+string(kind)+"s/{path...}", h)
		m.HandleFunc("POST /"+string(kind)+"s/{path...}", h)
	}
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		u.errorPage(w, r, http.StatusNotFound, "Page not found.")
	})
}

// ServeHTTP implements http.Handler: security headers on every answer, and cross-origin
// checks on every form (besides each form's CSRF token).
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	u.cop.Handler(u.mux).ServeHTTP(w, r)
}

// --- rendering ---------------------------------------------------------------------------------

// view is what every page template gets.
type view struct {
	Title   string
	Session *session // nil on the sign-in page
	CSRF    string
	Notice  string
	Alert   string
	Crumbs  []crumb
	Data    any
}

type crumb struct{ Name, URL string }

func parsePages() map[string]*template.Template {
	layout := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html"))
	names, _ := fs.Glob(templateFS, "templates/*.html")
	pages := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" || name == "partials" {
			continue
		}
		pages[name] = template.Must(template.Must(layout.Clone()).ParseFS(templateFS, n))
	}
	return pages
}

// render writes a page. It renders into a buffer first, so that a template error becomes a
// clean 500 instead of half a page.
func (u *UI) render(w http.ResponseWriter, r *http.Request, status int, page string, v view) {
	if s := sessionOf(r); s != nil {
		v.Session, v.CSRF = s, s.csrf
	}
	if v.Notice == "" {
		v.Notice = u.takeFlash(w, r)
	}
	var buf bytes.Buffer
	if err := u.pages[page].ExecuteTemplate(&buf, "layout.html", v); err != nil {
		u.opts.Logger.Error("web: rendering a page failed", "page", page, "err", err)
		http.Error(w, "Internal server error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Add("Vary", "Accept-Encoding")
	if buf.Len() < 1024 || !httpgzip.Accepts(r) {
		w.WriteHeader(status)
		_, _ = w.Write(buf.Bytes())
		return
	}
	// A stream's page lists the whole catalog (~180 KB of HTML, ~20 KB compressed).
	h.Set("Content-Encoding", "gzip")
	w.WriteHeader(status)
	zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	_, _ = zw.Write(buf.Bytes())
	_ = zw.Close()
}

func (u *UI) errorPage(w http.ResponseWriter, r *http.Request, status int, msg string) {
	u.render(w, r, status, "error", view{Title: http.StatusText(status), Alert: msg})
}

// fail renders the page for an error of a lower layer.
func (u *UI) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, streamconfig.ErrNotFound):
		u.errorPage(w, r, http.StatusNotFound, streamconfig.ErrNotFound.Error())
	case errors.Is(err, streamconfig.ErrRateLimited):
		u.errorPage(w, r, http.StatusTooManyRequests, streamconfig.ErrRateLimited.Error())
	case errors.Is(err, streamconfig.ErrSecretKey):
		u.opts.Logger.Error("web: destination secrets unreadable", "err", err)
		u.errorPage(w, r, http.StatusInternalServerError, "The server cannot read destination secrets with its configured key; an administrator must restore it.")
	case errors.Is(err, streamconfig.ErrContention):
		u.errorPage(w, r, http.StatusConflict, streamconfig.ErrContention.Error())
	default:
		u.opts.Logger.Error("web: request failed", "path", r.URL.Path, "err", err)
		u.errorPage(w, r, http.StatusServiceUnavailable, "The database cannot be reached right now; nothing was changed. Try again in a moment.")
	}
}

// redirect answers a form with 303 See Other and a notice for the next page.
func (u *UI) redirect(w http.ResponseWriter, r *http.Request, to, notice string) {
	if notice != "" {
		u.setFlash(w, r, notice)
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

func (u *UI) now() time.Time { return u.opts.NowFunc() }

func clientIP(r *http.Request) string {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return ip
}

func (u *UI) actor(r *http.Request) streamconfig.Actor {
	return streamconfig.Actor{Principal: sessionOf(r).principal, IP: clientIP(r)}
}

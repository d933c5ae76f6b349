package web

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/namespace"
	"github.com/auditstream/auditstream/internal/store"
)

// scope is what a page is about: the instance, a group or a project, with what the signed-in
// user may see of its events.
type scope struct {
	Kind   string // "instance", "group" or "project"
	NS     store.Namespace
	Base   string // "/admin", "/groups/<full path>" or "/projects/<full path>"
	Events auth.EventScope
	// TopLevel: a top-level group, or the instance: what may have streams.
	TopLevel bool
}

// Name is how pages name the scope.
func (s scope) Name() string {
	if s.Kind == "instance" {
		return "Instance"
	}
	return s.NS.FullPath
}

// EventsURL and StreamsURL are the scope's pages.
func (s scope) EventsURL() string  { return s.Base + s.sep() + "audit_events" }
func (s scope) StreamsURL() string { return s.Base + s.sep() + "streams" }

func (s scope) sep() string {
	if s.Kind == "instance" {
		return "/"
	}
	return "/-/"
}

func (s scope) crumbs(more ...crumb) []crumb {
	return append([]crumb{{Name: s.Name(), URL: s.EventsURL()}}, more...)
}

type scopeKey struct{}

func scopeOf(r *http.Request) scope {
	s, _ := r.Context().Value(scopeKey{}).(scope)
	return s
}

func withScope(r *http.Request, s scope) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), scopeKey{}, s))
}

// instance is the admin area: the instance's events and streams.
var instance = scope{Kind: "instance", Base: "/admin", Events: auth.SeeAll, TopLevel: true}

// instanceEvents is the admin area's events: administrators only; others get 403, as from
// GET /api/v4/audit_events.
func instanceEvents(u *UI, r *http.Request) (scope, int, string) {
	if !sessionOf(r).User().Admin {
		return scope{}, http.StatusForbidden, "Only administrators can see the instance's audit events."
	}
	return instance, 0, ""
}

// instanceStreams is the admin area's streams: the streams pages ask streamconfig, which
// answers others with GraphQL's not-found.
func instanceStreams(*UI, *http.Request) (scope, int, string) { return instance, 0, "" }

func (u *UI) scoped(resolve func(*UI, *http.Request) (scope, int, string), h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, status, msg := resolve(u, r)
		if status != 0 {
			u.errorPage(w, r, status, msg)
			return
		}
		h(w, withScope(r, s))
	}
}

// namespaceRoute serves /groups/<full path>/-/<page> and /projects/<full path>/-/<page>,
// GitLab's URL scheme: the path may hold slashes, so the page follows "/-/".
func (u *UI) namespaceRoute(kind store.NamespaceKind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		full, page, ok := strings.Cut(r.PathValue("path"), "/-/")
		if !ok {
			// /groups/<path>: the group's events.
			http.Redirect(w, r, "/"+string(kind)+"s/"+strings.TrimSuffix(full, "/")+"/-/audit_events", http.StatusSeeOther)
			return
		}
		s, status, msg := u.namespaceScope(r, kind, full)
		if status != 0 {
			u.errorPage(w, r, status, msg)
			return
		}
		r = withScope(r, s)
		first, rest, _ := strings.Cut(page, "/")
		switch {
		case page == "audit_events" && r.Method == http.MethodGet:
			u.eventsPage(w, r)
		case page == "audit_events.csv" && r.Method == http.MethodGet:
			u.eventsCSV(w, r)
		case first == "audit_events" && rest != "" && r.Method == http.MethodGet:
			r.SetPathValue("rest", rest)
			u.eventPage(w, r)
		case first == "streams" && kind == store.KindGroup:
			r.SetPathValue("rest", rest)
			u.streamRoute(w, r)
		default:
			u.errorPage(w, r, http.StatusNotFound, "Page not found.")
		}
	}
}

// namespaceScope resolves a group or project and the user's access, with the REST API's
// answers: not found for non-members (whether or not it exists), forbidden for members whose
// role shows them nothing.
func (u *UI) namespaceScope(r *http.Request, kind store.NamespaceKind, fullPath string) (scope, int, string) {
	ctx := r.Context()
	p := sessionOf(r).principal
	notFound := func() (scope, int, string) {
		if kind == store.KindProject {
			return scope{}, http.StatusNotFound, "Project not found, or you are not a member of it."
		}
		return scope{}, http.StatusNotFound, "Group not found, or you are not a member of it."
	}
	if fullPath == "" || strings.Contains(fullPath, "//") {
		return notFound()
	}
	ns, err := u.opts.Namespaces.Find(ctx, kind, fullPath)
	if errors.Is(err, namespace.ErrNotFound) {
		return notFound()
	}
	level := auth.NoAccess
	if err == nil {
		var chain []store.Namespace
		if chain, err = u.opts.Namespaces.Chain(ctx, ns); err == nil {
			level, err = u.opts.Auth.AccessLevel(ctx, p, chain)
		}
	}
	if err != nil {
		u.opts.Logger.Error("web: resolving a namespace failed", "path", fullPath, "err", err)
		return scope{}, http.StatusServiceUnavailable, "The database cannot be reached right now. Try again in a moment."
	}
	if level == auth.NoAccess {
		return notFound()
	}
	return scope{Kind: string(kind), NS: ns, Base: "/" + string(kind) + "s/" + ns.FullPath, TopLevel: kind == store.KindGroup && ns.ParentKey == 0,
		Events: auth.EventScopeFor(kind, level)}, 0, ""
}

package web

import (
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/store"
)

type place struct {
	Kind, FullPath string
	Level          int
	Events         bool // the role shows events
	Streams        bool // an owner of a top-level group: may manage its streams
	Base           string
}

type homeData struct {
	Places []place
	// Groups are the top-level groups, for administrators (at most maxAdminGroups).
	Groups     []place
	MoreGroups int
	// TrailProblems is what the trail found wrong, for administrators.
	TrailProblems []string
}

// maxAdminGroups bounds the top-level groups the home page lists for administrators; the
// "Go to a group" box reaches the others.
const maxAdminGroups = 200

// home lists where the user can go: the admin area, and the groups and projects they are a
// member of, with what their role lets them see.
func (u *UI) home(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	s := sessionOf(r)
	ms, err := u.opts.Members.MemberListByUser(ctx, s.User().ID)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	var d homeData
	now := u.now()
	for _, m := range ms {
		if !auth.MemberActive(m, now) {
			continue
		}
		ns, err := u.opts.Namespaces.ByKey(ctx, m.NamespaceKey)
		if err != nil {
			continue // removed since: nothing to show
		}
		p := place{Kind: string(ns.Kind), FullPath: ns.FullPath, Level: m.AccessLevel, Base: "/" + string(ns.Kind) + "s/" + ns.FullPath,
			Events:  auth.EventScopeFor(ns.Kind, m.AccessLevel) != auth.SeeNone,
			Streams: ns.Kind == store.KindGroup && ns.ParentKey == 0 && m.AccessLevel >= auth.Owner}
		d.Places = append(d.Places, p)
	}
	slices.SortFunc(d.Places, func(a, b place) int { return strings.Compare(a.FullPath, b.FullPath) })
	if s.User().Admin {
		if u.opts.TrailProblems != nil {
			d.TrailProblems = u.opts.TrailProblems()
		}
		all, err := u.opts.Members.NamespaceList(ctx)
		if err != nil {
			u.fail(w, r, err)
			return
		}
		for _, ns := range all {
			if ns.Kind == store.KindGroup && ns.ParentKey == 0 {
				d.Groups = append(d.Groups, place{Kind: string(ns.Kind), FullPath: ns.FullPath, Base: "/groups/" + ns.FullPath, Events: true, Streams: true})
			}
		}
		slices.SortFunc(d.Groups, func(a, b place) int { return strings.Compare(a.FullPath, b.FullPath) })
		if len(d.Groups) > maxAdminGroups {
			d.Groups, d.MoreGroups = d.Groups[:maxAdminGroups], len(d.Groups)-maxAdminGroups
		}
	}
	u.render(w, r, http.StatusOK, "home", view{Title: "auditstream", Data: d})
}

var levelNames = map[int]string{auth.Guest: "Guest", auth.Reporter: "Reporter", auth.Developer: "Developer", auth.Maintainer: "Maintainer", auth.Owner: "Owner"}

var funcs = template.FuncMap{
	"time": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"ago": func(now, t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		d := now.Sub(t).Round(time.Second)
		switch {
		case d < time.Minute:
			return fmt.Sprintf("%ds ago", int(d.Seconds()))
		case d < time.Hour:
			return fmt.Sprintf("%dm ago", int(d.Minutes()))
		case d < 48*time.Hour:
			return fmt.Sprintf("%dh ago", int(d.Hours()))
		}
		return fmt.Sprintf("%dd ago", int(d.Hours()/24))
	},
	"level":    func(l int) string { return levelNames[l] },
	"status":   statusLabel,
	"contains": func(m map[string]bool, k string) bool { return m[k] },
	"split":    func(s string) []string { return strings.Split(s, "\n") },
	"limits": func() any {
		return struct{ BatchEvents, BatchKiB, BatchWaitMs, Concurrency, MaxConcurrency int }{destination.DefaultBatchMaxEvents,
			destination.DefaultBatchMaxBytes >> 10, destination.DefaultBatchMaxWaitMs, destination.DefaultConcurrency, destination.MaxConcurrency}
	},
	"lower": strings.ToLower,
	"tabs": func(s scope, current string) any {
		return struct {
			S       scope
			Current string
		}{s, current}
	},
	"entityTypes": func() []struct{ Value, Label string } {
		return []struct{ Value, Label string }{{event.EntityGroup, "Group"}, {event.EntityProject, "Project"}, {event.EntityUser, "User"}, {event.EntityInstance, "Instance"}}
	},
}

// statusLabel words a delivery state for people.
func statusLabel(s string) string {
	switch s {
	case "healthy":
		return "Healthy"
	case "failing":
		return "Failing"
	case "circuit_open":
		return "Circuit open"
	case "paused":
		return "Paused"
	case "error":
		return "Error"
	}
	return s
}

// goTo opens the group at the typed path.
func (u *UI) goTo(w http.ResponseWriter, r *http.Request) {
	p := strings.Trim(strings.TrimSpace(r.URL.Query().Get("path")), "/")
	if p == "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/groups/"+p+"/-/audit_events", http.StatusSeeOther)
}

package web

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/auditstream/auditstream/internal/delivery"
	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/streamconfig"
)

// owner resolves the streams' owner of the page's scope. Whether the user may manage them
// (streamconfig's rule: the top-level group's owners, or administrators) is for the
// streamconfig call that reads or changes them, or for authorized.
func (u *UI) owner(w http.ResponseWriter, r *http.Request) (streamconfig.Owner, bool) {
	s := scopeOf(r)
	o := streamconfig.Owner{Scope: store.ScopeInstance}
	if s.Kind != "instance" {
		if !s.TopLevel {
			top, _, _ := strings.Cut(s.NS.FullPath, "/")
			u.errorPage(w, r, http.StatusNotFound, "Streams are set on the top-level group: see /groups/"+top+"/-/streams.")
			return o, false
		}
		o = streamconfig.Owner{Scope: store.ScopeGroup, Group: s.NS}
	}
	return o, true
}

// authorized is owner for a page that shows none of the owner's streams (the form to add one):
// it checks that the user may manage them.
func (u *UI) authorized(w http.ResponseWriter, r *http.Request) (streamconfig.Owner, bool) {
	o, ok := u.owner(w, r)
	if !ok {
		return o, false
	}
	if err := u.opts.Streams.CheckRead(r.Context(), u.actor(r), o); err != nil {
		u.fail(w, r, err)
		return o, false
	}
	return o, true
}

func ref(o streamconfig.Owner, id int64) streamconfig.Ref {
	return streamconfig.Ref{Scope: o.Scope, ID: id, Flavor: streamconfig.Unified}
}

// streamRoute dispatches <scope>/streams[/<rest>].
func (u *UI) streamRoute(w http.ResponseWriter, r *http.Request) {
	rest := r.PathValue("rest")
	id, sub, _ := strings.Cut(rest, "/")
	switch {
	case rest == "" && r.Method == http.MethodGet:
		u.streamsPage(w, r)
	case rest == "" && r.Method == http.MethodPost:
		u.createStream(w, r)
	case rest == "new" && r.Method == http.MethodGet:
		u.newStreamPage(w, r)
	case rest == "retention" && r.Method == http.MethodPost:
		u.setRetention(w, r)
	default:
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil || n <= 0 || (sub != "" && sub != "delete") || (sub == "delete" && r.Method != http.MethodGet) {
			u.errorPage(w, r, http.StatusNotFound, "Page not found.")
			return
		}
		o, ok := u.owner(w, r)
		if !ok {
			return
		}
		if sub == "" && r.Method != http.MethodPost { // GET, or HEAD
			u.streamPage(w, r, o, n, http.StatusOK, pageExtras{ShowSecrets: r.URL.Query().Get("show") == "secrets"})
			return
		}
		d, ok := u.destination(w, r, o, n)
		if !ok {
			return
		}
		switch {
		case sub == "delete":
			u.render(w, r, http.StatusOK, "stream_delete", view{Title: "Delete " + d.Name,
				Crumbs: u.streamCrumbs(r, crumb{Name: d.Name, URL: u.streamURL(r, d.ID)}, crumb{Name: "Delete"}), Data: streamData{Scope: scopeOf(r), D: d}})
		default: // POST
			u.streamAction(w, r, o, d)
		}
	}
}

// destination finds one of the owner's destinations: an id of another owner's is not found,
// whatever the user may see elsewhere.
func (u *UI) destination(w http.ResponseWriter, r *http.Request, o streamconfig.Owner, id int64) (streamconfig.Destination, bool) {
	d, err := u.opts.Streams.Get(r.Context(), u.actor(r), ref(o, id))
	if err == nil {
		err = sameOwner(d, o)
	}
	if err != nil {
		u.fail(w, r, err)
		return streamconfig.Destination{}, false
	}
	return d, true
}

// sameOwner refuses a destination of another group than the page's, as not found.
func sameOwner(d streamconfig.Destination, o streamconfig.Owner) error {
	if d.Owner.Group.Key != o.Group.Key {
		return streamconfig.ErrNotFound
	}
	return nil
}

func (u *UI) streamURL(r *http.Request, id int64) string {
	return scopeOf(r).StreamsURL() + "/" + strconv.FormatInt(id, 10)
}

func (u *UI) streamCrumbs(r *http.Request, more ...crumb) []crumb {
	s := scopeOf(r)
	return s.crumbs(append([]crumb{{Name: "Streams", URL: s.StreamsURL()}}, more...)...)
}

type listedStream struct {
	D      streamconfig.Destination
	Status streamconfig.DeliveryStatus
	Info   categoryInfo
	URL    string
	// Where is where the stream goes: the URL's host, the bucket, the log.
	Where string
}

type streamsData struct {
	Scope      scope
	Streams    []listedStream
	Categories []categoryInfo
	Now        time.Time
	Retention  *retentionView // a group's; nil for the instance
}

// retentionView is a top-level group's retention of stored events, as the streams page shows it.
type retentionView struct {
	Group    string
	Text     string // "kept for 90 days", "kept for the instance default (30 days)", …
	Days     string // the group's own setting, for the form; empty: none
	Min, Max int    // bounds in days; Max 0: no ceiling
}

func retentionOf(ret streamconfig.Retention, days string) *retentionView {
	v := &retentionView{Group: ret.Group.FullPath, Days: days, Min: ret.Bounds.MinDays(), Max: ret.Bounds.MaxDays()}
	switch {
	case ret.Own > 0:
		v.Text = "kept for " + strconv.Itoa(int(ret.Own/streamconfig.Day)) + " days (this group's setting)"
		if days == "" {
			v.Days = strconv.Itoa(int(ret.Own / streamconfig.Day))
		}
	case ret.Bounds.Default > 0:
		v.Text = "kept for the instance default, " + strconv.Itoa(int((ret.Bounds.Default+streamconfig.Day-1)/streamconfig.Day)) + " days"
	default:
		v.Text = "kept forever (the instance default)"
	}
	return v
}

func (u *UI) streamsPage(w http.ResponseWriter, r *http.Request) {
	u.renderStreams(w, r, http.StatusOK, "", "")
}

// renderStreams shows the streams page, with problems of a refused retention form and the
// days it asked for.
func (u *UI) renderStreams(w http.ResponseWriter, r *http.Request, status int, problems, days string) {
	o, ok := u.owner(w, r)
	if !ok {
		return
	}
	ls, err := u.opts.Streams.ListWithStatus(r.Context(), u.actor(r), o)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	d := streamsData{Scope: scopeOf(r), Categories: u.categories, Now: u.now().UTC()}
	for _, l := range ls {
		ci, _ := u.categoryOf(l.Category)
		d.Streams = append(d.Streams, listedStream{D: l.Destination, Status: l.Status, Info: ci, URL: u.streamURL(r, l.ID),
			Where: u.opts.Streams.Types.Where(l.Category, l.Config)})
	}
	if o.Scope == store.ScopeGroup {
		ret, err := u.opts.Streams.Retention(r.Context(), u.actor(r), o.Group.FullPath)
		if err != nil {
			u.fail(w, r, err)
			return
		}
		d.Retention = retentionOf(ret, days)
	}
	u.render(w, r, status, "streams", view{Title: "Streams · " + scopeOf(r).Name(), Crumbs: u.streamCrumbs(r), Alert: problems, Data: d})
}

// setRetention sets the group's retention of stored events from the streams page's form: a
// number of days, or empty for the instance default.
func (u *UI) setRetention(w http.ResponseWriter, r *http.Request) {
	o, ok := u.owner(w, r)
	if !ok || !u.requireWrite(w, r) {
		return
	}
	if o.Scope != store.ScopeGroup {
		u.errorPage(w, r, http.StatusNotFound, "Page not found.")
		return
	}
	raw := strings.TrimSpace(r.PostFormValue("days"))
	var days *int
	if raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil {
			u.renderStreams(w, r, http.StatusUnprocessableEntity, "Retention must be a whole number of days, or empty for the instance default.", raw)
			return
		}
		days = &n
	}
	ret, err := u.opts.Streams.SetRetention(r.Context(), u.actor(r), o.Group.FullPath, days)
	if in, ok := errors.AsType[*streamconfig.InputError](err); ok {
		u.renderStreams(w, r, http.StatusUnprocessableEntity, strings.Join(in.Messages, "\n"), raw)
		return
	}
	if err != nil {
		u.fail(w, r, err)
		return
	}
	u.redirect(w, r, scopeOf(r).StreamsURL()+"#retention", "Stored audit events of "+ret.Group.FullPath+" are "+retentionOf(ret, "").Text+".")
}

type newStreamData struct {
	Scope      scope
	Form       streamForm
	Categories []categoryInfo
}

func (u *UI) newStreamPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := u.authorized(w, r); !ok {
		return
	}
	ci, ok := u.categoryOf(r.URL.Query().Get("category"))
	if !ok {
		ci = u.categories[0]
	}
	f := formFromConfig(ci, "", true, nil)
	u.renderNew(w, r, http.StatusOK, f, nil)
}

func (u *UI) renderNew(w http.ResponseWriter, r *http.Request, status int, f streamForm, problems []string) {
	u.render(w, r, status, "stream_new", view{Title: "Add a stream", Alert: strings.Join(problems, "\n"),
		Crumbs: u.streamCrumbs(r, crumb{Name: "Add"}), Data: newStreamData{Scope: scopeOf(r), Form: f, Categories: u.categories}})
}

func (u *UI) requireWrite(w http.ResponseWriter, r *http.Request) bool {
	if !sessionOf(r).CanWrite() {
		u.errorPage(w, r, http.StatusForbidden, "You signed in with a read-only token (read_api): sign in with a token that has the api scope to change streams.")
		return false
	}
	return true
}

func (u *UI) createStream(w http.ResponseWriter, r *http.Request) {
	o, ok := u.authorized(w, r) // before judging the form, as the API does
	if !ok || !u.requireWrite(w, r) {
		return
	}
	ci, ok := u.categoryOf(r.PostFormValue("category"))
	if !ok {
		u.errorPage(w, r, http.StatusBadRequest, "Choose one of the categories.")
		return
	}
	f := formFromRequest(ci, r)
	cfg, problems := f.config()
	if len(problems) > 0 {
		u.renderNew(w, r, http.StatusUnprocessableEntity, f, problems)
		return
	}
	p := streamconfig.CreateParams{Owner: o, Category: ci.Category, Config: cfg, Active: &f.Active}
	if f.Name != "" {
		p.Name = &f.Name
	}
	if f.Secret != "" {
		p.SecretToken = &f.Secret
	}
	d, err := u.opts.Streams.Create(r.Context(), u.actor(r), p)
	var in *streamconfig.InputError
	if errors.As(err, &in) {
		f.Secret = "" // never sent back
		u.renderNew(w, r, http.StatusUnprocessableEntity, f, in.Messages)
		return
	}
	if err != nil {
		u.fail(w, r, err)
		return
	}
	u.redirect(w, r, u.streamURL(r, d.ID), fmt.Sprintf("Added stream %q. Send a test event to check that it works.", d.Name))
}

// pageExtras is what a stream page shows besides the destination.
type pageExtras struct {
	ShowSecrets bool
	Test        *delivery.TestResult
	Form        *streamForm // the settings as posted, after a refused update
	Problems    []string
	// Expression is the expression as posted, after a refused save or a try; nil shows the
	// saved one.
	Expression *string
	// Preview is the result of "Try it", when the page answers one.
	Preview *exprPreview
}

// exprPreview is what "Try it on the last 100 events" found.
type exprPreview struct {
	Error    string // the compiler's message; then nothing was examined
	Examined int
	Matched  []int64 // event ids, newest first
}

type streamData struct {
	Scope       scope
	D           streamconfig.Destination
	Info        categoryInfo
	URL         string
	Form        streamForm
	Status      streamconfig.DeliveryStatus
	Attempts    []store.DeliveryAttempt
	DeadLetters []store.DeadLetter
	DLNext      string
	Types       []typeGroup
	Mode        string // "all", "include" or "exclude"
	Selected    map[string]bool
	BothModes   bool
	Extras      pageExtras
	Expression  string // shown in the expression field
	ReplayFrom  string
	Now         time.Time
	Charts      []chart // the delivery history's plots (plots.go)
}

const (
	attemptsShown    = 20
	deadLettersShown = 50
)

// streamPage shows destination id of the owner, read in one authorized call.
func (u *UI) streamPage(w http.ResponseWriter, r *http.Request, o streamconfig.Owner, id int64, status int, x pageExtras) {
	before, _ := strconv.ParseInt(r.URL.Query().Get("dead_letters_before"), 10, 64)
	ov, err := u.opts.Streams.Overview(r.Context(), u.actor(r), ref(o, id), attemptsShown, max(before, 0), deadLettersShown+1)
	if err == nil {
		err = sameOwner(ov.Destination, o)
	}
	if err != nil {
		u.fail(w, r, err)
		return
	}
	d, dls := ov.Destination, ov.DeadLetters
	ci, _ := u.categoryOf(d.Category)
	data := streamData{Scope: scopeOf(r), D: d, Info: ci, URL: u.streamURL(r, d.ID), Status: ov.Status, Attempts: ov.Attempts, Types: u.types,
		Extras: x, Now: u.now().UTC(), ReplayFrom: u.now().UTC().Add(-time.Hour).Format("2006-01-02T15:04")}
	if len(dls) > deadLettersShown {
		dls = dls[:deadLettersShown]
		data.DLNext = data.URL + "?dead_letters_before=" + strconv.FormatInt(dls[len(dls)-1].ID, 10) + "#dead-letters"
	}
	data.DeadLetters = dls
	data.Charts = u.deliveryCharts(d)
	data.Form = formFromConfig(ci, d.Name, d.Active, d.Config)
	if x.Form != nil {
		data.Form = *x.Form
	}
	data.Expression = d.FilterExpression
	if x.Expression != nil {
		data.Expression = *x.Expression
	}
	data.Selected = map[string]bool{}
	allow := len(d.EventTypes)+len(d.Categories) > 0
	deny := len(d.DenyEventTypes)+len(d.DenyCategories) > 0
	data.BothModes = allow && deny
	switch {
	case allow:
		data.Mode = "include"
		for _, v := range slices.Concat(d.EventTypes, prefixed("category:", d.Categories)) {
			data.Selected[v] = true
		}
	case deny:
		data.Mode = "exclude"
		for _, v := range slices.Concat(d.DenyEventTypes, prefixed("category:", d.DenyCategories)) {
			data.Selected[v] = true
		}
	default:
		data.Mode = "all"
	}
	u.render(w, r, status, "stream", view{Title: d.Name + " · Streams", Alert: strings.Join(x.Problems, "\n"),
		Crumbs: u.streamCrumbs(r, crumb{Name: d.Name}), Data: data})
}

func prefixed(p string, l []string) []string {
	out := make([]string, len(l))
	for i, v := range l {
		out[i] = p + v
	}
	return out
}

// streamAction runs one of the stream page's forms.
func (u *UI) streamAction(w http.ResponseWriter, r *http.Request, o streamconfig.Owner, d streamconfig.Destination) {
	if !u.requireWrite(w, r) {
		return
	}
	ctx := r.Context()
	a := u.actor(r)
	rf := ref(o, d.ID)
	here := u.streamURL(r, d.ID)
	var err error
	var notice, anchor string
	var x pageExtras
	switch action := r.PostFormValue("action"); action {
	case "update":
		ci, _ := u.categoryOf(d.Category)
		f := formFromRequest(ci, r)
		cfg, problems := f.config()
		if len(problems) > 0 {
			f.Secret = ""
			u.streamPage(w, r, o, d.ID, http.StatusUnprocessableEntity, pageExtras{Form: &f, Problems: problems})
			return
		}
		p := streamconfig.UpdateParams{Ref: rf, Config: withKept(ci, cfg, d.Config), Name: &f.Name, Active: &f.Active, KeepHeaders: true}
		if f.Secret != "" {
			p.SecretToken = &f.Secret
		}
		_, err = u.opts.Streams.Update(ctx, a, p)
		f.Secret = ""
		x.Form = &f
		notice, anchor = "Saved the settings.", "#settings"
	case "activate", "deactivate":
		active := action == "activate"
		_, err = u.opts.Streams.Update(ctx, a, streamconfig.UpdateParams{Ref: rf, Active: &active})
		notice = map[bool]string{true: "Activated: events flow to this stream again.", false: "Deactivated: this stream receives nothing until it is activated."}[active]
	case "delete":
		if err = u.opts.Streams.Delete(ctx, a, rf); err == nil {
			u.redirect(w, r, scopeOf(r).StreamsURL(), fmt.Sprintf("Deleted stream %q.", d.Name))
			return
		}
	case "header_add":
		_, err = u.opts.Streams.AddHeader(ctx, a, rf, strings.TrimSpace(r.PostFormValue("header_name")), r.PostFormValue("header_value"), r.PostFormValue("header_active") == "on")
		notice, anchor = "Added the header.", "#headers"
	case "header_update":
		name, value, active := strings.TrimSpace(r.PostFormValue("header_name")), r.PostFormValue("header_value"), r.PostFormValue("header_active") == "on"
		_, err = u.opts.Streams.UpdateHeader(ctx, a, rf, formID(r, "header_id"), &name, &value, &active)
		notice, anchor = "Saved the header.", "#headers"
	case "header_delete":
		err = u.opts.Streams.DeleteHeader(ctx, a, rf, formID(r, "header_id"))
		notice, anchor = "Deleted the header.", "#headers"
	case "filters":
		err = u.setFilters(r, a, rf)
		notice, anchor = "Saved the event filters.", "#filters"
	case "expression":
		expr := r.PostFormValue("expression")
		x.Expression = &expr
		_, err = u.opts.Streams.SetFilterExpression(ctx, a, rf, expr)
		notice, anchor = "Saved the expression.", "#expression"
		if strings.TrimSpace(expr) == "" {
			notice = "Cleared the expression."
		}
	case "expression_try":
		expr := r.PostFormValue("expression")
		pv, perr := u.opts.Streams.PreviewExpression(ctx, a, o, expr)
		var in *streamconfig.InputError
		switch {
		case errors.As(perr, &in):
			u.streamPage(w, r, o, d.ID, http.StatusOK, pageExtras{Expression: &expr, Preview: &exprPreview{Error: in.Error()}})
			return
		case perr == nil:
			u.streamPage(w, r, o, d.ID, http.StatusOK, pageExtras{Expression: &expr, Preview: &exprPreview{Examined: pv.Examined, Matched: pv.Matched}})
			return
		}
		err = perr
	case "namespace_add":
		kind := store.NamespaceKind(r.PostFormValue("namespace_kind"))
		if kind != store.KindGroup && kind != store.KindProject {
			kind = streamconfig.NamespaceKindAny
		}
		_, _, err = u.opts.Streams.AddNamespaceFilter(ctx, a, rf, strings.TrimSpace(r.PostFormValue("namespace_path")), kind, false)
		notice, anchor = "Added the namespace filter.", "#namespaces"
	case "namespace_delete":
		err = u.opts.Streams.DeleteNamespaceFilter(ctx, a, rf, formID(r, "filter_id"))
		notice, anchor = "Deleted the namespace filter.", "#namespaces"
	case "rotate_secret":
		grace, perr := time.ParseDuration(r.PostFormValue("grace"))
		if perr != nil || grace < 0 {
			grace = 0
		}
		_, err = u.opts.Streams.RotateSigningSecret(ctx, a, rf, grace)
		notice, anchor = "Rotated the signing secret. Update your receiver with the new one.", "#secrets"
	case "test":
		var res delivery.TestResult
		if res, err = u.opts.Streams.SendTestEvent(ctx, a, rf); err == nil {
			u.streamPage(w, r, o, d.ID, http.StatusOK, pageExtras{Test: &res})
			return
		}
	case "replay":
		since, perr := event.ParseTimeParam(r.PostFormValue("since"))
		if perr != nil {
			err = &streamconfig.InputError{Messages: []string{"Replay from must be a date and time such as 2025-01-31T09:30 (UTC)."}}
		} else {
			err = u.opts.Streams.Replay(ctx, a, rf, since)
		}
		notice, anchor = "Replaying the events since "+r.PostFormValue("since")+" UTC: they arrive again, in order, over the next moments.", "#deliveries"
	case "redeliver":
		var ids []int64
		for _, v := range r.PostForm["dead_letter_id"] {
			if id, perr := strconv.ParseInt(v, 10, 64); perr == nil {
				ids = append(ids, id)
			}
		}
		if r.PostFormValue("all") == "" && len(ids) == 0 {
			err = &streamconfig.InputError{Messages: []string{"Select the dead letters to redeliver, or redeliver all."}}
			break
		}
		var res delivery.RedeliverResult
		res, err = u.opts.Streams.Redeliver(ctx, a, rf, ids)
		notice, anchor = fmt.Sprintf("Redelivered: %d delivered, %d failed.", res.Delivered, res.Failed), "#dead-letters"
		if res.LastError != "" {
			notice += " Last error: " + res.LastError
		}
	default:
		u.errorPage(w, r, http.StatusBadRequest, "Unknown action.")
		return
	}
	var in *streamconfig.InputError
	if errors.As(err, &in) { // nothing was changed: the page as it was, with what was wrong
		x.Problems = in.Messages
		u.streamPage(w, r, o, d.ID, http.StatusUnprocessableEntity, x)
		return
	}
	if err != nil {
		u.fail(w, r, err)
		return
	}
	u.redirect(w, r, here+anchor, notice)
}

func formID(r *http.Request, name string) int64 {
	id, _ := strconv.ParseInt(r.PostFormValue(name), 10, 64)
	return id
}

// setFilters saves the filter form: "all" clears every list; "include" and "exclude" set the
// allow or the deny lists (types, and whole categories as "category:<name>") and clear the
// others.
func (u *UI) setFilters(r *http.Request, a streamconfig.Actor, rf streamconfig.Ref) error {
	types, cats := []string{}, []string{}
	for _, v := range r.PostForm["filter"] {
		if c, ok := strings.CutPrefix(v, "category:"); ok {
			cats = append(cats, c)
		} else {
			types = append(types, v)
		}
	}
	// A whole category covers its types: keep the list short, as the catalog grows.
	types = slices.DeleteFunc(types, func(t string) bool {
		et := u.opts.Catalog.Lookup(t)
		return et != nil && slices.Contains(cats, et.FeatureCategory)
	})
	none := []string{}
	fl := streamconfig.FilterLists{EventTypes: &none, DenyEventTypes: &none, Categories: &none, DenyCategories: &none}
	switch r.PostFormValue("mode") {
	case "all":
	case "include":
		fl.EventTypes, fl.Categories = &types, &cats
	case "exclude":
		fl.DenyEventTypes, fl.DenyCategories = &types, &cats
	default:
		return &streamconfig.InputError{Messages: []string{"Choose which events the stream gets: all, only the selected, or all but the selected."}}
	}
	if r.PostFormValue("mode") != "all" && len(types)+len(cats) == 0 {
		return &streamconfig.InputError{Messages: []string{"Select at least one event type or category, or choose all events."}}
	}
	_, err := u.opts.Streams.SetFilters(r.Context(), a, rf, fl)
	return err
}

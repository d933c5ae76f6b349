package rest

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/auditstream/auditstream/internal/adminaudit"
	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/store"
)

// The admin API in GitLab's shapes: users, personal access tokens, groups, projects, members.

// User is a user as GitLab's API shows it (the CLI prints the same).
type User struct {
	ID        int64     `json:"id"`
	Username  string    `json:"username"`
	Name      string    `json:"name"`
	State     string    `json:"state"`
	Email     string    `json:"email,omitempty"`
	IsAdmin   *bool     `json:"is_admin,omitempty"` // shown to administrators only, as GitLab does
	Bot       bool      `json:"bot"`                // the bot user of a group access token
	CreatedAt time.Time `json:"created_at"`
	WebURL    string    `json:"web_url"`
}

// NewUser shows u; base is the service's external URL, for web_url. withEmail shows the email
// (administrators and the user themself see it), withAdmin is_admin (administrators only:
// GitLab's UserWithAdmin entity; everyone else, the user included, gets an entity without it).
func NewUser(u store.User, base string, withEmail, withAdmin bool) User {
	j := User{ID: u.ID, Username: u.Username, Name: u.Name, State: "active", Bot: u.Bot,
		CreatedAt: u.CreatedAt, WebURL: userWebURL(base, u.ID)}
	if withEmail {
		j.Email = u.Email
	}
	if withAdmin {
		j.IsAdmin = &u.Admin
	}
	return j
}

// userWebURL is the UI's page of user id: the audit events about the user (the UI has no
// profile page; GitLab's /<username> would be a 404 here).
func userWebURL(base string, id int64) string {
	return base + "/admin/audit_events?entity_type=User&entity_id=" + strconv.FormatInt(id, 10)
}

// userJSON is u as viewer sees it.
func (a *API) userJSON(r *http.Request, u store.User, viewer *auth.Principal) User {
	return NewUser(u, a.baseURL(r), viewer.User.Admin || viewer.User.ID == u.ID, viewer.User.Admin)
}

// decodeBody decodes a JSON or form body into v (GitLab accepts both).
func decodeBody(r *http.Request, v any) error {
	r.Body = http.MaxBytesReader(nil, r.Body, 1<<20)
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		if err := json.NewDecoder(r.Body).Decode(v); err != nil {
			return &badRequest{"invalid_json", "the body is not valid JSON: " + strings.TrimPrefix(err.Error(), "json: ")}
		}
		return nil
	}
	if err := r.ParseForm(); err != nil {
		return &badRequest{"invalid_form", "the form body cannot be parsed"}
	}
	m := map[string]any{}
	for k, vs := range r.PostForm {
		k = strings.TrimSuffix(k, "[]")
		if len(vs) > 1 || strings.HasSuffix(k, "scopes") {
			m[k] = vs
		} else {
			m[k] = vs[0]
		}
	}
	b, _ := json.Marshal(m)
	if err := json.Unmarshal(b, v); err != nil {
		return &badRequest{"invalid_form", "a form field has the wrong type: " + strings.TrimPrefix(err.Error(), "json: ")}
	}
	return nil
}

// flexInt decodes a number or a numeric string (form bodies send strings).
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("%q is not an integer", s)
	}
	*f = flexInt(n)
	return nil
}

// flexBool decodes a bool or "true"/"false".
type flexBool bool

func (f *flexBool) UnmarshalJSON(b []byte) error {
	switch strings.Trim(string(b), `"`) {
	case "true", "1":
		*f = true
	case "false", "0", "", "null":
		*f = false
	default:
		return fmt.Errorf("%s is not a boolean", b)
	}
	return nil
}

func (a *API) requireAdmin(w http.ResponseWriter, p *auth.Principal) bool {
	if !p.User.Admin {
		writeError(w, http.StatusForbidden, "forbidden", "403 Forbidden - admin only")
		return false
	}
	return true
}

// record hands the audit event of a change p made to the Auditor, as written by p (its
// provenance). The change is made: it is recorded even if the client has gone, and a failure is
// logged, not returned, so that the client does not retry a change that was made.
func (a *API) record(r *http.Request, p *auth.Principal, in event.Input) {
	if a.opts.Auditor == nil {
		return
	}
	if err := a.opts.Auditor.Record(context.WithoutCancel(r.Context()), in, p.Producer(event.ViaService)); err != nil {
		a.opts.Logger.Error("self-audit event not recorded", "event_type", in.EventType, "err", err)
	}
}

// author is p, making a change through request r.
func author(r *http.Request, p *auth.Principal) adminaudit.Author {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	return adminaudit.AuthorOf(p.User, ip)
}

func (a *API) handleBad(w http.ResponseWriter, r *http.Request, err error) {
	var br *badRequest
	if errors.As(err, &br) {
		a.writeBad(w, br.code, br.msg)
		return
	}
	a.writeErr(w, r, err)
}

func (a *API) currentUser(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	writeJSON(w, http.StatusOK, a.userJSON(r, p.User, p))
}

// listUsers is GET /users (admins) with GitLab's filters and offset pagination. Every user here
// is active, none blocked or external: those filters select all or nothing. Users are few, so
// the filters run over the whole list.
func (a *API) listUsers(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	if !a.requireAdmin(w, p) {
		return
	}
	q := r.URL.Query()
	if _, _, msg := parsePage(q); msg != "" {
		a.writeBad(w, "invalid_parameter", msg)
		return
	}
	want := map[string]bool{} // boolean filters given: name → value
	for _, name := range []string{"active", "blocked", "external", "exclude_active", "exclude_external", "admins", "humans", "exclude_humans", "exclude_internal", "without_project_bots"} {
		if v := q.Get(name); v != "" {
			var b flexBool
			if err := b.UnmarshalJSON([]byte(v)); err != nil {
				a.writeBad(w, "invalid_parameter", name+" is invalid: use true or false")
				return
			}
			want[name] = bool(b)
		}
	}
	var after, before time.Time
	for name, dst := range map[string]*time.Time{"created_after": &after, "created_before": &before} {
		if v := q.Get(name); v != "" {
			t, err := event.ParseTimeParam(v)
			if err != nil {
				a.writeBad(w, "invalid_parameter", name+" is invalid: use an ISO 8601 time such as 2025-01-31T12:00:00Z (no offset: UTC) or a date such as 2025-01-31")
				return
			}
			*dst = t
		}
	}
	orderBy, sortDesc := cmp.Or(q.Get("order_by"), "id"), true
	switch q.Get("sort") {
	case "", "desc":
	case "asc":
		sortDesc = false
	default:
		a.writeBad(w, "invalid_parameter", "sort does not have a valid value")
		return
	}
	var key func(u store.User) string
	switch orderBy {
	case "id":
	case "name":
		key = func(u store.User) string { return strings.ToLower(u.Name) }
	case "username":
		key = func(u store.User) string { return strings.ToLower(u.Username) }
	case "created_at", "updated_at":
		key = func(u store.User) string { return u.CreatedAt.UTC().Format("2006-01-02T15:04:05.000000000") }
	default:
		a.writeBad(w, "invalid_parameter", "order_by does not have a valid value (id, name, username, created_at, updated_at)")
		return
	}
	users, err := a.opts.Users.UserList(r.Context())
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	username, search := q.Get("username"), strings.ToLower(q.Get("search"))
	// As in GitLab's UsersFinder, a filter given false filters nothing. Every user here is
	// active, a human or the bot of a group access token; none is blocked or external.
	isTrue := func(name string) bool { return want[name] }
	none := isTrue("blocked") || isTrue("external") || isTrue("exclude_active")
	kept := users[:0]
	for _, u := range users {
		switch {
		case none,
			username != "" && !strings.EqualFold(u.Username, username),
			search != "" && !strings.Contains(strings.ToLower(u.Name), search) &&
				!strings.Contains(strings.ToLower(u.Username), search) && !strings.Contains(strings.ToLower(u.Email), search),
			isTrue("admins") && !u.Admin,
			(isTrue("humans") || isTrue("without_project_bots")) && u.Bot,
			isTrue("exclude_humans") && !u.Bot,
			!after.IsZero() && u.CreatedAt.Before(after),
			!before.IsZero() && u.CreatedAt.After(before):
			continue
		}
		kept = append(kept, u)
	}
	slices.SortStableFunc(kept, func(x, y store.User) int {
		c := 0
		if key != nil {
			c = strings.Compare(key(x), key(y))
		}
		c = cmp.Or(c, cmp.Compare(x.ID, y.ID))
		if sortDesc {
			return -c
		}
		return c
	})
	out := make([]User, 0, len(kept))
	for _, u := range kept {
		out = append(out, a.userJSON(r, u, p))
	}
	writePage(a, w, r, out)
}

func (a *API) getUser(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeError(w, http.StatusNotFound, "not_found", "404 User Not Found")
		return
	}
	u, err := a.opts.Users.UserGet(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "404 User Not Found")
		return
	}
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a.userJSON(r, u, p))
}

var usernameRE = regexp.MustCompile(`^[A-Za-z0-9_.][A-Za-z0-9_.\-]{0,254}$`)

func (a *API) createUser(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	if !a.requireAdmin(w, p) {
		return
	}
	var in struct {
		ID       flexInt  `json:"id"`
		Username string   `json:"username"`
		Name     string   `json:"name"`
		Email    string   `json:"email"`
		Admin    flexBool `json:"admin"`
	}
	if err := decodeBody(r, &in); err != nil {
		a.handleBad(w, r, err)
		return
	}
	var missing []string
	if in.Username == "" {
		missing = append(missing, "username")
	}
	if in.Name == "" {
		missing = append(missing, "name")
	}
	if in.Email == "" {
		missing = append(missing, "email")
	}
	switch {
	case len(missing) > 0:
		a.writeBad(w, "missing_parameter", strings.Join(missing, ", ")+" is missing")
		return
	case !usernameRE.MatchString(in.Username):
		a.writeBad(w, "invalid_parameter", "username can contain only letters, digits, '_', '-' and '.'")
		return
	case !strings.Contains(in.Email, "@") || len(in.Email) > 255 || len(in.Name) > 255:
		a.writeBad(w, "invalid_parameter", "email is invalid or a field is longer than 255 characters")
		return
	case in.ID < 0:
		a.writeBad(w, "invalid_parameter", "id must be a positive integer")
		return
	case store.IsLocalID(int64(in.ID)):
		a.writeBad(w, "invalid_parameter", fmt.Sprintf("id must be GitLab's id, below %d: ids from there on are assigned here (to bots of group access tokens)", store.LocalIDBase))
		return
	}
	u, err := a.opts.Users.UserCreate(r.Context(), store.UserCreateParams{ID: int64(in.ID), Username: in.Username,
		Name: in.Name, Email: in.Email, Admin: bool(in.Admin), CreatedAt: a.opts.NowFunc().UTC()})
	if errors.Is(err, store.ErrConflict) {
		writeError(w, http.StatusConflict, "conflict", "409 Conflict: Username or id has already been taken")
		return
	}
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	a.record(r, p, adminaudit.UserCreated(author(r, p), u))
	writeJSON(w, http.StatusCreated, a.userJSON(r, u, p))
}

// Token is a personal access or impersonation token as GitLab's API shows it.
type Token struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	Revoked   bool      `json:"revoked"`
	CreatedAt time.Time `json:"created_at"`
	Scopes    []string  `json:"scopes"`
	UserID    int64     `json:"user_id"`
	Active    bool      `json:"active"`
	ExpiresAt *string   `json:"expires_at"`
	Token     string    `json:"token,omitempty"`
	// Impersonation is shown for impersonation tokens (GitLab's ImpersonationToken entity).
	Impersonation *bool `json:"impersonation,omitempty"`
}

func (a *API) tokenJSON(t store.Token) Token { return NewToken(t, a.opts.NowFunc()) }

// NewToken shows t (never its secret) as it is at now.
func NewToken(t store.Token, now time.Time) Token {
	j := Token{ID: t.ID, Name: t.Name, Revoked: t.Revoked, CreatedAt: t.CreatedAt, Scopes: t.Scopes, UserID: t.UserID}
	j.Active = !t.Revoked && (t.ExpiresAt.IsZero() || now.Before(t.ExpiresAt))
	if !t.ExpiresAt.IsZero() {
		s := t.ExpiresAt.UTC().Format("2006-01-02")
		j.ExpiresAt = &s
	}
	if t.Impersonation {
		j.Impersonation = &t.Impersonation
	}
	return j
}

// createToken is POST /users/:id/personal_access_tokens (admins, as in GitLab).
func (a *API) createToken(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	a.issueToken(w, r, p, false)
}

// createImpersonationToken is POST /users/:id/impersonation_tokens (admins): a token that acts
// as the user, marked impersonation.
func (a *API) createImpersonationToken(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	a.issueToken(w, r, p, true)
}

func (a *API) issueToken(w http.ResponseWriter, r *http.Request, p *auth.Principal, impersonation bool) {
	if !a.requireAdmin(w, p) {
		return
	}
	uid, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeError(w, http.StatusNotFound, "not_found", "404 User Not Found")
		return
	}
	var in struct {
		Name      string   `json:"name"`
		Scopes    []string `json:"scopes"`
		ExpiresAt string   `json:"expires_at"`
	}
	if err := decodeBody(r, &in); err != nil {
		a.handleBad(w, r, err)
		return
	}
	if !a.tokenParams(w, in.Name, in.Scopes) {
		return
	}
	expires, ok := a.futureDate(w, in.ExpiresAt)
	if !ok {
		return
	}
	owner, err := a.opts.Users.UserGet(r.Context(), uid)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			writeError(w, http.StatusNotFound, "not_found", "404 User Not Found")
			return
		}
		a.writeErr(w, r, err)
		return
	}
	raw, hash := auth.NewToken()
	t, err := a.opts.Users.TokenCreate(r.Context(), store.TokenCreateParams{UserID: uid, Name: in.Name, Hash: hash,
		Scopes: in.Scopes, ExpiresAt: expires, CreatedAt: a.opts.NowFunc().UTC(), Impersonation: impersonation})
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	a.record(r, p, adminaudit.TokenCreated(author(r, p), owner, t))
	j := a.tokenJSON(t)
	j.Token = raw
	writeJSON(w, http.StatusCreated, j)
}

// impersonationTokens resolves the user {id} of an impersonation-token route (admins) and
// returns the user's impersonation tokens; 404 when the user is missing.
func (a *API) impersonationTokens(w http.ResponseWriter, r *http.Request, p *auth.Principal) ([]store.Token, bool) {
	if !a.requireAdmin(w, p) {
		return nil, false
	}
	uid, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeError(w, http.StatusNotFound, "not_found", "404 User Not Found")
		return nil, false
	}
	if _, err := a.opts.Users.UserGet(r.Context(), uid); errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "404 User Not Found")
		return nil, false
	} else if err != nil {
		a.writeErr(w, r, err)
		return nil, false
	}
	toks, err := a.opts.Users.TokenList(r.Context(), uid)
	if err != nil {
		a.writeErr(w, r, err)
		return nil, false
	}
	toks = slices.DeleteFunc(toks, func(t store.Token) bool { return !t.Impersonation })
	return toks, true
}

// listImpersonationTokens is GET /users/:id/impersonation_tokens (admins), state all (the
// default), active or inactive, paginated.
func (a *API) listImpersonationTokens(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	q := r.URL.Query()
	state := cmp.Or(q.Get("state"), "all")
	switch {
	case state != "all" && state != "active" && state != "inactive":
		a.writeBad(w, "invalid_parameter", "state does not have a valid value (all, active, inactive)")
		return
	}
	toks, ok := a.impersonationTokens(w, r, p)
	if !ok {
		return
	}
	out := make([]Token, 0, len(toks))
	for _, t := range toks {
		j := a.tokenJSON(t)
		if state == "all" || (state == "active") == j.Active {
			out = append(out, j)
		}
	}
	writePage(a, w, r, out)
}

// impersonationToken finds {token_id} among the user's impersonation tokens.
func (a *API) impersonationToken(w http.ResponseWriter, r *http.Request, p *auth.Principal) (store.Token, bool) {
	toks, ok := a.impersonationTokens(w, r, p)
	if !ok {
		return store.Token{}, false
	}
	if id, err := strconv.ParseInt(r.PathValue("token_id"), 10, 64); err == nil {
		for _, t := range toks {
			if t.ID == id {
				return t, true
			}
		}
	}
	writeError(w, http.StatusNotFound, "not_found", "404 Impersonation Token Not Found")
	return store.Token{}, false
}

// getImpersonationToken is GET /users/:id/impersonation_tokens/:token_id (admins).
func (a *API) getImpersonationToken(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	if t, ok := a.impersonationToken(w, r, p); ok {
		writeJSON(w, http.StatusOK, a.tokenJSON(t))
	}
}

// revokeImpersonationToken is DELETE /users/:id/impersonation_tokens/:token_id (admins): the
// token is revoked, not deleted, as in GitLab.
func (a *API) revokeImpersonationToken(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	t, ok := a.impersonationToken(w, r, p)
	if !ok {
		return
	}
	if err := a.opts.Users.TokenRevoke(r.Context(), t.ID); err != nil {
		a.writeErr(w, r, err)
		return
	}
	a.opts.Auth.Forget()
	a.recordRevoked(r, p, t)
	w.WriteHeader(http.StatusNoContent)
}

// recordRevoked records the revocation of t by p. A token that was already revoked is not
// revoked again: nothing changed, nothing is recorded.
func (a *API) recordRevoked(r *http.Request, p *auth.Principal, t store.Token) {
	if t.Revoked {
		return
	}
	owner, err := a.opts.Users.UserGet(r.Context(), t.UserID)
	if err != nil {
		owner = store.User{ID: t.UserID}
	}
	a.record(r, p, adminaudit.TokenRevoked(author(r, p), owner, t))
}

// tokenByID finds token id among the tokens of every user (users are few), or false.
func (a *API) tokenByID(r *http.Request, id int64) (store.Token, bool, error) {
	users, err := a.opts.Users.UserList(r.Context())
	if err != nil {
		return store.Token{}, false, err
	}
	for _, u := range users {
		toks, err := a.opts.Users.TokenList(r.Context(), u.ID)
		if err != nil {
			return store.Token{}, false, err
		}
		for _, t := range toks {
			if t.ID == id {
				return t, true, nil
			}
		}
	}
	return store.Token{}, false, nil
}

// listTokens is GET /personal_access_tokens: the caller's own (admins may pass user_id).
func (a *API) listTokens(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	uid := p.User.ID
	if v := r.URL.Query().Get("user_id"); v != "" && p.User.Admin {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			a.writeBad(w, "invalid_parameter", "user_id is invalid")
			return
		}
		uid = n
	}
	toks, err := a.opts.Users.TokenList(r.Context(), uid)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	out := make([]Token, 0, len(toks))
	for _, t := range toks {
		// GitLab's finder for a user's own tokens: impersonation tokens are not theirs to see.
		if !t.Impersonation || p.User.Admin {
			out = append(out, a.tokenJSON(t))
		}
	}
	writePage(a, w, r, out)
}

// revokeToken is DELETE /personal_access_tokens/:id: admins, or the token's owner.
func (a *API) revokeToken(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	id, err := strconv.ParseInt(r.PathValue("token_id"), 10, 64)
	if err != nil {
		writeError(w, http.StatusNotFound, "not_found", "404 Not Found")
		return
	}
	var tok store.Token
	if !p.User.Admin {
		toks, err := a.opts.Users.TokenList(r.Context(), p.User.ID)
		if err != nil {
			a.writeErr(w, r, err)
			return
		}
		own := false
		for _, t := range toks {
			if t.ID == id && !t.Impersonation { // nor to revoke
				own, tok = true, t
			}
		}
		if !own {
			writeError(w, http.StatusNotFound, "not_found", "404 Not Found")
			return
		}
	} else {
		t, found, err := a.tokenByID(r, id)
		if err != nil {
			a.writeErr(w, r, err)
			return
		}
		if !found {
			writeError(w, http.StatusNotFound, "not_found", "404 Not Found")
			return
		}
		tok = t
	}
	if err := a.opts.Users.TokenRevoke(r.Context(), id); err != nil {
		a.writeErr(w, r, err)
		return
	}
	a.opts.Auth.Forget()
	if tok.NamespaceKey != 0 && !tok.Revoked { // a group access token: revoked as its group's API does
		ns, err := a.opts.Namespaces.ByKey(r.Context(), tok.NamespaceKey)
		if err == nil {
			err = a.groupTokenRevoked(r, p, ns, tok)
		}
		if err != nil {
			a.writeErr(w, r, err)
			return
		}
	} else {
		a.recordRevoked(r, p, tok)
	}
	w.WriteHeader(http.StatusNoContent)
}

// Namespace is a group or a project as GitLab's API shows it.
type Namespace struct {
	ID                int64      `json:"id"`
	Name              string     `json:"name"`
	Path              string     `json:"path"`
	FullPath          string     `json:"full_path,omitempty"`
	ParentID          *int64     `json:"parent_id,omitempty"`
	PathWithNamespace string     `json:"path_with_namespace,omitempty"`
	Namespace         *Namespace `json:"namespace,omitempty"`
	WebURL            string     `json:"web_url"`
	CreatedAt         time.Time  `json:"created_at"`
}

// NewNamespace shows ns; parent returns a namespace's parent group (false when it has none or
// it cannot be read), base is the service's external URL.
func NewNamespace(ns store.Namespace, parent func(store.Namespace) (store.Namespace, bool), base string) Namespace {
	// web_url is the UI's page of the group or project (/groups/<path>, /projects/<path>, which
	// open its audit events), not GitLab's /<path>, which the UI does not serve.
	j := Namespace{ID: ns.ID, Name: ns.Name, Path: lastSegment(ns.FullPath), WebURL: base + "/" + string(ns.Kind) + "s/" + ns.FullPath, CreatedAt: ns.CreatedAt}
	p, ok := parent(ns)
	if ns.Kind == store.KindGroup {
		j.FullPath = ns.FullPath
		if ok {
			j.ParentID = &p.ID
		}
	} else {
		j.PathWithNamespace = ns.FullPath
		if ok {
			pj := NewNamespace(p, parent, base)
			j.Namespace = &pj
		}
	}
	return j
}

func (a *API) namespaceJSON(r *http.Request, ns store.Namespace) Namespace {
	return NewNamespace(ns, func(ns store.Namespace) (store.Namespace, bool) {
		if ns.ParentKey == 0 {
			return store.Namespace{}, false
		}
		p, err := a.opts.Namespaces.ByKey(r.Context(), ns.ParentKey)
		return p, err == nil
	}, a.baseURL(r))
}

func lastSegment(p string) string { return p[strings.LastIndexByte(p, '/')+1:] }

// createNamespace is POST /groups (name, path, parent_id) and POST /projects (name, path,
// namespace_id), and optionally id so that ids match the producer's. Top-level groups: admins;
// subgroups and projects: owners of the parent group, or admins. Only admins may set id: an id
// decides which events a namespace receives, so claiming one would capture another's events.
// Without id, it gets an id assigned here (store.LocalID), usable at once, and adopts GitLab's
// id when the first event naming its path with one arrives (namespace.Resolver.Learn).
func (a *API) createNamespace(kind store.NamespaceKind) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
		var in struct {
			ID          flexInt `json:"id"`
			Name        string  `json:"name"`
			Path        string  `json:"path"`
			ParentID    flexInt `json:"parent_id"`
			NamespaceID flexInt `json:"namespace_id"`
		}
		if err := decodeBody(r, &in); err != nil {
			a.handleBad(w, r, err)
			return
		}
		if in.Path == "" {
			in.Path = in.Name
		}
		if in.Name == "" {
			in.Name = in.Path
		}
		parentID := in.ParentID
		if kind == store.KindProject {
			parentID = in.NamespaceID
		}
		switch {
		case in.Name == "":
			a.writeBad(w, "missing_parameter", "name is missing")
			return
		case event.SegmentProblem(in.Path, kind == store.KindProject) != "":
			a.writeBad(w, "invalid_parameter", "path "+event.SegmentProblem(in.Path, kind == store.KindProject)+" ("+event.PathRules+")")
			return
		case kind == store.KindProject && parentID == 0:
			a.writeBad(w, "missing_parameter", "namespace_id is missing: a project belongs to a group")
			return
		case in.ID < 0:
			a.writeBad(w, "invalid_parameter", "id must be a positive integer")
			return
		case store.IsLocalID(int64(in.ID)):
			a.writeBad(w, "invalid_parameter", fmt.Sprintf("id must be GitLab's id, below %d: ids from there on are assigned here", store.LocalIDBase))
			return
		case in.ID != 0 && !p.User.Admin:
			writeError(w, http.StatusForbidden, "forbidden", "403 Forbidden - only admins may set id")
			return
		}
		var parentKey int64
		if parentID != 0 {
			parent, level, ok := a.namespaceAccess(w, r, p, store.KindGroup, strconv.FormatInt(int64(parentID), 10))
			if !ok {
				return
			}
			if level < auth.Owner {
				writeError(w, http.StatusForbidden, "forbidden", "403 Forbidden")
				return
			}
			parentKey = parent.Key
		} else if !a.requireAdmin(w, p) {
			return
		}
		ns, err := a.opts.Namespaces.Create(r.Context(), kind, in.Name, in.Path, parentKey, int64(in.ID))
		if errors.Is(err, store.ErrConflict) {
			writeError(w, http.StatusConflict, "conflict", "409 Conflict: path or id has already been taken")
			return
		}
		if err != nil {
			a.writeErr(w, r, err)
			return
		}
		a.record(r, p, adminaudit.NamespaceCreated(author(r, p), ns))
		writeJSON(w, http.StatusCreated, a.namespaceJSON(r, ns))
	}
}

func (a *API) getNamespace(kind store.NamespaceKind) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
		ns, _, ok := a.namespaceAccess(w, r, p, kind, r.PathValue("id"))
		if !ok {
			return
		}
		writeJSON(w, http.StatusOK, a.namespaceJSON(r, ns))
	}
}

// Member is a member of a group or project as GitLab's API shows it.
type Member struct {
	ID          int64     `json:"id"`
	Username    string    `json:"username"`
	Name        string    `json:"name"`
	State       string    `json:"state"`
	AccessLevel int       `json:"access_level"`
	CreatedAt   time.Time `json:"created_at"`
	ExpiresAt   *string   `json:"expires_at"`
	WebURL      string    `json:"web_url"`
}

func (a *API) memberJSON(r *http.Request, m store.Member) (Member, error) {
	u, err := a.opts.Users.UserGet(r.Context(), m.UserID)
	if err != nil {
		return Member{}, err
	}
	return NewMember(m, u, a.baseURL(r)), nil
}

// NewMember shows membership m of user u; base is the service's external URL.
func NewMember(m store.Member, u store.User, base string) Member {
	j := Member{ID: u.ID, Username: u.Username, Name: u.Name, State: "active", AccessLevel: m.AccessLevel,
		CreatedAt: m.CreatedAt, WebURL: userWebURL(base, u.ID)}
	if !m.ExpiresAt.IsZero() {
		s := m.ExpiresAt.UTC().Format("2006-01-02")
		j.ExpiresAt = &s
	}
	return j
}

// Members: anyone with access to the group or project may list them (GitLab); owners and
// admins may change them.
func (a *API) listMembers(kind store.NamespaceKind) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
		ns, _, ok := a.namespaceAccess(w, r, p, kind, r.PathValue("id"))
		if !ok {
			return
		}
		ms, err := a.opts.Members.MemberList(r.Context(), ns.Key)
		if err != nil {
			a.writeErr(w, r, err)
			return
		}
		out := make([]Member, 0, len(ms))
		for _, m := range ms {
			j, err := a.memberJSON(r, m)
			if err != nil {
				a.writeErr(w, r, err)
				return
			}
			out = append(out, j)
		}
		writePage(a, w, r, out)
	}
}

func (a *API) getMember(kind store.NamespaceKind) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
		if ns, uid, ok := a.memberTarget(w, r, p, kind, auth.Guest); ok {
			a.writeMember(w, r, ns.Key, uid, http.StatusOK)
		}
	}
}

// memberTarget resolves the {id} and {user_id} of a member route and requires p to have at
// least minLevel there.
func (a *API) memberTarget(w http.ResponseWriter, r *http.Request, p *auth.Principal, kind store.NamespaceKind, minLevel int) (store.Namespace, int64, bool) {
	ns, ok := a.requireLevel(w, r, p, kind, minLevel)
	if !ok {
		return ns, 0, false
	}
	uid, err := strconv.ParseInt(r.PathValue("user_id"), 10, 64)
	if err != nil {
		memberNotFound(w)
		return ns, 0, false
	}
	return ns, uid, true
}

func memberNotFound(w http.ResponseWriter) {
	writeError(w, http.StatusNotFound, "not_found", "404 Member Not Found")
}

func (a *API) writeMember(w http.ResponseWriter, r *http.Request, nsKey, uid int64, status int) {
	m, err := a.opts.Members.MemberGet(r.Context(), nsKey, uid)
	if errors.Is(err, store.ErrNotFound) {
		memberNotFound(w)
		return
	}
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	j, err := a.memberJSON(r, m)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	writeJSON(w, status, j)
}

type memberInput struct {
	UserID      flexInt `json:"user_id"`
	AccessLevel flexInt `json:"access_level"`
	ExpiresAt   string  `json:"expires_at"`
}

// requireLevel resolves {id} and requires p to have at least minLevel there.
func (a *API) requireLevel(w http.ResponseWriter, r *http.Request, p *auth.Principal, kind store.NamespaceKind, minLevel int) (store.Namespace, bool) {
	ns, level, ok := a.namespaceAccess(w, r, p, kind, r.PathValue("id"))
	if !ok {
		return ns, false
	}
	if level < minLevel {
		writeError(w, http.StatusForbidden, "forbidden", "403 Forbidden")
		return ns, false
	}
	return ns, true
}

// saveMember creates (old nil) or changes (old the membership before) the membership of uid in
// ns, and records it.
func (a *API) saveMember(w http.ResponseWriter, r *http.Request, p *auth.Principal, ns store.Namespace, uid int64, in memberInput, status int, old *store.Member) {
	nsKey := ns.Key
	if !auth.ValidAccessLevel(int(in.AccessLevel)) {
		a.writeBad(w, "invalid_parameter", "access_level does not have a valid value (10, 20, 30, 40, 50)")
		return
	}
	var expires time.Time
	if in.ExpiresAt != "" {
		var err error
		if expires, err = event.ParseDateParam(in.ExpiresAt); err != nil {
			a.writeBad(w, "invalid_parameter", "expires_at must be a date such as 2030-01-31")
			return
		}
	}
	u, err := a.opts.Users.UserGet(r.Context(), uid)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "404 User Not Found")
		return
	} else if err != nil {
		a.writeErr(w, r, err)
		return
	}
	m, err := a.opts.Members.MemberUpsert(r.Context(), store.MemberUpsertParams{NamespaceKey: nsKey, UserID: uid,
		AccessLevel: int(in.AccessLevel), ExpiresAt: expires, CreatedAt: a.opts.NowFunc().UTC()})
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	a.opts.Auth.Forget()
	if old == nil {
		a.record(r, p, adminaudit.MemberCreated(author(r, p), ns, u, m))
	} else if old.AccessLevel != m.AccessLevel || !old.ExpiresAt.Equal(m.ExpiresAt) {
		a.record(r, p, adminaudit.MemberUpdated(author(r, p), ns, u, *old, m))
	}
	a.writeMember(w, r, nsKey, uid, status)
}

func (a *API) addMember(kind store.NamespaceKind) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
		ns, ok := a.requireLevel(w, r, p, kind, auth.Owner)
		if !ok {
			return
		}
		var in memberInput
		if err := decodeBody(r, &in); err != nil {
			a.handleBad(w, r, err)
			return
		}
		if in.UserID == 0 || in.AccessLevel == 0 {
			a.writeBad(w, "missing_parameter", "user_id and access_level are required")
			return
		}
		if _, err := a.opts.Members.MemberGet(r.Context(), ns.Key, int64(in.UserID)); err == nil {
			writeError(w, http.StatusConflict, "conflict", "409 Conflict: Member already exists")
			return
		}
		a.saveMember(w, r, p, ns, int64(in.UserID), in, http.StatusCreated, nil)
	}
}

func (a *API) editMember(kind store.NamespaceKind) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
		ns, uid, ok := a.memberTarget(w, r, p, kind, auth.Owner)
		if !ok {
			return
		}
		var in memberInput
		if err := decodeBody(r, &in); err != nil {
			a.handleBad(w, r, err)
			return
		}
		old, ok := a.member(w, r, ns, uid)
		if !ok {
			return
		}
		a.saveMember(w, r, p, ns, uid, in, http.StatusOK, &old)
	}
}

// member reads the membership of uid in ns, answering 404 or the error when it cannot.
func (a *API) member(w http.ResponseWriter, r *http.Request, ns store.Namespace, uid int64) (store.Member, bool) {
	m, err := a.opts.Members.MemberGet(r.Context(), ns.Key, uid)
	if errors.Is(err, store.ErrNotFound) {
		memberNotFound(w)
		return store.Member{}, false
	} else if err != nil {
		a.writeErr(w, r, err)
		return store.Member{}, false
	}
	return m, true
}

func (a *API) removeMember(kind store.NamespaceKind) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
		ns, uid, ok := a.memberTarget(w, r, p, kind, auth.Owner)
		if !ok {
			return
		}
		old, ok := a.member(w, r, ns, uid)
		if !ok {
			return
		}
		if err := a.opts.Members.MemberDelete(r.Context(), ns.Key, uid); errors.Is(err, store.ErrNotFound) {
			memberNotFound(w)
			return
		} else if err != nil {
			a.writeErr(w, r, err)
			return
		}
		a.opts.Auth.Forget()
		u, err := a.opts.Users.UserGet(r.Context(), uid)
		if err != nil {
			u = store.User{ID: uid}
		}
		a.record(r, p, adminaudit.MemberDestroyed(author(r, p), ns, u, old))
		w.WriteHeader(http.StatusNoContent)
	}
}

package rest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/auditstream/auditstream/internal/adminaudit"
	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/store"
)

// Group access tokens, GitLab's /groups/:id/access_tokens: an owner issues a token bound to one
// group. As in GitLab, each token has a bot user of its own, a member of the group with the
// token's access level, so that the token reads the API as that member and provenance names a
// user. At ingest the token is a namespace-bound producer of that group's tree alone
// (API.groupTokenMayWrite).

// GroupToken is a group access token as GitLab's API shows it.
type GroupToken struct {
	Token
	AccessLevel int `json:"access_level"`
}

// defaultGroupTokenLevel is GitLab's default access_level of a group access token: Maintainer.
const defaultGroupTokenLevel = auth.Maintainer

// rotatedLifetime is how long a rotated token lives when expires_at is not given (GitLab: a week).
const rotatedLifetime = 7 * 24 * time.Hour

func (a *API) groupTokenJSON(t store.Token) GroupToken {
	return GroupToken{Token: a.tokenJSON(t), AccessLevel: t.AccessLevel}
}

// withLevel returns t with the access level its bot has in ns now: an owner may change it
// through the members API, and GitLab shows the membership's. A token whose bot has left the
// group (revoked) keeps the level it was issued with.
func (a *API) withLevel(r *http.Request, ns store.Namespace, t store.Token) (store.Token, error) {
	m, err := a.opts.Members.MemberGet(r.Context(), ns.Key, t.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return t, nil
	}
	if err != nil {
		return t, err
	}
	t.AccessLevel = m.AccessLevel
	return t, nil
}

// groupTokenGroup resolves the group {id} of a group-access-token route: others than its
// owners and administrators get GitLab's 404 (no access) or 403 (a member below owner). A
// group access token's own bot may not manage tokens either, so that a leaked token cannot
// mint others that outlive it.
func (a *API) groupTokenGroup(w http.ResponseWriter, r *http.Request, p *auth.Principal) (store.Namespace, bool) {
	ns, ok := a.requireLevel(w, r, p, store.KindGroup, auth.Owner)
	if !ok {
		return ns, false
	}
	if p.User.Bot {
		writeError(w, http.StatusForbidden, "forbidden", "403 Forbidden - a group access token may not manage group access tokens")
		return ns, false
	}
	return ns, true
}

// groupToken resolves {token_id} among the tokens bound to ns; 404 when it is not one of them.
func (a *API) groupToken(w http.ResponseWriter, r *http.Request, ns store.Namespace) (store.Token, bool) {
	id, err := strconv.ParseInt(r.PathValue("token_id"), 10, 64)
	if err == nil {
		toks, err := a.opts.Users.TokenListByNamespace(r.Context(), ns.Key)
		if err != nil {
			a.writeErr(w, r, err)
			return store.Token{}, false
		}
		for _, t := range toks {
			if t.ID == id {
				if t, err = a.withLevel(r, ns, t); err != nil {
					a.writeErr(w, r, err)
					return store.Token{}, false
				}
				return t, true
			}
		}
	}
	writeError(w, http.StatusNotFound, "not_found", "404 Not Found")
	return store.Token{}, false
}

// listGroupTokens is GET /groups/:id/access_tokens (state: active or inactive; both by default).
func (a *API) listGroupTokens(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	ns, ok := a.groupTokenGroup(w, r, p)
	if !ok {
		return
	}
	state := r.URL.Query().Get("state")
	if state != "" && state != "active" && state != "inactive" {
		a.writeBad(w, "invalid_parameter", "state does not have a valid value (active, inactive)")
		return
	}
	toks, err := a.opts.Users.TokenListByNamespace(r.Context(), ns.Key)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	out := make([]GroupToken, 0, len(toks))
	for _, t := range toks {
		if t, err = a.withLevel(r, ns, t); err != nil {
			a.writeErr(w, r, err)
			return
		}
		j := a.groupTokenJSON(t)
		if state == "" || j.Active == (state == "active") {
			out = append(out, j)
		}
	}
	writePage(a, w, r, out)
}

func (a *API) getGroupToken(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	ns, ok := a.groupTokenGroup(w, r, p)
	if !ok {
		return
	}
	if t, ok := a.groupToken(w, r, ns); ok {
		writeJSON(w, http.StatusOK, a.groupTokenJSON(t))
	}
}

// createGroupToken is POST /groups/:id/access_tokens (name, scopes, access_level, expires_at):
// a bot user, its membership of the group, and its token bound to the group.
func (a *API) createGroupToken(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	ns, ok := a.groupTokenGroup(w, r, p)
	if !ok {
		return
	}
	var in struct {
		Name        string   `json:"name"`
		Description string   `json:"description"`
		Scopes      []string `json:"scopes"`
		AccessLevel flexInt  `json:"access_level"`
		ExpiresAt   string   `json:"expires_at"`
	}
	if err := decodeBody(r, &in); err != nil {
		a.handleBad(w, r, err)
		return
	}
	if !a.tokenParams(w, in.Name, in.Scopes) {
		return
	}
	level := int(in.AccessLevel)
	if level == 0 {
		level = defaultGroupTokenLevel
	}
	if !auth.ValidAccessLevel(level) {
		a.writeBad(w, "invalid_parameter", "access_level does not have a valid value (10, 20, 30, 40, 50)")
		return
	}
	expires, ok := a.futureDate(w, in.ExpiresAt)
	if !ok {
		return
	}
	now := a.opts.NowFunc().UTC()
	username := fmt.Sprintf("group_%d_bot_%s", ns.ID, randomHex(16))
	bot, err := a.opts.Users.UserCreate(r.Context(), store.UserCreateParams{Username: username, Name: in.Name,
		Email: username + "@noreply." + a.host(r), Bot: true, CreatedAt: now})
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	if _, err := a.opts.Members.MemberUpsert(r.Context(), store.MemberUpsertParams{NamespaceKey: ns.Key, UserID: bot.ID,
		AccessLevel: level, CreatedAt: now}); err != nil {
		a.writeErr(w, r, err) // the bot is left without membership or token: it can do nothing
		return
	}
	raw, hash := auth.NewToken()
	t, err := a.opts.Users.TokenCreate(r.Context(), store.TokenCreateParams{UserID: bot.ID, Name: in.Name, Hash: hash,
		Scopes: in.Scopes, ExpiresAt: expires, CreatedAt: now, NamespaceKey: ns.Key, AccessLevel: level})
	if err != nil {
		_ = a.opts.Members.MemberDelete(r.Context(), ns.Key, bot.ID) // best effort: a bot without a token holds no access
		a.writeErr(w, r, err)
		return
	}
	a.opts.Auth.Forget()
	a.record(r, p, adminaudit.GroupTokenCreated(author(r, p), ns, bot, t))
	j := a.groupTokenJSON(t)
	j.Token.Token = raw
	writeJSON(w, http.StatusCreated, j)
}

// rotateGroupToken is POST /groups/:id/access_tokens/:token_id/rotate (expires_at, default a
// week from now, as GitLab): a new token of the same bot, name, scopes and level (its bot's,
// now); the old one is revoked.
func (a *API) rotateGroupToken(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	ns, ok := a.groupTokenGroup(w, r, p)
	if !ok {
		return
	}
	old, ok := a.groupToken(w, r, ns)
	if !ok {
		return
	}
	var in struct {
		ExpiresAt string `json:"expires_at"`
	}
	if err := decodeBody(r, &in); err != nil {
		a.handleBad(w, r, err)
		return
	}
	expires, ok := a.futureDate(w, in.ExpiresAt)
	if !ok {
		return
	}
	now := a.opts.NowFunc().UTC()
	if expires.IsZero() {
		expires = now.Add(rotatedLifetime).Truncate(24 * time.Hour)
	}
	if !a.groupTokenJSON(old).Active {
		a.writeBad(w, "invalid_parameter", "the token is revoked or expired: create a new one")
		return
	}
	bot, err := a.opts.Users.UserGet(r.Context(), old.UserID)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	raw, hash := auth.NewToken()
	t, err := a.opts.Users.TokenCreate(r.Context(), store.TokenCreateParams{UserID: old.UserID, Name: old.Name, Hash: hash,
		Scopes: old.Scopes, ExpiresAt: expires, CreatedAt: now, NamespaceKey: ns.Key, AccessLevel: old.AccessLevel})
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	if err := a.opts.Users.TokenRevoke(r.Context(), old.ID); err != nil {
		a.writeErr(w, r, err)
		return
	}
	a.opts.Auth.Forget()
	a.record(r, p, adminaudit.GroupTokenCreated(author(r, p), ns, bot, t))
	a.record(r, p, adminaudit.GroupTokenDeleted(author(r, p), ns, bot, old))
	j := a.groupTokenJSON(t)
	j.Token.Token = raw
	writeJSON(w, http.StatusOK, j)
}

// revokeGroupToken is DELETE /groups/:id/access_tokens/:token_id: the token is revoked and its
// bot leaves the group. The bot user stays, as the author of what it wrote. Revoking a revoked
// token changes and records nothing.
func (a *API) revokeGroupToken(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	ns, ok := a.groupTokenGroup(w, r, p)
	if !ok {
		return
	}
	t, ok := a.groupToken(w, r, ns)
	if !ok {
		return
	}
	if t.Revoked {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if err := a.opts.Users.TokenRevoke(r.Context(), t.ID); err != nil {
		a.writeErr(w, r, err)
		return
	}
	if err := a.groupTokenRevoked(r, p, ns, t); err != nil {
		a.writeErr(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// groupTokenRevoked finishes revoking group access token t of ns, whichever endpoint revoked it
// in the store (this API, or DELETE /personal_access_tokens/:id): its bot leaves the group, and
// the event is GitLab's group_access_token_deleted.
func (a *API) groupTokenRevoked(r *http.Request, p *auth.Principal, ns store.Namespace, t store.Token) error {
	if err := a.opts.Members.MemberDelete(r.Context(), ns.Key, t.UserID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	a.opts.Auth.Forget()
	bot, err := a.opts.Users.UserGet(r.Context(), t.UserID)
	if err != nil {
		bot = store.User{ID: t.UserID}
	}
	a.record(r, p, adminaudit.GroupTokenDeleted(author(r, p), ns, bot, t))
	return nil
}

// tokenParams writes 400 and returns false unless a new token has a name and scopes, each one
// auditstream has.
func (a *API) tokenParams(w http.ResponseWriter, name string, scopes []string) bool {
	if name == "" || len(scopes) == 0 {
		a.writeBad(w, "missing_parameter", "name and scopes are required")
		return false
	}
	for _, s := range scopes {
		if !auth.ValidScope(s) {
			a.writeBad(w, "invalid_parameter", fmt.Sprintf("scopes: %q is not one of api, read_api, ingest", s))
			return false
		}
	}
	return true
}

// futureDate reads an optional expires_at date parameter, which must be after now; the zero
// time when it is empty.
func (a *API) futureDate(w http.ResponseWriter, v string) (time.Time, bool) {
	if v == "" {
		return time.Time{}, true
	}
	t, err := event.ParseDateParam(v)
	if err != nil {
		a.writeBad(w, "invalid_parameter", "expires_at must be a date such as 2030-01-31")
		return time.Time{}, false
	}
	if !t.After(a.opts.NowFunc()) {
		a.writeBad(w, "invalid_parameter", "expires_at must be in the future")
		return time.Time{}, false
	}
	return t, true
}

// host is the service's host name without port, for bot users' no-reply addresses (GitLab's
// <bot>@noreply.<host>).
func (a *API) host(r *http.Request) string {
	h := r.Host
	if u, err := url.Parse(a.baseURL(r)); err == nil && u.Host != "" {
		h = u.Host
	}
	if hp, _, err := net.SplitHostPort(h); err == nil {
		h = hp
	}
	return h
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails on supported platforms
	return hex.EncodeToString(b)
}

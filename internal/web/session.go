package web

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/store"
)

// Cookies. The session cookie holds a random id whose hash names a stored session; the
// session keeps the hash of the token signed in with, which every request authenticates again,
// so revoking the token or its expiry ends the session at once (within auth's cache TTL).
const (
	sessionCookie = "auditstream_session"
	signInCookie  = "auditstream_sign_in" // the sign-in form's CSRF token, before a session exists
	flashCookie   = "auditstream_flash"
	csrfField     = "csrf_token"
)

// session is a signed-in request's session.
type session struct {
	idHash    []byte
	csrf      string
	principal *auth.Principal
}

// User is the signed-in user, for templates.
func (s *session) User() store.User { return s.principal.User }

// CanWrite reports whether the token signed in with may change things (scope api).
func (s *session) CanWrite() bool { return s.principal.CanWrite() }

type sessionKey struct{}

func sessionOf(r *http.Request) *session {
	s, _ := r.Context().Value(sessionKey{}).(*session)
	return s
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func hashOf(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// csrfOf derives a session's CSRF token from its id: only the holder of the HttpOnly cookie
// can know it, and nothing more needs storing.
func csrfOf(id string) string {
	m := hmac.New(sha256.New, []byte(id))
	m.Write([]byte("auditstream web csrf v1"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func equalTokens(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func (u *UI) cookie(r *http.Request, name, value string, maxAge time.Duration, sameSite http.SameSite) *http.Cookie {
	c := &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, SameSite: sameSite, Secure: r.TLS != nil || u.opts.SecureCookies}
	switch {
	case value == "":
		c.MaxAge = -1
	case maxAge > 0:
		c.MaxAge = int(maxAge.Seconds())
	}
	return c
}

// Why a request has no session, shown on the sign-in page it is sent to.
const (
	noticeExpired = "Your session has expired. Sign in again."
	noticeRevoked = "The token you signed in with is no longer valid. Sign in again."
)

// load finds the request's session. It returns nil and why when there is none (an empty
// reason for no cookie at all), and an error when the store cannot say.
func (u *UI) load(ctx context.Context, r *http.Request) (*session, string, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil, "", nil
	}
	h := hashOf(c.Value)
	ws, err := u.opts.Sessions.WebSessionGet(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		return nil, noticeExpired, nil
	}
	if err != nil {
		return nil, "", err
	}
	if !u.now().Before(ws.ExpiresAt) {
		_ = u.opts.Sessions.WebSessionDelete(ctx, h)
		return nil, noticeExpired, nil
	}
	if len(ws.TokenHash) != sha256.Size { // not a session this code wrote
		_ = u.opts.Sessions.WebSessionDelete(ctx, h)
		return nil, noticeRevoked, nil
	}
	p, err := u.opts.Auth.AuthenticateHash(ctx, [32]byte(ws.TokenHash))
	if errors.Is(err, auth.ErrUnauthenticated) || err == nil && (p.User.ID != ws.UserID || !p.CanRead()) {
		_ = u.opts.Sessions.WebSessionDelete(ctx, h)
		return nil, noticeRevoked, nil
	}
	if err != nil {
		return nil, "", err
	}
	return &session{idHash: h, csrf: csrfOf(c.Value), principal: p}, "", nil
}

// signedIn runs h for a request with a valid session, and checks the CSRF token of every
// form. A request without a session is sent to the sign-in page and changes nothing.
func (u *UI) signedIn(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, reason, err := u.load(r.Context(), r)
		if err != nil {
			u.fail(w, r, err)
			return
		}
		if s == nil {
			if reason != "" {
				http.SetCookie(w, u.cookie(r, sessionCookie, "", 0, http.SameSiteLaxMode))
				u.setFlash(w, r, reason)
			}
			to := "/users/sign_in"
			if r.Method == http.MethodGet && r.URL.Path != "/" {
				to += "?return_to=" + url.QueryEscape(r.URL.RequestURI())
			}
			http.Redirect(w, r, to, http.StatusSeeOther)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), sessionKey{}, s))
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if !equalTokens(r.PostFormValue(csrfField), s.csrf) {
				u.errorPage(w, r, http.StatusForbidden, "This form has expired or did not come from this site, so nothing was changed. Reload the page and try again.")
				return
			}
		}
		h(w, r)
	}
}

// maxFormBytes bounds a form: the largest field is a service-account key file (16 KiB).
const maxFormBytes = 256 << 10

type signInData struct {
	ReturnTo string
	Error    string
}

func (u *UI) signInPage(w http.ResponseWriter, r *http.Request) {
	if s, _, err := u.load(r.Context(), r); err == nil && s != nil {
		http.Redirect(w, r, safeReturn(r.URL.Query().Get("return_to")), http.StatusSeeOther)
		return
	}
	u.renderSignIn(w, r, http.StatusOK, signInData{ReturnTo: safeReturn(r.URL.Query().Get("return_to"))})
}

func (u *UI) renderSignIn(w http.ResponseWriter, r *http.Request, status int, d signInData) {
	token := randomToken()
	http.SetCookie(w, u.cookie(r, signInCookie, token, time.Hour, http.SameSiteStrictMode))
	u.render(w, r, status, "sign_in", view{Title: "Sign in", CSRF: token, Alert: d.Error, Data: d})
}

// signIn checks the token and starts a session. Sign-in is CSRF-protected too (a double-submit
// token), so that no other site can sign a browser in as someone else.
func (u *UI) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	d := signInData{ReturnTo: safeReturn(r.PostFormValue("return_to"))}
	c, err := r.Cookie(signInCookie)
	if err != nil || !equalTokens(r.PostFormValue(csrfField), c.Value) {
		d.Error = "The sign-in form has expired. Try again."
		u.renderSignIn(w, r, http.StatusForbidden, d)
		return
	}
	ctx := r.Context()
	raw := strings.TrimSpace(r.PostFormValue("token"))
	p, err := u.opts.Auth.Authenticate(ctx, raw)
	switch {
	case errors.Is(err, auth.ErrUnauthenticated):
		d.Error = "Invalid token: it is unknown, expired or revoked."
	case err != nil:
		u.fail(w, r, err)
		return
	case !p.CanRead():
		d.Error = "This token may only send events (scope ingest). Sign in with a token that has the api or read_api scope."
	}
	if d.Error != "" {
		u.renderSignIn(w, r, http.StatusUnprocessableEntity, d)
		return
	}
	now := u.now()
	expires := now.Add(u.opts.SessionTTL)
	if e := p.Token.ExpiresAt; !e.IsZero() && e.Before(expires) {
		expires = e
	}
	id := randomToken()
	if err := u.opts.Sessions.WebSessionCreate(ctx, store.WebSession{IDHash: hashOf(id), UserID: p.User.ID,
		TokenHash: auth.HashToken(raw), CreatedAt: now, ExpiresAt: expires}); err != nil {
		u.fail(w, r, err)
		return
	}
	if n, err := u.opts.Sessions.WebSessionDeleteExpired(ctx, now); err != nil {
		u.opts.Logger.Warn("web: deleting expired sessions failed", "err", err)
	} else if n > 0 {
		u.opts.Logger.Debug("web: deleted expired sessions", "count", n)
	}
	http.SetCookie(w, u.cookie(r, signInCookie, "", 0, http.SameSiteStrictMode))
	http.SetCookie(w, u.cookie(r, sessionCookie, id, expires.Sub(now), http.SameSiteLaxMode))
	u.opts.Logger.Info("web: signed in", "user", p.User.Username, "token_id", p.Token.ID, "ip", clientIP(r))
	http.Redirect(w, r, d.ReturnTo, http.StatusSeeOther)
}

func (u *UI) signOut(w http.ResponseWriter, r *http.Request) {
	if err := u.opts.Sessions.WebSessionDelete(r.Context(), sessionOf(r).idHash); err != nil {
		u.fail(w, r, err)
		return
	}
	http.SetCookie(w, u.cookie(r, sessionCookie, "", 0, http.SameSiteLaxMode))
	u.redirect(w, r, "/users/sign_in", "Signed out.")
}

// safeReturn keeps a return_to that stays on this site, and sends anything else home.
func safeReturn(to string) string {
	// Browsers drop tabs and newlines from URLs ("/\t/evil.example" is "//evil.example"): any
	// control character is refused.
	if !strings.HasPrefix(to, "/") || strings.HasPrefix(to, "//") || strings.HasPrefix(to, "/\\") || strings.ContainsFunc(to, unicode.IsControl) {
		return "/"
	}
	return to
}

// Flash notices travel in a short-lived cookie from a form's redirect to the next page.
func (u *UI) setFlash(w http.ResponseWriter, r *http.Request, msg string) {
	http.SetCookie(w, u.cookie(r, flashCookie, base64.RawURLEncoding.EncodeToString([]byte(msg)), time.Minute, http.SameSiteLaxMode))
}

func (u *UI) takeFlash(w http.ResponseWriter, r *http.Request) string {
	c, err := r.Cookie(flashCookie)
	if err != nil {
		return ""
	}
	http.SetCookie(w, u.cookie(r, flashCookie, "", 0, http.SameSiteLaxMode))
	b, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil || len(b) > 500 {
		return ""
	}
	return string(b)
}

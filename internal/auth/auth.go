// Package auth authenticates personal access tokens and decides who may do what, with GitLab's
// rules: access levels on groups and projects inherited by descendants, admins above all, and
// token scopes (api, read_api, ingest) limiting what a token may do within its user's rights.
//
// Tokens are random strings with the prefix "ast-"; only their SHA-256 hash is stored. A
// successful lookup is cached for CacheTTL, so a revoked token may keep working that long.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/store"
)

// Access levels, GitLab's numbers.
const (
	NoAccess   = 0
	Guest      = 10
	Reporter   = 20
	Developer  = 30
	Maintainer = 40
	Owner      = 50
)

// ValidAccessLevel reports whether l is one of GitLab's member access levels.
func ValidAccessLevel(l int) bool {
	return l == Guest || l == Reporter || l == Developer || l == Maintainer || l == Owner
}

// Scopes.
const (
	ScopeAPI     = "api"
	ScopeReadAPI = "read_api"
	ScopeIngest  = "ingest"
)

// ValidScope reports whether s is a known scope.
func ValidScope(s string) bool { return s == ScopeAPI || s == ScopeReadAPI || s == ScopeIngest }

// TokenPrefix starts every token auditstream issues.
const TokenPrefix = "ast-"

// Errors callers branch on.
var (
	// ErrUnauthenticated means no token, or one that is unknown, expired or revoked.
	ErrUnauthenticated = errors.New("401 Unauthorized")
	// ErrUnavailable means the store could not be asked and no recent answer was cached.
	ErrUnavailable = errors.New("auth: the store is unavailable")
)

// staleIfError is how long a cached token check may be used when the store cannot be asked, so
// that a database outage does not stop producers from writing to the log.
const staleIfError = 10 * time.Minute

// Store is the part of the store auth needs.
type Store interface {
	TokenGetByHash(ctx context.Context, hash []byte) (store.Token, error)
	UserGet(ctx context.Context, id int64) (store.User, error)
	MemberListByUser(ctx context.Context, userID int64) ([]store.Member, error)
}

// Principal is an authenticated caller.
type Principal struct {
	User  store.User
	Token store.Token
}

// Producer is p as the writer of events (event.Producer): its token and the token's user,
// arriving via (event.ViaIngest, event.ViaService).
func (p *Principal) Producer(via string) event.Producer {
	return event.Producer{TokenID: p.Token.ID, UserID: p.User.ID, Username: p.User.Username,
		Impersonation: p.Token.Impersonation, Via: via}
}

// HasScope reports whether the token carries scope s.
func (p *Principal) HasScope(s string) bool { return slices.Contains(p.Token.Scopes, s) }

// CanRead reports whether the token may read (api or read_api).
func (p *Principal) CanRead() bool { return p.HasScope(ScopeAPI) || p.HasScope(ScopeReadAPI) }

// CanWrite reports whether the token may change configuration (api).
func (p *Principal) CanWrite() bool { return p.HasScope(ScopeAPI) }

// Authenticator checks tokens. Safe for concurrent use.
type Authenticator struct {
	st       Store
	nowFunc  func() time.Time
	cacheTTL time.Duration

	mu    sync.Mutex
	cache map[[32]byte]cached
}

type cached struct {
	p     Principal
	until time.Time
}

// NewAuthenticator returns an authenticator. cacheTTL 0 disables caching.
func NewAuthenticator(st Store, nowFunc func() time.Time, cacheTTL time.Duration) *Authenticator {
	if nowFunc == nil {
		nowFunc = time.Now
	}
	return &Authenticator{st: st, nowFunc: nowFunc, cacheTTL: cacheTTL, cache: map[[32]byte]cached{}}
}

// NewToken returns a new random token and its hash.
func NewToken() (token string, hash []byte) {
	var b [30]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on supported platforms
	}
	token = TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return token, HashToken(token)
}

// HashToken is how tokens are stored.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// Authenticate returns the principal of a raw token, or ErrUnauthenticated.
func (a *Authenticator) Authenticate(ctx context.Context, raw string) (*Principal, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" || len(raw) > 256 {
		return nil, ErrUnauthenticated
	}
	return a.AuthenticateHash(ctx, sha256.Sum256([]byte(raw)))
}

// AuthenticateHash is Authenticate for a token known by its hash (HashToken), as a web
// session keeps it: the same checks, so a revoked or expired token ends the session.
func (a *Authenticator) AuthenticateHash(ctx context.Context, h [32]byte) (*Principal, error) {
	now := a.nowFunc()
	c, err := a.lookup(ctx, h, now)
	if err != nil {
		return nil, err
	}
	if c.p.Token.Revoked || (!c.p.Token.ExpiresAt.IsZero() && !now.Before(c.p.Token.ExpiresAt)) {
		return nil, ErrUnauthenticated
	}
	p := c.p
	return &p, nil
}

func (a *Authenticator) lookup(ctx context.Context, h [32]byte, now time.Time) (cached, error) {
	var old cached
	var hasOld bool
	if a.cacheTTL > 0 {
		a.mu.Lock()
		old, hasOld = a.cache[h]
		a.mu.Unlock()
		if hasOld && now.Before(old.until) {
			return old, nil
		}
	}
	unavailable := func(what string, err error) (cached, error) {
		if hasOld && now.Before(old.until.Add(staleIfError)) {
			return old, nil // stale, but the store cannot say otherwise right now
		}
		return cached{}, fmt.Errorf("%w: %s: %w", ErrUnavailable, what, err)
	}
	tok, err := a.st.TokenGetByHash(ctx, h[:])
	if errors.Is(err, store.ErrNotFound) {
		return cached{}, ErrUnauthenticated
	}
	if err != nil {
		return unavailable("token lookup", err)
	}
	user, err := a.st.UserGet(ctx, tok.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return cached{}, ErrUnauthenticated
	}
	if err != nil {
		return unavailable("token user", err)
	}
	c := cached{p: Principal{User: user, Token: tok}, until: now.Add(a.cacheTTL)}
	if a.cacheTTL > 0 {
		a.mu.Lock()
		if len(a.cache) > 100_000 {
			clear(a.cache)
		}
		a.cache[h] = c
		a.mu.Unlock()
	}
	return c, nil
}

// Forget drops every cached lookup, so that a change to tokens or memberships takes effect at
// once in this process.
func (a *Authenticator) Forget() {
	a.mu.Lock()
	clear(a.cache)
	a.mu.Unlock()
}

// AccessLevel returns the user's effective access level on the namespace whose chain (the
// namespace and its ancestors, nearest first) is given: the highest of the direct memberships
// on any of them that have not expired. Admins get Owner.
func (a *Authenticator) AccessLevel(ctx context.Context, p *Principal, chain []store.Namespace) (int, error) {
	if p.User.Admin {
		return Owner, nil
	}
	members, err := a.st.MemberListByUser(ctx, p.User.ID)
	if err != nil {
		return NoAccess, fmt.Errorf("memberships: %w", err)
	}
	now := a.nowFunc()
	level := NoAccess
	for _, m := range members {
		if !MemberActive(m, now) {
			continue
		}
		for _, ns := range chain {
			if ns.Key == m.NamespaceKey && m.AccessLevel > level {
				level = m.AccessLevel
			}
		}
	}
	return level, nil
}

// EventScope is what a caller may see of a namespace's audit events.
type EventScope int

// Event scopes.
const (
	// SeeNone: the caller may not list events (not a member, or too low a role).
	SeeNone EventScope = iota
	// SeeOwn: the caller sees only events they authored (GitLab: developers and maintainers on
	// groups, developers on projects).
	SeeOwn
	// SeeAll: every event of the namespace.
	SeeAll
)

// EventScopeFor applies GitLab's rule for the audit events of a group or a project.
func EventScopeFor(kind store.NamespaceKind, level int) EventScope {
	if kind == store.KindProject {
		return ProjectEventScope(level)
	}
	return GroupEventScope(level)
}

// MemberActive reports whether a membership has not expired at now.
func MemberActive(m store.Member, now time.Time) bool {
	return m.ExpiresAt.IsZero() || now.Before(m.ExpiresAt)
}

// GroupEventScope applies GitLab's rule for group audit events: owners see all, developers and
// maintainers only their own.
func GroupEventScope(level int) EventScope {
	switch {
	case level >= Owner:
		return SeeAll
	case level >= Developer:
		return SeeOwn
	}
	return SeeNone
}

// ProjectEventScope applies GitLab's rule for project audit events: maintainers and above see
// all, developers only their own.
func ProjectEventScope(level int) EventScope {
	switch {
	case level >= Maintainer:
		return SeeAll
	case level >= Developer:
		return SeeOwn
	}
	return SeeNone
}

package auth_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/namespace"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/store/sqlite"
)

var t0 = time.Date(2025, 10, 14, 18, 0, 0, 0, time.UTC)

// fakeClock is a settable clock for NowFunc.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	ctx   context.Context
	st    *sqlite.Store
	clock *fakeClock
}

// setup marks the test parallel and returns a fresh migrated store and a clock at t0.
func setup(t *testing.T) *fixture {
	t.Helper()
	t.Parallel()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	require.NoError(t, st.Migrate(t.Context()))
	return &fixture{ctx: t.Context(), st: st, clock: &fakeClock{now: t0}}
}

func (f *fixture) authenticator(ttl time.Duration) *auth.Authenticator {
	return auth.NewAuthenticator(f.st, f.clock.Now, ttl)
}

func (f *fixture) user(t *testing.T, username string, admin bool) store.User {
	t.Helper()
	u, err := f.st.UserCreate(f.ctx, store.UserCreateParams{Username: username, Name: username, Email: username + "@example.com", Admin: admin, CreatedAt: t0})
	require.NoError(t, err)
	return u
}

// token stores a token for u and returns its raw value and record.
func (f *fixture) token(t *testing.T, u store.User, expires time.Time, scopes ...string) (string, store.Token) {
	t.Helper()
	raw, hash := auth.NewToken()
	tok, err := f.st.TokenCreate(f.ctx, store.TokenCreateParams{UserID: u.ID, Name: "t", Hash: hash, Scopes: scopes, ExpiresAt: expires, CreatedAt: t0})
	require.NoError(t, err)
	return raw, tok
}

var tokenRE = regexp.MustCompile(`^ast-[A-Za-z0-9_-]{40}$`)

func TestNewToken(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 200 {
		tok, hash := auth.NewToken()
		require.Regexp(t, tokenRE, tok)
		require.True(t, strings.HasPrefix(tok, auth.TokenPrefix))
		require.False(t, seen[tok], "tokens must not repeat")
		seen[tok] = true

		sum := sha256.Sum256([]byte(tok))
		require.Equal(t, sum[:], hash, "the hash is the SHA-256 of the token")
		require.Equal(t, hash, auth.HashToken(tok), "HashToken is how NewToken hashes")
		require.Equal(t, auth.HashToken(tok), auth.HashToken(tok), "stable")
	}
	require.NotEqual(t, auth.HashToken("ast-a"), auth.HashToken("ast-b"))
}

func TestAuthenticate(t *testing.T) {
	f := setup(t)
	a := f.authenticator(0)
	alice := f.user(t, "alice", false)

	valid, validTok := f.token(t, alice, time.Time{}, auth.ScopeAPI, auth.ScopeIngest)
	future, _ := f.token(t, alice, t0.Add(time.Hour), auth.ScopeReadAPI)
	expired, _ := f.token(t, alice, t0.Add(-time.Second), auth.ScopeAPI)
	expiringNow, _ := f.token(t, alice, t0, auth.ScopeAPI)
	revoked, revokedTok := f.token(t, alice, time.Time{}, auth.ScopeAPI)
	require.NoError(t, f.st.TokenRevoke(f.ctx, revokedTok.ID))
	// A stored token longer than any we issue is refused before the lookup.
	long := auth.TokenPrefix + strings.Repeat("x", 300)
	_, err := f.st.TokenCreate(f.ctx, store.TokenCreateParams{UserID: alice.ID, Name: "long", Hash: auth.HashToken(long), Scopes: []string{auth.ScopeAPI}})
	require.NoError(t, err)
	unknown, _ := auth.NewToken()

	for _, tc := range []struct {
		name, raw string
	}{
		{"unknown", unknown},
		{"empty", ""},
		{"blank", "   \t"},
		{"too long", long},
		{"revoked", revoked},
		{"expired", expired},
		{"expires this instant", expiringNow},
		{"hash instead of token", string(auth.HashToken(valid))},
		{"prefix of a valid token", valid[:len(valid)-1]},
	} {
		p, err := a.Authenticate(f.ctx, tc.raw)
		require.ErrorIs(t, err, auth.ErrUnauthenticated, tc.name)
		require.Nil(t, p, tc.name)
	}

	for _, raw := range []string{valid, " " + valid + "\n"} {
		p, err := a.Authenticate(f.ctx, raw)
		require.NoError(t, err)
		require.Equal(t, alice, p.User)
		require.Equal(t, validTok.ID, p.Token.ID)
		require.Equal(t, []string{auth.ScopeAPI, auth.ScopeIngest}, p.Token.Scopes)
		require.True(t, p.HasScope(auth.ScopeIngest))
		require.True(t, p.CanRead())
		require.True(t, p.CanWrite())
	}

	p, err := a.Authenticate(f.ctx, future)
	require.NoError(t, err, "a token that expires later works now")
	require.Equal(t, []string{auth.ScopeReadAPI}, p.Token.Scopes)
	f.clock.Advance(time.Hour)
	_, err = a.Authenticate(f.ctx, future)
	require.ErrorIs(t, err, auth.ErrUnauthenticated, "and not once it has expired")
}

func TestAuthenticateStoreFailureIsNotUnauthenticated(t *testing.T) {
	f := setup(t)
	a := f.authenticator(0)
	raw, _ := f.token(t, f.user(t, "alice", false), time.Time{}, auth.ScopeAPI)
	require.NoError(t, f.st.Close())

	_, err := a.Authenticate(f.ctx, raw)
	require.Error(t, err)
	require.NotErrorIs(t, err, auth.ErrUnauthenticated, "a database outage must not look like a bad token")
}

func TestPrincipalScopes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		scopes          []string
		canRead, canWrt bool
	}{
		{[]string{auth.ScopeAPI}, true, true},
		{[]string{auth.ScopeReadAPI}, true, false},
		{[]string{auth.ScopeIngest}, false, false},
		{[]string{auth.ScopeIngest, auth.ScopeReadAPI}, true, false},
		{nil, false, false},
	} {
		p := &auth.Principal{Token: store.Token{Scopes: tc.scopes}}
		require.Equal(t, tc.canRead, p.CanRead(), "%v", tc.scopes)
		require.Equal(t, tc.canWrt, p.CanWrite(), "%v", tc.scopes)
	}
	for _, s := range []string{auth.ScopeAPI, auth.ScopeReadAPI, auth.ScopeIngest} {
		require.True(t, auth.ValidScope(s), s)
	}
	for _, s := range []string{"", "API", "write_api", "sudo"} {
		require.False(t, auth.ValidScope(s), s)
	}
}

func TestAuthenticateCache(t *testing.T) {
	t.Parallel()
	const ttl = 5 * time.Second

	t.Run("revoked token works until the TTL passes", func(t *testing.T) {
		f := setup(t)
		a := f.authenticator(ttl)
		raw, tok := f.token(t, f.user(t, "alice", false), time.Time{}, auth.ScopeAPI)
		_, err := a.Authenticate(f.ctx, raw)
		require.NoError(t, err)

		require.NoError(t, f.st.TokenRevoke(f.ctx, tok.ID))
		_, err = a.Authenticate(f.ctx, raw)
		require.NoError(t, err, "cached")
		f.clock.Advance(ttl - time.Millisecond)
		_, err = a.Authenticate(f.ctx, raw)
		require.NoError(t, err, "still cached just before the TTL")
		f.clock.Advance(time.Millisecond)
		_, err = a.Authenticate(f.ctx, raw)
		require.ErrorIs(t, err, auth.ErrUnauthenticated, "looked up again once the TTL passed")
	})

	t.Run("Forget makes a revocation take effect at once", func(t *testing.T) {
		f := setup(t)
		a := f.authenticator(ttl)
		raw, tok := f.token(t, f.user(t, "alice", false), time.Time{}, auth.ScopeAPI)
		_, err := a.Authenticate(f.ctx, raw)
		require.NoError(t, err)

		require.NoError(t, f.st.TokenRevoke(f.ctx, tok.ID))
		a.Forget()
		_, err = a.Authenticate(f.ctx, raw)
		require.ErrorIs(t, err, auth.ErrUnauthenticated)
	})

	t.Run("no cache with TTL 0", func(t *testing.T) {
		f := setup(t)
		a := f.authenticator(0)
		raw, tok := f.token(t, f.user(t, "alice", false), time.Time{}, auth.ScopeAPI)
		_, err := a.Authenticate(f.ctx, raw)
		require.NoError(t, err)
		require.NoError(t, f.st.TokenRevoke(f.ctx, tok.ID))
		_, err = a.Authenticate(f.ctx, raw)
		require.ErrorIs(t, err, auth.ErrUnauthenticated)
	})

	t.Run("a cached token stops working when it expires", func(t *testing.T) {
		f := setup(t)
		a := f.authenticator(ttl)
		raw, _ := f.token(t, f.user(t, "alice", false), t0.Add(2*time.Second), auth.ScopeAPI)
		_, err := a.Authenticate(f.ctx, raw)
		require.NoError(t, err)
		f.clock.Advance(2 * time.Second)
		_, err = a.Authenticate(f.ctx, raw)
		require.ErrorIs(t, err, auth.ErrUnauthenticated, "expiry is checked on every request, cached or not")
	})

	t.Run("unknown tokens are not cached", func(t *testing.T) {
		f := setup(t)
		a := f.authenticator(ttl)
		alice := f.user(t, "alice", false)
		raw, hash := auth.NewToken()
		_, err := a.Authenticate(f.ctx, raw)
		require.ErrorIs(t, err, auth.ErrUnauthenticated)
		_, err = f.st.TokenCreate(f.ctx, store.TokenCreateParams{UserID: alice.ID, Name: "new", Hash: hash, Scopes: []string{auth.ScopeAPI}})
		require.NoError(t, err)
		_, err = a.Authenticate(f.ctx, raw)
		require.NoError(t, err, "a token created after a failed attempt works at once")
	})
}

// hierarchy is acme (group) > acme/platform (group) > acme/platform/api (project), and a
// sibling project acme/web.
type hierarchy struct {
	top, sub, project, sibling store.Namespace
	chain                      map[string][]store.Namespace // by full path
}

func (f *fixture) hierarchy(t *testing.T) hierarchy {
	t.Helper()
	r := namespace.NewResolver(f.st, f.clock.Now)
	var h hierarchy
	var err error
	h.project, err = r.Learn(f.ctx, store.KindProject, "acme/platform/api", 100)
	require.NoError(t, err)
	h.sibling, err = r.Learn(f.ctx, store.KindProject, "acme/web", 101)
	require.NoError(t, err)
	h.top, err = r.Find(f.ctx, store.KindGroup, "acme")
	require.NoError(t, err)
	h.sub, err = r.Find(f.ctx, store.KindGroup, "acme/platform")
	require.NoError(t, err)
	h.chain = map[string][]store.Namespace{}
	for _, ns := range []store.Namespace{h.top, h.sub, h.project, h.sibling} {
		c, err := r.Chain(f.ctx, ns)
		require.NoError(t, err)
		h.chain[ns.FullPath] = c
	}
	return h
}

func (f *fixture) member(t *testing.T, ns store.Namespace, u store.User, level int, expires time.Time) {
	t.Helper()
	_, err := f.st.MemberUpsert(f.ctx, store.MemberUpsertParams{NamespaceKey: ns.Key, UserID: u.ID, AccessLevel: level, ExpiresAt: expires, CreatedAt: t0})
	require.NoError(t, err)
}

func TestAccessLevel(t *testing.T) {
	f := setup(t)
	a := f.authenticator(0)
	h := f.hierarchy(t)

	admin := f.user(t, "root", true)
	inherits := f.user(t, "inherits", false)
	f.member(t, h.top, inherits, auth.Developer, time.Time{})
	several := f.user(t, "several", false)
	f.member(t, h.top, several, auth.Reporter, time.Time{})
	f.member(t, h.sub, several, auth.Maintainer, time.Time{})
	f.member(t, h.project, several, auth.Developer, time.Time{})
	projectOnly := f.user(t, "project-only", false)
	f.member(t, h.project, projectOnly, auth.Owner, time.Time{})
	expired := f.user(t, "expired", false)
	f.member(t, h.top, expired, auth.Owner, t0)                       // expired this instant
	f.member(t, h.sub, expired, auth.Guest, t0.Add(-time.Hour))       // expired earlier
	f.member(t, h.project, expired, auth.Reporter, t0.Add(time.Hour)) // still valid
	nobody := f.user(t, "nobody", false)

	for _, tc := range []struct {
		user store.User
		path string
		want int
	}{
		{admin, "acme", auth.Owner},
		{admin, "acme/platform/api", auth.Owner},
		{inherits, "acme", auth.Developer},
		{inherits, "acme/platform", auth.Developer},
		{inherits, "acme/platform/api", auth.Developer},
		{inherits, "acme/web", auth.Developer},
		{several, "acme", auth.Reporter},
		{several, "acme/platform", auth.Maintainer},
		{several, "acme/platform/api", auth.Maintainer},
		{several, "acme/web", auth.Reporter},
		{projectOnly, "acme/platform/api", auth.Owner},
		{projectOnly, "acme/platform", auth.NoAccess}, // a membership does not flow upwards
		{projectOnly, "acme/web", auth.NoAccess},      // nor sideways
		{expired, "acme", auth.NoAccess},
		{expired, "acme/platform", auth.NoAccess},
		{expired, "acme/platform/api", auth.Reporter},
		{nobody, "acme", auth.NoAccess},
		{nobody, "acme/platform/api", auth.NoAccess},
	} {
		got, err := a.AccessLevel(f.ctx, &auth.Principal{User: tc.user}, h.chain[tc.path])
		require.NoError(t, err)
		require.Equal(t, tc.want, got, "%s on %s", tc.user.Username, tc.path)
	}

	// A membership that expires later stops counting then.
	f.clock.Advance(time.Hour)
	got, err := a.AccessLevel(f.ctx, &auth.Principal{User: expired}, h.chain["acme/platform/api"])
	require.NoError(t, err)
	require.Equal(t, auth.NoAccess, got)
}

func TestEventScope(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		level          int
		group, project auth.EventScope
	}{
		{auth.NoAccess, auth.SeeNone, auth.SeeNone},
		{auth.Guest, auth.SeeNone, auth.SeeNone},
		{auth.Reporter, auth.SeeNone, auth.SeeNone},
		{auth.Developer, auth.SeeOwn, auth.SeeOwn},
		{auth.Maintainer, auth.SeeOwn, auth.SeeAll},
		{auth.Owner, auth.SeeAll, auth.SeeAll},
	} {
		require.Equal(t, tc.group, auth.GroupEventScope(tc.level), "group, level %d", tc.level)
		require.Equal(t, tc.project, auth.ProjectEventScope(tc.level), "project, level %d", tc.level)
	}
}

func TestValidAccessLevel(t *testing.T) {
	t.Parallel()
	for _, l := range []int{auth.Guest, auth.Reporter, auth.Developer, auth.Maintainer, auth.Owner} {
		require.True(t, auth.ValidAccessLevel(l), l)
	}
	for _, l := range []int{auth.NoAccess, 5, 15, 60, -10} {
		require.False(t, auth.ValidAccessLevel(l), l)
	}
}

// flakyStore is the real store with a switch that makes token lookups fail, like a database
// outage.
type flakyStore struct {
	*sqlite.Store
	mu   sync.Mutex
	down bool
}

func (s *flakyStore) setDown(down bool) { s.mu.Lock(); s.down = down; s.mu.Unlock() }

func (s *flakyStore) TokenGetByHash(ctx context.Context, hash []byte) (store.Token, error) {
	s.mu.Lock()
	down := s.down
	s.mu.Unlock()
	if down {
		return store.Token{}, errors.New("connection refused")
	}
	return s.Store.TokenGetByHash(ctx, hash)
}

// During a store outage a recently checked token keeps working for a bounded time (producers
// keep writing to the log); after that, or for a token never checked, the answer is
// ErrUnavailable (503), never "unauthenticated".
func TestAuthenticateDuringStoreOutage(t *testing.T) {
	f := setup(t)
	st := &flakyStore{Store: f.st}
	a := auth.NewAuthenticator(st, f.clock.Now, 5*time.Second)
	u := f.user(t, "producer", false)
	known, _ := f.token(t, u, time.Time{}, auth.ScopeIngest)
	never, _ := f.token(t, u, time.Time{}, auth.ScopeIngest)
	_, err := a.Authenticate(f.ctx, known)
	require.NoError(t, err)

	st.setDown(true)
	f.clock.Advance(6 * time.Second) // past the TTL: normally a fresh lookup
	p, err := a.Authenticate(f.ctx, known)
	require.NoError(t, err, "a recent answer is used while the store is down")
	require.Equal(t, u.ID, p.User.ID)
	_, err = a.Authenticate(f.ctx, never)
	require.ErrorIs(t, err, auth.ErrUnavailable)
	require.NotErrorIs(t, err, auth.ErrUnauthenticated)

	f.clock.Advance(15 * time.Minute) // past the stale-if-error bound
	_, err = a.Authenticate(f.ctx, known)
	require.ErrorIs(t, err, auth.ErrUnavailable)

	st.setDown(false)
	_, err = a.Authenticate(f.ctx, known)
	require.NoError(t, err)
}

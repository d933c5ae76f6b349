package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/store"
)

// webSessionUsers creates two users to hang web sessions on and returns their ids.
func webSessionUsers(t *testing.T, ctx context.Context, st store.Store) (u1, u2 int64) {
	t.Helper()
	a, err := st.UserCreate(ctx, store.UserCreateParams{Username: "u1", CreatedAt: base})
	require.NoError(t, err)
	b, err := st.UserCreate(ctx, store.UserCreateParams{Username: "u2", CreatedAt: base})
	require.NoError(t, err)
	return a.ID, b.ID
}

// webSession returns a session of user with the id hash of id, signed in with the token
// "token-"+id, created at base and expiring at expires.
func webSession(id string, user int64, expires time.Time) store.WebSession {
	return store.WebSession{IDHash: hash(id), UserID: user, TokenHash: hash("token-" + id), CreatedAt: base, ExpiresAt: expires}
}

// createWebSessions creates the sessions given, in order.
func createWebSessions(t *testing.T, ctx context.Context, st store.Store, sessions ...store.WebSession) {
	t.Helper()
	for _, ws := range sessions {
		require.NoError(t, st.WebSessionCreate(ctx, ws))
	}
}

// requireWebSession asserts that the session with the id hash of want is stored as want.
func requireWebSession(t *testing.T, ctx context.Context, st store.Store, want store.WebSession) {
	t.Helper()
	got, err := st.WebSessionGet(ctx, want.IDHash)
	require.NoError(t, err)
	require.Equal(t, want, got)
}

// requireNoWebSession asserts that no session has the id hash idHash.
func requireNoWebSession(t *testing.T, ctx context.Context, st store.Store, idHash []byte) {
	t.Helper()
	_, err := st.WebSessionGet(ctx, idHash)
	require.ErrorIs(t, err, store.ErrNotFound)
}

func (s *suite) testWebSessionRoundTrip(t *testing.T) {
	ctx, st := s.setup(t)
	u1, _ := webSessionUsers(t, ctx, st)

	zone := time.FixedZone("CEST", 2*3600)
	created := time.Date(2024, 3, 1, 14, 30, 15, 123456789, zone)
	expires := created.Add(12*time.Hour + 999*time.Microsecond)
	in := store.WebSession{IDHash: hash("session"), UserID: u1, TokenHash: hash("token"), CreatedAt: created, ExpiresAt: expires}
	require.NoError(t, st.WebSessionCreate(ctx, in))

	got, err := st.WebSessionGet(ctx, hash("session"))
	require.NoError(t, err)
	want := store.WebSession{
		IDHash: hash("session"), UserID: u1, TokenHash: hash("token"),
		CreatedAt: time.Date(2024, 3, 1, 12, 30, 15, 123000000, time.UTC),
		ExpiresAt: time.Date(2024, 3, 2, 0, 30, 15, 124000000, time.UTC),
	}
	require.Equal(t, want, got, "times come back in UTC, truncated to milliseconds")
	require.Equal(t, time.UTC, got.CreatedAt.Location())
	require.Equal(t, time.UTC, got.ExpiresAt.Location())
	require.Equal(t, ms(created), got.CreatedAt)
	require.Equal(t, ms(expires), got.ExpiresAt)

	// An expired session is still returned: expiry is the caller's to check.
	old := webSession("old", u1, base.Add(-time.Hour))
	createWebSessions(t, ctx, st, old)
	requireWebSession(t, ctx, st, old)

	// Several sessions may share a user and a token.
	again := webSession("again", u1, base.Add(time.Hour))
	again.TokenHash = hash("token")
	createWebSessions(t, ctx, st, again)
	requireWebSession(t, ctx, st, again)
	requireWebSession(t, ctx, st, want)

	// A zero CreatedAt means now.
	before := time.Now().Truncate(time.Millisecond)
	require.NoError(t, st.WebSessionCreate(ctx, store.WebSession{IDHash: hash("now"), UserID: u1, TokenHash: hash("token"), ExpiresAt: base}))
	after := time.Now()
	got, err = st.WebSessionGet(ctx, hash("now"))
	require.NoError(t, err)
	require.Equal(t, time.UTC, got.CreatedAt.Location())
	require.False(t, got.CreatedAt.Before(before), "%v before %v", got.CreatedAt, before)
	require.False(t, got.CreatedAt.After(after), "%v after %v", got.CreatedAt, after)
}

func (s *suite) testWebSessionConflict(t *testing.T) {
	ctx, st := s.setup(t)
	u1, u2 := webSessionUsers(t, ctx, st)

	first := webSession("s", u1, base.Add(time.Hour))
	createWebSessions(t, ctx, st, first)

	dup := webSession("s", u2, base.Add(2*time.Hour))
	dup.TokenHash = hash("other token")
	err := st.WebSessionCreate(ctx, dup)
	require.ErrorIs(t, err, store.ErrConflict, "id hash taken")
	require.NotErrorIs(t, err, store.ErrVersionConflict)
	requireWebSession(t, ctx, st, first)

	err = st.WebSessionCreate(ctx, webSession("orphan", u2+100, base.Add(time.Hour)))
	require.ErrorIs(t, err, store.ErrNotFound, "user missing")
	requireNoWebSession(t, ctx, st, hash("orphan"))
}

func (s *suite) testWebSessionNotFound(t *testing.T) {
	ctx, st := s.setup(t)
	u1, _ := webSessionUsers(t, ctx, st)

	requireNoWebSession(t, ctx, st, hash("missing"))
	requireNoWebSession(t, ctx, st, nil)
	requireNoWebSession(t, ctx, st, []byte{})

	createWebSessions(t, ctx, st, webSession("s", u1, base.Add(time.Hour)))
	requireNoWebSession(t, ctx, st, hash("missing"))
	requireNoWebSession(t, ctx, st, hash("s")[:16])  // a prefix of a stored hash
	requireNoWebSession(t, ctx, st, hash("token-s")) // the token hash is not a session id hash
}

func (s *suite) testWebSessionDelete(t *testing.T) {
	ctx, st := s.setup(t)
	u1, u2 := webSessionUsers(t, ctx, st)

	a := webSession("a", u1, base.Add(time.Hour))
	b := webSession("b", u1, base.Add(time.Hour))
	c := webSession("c", u2, base.Add(time.Hour))
	createWebSessions(t, ctx, st, a, b, c)

	require.NoError(t, st.WebSessionDelete(ctx, a.IDHash))
	requireNoWebSession(t, ctx, st, a.IDHash)
	requireWebSession(t, ctx, st, b)
	requireWebSession(t, ctx, st, c)

	require.NoError(t, st.WebSessionDelete(ctx, a.IDHash), "deleting a deleted session is not an error")
	require.NoError(t, st.WebSessionDelete(ctx, hash("missing")), "deleting a missing session is not an error")
	require.NoError(t, st.WebSessionDelete(ctx, nil))
	requireWebSession(t, ctx, st, b)
	requireWebSession(t, ctx, st, c)

	// The id hash is free again.
	a2 := webSession("a", u2, base.Add(2*time.Hour))
	createWebSessions(t, ctx, st, a2)
	requireWebSession(t, ctx, st, a2)
}

func (s *suite) testWebSessionDeleteExpired(t *testing.T) {
	ctx, st := s.setup(t)
	u1, u2 := webSessionUsers(t, ctx, st)

	n, err := st.WebSessionDeleteExpired(ctx, base)
	require.NoError(t, err)
	require.Zero(t, n, "nothing to delete")

	now := base.Add(time.Hour)
	long := webSession("long-gone", u1, base.Add(-24*time.Hour))
	justGone := webSession("just-gone", u2, now.Add(-time.Millisecond))
	atNow := webSession("at-now", u1, now)
	subMS := webSession("sub-ms", u2, now.Add(999*time.Microsecond)) // stored as now
	next := webSession("next", u1, now.Add(time.Millisecond))
	later := webSession("later", u2, now.Add(24*time.Hour))
	createWebSessions(t, ctx, st, long, justGone, atNow, subMS, next, later)

	n, err = st.WebSessionDeleteExpired(ctx, now.In(time.FixedZone("X", -5*3600)))
	require.NoError(t, err)
	require.EqualValues(t, 4, n, "sessions expiring at or before now are deleted")
	for _, ws := range []store.WebSession{long, justGone, atNow, subMS} {
		requireNoWebSession(t, ctx, st, ws.IDHash)
	}
	for _, ws := range []store.WebSession{next, later} {
		requireWebSession(t, ctx, st, ws)
	}

	n, err = st.WebSessionDeleteExpired(ctx, now)
	require.NoError(t, err)
	require.Zero(t, n, "deleting again deletes nothing")

	// now with a sub-millisecond part: a session expiring in its millisecond is not after it.
	n, err = st.WebSessionDeleteExpired(ctx, now.Add(time.Millisecond+500*time.Microsecond))
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	requireNoWebSession(t, ctx, st, next.IDHash)
	requireWebSession(t, ctx, st, later)

	n, err = st.WebSessionDeleteExpired(ctx, later.ExpiresAt)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	requireNoWebSession(t, ctx, st, later.IDHash)
}

// WebSessionUserCascade tests on a driver that deleting a user deletes the user's web sessions
// and no others. st is a migrated store on a fresh, empty database; deleteUser deletes the user
// with that id with the driver's own SQL (the store has no method for it).
func WebSessionUserCascade(t *testing.T, st store.Store, deleteUser func(id int64)) {
	ctx := t.Context()
	u1, u2 := webSessionUsers(t, ctx, st)
	a := webSession("a", u1, base.Add(time.Hour))
	b := webSession("b", u1, base.Add(-time.Hour))
	c := webSession("c", u2, base.Add(time.Hour))
	createWebSessions(t, ctx, st, a, b, c)

	deleteUser(u1)
	_, err := st.UserGet(ctx, u1)
	require.ErrorIs(t, err, store.ErrNotFound, "the user is deleted")
	requireNoWebSession(t, ctx, st, a.IDHash)
	requireNoWebSession(t, ctx, st, b.IDHash)
	requireWebSession(t, ctx, st, c)

	n, err := st.WebSessionDeleteExpired(ctx, base.Add(2*time.Hour))
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "only the other user's session was left")
	require.ErrorIs(t, st.WebSessionCreate(ctx, webSession("d", u1, base.Add(time.Hour))), store.ErrNotFound,
		"no session for the deleted user")
}

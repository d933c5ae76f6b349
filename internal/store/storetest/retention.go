package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/store"
)

// testRetention: a group's own retention is set, replaced, listed and removed; a namespace
// that does not exist is ErrNotFound; deleting the group removes its setting.
func (s *suite) testRetention(t *testing.T) {
	ctx, st := s.setup(t)
	ns := namespaceTree(t, ctx, st, "acme", "other")
	acme, other := ns["acme"], ns["other"]

	got, err := st.RetentionGet(ctx, acme.Key)
	require.NoError(t, err)
	require.Zero(t, got, "no setting of its own")
	all, err := st.RetentionList(ctx)
	require.NoError(t, err)
	require.Empty(t, all)

	require.NoError(t, st.RetentionSet(ctx, acme.Key, 30*24*time.Hour))
	require.NoError(t, st.RetentionSet(ctx, other.Key, 400*24*time.Hour))
	require.NoError(t, st.RetentionSet(ctx, acme.Key, 90*24*time.Hour), "a second set replaces the first")
	got, err = st.RetentionGet(ctx, acme.Key)
	require.NoError(t, err)
	require.Equal(t, 90*24*time.Hour, got)
	all, err = st.RetentionList(ctx)
	require.NoError(t, err)
	require.Equal(t, map[int64]time.Duration{acme.Key: 90 * 24 * time.Hour, other.Key: 400 * 24 * time.Hour}, all)

	require.NoError(t, st.RetentionSet(ctx, acme.Key, 0), "0 removes the setting")
	require.NoError(t, st.RetentionSet(ctx, acme.Key, 0), "removing twice is no error")
	got, err = st.RetentionGet(ctx, acme.Key)
	require.NoError(t, err)
	require.Zero(t, got)
	all, err = st.RetentionList(ctx)
	require.NoError(t, err)
	require.Equal(t, map[int64]time.Duration{other.Key: 400 * 24 * time.Hour}, all)

	require.ErrorIs(t, st.RetentionSet(ctx, 1<<40, time.Hour), store.ErrNotFound)
	require.Error(t, st.RetentionSet(ctx, acme.Key, -time.Hour))
}

// testEventAgeList: events older than Before come oldest first, in keyset pages, with the
// top-level group their entity is in now (also for events that carry a namespace's local
// id); instance and user events, and entities that are not known namespaces, have TopKey 0.
// EventDeleteMany deletes exactly the ids it is given.
func (s *suite) testEventAgeList(t *testing.T) {
	ctx, st := s.setup(t)
	ns := namespaceTree(t, ctx, st, "acme", "acme/sub", "project:acme/sub/app", "other")
	acme, sub, app, other := ns["acme"], ns["acme/sub"], ns["acme/sub/app"], ns["other"]
	local, err := st.NamespaceCreate(ctx, store.NamespaceCreateParams{Kind: store.KindProject, LocalID: true,
		Name: "L", FullPath: "other/local", ParentKey: other.Key, CreatedAt: base})
	require.NoError(t, err)
	require.True(t, store.IsLocalID(local.ID))

	at := func(h int) time.Time { return base.Add(time.Duration(h) * time.Hour) }
	events := []store.EventRecord{
		event(1, at(5), "user_created", "User", 7, 1),
		event(2, at(1), "group_created", "Group", acme.ID, 1),
		event(3, at(2), "group_created", "Group", sub.ID, 1),
		event(4, at(2), "project_created", "Project", app.ID, 1),
		event(5, at(3), "group_created", "Group", other.ID, 1),
		event(6, at(3), "project_created", "Project", local.ID, 1),
		event(7, at(4), "project_created", "Project", 999_999, 1), // not a known namespace
		event(8, at(4), "instance_event", "Gitlab::Audit::InstanceScope", 1, 1),
		event(9, at(10), "group_created", "Group", acme.ID, 1), // after Before
	}
	require.NoError(t, st.EventInsertMany(ctx, events))

	want := []store.EventAge{
		{ID: 2, CreatedAt: at(1), TopKey: acme.Key},
		{ID: 3, CreatedAt: at(2), TopKey: acme.Key},
		{ID: 4, CreatedAt: at(2), TopKey: acme.Key},
		{ID: 5, CreatedAt: at(3), TopKey: other.Key},
		{ID: 6, CreatedAt: at(3), TopKey: other.Key},
		{ID: 7, CreatedAt: at(4), TopKey: 0},
		{ID: 8, CreatedAt: at(4), TopKey: 0},
		{ID: 1, CreatedAt: at(5), TopKey: 0},
	}
	all, err := st.EventAgeList(ctx, store.EventAgeListParams{Before: at(6), Limit: 100})
	require.NoError(t, err)
	require.Equal(t, want, all)

	var paged []store.EventAge
	p := store.EventAgeListParams{Before: at(6), Limit: 3}
	for {
		page, err := st.EventAgeList(ctx, p)
		require.NoError(t, err)
		paged = append(paged, page...)
		if len(page) < p.Limit {
			break
		}
		last := page[len(page)-1]
		p.AfterCreatedAt, p.AfterID = last.CreatedAt, last.ID
	}
	require.Equal(t, want, paged, "keyset pages over (created_at, id), also across equal times")

	before, err := st.EventAgeList(ctx, store.EventAgeListParams{Before: at(2), Limit: 100})
	require.NoError(t, err)
	require.Equal(t, want[:1], before, "Before is exclusive")

	// A move takes the subtree's events to the group it is in now.
	require.NoError(t, st.NamespaceMove(ctx, store.NamespaceMoveParams{Key: sub.Key, NewFullPath: "other/sub", NewParentKey: other.Key}))
	moved, err := st.EventAgeList(ctx, store.EventAgeListParams{Before: at(3), Limit: 100})
	require.NoError(t, err)
	require.Equal(t, []store.EventAge{{ID: 2, CreatedAt: at(1), TopKey: acme.Key}, {ID: 3, CreatedAt: at(2), TopKey: other.Key},
		{ID: 4, CreatedAt: at(2), TopKey: other.Key}}, moved)

	for _, bad := range []int{0, -1, store.MaxDeliveryListLimit + 1} {
		_, err := st.EventAgeList(ctx, store.EventAgeListParams{Before: at(6), Limit: bad})
		require.Error(t, err, "limit %d", bad)
	}

	n, err := st.EventDeleteMany(ctx, []int64{2, 4, 8, 12345})
	require.NoError(t, err)
	require.Equal(t, int64(3), n)
	n, err = st.EventDeleteMany(ctx, nil)
	require.NoError(t, err)
	require.Zero(t, n)
	for _, id := range []int64{2, 4, 8} {
		_, err := st.EventGet(ctx, id)
		require.ErrorIs(t, err, store.ErrNotFound)
	}
	left, err := st.EventCount(ctx, store.EventListParams{})
	require.NoError(t, err)
	require.Equal(t, int64(6), left)
}

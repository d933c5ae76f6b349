package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/store"
)

// DestinationIDsMigration tests migration 0003_destination_ids on a driver. st is a store on
// a database migrated up to version 2 only. It creates two groups through st and calls seed
// with their keys and a time, for the driver to insert with its own SQL the rows below, as 0002
// defines them (no ids, no version), and return the ids of d1 and d2:
//
//   - destination "d1": group scope, namespace g1Key, category "http", config "{}", secret token
//     "s1", signing secret "w1", no previous secret, active, created and updated at the time;
//     headers at position 0 "X-A" = "a" (active) and at position 1 "X-B" = "b" (inactive);
//     namespace filters at position 0 g1Key and at position 1 g2Key (project flag unset);
//   - destination "d2", inserted after d1: instance scope, category "aws", config "{}", secret
//     token "s2", signing secret "w2", not active, same times; header at position 0 "X-C" = "c"
//     (active); namespace filter at position 0 g2Key with the project flag set.
//
// seed should insert the child rows in a scrambled order (d2's before d1's, position 1 before
// position 0), so that the test shows the migration numbers them by destination and position.
//
// Then it migrates st to the latest version and checks through the store that the rows survived
// with ids (numbered from 1 in (destination, position) order) and Version 1, and that the
// store's rules hold on the migrated tables: fresh and kept ids, uniqueness, the namespace
// reference, cascades, DestinationByHeader and DestinationByNamespaceFilter.
func DestinationIDsMigration(t *testing.T, st store.Store, seed func(g1Key, g2Key int64, at time.Time) (d1, d2 int64)) {
	ctx := t.Context()
	g1, err := st.NamespaceCreate(ctx, store.NamespaceCreateParams{Kind: store.KindGroup, Name: "G1", FullPath: "g1", CreatedAt: base})
	require.NoError(t, err)
	g2, err := st.NamespaceCreate(ctx, store.NamespaceCreateParams{Kind: store.KindGroup, Name: "G2", FullPath: "g2", CreatedAt: base})
	require.NoError(t, err)
	id1, id2 := seed(g1.Key, g2.Key, base)
	require.NoError(t, st.Migrate(ctx))

	want1 := store.Destination{
		ID: id1, Version: 1, Scope: store.ScopeGroup, NamespaceKey: g1.Key, Name: "d1", Category: "http", Config: []byte("{}"),
		SecretToken: "s1", SigningSecret: "w1", Active: true,
		Headers:    []store.DestinationHeader{{ID: 1, Name: "X-A", Value: "a", Active: true}, {ID: 2, Name: "X-B", Value: "b"}},
		Namespaces: []store.DestinationNamespace{{ID: 1, Key: g1.Key}, {ID: 2, Key: g2.Key}},
		CreatedAt:  base, UpdatedAt: base,
	}
	want2 := store.Destination{
		ID: id2, Version: 1, Scope: store.ScopeInstance, Name: "d2", Category: "aws", Config: []byte("{}"),
		SecretToken: "s2", SigningSecret: "w2",
		Headers:    []store.DestinationHeader{{ID: 3, Name: "X-C", Value: "c", Active: true}},
		Namespaces: []store.DestinationNamespace{{ID: 3, Key: g2.Key, Project: true}},
		CreatedAt:  base, UpdatedAt: base,
	}
	all, err := st.DestinationList(ctx, store.DestinationListParams{})
	require.NoError(t, err)
	require.Equal(t, []store.Destination{want1, want2}, all, "migrated rows keep their data and get ids")
	for _, want := range []store.Destination{want1, want2} {
		for _, h := range want.Headers {
			got, err := st.DestinationByHeader(ctx, h.ID)
			require.NoError(t, err)
			require.Equal(t, want, got, "by header %d", h.ID)
		}
		for _, n := range want.Namespaces {
			got, err := st.DestinationByNamespaceFilter(ctx, n.ID)
			require.NoError(t, err)
			require.Equal(t, want, got, "by namespace filter %d", n.ID)
		}
	}

	// New entries are numbered after the migrated ones.
	d3, err := st.DestinationCreate(ctx, store.DestinationCreateParams{Scope: store.ScopeGroup, NamespaceKey: g2.Key, Name: "d3", Category: "http",
		Headers: []store.DestinationHeader{{Name: "X-D", Value: "d"}}, Namespaces: []store.DestinationNamespace{{Key: g1.Key}}, CreatedAt: base})
	require.NoError(t, err)
	require.Equal(t, []int64{4}, headerIDs(d3))
	require.Equal(t, []int64{4}, namespaceFilterIDs(d3))

	// Migrated entries keep their ids through updates, and the uniqueness rules still hold.
	got, err := st.DestinationUpdate(ctx, store.DestinationUpdateParams{ID: id1, IfVersion: 1, UpdatedAt: base,
		Headers:    ptr([]store.DestinationHeader{want1.Headers[1], {Name: "X-E", Value: "e"}, want1.Headers[0]}),
		Namespaces: ptr([]store.DestinationNamespace{want1.Namespaces[1], want1.Namespaces[0]}),
	})
	require.NoError(t, err)
	require.EqualValues(t, 2, got.Version)
	require.Equal(t, []int64{2, 5, 1}, headerIDs(got))
	require.Equal(t, []int64{2, 1}, namespaceFilterIDs(got))
	_, err = st.DestinationUpdate(ctx, store.DestinationUpdateParams{ID: id1,
		Headers: ptr([]store.DestinationHeader{{Name: "X-A", Value: "1"}, {Name: "X-A", Value: "2"}})})
	require.ErrorIs(t, err, store.ErrConflict, "header names stay unique per destination")
	_, err = st.DestinationUpdate(ctx, store.DestinationUpdateParams{ID: id1,
		Namespaces: ptr([]store.DestinationNamespace{{Key: g2.Key}, {Key: g2.Key, Project: true}})})
	require.ErrorIs(t, err, store.ErrConflict, "namespace filters stay unique per destination")
	_, err = st.DestinationUpdate(ctx, store.DestinationUpdateParams{ID: id1,
		Namespaces: ptr([]store.DestinationNamespace{{Key: g2.Key + 1000}})})
	require.ErrorIs(t, err, store.ErrNotFound, "namespace filters still reference namespaces")
	_, err = st.DestinationCreate(ctx, store.DestinationCreateParams{Scope: store.ScopeGroup, NamespaceKey: g1.Key, Name: "d4", Category: "http",
		Headers: []store.DestinationHeader{{Name: "X", Value: "1"}, {Name: "X", Value: "2"}}})
	require.ErrorIs(t, err, store.ErrConflict)

	// Deleting a destination still deletes its entries.
	require.NoError(t, st.DestinationDelete(ctx, id2))
	_, err = st.DestinationByHeader(ctx, 3)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = st.DestinationByNamespaceFilter(ctx, 3)
	require.ErrorIs(t, err, store.ErrNotFound)
	d3, err = st.DestinationUpdate(ctx, store.DestinationUpdateParams{ID: d3.ID,
		Headers: ptr(append(d3.Headers, store.DestinationHeader{Name: "X-F", Value: "f"}))})
	require.NoError(t, err)
	require.Equal(t, int64(4), d3.Headers[0].ID)
	require.Greater(t, d3.Headers[1].ID, int64(5), "ids are not reused (there may be gaps)")
}

package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/store"
)

func headerIDs(d store.Destination) []int64 {
	out := make([]int64, 0, len(d.Headers))
	for _, h := range d.Headers {
		out = append(out, h.ID)
	}
	return out
}

func namespaceFilterIDs(d store.Destination) []int64 {
	out := make([]int64, 0, len(d.Namespaces))
	for _, n := range d.Namespaces {
		out = append(out, n.ID)
	}
	return out
}

// requireDistinctPositive checks that every id is set and none repeats.
func requireDistinctPositive(t *testing.T, ids []int64, msg string) {
	t.Helper()
	seen := map[int64]bool{}
	for _, id := range ids {
		require.Positive(t, id, msg)
		require.False(t, seen[id], "%s: id %d twice in %v", msg, id, ids)
		seen[id] = true
	}
}

// testDestinationEntryIDs checks the ids of headers and namespace filters: assigned on create,
// unique across destinations, kept by updates that reorder or rewrite entries, fresh for new
// entries, never reused, and refused when they are not the destination's.
func (s *suite) testDestinationEntryIDs(t *testing.T) {
	ctx, st := s.setup(t)
	g1, g2, sub, proj := destinationNamespaces(t, ctx, st)

	a, err := st.DestinationCreate(ctx, fullDestination(g1, sub, proj, "a"))
	require.NoError(t, err)
	b, err := st.DestinationCreate(ctx, fullDestination(g1, sub, proj, "b"))
	require.NoError(t, err)
	require.EqualValues(t, 1, a.Version)
	require.EqualValues(t, 1, b.Version)
	require.Len(t, a.Headers, 3)
	require.Len(t, a.Namespaces, 3)
	requireDistinctPositive(t, append(headerIDs(a), headerIDs(b)...), "header ids are unique across destinations")
	requireDistinctPositive(t, append(namespaceFilterIDs(a), namespaceFilterIDs(b)...), "namespace filter ids are unique across destinations")
	maxHeaderID := slices.Max(append(headerIDs(a), headerIDs(b)...))
	maxFilterID := slices.Max(append(namespaceFilterIDs(a), namespaceFilterIDs(b)...))

	// IDs are the store's to assign.
	for name, p := range map[string]store.DestinationCreateParams{
		"header id": {Scope: store.ScopeGroup, NamespaceKey: g1.Key, Name: "c", Category: "http",
			Headers: []store.DestinationHeader{{Name: "X", Value: "v"}, {ID: a.Headers[0].ID, Name: "Y", Value: "v"}}},
		"unused header id": {Scope: store.ScopeGroup, NamespaceKey: g1.Key, Name: "c", Category: "http",
			Headers: []store.DestinationHeader{{ID: maxHeaderID + 1000, Name: "X", Value: "v"}}},
		"namespace filter id": {Scope: store.ScopeGroup, NamespaceKey: g1.Key, Name: "c", Category: "http",
			Namespaces: []store.DestinationNamespace{{ID: a.Namespaces[0].ID, Key: sub.Key}}},
	} {
		_, err := st.DestinationCreate(ctx, p)
		require.Error(t, err, name)
		require.NotErrorIs(t, err, store.ErrNotFound, name)
		require.NotErrorIs(t, err, store.ErrConflict, name)
	}
	n, err := st.DestinationCount(ctx, store.ScopeGroup, g1.Key)
	require.NoError(t, err)
	require.EqualValues(t, 2, n, "refused creates leave nothing behind")

	// Reorder and rewrite: the first and last header swap names (and change value and active),
	// the middle one goes, a new one comes first. Kept entries keep their ids; the new one gets
	// an id above every id given so far.
	h0, h1, h2 := a.Headers[0], a.Headers[1], a.Headers[2]
	n0, n1, n2 := a.Namespaces[0], a.Namespaces[1], a.Namespaces[2]
	headers := []store.DestinationHeader{
		{Name: "X-New", Value: "sealed:new", Active: true},
		{ID: h2.ID, Name: h0.Name, Value: "sealed:was-" + h2.Name, Active: !h2.Active},
		{ID: h0.ID, Name: h2.Name, Value: "sealed:was-" + h0.Name, Active: !h0.Active},
	}
	namespaces := []store.DestinationNamespace{
		{ID: n2.ID, Key: n2.Key, Project: n2.Project},
		{Key: g2.Key},
		{ID: n0.ID, Key: n0.Key, Project: !n0.Project}, // what the filter says may change too
	}
	got, err := st.DestinationUpdate(ctx, store.DestinationUpdateParams{ID: a.ID, Headers: &headers, Namespaces: &namespaces, UpdatedAt: base})
	require.NoError(t, err)
	require.EqualValues(t, 2, got.Version)
	require.Equal(t, []int64{got.Headers[0].ID, h2.ID, h0.ID}, headerIDs(got))
	require.Greater(t, got.Headers[0].ID, maxHeaderID, "a new header gets a fresh id")
	require.Equal(t, []int64{n2.ID, got.Namespaces[1].ID, n0.ID}, namespaceFilterIDs(got))
	require.Greater(t, got.Namespaces[1].ID, maxFilterID, "a new namespace filter gets a fresh id")
	want := a
	want.Version, want.UpdatedAt, want.Headers, want.Namespaces = 2, base, headers, namespaces
	adoptIDs(t, &want, got)
	require.Equal(t, want, got)
	again, err := st.DestinationGet(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, want, again)
	a = got
	got, err = st.DestinationGet(ctx, b.ID)
	require.NoError(t, err)
	require.Equal(t, b, got, "the other destination keeps its entries and ids")

	// An update that leaves the lists alone keeps every id.
	got, err = st.DestinationUpdate(ctx, store.DestinationUpdateParams{ID: a.ID, Name: ptr("a2"), UpdatedAt: base})
	require.NoError(t, err)
	require.Equal(t, headerIDs(a), headerIDs(got))
	require.Equal(t, namespaceFilterIDs(a), namespaceFilterIDs(got))
	require.EqualValues(t, 3, got.Version)
	a = got

	// Ids are never reused: delete the header and the filter with the highest ids there are,
	// then add one of each; the new ids are higher still. h1 and n1 (deleted above) stay unknown.
	topHeader, topFilter := a.Headers[0], a.Namespaces[1]
	require.Equal(t, topHeader.ID, slices.Max(append(headerIDs(a), headerIDs(b)...)))
	require.Equal(t, topFilter.ID, slices.Max(append(namespaceFilterIDs(a), namespaceFilterIDs(b)...)))
	a, err = st.DestinationUpdate(ctx, store.DestinationUpdateParams{ID: a.ID, UpdatedAt: base,
		Headers:    ptr(slices.Delete(slices.Clone(a.Headers), 0, 1)),
		Namespaces: ptr(slices.Delete(slices.Clone(a.Namespaces), 1, 2)),
	})
	require.NoError(t, err)
	a, err = st.DestinationUpdate(ctx, store.DestinationUpdateParams{ID: a.ID, UpdatedAt: base,
		Headers:    ptr(append(slices.Clone(a.Headers), store.DestinationHeader{Name: "X-Newer", Value: "v"})),
		Namespaces: ptr(append(slices.Clone(a.Namespaces), store.DestinationNamespace{Key: n1.Key, Project: n1.Project})), // n1 again, as a new filter
	})
	require.NoError(t, err)
	require.Greater(t, a.Headers[len(a.Headers)-1].ID, topHeader.ID, "a deleted header's id is not reused")
	require.Greater(t, a.Namespaces[len(a.Namespaces)-1].ID, topFilter.ID, "a deleted filter's id is not reused")
	require.EqualValues(t, 5, a.Version)
	for _, id := range []int64{h1.ID, topHeader.ID} {
		_, err := st.DestinationByHeader(ctx, id)
		require.ErrorIs(t, err, store.ErrNotFound, "deleted header %d", id)
	}
	for _, id := range []int64{n1.ID, topFilter.ID} {
		_, err := st.DestinationByNamespaceFilter(ctx, id)
		require.ErrorIs(t, err, store.ErrNotFound, "deleted namespace filter %d", id)
	}

	// An id that is not one of the destination's: another destination's, a deleted one, one never
	// given. The update is refused whole (the name and the other list too), and the other
	// destination keeps its entry.
	withHeader := func(h store.DestinationHeader) *[]store.DestinationHeader {
		return ptr(append(slices.Clone(a.Headers), h))
	}
	withFilter := func(n store.DestinationNamespace) *[]store.DestinationNamespace {
		return ptr(append(slices.Clone(a.Namespaces), n))
	}
	refused := []struct {
		name string
		p    store.DestinationUpdateParams
		want error // nil: an error that is neither sentinel
	}{
		{"other destination's header", store.DestinationUpdateParams{Headers: withHeader(store.DestinationHeader{ID: b.Headers[0].ID, Name: "X-Stolen", Value: "v"})}, store.ErrNotFound},
		{"deleted header", store.DestinationUpdateParams{Headers: withHeader(store.DestinationHeader{ID: h1.ID, Name: "X-Back", Value: "v"})}, store.ErrNotFound},
		{"unknown header", store.DestinationUpdateParams{Headers: withHeader(store.DestinationHeader{ID: maxHeaderID + 1000, Name: "X-Unknown", Value: "v"})}, store.ErrNotFound},
		{"namespace filter id as header id", store.DestinationUpdateParams{Headers: withHeader(store.DestinationHeader{ID: a.Namespaces[0].ID + 1000, Name: "X-U", Value: "v"})}, store.ErrNotFound},
		{"other destination's filter", store.DestinationUpdateParams{Namespaces: withFilter(store.DestinationNamespace{ID: b.Namespaces[0].ID, Key: proj.Key, Project: true})}, store.ErrNotFound},
		{"deleted filter", store.DestinationUpdateParams{Namespaces: withFilter(store.DestinationNamespace{ID: topFilter.ID, Key: proj.Key, Project: true})}, store.ErrNotFound},
		{"one header id twice", store.DestinationUpdateParams{Headers: withHeader(store.DestinationHeader{ID: a.Headers[0].ID, Name: "X-Twice", Value: "v"})}, nil},
		{"one filter id twice", store.DestinationUpdateParams{Namespaces: withFilter(store.DestinationNamespace{ID: a.Namespaces[0].ID, Key: proj.Key, Project: true})}, nil},
	}
	for _, tt := range refused {
		p := tt.p
		p.ID, p.Name, p.Active = a.ID, ptr("renamed"), ptr(false)
		if p.Headers == nil {
			p.Headers = ptr([]store.DestinationHeader{{Name: "X-Only", Value: "v"}})
		} else {
			p.Namespaces = ptr([]store.DestinationNamespace{{Key: g2.Key}})
		}
		_, err := st.DestinationUpdate(ctx, p)
		require.Error(t, err, tt.name)
		if tt.want != nil {
			require.ErrorIs(t, err, tt.want, tt.name)
		} else {
			require.NotErrorIs(t, err, store.ErrNotFound, tt.name)
			require.NotErrorIs(t, err, store.ErrConflict, tt.name)
		}
		got, err := st.DestinationGet(ctx, a.ID)
		require.NoError(t, err)
		require.Equal(t, a, got, "%s: a refused update changes nothing, version included", tt.name)
		got, err = st.DestinationGet(ctx, b.ID)
		require.NoError(t, err)
		require.Equal(t, b, got, "%s: the other destination keeps its entries", tt.name)
	}
}

// testDestinationVersion checks that Version counts successful updates and that IfVersion makes
// an update conditional.
func (s *suite) testDestinationVersion(t *testing.T) {
	ctx, st := s.setup(t)
	g1, _, sub, proj := destinationNamespaces(t, ctx, st)

	d, err := st.DestinationCreate(ctx, fullDestination(g1, sub, proj, "d"))
	require.NoError(t, err)
	require.EqualValues(t, 1, d.Version)
	other, err := st.DestinationCreate(ctx, fullDestination(g1, sub, proj, "other"))
	require.NoError(t, err)

	// Every successful update counts, also one that changes nothing but UpdatedAt; a failed one
	// does not.
	d, err = st.DestinationUpdate(ctx, store.DestinationUpdateParams{ID: d.ID, UpdatedAt: base})
	require.NoError(t, err)
	require.EqualValues(t, 2, d.Version)
	_, err = st.DestinationUpdate(ctx, store.DestinationUpdateParams{ID: d.ID, Name: ptr("other")})
	require.ErrorIs(t, err, store.ErrConflict)
	require.NotErrorIs(t, err, store.ErrVersionConflict, "a taken name is no lost race")

	// IfVersion matches: the update applies.
	d, err = st.DestinationUpdate(ctx, store.DestinationUpdateParams{ID: d.ID, IfVersion: 2, Active: ptr(false), UpdatedAt: base})
	require.NoError(t, err)
	require.EqualValues(t, 3, d.Version)
	require.False(t, d.Active)

	// A stale IfVersion: ErrVersionConflict (which is an ErrConflict), nothing changed.
	for _, stale := range []int64{1, 2, 4, 1000} {
		_, err = st.DestinationUpdate(ctx, store.DestinationUpdateParams{ID: d.ID, IfVersion: stale, Name: ptr("renamed"),
			Headers: ptr([]store.DestinationHeader{{Name: "X", Value: "v"}}), EventTypes: ptr([]string{"e"}), UpdatedAt: base})
		require.ErrorIs(t, err, store.ErrVersionConflict, "version %d", stale)
		require.ErrorIs(t, err, store.ErrConflict, "version %d", stale)
		require.NotErrorIs(t, err, store.ErrNotFound, "version %d", stale)
		got, err := st.DestinationGet(ctx, d.ID)
		require.NoError(t, err)
		require.Equal(t, d, got, "version %d: a conflicting update changes nothing", stale)
	}

	// A destination that does not exist is not found, whatever IfVersion says.
	for _, v := range []int64{0, 1, 3} {
		_, err = st.DestinationUpdate(ctx, store.DestinationUpdateParams{ID: other.ID + 1000, IfVersion: v, Name: ptr("x")})
		require.ErrorIs(t, err, store.ErrNotFound, "version %d", v)
		require.NotErrorIs(t, err, store.ErrConflict, "version %d", v)
	}

	// IfVersion 0 is unconditional.
	d, err = st.DestinationUpdate(ctx, store.DestinationUpdateParams{ID: d.ID, Name: ptr("renamed"), UpdatedAt: base})
	require.NoError(t, err)
	require.EqualValues(t, 4, d.Version)
	require.Equal(t, "renamed", d.Name)

	got, err := st.DestinationGet(ctx, other.ID)
	require.NoError(t, err)
	require.Equal(t, other, got, "versions are per destination")
}

// testDestinationConcurrentReadModifyWrite adds one header per goroutine to one destination,
// each by reading the destination, appending to its headers and updating with IfVersion, again
// on ErrVersionConflict: no header is lost.
func (s *suite) testDestinationConcurrentReadModifyWrite(t *testing.T) {
	ctx, st := s.setup(t)
	g1, _, sub, proj := destinationNamespaces(t, ctx, st)

	d, err := st.DestinationCreate(ctx, fullDestination(g1, sub, proj, "d"))
	require.NoError(t, err)

	const workers = 8
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for i := range workers {
		wg.Go(func() {
			for {
				cur, err := st.DestinationGet(ctx, d.ID)
				if err != nil {
					errs[i] = err
					return
				}
				hs := append(slices.Clone(cur.Headers), store.DestinationHeader{Name: fmt.Sprint("X-Worker-", i), Value: "v", Active: true})
				_, err = st.DestinationUpdate(ctx, store.DestinationUpdateParams{ID: d.ID, IfVersion: cur.Version, Headers: &hs})
				if errors.Is(err, store.ErrVersionConflict) {
					continue
				}
				errs[i] = err
				return
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	got, err := st.DestinationGet(ctx, d.ID)
	require.NoError(t, err)
	require.EqualValues(t, 1+workers, got.Version, "one successful update per worker")
	require.Len(t, got.Headers, len(d.Headers)+workers)
	require.Equal(t, d.Headers, got.Headers[:len(d.Headers)], "the first headers kept their ids and fields")
	names := map[string]bool{}
	for _, h := range got.Headers {
		names[h.Name] = true
	}
	for i := range workers {
		require.True(t, names[fmt.Sprint("X-Worker-", i)], "worker %d's header", i)
	}
	requireDistinctPositive(t, headerIDs(got), "header ids")
}

// testDestinationByEntry finds destinations by the ids of their headers and namespace filters.
func (s *suite) testDestinationByEntry(t *testing.T) {
	ctx, st := s.setup(t)
	g1, g2, sub, proj := destinationNamespaces(t, ctx, st)

	a, err := st.DestinationCreate(ctx, fullDestination(g1, sub, proj, "a"))
	require.NoError(t, err)
	b, err := st.DestinationCreate(ctx, fullDestination(g1, sub, proj, "b"))
	require.NoError(t, err)
	inst, err := st.DestinationCreate(ctx, store.DestinationCreateParams{Scope: store.ScopeInstance, Name: "i", Category: "http",
		Headers: []store.DestinationHeader{{Name: "X", Value: "v"}}, Namespaces: []store.DestinationNamespace{{Key: g2.Key}}})
	require.NoError(t, err)

	for _, d := range []store.Destination{a, b, inst} {
		for _, h := range d.Headers {
			got, err := st.DestinationByHeader(ctx, h.ID)
			require.NoError(t, err)
			require.Equal(t, d, got, "header %d", h.ID)
		}
		for _, n := range d.Namespaces {
			got, err := st.DestinationByNamespaceFilter(ctx, n.ID)
			require.NoError(t, err)
			require.Equal(t, d, got, "namespace filter %d", n.ID)
		}
	}
	top := slices.Max(append(append(headerIDs(a), headerIDs(b)...), append(namespaceFilterIDs(a), namespaceFilterIDs(b)...)...))
	for _, id := range []int64{0, -1, top + 1000} {
		_, err := st.DestinationByHeader(ctx, id)
		require.ErrorIs(t, err, store.ErrNotFound, "header %d", id)
		_, err = st.DestinationByNamespaceFilter(ctx, id)
		require.ErrorIs(t, err, store.ErrNotFound, "namespace filter %d", id)
	}

	// After an update: the new state, and entries no longer there are not found.
	dropped := a.Headers[1]
	a, err = st.DestinationUpdate(ctx, store.DestinationUpdateParams{ID: a.ID, Name: ptr("a2"),
		Headers: ptr([]store.DestinationHeader{a.Headers[2], a.Headers[0]})})
	require.NoError(t, err)
	got, err := st.DestinationByHeader(ctx, a.Headers[0].ID)
	require.NoError(t, err)
	require.Equal(t, a, got)
	_, err = st.DestinationByHeader(ctx, dropped.ID)
	require.ErrorIs(t, err, store.ErrNotFound)

	// Deleting a destination deletes its entries (cascade): they are not found any more.
	require.NoError(t, st.DestinationDelete(ctx, a.ID))
	for _, h := range a.Headers {
		_, err := st.DestinationByHeader(ctx, h.ID)
		require.ErrorIs(t, err, store.ErrNotFound, "header %d of a deleted destination", h.ID)
	}
	for _, n := range a.Namespaces {
		_, err := st.DestinationByNamespaceFilter(ctx, n.ID)
		require.ErrorIs(t, err, store.ErrNotFound, "namespace filter %d of a deleted destination", n.ID)
	}
	got, err = st.DestinationByHeader(ctx, b.Headers[0].ID)
	require.NoError(t, err)
	require.Equal(t, b, got)
	got, err = st.DestinationByNamespaceFilter(ctx, b.Namespaces[0].ID)
	require.NoError(t, err)
	require.Equal(t, b, got)
}

package sqlite_test

import (
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/store/sqlite"
	"github.com/auditstream/auditstream/internal/store/storetest"
)

// open returns an unmigrated store on a new database file in a temporary directory.
func open(tb testing.TB) *sqlite.Store {
	tb.Helper()
	s, err := sqlite.Open(tb.Context(), filepath.Join(tb.TempDir(), "auditstream.db"))
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, s.Close()) })
	return s
}

func TestStore(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return open(t) })
}

// TestSeveralStoresOneFile opens one file from several stores, as several processes would: they
// migrate and write at the same time, and wait for each other instead of failing with
// SQLITE_BUSY.
func TestSeveralStoresOneFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "shared.db")
	var stores []*sqlite.Store
	for range 3 {
		s, err := sqlite.Open(t.Context(), path)
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		stores = append(stores, s)
	}

	errs := make(chan error, len(stores))
	for _, s := range stores {
		go func() { errs <- s.Migrate(t.Context()) }()
	}
	for range stores {
		require.NoError(t, <-errs)
	}

	const batches, batch = 20, 50
	for i, s := range stores {
		go func() {
			for b := range batches {
				events := make([]store.EventRecord, batch)
				for j := range events {
					id := int64((i*batches+b)*batch + j + 1)
					events[j] = store.EventRecord{ID: id, CreatedAt: time.UnixMilli(id), EventType: "e", EntityType: "User", Data: []byte(`{}`)}
				}
				if err := s.EventInsertMany(t.Context(), events); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range stores {
		require.NoError(t, <-errs)
	}
	for _, s := range stores {
		n, err := s.EventCount(t.Context(), store.EventListParams{})
		require.NoError(t, err)
		require.EqualValues(t, len(stores)*batches*batch, n)
	}
}

// destinationChildTables hold the headers and filters of destinations.
var destinationChildTables = []string{"destination_headers", "destination_event_filters", "destination_namespace_filters"}

// createDestinationWithChildren creates a group destination with a header and one filter of
// each table and returns its id.
func createDestinationWithChildren(t *testing.T, st store.Store) int64 {
	t.Helper()
	g, err := st.NamespaceCreate(t.Context(), store.NamespaceCreateParams{Kind: store.KindGroup, Name: "G", FullPath: "g"})
	require.NoError(t, err)
	d, err := st.DestinationCreate(t.Context(), store.DestinationCreateParams{
		Scope: store.ScopeGroup, NamespaceKey: g.Key, Name: "d", Category: "http",
		Headers:    []store.DestinationHeader{{Name: "X", Value: "v"}},
		EventTypes: []string{"e"}, DenyCategories: []string{"c"},
		Namespaces: []store.DestinationNamespace{{Key: g.Key}},
	})
	require.NoError(t, err)
	return d.ID
}

// TestDestinationDeleteCascades checks in the raw tables that deleting a destination removes
// its headers and filters (foreign keys are on in every connection).
func TestDestinationDeleteCascades(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "auditstream.db")
	s, err := sqlite.Open(t.Context(), path)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	require.NoError(t, s.Migrate(t.Context()))
	id := createDestinationWithChildren(t, s)

	raw, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, raw.Close()) })
	count := func(table string) int {
		var n int
		require.NoError(t, raw.QueryRowContext(t.Context(), `SELECT count(*) FROM `+table).Scan(&n))
		return n
	}
	for _, table := range destinationChildTables {
		require.Positive(t, count(table), table)
	}
	require.NoError(t, s.DestinationDelete(t.Context(), id))
	for _, table := range destinationChildTables {
		require.Zero(t, count(table), table)
	}
}

func TestOpenRejectsMemory(t *testing.T) {
	t.Parallel()
	_, err := sqlite.Open(t.Context(), ":memory:")
	require.Error(t, err)
}

func BenchmarkEventInsertMany(b *testing.B) {
	s := open(b)
	require.NoError(b, s.Migrate(b.Context()))
	storetest.BenchEventInsertMany(b, s)
}

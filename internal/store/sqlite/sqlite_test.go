package sqlite_test

import (
	"database/sql"
	"path/filepath"
	"strings"
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

// destinationChildTables hold the headers, filters, dead letters and delivery attempts of
// destinations.
var destinationChildTables = []string{"destination_headers", "destination_event_filters", "destination_namespace_filters",
	"dead_letters", "delivery_attempts"}

// createDestinationWithChildren creates a group destination with a header, one filter of each
// table, a dead letter and a delivery attempt, and returns its id.
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
	_, err = st.DeadLetterAdd(t.Context(), store.DeadLetterAddParams{DestinationID: d.ID, EventID: 1, EventType: "e", Event: []byte(`{}`)})
	require.NoError(t, err)
	require.NoError(t, st.DeliveryAttemptAdd(t.Context(), []store.DeliveryAttempt{{DestinationID: d.ID, Count: 1}}))
	return d.ID
}

// TestDestinationDeleteCascades checks in the raw tables that deleting a destination removes
// its headers, filters, dead letters and delivery attempts (foreign keys are on in every
// connection).
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

// migratedTo returns a store migrated up to version, and one connection to its file (foreign
// keys on) to fill it as that version's code would have.
func migratedTo(t *testing.T, version int) (*sqlite.Store, *sql.DB) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "auditstream.db")
	s, err := sqlite.Open(t.Context(), path)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	require.NoError(t, sqlite.MigrateUpTo(t.Context(), s, version))
	raw, err := sql.Open("sqlite", path+"?_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)")
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, raw.Close()) })
	raw.SetMaxOpenConns(1)
	return s, raw
}

// TestMigrateDestinationIDs fills a database at migration 0002 and migrates it: 0003 rebuilds
// the header and namespace filter tables (foreign keys on, in the migration's transaction).
func TestMigrateDestinationIDs(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, raw := migratedTo(t, 2)
	exec := func(query string, args ...any) sql.Result {
		t.Helper()
		res, err := raw.ExecContext(ctx, query, args...)
		require.NoError(t, err, query)
		return res
	}

	storetest.DestinationIDsMigration(t, s, func(g1, g2 int64, at time.Time) (d1, d2 int64) {
		insert := func(scope string, key any, name, category, token, secret string, active bool) int64 {
			res := exec(`INSERT INTO destinations (scope, namespace_key, name, category, config, secret_token,
				signing_secret, active, created_at, updated_at) VALUES (?, ?, ?, ?, CAST('{}' AS BLOB), ?, ?, ?, ?, ?)`,
				scope, key, name, category, token, secret, active, at.UnixMilli(), at.UnixMilli())
			id, err := res.LastInsertId()
			require.NoError(t, err)
			return id
		}
		d1 = insert("group", g1, "d1", "http", "s1", "w1", true)
		d2 = insert("instance", nil, "d2", "aws", "s2", "w2", false)
		header := `INSERT INTO destination_headers (destination_id, position, name, value, active) VALUES (?, ?, ?, ?, ?)`
		exec(header, d2, 0, "X-C", "c", true)
		exec(header, d1, 1, "X-B", "b", false)
		exec(header, d1, 0, "X-A", "a", true)
		filter := `INSERT INTO destination_namespace_filters (destination_id, position, namespace_key, project) VALUES (?, ?, ?, ?)`
		exec(filter, d2, 0, g2, true)
		exec(filter, d1, 1, g2, false)
		exec(filter, d1, 0, g1, false)
		return d1, d2
	})

	// The rebuilt tables are sound and keep their index and their references: a namespace a
	// filter names cannot be deleted.
	var check string
	require.NoError(t, raw.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&check))
	require.Equal(t, "ok", check)
	rows, err := raw.QueryContext(ctx, `PRAGMA foreign_key_check`)
	require.NoError(t, err)
	require.False(t, rows.Next(), "no foreign key violations")
	require.NoError(t, rows.Close())
	var indexes int
	require.NoError(t, raw.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema
		WHERE type = 'index' AND name = 'destination_namespace_filters_namespace_key_idx'`).Scan(&indexes))
	require.Equal(t, 1, indexes)
	var key int64
	require.NoError(t, raw.QueryRowContext(ctx, `SELECT namespace_key FROM destination_namespace_filters LIMIT 1`).Scan(&key))
	_, err = raw.ExecContext(ctx, `DELETE FROM namespaces WHERE key = ?`, key)
	require.ErrorContains(t, err, "FOREIGN KEY")
	var tables int
	require.NoError(t, raw.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE name LIKE '%\_new' ESCAPE '\'`).Scan(&tables))
	require.Zero(t, tables, "no table of the rebuild is left behind")
}

// TestMigrateTrailTiles fills a database at migration 0013 with a tree in trail_hashes and
// migrates it: the store turns the rows into tiles and drops the old tables.
func TestMigrateTrailTiles(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, raw := migratedTo(t, 13)
	storetest.TrailTilesMigration(t, s, func(size int64, rows []storetest.TrailLegacyRow) {
		tx, err := raw.BeginTx(ctx, nil)
		require.NoError(t, err)
		for len(rows) > 0 {
			n := min(len(rows), 300)
			args := make([]any, 0, 3*n)
			for _, r := range rows[:n] {
				args = append(args, r.Index, r.Hash, r.Kind)
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO trail_hashes (idx, hash, kind) VALUES (?,?,?)`+strings.Repeat(",(?,?,?)", n-1), args...)
			require.NoError(t, err)
			rows = rows[n:]
		}
		_, err = tx.ExecContext(ctx, `UPDATE trail_tree SET size = ?`, size)
		require.NoError(t, err)
		require.NoError(t, tx.Commit())
	})
	var left int
	require.NoError(t, raw.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE name IN ('trail_hashes', 'trail_upgrade')`).Scan(&left))
	require.Zero(t, left, "the old tables are gone")
}

// TestWebSessionUserCascade deletes a user with raw SQL (foreign keys on, as in every store
// connection): the user's web sessions go with it.
func TestWebSessionUserCascade(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "auditstream.db")
	s, err := sqlite.Open(t.Context(), path)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	require.NoError(t, s.Migrate(t.Context()))

	raw, err := sql.Open("sqlite", path+"?_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)")
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, raw.Close()) })
	storetest.WebSessionUserCascade(t, s, func(id int64) {
		res, err := raw.ExecContext(t.Context(), `DELETE FROM users WHERE id = ?`, id)
		require.NoError(t, err)
		n, err := res.RowsAffected()
		require.NoError(t, err)
		require.EqualValues(t, 1, n)
	})
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

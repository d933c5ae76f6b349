package postgres_test

import (
	"context"
	"crypto/rand"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/store/postgres"
	"github.com/auditstream/auditstream/internal/store/storetest"
)

// databaseURLEnv names the variable holding the URL of a PostgreSQL database the tests may
// create and drop schemas in.
const databaseURLEnv = "AUDITSTREAM_TEST_DATABASE_URL"

// databaseURL returns the test database URL. Without one the test is skipped, except in CI
// (CI set), where PostgreSQL tests must run.
func databaseURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv(databaseURLEnv)
	if u == "" {
		if os.Getenv("CI") != "" {
			tb.Fatalf("%s is not set: PostgreSQL tests must run in CI", databaseURLEnv)
		}
		tb.Skipf("%s is not set; set it to a postgres:// URL to run the PostgreSQL tests", databaseURLEnv)
	}
	return u
}

// withSearchPath returns the connection string dsn with its search_path set to schema.
func withSearchPath(tb testing.TB, dsn, schema string) string {
	tb.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		require.NoError(tb, err)
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
}

// schemaDSN creates a schema of its own for tb, dropped with everything in it at cleanup, and
// returns dsn with its search_path set to it, so tests and test processes sharing the database
// never meet.
func schemaDSN(tb testing.TB, dsn string) string {
	tb.Helper()
	exec := func(sql string) {
		tb.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		require.NoError(tb, err)
		defer conn.Close(context.Background())
		_, err = conn.Exec(ctx, sql)
		require.NoError(tb, err)
	}
	schema := "storetest_" + strings.ToLower(rand.Text())
	exec("CREATE SCHEMA " + pgx.Identifier{schema}.Sanitize())
	tb.Cleanup(func() { exec("DROP SCHEMA " + pgx.Identifier{schema}.Sanitize() + " CASCADE") })
	return withSearchPath(tb, dsn, schema)
}

// openDSN opens a store on dsn and closes it at cleanup (before a schema made earlier by
// schemaDSN is dropped: cleanups run last first).
func openDSN(tb testing.TB, dsn string) *postgres.Store {
	tb.Helper()
	s, err := postgres.Open(tb.Context(), dsn)
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, s.Close()) })
	return s
}

// open returns an unmigrated store in a fresh schema.
func open(tb testing.TB, dsn string) *postgres.Store {
	tb.Helper()
	return openDSN(tb, schemaDSN(tb, dsn))
}

func TestStore(t *testing.T) {
	t.Parallel()
	dsn := databaseURL(t)
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, dsn) })
}

// TestMigrateConcurrentStores migrates one fresh schema from several stores (several pools, as
// several processes would) at once.
func TestMigrateConcurrentStores(t *testing.T) {
	t.Parallel()
	dsn := databaseURL(t)
	schema := schemaDSN(t, dsn)
	var stores []*postgres.Store
	for range 4 {
		stores = append(stores, openDSN(t, schema))
	}
	errs := make(chan error, len(stores))
	for _, s := range stores {
		go func() { errs <- s.Migrate(t.Context()) }()
	}
	for range stores {
		require.NoError(t, <-errs)
	}
	n, err := stores[0].EventCount(t.Context(), store.EventListParams{})
	require.NoError(t, err)
	require.Zero(t, n)
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
// its headers, filters, dead letters and delivery attempts.
func TestDestinationDeleteCascades(t *testing.T) {
	t.Parallel()
	dsn := schemaDSN(t, databaseURL(t))
	s := openDSN(t, dsn)
	require.NoError(t, s.Migrate(t.Context()))
	id := createDestinationWithChildren(t, s)

	raw, err := pgx.Connect(t.Context(), dsn)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, raw.Close(context.Background())) })
	count := func(table string) int {
		var n int
		require.NoError(t, raw.QueryRow(t.Context(), `SELECT count(*) FROM `+table).Scan(&n))
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

// migratedTo returns a store of a schema of its own migrated up to version, and a connection
// to the same schema to fill it as that version's code would have.
func migratedTo(t *testing.T, version int) (*postgres.Store, *pgx.Conn) {
	t.Helper()
	dsn := schemaDSN(t, databaseURL(t))
	s := openDSN(t, dsn)
	require.NoError(t, postgres.MigrateUpTo(t.Context(), s, version))
	raw, err := pgx.Connect(t.Context(), dsn)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, raw.Close(context.Background())) })
	return s, raw
}

// TestMigrateTrailTiles fills a database at migration 0013 with a tree in trail_hashes and
// migrates it: the store turns the rows into tiles and drops the old tables.
func TestMigrateTrailTiles(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, raw := migratedTo(t, 13)
	storetest.TrailTilesMigration(t, s, func(size int64, rows []storetest.TrailLegacyRow) {
		_, err := raw.CopyFrom(ctx, pgx.Identifier{"trail_hashes"}, []string{"idx", "hash", "kind"},
			pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) { return []any{rows[i].Index, rows[i].Hash, rows[i].Kind}, nil }))
		require.NoError(t, err)
		_, err = raw.Exec(ctx, `UPDATE trail_tree SET size = $1`, size)
		require.NoError(t, err)
	})
	var left bool
	require.NoError(t, raw.QueryRow(ctx, `SELECT to_regclass('trail_hashes') IS NOT NULL OR to_regclass('trail_upgrade') IS NOT NULL`).Scan(&left))
	require.False(t, left, "the old tables are gone")
}

// TestMigrateDestinationIDs fills a database at migration 0002 and migrates it: 0003 numbers
// the existing headers and namespace filters and starts their identity sequences after them.
func TestMigrateDestinationIDs(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, raw := migratedTo(t, 2)
	exec := func(query string, args ...any) {
		t.Helper()
		_, err := raw.Exec(ctx, query, args...)
		require.NoError(t, err, query)
	}

	storetest.DestinationIDsMigration(t, s, func(g1, g2 int64, at time.Time) (d1, d2 int64) {
		insert := func(scope string, key *int64, name, category, token, secret string, active bool) int64 {
			var id int64
			require.NoError(t, raw.QueryRow(ctx, `INSERT INTO destinations (scope, namespace_key, name, category, config,
				secret_token, signing_secret, active, created_at, updated_at) VALUES ($1, $2, $3, $4, '{}'::bytea, $5, $6, $7, $8, $8)
				RETURNING id`, scope, key, name, category, token, secret, active, at).Scan(&id))
			return id
		}
		d1 = insert("group", &g1, "d1", "http", "s1", "w1", true)
		d2 = insert("instance", nil, "d2", "aws", "s2", "w2", false)
		header := `INSERT INTO destination_headers (destination_id, position, name, value, active) VALUES ($1, $2, $3, $4, $5)`
		exec(header, d2, 0, "X-C", "c", true)
		exec(header, d1, 1, "X-B", "b", false)
		exec(header, d1, 0, "X-A", "a", true)
		filter := `INSERT INTO destination_namespace_filters (destination_id, position, namespace_key, project) VALUES ($1, $2, $3, $4)`
		exec(filter, d2, 0, g2, true)
		exec(filter, d1, 1, g2, false)
		exec(filter, d1, 0, g1, false)
		return d1, d2
	})

	// A namespace a filter names still cannot be deleted.
	var key int64
	require.NoError(t, raw.QueryRow(ctx, `SELECT namespace_key FROM destination_namespace_filters LIMIT 1`).Scan(&key))
	_, err := raw.Exec(ctx, `DELETE FROM namespaces WHERE key = $1`, key)
	require.ErrorContains(t, err, "foreign key")
}

// TestWebSessionUserCascade deletes a user with raw SQL: the user's web sessions go with it.
func TestWebSessionUserCascade(t *testing.T) {
	t.Parallel()
	dsn := schemaDSN(t, databaseURL(t))
	s := openDSN(t, dsn)
	require.NoError(t, s.Migrate(t.Context()))

	raw, err := pgx.Connect(t.Context(), dsn)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, raw.Close(context.Background())) })
	storetest.WebSessionUserCascade(t, s, func(id int64) {
		tag, err := raw.Exec(t.Context(), `DELETE FROM users WHERE id = $1`, id)
		require.NoError(t, err)
		require.EqualValues(t, 1, tag.RowsAffected())
	})
}

func TestOpenInvalidURLHidesPassword(t *testing.T) {
	t.Parallel()
	_, err := postgres.Open(t.Context(), "postgres://u:s3cret@127.0.0.1:1/db?sslmode=bogus")
	require.Error(t, err)
	require.NotContains(t, err.Error(), "s3cret")
}

func BenchmarkEventInsertMany(b *testing.B) {
	s := open(b, databaseURL(b))
	require.NoError(b, s.Migrate(b.Context()))
	storetest.BenchEventInsertMany(b, s)
}

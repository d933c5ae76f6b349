// Package sqlite is the SQLite driver of store.Store, built on modernc.org/sqlite (pure Go, no
// cgo) through database/sql.
//
// The database runs in WAL mode with synchronous=NORMAL and foreign keys on. A Store holds two
// connection pools on the same file: one with a single connection that every write goes through
// (SQLite allows one writer at a time, so writers queue in Go instead of failing with
// SQLITE_BUSY), and a read-only pool that reads from WAL snapshots concurrently with the writer.
// Write transactions begin IMMEDIATE, so a second process writing the same file waits up to the
// busy timeout instead of failing on a lock upgrade.
//
// Times are stored as unix milliseconds (UTC) in INTEGER columns.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/auditstream/auditstream/internal/store"
)

var _ store.Store = (*Store)(nil)

const (
	// busyTimeout is how long a connection waits for a lock held by another connection or
	// process before it fails with SQLITE_BUSY.
	busyTimeout = 10 * time.Second
	// writerCacheKiB and readerCacheKiB are the page cache sizes of the writer and of each
	// reader connection. They live outside the Go heap. 24 MiB for the writer inserts 1,000-event
	// batches into a 300k-row table at ~40k events/s against ~44k with 64 MiB, for 40 MiB less
	// memory (go test -bench BenchmarkEventInsertMany -benchtime 300x ./internal/store/sqlite).
	writerCacheKiB = 24 << 10
	readerCacheKiB = 8 << 10
	// walCheckpointPages is the WAL size (in pages) at which a commit checkpoints it into the
	// database file; the WAL file is truncated back to that size afterwards.
	walCheckpointPages = 16384
)

// Store is a store.Store on one SQLite database file. It is safe for concurrent use.
type Store struct {
	w *sql.DB // the single writer connection: every statement that writes
	r *sql.DB // read-only connections
}

// Open opens (creating it when missing) the SQLite database file at path. It does not migrate:
// call Migrate before using the store. path must name a file; ":memory:" is not supported
// because the read and write pools would see two different databases.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") || strings.Contains(path, "?") {
		return nil, fmt.Errorf("open sqlite store: path %q must be a plain file name", path)
	}
	common := url.Values{}
	common.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	common.Add("_pragma", "foreign_keys(1)")
	common.Add("_pragma", "synchronous(NORMAL)")

	wq := cloneValues(common)
	wq.Add("_pragma", "journal_mode(WAL)")
	// Measured with storetest.BenchEventInsertMany: a page cache that holds the event indexes,
	// statement journals in memory (multi-row inserts with ON CONFLICT use them) and fewer,
	// larger checkpoints make batch inserts 30-40% faster once the table has grown.
	wq.Add("_pragma", fmt.Sprintf("cache_size(-%d)", writerCacheKiB))
	wq.Add("_pragma", "temp_store(MEMORY)")
	wq.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", walCheckpointPages))
	wq.Add("_pragma", fmt.Sprintf("journal_size_limit(%d)", walCheckpointPages*4096))
	wq.Set("_txlock", "immediate")
	w, err := sql.Open("sqlite", path+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	// Connect the writer first: it switches the file to WAL before any reader opens it.
	if err := w.PingContext(ctx); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}

	rq := cloneValues(common)
	rq.Add("_pragma", "query_only(1)")
	rq.Add("_pragma", fmt.Sprintf("cache_size(-%d)", readerCacheKiB))
	r, err := sql.Open("sqlite", path+"?"+rq.Encode())
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	if err := r.PingContext(ctx); err != nil {
		_ = r.Close()
		_ = w.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	return &Store{w: w, r: r}, nil
}

func cloneValues(v url.Values) url.Values {
	c := make(url.Values, len(v))
	for k, vs := range v {
		c[k] = slices.Clone(vs)
	}
	return c
}

// Close closes both connection pools.
func (s *Store) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

// Ping checks that the database answers on both pools.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("ping sqlite: %w", err)
	}
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("ping sqlite: %w", err)
	}
	return nil
}

//go:embed migrations/*.sql
var migrationFS embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations ordered by version. A file is named
// NNNN_description.sql.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 || !strings.HasSuffix(name, ".sql") {
			return nil, fmt.Errorf("migration file %q: name must be NNNN_description.sql", name)
		}
		if len(ms) > 0 && ms[len(ms)-1].version == v {
			return nil, fmt.Errorf("migration file %q: version %d used twice", name, v)
		}
		b, err := fs.ReadFile(migrationFS, "migrations/"+name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: name, sql: string(b)})
	}
	return ms, nil // fs.ReadDir sorts by name, and names start with the zero-padded version
}

// Migrate applies every embedded migration not yet applied, each in its own IMMEDIATE
// transaction, so concurrent callers (also in other processes) apply each migration once.
func (s *Store) Migrate(ctx context.Context) error {
	return s.migrateUpTo(ctx, math.MaxInt)
}

// migrateUpTo applies the embedded migrations not yet applied whose version is at most last.
// Tests of a migration use it to build a database at the version before.
func (s *Store) migrateUpTo(ctx context.Context, last int) error {
	ms, err := migrations()
	if err != nil {
		return fmt.Errorf("migrate sqlite: %w", err)
	}
	for _, m := range ms {
		if m.version > last {
			break
		}
		if err := s.migrate(ctx, m); err != nil {
			return fmt.Errorf("migrate sqlite: %s: %w", m.name, err)
		}
	}
	if last >= trailTilesVersion {
		if err := s.upgradeTrail(ctx); err != nil {
			return fmt.Errorf("migrate sqlite: the trail's hashes to tiles: %w", err)
		}
	}
	return nil
}

// trailTilesVersion is the migration that stores the trail's tree as tiles; upgradeTrail
// converts the hashes of a database from before it.
const trailTilesVersion = 14

func (s *Store) migrate(ctx context.Context, m migration) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return err
	}
	var applied bool
	if err := tx.QueryRowContext(ctx,
		`SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?)`, m.version,
	).Scan(&applied); err != nil {
		return err
	}
	if applied {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.version, m.name, time.Now().UnixMilli(),
	); err != nil {
		return err
	}
	return tx.Commit()
}

// translate turns driver errors that callers branch on into store sentinels: no rows into
// store.ErrNotFound, unique and primary-key violations into store.ErrConflict, and foreign-key
// violations (a referenced namespace or user does not exist) into store.ErrNotFound.
func translate(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	if e, ok := errors.AsType[*sqlite.Error](err); ok {
		switch e.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %s", store.ErrConflict, e.Error())
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return fmt.Errorf("%w: %s", store.ErrNotFound, e.Error())
		}
	}
	return err
}

// wrap describes a failed operation around its translated error.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("sqlite: %s: %w", op, translate(err))
}

// toMS converts t to unix milliseconds, dropping sub-millisecond precision.
func toMS(t time.Time) int64 { return t.UnixMilli() }

// ceilMS converts t to unix milliseconds, rounding up sub-millisecond precision. A stored ms
// value m is >= t exactly when m >= ceilMS(t).
func ceilMS(t time.Time) int64 {
	ms := t.UnixMilli()
	if t.Nanosecond()%int(time.Millisecond) != 0 && ms < math.MaxInt64 {
		ms++
	}
	return ms
}

func fromMS(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// nullMS converts t to unix milliseconds, or NULL for the zero time.
func nullMS(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: toMS(t), Valid: true}
}

func fromNullMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMS(v.Int64)
}

// createdMS is the creation time to store: t, or now when t is zero.
func createdMS(t time.Time) int64 {
	if t.IsZero() {
		t = time.Now()
	}
	return toMS(t)
}

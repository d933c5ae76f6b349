// Package postgres is the PostgreSQL driver of store.Store, built on pgx and its connection pool.
//
// Migrations are embedded and applied under a session advisory lock, so several processes can
// start (and migrate) at once. Times are timestamptz with millisecond precision. Event batches
// are COPYed into a per-session temporary table and moved into events with one INSERT ... ON
// CONFLICT DO NOTHING, all in one transaction.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/auditstream/auditstream/internal/store"
)

var _ store.Store = (*Store)(nil)

// Store is a store.Store on a PostgreSQL database. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
}

// Open connects to the database at url (a postgres:// URL or a key=value connection string, as
// accepted by pgxpool.ParseConfig) and checks that it answers. It does not migrate: call Migrate
// before using the store.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The error may quote the URL, password included.
		return nil, errors.New("open postgres store: invalid connection string")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	return &Store{pool: pool}, nil
}

// Close closes the connection pool, waiting for connections in use to be released.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres: %w", err)
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

// migrateLockKey is the first half of the advisory lock key Migrate holds; the second half is
// a hash of the schema migrated, so that databases in different schemas migrate independently.
const migrateLockKey = 0x61756469 // "audi"

// Migrate applies every embedded migration not yet applied, each in its own transaction, while
// holding a session advisory lock: concurrent callers, also in other processes, wait for each
// other and apply each migration once.
func (s *Store) Migrate(ctx context.Context) error {
	return s.migrateUpTo(ctx, math.MaxInt)
}

// migrateUpTo applies the embedded migrations not yet applied whose version is at most last.
// Tests of a migration use it to build a database at the version before.
func (s *Store) migrateUpTo(ctx context.Context, last int) (err error) {
	ms, err := migrations()
	if err != nil {
		return fmt.Errorf("migrate postgres: %w", err)
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate postgres: %w", err)
	}
	defer conn.Release()
	const lockArgs = `$1::int, hashtext(COALESCE(current_schema(), ''))`
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(`+lockArgs+`)`, migrateLockKey); err != nil {
		return fmt.Errorf("migrate postgres: lock: %w", err)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, uerr := conn.Exec(uctx, `SELECT pg_advisory_unlock(`+lockArgs+`)`, migrateLockKey); uerr != nil {
			// Ending the session is the other way to release the lock.
			_ = conn.Conn().Close(uctx)
			err = errors.Join(err, fmt.Errorf("migrate postgres: unlock: %w", uerr))
		}
	}()

	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer     PRIMARY KEY,
		name       text        NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return fmt.Errorf("migrate postgres: %w", err)
	}
	rows, err := conn.Query(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("migrate postgres: %w", err)
	}
	applied, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return fmt.Errorf("migrate postgres: %w", err)
	}
	done := make(map[int]bool, len(applied))
	for _, v := range applied {
		done[int(v)] = true
	}
	for _, m := range ms {
		if m.version > last {
			break
		}
		if done[m.version] {
			continue
		}
		if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name)
			return err
		}); err != nil {
			return fmt.Errorf("migrate postgres: %s: %w", m.name, err)
		}
	}
	if last >= trailTilesVersion {
		if err := upgradeTrail(ctx, conn); err != nil {
			return fmt.Errorf("migrate postgres: the trail's hashes to tiles: %w", err)
		}
	}
	return nil
}

// trailTilesVersion is the migration that stores the trail's tree as tiles; upgradeTrail
// converts the hashes of a database from before it.
const trailTilesVersion = 14

// SQLSTATE codes translated into store sentinels.
const (
	uniqueViolation     = "23505"
	foreignKeyViolation = "23503"
)

// translate turns driver errors that callers branch on into store sentinels: no rows into
// store.ErrNotFound, unique violations into store.ErrConflict, and foreign-key violations (a
// referenced namespace or user does not exist) into store.ErrNotFound.
func translate(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	if e, ok := errors.AsType[*pgconn.PgError](err); ok {
		switch e.Code {
		case uniqueViolation:
			return fmt.Errorf("%w: %s", store.ErrConflict, e.Message)
		case foreignKeyViolation:
			return fmt.Errorf("%w: %s", store.ErrNotFound, e.Message)
		}
	}
	return err
}

// isViolationOf reports whether err is a unique violation of the named constraint.
func isViolationOf(err error, constraint string) bool {
	e, ok := errors.AsType[*pgconn.PgError](err)
	return ok && e.Code == uniqueViolation && e.ConstraintName == constraint
}

// wrap describes a failed operation around its translated error.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("postgres: %s: %w", op, translate(err))
}

// idLockKey is the first half of the advisory lock key that serialises creates assigning
// max(id)+1; the second half is a hash of the schema and of what is numbered ("user",
// "namespace:group", ...).
const idLockKey = migrateLockKey + 1

// lockIDs takes the transaction-scoped advisory lock for assigning the next id of what. The
// statements after it see the rows of every create that held it before.
func lockIDs(ctx context.Context, tx pgx.Tx, what string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1::int, hashtext(COALESCE(current_schema(), '') || '.' || $2::text))`,
		idLockKey, what)
	return err
}

// maxIDRetries bounds how often a create that assigns max(id)+1 is retried when a create that
// did not take the lock (one with an explicit id) took the same id first.
const maxIDRetries = 10

// toMS drops sub-millisecond precision.
func toMS(t time.Time) time.Time { return t.Truncate(time.Millisecond).UTC() }

// ceilMS rounds sub-millisecond precision up: a stored millisecond value m is >= t exactly when
// m >= ceilMS(t).
func ceilMS(t time.Time) time.Time {
	c := t.Truncate(time.Millisecond)
	if !c.Equal(t) {
		c = c.Add(time.Millisecond)
	}
	return c.UTC()
}

// fromDB returns a time read from the database in UTC.
func fromDB(t time.Time) time.Time { return t.UTC() }

// nullTime is t to store, or NULL for the zero time.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	v := toMS(t)
	return &v
}

func fromNullTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// created is the creation time to store: t, or now when t is zero.
func created(t time.Time) time.Time {
	if t.IsZero() {
		t = time.Now()
	}
	return toMS(t)
}

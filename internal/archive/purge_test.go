package archive_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/archive"
	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/store/postgres"
	"github.com/auditstream/auditstream/internal/store/sqlite"
)

// purgeStores runs f on a fresh, migrated SQLite store and, when AUDITSTREAM_TEST_DATABASE_URL
// is set (it must be in CI), on a fresh PostgreSQL schema.
func purgeStores(t *testing.T, f func(t *testing.T, st store.Store)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "db"))
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, st.Close()) })
		require.NoError(t, st.Migrate(t.Context()))
		f(t, st)
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		dsn := os.Getenv("AUDITSTREAM_TEST_DATABASE_URL")
		if dsn == "" {
			if os.Getenv("CI") != "" {
				t.Fatal("AUDITSTREAM_TEST_DATABASE_URL must be set in CI")
			}
			t.Skip("AUDITSTREAM_TEST_DATABASE_URL is not set")
		}
		schema := "archivetest_" + strings.ToLower(rand.Text())
		exec := func(sql string) {
			conn, err := pgx.Connect(context.Background(), dsn)
			require.NoError(t, err)
			defer conn.Close(context.Background())
			_, err = conn.Exec(context.Background(), sql)
			require.NoError(t, err)
		}
		exec("CREATE SCHEMA " + schema)
		t.Cleanup(func() { exec("DROP SCHEMA " + schema + " CASCADE") })
		u, err := url.Parse(dsn)
		require.NoError(t, err)
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		st, err := postgres.Open(t.Context(), u.String())
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, st.Close()) })
		require.NoError(t, st.Migrate(t.Context()))
		f(t, st)
	})
}

// recorder keeps the audit events a purge records.
type recorder struct {
	mu     sync.Mutex
	events []event.Input
	by     []event.Producer
	err    error
}

func (r *recorder) Record(_ context.Context, in event.Input, by event.Producer) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, in)
	r.by = append(r.by, by)
	return r.err
}

func (r *recorder) taken() []event.Input {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

const day = 24 * time.Hour

// TestPurgeByGroupRetention: each top-level group's events (its subgroups' and projects' too)
// are kept for the group's own retention, every other event for the instance default; the
// purge goes in small steps, follows the fake clock, and records one audit event per group
// that lost events and one for the rest. Both stores.
func TestPurgeByGroupRetention(t *testing.T) {
	t.Parallel()
	purgeStores(t, func(t *testing.T, st store.Store) {
		ctx := t.Context()
		mk := func(p store.NamespaceCreateParams) store.Namespace {
			p.Name, p.CreatedAt = p.FullPath, t0
			n, err := st.NamespaceCreate(ctx, p)
			require.NoError(t, err)
			return n
		}
		short := mk(store.NamespaceCreateParams{Kind: store.KindGroup, FullPath: "short"}) // keeps 7 days
		shortProj := mk(store.NamespaceCreateParams{Kind: store.KindProject, FullPath: "short/app", ParentKey: short.Key})
		long := mk(store.NamespaceCreateParams{Kind: store.KindGroup, FullPath: "long"})   // keeps 400 days
		plain := mk(store.NamespaceCreateParams{Kind: store.KindGroup, FullPath: "plain"}) // the default: 30 days
		require.NoError(t, st.RetentionSet(ctx, short.Key, 7*day))
		require.NoError(t, st.RetentionSet(ctx, long.Key, 400*day))

		now := t0
		var id int64
		var recs []store.EventRecord
		add := func(entityType string, entityID int64, age time.Duration) int64 {
			id++
			recs = append(recs, store.EventRecord{ID: id, CreatedAt: now.Add(-age), EventType: savedType,
				EntityType: entityType, EntityID: entityID, AuthorID: 1, Data: []byte(`{}`)})
			return id
		}
		// What each retention deletes now, and what it keeps.
		gone := []int64{
			add(event.EntityGroup, short.ID, 8*day), add(event.EntityProject, shortProj.ID, 7*day+time.Millisecond),
			add(event.EntityGroup, long.ID, 401*day),
			add(event.EntityGroup, plain.ID, 31*day), add(event.EntityUser, 5, 31*day), add(event.EntityInstance, 1, 60*day),
		}
		kept := []int64{
			add(event.EntityGroup, short.ID, 7*day), add(event.EntityProject, shortProj.ID, time.Hour),
			add(event.EntityGroup, long.ID, 399*day), add(event.EntityGroup, long.ID, 31*day),
			add(event.EntityGroup, plain.ID, 29*day), add(event.EntityUser, 5, 30*day-time.Second),
		}
		require.NoError(t, st.EventInsertMany(ctx, recs))

		rec := &recorder{}
		p := &archive.Purger{Store: st, Recorder: rec, Logger: discard, Batch: 2, NowFunc: func() time.Time { return now }}
		res, err := p.Purge(ctx, 30*day)
		require.NoError(t, err)
		require.Equal(t, int64(len(gone)), res.Deleted)
		require.Equal(t, map[int64]int64{short.Key: 2, long.Key: 1, plain.Key: 1, 0: 2}, res.ByGroup)
		for _, i := range gone {
			_, err := st.EventGet(ctx, i)
			require.ErrorIs(t, err, store.ErrNotFound, "event %d is past its retention", i)
		}
		for _, i := range kept {
			_, err := st.EventGet(ctx, i)
			require.NoError(t, err, "event %d is within its retention", i)
		}

		audit := rec.taken()
		require.Len(t, audit, 4, "one audit event per group that lost events, one for the instance")
		byPath := map[string]event.Input{}
		for _, in := range audit {
			require.Equal(t, archive.TypePurged, in.EventType)
			byPath[in.EntityPath] = in
		}
		require.Equal(t, event.EntityInstance, byPath[""].EntityType)
		g := byPath["short"]
		require.Equal(t, event.EntityGroup, g.EntityType)
		require.Equal(t, short.ID, *g.EntityID)
		var details map[string]any
		require.NoError(t, json.Unmarshal(g.Details, &details))
		require.Equal(t, 2.0, details["deleted_count"])
		require.Equal(t, 7.0, details["retention_days"])
		require.Contains(t, details["custom_message"], "Deleted 2 stored audit events created before")
		require.Contains(t, details["custom_message"], "the group's retention: 7 days")
		require.NoError(t, json.Unmarshal(byPath["plain"].Details, &details))
		require.Contains(t, details["custom_message"], "the instance's default retention: 30 days")
		require.Equal(t, event.ViaService, rec.by[0].Via)

		res, err = p.Purge(ctx, 30*day)
		require.NoError(t, err)
		require.Zero(t, res.Deleted, "nothing left to purge")
		require.Empty(t, rec.taken(), "a purge that deleted nothing records nothing")

		// Two days later the short group's 7-day-old event is gone too, and so are the plain
		// group's and the user's near 30 days; the owner of "long" shortens its retention and
		// its 31-day-old event goes with the 399-day one.
		now = now.Add(2 * day)
		require.NoError(t, st.RetentionSet(ctx, long.Key, 30*day))
		res, err = p.Purge(ctx, 30*day)
		require.NoError(t, err)
		require.Equal(t, map[int64]int64{short.Key: 1, long.Key: 2, plain.Key: 1, 0: 1}, res.ByGroup)

		// Removing a group's setting puts it back on the default; default 0 keeps everything
		// of groups without a setting, and of the instance.
		require.NoError(t, st.RetentionSet(ctx, short.Key, 0))
		require.NoError(t, st.RetentionSet(ctx, long.Key, 0))
		res, err = p.Purge(ctx, 0)
		require.NoError(t, err)
		require.Zero(t, res.Deleted)
		left, err := st.EventCount(ctx, store.EventListParams{})
		require.NoError(t, err)
		require.Equal(t, int64(1), left) // short/app's hour-old event
	})
}

// TestPurgeManySmallSteps: a purge examines at most Batch events a step, passes over events it
// keeps (a group with a long retention among old events) without reading them again, and
// deletes all it must.
func TestPurgeManySmallSteps(t *testing.T) {
	t.Parallel()
	purgeStores(t, func(t *testing.T, st store.Store) {
		ctx := t.Context()
		long, err := st.NamespaceCreate(ctx, store.NamespaceCreateParams{Kind: store.KindGroup, Name: "long", FullPath: "long", CreatedAt: t0})
		require.NoError(t, err)
		require.NoError(t, st.RetentionSet(ctx, long.Key, 365*day))
		var recs []store.EventRecord
		for i := range 2500 {
			entityType, entityID := event.EntityUser, int64(1)
			if i%2 == 0 {
				entityType, entityID = event.EntityGroup, long.ID
			}
			recs = append(recs, store.EventRecord{ID: int64(i + 1), CreatedAt: t0.Add(-48 * time.Hour).Add(time.Duration(i) * time.Millisecond),
				EventType: savedType, EntityType: entityType, EntityID: entityID, Data: []byte(`{}`)})
		}
		require.NoError(t, st.EventInsertMany(ctx, recs))
		counting := &countingStore{PurgeStore: st}
		var told []int64
		p := &archive.Purger{Store: counting, Logger: discard, Batch: 100, NowFunc: func() time.Time { return t0 },
			BeforeDelete: func(ctx context.Context, ids []int64) error {
				for _, id := range ids {
					_, err := st.EventGet(ctx, id)
					require.NoError(t, err, "told of event %d before it is deleted", id)
				}
				told = append(told, ids...)
				return nil
			}}
		res, err := p.Purge(ctx, day)
		require.NoError(t, err)
		require.Equal(t, int64(1250), res.Deleted)
		require.Len(t, told, 1250, "BeforeDelete is told every id the purge deletes")
		require.Equal(t, 26, counting.lists, "2,500 events in steps of 100, each read once, and the empty end")
		require.LessOrEqual(t, counting.maxDelete, 100)
		left, err := st.EventCount(ctx, store.EventListParams{})
		require.NoError(t, err)
		require.Equal(t, int64(1250), left, "the group's events are kept")
	})
}

type countingStore struct {
	archive.PurgeStore
	lists, maxDelete int
}

func (c *countingStore) EventAgeList(ctx context.Context, p store.EventAgeListParams) ([]store.EventAge, error) {
	c.lists++
	return c.PurgeStore.EventAgeList(ctx, p)
}

func (c *countingStore) EventDeleteMany(ctx context.Context, ids []int64) (int64, error) {
	c.maxDelete = max(c.maxDelete, len(ids))
	return c.PurgeStore.EventDeleteMany(ctx, ids)
}

// failingDelete fails every delete.
type failingDelete struct {
	archive.PurgeStore
	err error
}

func (f failingDelete) EventDeleteMany(context.Context, []int64) (int64, error) { return 0, f.err }

// TestPurgeReportsStoreFailure: a store failure ends the purge with the error, deleting nothing
// more, and records nothing that did not happen.
func TestPurgeReportsStoreFailure(t *testing.T) {
	t.Parallel()
	purgeStores(t, func(t *testing.T, st store.Store) {
		ctx := t.Context()
		require.NoError(t, st.EventInsertMany(ctx, []store.EventRecord{{ID: 1, CreatedAt: t0.Add(-2 * day), EventType: savedType,
			EntityType: event.EntityUser, EntityID: 1, Data: []byte(`{}`)}}))
		errDown := errors.New("database is down")
		rec := &recorder{}
		p := &archive.Purger{Store: failingDelete{PurgeStore: st, err: errDown}, Recorder: rec, Logger: discard, NowFunc: func() time.Time { return t0 }}
		_, err := p.Purge(ctx, day)
		require.ErrorIs(t, err, errDown)
		require.Empty(t, rec.taken())
		n, err := st.EventCount(ctx, store.EventListParams{})
		require.NoError(t, err)
		require.Equal(t, int64(1), n)
	})
}

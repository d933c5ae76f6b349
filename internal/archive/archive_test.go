package archive_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/auditstream/auditstream/internal/archive"
	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/eventlog"
	"github.com/auditstream/auditstream/internal/poll"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/store/sqlite"
)

// TestMain fails the package when a test leaves goroutines behind: Run must return when its
// context is cancelled.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var (
	discard = slog.New(slog.DiscardHandler)
	t0      = time.Date(2025, 10, 14, 18, 0, 8, 677_000_000, time.UTC)
)

// The catalog has the types these tests rely on.
const (
	savedType      = "user_created"             // saved_to_database: true
	streamOnlyType = "repository_git_operation" // saved_to_database: false
)

type fixture struct {
	ctx context.Context
	st  *sqlite.Store
	log *eventlog.Log
	cat *event.Catalog
}

// setup marks the test parallel and returns a fresh migrated SQLite store, a fresh embedded log
// and the default catalog.
func setup(t *testing.T) *fixture {
	t.Helper()
	t.Parallel()
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	require.NoError(t, st.Migrate(ctx))
	l, err := eventlog.Open(ctx, eventlog.Options{DataDir: t.TempDir(), Logger: discard})
	require.NoError(t, err)
	t.Cleanup(l.Close)
	cat, err := event.Load("")
	require.NoError(t, err)
	require.True(t, cat.Lookup(savedType).SavedToDatabase, "catalog changed: pick another saved type")
	require.False(t, cat.Lookup(streamOnlyType).SavedToDatabase, "catalog changed: pick another stream-only type")
	return &fixture{ctx: ctx, st: st, log: l, cat: cat}
}

func (f *fixture) archiver(st archive.Store) *archive.Archiver {
	return &archive.Archiver{Store: st, Log: f.log, Catalog: f.cat, Logger: discard}
}

// run runs a.Run until the test ends and checks that it returns once its context is cancelled.
func run(t *testing.T, a *archive.Archiver) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				require.ErrorIs(t, err, context.Canceled)
			case <-time.After(10 * time.Second):
				t.Error("Run did not return within 10s of its context being cancelled")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// stored waits until n events are in the store.
func (f *fixture) stored(t *testing.T, n int) {
	t.Helper()
	poll.Until(t, 20*time.Second, func() error {
		if got := f.count(t); got != int64(n) {
			return fmt.Errorf("%d events stored, want %d", got, n)
		}
		return nil
	})
}

// caughtUp waits until the archive's consumer has acked everything in the log. Right after a
// consumer is created JetStream may report 0 pending for a moment, so tests first wait for
// what must be stored.
func (f *fixture) caughtUp(t *testing.T) {
	t.Helper()
	poll.Until(t, 15*time.Second, func() error {
		lag, err := f.log.ConsumerLag(f.ctx, archive.ConsumerName)
		if err != nil {
			return err
		}
		if lag != 0 {
			return fmt.Errorf("lag %d", lag)
		}
		return nil
	})
}

// published is an event body as ingest publishes it (no id) and the sequence the log gave it.
type published struct {
	ev   event.Event
	body []byte
	seq  int64
}

func ev(eventType string, entityType string, entityID, authorID int64, at time.Time) event.Event {
	return event.Event{
		AuthorID: authorID, AuthorName: "Alice", EntityID: entityID, EntityType: entityType,
		EntityPath: "acme/api", Details: json.RawMessage(`{"custom_message":"hi","from":1}`),
		IPAddress: "192.0.2.1", TargetID: json.RawMessage(`7`), TargetType: "User",
		CreatedAt: at, EventType: eventType,
	}
}

func (f *fixture) publish(t *testing.T, events ...event.Event) []published {
	t.Helper()
	msgs := make([]eventlog.Message, len(events))
	for i := range events {
		msgs[i] = eventlog.Message{Subject: eventlog.Subject(eventlog.RootGroup(1), events[i].EventType), Data: events[i].AppendJSON(nil)}
	}
	seqs, err := f.log.Publish(f.ctx, msgs)
	require.NoError(t, err)
	out := make([]published, len(events))
	for i := range events {
		out[i] = published{ev: events[i], body: msgs[i].Data, seq: seqs[i]}
	}
	return out
}

func (f *fixture) count(t *testing.T) int64 {
	t.Helper()
	n, err := f.st.EventCount(f.ctx, store.EventListParams{})
	require.NoError(t, err)
	return n
}

// requireStored checks that each event is stored once, as the REST API will read it.
func (f *fixture) requireStored(t *testing.T, events []published) {
	t.Helper()
	for _, p := range events {
		rec, err := f.st.EventGet(f.ctx, p.seq)
		require.NoError(t, err, "event %d", p.seq)
		require.Equal(t, string(event.AppendWithID(nil, p.body, p.seq)), string(rec.Data), "the stored JSON is the streamed JSON with its id")
		require.Equal(t, p.seq, rec.ID)
		require.Equal(t, p.ev.EventType, rec.EventType)
		require.Equal(t, p.ev.EntityType, rec.EntityType)
		require.Equal(t, p.ev.EntityID, rec.EntityID)
		require.Equal(t, p.ev.AuthorID, rec.AuthorID)
		require.Equal(t, p.ev.CreatedAt.UTC().Truncate(time.Millisecond), rec.CreatedAt)
	}
}

func TestArchiveStoresSavedTypesOnly(t *testing.T) {
	f := setup(t)
	var inserted, skipped atomic.Int64
	a := f.archiver(f.st)
	a.Metrics = archive.Metrics{
		Inserted: func(n int) { inserted.Add(int64(n)) },
		Skipped:  func(n int) { skipped.Add(int64(n)) },
	}

	// Some events before the archive starts, some while it runs.
	before := f.publish(t,
		ev(savedType, event.EntityGroup, 10, 1, t0),
		ev(streamOnlyType, event.EntityProject, 11, 2, t0.Add(time.Second)),
		ev(savedType, event.EntityProject, 11, 3, t0.Add(2*time.Second)),
	)
	run(t, a)
	after := f.publish(t,
		ev(savedType, event.EntityUser, 12, 4, t0.Add(3*time.Second)),
		ev(streamOnlyType, event.EntityProject, 11, 2, t0.Add(4*time.Second)),
		ev(savedType, event.EntityInstance, 1, 5, t0.Add(5*time.Second)),
	)
	saved := []published{before[0], before[2], after[0], after[2]}
	streamOnly := []published{before[1], after[1]}

	f.stored(t, len(saved))
	f.caughtUp(t)
	require.Equal(t, int64(len(saved)), f.count(t))
	poll.Until(t, 10*time.Second, func() error { // the metrics are told after each insert
		if inserted.Load() != int64(len(saved)) || skipped.Load() != int64(len(streamOnly)) {
			return fmt.Errorf("inserted %d, skipped %d", inserted.Load(), skipped.Load())
		}
		return nil
	})
	f.requireStored(t, saved)
	for _, p := range streamOnly {
		_, err := f.st.EventGet(f.ctx, p.seq)
		require.ErrorIs(t, err, store.ErrNotFound, "a stream-only event (%d) must not be stored", p.seq)
	}
	require.Equal(t, int64(len(saved)), inserted.Load())
	require.Equal(t, int64(len(streamOnly)), skipped.Load())
}

func TestArchiveKeepsTypesUnknownToItsCatalog(t *testing.T) {
	f := setup(t)
	// Another replica with a newer catalog published a type this one does not know.
	p := f.publish(t, ev("type_from_a_newer_catalog", event.EntityGroup, 10, 1, t0))
	require.Nil(t, f.cat.Lookup("type_from_a_newer_catalog"))
	run(t, f.archiver(f.st))
	f.stored(t, 1)
	f.caughtUp(t)
	f.requireStored(t, p)
}

func TestArchiveSkipsUnreadableEvents(t *testing.T) {
	f := setup(t)
	seqs, err := f.log.Publish(f.ctx, []eventlog.Message{
		{Subject: eventlog.Subject(eventlog.RootGroup(1), savedType), Data: []byte(`not json`)},
	})
	require.NoError(t, err)
	good := f.publish(t, ev(savedType, event.EntityGroup, 10, 1, t0))

	run(t, f.archiver(f.st))
	f.stored(t, 1)
	f.caughtUp(t)
	f.requireStored(t, good)
	_, err = f.st.EventGet(f.ctx, seqs[0])
	require.ErrorIs(t, err, store.ErrNotFound)
	require.Equal(t, int64(1), f.count(t), "an unreadable event must not block the ones after it")
}

// storeFuncs adapts functions to archive.Store.
type storeFuncs struct {
	insert       func(ctx context.Context, events []store.EventRecord) error
	deleteBefore func(ctx context.Context, t time.Time, limit int) (int64, error)
	list         func(ctx context.Context, p store.EventListParams) ([]store.EventRecord, error)
}

func (s storeFuncs) EventInsertMany(ctx context.Context, events []store.EventRecord) error {
	return s.insert(ctx, events)
}

func (s storeFuncs) EventDeleteBefore(ctx context.Context, t time.Time, limit int) (int64, error) {
	return s.deleteBefore(ctx, t, limit)
}

func (s storeFuncs) EventList(ctx context.Context, p store.EventListParams) ([]store.EventRecord, error) {
	return s.list(ctx, p)
}

func TestArchiveRecoversFromStoreFailures(t *testing.T) {
	t.Parallel()
	errDown := errors.New("database is down")
	for _, tc := range []struct {
		name string
		// wrap returns the store's insert for the call-th insert (1-based).
		insert func(real *sqlite.Store) func(call int, ctx context.Context, events []store.EventRecord) error
	}{
		{"first two inserts fail", func(real *sqlite.Store) func(int, context.Context, []store.EventRecord) error {
			return func(call int, ctx context.Context, events []store.EventRecord) error {
				if call <= 2 {
					return errDown
				}
				return real.EventInsertMany(ctx, events)
			}
		}},
		// The process dies after the commit and before the ack: the batch comes back and must
		// not be stored twice.
		{"first two inserts commit but report failure", func(real *sqlite.Store) func(int, context.Context, []store.EventRecord) error {
			return func(call int, ctx context.Context, events []store.EventRecord) error {
				err := real.EventInsertMany(ctx, events)
				if call <= 2 {
					return errors.Join(errDown, err)
				}
				return err
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := setup(t)
			var calls atomic.Int64
			insert := tc.insert(f.st)
			a := f.archiver(storeFuncs{insert: func(ctx context.Context, events []store.EventRecord) error {
				return insert(int(calls.Add(1)), ctx, events)
			}})
			a.Batch = 7 // several batches

			var events []event.Event
			for i := range 30 {
				events = append(events, ev(savedType, event.EntityGroup, 10, int64(i+1), t0.Add(time.Duration(i)*time.Second)))
			}
			pub := f.publish(t, events...)
			run(t, a)

			f.stored(t, len(pub))
			f.caughtUp(t)
			require.Greater(t, calls.Load(), int64(2), "the failed batches were retried")
			require.Equal(t, int64(len(pub)), f.count(t), "each event stored exactly once")
			f.requireStored(t, pub)
		})
	}
}

func TestPurge(t *testing.T) {
	f := setup(t)
	now := t0
	a := f.archiver(f.st)
	a.NowFunc = func() time.Time { return now }
	const retention = 24 * time.Hour
	cutoff := now.Add(-retention)

	ages := map[int64]time.Time{
		1: cutoff.Add(-30 * 24 * time.Hour),
		2: cutoff.Add(-time.Millisecond), // just older than the retention
		3: cutoff,                        // exactly as old as the retention: kept
		4: cutoff.Add(time.Millisecond),
		5: now,
	}
	var recs []store.EventRecord
	for id, at := range ages {
		recs = append(recs, store.EventRecord{ID: id, CreatedAt: at, EventType: savedType, EntityType: event.EntityUser, EntityID: 1, Data: []byte(`{}`)})
	}
	require.NoError(t, f.st.EventInsertMany(f.ctx, recs))

	n, err := a.Purge(f.ctx, 0)
	require.NoError(t, err)
	require.Zero(t, n, "retention 0 keeps everything")
	n, err = a.Purge(f.ctx, -time.Hour)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, int64(5), f.count(t))

	n, err = a.Purge(f.ctx, retention)
	require.NoError(t, err)
	require.Equal(t, int64(2), n)
	for id := range ages {
		_, err := f.st.EventGet(f.ctx, id)
		if id <= 2 {
			require.ErrorIs(t, err, store.ErrNotFound, "event %d is older than the retention", id)
		} else {
			require.NoError(t, err, "event %d is within the retention", id)
		}
	}

	n, err = a.Purge(f.ctx, retention)
	require.NoError(t, err)
	require.Zero(t, n, "nothing left to purge")

	// The clock moves on: what was within the retention ages out.
	now = now.Add(retention)
	n, err = a.Purge(f.ctx, retention)
	require.NoError(t, err)
	require.Equal(t, int64(2), n) // 3 and 4
	require.Equal(t, int64(1), f.count(t))
}

func TestPurgeManySteps(t *testing.T) {
	f := setup(t)
	a := f.archiver(f.st)
	a.NowFunc = func() time.Time { return t0 }
	const old = 10_001 // more than one step of 10,000
	recs := make([]store.EventRecord, 0, old+1)
	for i := range old {
		recs = append(recs, store.EventRecord{ID: int64(i + 1), CreatedAt: t0.Add(-48 * time.Hour).Add(time.Duration(i) * time.Millisecond),
			EventType: savedType, EntityType: event.EntityUser, EntityID: 1, Data: []byte(`{}`)})
	}
	recs = append(recs, store.EventRecord{ID: old + 1, CreatedAt: t0, EventType: savedType, EntityType: event.EntityUser, EntityID: 1, Data: []byte(`{}`)})
	require.NoError(t, f.st.EventInsertMany(f.ctx, recs))

	var told []int64
	a.BeforePurge = func(_ context.Context, ids []int64) error {
		require.Equal(t, int64(old+1), f.count(t), "told before anything is deleted")
		told = append(told, ids...)
		return nil
	}
	n, err := a.Purge(f.ctx, 24*time.Hour)
	require.NoError(t, err)
	require.Equal(t, int64(old), n)
	require.Equal(t, int64(1), f.count(t))
	require.Len(t, told, old, "every id the purge deletes, in pages")
	for i, id := range told {
		require.Equal(t, int64(i+1), id)
	}
}

func TestPurgeReportsStoreFailure(t *testing.T) {
	f := setup(t)
	errDown := errors.New("database is down")
	a := f.archiver(storeFuncs{deleteBefore: func(context.Context, time.Time, int) (int64, error) { return 0, errDown }})
	_, err := a.Purge(f.ctx, time.Hour)
	require.ErrorIs(t, err, errDown)
}

func TestRunReturnsWhenCancelled(t *testing.T) {
	f := setup(t)
	stop := run(t, f.archiver(f.st))
	// Wait until the consumer exists, so that Run is past its start-up.
	poll.Until(t, 10*time.Second, func() error {
		_, err := f.log.ConsumerLag(f.ctx, archive.ConsumerName)
		return err
	})
	stop() // fails the test unless Run returns context.Canceled promptly

	// A consumer that stopped leaves new events for the next run, losing none.
	p := f.publish(t, ev(savedType, event.EntityGroup, 10, 1, t0))
	poll.Until(t, 10*time.Second, func() error {
		lag, err := f.log.ConsumerLag(f.ctx, archive.ConsumerName)
		if err != nil || lag != 1 {
			return fmt.Errorf("lag %d, %v; want 1", lag, err)
		}
		return nil
	})
	require.Zero(t, f.count(t), "nothing consumes after Run returned")
	run(t, f.archiver(f.st))
	f.stored(t, 1)
	f.caughtUp(t)
	f.requireStored(t, p)
}

package trail_test

import (
	"context"
	"database/sql"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/trail"
)

// countingStore counts the stored events the Prover reads.
type countingStore struct {
	trail.ProverStore
	events atomic.Int64
}

func (c *countingStore) EventList(ctx context.Context, p store.EventListParams) ([]store.EventRecord, error) {
	recs, err := c.ProverStore.EventList(ctx, p)
	c.events.Add(int64(len(recs)))
	return recs, err
}

// tamper changes the store behind its back.
func (f *fixture) tamper(t *testing.T, query string, args ...any) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+f.db+"?_pragma=busy_timeout(10000)")
	require.NoError(t, err)
	defer db.Close()
	_, err = db.ExecContext(f.ctx, query, args...)
	require.NoError(t, err)
}

// setData changes an event's stored bytes.
func (f *fixture) setData(t *testing.T, id int64, data []byte) {
	t.Helper()
	f.tamper(t, `UPDATE events SET data = ? WHERE id = ?`, data, id)
}

// TestAuditChecksWhatWasAdded: the service's audit reads only what was added since the last
// one (or since the latest checkpoint at its start), so its cost does not grow with the
// history; it still finds an event changed after it was stored, a forked checkpoint at once,
// and an old event changed after it was checked at the next full audit.
func TestAuditChecksWhatWasAdded(t *testing.T) {
	f := setup(t)
	run(t, f.writer(&trail.Status{}))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	status := &trail.Status{}
	auditor := func() (*trail.Auditor, *countingStore) {
		cs := &countingStore{ProverStore: f.st}
		return &trail.Auditor{Prover: &trail.Prover{Store: cs, VerifierKey: f.key.VerifierKey}, Keys: []string{f.key.VerifierKey},
			UpTo: f.st.TrailSize, Status: status, Logger: discard, FullEvery: time.Hour, Now: func() time.Time { return now }}, cs
	}
	checker := func(a *trail.Auditor, cs *countingStore) func(t *testing.T, reads int64) error {
		return func(t *testing.T, reads int64) error {
			t.Helper()
			cs.events.Store(0)
			err := a.Check(f.ctx)
			require.Equal(t, reads, cs.events.Load(), "stored events read")
			return err
		}
	}

	// A service that starts before its first checkpoint checks every event.
	fresh := checker(auditor())
	require.NoError(t, fresh(t, 0))
	f.publish(t, 30) // ids 1-30, 20 of them stored
	f.checkpointed(t, 30)
	require.NoError(t, fresh(t, 20))

	check := checker(auditor())
	failed := func(t *testing.T, err error, id int64, reason string) {
		t.Helper()
		fail, ok := errors.AsType[*trail.Failure](err)
		require.True(t, ok, "%v", err)
		require.Equal(t, reason, fail.Reason, "%v", fail)
		require.Equal(t, id, fail.ID, "%v", fail)
		require.Contains(t, status.Problems()[0], "audit failed")
	}

	// The first audit after a start takes the latest checkpoint's stored tree, which makes
	// its signed root, and reads no event.
	require.NoError(t, check(t, 0))
	f.setData(t, 1, []byte(`{"id":1,"event_type":"user_created"}`))
	require.NoError(t, check(t, 0), "event 1 was before the audits started: the next full one checks it")

	// Then each reads the events added since.
	f.publish(t, 30)
	f.checkpointed(t, 60)
	require.NoError(t, check(t, 20))
	require.NoError(t, check(t, 0))

	// An event changed after it was stored, before the audit that checks it.
	f.publish(t, 30)
	f.setData(t, 61, []byte(`{"id":61,"event_type":"user_created"}`))
	f.checkpointed(t, 90)
	failed(t, check(t, 20), 61, trail.ReasonAltered)
	failed(t, check(t, 20), 61, trail.ReasonAltered) // until it passes
	f.setData(t, 61, f.data[61])
	require.NoError(t, check(t, 20))
	require.Empty(t, status.Problems())

	// A checkpoint that forks the tree at an earlier size, stored since the last audit.
	forked := trail.Checkpoint{Origin: "test.example/trail", Size: 45, Root: tlog.RecordHash([]byte("another history"))}
	msg, err := note.Sign(&note.Note{Text: string(forked.Format())}, f.key.Signer)
	require.NoError(t, err)
	c, err := f.st.TrailCheckpointAdd(f.ctx, store.TrailCheckpoint{Size: 45, Note: msg})
	require.NoError(t, err)
	failed(t, check(t, 0), 0, trail.ReasonInconsistent)
	require.Contains(t, status.Problems()[0], "fork: the checkpoint of size 45")
	f.tamper(t, `DELETE FROM trail_checkpoints WHERE id = ?`, c.ID)
	require.NoError(t, check(t, 0))

	// The full audit, within FullEvery of the start, reads everything and finds event 1.
	now = now.Add(time.Hour)
	failed(t, check(t, 60), 1, trail.ReasonAltered)
	f.setData(t, 1, f.data[1])
	require.NoError(t, check(t, 60), "a full audit that failed is full again")
	require.NoError(t, check(t, 0), "the next full one is FullEvery later")
	require.Empty(t, status.Problems())
}

// TestAuditCountsALostEventOnce: the leaf of an event the log lost without a copy, read again
// by each audit while the store has not reached a checkpoint that covers it, is counted once.
func TestAuditCountsALostEventOnce(t *testing.T) {
	f := setup(t)
	upTo := int64(0)
	status := &trail.Status{}
	a := &trail.Auditor{Prover: f.prover(), Keys: []string{f.key.VerifierKey}, Status: status, Logger: discard,
		UpTo: func(context.Context) (int64, error) { return upTo, nil }, FullEvery: time.Hour}
	require.NoError(t, a.Check(f.ctx)) // before the first checkpoint: from the empty tree

	f.publish(t, 6) // ids 1-6, 3 and 6 stream-only
	// 3 is lost before the tree has it, and is not stored.
	require.NoError(t, f.stream(t).DeleteMsg(f.ctx, 3))
	run(t, f.writer(&trail.Status{}))
	f.checkpointed(t, 6)

	upTo = 5 // the store short of the checkpoint: each audit reads 1-5 again
	for range 3 {
		require.NoError(t, a.Check(f.ctx))
	}
	upTo = 6
	for range 2 {
		require.NoError(t, a.Check(f.ctx))
	}
	require.Equal(t, []string{"the tree records 1 event(s) the log lost without a copy in the store, the first id 3"}, status.Problems())
}

// TestAuditReadsEverythingWhenTheLatestTreeCannotBeRead: an audit that cannot read the stored
// tree of the latest checkpoint at start does not leave the audits off until the full one: it
// is full.
func TestAuditReadsEverythingWhenTheLatestTreeCannotBeRead(t *testing.T) {
	f := setup(t)
	run(t, f.writer(&trail.Status{}))
	f.publish(t, 300) // 200 stored; leaf 256 on makes a tile of level 1
	f.checkpointed(t, 300)
	f.tamper(t, `DELETE FROM trail_tiles WHERE level = 1`)

	cs := &countingStore{ProverStore: f.st}
	a := &trail.Auditor{Prover: &trail.Prover{Store: cs, VerifierKey: f.key.VerifierKey}, Keys: []string{f.key.VerifierKey},
		UpTo: f.st.TrailSize, Status: &trail.Status{}, Logger: discard, FullEvery: time.Hour}
	require.NoError(t, a.Check(f.ctx))
	require.EqualValues(t, 200, cs.events.Load(), "every stored event read")
}

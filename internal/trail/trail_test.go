package trail_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/eventlog"
	"github.com/auditstream/auditstream/internal/natstest"
	"github.com/auditstream/auditstream/internal/poll"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/store/sqlite"
	"github.com/auditstream/auditstream/internal/trail"
)

// TestMain checks that no goroutine outlives the tests. opencensus, which the GCS library of
// the bucket tests imports, starts one worker for the whole process.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"))
}

var discard = slog.New(slog.DiscardHandler)

const (
	savedType      = "user_created"             // saved_to_database: true
	streamOnlyType = "repository_git_operation" // saved_to_database: false
)

type fixture struct {
	ctx  context.Context
	st   *sqlite.Store
	db   string // the store's file
	log  *eventlog.Log
	url  string // the embedded log's NATS listener
	cat  *event.Catalog
	key  trail.Key
	data map[int64][]byte // every published event's leaf bytes, by id
}

func setup(t *testing.T) *fixture {
	t.Helper()
	t.Parallel()
	ctx := t.Context()
	db := filepath.Join(t.TempDir(), "db")
	st, err := sqlite.Open(ctx, db)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	require.NoError(t, st.Migrate(ctx))
	port := natstest.FreePort(t)
	l, err := eventlog.Open(ctx, eventlog.Options{DataDir: t.TempDir(), Logger: discard, Listen: fmt.Sprintf("127.0.0.1:%d", port)})
	require.NoError(t, err)
	t.Cleanup(l.Close)
	cat, err := event.Load("")
	require.NoError(t, err)
	skey, _, err := trail.GenerateKey("test.example/trail")
	require.NoError(t, err)
	key, err := trail.ParseKey(skey)
	require.NoError(t, err)
	return &fixture{ctx: ctx, st: st, db: db, log: l, url: fmt.Sprintf("nats://127.0.0.1:%d", port), cat: cat, key: key, data: map[int64][]byte{}}
}

// publish appends n events (every third stream-only) and stores the saved ones, as the
// archive would.
func (f *fixture) publish(t *testing.T, n int) []int64 {
	t.Helper()
	msgs := make([]eventlog.Message, n)
	types := make([]string, n)
	for i := range msgs {
		typ := savedType
		if i%3 == 2 {
			typ = streamOnlyType
		}
		types[i] = typ
		e := event.Event{AuthorID: int64(i), AuthorName: "Alice", EntityID: 1, EntityType: event.EntityGroup, EntityPath: "acme",
			Details: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)), CreatedAt: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond), EventType: typ}
		msgs[i] = eventlog.Message{Subject: eventlog.Subject(eventlog.RootGroup(1), typ), Data: e.AppendJSON(nil)}
	}
	seqs, err := f.log.Publish(f.ctx, msgs)
	require.NoError(t, err)
	var recs []store.EventRecord
	for i, seq := range seqs {
		data := event.AppendWithID(nil, msgs[i].Data, seq)
		f.data[seq] = data
		if types[i] == savedType {
			recs = append(recs, store.EventRecord{ID: seq, CreatedAt: time.Now(), EventType: types[i], EntityType: event.EntityGroup, EntityID: 1, Data: data})
		}
	}
	require.NoError(t, f.st.EventInsertMany(f.ctx, recs))
	return seqs
}

// stream returns the log's JetStream stream, for a test to lose messages from.
func (f *fixture) stream(t *testing.T) jetstream.Stream {
	t.Helper()
	nc, err := nats.Connect(f.url)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	s, err := js.Stream(f.ctx, eventlog.StreamName)
	require.NoError(t, err)
	return s
}

func (f *fixture) writer(status *trail.Status) *trail.Writer {
	return &trail.Writer{Store: f.st, Log: f.log, Catalog: f.cat, Signer: f.key.Signer, Origin: "test.example/trail",
		CheckpointEvents: 1000, CheckpointInterval: 50 * time.Millisecond, Batch: 400, Logger: discard, Status: status}
}

// run runs w until the test ends and checks that it returns once its context ends.
func run(t *testing.T, w *trail.Writer) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(10 * time.Second):
				t.Error("Run did not return within 10s of its context ending")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// checkpointed waits until a checkpoint of size n is signed and returns it.
func (f *fixture) checkpointed(t *testing.T, n int64) trail.Checkpoint {
	t.Helper()
	var cp trail.Checkpoint
	poll.Until(t, 20*time.Second, func() error {
		c, err := f.st.TrailCheckpointLatest(f.ctx)
		if err != nil {
			return err
		}
		if c.Size != n {
			return fmt.Errorf("latest checkpoint of size %d, want %d", c.Size, n)
		}
		v, err := note.NewVerifier(f.key.VerifierKey)
		require.NoError(t, err)
		nt, err := note.Open(c.Note, note.VerifierList(v))
		require.NoError(t, err)
		cp, err = trail.ParseCheckpoint([]byte(nt.Text))
		require.NoError(t, err)
		return nil
	})
	return cp
}

// rootOf is the root of the tree whose leaves are the given ids' bytes, as an auditor
// computes it from the events alone.
func rootOf(t *testing.T, leaves [][]byte) tlog.Hash {
	t.Helper()
	var hashes []tlog.Hash
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = hashes[x]
		}
		return out, nil
	})
	for i, l := range leaves {
		hs, err := tlog.StoredHashes(int64(i), l, r)
		require.NoError(t, err)
		hashes = append(hashes, hs...)
	}
	root, err := tlog.TreeHash(int64(len(leaves)), r)
	require.NoError(t, err)
	return root
}

func (f *fixture) leaves(upTo int64) [][]byte {
	out := make([][]byte, 0, upTo)
	for id := int64(1); id <= upTo; id++ {
		out = append(out, f.data[id])
	}
	return out
}

func (f *fixture) prover() *trail.Prover {
	return &trail.Prover{Store: f.st, VerifierKey: f.key.VerifierKey}
}

func (f *fixture) verify(opts ...func(*trail.Verifier)) (trail.Report, error) {
	v := &trail.Verifier{Keys: []string{f.key.VerifierKey}, Page: 700}
	for _, o := range opts {
		o(v)
	}
	return v.Verify(f.ctx, f.prover())
}

// TestWriterTreeIsTheLog: every event of the log, stored or stream-only, is a leaf in id order
// whose bytes are the streamed JSON with its id; checkpoints are signed tlog-checkpoints of
// that tree, every N events and after T; inclusion and consistency proofs check out with
// tlog; Verify passes.
func TestWriterTreeIsTheLog(t *testing.T) {
	f := setup(t)
	f.publish(t, 1500) // before the writer starts
	var appended, checkpoints int
	var mu sync.Mutex
	w := f.writer(nil)
	w.Metrics = trail.Metrics{Appended: func(n int) { mu.Lock(); appended += n; mu.Unlock() }, Checkpoints: func(n int) { mu.Lock(); checkpoints += n; mu.Unlock() }}
	run(t, w)
	f.checkpointed(t, 1500)
	f.publish(t, 1001) // while it runs
	cp := f.checkpointed(t, 2501)
	require.Equal(t, "test.example/trail", cp.Origin)
	require.Equal(t, rootOf(t, f.leaves(2501)), cp.Root, "an auditor computes the root from the events' bytes alone")
	mu.Lock()
	require.Equal(t, 2501, appended)
	require.GreaterOrEqual(t, checkpoints, 2)
	mu.Unlock()

	p := f.prover()
	for _, id := range []int64{1, 2, 3, 999, 1500, 2501} {
		leafHash, proof, err := p.Inclusion(f.ctx, id, 2501)
		require.NoError(t, err)
		require.Equal(t, tlog.RecordHash(f.data[id]), leafHash)
		require.NoError(t, tlog.CheckRecord(proof, 2501, cp.Root, id-1, leafHash), "id %d", id)
	}
	_, _, err := p.Inclusion(f.ctx, 2502, 2501)
	require.ErrorIs(t, err, trail.ErrNotInTree)
	_, _, err = p.Inclusion(f.ctx, 1, 9999)
	require.ErrorIs(t, err, trail.ErrBadSize)

	old := rootOf(t, f.leaves(1500))
	proof, err := p.Consistency(f.ctx, 1500, 2501)
	require.NoError(t, err)
	require.NoError(t, tlog.CheckTree(proof, 2501, cp.Root, 1500, old))
	_, err = p.Consistency(f.ctx, 2501, 1500)
	require.ErrorIs(t, err, trail.ErrBadSize)

	leaves, err := p.Leaves(f.ctx, 2, 3)
	require.NoError(t, err)
	require.Len(t, leaves, 3)
	require.Equal(t, []int64{2, 3, 4}, []int64{leaves[0].ID, leaves[1].ID, leaves[2].ID})
	require.Equal(t, store.TrailStored, leaves[0].Kind)
	require.Equal(t, store.TrailStreamOnly, leaves[1].Kind)
	require.Nil(t, leaves[1].Event, "stream-only events are not stored")
	require.Equal(t, f.data[2], leaves[0].Event)

	rep, err := f.verify()
	require.NoError(t, err)
	require.EqualValues(t, 2501, rep.Size)
	require.EqualValues(t, 1000+668, rep.Events, "the stored two thirds of each batch")
}

// TestWriterFillsWhatTheLogLost: ids the log lost become leaves from the store's copies, or the
// lost placeholder when the store has none; each is an ERROR, a metric and a Status problem
// naming the ids, and Verify names the first lost id.
func TestWriterFillsWhatTheLogLost(t *testing.T) {
	f := setup(t)
	f.publish(t, 10)
	status := &trail.Status{}
	stop := run(t, f.writer(status))
	f.checkpointed(t, 10)
	stop()

	f.publish(t, 6) // ids 11-16: 13 and 16 stream-only, the others stored
	s := f.stream(t)
	for _, seq := range []uint64{11, 12, 13} { // the log loses 11-13 (as a cut block file would)
		require.NoError(t, s.DeleteMsg(f.ctx, seq))
	}
	var lost, recovered int
	var mu sync.Mutex
	w := f.writer(status)
	w.Metrics = trail.Metrics{Lost: func(n int) { mu.Lock(); lost += n; mu.Unlock() }, Recovered: func(n int) { mu.Lock(); recovered += n; mu.Unlock() }}
	run(t, w)
	cp := f.checkpointed(t, 16)
	mu.Lock()
	require.Equal(t, 1, lost)
	require.Equal(t, 2, recovered)
	mu.Unlock()
	require.Len(t, status.Problems(), 1)
	require.Contains(t, status.Problems()[0], "the log lost ids 11-13")
	require.Contains(t, status.Problems()[0], "(ids 13)")

	leaves := f.leaves(16)
	leaves[12] = trail.LostLeaf(13)
	require.Equal(t, rootOf(t, leaves), cp.Root, "12 and 11 from the store's copies, the same bytes; 13 the placeholder")

	_, err := f.verify()
	var fail *trail.Failure
	require.ErrorAs(t, err, &fail)
	require.Equal(t, int64(13), fail.ID)
	require.Equal(t, trail.ReasonLost, fail.Reason)

	// The log loses events the tree already has: a writer that starts says which.
	for _, seq := range []uint64{5, 6, 15} {
		require.NoError(t, s.DeleteMsg(f.ctx, seq))
	}
	holes, err := f.log.Holes(f.ctx)
	require.NoError(t, err)
	require.Equal(t, []int64{5, 6, 11, 12, 13, 15}, holes)
	later := &trail.Status{}
	run(t, f.writer(later))
	poll.Until(t, 10*time.Second, func() error {
		if len(later.Problems()) == 0 {
			return errors.New("no problem reported yet")
		}
		return nil
	})
	require.Equal(t, []string{"the log lost 6 event(s) the tree already has, ids 5-6,11-13,15: the log can no longer deliver or replay them (the tree keeps their leaves, the store the stored ones: auditstream trail republish delivers those)"},
		later.Problems())

	// The service's audit says so too: a problem for as long as the holes last, an ERROR line
	// when they change, not at every audit.
	var logged bytes.Buffer
	audited := &trail.Status{}
	a := &trail.Auditor{Holes: f.log.Holes, Size: f.st.TrailSize, Status: audited,
		Logger: slog.New(slog.NewTextHandler(&logged, nil)), UpTo: func(context.Context) (int64, error) { return 0, nil }}
	require.NoError(t, a.Check(f.ctx))
	require.NoError(t, a.Check(f.ctx))
	require.Equal(t, later.Problems(), audited.Problems())
	require.Equal(t, 1, strings.Count(logged.String(), "level=ERROR"), logged.String())
	require.NoError(t, s.DeleteMsg(f.ctx, 7))
	require.NoError(t, a.Check(f.ctx))
	require.Equal(t, 2, strings.Count(logged.String(), "level=ERROR"), logged.String())
	require.Contains(t, audited.Problems()[0], "ids 5-7,11-13,15")
}

// TestWriterStartsOnAnOlderStore: a trail added to a service whose log no longer holds its
// first events (aged out) makes their leaves from the store, without calling it a loss.
func TestWriterStartsOnAnOlderStore(t *testing.T) {
	f := setup(t)
	var recs []store.EventRecord
	for id := int64(1); id <= 25; id++ {
		data := []byte(fmt.Sprintf(`{"id":%d,"event_type":"user_created","details":{"n":%d}}`, id, id))
		f.data[id] = data
		recs = append(recs, store.EventRecord{ID: id, CreatedAt: time.Now(), EventType: savedType, EntityType: event.EntityInstance, Data: data})
	}
	require.NoError(t, f.st.EventInsertMany(f.ctx, recs))
	require.NoError(t, f.log.EnsureAfter(f.ctx, 25)) // as the service does at start
	f.publish(t, 5)                                  // ids 26-30
	status := &trail.Status{}
	run(t, f.writer(status))
	cp := f.checkpointed(t, 30)
	require.Equal(t, rootOf(t, f.leaves(30)), cp.Root)
	require.Empty(t, status.Problems(), "a backfill is not a loss")
	rep, err := f.verify()
	require.NoError(t, err)
	require.EqualValues(t, 25, rep.Recovered)
}

// TestVerifyUpToTheStoredWatermark: a stored event the tree has but the store does not yet
// (after the service's stored_up_to) is counted as not yet stored, not missing; a row deleted
// at or before the watermark still fails, naming its id.
func TestVerifyUpToTheStoredWatermark(t *testing.T) {
	f := setup(t)
	f.publish(t, 9) // ids 3, 6 and 9 stream-only
	run(t, f.writer(nil))
	f.checkpointed(t, 9)
	_, err := f.st.EventDeleteMany(f.ctx, []int64{8}) // 8 is still on its way to the store
	require.NoError(t, err)

	_, err = f.verify()
	var fail *trail.Failure
	require.ErrorAs(t, err, &fail, "without the watermark a stored leaf without its event is missing")
	require.Equal(t, int64(8), fail.ID)
	require.Equal(t, trail.ReasonMissing, fail.Reason)

	watermark := int64(7)
	upTo := func(v *trail.Verifier) { v.StoredUpTo = &watermark }
	rep, err := f.verify(upTo)
	require.NoError(t, err)
	require.EqualValues(t, 9, rep.Size)
	require.EqualValues(t, 1, rep.NotYetStored)
	require.EqualValues(t, 5, rep.Events, "1, 2, 4, 5 and 7")

	_, err = f.st.EventDeleteMany(f.ctx, []int64{4}) // a row deleted behind the watermark
	require.NoError(t, err)
	_, err = f.verify(upTo)
	require.ErrorAs(t, err, &fail)
	require.Equal(t, int64(4), fail.ID)
	require.Equal(t, trail.ReasonMissing, fail.Reason)
}

package eventlog_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/auditstream/auditstream/internal/eventlog"
	"github.com/auditstream/auditstream/internal/poll"
)

// TestMain fails the package when a test leaves goroutines behind: every Log is closed and
// every Consume returns before its test ends.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var discard = slog.New(slog.DiscardHandler)

// open starts an embedded log on dir and closes it when the test ends.
func open(t *testing.T, dir string) *eventlog.Log {
	t.Helper()
	l, err := eventlog.Open(t.Context(), eventlog.Options{DataDir: dir, Logger: discard})
	require.NoError(t, err)
	t.Cleanup(l.Close)
	return l
}

// setup marks the test parallel and returns a log on a fresh data directory.
func setup(t *testing.T) (context.Context, *eventlog.Log) {
	t.Helper()
	t.Parallel()
	return t.Context(), open(t, t.TempDir())
}

func messages(subject string, n, from int) []eventlog.Message {
	msgs := make([]eventlog.Message, n)
	for i := range msgs {
		msgs[i] = eventlog.Message{Subject: subject, Data: fmt.Appendf(nil, `{"n":%d}`, from+i)}
	}
	return msgs
}

func messageCount(t *testing.T, ctx context.Context, l *eventlog.Log) uint64 {
	t.Helper()
	info, err := l.Info(ctx)
	require.NoError(t, err)
	return info.Messages
}

// recorder is a handler that records every delivery, and whose result can be scripted.
type recorder struct {
	mu         sync.Mutex
	deliveries []eventlog.Delivered // every delivery, also of failed batches
	handled    []eventlog.Delivered // deliveries of batches the handler succeeded on
	fail       func(call int) error // nil: always succeed
	calls      int
}

func (r *recorder) handle(_ context.Context, batch []eventlog.Delivered) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	for _, d := range batch {
		d.Data = slices.Clone(d.Data)
		r.deliveries = append(r.deliveries, d)
	}
	if r.fail != nil {
		if err := r.fail(r.calls); err != nil {
			return err
		}
	}
	for _, d := range batch {
		d.Data = slices.Clone(d.Data)
		r.handled = append(r.handled, d)
	}
	return nil
}

func (r *recorder) handledSnapshot() []eventlog.Delivered {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.handled)
}

func (r *recorder) deliveriesSnapshot() []eventlog.Delivered {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.deliveries)
}

// consume runs Consume in a goroutine until the test ends (or stop is called) and checks that it
// returns the context's error.
func consume(t *testing.T, l *eventlog.Log, opts eventlog.ConsumerOptions, h eventlog.Handler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Consume(ctx, opts, discard, h) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				require.ErrorIs(t, err, context.Canceled)
			case <-time.After(10 * time.Second):
				t.Error("Consume did not return within 10s of its context being cancelled")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// handledAtLeast polls until the recorder's handler succeeded on at least n deliveries.
func (r *recorder) handledAtLeast(t *testing.T, n int) {
	t.Helper()
	poll.Until(t, 10*time.Second, func() error {
		if got := len(r.handledSnapshot()); got < n {
			return fmt.Errorf("%d handled, want %d", got, n)
		}
		return nil
	})
}

// lagIs polls ConsumerLag until it is want. Right after a consumer is created JetStream may
// report 0 pending for a moment, so a wait for 0 follows a wait for what must be handled.
func lagIs(t *testing.T, l *eventlog.Log, durable string, want uint64) {
	t.Helper()
	poll.Until(t, 10*time.Second, func() error {
		lag, err := l.ConsumerLag(t.Context(), durable)
		if err != nil {
			return err
		}
		if lag != want {
			return fmt.Errorf("lag %d, want %d", lag, want)
		}
		return nil
	})
}

func TestPublishReturnsIncreasingSequencesInOrder(t *testing.T) {
	ctx, l := setup(t)

	seqs, err := l.Publish(ctx, messages("audit.g1.e", 200, 0))
	require.NoError(t, err)
	require.Len(t, seqs, 200)
	for i, s := range seqs {
		require.Equal(t, int64(i+1), s, "message %d", i)
	}

	// A single message (the synchronous path) and a second batch continue the sequence.
	one, err := l.Publish(ctx, messages("audit.g1.e", 1, 200))
	require.NoError(t, err)
	require.Equal(t, []int64{201}, one)
	more, err := l.Publish(ctx, messages("audit.instance.e", 3, 201))
	require.NoError(t, err)
	require.Equal(t, []int64{202, 203, 204}, more)

	info, err := l.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(204), info.Messages)
	require.Equal(t, uint64(1), info.FirstSeq)
	require.Equal(t, uint64(204), info.LastSeq)
	require.NotZero(t, info.Bytes)

	none, err := l.Publish(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, none)
}

func TestPublishDuplicateMsgIDReturnsOriginalSequence(t *testing.T) {
	ctx, l := setup(t)

	first, err := l.Publish(ctx, []eventlog.Message{
		{Subject: "audit.g1.e", Data: []byte(`{"n":0}`), MsgID: "key-a"},
		{Subject: "audit.g1.e", Data: []byte(`{"n":1}`)},
		{Subject: "audit.g1.e", Data: []byte(`{"n":2}`), MsgID: "key-b"},
	})
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2, 3}, first)
	require.Equal(t, uint64(3), messageCount(t, ctx, l))

	// A retry of one message (synchronous path).
	again, err := l.Publish(ctx, []eventlog.Message{{Subject: "audit.g1.e", Data: []byte(`{"n":0}`), MsgID: "key-a"}})
	require.NoError(t, err)
	require.Equal(t, []int64{1}, again)
	require.Equal(t, uint64(3), messageCount(t, ctx, l), "a duplicate must not be appended")

	// A retried batch mixing known and new keys (asynchronous path): known keys get their
	// original sequence, new ones are appended.
	retry, err := l.Publish(ctx, []eventlog.Message{
		{Subject: "audit.g1.e", Data: []byte(`{"n":2}`), MsgID: "key-b"},
		{Subject: "audit.g1.e", Data: []byte(`{"n":3}`), MsgID: "key-c"},
		{Subject: "audit.g1.e", Data: []byte(`{"n":0}`), MsgID: "key-a"},
	})
	require.NoError(t, err)
	require.Equal(t, []int64{3, 4, 1}, retry)
	require.Equal(t, uint64(4), messageCount(t, ctx, l))

	// The same key twice in one batch is appended once.
	twice, err := l.Publish(ctx, []eventlog.Message{
		{Subject: "audit.g1.e", Data: []byte(`{"n":5}`), MsgID: "key-d"},
		{Subject: "audit.g1.e", Data: []byte(`{"n":5}`), MsgID: "key-d"},
	})
	require.NoError(t, err)
	require.Equal(t, []int64{5, 5}, twice)
	require.Equal(t, uint64(5), messageCount(t, ctx, l))

	// Messages without a key are never deduplicated.
	plain, err := l.Publish(ctx, []eventlog.Message{{Subject: "audit.g1.e", Data: []byte(`{"n":1}`)}})
	require.NoError(t, err)
	require.Equal(t, []int64{6}, plain)
}

func TestSubject(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		root, eventType, want string
	}{
		{eventlog.RootGroup(42), "user_created", "audit.g42.user_created"},
		{eventlog.RootGroup(1), "x", "audit.g1.x"},
		{eventlog.RootGroup(9_007_199_254_740_993), "x", "audit.g9007199254740993.x"},
		{eventlog.RootInstance, "application_setting_updated", "audit.instance.application_setting_updated"},
		{eventlog.RootUser, "user_email_changed", "audit.user.user_email_changed"},
	} {
		require.Equal(t, tc.want, eventlog.Subject(tc.root, tc.eventType))
	}
	require.Equal(t, "g7", eventlog.RootGroup(7))
}

func TestConsumeDeliversEveryMessageOnce(t *testing.T) {
	ctx, l := setup(t)
	const n = 1_200 // more than one default batch of 500
	msgs := messages("audit.g1.e", n, 0)
	seqs, err := l.Publish(ctx, msgs)
	require.NoError(t, err)
	want := map[int64]string{}
	for i, s := range seqs {
		want[s] = string(msgs[i].Data)
	}

	var rec recorder
	consume(t, l, eventlog.ConsumerOptions{Durable: "once"}, rec.handle)
	rec.handledAtLeast(t, n)
	lagIs(t, l, "once", 0)

	// Every message was acked: nothing more can come, so what was handled is final.
	got := rec.handledSnapshot()
	require.Len(t, got, n)
	seen := map[int64]string{}
	for _, d := range got {
		require.NotContains(t, seen, d.Seq, "seq %d delivered twice", d.Seq)
		seen[d.Seq] = string(d.Data)
		require.Equal(t, uint64(1), d.NumDelivered)
		require.Equal(t, "audit.g1.e", d.Subject)
	}
	require.Equal(t, want, seen, "each delivery's Seq must be the sequence Publish returned for its data")
	require.Equal(t, n, len(rec.deliveriesSnapshot()))
}

func TestConsumeRedeliversAfterHandlerError(t *testing.T) {
	ctx, l := setup(t)
	seqs, err := l.Publish(ctx, messages("audit.g1.e", 50, 0))
	require.NoError(t, err)

	failure := errors.New("store down")
	rec := recorder{fail: func(call int) error {
		if call <= 2 {
			return failure
		}
		return nil
	}}
	consume(t, l, eventlog.ConsumerOptions{Durable: "retry", Batch: 20}, rec.handle)
	rec.handledAtLeast(t, len(seqs))
	lagIs(t, l, "retry", 0)

	handled := map[int64]bool{}
	for _, d := range rec.handledSnapshot() {
		require.False(t, handled[d.Seq], "seq %d handled twice", d.Seq)
		handled[d.Seq] = true
	}
	for _, s := range seqs {
		require.True(t, handled[s], "seq %d was lost", s)
	}
	require.Len(t, handled, len(seqs))

	redelivered := 0
	for _, d := range rec.handledSnapshot() {
		if d.NumDelivered > 1 {
			redelivered++
		}
	}
	require.NotZero(t, redelivered, "the failed batch must come back with NumDelivered > 1")
	require.Greater(t, len(rec.deliveriesSnapshot()), len(seqs))
}

func TestConsumerResumesAfterReopen(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()

	l, err := eventlog.Open(ctx, eventlog.Options{DataDir: dir, Logger: discard})
	require.NoError(t, err)
	_, err = l.Publish(ctx, messages("audit.g1.e", 100, 0))
	require.NoError(t, err)
	var before recorder
	stop := consume(t, l, eventlog.ConsumerOptions{Durable: "resume"}, before.handle)
	before.handledAtLeast(t, 100)
	lagIs(t, l, "resume", 0)
	stop()
	l.Close()
	require.Len(t, before.handledSnapshot(), 100)

	l = open(t, dir)
	info, err := l.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(100), info.Messages, "the log keeps its messages across a restart")
	seqs, err := l.Publish(ctx, messages("audit.g1.e", 10, 100))
	require.NoError(t, err)
	require.Equal(t, []int64{101, 102, 103, 104, 105, 106, 107, 108, 109, 110}, seqs)

	var after recorder
	consume(t, l, eventlog.ConsumerOptions{Durable: "resume"}, after.handle)
	after.handledAtLeast(t, 10)
	lagIs(t, l, "resume", 0)
	var got []int64
	for _, d := range after.handledSnapshot() {
		got = append(got, d.Seq)
		require.Equal(t, uint64(1), d.NumDelivered)
	}
	require.Equal(t, seqs, got, "after a restart the consumer must see exactly the messages it had not acked")
}

func TestConsumerLag(t *testing.T) {
	ctx, l := setup(t)

	_, err := l.ConsumerLag(ctx, "nobody")
	require.ErrorIs(t, err, eventlog.ErrUnavailable, "lag of a consumer that does not exist")

	_, err = l.Publish(ctx, messages("audit.g1.e", 5, 0))
	require.NoError(t, err)

	release := make(chan struct{})
	var rec recorder
	consume(t, l, eventlog.ConsumerOptions{Durable: "lag"}, func(ctx context.Context, batch []eventlog.Delivered) error {
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		return rec.handle(ctx, batch)
	})
	// Nothing is acked while the handler holds the batch: all 5 are pending or in flight.
	lagIs(t, l, "lag", 5)
	close(release)
	rec.handledAtLeast(t, 5)
	lagIs(t, l, "lag", 0)
	require.Len(t, rec.handledSnapshot(), 5)

	_, err = l.Publish(ctx, messages("audit.g1.e", 3, 5))
	require.NoError(t, err)
	rec.handledAtLeast(t, 8)
	lagIs(t, l, "lag", 0)
	require.Len(t, rec.handledSnapshot(), 8)
}

func TestConsumeFilterSubjects(t *testing.T) {
	ctx, l := setup(t)
	subjects := []string{
		"audit.g1.a", "audit.g2.a", "audit.instance.b", "audit.g1.b", "audit.user.c", "audit.g12.a",
	}
	want := map[int64]string{}
	for _, s := range subjects {
		seqs, err := l.Publish(ctx, []eventlog.Message{{Subject: s, Data: []byte(`{}`)}})
		require.NoError(t, err)
		if s == "audit.g1.a" || s == "audit.g1.b" || s == "audit.instance.b" {
			want[seqs[0]] = s
		}
	}

	var rec recorder
	consume(t, l, eventlog.ConsumerOptions{Durable: "filtered", FilterSubjects: []string{"audit.g1.>", "audit.instance.>"}}, rec.handle)
	rec.handledAtLeast(t, len(want))
	lagIs(t, l, "filtered", 0)
	got := map[int64]string{}
	for _, d := range rec.handledSnapshot() {
		got[d.Seq] = d.Subject
	}
	require.Equal(t, want, got)
}

func TestClosedLogIsUnavailable(t *testing.T) {
	ctx, l := setup(t)
	require.True(t, l.Ready())
	_, err := l.Publish(ctx, messages("audit.g1.e", 1, 0))
	require.NoError(t, err)

	l.Close()
	require.False(t, l.Ready())
	l.Close() // idempotent

	_, err = l.Publish(ctx, messages("audit.g1.e", 1, 0))
	require.ErrorIs(t, err, eventlog.ErrUnavailable, "single message")
	_, err = l.Publish(ctx, messages("audit.g1.e", 3, 0))
	require.ErrorIs(t, err, eventlog.ErrUnavailable, "batch")
	_, err = l.Info(ctx)
	require.ErrorIs(t, err, eventlog.ErrUnavailable)
	_, err = l.ConsumerLag(ctx, "any")
	require.ErrorIs(t, err, eventlog.ErrUnavailable)
}

func TestPublishCancelledContext(t *testing.T) {
	ctx, l := setup(t)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err := l.Publish(cctx, messages("audit.g1.e", 1, 0))
	require.ErrorIs(t, err, eventlog.ErrUnavailable)
}

// EnsureAfter advances an empty log past the store's last id and refuses a non-empty log that
// is behind it.
func TestEnsureAfter(t *testing.T) {
	ctx, l := setup(t)
	require.NoError(t, l.EnsureAfter(ctx, 0), "an empty store needs nothing")
	require.NoError(t, l.EnsureAfter(ctx, 41))
	ids, err := l.Publish(ctx, []eventlog.Message{{Subject: eventlog.Subject(eventlog.RootInstance, "user_created"), Data: []byte(`{}`)}})
	require.NoError(t, err)
	require.Equal(t, []int64{42}, ids, "the next id follows the store's last")
	require.NoError(t, l.EnsureAfter(ctx, 42), "level with the store")
	require.NoError(t, l.EnsureAfter(ctx, 10), "ahead of the store (it lags) is normal")
	require.ErrorIs(t, l.EnsureAfter(ctx, 100), eventlog.ErrBehind)
}

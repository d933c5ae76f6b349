package eventlog_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/eventlog"
	"github.com/auditstream/auditstream/internal/natstest"
	"github.com/auditstream/auditstream/internal/poll"
)

// TestReaderReadsInOrderFromAPosition: a reader starts after the position it is given, reads
// every event in order with its namespace header, says how many follow, and waits for more.
func TestReaderReadsInOrderFromAPosition(t *testing.T) {
	ctx, l := setup(t)
	msgs := messages("audit.g1.user_created", 5, 0)
	msgs[2].Namespace = eventlog.FormatNamespace([]int64{9, 1}, true)
	ids, err := l.Publish(ctx, msgs)
	require.NoError(t, err)
	r, err := l.NewReader(ctx, ids[1])
	require.NoError(t, err)
	defer r.Close()
	for i, want := range ids[2:] {
		ev, err := r.Next(ctx, 5*time.Second)
		require.NoError(t, err)
		require.Equal(t, want, ev.Seq)
		require.Equal(t, "audit.g1.user_created", ev.Subject)
		require.EqualValues(t, len(ids)-3-i, ev.Pending)
		if i == 0 {
			chain, project, ok := eventlog.ParseNamespace(ev.Namespace)
			require.True(t, ok)
			require.True(t, project)
			require.Equal(t, []int64{9, 1}, chain)
		} else {
			require.Empty(t, ev.Namespace)
		}
	}
	_, err = r.Next(ctx, 50*time.Millisecond)
	require.True(t, errors.Is(err, eventlog.ErrNoEvent), "%v", err)
	more, err := l.Publish(ctx, messages("audit.user.user_created", 1, 5))
	require.NoError(t, err)
	ev, err := r.Next(ctx, 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, more[0], ev.Seq)
}

// TestSeqAtAndBacklog: the first event at or after a time, and what waits after a position
// on given subjects.
func TestSeqAtAndBacklog(t *testing.T) {
	ctx, l := setup(t)
	before, err := l.Publish(ctx, messages("audit.g1.user_created", 3, 0))
	require.NoError(t, err)
	mid := time.Now()
	poll.Until(t, time.Second, func() error { // a later instant than the events above
		if !time.Now().After(mid) {
			return errors.New("same instant")
		}
		return nil
	})
	after, err := l.Publish(ctx, append(messages("audit.g2.user_created", 2, 3), messages("audit.g1.user_created", 1, 5)...))
	require.NoError(t, err)
	seq, err := l.SeqAt(ctx, mid)
	require.NoError(t, err)
	require.Equal(t, after[0], seq)
	seq, err = l.SeqAt(ctx, time.Now().Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, after[2]+1, seq, "nothing stored since: the next id")

	b, err := l.Backlog(ctx, []string{"audit.g1.>"}, before[1])
	require.NoError(t, err)
	require.EqualValues(t, 2, b.Pending, "one of g1 before the time, one after")
	require.False(t, b.OldestPending.IsZero())
	b, err = l.Backlog(ctx, nil, before[0])
	require.NoError(t, err)
	require.EqualValues(t, 5, b.Pending)
	b, err = l.Backlog(ctx, nil, after[2])
	require.NoError(t, err)
	require.Zero(t, b.Pending)
	require.True(t, b.OldestPending.IsZero())
	names, err := l.ConsumerNames(ctx, "")
	require.NoError(t, err)
	require.Empty(t, names, "the consumers made for one look are gone")
}

func TestParseNamespaceRefusesMalformed(t *testing.T) {
	for _, v := range []string{"", "g:", "x:1", "g:1,,2", "g:0", "g:-3", "p:a"} {
		_, _, ok := eventlog.ParseNamespace(v)
		require.False(t, ok, v)
	}
	chain, project, ok := eventlog.ParseNamespace(eventlog.FormatNamespace([]int64{3, 2, 1}, false))
	require.True(t, ok)
	require.False(t, project)
	require.Equal(t, []int64{3, 2, 1}, chain)
}

// TestReaderMovesWhenItsServerGoesAway: on a cluster, the server that holds a reader's
// consumer goes away. The reader goes on from where it was, on another server, within seconds:
// with nats.go's own short waits it waited for good (the CI failure of TestClusterOfReplicas).
func TestReaderMovesWhenItsServerGoesAway(t *testing.T) {
	t.Parallel()
	c := natstest.StartCluster(t, 3)
	ctx := t.Context()
	l, err := eventlog.Open(ctx, eventlog.Options{URL: c.URL(), Logger: discard})
	require.NoError(t, err)
	t.Cleanup(l.Close)
	require.Equal(t, 3, l.Replicas())
	first, err := l.Publish(ctx, messages("audit.g1.user_created", 1, 0))
	require.NoError(t, err)
	r, err := l.NewReader(ctx, 0)
	require.NoError(t, err)
	defer r.Close()
	ev, err := r.Next(ctx, 10*time.Second)
	require.NoError(t, err)
	require.Equal(t, first[0], ev.Seq)

	names, err := l.ConsumerNames(ctx, "")
	require.NoError(t, err)
	require.Len(t, names, 1, "the reader's consumer")
	cons, err := c.JetStream(t).Consumer(ctx, "AUDIT_EVENTS", names[0])
	require.NoError(t, err)
	host := c.Node(cons.CachedInfo().Cluster.Leader)
	require.NotNil(t, host)
	host.Shutdown()

	var next []int64
	poll.Until(t, 30*time.Second, func() error { // the stream elects a leader among the two left
		next, err = l.Publish(ctx, messages("audit.g1.user_created", 1, 1))
		return err
	})
	start := time.Now()
	for {
		ev, err := r.Next(ctx, 200*time.Millisecond) // the engine's wait
		if err == nil {
			require.Equal(t, first[0]+1, ev.Seq, "nothing skipped or read twice")
			require.Equal(t, next[0], ev.Seq)
			t.Logf("read on after %s", time.Since(start).Round(time.Millisecond))
			return
		}
		require.ErrorIs(t, err, eventlog.ErrNoEvent)
		require.Less(t, time.Since(start), 30*time.Second, "the reader did not move to another server")
	}
}

// readAll reads n events from r and requires them to be the ids from first on, in order.
func readAll(t *testing.T, r *eventlog.Reader, first int64, n int) {
	t.Helper()
	for i := range n {
		ev, err := r.Next(t.Context(), 5*time.Second)
		require.NoError(t, err)
		require.Equal(t, first+int64(i), ev.Seq, "nothing skipped or read twice")
	}
}

// publishMany publishes n events in requests of 1,000 and returns their ids.
func publishMany(t *testing.T, l *eventlog.Log, n int) []int64 {
	t.Helper()
	var ids []int64
	for i := 0; i < n; i += 1000 {
		got, err := l.Publish(t.Context(), messages("audit.g1.user_created", min(1000, n-i), i))
		require.NoError(t, err)
		ids = append(ids, got...)
	}
	return ids
}

// readerAtTheEnd returns a reader after id that has read to the end of the log: it follows
// the tail.
func readerAtTheEnd(t *testing.T, l *eventlog.Log, after int64) *eventlog.Reader {
	t.Helper()
	r, err := l.NewReader(t.Context(), after)
	require.NoError(t, err)
	t.Cleanup(r.Close)
	for {
		_, err := r.Next(t.Context(), 10*time.Millisecond)
		if errors.Is(err, eventlog.ErrNoEvent) {
			return r
		}
		require.NoError(t, err)
	}
}

// consumers polls until the log has n consumers.
func consumers(t *testing.T, l *eventlog.Log, n int) {
	t.Helper()
	poll.Until(t, 10*time.Second, func() error {
		names, err := l.ConsumerNames(t.Context(), "")
		if err != nil {
			return err
		}
		if len(names) != n {
			return fmt.Errorf("%d consumers, want %d", len(names), n)
		}
		return nil
	})
}

// TestReadersAtTheEndShareOneConsumer: readers that follow the end of the log (the delivery
// engine's and the trail's) read it through one consumer, each every event in order; the
// consumer goes when the last of them does.
func TestReadersAtTheEndShareOneConsumer(t *testing.T) {
	_, l := setup(t)
	ids := publishMany(t, l, 3)
	a := readerAtTheEnd(t, l, 0) // its consumer becomes the tail
	b := readerAtTheEnd(t, l, ids[2])
	consumers(t, l, 1)

	more := publishMany(t, l, 5)
	readAll(t, a, more[0], 5)
	readAll(t, b, more[0], 5)
	consumers(t, l, 1)
	a.Close()
	last := publishMany(t, l, 1)
	readAll(t, b, last[0], 1)
	b.Close()
	consumers(t, l, 0)
}

// TestReaderThatFallsBehindTheTailReadsOnItsOwn: readers on the tail that do not read while
// more events come than the tail holds for them lose none of them, nor read one twice; once
// they have caught up they share one consumer again.
func TestReaderThatFallsBehindTheTailReadsOnItsOwn(t *testing.T) {
	_, l := setup(t)
	ids := publishMany(t, l, 1)
	a := readerAtTheEnd(t, l, 0)
	b := readerAtTheEnd(t, l, ids[0])
	consumers(t, l, 1)

	n := eventlog.TailBuffer + 1000
	more := publishMany(t, l, n) // neither reads meanwhile: both leave the tail
	readAll(t, a, more[0], n)
	readAll(t, b, more[0], n)
	for _, r := range []*eventlog.Reader{a, b} {
		_, err := r.Next(t.Context(), 10*time.Millisecond) // caught up: on the tail again
		require.ErrorIs(t, err, eventlog.ErrNoEvent)
	}
	consumers(t, l, 1)
	last := publishMany(t, l, 1)
	readAll(t, a, last[0], 1)
	readAll(t, b, last[0], 1)
}

// TestReaderFarBehindDoesNotTakeTheTail: a reader that starts far behind the end reads on its
// own; the reader at the end keeps the tail and reads new events without waiting for it.
func TestReaderFarBehindDoesNotTakeTheTail(t *testing.T) {
	_, l := setup(t)
	ids := publishMany(t, l, 6000)
	end := readerAtTheEnd(t, l, ids[len(ids)-1])
	behind, err := l.NewReader(t.Context(), 0)
	require.NoError(t, err)
	defer behind.Close()
	readAll(t, behind, ids[0], 1)
	consumers(t, l, 2)

	more := publishMany(t, l, 1)
	readAll(t, end, more[0], 1)
	readAll(t, behind, ids[1], len(ids)-1)
	readAll(t, behind, more[0], 1)
	_, err = behind.Next(t.Context(), 10*time.Millisecond)
	require.ErrorIs(t, err, eventlog.ErrNoEvent)
	consumers(t, l, 1)
}

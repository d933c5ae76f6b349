package eventlog_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/eventlog"
)

// holders counts who holds a lease and whether two ever held it at once.
type holders struct {
	mu      sync.Mutex
	current map[string]bool
	overlap atomic.Bool
	took    map[string]int
}

func (h *holders) job(name string) func(ctx context.Context) {
	return func(ctx context.Context) {
		h.mu.Lock()
		if len(h.current) > 0 {
			h.overlap.Store(true)
		}
		h.current[name] = true
		h.took[name]++
		h.mu.Unlock()
		<-ctx.Done()
		h.mu.Lock()
		delete(h.current, name)
		h.mu.Unlock()
	}
}

func (h *holders) holder() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	for n := range h.current {
		return n
	}
	return ""
}

// listening opens an embedded log that also listens on loopback, and returns its NATS URL.
func listening(t *testing.T) (*eventlog.Log, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	a, err := eventlog.Open(t.Context(), eventlog.Options{DataDir: t.TempDir(), Listen: "127.0.0.1:" + strconv.Itoa(port), Logger: discard})
	require.NoError(t, err)
	t.Cleanup(a.Close)
	return a, fmt.Sprintf("nats://127.0.0.1:%d", port)
}

// twoProcesses opens a listening embedded log and a second connection to it, as two replicas
// would be; closeB closes the second (once).
func twoProcesses(t *testing.T) (a, b *eventlog.Log, closeB func()) {
	t.Helper()
	a, url := listening(t)
	b, err := eventlog.Open(t.Context(), eventlog.Options{URL: url, Logger: discard})
	require.NoError(t, err)
	closeB = sync.OnceFunc(b.Close)
	t.Cleanup(closeB)
	return a, b, closeB
}

// TestLeasesFailOver runs a job under one lease from two connections of one log: one holds it
// at a time; when its holder stops, the other takes over at once (released); when its holder's
// connection dies without releasing, the other takes over within the TTL.
func TestLeasesFailOver(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	a, b, closeB := twoProcesses(t)
	require.Equal(t, 1, b.Replicas(), "a single server gets one replica")

	const ttl = 1500 * time.Millisecond
	la, err := a.Leases(ctx, ttl)
	require.NoError(t, err)
	lb, err := b.Leases(ctx, ttl)
	require.NoError(t, err)

	h := &holders{current: map[string]bool{}, took: map[string]int{}}
	ctxA, stopA := context.WithCancel(ctx)
	doneA := make(chan struct{})
	go func() { defer close(doneA); la.Run(ctxA, "job", h.job("a")) }()
	eventually(t, 5*time.Second, func() error {
		if h.holder() != "a" {
			return fmt.Errorf("holder %q", h.holder())
		}
		return nil
	})
	ctxB, stopB := context.WithCancel(ctx)
	doneB := make(chan struct{})
	go func() { defer close(doneB); lb.Run(ctxB, "job", h.job("b")) }()

	// a keeps it across several renewals.
	deadline := time.Now().Add(2 * ttl)
	for time.Now().Before(deadline) {
		require.Equal(t, "a", h.holder(), "the holder keeps its lease while it renews")
		time.Sleep(50 * time.Millisecond) // sampling over two TTLs, not waiting for a condition
	}

	// a stops: it releases, and b takes over well within the TTL.
	stopped := time.Now()
	stopA()
	<-doneA
	eventually(t, ttl, func() error {
		if h.holder() != "b" {
			return fmt.Errorf("holder %q", h.holder())
		}
		return nil
	})
	t.Logf("taken over %v after a release", time.Since(stopped).Round(time.Millisecond))

	// a comes back and waits; b's connection dies without releasing: a takes over after the TTL.
	ctxA, stopA = context.WithCancel(ctx)
	defer stopA()
	doneA = make(chan struct{})
	go func() { defer close(doneA); la.Run(ctxA, "job", h.job("a")) }()
	died := time.Now()
	closeB()
	eventually(t, 3*ttl, func() error {
		if h.holder() != "a" {
			return fmt.Errorf("holder %q", h.holder())
		}
		return nil
	})
	t.Logf("taken over %v after the holder died", time.Since(died).Round(time.Millisecond))
	stopB()
	<-doneB
	stopA()
	<-doneA
	require.False(t, h.overlap.Load(), "two holders at once")
}

// TestRewindToAckFloor: events fetched and not acknowledged come again, first and in order,
// after a rewind; acknowledged ones do not.
func TestRewindToAckFloor(t *testing.T) {
	ctx, l := setup(t)
	spec := eventlog.ConsumerSpec{Durable: "dest-1", StartAt: time.Now().Add(-time.Minute), AckWait: time.Minute}
	_, err := l.EnsureConsumer(ctx, spec)
	require.NoError(t, err)
	require.NoError(t, l.RewindToAckFloor(ctx, "dest-1"), "nothing in flight")
	ids, err := l.Publish(ctx, messages("audit.g1.user_created", 10, 0))
	require.NoError(t, err)
	got, err := l.Fetch(ctx, "dest-1", 6, time.Second, true)
	require.NoError(t, err)
	require.Len(t, got, 6)
	for _, d := range got[:3] {
		require.NoError(t, d.Ack())
	}
	eventually(t, 5*time.Second, func() error {
		st, err := l.ConsumerBacklog(ctx, "dest-1", "")
		if err != nil {
			return err
		}
		if st.Pending != 7 {
			return fmt.Errorf("%d pending, want 7 once the acks are in", st.Pending)
		}
		return nil
	})
	require.NoError(t, l.RewindToAckFloor(ctx, "dest-1"))
	var seqs []int64
	eventually(t, 5*time.Second, func() error {
		more, err := l.Fetch(ctx, "dest-1", 10, 100*time.Millisecond, true)
		if err != nil {
			return err
		}
		for _, d := range more {
			seqs = append(seqs, d.Seq)
			require.NoError(t, d.Ack())
		}
		if len(seqs) < 7 {
			return fmt.Errorf("%d of 7 events", len(seqs))
		}
		return nil
	})
	require.Equal(t, ids[3:], seqs, "the unacknowledged events come first, in order, then the rest")

	// The consumer is still the destination's: a later change of its settings applies, and it
	// keeps its position.
	spec.MaxAckPending = 10
	created, err := l.EnsureConsumer(ctx, spec)
	require.NoError(t, err, "updating a rewound consumer")
	require.False(t, created)
	more, err := l.Publish(ctx, messages("audit.g1.user_created", 1, 10))
	require.NoError(t, err)
	got, err = l.Fetch(ctx, "dest-1", 10, time.Second, true)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, more[0], got[0].Seq)
}

// TestBoardSharesRecords: what one process puts, another reads, but not its own; a record not
// put again within the TTL stops counting.
func TestBoardSharesRecords(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	a, b, _ := twoProcesses(t)
	const ttl = time.Second
	bctx, stop := context.WithCancel(ctx)
	defer stop()
	ba, err := a.Board(bctx, ttl)
	require.NoError(t, err)
	bb, err := b.Board(bctx, ttl)
	require.NoError(t, err)

	require.NoError(t, ba.Put(ctx, "dest.1", []byte(`a1`)))
	require.NoError(t, bb.Put(ctx, "dest.1", []byte(`b1`)))
	eventually(t, 5*time.Second, func() error {
		if got := bb.Others("dest.1"); len(got) != 1 || string(got[0]) != "a1" {
			return fmt.Errorf("b sees %q", got)
		}
		if got := ba.Others("dest.1"); len(got) != 1 || string(got[0]) != "b1" {
			return fmt.Errorf("a sees %q", got)
		}
		return nil
	})
	require.Empty(t, ba.Others("dest.2"))
	require.NoError(t, ba.Put(ctx, "dest.1", []byte(`a2`)))
	eventually(t, 5*time.Second, func() error {
		if got := bb.Others("dest.1"); len(got) != 1 || string(got[0]) != "a2" {
			return fmt.Errorf("b sees %q", got)
		}
		return nil
	})
	// a stops putting: after the TTL its record no longer counts.
	eventually(t, 5*ttl, func() error {
		if got := bb.Others("dest.1"); len(got) != 0 {
			return fmt.Errorf("b still sees %q", got)
		}
		return nil
	})
}

// TestTooManyReplicas: asking for more replicas than NATS has servers fails at once, naming
// the flag that fixes it.
func TestTooManyReplicas(t *testing.T) {
	t.Parallel()
	_, url := listening(t)
	start := time.Now()
	_, err := eventlog.Open(t.Context(), eventlog.Options{URL: url, Replicas: 3, Logger: discard})
	require.ErrorContains(t, err, "set --nats-replicas")
	require.Less(t, time.Since(start), 10*time.Second, "refused at once, not retried")
}

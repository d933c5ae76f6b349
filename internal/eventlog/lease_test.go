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
	"github.com/auditstream/auditstream/internal/poll"
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
	poll.Until(t, 5*time.Second, func() error {
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
	poll.Until(t, ttl, func() error {
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
	poll.Until(t, 3*ttl, func() error {
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
	poll.Until(t, 5*time.Second, func() error {
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
	poll.Until(t, 5*time.Second, func() error {
		if got := bb.Others("dest.1"); len(got) != 1 || string(got[0]) != "a2" {
			return fmt.Errorf("b sees %q", got)
		}
		return nil
	})
	// a stops putting: after the TTL its record no longer counts.
	poll.Until(t, 5*ttl, func() error {
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

package eventlog_test

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/eventlog"
)

// TestNotices: a notice published by one process reaches the others following the topic,
// and only them: not its publisher, not another topic, not after Close.
func TestNotices(t *testing.T) {
	t.Parallel()
	a, b, _ := twoProcesses(t)
	got := func() (chan []byte, func([]byte)) {
		ch := make(chan []byte, 16)
		return ch, func(d []byte) { ch <- append([]byte(nil), d...) }
	}
	aGot, aOn := got()
	bGot, bOn := got()
	otherGot, otherOn := got()
	na, err := a.Notices("tree", aOn)
	require.NoError(t, err)
	t.Cleanup(na.Close)
	nb, err := b.Notices("tree", bOn)
	require.NoError(t, err)
	t.Cleanup(nb.Close)
	other, err := b.Notices("other", otherOn)
	require.NoError(t, err)
	t.Cleanup(other.Close)

	require.NoError(t, na.Publish([]byte("moved 7")))
	select {
	case d := <-bGot:
		require.Equal(t, "moved 7", string(d))
	case <-time.After(5 * time.Second):
		t.Fatal("the notice did not arrive")
	}
	require.NoError(t, nb.Publish([]byte("moved 8")))
	select {
	case d := <-aGot:
		require.Equal(t, "moved 8", string(d), "a process does not hear its own notices")
	case <-time.After(5 * time.Second):
		t.Fatal("the notice did not arrive")
	}
	require.Empty(t, bGot)
	require.Empty(t, otherGot, "another topic hears nothing")

	// A second follower on b's connection shows when b has been sent a notice.
	b2Got, b2On := got()
	nb2, err := b.Notices("tree", b2On)
	require.NoError(t, err)
	t.Cleanup(nb2.Close)
	nb.Close()
	nb.Close() // idempotent
	require.NoError(t, na.Publish([]byte("moved 9")))
	select {
	case d := <-b2Got:
		require.Equal(t, "moved 9", string(d))
	case <-time.After(5 * time.Second):
		t.Fatal("the notice did not arrive")
	}
	require.Empty(t, bGot, "nothing after Close")
}

// TestNoticesAfterReconnection: a process whose connection to NATS came back may have missed
// notices, and is told so with a nil notice.
func TestNoticesAfterReconnection(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	listen := "127.0.0.1:" + strconv.Itoa(port)
	server, err := eventlog.Open(t.Context(), eventlog.Options{DataDir: t.TempDir(), Listen: listen, Logger: discard})
	require.NoError(t, err)
	b, err := eventlog.Open(t.Context(), eventlog.Options{URL: "nats://" + listen, Logger: discard})
	require.NoError(t, err)
	t.Cleanup(b.Close)
	heard := make(chan []byte, 16)
	nb, err := b.Notices("tree", func(d []byte) { heard <- d })
	require.NoError(t, err)
	t.Cleanup(nb.Close)

	server.Close() // b loses its server, and finds one again on the same address
	again, err := eventlog.Open(t.Context(), eventlog.Options{DataDir: t.TempDir(), Listen: listen, Logger: discard})
	require.NoError(t, err)
	t.Cleanup(again.Close)
	select {
	case d := <-heard:
		require.Nil(t, d, "a nil notice: anything may have changed")
	case <-time.After(20 * time.Second):
		t.Fatal("no notice after the connection came back")
	}
}

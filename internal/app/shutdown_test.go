package app_test

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A connection that was opened but has sent nothing yet (a browser's preconnect, a client's
// spare connection) does not hold the shutdown: net/http alone waits 5 s for it.
func TestShutdownDoesNotWaitForConnectionsThatSentNothing(t *testing.T) {
	s := start(t, "sqlite")
	c, err := net.Dial("tcp", s.app.Addr())
	require.NoError(t, err)
	defer c.Close()
	code, _, _ := s.do("GET", "/-/healthy", "", "", nil) // the server is serving, the connection accepted
	require.Equal(t, 200, code)

	begin := time.Now()
	s.shutdown()
	require.Less(t, time.Since(begin), 3*time.Second, "shutdown with a connection that sent nothing")
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(make([]byte, 1))
	require.Error(t, err, "the connection is closed")
}

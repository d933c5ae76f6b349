package app_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/app"
	"github.com/auditstream/auditstream/internal/poll"
)

// ingestToken creates a token with the ingest scope for the user id and returns it.
func (s *server) ingestToken(userID int64) string {
	s.t.Helper()
	status, body, _ := s.do(http.MethodPost, fmt.Sprintf("/api/v4/users/%d/personal_access_tokens", userID), adminToken, "application/json",
		[]byte(`{"name":"producer","scopes":["ingest"]}`))
	require.Equal(s.t, http.StatusCreated, status, string(body))
	var tok struct{ Token string }
	require.NoError(s.t, json.Unmarshal(body, &tok))
	return tok.Token
}

// openIngest starts POST /api/v4/audit_events on a raw connection: the headers, announcing
// contentLength bytes, and prefix of the body. The caller writes the rest.
func (s *server) openIngest(t *testing.T, token string, contentLength int, prefix string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(s.base, "http://"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	_, err = fmt.Fprintf(c, "POST /api/v4/audit_events HTTP/1.1\r\nHost: x\r\nPRIVATE-TOKEN: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		token, contentLength, prefix)
	require.NoError(t, err)
	return c
}

// readResponse reads the response on c, waiting at most timeout.
func readResponse(c net.Conn, timeout time.Duration) (int, string, error) {
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var e struct{ Code string }
	_ = json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e.Code, nil
}

// The attack of issue 13, item 3, scaled down in time: one token opens 8 ingest requests that
// announce 32 MiB and send 1 byte every 100 ms. Bodies are charged what has arrived, so the
// slow requests hold almost nothing, another token keeps ingesting, and once the grace period
// is over each slow body is cut with 408 body_too_slow.
func TestSlowBodiesDoNotStopIngest(t *testing.T) {
	s := start(t, "sqlite", func(c *app.Config) {
		c.IngestRate = 0
		c.IngestBodyGrace = 1500 * time.Millisecond
		c.IngestMinBodyRate = 1024 // the attack sends 10 bytes/s
	})
	attacker := s.ingestToken(1)

	const slow = 8
	conns := make([]net.Conn, slow)
	for i := range conns {
		conns[i] = s.openIngest(t, attacker, 32<<20, "[")
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() { // the slow producer: one byte per tick until cut
			defer wg.Done()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := c.Write([]byte(" ")); err != nil {
						return
					}
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()

	// Meanwhile another producer ingests 1,000 events/s (5 per request, a request every 5 ms),
	// before, during and after the slow bodies are cut.
	good := strings.Repeat(`{"event_type":"user_created","entity_type":"Instance"}`+"\n", 5)
	var lat []time.Duration
	begin := time.Now()
	pace := time.NewTicker(5 * time.Millisecond)
	defer pace.Stop()
	for time.Since(begin) < 3*time.Second {
		<-pace.C
		t0 := time.Now()
		status, body, _ := s.do(http.MethodPost, "/api/v4/audit_events", adminToken, "application/x-ndjson", []byte(good))
		lat = append(lat, time.Since(t0))
		require.Equal(t, http.StatusCreated, status, "after %s, with 8 slow bodies open: %s", time.Since(begin), body)
	}
	slices.Sort(lat)
	p99 := lat[len(lat)*99/100]
	t.Logf("%d requests of another token during the attack, p99 %s", len(lat), p99)
	require.GreaterOrEqual(t, len(lat), 100)
	require.Less(t, p99, 500*time.Millisecond, "p99 (generous: -race on shared cores; the issue's bound is 50 ms without -race)")

	// The slow bodies are cut soon after the grace period, not after the whole body timeout.
	for _, c := range conns {
		status, code, err := readResponse(c, 10*time.Second)
		require.NoError(t, err)
		require.Equal(t, http.StatusRequestTimeout, status)
		require.Equal(t, "body_too_slow", code)
	}
	require.Less(t, time.Since(begin), 10*time.Second)
}

// The in-flight budget is per token as well as global: one token holding bodies up to its
// share gets 503 busy for more, and another token is still served. Bodies of unknown length
// (chunked) are charged what has arrived, not the request limit.
func TestInflightBudgetIsPerToken(t *testing.T) {
	s := start(t, "sqlite", func(c *app.Config) {
		c.IngestRate = 0
		c.MaxRequestBytes = 1 << 20
		c.MaxInflightBytes = 2 << 20
		c.MaxInflightBytesPerToken = 1 << 20
		c.IngestBodyGrace = time.Minute // this test is about the budget, not the rate
	})
	attacker := s.ingestToken(1)
	small := `{"event_type":"user_created","entity_type":"Instance"}`

	// A chunked body of unknown length that has sent little holds little: both tokens ingest.
	c, err := net.Dial("tcp", strings.TrimPrefix(s.base, "http://"))
	require.NoError(t, err)
	defer c.Close()
	_, err = fmt.Fprintf(c, "POST /api/v4/audit_events HTTP/1.1\r\nHost: x\r\nPRIVATE-TOKEN: %s\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n[\r\n", attacker)
	require.NoError(t, err)
	for _, tok := range []string{attacker, adminToken} {
		status, body, _ := s.do(http.MethodPost, "/api/v4/audit_events", tok, "application/json", []byte(small))
		require.Equal(t, http.StatusCreated, status, "a chunked body that sent 1 byte is not charged the request limit: %s", body)
	}

	// The attacker's token sends most of a 1 MiB body and waits: its share is taken.
	prefix := "[" + strings.Repeat(" ", (1<<20)-(16<<10))
	held := s.openIngest(t, attacker, 1<<20, prefix)
	poll.Until(t, 10*time.Second, func() error {
		// A request of the same token read while the held body still arrives can take the
		// room its next read needs: that body is then refused (busy) and frees the token's
		// share, as it should. Hold another one.
		if status, _, err := readResponse(held, time.Millisecond); err == nil {
			_ = held.Close()
			held = s.openIngest(t, attacker, 1<<20, prefix)
			return fmt.Errorf("the held body was answered %d while it arrived; holding another", status)
		}
		status, body, _ := s.do(http.MethodPost, "/api/v4/audit_events", attacker, "application/json", []byte(small))
		if status != http.StatusServiceUnavailable {
			return fmt.Errorf("the attacker's token still has room: %d %s", status, body)
		}
		if !strings.Contains(string(body), `"code":"busy"`) {
			return fmt.Errorf("not busy: %s", body)
		}
		return nil
	})
	// Another token is served: the global budget has room that one token cannot take.
	for range 5 {
		status, body, _ := s.do(http.MethodPost, "/api/v4/audit_events", adminToken, "application/json", []byte(small))
		require.Equal(t, http.StatusCreated, status, string(body))
	}
	_ = held.Close()
}

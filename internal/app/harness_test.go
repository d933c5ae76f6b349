package app_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/auditstream/auditstream/internal/app"
	"github.com/auditstream/auditstream/internal/poll"
)

const adminToken = "ast-test-admin-token-0123456789"

// server is one running service, in-process, on a random port.
type server struct {
	t       testing.TB
	app     *app.App
	base    string
	admin   string // an admin token
	cfg     app.Config
	banner  *lockedBuffer
	stop    context.CancelFunc
	stopped chan error
}

// drivers names the stores every end-to-end test runs against. PostgreSQL runs when
// AUDITSTREAM_TEST_DATABASE_URL is set, and must be set in CI.
func drivers(t *testing.T) []string {
	if os.Getenv("AUDITSTREAM_TEST_DATABASE_URL") != "" {
		return []string{"sqlite", "postgres"}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("AUDITSTREAM_TEST_DATABASE_URL must be set in CI: the PostgreSQL half of the suite may not be skipped")
	}
	t.Log("AUDITSTREAM_TEST_DATABASE_URL is not set: running the SQLite half only")
	return []string{"sqlite"}
}

// forEachDriver runs f as a subtest per store driver.
func forEachDriver(t *testing.T, f func(t *testing.T, driver string)) {
	for _, d := range drivers(t) {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			f(t, d)
		})
	}
}

// freshPostgres creates an empty database for one test and drops it afterwards.
func freshPostgres(t testing.TB) string {
	base := os.Getenv("AUDITSTREAM_TEST_DATABASE_URL")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "auditstream_app_" + hex.EncodeToString(b[:])
	_, err = conn.Exec(ctx, "CREATE DATABASE "+name)
	require.NoError(t, err)
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), base)
		if err == nil {
			_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(context.Background())
		}
	})
	u, err := url.Parse(base)
	require.NoError(t, err)
	u.Path = "/" + name
	return u.String()
}

// start runs the service with the test's own data dir (and database).
func start(t testing.TB, driver string, mutate ...func(*app.Config)) *server {
	t.Helper()
	return startCfg(t, serviceConfig(t, driver, mutate...))
}

// serviceConfig is the configuration start uses, for a test that works on the data dir or the
// database before the service starts.
func serviceConfig(t testing.TB, driver string, mutate ...func(*app.Config)) app.Config {
	cfg := app.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.AdminToken = adminToken
	cfg.LogLevel = "warn"
	if driver == "postgres" {
		cfg.DatabaseURL = freshPostgres(t)
	}
	for _, m := range mutate {
		m(&cfg)
	}
	return cfg
}

func startCfg(t testing.TB, cfg app.Config) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	banner := &lockedBuffer{}
	a, err := app.New(ctx, cfg, app.NewLogger(testWriter{t}, cfg.LogLevel), banner)
	require.NoError(t, err)
	s := &server{t: t, app: a, base: "http://" + a.Addr(), admin: cfg.AdminToken, cfg: cfg, banner: banner, stop: cancel, stopped: make(chan error, 1)}
	go func() { s.stopped <- a.Run(ctx) }()
	t.Cleanup(s.shutdown)
	return s
}

func (s *server) shutdown() {
	if s.stop == nil {
		return
	}
	s.stop()
	s.stop = nil
	select {
	case err := <-s.stopped:
		require.NoError(s.t, err)
	case <-time.After(60 * time.Second):
		s.t.Error("service did not stop within 60s")
	}
}

// lockedBuffer is the banner output, written by Run's goroutine and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// client returns a GitLab API client authenticated with token.
func (s *server) client(token string) *gitlab.Client {
	c, err := gitlab.NewClient(token, gitlab.WithBaseURL(s.base+"/api/v4"), gitlab.WithCustomRetryMax(0))
	require.NoError(s.t, err)
	return c
}

// do sends a request and returns the status and body.
func (s *server) do(method, path, token, contentType string, body []byte) (int, []byte, http.Header) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.base+path, bytes.NewReader(body))
	require.NoError(s.t, err)
	if token != "" {
		req.Header.Set("PRIVATE-TOKEN", token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	return resp.StatusCode, b, resp.Header
}

// ingest posts events and requires 201; it returns the ids.
func (s *server) ingest(token string, events ...map[string]any) []int64 {
	s.t.Helper()
	var buf bytes.Buffer
	for _, e := range events {
		b, err := json.Marshal(e)
		require.NoError(s.t, err)
		buf.Write(b)
		buf.WriteByte('\n')
	}
	status, body, _ := s.do(http.MethodPost, "/api/v4/audit_events", token, "application/x-ndjson", buf.Bytes())
	require.Equal(s.t, http.StatusCreated, status, "ingest: %s", body)
	var res struct {
		IDs []int64 `json:"ids"`
	}
	require.NoError(s.t, json.Unmarshal(body, &res))
	require.Len(s.t, res.IDs, len(events))
	return res.IDs
}

// waitStored polls until the instance API reports want events stored.
func (s *server) waitStored(want int) {
	s.t.Helper()
	poll.Until(s.t, 20*time.Second, func() error {
		status, body, h := s.do(http.MethodGet, "/api/v4/audit_events?per_page=1", s.admin, "", nil)
		if status != http.StatusOK {
			return errors.New(string(body))
		}
		if got := h.Get("X-Total"); got != itoa(want) {
			return errors.New("stored " + got + ", want " + itoa(want))
		}
		return nil
	})
}

func itoa(n int) string { return strconv.Itoa(n) }

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }

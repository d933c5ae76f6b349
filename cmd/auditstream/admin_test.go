package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/app"
	"github.com/auditstream/auditstream/internal/poll"
)

// cli runs the auditstream command with args on the SQLite store in dir and returns what it
// printed.
func cli(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := root()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(append([]string{"--data-dir", dir, "--database-url", ""}, args...))
	err := cmd.ExecuteContext(t.Context())
	return out.String(), err
}

// serveApp runs the service of cfg in this process until the test ends and returns its base
// URL and a call of its API with cfg.AdminToken (an NDJSON body when there is one).
func serveApp(t *testing.T, cfg app.Config) (base string, call func(method, path, body string) (int, []byte)) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	a, err := app.New(ctx, cfg, app.NewLogger(io.Discard, cfg.LogLevel), io.Discard)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	base = "http://" + a.Addr()
	return base, func(method, path, body string) (int, []byte) {
		req, _ := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(body))
		req.Header.Set("PRIVATE-TOKEN", cfg.AdminToken)
		req.Header.Set("Content-Type", "application/x-ndjson")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, b
	}
}

func cliOK(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := cli(t, dir, args...)
	require.NoError(t, err, "%v: %s", args, out)
	return out
}

// TestCLIPrintsGitLabShapesAndTables: the admin commands print what the REST API prints
// (GitLab's JSON) or a table, never Go structs ("Key", "TopKey", a zero "ExpiresAt"), and errors
// in the API's words, never a driver's; every kind of thing they create can be listed.
func TestCLIPrintsGitLabShapesAndTables(t *testing.T) {
	dir := t.TempDir()
	out := cliOK(t, dir, "user", "create", "--username", "alice", "--name", "Alice", "--email", "alice@example.com")
	var u map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &u), out)
	require.Equal(t, "alice", u["username"])
	require.Equal(t, false, u["is_admin"])
	require.Equal(t, "active", u["state"])
	for _, goName := range []string{"Username", "Admin", "CreatedAt"} {
		require.NotContains(t, out, `"`+goName+`"`)
	}
	_, err := cli(t, dir, "user", "create", "--username", "alice", "--name", "Alice", "--email", "alice@example.com")
	require.EqualError(t, err, "409 Conflict: Username or id has already been taken")

	out = cliOK(t, dir, "group", "create", "--path", "acme")
	require.Contains(t, out, `"full_path": "acme"`)
	require.NotContains(t, out, "TopKey")
	out = cliOK(t, dir, "group", "create", "--path", "acme/sub")
	var g map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &g), out)
	require.NotZero(t, g["id"])
	require.NotNil(t, g["parent_id"])
	out = cliOK(t, dir, "project", "create", "--path", "acme/sub/app")
	require.Contains(t, out, `"path_with_namespace": "acme/sub/app"`)
	_, err = cli(t, dir, "group", "create", "--path", "acme")
	require.EqualError(t, err, "409 Conflict: path or id has already been taken")
	_, err = cli(t, dir, "group", "create", "--path", "nowhere/sub")
	require.EqualError(t, err, `404 Group Not Found: nowhere`)

	out = cliOK(t, dir, "member", "add", "--group", "acme", "--user", "alice", "--access-level", "50")
	require.Contains(t, out, `"access_level": 50`)
	require.Contains(t, out, `"expires_at": null`)
	require.NotContains(t, out, "ExpiresAt")
	_, err = cli(t, dir, "member", "add", "--group", "acme", "--user", "nobody", "--access-level", "50")
	require.EqualError(t, err, "404 User Not Found: nobody")

	token := strings.TrimSpace(cliOK(t, dir, "token", "create", "--user", "alice", "--name", "ci", "--scopes", "read_api"))
	require.NotEmpty(t, token)

	// Lists: a table by default, GitLab's JSON with --json.
	out = cliOK(t, dir, "user", "list")
	require.Regexp(t, `(?m)^ID\s+USERNAME\s+NAME\s+EMAIL\s+ADMIN`, out)
	require.Regexp(t, `(?m)^\d+\s+alice\s+Alice\s+alice@example.com\s+false`, out)
	out = cliOK(t, dir, "user", "list", "--json")
	var users []map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &users), out)
	require.Len(t, users, 1)
	out = cliOK(t, dir, "token", "list", "--user", "alice")
	require.Regexp(t, `(?m)^\d+\s+ci\s+read_api\s+true\s+-`, out)
	require.NotContains(t, out, token, "a token is never shown again")
	out = cliOK(t, dir, "token", "list", "--user", "alice", "--json")
	require.Contains(t, out, `"scopes": [`)
	out = cliOK(t, dir, "group", "list")
	require.Regexp(t, `(?m)^\d+\s+acme\s+acme\s*$`, out)
	require.Regexp(t, `(?m)^\d+\s+acme/sub\s+sub\s*$`, out)
	require.NotContains(t, out, "acme/sub/app", "projects are not groups")
	out = cliOK(t, dir, "project", "list")
	require.Regexp(t, `(?m)^\d+\s+acme/sub/app\s+app\s*$`, out)
	out = cliOK(t, dir, "member", "list", "--group", "acme")
	require.Regexp(t, `(?m)^\d+\s+alice\s+50\s+owner\s+-`, out)
	out = cliOK(t, dir, "destination", "list")
	require.Contains(t, out, "no streaming destinations")
}

// TestCLIChangesReachTheAuditLog: what the admin commands change is recorded as GitLab's events
// (the CLI as author, via "cli"), which a server started on the same data dir afterwards
// publishes and stores; removing a membership that is not there changes and records nothing.
func TestCLIChangesReachTheAuditLog(t *testing.T) {
	dir := t.TempDir()
	cliOK(t, dir, "user", "create", "--username", "alice", "--name", "Alice", "--email", "alice@example.com")
	cliOK(t, dir, "token", "create", "--user", "alice", "--name", "ci", "--scopes", "read_api")
	cliOK(t, dir, "token", "revoke", "--id", "1")
	cliOK(t, dir, "group", "create", "--path", "acme")
	cliOK(t, dir, "project", "create", "--path", "acme/app")
	cliOK(t, dir, "member", "add", "--group", "acme", "--user", "alice", "--access-level", "30")
	cliOK(t, dir, "member", "update", "--group", "acme", "--user", "alice", "--access-level", "40")
	cliOK(t, dir, "member", "remove", "--group", "acme", "--user", "alice")
	_, err := cli(t, dir, "member", "remove", "--group", "acme", "--user", "alice")
	require.EqualError(t, err, "404 Member Not Found: alice")

	cfg := app.Defaults()
	cfg.DataDir, cfg.Listen, cfg.AdminToken, cfg.LogLevel = dir, "127.0.0.1:0", "ast-cli-test-admin-token-0123456789", "error"
	_, call := serveApp(t, cfg)

	want := []string{"user_created", "personal_access_token_created", "personal_access_token_revoked", "group_created",
		"project_created", "member_created", "member_updated", "member_destroyed"}
	var events []struct {
		EventType  string         `json:"event_type"`
		AuthorID   int64          `json:"author_id"`
		AuthorName string         `json:"author_name"`
		Producer   map[string]any `json:"auditstream_producer"`
	}
	poll.Until(t, 20*time.Second, func() error {
		status, b := call(http.MethodGet, "/api/v4/audit_events?sort=asc&per_page=100", "")
		if status != http.StatusOK {
			return fmt.Errorf("%d %s", status, b)
		}
		if err := json.Unmarshal(b, &events); err != nil {
			return err
		}
		if len(events) < len(want) {
			return fmt.Errorf("%d events stored, want %d", len(events), len(want))
		}
		return nil
	})
	require.Len(t, events, len(want))
	for i, e := range events {
		require.Equal(t, want[i], e.EventType)
		require.Zero(t, e.AuthorID)
		require.Contains(t, e.AuthorName, "auditstream CLI")
		require.Equal(t, "cli", e.Producer["via"])
	}
}

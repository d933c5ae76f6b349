package e2e

import (
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/natstest"
	"github.com/auditstream/auditstream/internal/poll"
)

// TestExternalNATSOutage runs the binary against an external NATS server, stops that server,
// and checks that ingest answers 503 log_unavailable (nothing half-accepted, the process keeps
// serving), and that it recovers by itself when NATS is back.
func TestExternalNATSOutage(t *testing.T) {
	natsDir := t.TempDir()
	port := natstest.FreePort(t)
	ns := natstest.Start(t, natsDir, port)
	p := serve(t, t.TempDir(), fmt.Sprintf("AUDITSTREAM_NATS_URL=nats://127.0.0.1:%d", port))
	require.Equal(t, http.StatusCreated, postOne(t, p.base))

	ns.Shutdown()
	ns.WaitForShutdown()
	poll.Until(t, 30*time.Second, func() error {
		if s := postOne(t, p.base); s != http.StatusServiceUnavailable {
			return fmt.Errorf("status %d while NATS is down", s)
		}
		return nil
	})
	resp, err := http.Get(p.base + "/-/ready")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "not ready without the log")
	resp, err = http.Get(p.base + "/-/healthy")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "alive: the process keeps serving")

	natstest.Start(t, natsDir, port)
	poll.Until(t, 30*time.Second, func() error {
		if s := postOne(t, p.base); s != http.StatusCreated {
			return fmt.Errorf("status %d after NATS came back", s)
		}
		return nil
	})
	// Both accepted events are stored (and whatever 503s published before failing is at most
	// stored once: ids are unique).
	poll.Until(t, 30*time.Second, func() error {
		ids := allIDs(t, p.base)
		if len(ids) < 2 {
			return fmt.Errorf("%d stored", len(ids))
		}
		seen := map[int64]bool{}
		for _, id := range ids {
			if seen[id] {
				return fmt.Errorf("id %d twice", id)
			}
			seen[id] = true
		}
		return nil
	})
}

// TestAdminCLI drives the admin commands of the binary against a data dir, then serves it and
// uses what they made.
func TestAdminCLI(t *testing.T) {
	dataDir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(binary, append(args, "--data-dir", dataDir)...).CombinedOutput()
		require.NoError(t, err, "%v: %s", args, out)
		return string(out)
	}
	fail := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(binary, append(args, "--data-dir", dataDir)...).CombinedOutput()
		require.Error(t, err, "%v should fail: %s", args, out)
		return string(out)
	}
	require.Contains(t, run("migrate"), "migrations applied")
	require.Contains(t, run("user", "create", "--username", "alice", "--name", "Alice", "--email", "alice@example.com", "--id", "42"), `"id": 42`)
	require.Contains(t, run("group", "create", "--path", "acme", "--id", "10"), `"full_path": "acme"`)
	require.Contains(t, run("group", "create", "--path", "acme/platform"), `"full_path": "acme/platform"`)
	require.Contains(t, run("project", "create", "--path", "acme/platform/api", "--id", "77"), `"path_with_namespace": "acme/platform/api"`)
	run("member", "add", "--group", "acme", "--user", "alice", "--access-level", "50")
	tok := strings.TrimSpace(run("token", "create", "--user", "alice", "--scopes", "read_api"))
	require.True(t, strings.HasPrefix(tok, "ast-"), tok)
	require.Contains(t, fail("member", "add", "--group", "nope", "--user", "alice", "--access-level", "50"), "404 Group Not Found: nope")
	require.Contains(t, fail("token", "create", "--user", "alice", "--scopes", "sudo"), "not one of")
	require.Contains(t, fail("project", "create", "--path", "lonely"), "includes its group")
	require.Contains(t, run("event-types"), "repository_git_operation")
	spare := strings.TrimSpace(run("token", "create", "--user", "alice", "--name", "spare"))
	require.True(t, strings.HasPrefix(spare, "ast-"), spare)
	require.Contains(t, run("token", "revoke", "--id", "2"), "token 2 revoked") // alice's are 1 and 2: the server has not seeded its admin token yet
	require.Contains(t, fail("token", "revoke", "--id", "99"), "404 Token Not Found")

	p := serve(t, dataDir)
	req, _ := http.NewRequest(http.MethodGet, p.base+"/api/v4/user", nil)
	req.Header.Set("PRIVATE-TOKEN", spare)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a token revoked with the CLI is refused")
	ingest := strings.NewReader(`{"event_type":"protected_branch_created","entity_type":"Project","entity_path":"acme/platform/api","entity_id":77,"author_id":42}`)
	req, _ = http.NewRequest(http.MethodPost, p.base+"/api/v4/audit_events", ingest)
	req.Header.Set("PRIVATE-TOKEN", adminToken)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	poll.Until(t, 20*time.Second, func() error {
		req, _ := http.NewRequest(http.MethodGet, p.base+"/api/v4/projects/acme%2Fplatform%2Fapi/audit_events", nil)
		req.Header.Set("PRIVATE-TOKEN", tok) // alice owns acme: she sees the project's events
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		// The event, and the audit event of the project's creation by the CLI (published by the
		// server from the outbox).
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Total") != "2" {
			return fmt.Errorf("status %d, total %q", resp.StatusCode, resp.Header.Get("X-Total"))
		}
		return nil
	})
}

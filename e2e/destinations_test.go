package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/poll"
)

// gql posts one GraphQL request as the admin and returns the decoded response.
func gql(t *testing.T, base, query string, vars map[string]any) map[string]any {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, base+"/api/graphql", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("PRIVATE-TOKEN", adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.Empty(t, out["errors"], "%v", out)
	return out["data"].(map[string]any)
}

// TestDestinationsSurviveACrash configures a destination through the real binary, kills it
// with SIGKILL, and reads the destination back after a restart: its secrets were sealed with
// the key file, and neither the logs (at debug level) nor an error ever showed them.
func TestDestinationsSurviveACrash(t *testing.T) {
	dataDir := t.TempDir()
	p := serve(t, dataDir, "AUDITSTREAM_LOG_LEVEL=debug")
	req, _ := http.NewRequest(http.MethodPost, p.base+"/api/v4/groups", strings.NewReader(`{"name":"Acme","path":"acme","id":7}`))
	req.Header.Set("PRIVATE-TOKEN", adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)

	const token, header, awsKey = "e2e-verification-token-4f9a1c", "Bearer e2e-header-secret-77d2", "e2eAwsSecretKey0123456789abcdefABCDEFGH"
	create := `mutation($c: String!, $cfg: JSON!, $s: String) { groupAuditEventStreamingDestinationsCreate(input: {groupPath: "acme", category: $c, config: $cfg, secretToken: $s}) { errors externalAuditEventDestination { id secretToken signingSecret config } } }`
	data := gql(t, p.base, create, map[string]any{"c": "http", "s": token, "cfg": map[string]any{
		"url": "https://receiver.example/acme", "headers": map[string]any{"Authorization": map[string]any{"value": header, "active": true}}}})
	d := data["groupAuditEventStreamingDestinationsCreate"].(map[string]any)["externalAuditEventDestination"].(map[string]any)
	require.Equal(t, token, d["secretToken"])
	signing := d["signingSecret"].(string)

	// A refused change names the problem, not the secret.
	data = gql(t, p.base, create, map[string]any{"c": "aws", "s": awsKey, "cfg": map[string]any{"accessKeyXid": "AKIAIOSFODNN7EXAMPLE", "bucketName": "b-1", "awsRegion": "Nowhere 1"}})
	errs := data["groupAuditEventStreamingDestinationsCreate"].(map[string]any)["errors"].([]any)
	require.Len(t, errs, 1)
	require.Contains(t, errs[0], "config.awsRegion")

	info, err := os.Stat(filepath.Join(dataDir, "secret.key"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	p.kill()
	p2 := serve(t, dataDir, "AUDITSTREAM_LOG_LEVEL=debug")
	data = gql(t, p2.base, `{ group(fullPath: "acme") { externalAuditEventStreamingDestinations { nodes { secretToken signingSecret config } } } }`, nil)
	nodes := data["group"].(map[string]any)["externalAuditEventStreamingDestinations"].(map[string]any)["nodes"].([]any)
	require.Len(t, nodes, 1)
	n := nodes[0].(map[string]any)
	require.Equal(t, token, n["secretToken"])
	require.Equal(t, signing, n["signingSecret"])
	require.Equal(t, header, n["config"].(map[string]any)["headers"].(map[string]any)["Authorization"].(map[string]any)["value"])

	// The change was recorded as an audit event, stored after the restart.
	poll.Until(t, 30*time.Second, func() error {
		req, _ := http.NewRequest(http.MethodGet, p2.base+"/api/v4/groups/7/audit_events", nil)
		req.Header.Set("PRIVATE-TOKEN", adminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var evs []struct {
			EventType string `json:"event_type"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&evs); err != nil {
			return err
		}
		// The group's creation through the API is recorded too (group_created).
		var types []string
		for _, e := range evs {
			types = append(types, e.EventType)
		}
		slices.Sort(types)
		if !slices.Equal(types, []string{"created_group_audit_event_streaming_destination", "group_created"}) {
			return fmt.Errorf("group events: %+v", evs)
		}
		return nil
	})

	for _, out := range []string{p.out.String(), p2.out.String()} {
		require.NotEmpty(t, out)
		for _, secret := range []string{token, header, awsKey, signing} {
			require.NotContains(t, out, secret, "a secret in the process output")
		}
	}
}

// TestSecretKeyFromEnvironment: with AUDITSTREAM_SECRET_KEY no key file is written, and a
// malformed key stops the start with a message that does not repeat it.
func TestSecretKeyFromEnvironment(t *testing.T) {
	dataDir := t.TempDir()
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	p := serve(t, dataDir, "AUDITSTREAM_SECRET_KEY="+key)
	_, err := os.Stat(filepath.Join(dataDir, "secret.key"))
	require.True(t, os.IsNotExist(err), "no key file when the key comes from the environment: %v", err)

	// Started again with another key, the service still ingests, says at start that it cannot
	// read the destinations' secrets, and answers listing them with that reason.
	gql(t, p.base, `mutation { instanceAuditEventStreamingDestinationsCreate(input: {category: "http", config: {url: "https://receiver.example/i"}, secretToken: "e2e-instance-token-1"}) { errors } }`, nil)
	p.kill()
	other := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))
	p = serve(t, dataDir, "AUDITSTREAM_SECRET_KEY="+other)
	require.Equal(t, http.StatusCreated, postOne(t, p.base))
	poll.Until(t, 10*time.Second, func() error {
		if !strings.Contains(p.out.String(), "destination secrets cannot be read") {
			return fmt.Errorf("no start-up warning: %s", p.out.String())
		}
		return nil
	})
	body, _ := json.Marshal(map[string]any{"query": `{ auditEventsInstanceStreamingDestinations { nodes { secretToken } } }`})
	req, _ := http.NewRequest(http.MethodPost, p.base+"/api/graphql", bytes.NewReader(body))
	req.Header.Set("PRIVATE-TOKEN", adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(raw), "secret_key_mismatch")
	require.NotContains(t, string(raw), "e2e-instance-token-1")

	bad := "not-base64-of-32-bytes-but-a-secret-anyway"
	cmd := exec.Command(binary, "serve", "--listen", freePort(t), "--data-dir", t.TempDir())
	cmd.Env = append(os.Environ(), "AUDITSTREAM_ADMIN_TOKEN="+adminToken, "AUDITSTREAM_SECRET_KEY="+bad)
	out, err := cmd.CombinedOutput()
	require.Error(t, err, "a bad key stops the start")
	require.Contains(t, string(out), "AUDITSTREAM_SECRET_KEY")
	require.NotContains(t, string(out), bad)
}

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/poll"
)

// TestTrailFindsATruncatedLog is issue 15's reproduction: with the service stopped, 100 bytes
// are cut from the end of the log's block file. After a restart the service says which id the
// log lost (an ERROR, auditstream_log_lost_events, /-/ready), and `auditstream verify` still
// proves every event from the tree and the store.
func TestTrailFindsATruncatedLog(t *testing.T) {
	dataDir := t.TempDir()
	env := []string{"AUDITSTREAM_TRAIL_CHECKPOINT_INTERVAL=100ms", "AUDITSTREAM_TRAIL_AUDIT_INTERVAL=200ms"}
	p := serve(t, dataDir, env...)
	var body strings.Builder
	for i := range 200 {
		fmt.Fprintf(&body, `{"event_type":"user_created","entity_type":"Instance","author_id":1,"details":{"n":%d}}`+"\n", i)
	}
	req, _ := http.NewRequest(http.MethodPost, p.base+"/api/v4/audit_events", strings.NewReader(body.String()))
	req.Header.Set("PRIVATE-TOKEN", adminToken)
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	get := func(base, path string) string {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Header.Set("PRIVATE-TOKEN", adminToken)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	var cp struct {
		TreeSize    int64  `json:"tree_size"`
		VerifierKey string `json:"verifier_key"`
	}
	poll.Until(t, 30*time.Second, func() error {
		if err := json.Unmarshal([]byte(get(p.base, "/api/v4/auditstream/trail/checkpoint")), &cp); err != nil {
			return err
		}
		if cp.TreeSize < 200 || len(allIDs(t, p.base)) < 200 {
			return fmt.Errorf("checkpoint of size %d", cp.TreeSize)
		}
		return nil
	})
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	<-p.done

	blocks, err := filepath.Glob(filepath.Join(dataDir, "jetstream", "jetstream", "$G", "streams", "AUDIT_EVENTS", "msgs", "*.blk"))
	require.NoError(t, err)
	require.NotEmpty(t, blocks)
	last := blocks[len(blocks)-1]
	fi, err := os.Stat(last)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(last, fi.Size()-100))

	p2 := serve(t, dataDir, env...)
	// The newest event of the log is lost: event 200, or a checkpoint's event after it.
	lost := regexp.MustCompile(`trail: the log lost 1 event\(s\) the tree already has, ids (\d+):`)
	var lostID string
	poll.Until(t, 30*time.Second, func() error {
		r := get(p2.base, "/-/ready")
		m := lost.FindStringSubmatch(r)
		if m == nil {
			return fmt.Errorf("ready says %q", r)
		}
		if id, _ := strconv.Atoi(m[1]); id < 200 {
			return fmt.Errorf("ready names id %d, not the newest: %q", id, r)
		}
		lostID = m[1]
		return nil
	})
	require.Contains(t, get(p2.base, "/metrics"), "auditstream_log_lost_events 1")
	require.Contains(t, p2.out.String(), `"level":"ERROR","msg":"trail: the log lost 1 event(s) the tree already has, ids `+lostID)

	verify := exec.Command(binary, "verify", "--url", p2.base, "--key", cp.VerifierKey)
	verify.Env = append(os.Environ(), "AUDITSTREAM_TOKEN="+adminToken)
	out, err := verify.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Regexp(t, `OK: (2\d\d) events in the tree`, string(out), "the 200 events and the checkpoints' own")
}

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
	mustIngest(t, p.base, events(200, userCreated))
	get := func(base, path string) string { return adminGet(t, base, path) }
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
	cutLogTail(t, p, dataDir)

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

// TestTrailRepublishesATruncatedLog: after issue 15's truncation, `auditstream trail
// republish` delivers the event the log lost from the store's copy to the HTTP receiver again,
// with its original id; a second run sends nothing.
func TestTrailRepublishesATruncatedLog(t *testing.T) {
	dataDir := t.TempDir()
	// No checkpoint after the last event, so that it is the log's last message (the one the
	// cut loses), not a checkpoint's event.
	env := []string{allowPrivate, "AUDITSTREAM_TRAIL_CHECKPOINT_INTERVAL=1h", "AUDITSTREAM_TRAIL_CHECKPOINT_EVENTS=1000"}
	p := serve(t, dataDir, env...)
	rc := newReceiver(t, "127.0.0.1:0")
	createDestination(t, p.base, rc.url())
	ids := mustIngest(t, p.base, events(30, userCreated))
	last := ids[len(ids)-1]
	get := func(base, path string) string { return adminGet(t, base, path) }
	poll.Until(t, 30*time.Second, func() error { // delivered, stored, and a leaf of the tree
		if rc.times(last) != 1 {
			return fmt.Errorf("the receiver has id %d %d times", last, rc.times(last))
		}
		if !strings.Contains(get(p.base, "/api/v4/auditstream/trail/leaves?count=1&from_id="+strconv.FormatInt(last, 10)), `"event":`) {
			return fmt.Errorf("id %d is not a stored leaf yet", last)
		}
		return nil
	})
	cutLogTail(t, p, dataDir)

	p2 := serve(t, dataDir, env...)
	poll.Until(t, 30*time.Second, func() error {
		if r := get(p2.base, "/-/ready"); !strings.Contains(r, fmt.Sprintf("ids %d:", last)) {
			return fmt.Errorf("ready says %q", r)
		}
		return nil
	})
	republish := func() string {
		cmd := exec.Command(binary, "trail", "republish", "--url", p2.base)
		cmd.Env = append(os.Environ(), "AUDITSTREAM_TOKEN="+adminToken)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		return string(out)
	}
	out := republish()
	require.Contains(t, out, fmt.Sprintf("re-published 1 event(s) (ids %d)", last))
	require.Regexp(t, `destination \d+ "[^"]*": 1 delivered, 0 failed`, out)
	require.Contains(t, out, "at least once")
	require.Equal(t, 2, rc.times(last), "the receiver has the lost event again, with its id")

	out = republish()
	require.Contains(t, out, "re-published 0 event(s)")
	require.Contains(t, out, "skipped: 1 already re-published")
	require.Equal(t, 2, rc.times(last))
}

// adminGet returns the body of an administrator's GET of path.
func adminGet(t *testing.T, base, path string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+path, nil)
	req.Header.Set("PRIVATE-TOKEN", adminToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// cutLogTail stops p (SIGTERM) and cuts 100 bytes from the end of its log's last block file,
// as issue 15 reproduced: the newest message is lost.
func cutLogTail(t *testing.T, p *proc, dataDir string) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	<-p.done
	blocks, err := filepath.Glob(filepath.Join(dataDir, "jetstream", "jetstream", "$G", "streams", "AUDIT_EVENTS", "msgs", "*.blk"))
	require.NoError(t, err)
	require.NotEmpty(t, blocks)
	last := blocks[len(blocks)-1]
	fi, err := os.Stat(last)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(last, fi.Size()-100))
}

package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/app"
	"github.com/auditstream/auditstream/internal/poll"
)

// TestVerifyCommand: `auditstream verify` with only the public key passes on an untouched
// trail and on an NDJSON copy of its events, and names the first id that fails (an altered or
// reordered line, a wrong key) with exit status 1.
func TestVerifyCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := app.Defaults()
	cfg.DataDir, cfg.Listen, cfg.AdminToken, cfg.LogLevel = dir, "127.0.0.1:0", "ast-verify-test-admin-token-0123456789", "error"
	cfg.TrailCheckpointInterval, cfg.TrailAuditInterval = 100*time.Millisecond, 0
	base, call := serveApp(t, cfg)
	get := func(path string) (int, []byte) { return call(http.MethodGet, path, "") }

	var body bytes.Buffer
	for i := range 12 {
		fmt.Fprintf(&body, `{"event_type":"user_created","entity_type":"Instance","author_id":1,"author_name":"Alice","details":{"n":%d}}`+"\n", i)
	}
	status, b := call(http.MethodPost, "/api/v4/audit_events", body.String())
	require.Equal(t, http.StatusCreated, status, "%s", b)

	var cp struct {
		TreeSize    int64  `json:"tree_size"`
		VerifierKey string `json:"verifier_key"`
		StoredUpTo  *int64 `json:"stored_up_to"`
	}
	poll.Until(t, 20*time.Second, func() error {
		status, b := get("/api/v4/auditstream/trail/checkpoint")
		if status != http.StatusOK {
			return fmt.Errorf("%d %s", status, b)
		}
		if err := json.Unmarshal(b, &cp); err != nil {
			return err
		}
		if cp.TreeSize < 12 {
			return fmt.Errorf("checkpoint of size %d", cp.TreeSize)
		}
		// The leaves are read from the store: wait until it has them all.
		if _, b := get("/api/v4/auditstream/trail/leaves?count=100"); bytes.Count(b, []byte(`"event":`)) < 12 {
			return fmt.Errorf("not all stored yet")
		}
		return nil
	})
	require.NotNil(t, cp.StoredUpTo, "the checkpoint says how far the store is complete")
	key := strings.TrimSpace(cliOK(t, dir, "trail", "public-key"))
	require.Equal(t, cp.VerifierKey, key, "the key the data dir holds is the one the service shows")

	t.Setenv("AUDITSTREAM_TOKEN", cfg.AdminToken)
	saved := filepath.Join(t.TempDir(), "last.cp")
	out := cliOK(t, dir, "verify", "--url", base, "--key", key, "--save-checkpoint", saved)
	require.Contains(t, out, "OK: 12 events in the tree")
	out = cliOK(t, dir, "verify", "--url", base, "--key", key, "--trusted-checkpoint", saved)
	require.Contains(t, out, "OK:")

	// An NDJSON copy of the events, as a destination received them.
	_, leaves := get("/api/v4/auditstream/trail/leaves?count=100")
	var lines []string
	for l := range strings.SplitSeq(strings.TrimSpace(string(leaves)), "\n") {
		var leaf struct {
			Event json.RawMessage `json:"event"`
		}
		require.NoError(t, json.Unmarshal([]byte(l), &leaf))
		lines = append(lines, string(leaf.Event))
	}
	file := filepath.Join(t.TempDir(), "events.ndjson")
	write := func(ls []string) { require.NoError(t, os.WriteFile(file, []byte(strings.Join(ls, "\n")+"\n"), 0o600)) }
	write(lines)
	out = cliOK(t, dir, "verify", "--url", base, "--key", key, "--ndjson", file)
	require.Contains(t, out, "12 events checked byte for byte")

	altered := append([]string(nil), lines...)
	altered[6] = strings.Replace(altered[6], "Alice", "Mallory", 1)
	write(altered)
	out, err := cli(t, dir, "verify", "--url", base, "--key", key, "--ndjson", file)
	require.EqualError(t, err, "the trail does not verify")
	require.Contains(t, out, "FAIL id 7: altered")

	swapped := append([]string(nil), lines...)
	swapped[2], swapped[3] = swapped[3], swapped[2]
	write(swapped)
	out, err = cli(t, dir, "verify", "--url", base, "--key", key, "--ndjson", file)
	require.Error(t, err)
	require.Contains(t, out, "FAIL id 3: reordered")

	_, otherKey, _ := strings.Cut(cliOK(t, dir, "trail", "new-key"), "public key: ")
	out, err = cli(t, dir, "verify", "--url", base, "--key", strings.TrimSpace(otherKey))
	require.Error(t, err)
	require.Contains(t, out, "FAIL bad_signature")
	require.NotContains(t, out, "PRIVATE")

	// verify --csv: the UI's export, downloaded in a signed-in session, verifies row by row; a
	// changed cell names its id.
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := browser.Get(base + "/users/sign_in")
	require.NoError(t, err)
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindSubmatch(page)
	require.NotNil(t, m, "%s", page)
	resp, err = browser.PostForm(base+"/users/sign_in", url.Values{"csrf_token": {string(m[1])}, "token": {cfg.AdminToken}, "return_to": {"/"}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	resp, err = browser.Get(base + "/admin/audit_events.csv")
	require.NoError(t, err)
	export, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", export)
	csvFile := filepath.Join(t.TempDir(), "export.csv")
	require.NoError(t, os.WriteFile(csvFile, export, 0o600))
	out = cliOK(t, dir, "verify", "--url", base, "--key", key, "--csv", csvFile)
	require.Contains(t, out, "OK: 12 rows")
	require.Contains(t, out, "not that no event is missing")
	out = cliOK(t, dir, "verify", "--url", base, "--key", key, "--csv", csvFile, "--trusted-checkpoint", saved)
	require.Contains(t, out, "OK: 12 rows")
	require.NoError(t, os.WriteFile(csvFile, bytes.Replace(export, []byte(",Alice,"), []byte(",Mallory,"), 1), 0o600))
	out, err = cli(t, dir, "verify", "--url", base, "--key", key, "--csv", csvFile)
	require.EqualError(t, err, "the CSV export does not verify")
	require.Regexp(t, `FAIL id 12: altered: its "Author Name" column says "Mallory"`, out)

	// trail republish: the log lost nothing, so nothing is sent; an id the log still holds is
	// refused, naming it. (What a loss re-publishes: app's TestTrailRepublishesWhatTheLogLost.)
	out = cliOK(t, dir, "trail", "republish", "--url", base)
	require.Contains(t, out, "re-published 0 event(s) (ids none)")
	require.Contains(t, out, "skipped: 0 already re-published, 0 lost without a copy")
	_, err = cli(t, dir, "trail", "republish", "--url", base, "--ids", "3")
	require.ErrorContains(t, err, "not_recovered")
	require.ErrorContains(t, err, "ids 3 ")
	_, err = cli(t, dir, "trail", "republish", "--url", base, "--ids", "9-3")
	require.ErrorContains(t, err, "--ids")
}

// TestVerifyBucketCommand: `auditstream verify --bucket` needs no service and no token, only
// the public key, and fails with exit status 1 on a copy without checkpoints. (The checks
// themselves are trail.TestVerifyBucket's, on a bucket the real S3 sender wrote.)
func TestVerifyBucketCommand(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AUDITSTREAM_TOKEN", "")
	_, err := cli(t, dir, "verify", "--bucket", t.TempDir())
	require.ErrorContains(t, err, "--key")
	_, vkey, _ := strings.Cut(cliOK(t, dir, "trail", "new-key"), "public key: ")
	bucket := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(bucket, "checkpoints"), 0o755))
	out, err := cli(t, dir, "verify", "--bucket", bucket, "--key", strings.TrimSpace(vkey))
	require.EqualError(t, err, "the bucket does not verify")
	require.Contains(t, out, "FAIL missing: the copy holds no checkpoint")
}

// TestVerifyWaitsForTheStore: verify against a running service whose store is behind the log
// (its inserts held back: the tree has the newest events' leaves, the store not their rows)
// passes, reporting them as not yet stored; once the store caught up, a deleted row fails.
func TestVerifyWaitsForTheStore(t *testing.T) {
	dir := t.TempDir()
	cfg := app.Defaults()
	cfg.DataDir, cfg.Listen, cfg.AdminToken, cfg.LogLevel = dir, "127.0.0.1:0", "ast-verify-test-admin-token-0123456789", "error"
	cfg.TrailCheckpointInterval, cfg.TrailAuditInterval = 100*time.Millisecond, 0
	base, call := serveApp(t, cfg)
	ingest := func(names ...string) {
		var body strings.Builder
		for _, n := range names {
			fmt.Fprintf(&body, `{"event_type":"user_created","entity_type":"Instance","author_id":1,"author_name":%q}`+"\n", n)
		}
		status, b := call(http.MethodPost, "/api/v4/audit_events", body.String())
		require.Equal(t, http.StatusCreated, status, "%s", b)
	}
	// waitFor waits until the tree has n leaves of stored events and the store serves stored of them.
	waitFor := func(n, stored int) {
		poll.Until(t, 20*time.Second, func() error {
			_, b := call(http.MethodGet, "/api/v4/auditstream/trail/leaves?count=1000", "")
			if got := bytes.Count(b, []byte(`"kind":"stored"`)); got < n {
				return fmt.Errorf("%d stored leaves", got)
			}
			if got := bytes.Count(b, []byte(`"event":`)); got != stored {
				return fmt.Errorf("%d events stored, want %d", got, stored)
			}
			return nil
		})
	}
	ingest("a", "b", "c")
	waitFor(3, 3)
	key := strings.TrimSpace(cliOK(t, dir, "trail", "public-key"))
	t.Setenv("AUDITSTREAM_TOKEN", cfg.AdminToken)

	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "auditstream.db")+"?_pragma=busy_timeout(10000)")
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Exec(`CREATE TRIGGER hold_inserts BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'held by the test'); END`)
	require.NoError(t, err)
	ingest("d", "e")
	waitFor(5, 3)
	var cp struct {
		TreeSize   int64  `json:"tree_size"`
		StoredUpTo *int64 `json:"stored_up_to"`
	}
	poll.Until(t, 20*time.Second, func() error { // a checkpoint that has the two
		_, b := call(http.MethodGet, "/api/v4/auditstream/trail/checkpoint", "")
		if err := json.Unmarshal(b, &cp); err != nil {
			return err
		}
		if cp.TreeSize < 5 {
			return fmt.Errorf("checkpoint of size %d", cp.TreeSize)
		}
		return nil
	})
	require.NotNil(t, cp.StoredUpTo)
	require.Less(t, *cp.StoredUpTo, int64(5), "the store has not acknowledged d and e")
	// The service's word that d and e are on their way is not proof: not OK, not missing.
	out, err := cli(t, dir, "verify", "--url", base, "--key", key, "--wait", "500ms")
	require.EqualError(t, err, "the trail is not fully verified: 2 stored events not yet stored", out)
	require.Regexp(t, `INCOMPLETE: 2 stored events after id \d+ \(how far the service says its store is complete\) were still not stored after --wait 500ms`, out)
	require.NotContains(t, out, "OK:")

	// A verify that waits passes once the store catches up while it waits.
	verified := make(chan string, 1)
	go func() {
		out, err := cli(t, dir, "verify", "--url", base, "--key", key, "--wait", "20s")
		verified <- fmt.Sprint(out, err)
	}()
	_, err = db.Exec(`DROP TRIGGER hold_inserts`)
	require.NoError(t, err)
	out = <-verified
	require.Contains(t, out, "OK: ")
	require.NotContains(t, out, "INCOMPLETE")
	require.True(t, strings.HasSuffix(out, "<nil>"), out)
	_, err = db.Exec(`DELETE FROM events WHERE id = 2`)
	require.NoError(t, err)
	out, err = cli(t, dir, "verify", "--url", base, "--key", key)
	require.EqualError(t, err, "the trail does not verify")
	require.Contains(t, out, "FAIL id 2: missing")
}

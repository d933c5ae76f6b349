// Package e2e tests the real auditstream binary as a user runs it: built once, started as a
// separate process on a random port, driven over HTTP, and killed with SIGKILL.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/poll"
)

const adminToken = "ast-e2e-admin-token-0123456789"

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "auditstream-e2e")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "auditstream")
	build := exec.Command("go", "build", "-o", binary, "../cmd/auditstream")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building auditstream:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is one running `auditstream serve`.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	base string
	done chan struct{}
	out  *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// serve starts the binary on dataDir with extra environment and waits until it is ready.
func serve(t *testing.T, dataDir string, env ...string) *proc {
	t.Helper()
	p := start(t, dataDir, env...)
	p.waitReady()
	return p
}

// start starts the binary on dataDir with extra environment.
func start(t *testing.T, dataDir string, env ...string) *proc {
	t.Helper()
	return startVia(t, nil, dataDir, env...)
}

// startVia starts the binary as start does, through via: a command that sets something up and
// then execs the rest of its arguments (nil: none).
func startVia(t *testing.T, via []string, dataDir string, env ...string) *proc {
	t.Helper()
	addr := freePort(t)
	args := append(slices.Clone(via), binary, "serve", "--listen", addr, "--data-dir", dataDir)
	if !slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, "AUDITSTREAM_LOG_LEVEL=") }) {
		args = append(args, "--log-level", "warn") // a flag wins over the environment
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), append([]string{"AUDITSTREAM_ADMIN_TOKEN=" + adminToken}, env...)...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	p := &proc{t: t, cmd: cmd, base: "http://" + addr, done: make(chan struct{}), out: out}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("auditstream output:\n%s", out.String())
		}
	})
	return p
}

// waitReady waits until the process answers /-/ready with 200.
func (p *proc) waitReady() {
	p.t.Helper()
	poll.Until(p.t, 30*time.Second, func() error {
		select {
		case <-p.done:
			return fmt.Errorf("exited early: %s", p.out.String())
		default:
		}
		resp, err := http.Get(p.base + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("ready: %d", resp.StatusCode)
		}
		return nil
	})
}

func (p *proc) kill() {
	require.NoError(p.t, p.cmd.Process.Signal(syscall.SIGKILL))
	<-p.done
}

// allIDs pages through every stored event with keyset pagination. Callers poll it until it
// holds what they expect: an answer other than 200 (the database restarting, say) reads as
// nothing stored yet, and is logged.
func allIDs(t *testing.T, base string) []int64 {
	t.Helper()
	var ids []int64
	next := base + "/api/v4/audit_events?pagination=keyset&per_page=100&order_by=id&sort=asc"
	for next != "" {
		req, _ := http.NewRequest(http.MethodGet, next, nil)
		req.Header.Set("PRIVATE-TOKEN", adminToken)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		var page []struct {
			ID int64 `json:"id"`
		}
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Logf("listing events: %s %s", resp.Status, b)
			return nil
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&page))
		resp.Body.Close()
		for _, e := range page {
			ids = append(ids, e.ID)
		}
		next = ""
		if l := resp.Header.Get("Link"); l != "" {
			next = strings.TrimSuffix(strings.TrimPrefix(strings.SplitN(l, ">", 2)[0], "<"), ">")
		}
	}
	return ids
}

// TestCrashDuringIngest kills the process with SIGKILL while clients ingest. After a restart,
// every event that got a 201 is stored exactly once, and the store consumer carried on from
// where it stopped.
func TestCrashDuringIngest(t *testing.T) {
	dataDir := t.TempDir()
	p := serve(t, dataDir)

	var mu sync.Mutex
	acked := map[int64]bool{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := strings.Repeat(fmt.Sprintf(`{"event_type":"member_created","entity_type":"Group","entity_path":"crash/g%d","entity_id":%d,"author_id":1,"details":{"custom_message":"%s"}}`+"\n", c, 100+c, strings.Repeat("x", 800)), 20)
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.base+"/api/v4/audit_events", strings.NewReader(body))
				req.Header.Set("PRIVATE-TOKEN", adminToken)
				req.Header.Set("Content-Type", "application/x-ndjson")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return // the process died
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					continue
				}
				var res struct{ IDs []int64 }
				if json.Unmarshal(b, &res) == nil {
					mu.Lock()
					for _, id := range res.IDs {
						acked[id] = true
					}
					mu.Unlock()
				}
			}
		}()
	}
	// Kill once a good number of events were acknowledged, mid-stream.
	poll.Until(t, 60*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(acked) < 5000 {
			return fmt.Errorf("%d acked so far", len(acked))
		}
		return nil
	})
	p.kill()
	cancel()
	wg.Wait()
	mu.Lock()
	n := len(acked)
	mu.Unlock()
	t.Logf("%d events acknowledged before SIGKILL", n)

	p2 := serve(t, dataDir)
	var ids []int64
	poll.Until(t, 60*time.Second, func() error {
		ids = allIDs(t, p2.base)
		if len(ids) < n {
			return fmt.Errorf("%d of %d acknowledged events stored", len(ids), n)
		}
		return nil
	})
	stored := map[int64]int{}
	for _, id := range ids {
		stored[id]++
	}
	for id := range acked {
		require.Equal(t, 1, stored[id], "acknowledged event %d must be stored exactly once", id)
	}
	for id, c := range stored {
		require.Equal(t, 1, c, "event %d stored %d times", id, c)
	}
	// The store consumer resumed: no lag remains and new events flow.
	status := postOne(t, p2.base)
	require.Equal(t, http.StatusCreated, status)
	poll.Until(t, 30*time.Second, func() error {
		if got := len(allIDs(t, p2.base)); got != len(ids)+1 {
			return fmt.Errorf("stored %d, want %d", got, len(ids)+1)
		}
		return nil
	})
	// Whatever was in flight to the store at the kill is redelivered after the ack wait (10s).
	poll.Until(t, 30*time.Second, func() error {
		if m := metric(t, p2.base, "auditstream_store_lag_events"); m != "auditstream_store_lag_events 0" {
			return fmt.Errorf("%s", m)
		}
		return nil
	})
}

func postOne(t *testing.T, base string) int {
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v4/audit_events", strings.NewReader(`{"event_type":"user_created","entity_type":"Instance"}`))
	req.Header.Set("PRIVATE-TOKEN", adminToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func metric(t *testing.T, base, name string) string {
	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), name+" ") {
			return sc.Text()
		}
	}
	return ""
}

// TestGracefulShutdown: SIGTERM drains and exits 0; events acknowledged before it are stored.
func TestGracefulShutdown(t *testing.T) {
	dataDir := t.TempDir()
	p := serve(t, dataDir)
	for range 50 {
		require.Equal(t, http.StatusCreated, postOne(t, p.base))
	}
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("did not exit within 30s of SIGTERM")
	}
	require.Equal(t, 0, p.cmd.ProcessState.ExitCode(), p.out.String())
	p2 := serve(t, dataDir)
	poll.Until(t, 30*time.Second, func() error {
		if got := len(allIDs(t, p2.base)); got != 50 {
			return fmt.Errorf("stored %d of 50", got)
		}
		return nil
	})
}

// TestFirstStartPrintsToken runs the binary with no admin token configured.
// TestServeTakesItsMemoryLimitFromItsCgroup: started in a cgroup limited to 512 MiB, serve
// sets Go's soft memory limit to 90% of it, so that near it the garbage collector works harder
// instead of the process being killed or stalling (docs/deployment.md, "Memory"); --memory-limit-ratio 0
// leaves the runtime's limit alone.
func TestServeTakesItsMemoryLimitFromItsCgroup(t *testing.T) {
	cg := memoryCgroup(t, 512<<20)
	via := []string{"sh", "-c", `echo $$ > "$0/cgroup.procs" && exec "$@"`, cg}

	p := startVia(t, via, t.TempDir(), "AUDITSTREAM_LOG_LEVEL=info", "GOMEMLIMIT=")
	p.waitReady()
	require.Equal(t, "go_gc_gomemlimit_bytes 4.8318382e+08", metric(t, p.base, "go_gc_gomemlimit_bytes"))
	require.Contains(t, p.out.String(), `"container_bytes":536870912,"soft_limit_bytes":483183820`)

	off := startVia(t, via, t.TempDir(), "AUDITSTREAM_MEMORY_LIMIT_RATIO=0", "GOMEMLIMIT=")
	off.waitReady()
	require.Equal(t, "go_gc_gomemlimit_bytes 9.223372036854776e+18", metric(t, off.base, "go_gc_gomemlimit_bytes"))
}

// memoryCgroup makes a cgroup with a memory limit under this process's own, for processes to
// be started in, and removes it after them. It skips the test where the machine lets none be
// made: that takes root and a memory controller it may write (cgroup v1, or v2 with the
// controller delegated).
func memoryCgroup(t *testing.T, limit int64) string {
	t.Helper()
	self, _ := os.ReadFile("/proc/self/cgroup")
	var parent, file string
	for line := range strings.SplitSeq(string(self), "\n") {
		parts := strings.SplitN(line, ":", 3)
		switch {
		case len(parts) != 3:
		case slices.Contains(strings.Split(parts[1], ","), "memory"):
			parent, file = filepath.Join("/sys/fs/cgroup/memory", parts[2]), "memory.limit_in_bytes"
			if _, err := os.Stat(parent); err != nil { // the host's path, with the container's cgroup mounted
				parent = "/sys/fs/cgroup/memory"
			}
		case parts[0] == "0" && parts[1] == "" && parent == "":
			parent, file = filepath.Join("/sys/fs/cgroup", parts[2]), "memory.max"
		}
	}
	dir := filepath.Join(parent, fmt.Sprintf("auditstream-e2e-%d", os.Getpid()))
	if parent == "" || os.Mkdir(dir, 0o755) != nil {
		t.Skip("this machine lets no cgroup be made here (root and a writable memory controller are needed)")
	}
	t.Cleanup(func() { _ = os.Remove(dir) }) // runs after the processes' cleanups: they were registered later
	if err := os.WriteFile(filepath.Join(dir, file), []byte(fmt.Sprint(limit)), 0o644); err != nil {
		t.Skipf("this machine lets no memory limit be set on a cgroup: %v", err)
	}
	return dir
}

func TestFirstStartPrintsToken(t *testing.T) {
	dataDir := t.TempDir()
	addr := freePort(t)
	cmd := exec.Command(binary, "serve", "--listen", addr, "--data-dir", dataDir)
	cmd.Env = os.Environ()
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	poll.Until(t, 30*time.Second, func() error {
		if !strings.Contains(out.String(), "and the API at http://"+addr) {
			return fmt.Errorf("no banner yet: %s", out.String())
		}
		return nil
	})
	require.Contains(t, out.String(), "First start: created an admin token")
	require.Contains(t, out.String(), "    ast-")
}

// TestLogResetKeepsIDsUnique: with the log's files gone but the database kept, the next event
// gets an id after every stored one instead of reusing id 1 (which the store would silently keep
// as the old event).
func TestLogResetKeepsIDsUnique(t *testing.T) {
	dataDir := t.TempDir()
	p := serve(t, dataDir)
	for range 3 {
		require.Equal(t, http.StatusCreated, postOne(t, p.base))
	}
	poll.Until(t, 20*time.Second, func() error {
		if n := len(allIDs(t, p.base)); n != 3 {
			return fmt.Errorf("stored %d", n)
		}
		return nil
	})
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	<-p.done
	require.NoError(t, os.RemoveAll(filepath.Join(dataDir, "jetstream")))

	p2 := serve(t, dataDir)
	req, _ := http.NewRequest(http.MethodPost, p2.base+"/api/v4/audit_events", strings.NewReader(`{"event_type":"user_created","entity_type":"Instance"}`))
	req.Header.Set("PRIVATE-TOKEN", adminToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(b))
	require.JSONEq(t, `{"ids":[4]}`, string(b))
	poll.Until(t, 20*time.Second, func() error {
		if ids := allIDs(t, p2.base); len(ids) != 4 {
			return fmt.Errorf("stored %v", ids)
		}
		return nil
	})
}

// TestDataDirIsExclusive: a second process on the same data directory refuses to start instead
// of corrupting the embedded log; the first keeps serving.
func TestDataDirIsExclusive(t *testing.T) {
	dataDir := t.TempDir()
	p := serve(t, dataDir)
	out, err := exec.Command(binary, "serve", "--listen", freePort(t), "--data-dir", dataDir).CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "in use by another auditstream process")
	require.Equal(t, http.StatusCreated, postOne(t, p.base))
}

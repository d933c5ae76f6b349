package e2e

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/natstest"
	"github.com/auditstream/auditstream/internal/poll"
)

// pgServer is a PostgreSQL server of the test's own, so that the test can restart it.
type pgServer struct {
	t   *testing.T
	bin string
	dir string
	run []string // runs a command as the postgres user when the test runs as root
	url string
}

func startPostgres(t *testing.T) *pgServer {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	if len(bins) == 0 {
		if os.Getenv("CI") == "" {
			t.Skip("PostgreSQL is not installed (scripts/test.sh installs it); the test fails instead when CI is set")
		}
		t.Fatal("PostgreSQL is not installed: scripts/test.sh must install it")
	}
	sort.Strings(bins)
	dir, err := os.MkdirTemp("", "auditstream-e2e-pg")
	require.NoError(t, err)
	pg := &pgServer{t: t, bin: bins[len(bins)-1], dir: dir}
	if os.Getuid() == 0 {
		u, err := user.Lookup("postgres")
		require.NoError(t, err)
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		require.NoError(t, os.Chown(dir, uid, gid))
		pg.run = []string{"runuser", "-u", "postgres", "--"}
	}
	port := natstest.FreePort(t)
	pg.url = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	pg.exec("initdb", "-D", filepath.Join(dir, "data"), "-A", "trust", "-U", "postgres")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "opts"), []byte(fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", port, dir)), 0o644))
	pg.start()
	t.Cleanup(func() {
		pg.stop()
		os.RemoveAll(dir)
	})
	return pg
}

func (pg *pgServer) exec(tool string, args ...string) {
	pg.t.Helper()
	cmd := append(append([]string{}, pg.run...), append([]string{filepath.Join(pg.bin, tool)}, args...)...)
	out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput()
	require.NoError(pg.t, err, "%s: %s", tool, out)
}

func (pg *pgServer) start() {
	opts, err := os.ReadFile(filepath.Join(pg.dir, "opts"))
	require.NoError(pg.t, err)
	pg.exec("pg_ctl", "-D", filepath.Join(pg.dir, "data"), "-l", filepath.Join(pg.dir, "log"), "-w", "-t", "60", "-o", string(opts), "start")
}

// stop kills the server as a crash would (immediate mode: no checkpoint).
func (pg *pgServer) stop() {
	cmd := append(append([]string{}, pg.run...), filepath.Join(pg.bin, "pg_ctl"), "-D", filepath.Join(pg.dir, "data"), "-m", "immediate", "stop")
	_ = exec.Command(cmd[0], cmd[1:]...).Run()
}

// natsCluster is three NATS servers with JetStream, clustered on loopback, in this process.
// streamReplicas reports the replica count of the auditstream stream.
func streamReplicas(t *testing.T, nc *natstest.Cluster) int {
	t.Helper()
	s, err := nc.JetStream(t).Stream(t.Context(), "AUDIT_EVENTS")
	require.NoError(t, err)
	return s.CachedInfo().Config.Replicas
}

// clusterEnv is the environment of a replica of the cluster.
func clusterEnv(t *testing.T, nc *natstest.Cluster, pg *pgServer) []string {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return []string{"AUDITSTREAM_NATS_URL=" + nc.URL(), "AUDITSTREAM_DATABASE_URL=" + pg.url, "AUDITSTREAM_LOG_LEVEL=info",
		"AUDITSTREAM_SECRET_KEY=" + base64.StdEncoding.EncodeToString(key), "AUDITSTREAM_ALLOW_PRIVATE_DESTINATIONS=true"}
}

// acked collects the ids of events the service answered 201 for.
type acked struct {
	mu  sync.Mutex
	ids map[int64]bool
}

func (a *acked) add(ids []int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range ids {
		a.ids[id] = true
	}
}

func (a *acked) list() []int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]int64, 0, len(a.ids))
	for id := range a.ids {
		out = append(out, id)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// keyedEvents makes n events with idempotency keys prefix-0…, so that a retry after a 503 or a
// dropped connection does not store them twice.
func keyedEvents(prefix string, n int) []byte {
	var evs []map[string]any
	for i := range n {
		evs = append(evs, map[string]any{"event_type": "user_created", "entity_type": "User", "entity_id": 5000 + i,
			"entity_path": fmt.Sprintf("user%d", i), "author_id": 1, "idempotency_key": fmt.Sprintf("%s-%d", prefix, i)})
	}
	b, _ := json.Marshal(evs)
	return b
}

// ingestRetrying posts batches to base until each is accepted, retrying what fails (a 503
// while the log elects a leader, a refused connection).
func ingestRetrying(t *testing.T, base, prefix string, batches, size int, into *acked) {
	t.Helper()
	for b := range batches {
		body := keyedEvents(fmt.Sprintf("%s-%d", prefix, b), size)
		poll.Until(t, 60*time.Second, func() error {
			ids, _, err := ingest(base, body)
			if err != nil {
				return err
			}
			into.add(ids)
			return nil
		})
	}
}

// TestClusterOfReplicas runs two replicas on a three-node NATS cluster and PostgreSQL, and takes
// parts away: a replica (SIGKILL), a NATS node, PostgreSQL (restarted). Every acknowledged event
// is stored exactly once and delivered at least once; the black-box suite passes against the
// cluster; an ordered destination keeps its order across the loss of a replica.
func TestClusterOfReplicas(t *testing.T) {
	pg := startPostgres(t)
	nc := natstest.StartCluster(t, 3)
	env := clusterEnv(t, nc, pg)
	dirA, dirB := t.TempDir(), t.TempDir()
	a, b := start(t, dirA, env...), start(t, dirB, env...) // at once: both migrate and bootstrap
	a.waitReady()
	b.waitReady()
	require.Equal(t, 3, streamReplicas(t, nc), "a cluster gets three replicas by default")

	t.Run("BlackBox", func(t *testing.T) { blackBox(t, a.base, b.base) })

	rc := newReceiver(t, "127.0.0.1:0")
	gid, destID := createDestination(t, b.base, rc.url())
	all := &acked{ids: map[int64]bool{}}
	ingestRetrying(t, a.base, "a", 10, 50, all)
	ingestRetrying(t, b.base, "b", 10, 50, all)

	// Both replicas deliver, and each shows the cluster's count, not its own share.
	poll.Until(t, 30*time.Second, func() error {
		sa, sb := statusOf(t, a.base, gid), statusOf(t, b.base, gid)
		if sa.DeliveredEvents < 1000 || sa.DeliveredEvents != sb.DeliveredEvents || sa.Status != "healthy" || sb.Status != "healthy" {
			return fmt.Errorf("A shows %s, B shows %s", sa, sb)
		}
		return nil
	})

	// SIGKILL replica A while it takes events; B goes on.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			ids, _, err := ingest(a.base, keyedEvents(fmt.Sprintf("a-kill-%d", i), 20))
			if err != nil {
				return // A is gone
			}
			all.add(ids)
		}
	}()
	poll.Until(t, 10*time.Second, func() error {
		if n := len(all.list()); n < 1200 {
			return fmt.Errorf("%d acked", n)
		}
		return nil
	})
	a.kill()
	wg.Wait()
	ingestRetrying(t, b.base, "b-after-kill", 10, 50, all)

	// A NATS node goes away: the stream (R3) stays available.
	nc.Nodes[0].Shutdown()
	ingestRetrying(t, b.base, "b-after-nats", 10, 50, all)

	// PostgreSQL restarts: ingest keeps accepting (the log buffers), the store catches up.
	pg.stop()
	ingestRetrying(t, b.base, "b-during-pg", 10, 50, all)
	pg.start()

	want := all.list()
	t.Logf("%d events acknowledged", len(want))
	poll.Until(t, 60*time.Second, func() error {
		stored := allIDs(t, b.base)
		seen := make(map[int64]bool, len(stored))
		for _, id := range stored {
			if seen[id] {
				return fmt.Errorf("event %d stored twice", id)
			}
			seen[id] = true
		}
		for _, id := range want {
			if !seen[id] {
				return fmt.Errorf("acknowledged event %d not stored (%d stored)", id, len(stored))
			}
		}
		return nil
	})
	poll.Until(t, 60*time.Second, func() error {
		if missing := rc.missing(want); len(missing) > 0 {
			return fmt.Errorf("%d of %d acknowledged events not delivered to destination %d, first %d", len(missing), len(want), destID, missing[0])
		}
		return nil
	})
	t.Logf("delivered with %d duplicates", rc.duplicates())

	t.Run("OrderedFailOver", func(t *testing.T) {
		a2 := serve(t, dirA, env...) // A again, as a new process
		ordered := newReceiver(t, "127.0.0.1:0")
		data := gql(t, a2.base, `mutation($cfg: JSON!) { instanceAuditEventStreamingDestinationsCreate(input: {category: "http", config: $cfg}) { errors externalAuditEventDestination { id } } }`,
			map[string]any{"cfg": map[string]any{"url": ordered.url(), "delivery": map[string]any{"ordered": true}}})
		p := data["instanceAuditEventStreamingDestinationsCreate"].(map[string]any)
		require.Empty(t, p["errors"])
		gid := p["externalAuditEventDestination"].(map[string]any)["id"].(string)
		n, err := strconv.ParseInt(gid[strings.LastIndexByte(gid, '/')+1:], 10, 64)
		require.NoError(t, err)
		lease := fmt.Sprintf(`"lease":"delivery-p%d"`, n%32) // destinations are shared out in 32 partitions
		sent := &acked{ids: map[int64]bool{}}
		ordered.setDelay(20 * time.Millisecond) // one at a time: the holder has events in flight when it dies
		ingestRetrying(t, a2.base, "ordered-1", 5, 40, sent)
		poll.Until(t, 30*time.Second, func() error {
			if n := len(ordered.firstDeliveryOrder()); n < 20 || n >= len(sent.list()) {
				return fmt.Errorf("%d of %d delivered: wait until delivery is under way", n, len(sent.list()))
			}
			return nil
		})
		// The replica that holds the lease of the destination's partition delivers it.
		var holder, survivor *proc
		poll.Until(t, 30*time.Second, func() error {
			for _, c := range [][2]*proc{{a2, b}, {b, a2}} {
				if holdsLease(c[0], lease) {
					holder, survivor = c[0], c[1]
					return nil
				}
			}
			return fmt.Errorf("no replica holds %s", lease)
		})
		killed := time.Now()
		holder.kill()
		ingestRetrying(t, survivor.base, "ordered-2", 5, 40, sent)
		poll.Until(t, 90*time.Second, func() error {
			if missing := ordered.missing(sent.list()); len(missing) > 0 {
				return fmt.Errorf("%d of %d not delivered", len(missing), len(sent.list()))
			}
			return nil
		})
		t.Logf("the other replica delivered everything %v after the holder was killed", time.Since(killed).Round(time.Millisecond))
		require.True(t, holdsLease(survivor, lease), "the survivor took the lease over")
		firsts := ordered.firstDeliveryOrder()
		for i := 1; i < len(firsts); i++ {
			require.Less(t, firsts[i-1], firsts[i], "event %d first arrived after event %d", firsts[i], firsts[i-1])
		}

		// A change after the fail-over restarts delivery, which goes on.
		data = gql(t, survivor.base, `mutation($id: AuditEventsInstanceExternalStreamingDestinationID!) { instanceAuditEventStreamingDestinationsUpdate(input: {id: $id, name: "ordered after fail-over"}) { errors } }`,
			map[string]any{"id": gid})
		require.Empty(t, data["instanceAuditEventStreamingDestinationsUpdate"].(map[string]any)["errors"])
		ordered.setDelay(0)
		after := &acked{ids: map[int64]bool{}}
		ingestRetrying(t, survivor.base, "ordered-3", 1, 20, after)
		poll.Until(t, 60*time.Second, func() error {
			if missing := ordered.missing(after.list()); len(missing) > 0 {
				return fmt.Errorf("%d of %d not delivered after the change; status %s", len(missing), len(after.list()), statusOf(t, survivor.base, gid))
			}
			return nil
		})
		require.Equal(t, "healthy", statusOf(t, survivor.base, gid).Status)
	})
}

// holdsLease reports whether the last word of p's log on the lease is that it took it.
func holdsLease(p *proc, lease string) bool {
	held := false
	for line := range strings.Lines(p.out.String()) {
		if strings.Contains(line, lease) {
			held = strings.Contains(line, "took a lease")
		}
	}
	return held
}

// blackBox is the suite that runs against any deployment: one embedded process, or several
// replicas sharing a cluster. bases are the replicas' URLs; it ingests through each, reads
// through another, and configures a destination on one that the others deliver to.
func blackBox(t *testing.T, bases ...string) {
	other := func(i int) string { return bases[(i+1)%len(bases)] }
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	group := "bb-" + suffix
	rc := newReceiver(t, "127.0.0.1:0")
	var groupID int64 = 900_000 + time.Now().UnixNano()%100_000
	require.Equal(t, http.StatusCreated, apiCall(t, bases[0], http.MethodPost, "/api/v4/groups", adminToken,
		map[string]any{"name": group, "path": group, "id": groupID}, nil))
	data := gql(t, bases[0], `mutation($g: ID!, $cfg: JSON!) { groupAuditEventStreamingDestinationsCreate(input: {groupPath: $g, category: "http", config: $cfg}) { errors externalAuditEventDestination { id } } }`,
		map[string]any{"g": group, "cfg": map[string]any{"url": rc.url()}})
	require.Empty(t, data["groupAuditEventStreamingDestinationsCreate"].(map[string]any)["errors"])

	var ids []int64
	for i, base := range bases {
		var res struct {
			IDs []int64 `json:"ids"`
		}
		evs := []map[string]any{{"event_type": "member_created", "entity_type": "Group", "entity_id": groupID, "entity_path": group, "author_id": 1,
			"details": map[string]any{"custom_message": fmt.Sprintf("black box through replica %d", i)}}}
		require.Equal(t, http.StatusCreated, apiCall(t, base, http.MethodPost, "/api/v4/audit_events", adminToken, evs, &res))
		ids = append(ids, res.IDs...)
	}
	for i := range bases {
		poll.Until(t, 30*time.Second, func() error {
			var evs []struct {
				ID int64 `json:"id"`
			}
			if s := apiCall(t, other(i), http.MethodGet, "/api/v4/groups/"+group+"/audit_events", adminToken, nil, &evs); s != http.StatusOK {
				return fmt.Errorf("status %d", s)
			}
			got := map[int64]bool{}
			for _, e := range evs {
				got[e.ID] = true
			}
			for _, id := range ids {
				if !got[id] {
					return fmt.Errorf("event %d not readable through %s", id, other(i))
				}
			}
			return nil
		})
	}
	poll.Until(t, 30*time.Second, func() error {
		if missing := rc.missing(ids); len(missing) > 0 {
			return fmt.Errorf("%d of %d events not delivered", len(missing), len(ids))
		}
		return nil
	})
	// A test event through every replica, and the UI's sign-in page answers on each.
	for _, base := range bases {
		gid := data["groupAuditEventStreamingDestinationsCreate"].(map[string]any)["externalAuditEventDestination"].(map[string]any)["id"].(string)
		res := sendTestEvent(t, base, gid)
		require.True(t, res.Success, "test event through %s: %+v", base, res)
		resp, err := http.Get(base + "/users/sign_in")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
}

// TestBlackBoxEmbedded runs the black-box suite against one process on its embedded defaults.
func TestBlackBoxEmbedded(t *testing.T) {
	p := serve(t, t.TempDir(), "AUDITSTREAM_ALLOW_PRIVATE_DESTINATIONS=true")
	blackBox(t, p.base)
}

// TestClusterManyDestinations: two replicas share 2,000 destinations (each holds partitions of
// them), one is killed with SIGKILL while events flow, and the other delivers every
// acknowledged event.
func TestClusterManyDestinations(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 destinations on a cluster")
	}
	pg := startPostgres(t)
	nc := natstest.StartCluster(t, 3)
	env := append(clusterEnv(t, nc, pg), "AUDITSTREAM_CONFIG_MUTATIONS_PER_MINUTE=0")
	a, b := start(t, t.TempDir(), env...), start(t, t.TempDir(), env...)
	a.waitReady()
	b.waitReady()
	rc := newReceiver(t, "127.0.0.1:0")
	paths := createGroupDestinations(t, a.base, rc.url(), 2000)
	held := func(p *proc) int {
		return strings.Count(p.out.String(), `"msg":"eventlog: took a lease","lease":"delivery-p`)
	}
	poll.Until(t, 30*time.Second, func() error {
		if held(a) == 0 || held(b) == 0 {
			return fmt.Errorf("partitions taken: A %d, B %d", held(a), held(b))
		}
		return nil
	})
	var want []int64
	want = append(want, mustIngest(t, a.base, groupEvents(paths, "member_created"))...)
	want = append(want, mustIngest(t, b.base, groupEvents(paths, "member_created"))...)
	a.kill()
	for range 3 {
		var ids []int64
		poll.Until(t, 30*time.Second, func() error {
			var err error
			ids, _, err = ingest(b.base, groupEvents(paths, "member_created"))
			return err
		})
		want = append(want, ids...)
	}
	// Minutes, not seconds: with the race detector and the other packages' tests on the same two
	// cores, the surviving replica's catch-up of a thousand destinations is slow.
	poll.Until(t, 4*time.Minute, func() error {
		if miss := rc.missing(want); len(miss) > 0 {
			var groups []string // want holds one event per group in paths' order, five times
			for _, id := range miss[:min(len(miss), 10)] {
				i := slices.Index(want, id)
				groups = append(groups, fmt.Sprintf("%d (batch %d, %s)", id, i/len(paths), paths[i%len(paths)]))
			}
			return fmt.Errorf("%d of %d events not delivered, e.g. %v", len(miss), len(want), groups)
		}
		return nil
	})
	t.Logf("%d events to 2,000 destinations delivered across the loss of a replica; %d duplicates", len(want), rc.duplicates())
}

// Command loadgen drives a running auditstream over HTTP and reports throughput, ack latency
// percentiles, store lag and the server's peak memory. It is the load tool behind
// docs/benchmarks.md; every request loop it runs is bounded in count and time, and it only
// talks to the URL it is given (loopback in our runs).
//
//	loadgen -mode batch  -batch 1000 -clients 4  -duration 20s   # NDJSON batches as fast as acked
//	loadgen -mode single -clients 64 -duration 20s               # one event per request
//	loadgen -mode steady -rate 2000 -clients 64 -duration 30s    # fixed rate, latency percentiles
//	loadgen -mode steady -rate 20000 -batch 100 -clients 8 -duration 60s  # sustained batches, store lag
//
// The delivery modes (delivery.go) also run HTTP receivers in this process, create instance
// destinations pointing at them through GraphQL (the token must be an admin's; the server must
// run with --allow-private-destinations) and measure what arrives:
//
//	loadgen -mode latency  -rate 1000 -clients 16 -duration 30s           # ingest ack → arrival
//	loadgen -mode fanout   -dests 10 -events 30000 [-batch-max 100]        # deliveries/s of a backlog
//	loadgen -mode catchup  -rate 2000 -batch 10 -clients 8 -down 60s       # drain after an outage
//	loadgen -mode downcost -rate 1000 -batch 10 -clients 8 -duration 60s -dead 1  # CPU, RSS of a dead destination
//	loadgen -mode receive  -listen 127.0.0.1:9000 -duration 60s           # a receiver only
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	var (
		url       = flag.String("url", "http://127.0.0.1:8080", "auditstream base URL")
		token     = flag.String("token", os.Getenv("AUDITSTREAM_TOKEN"), "token with the ingest scope (default $AUDITSTREAM_TOKEN)")
		mode      = flag.String("mode", "batch", "batch, single, steady or slow (ingest; slow: steady while -attackers slow bodies of another token run); latency, fanout, catchup, downcost, groups or reads (delivery, with receivers); receive (a receiver only)")
		clients   = flag.Int("clients", 4, "concurrent clients")
		batch     = flag.Int("batch", 0, "events per request (default 1000 in batch mode, 1 in steady mode)")
		rate      = flag.Float64("rate", 2000, "events per second in steady mode (spread over the clients)")
		duration  = flag.Duration("duration", 20*time.Second, "how long to send")
		size      = flag.Int("size", 1024, "approximate encoded size of one event in bytes")
		pid       = flag.Int("pid", 0, "server process id: report its peak RSS (VmHWM) and CPU time")
		waitStore = flag.Bool("wait-store", true, "after sending, measure how long the store takes to catch up")
		groups    = flag.Int("groups", 50, "distinct top-level groups the events spread over")
		attackers = flag.Int("attackers", 8, "slow mode: connections that announce 32 MiB bodies and send a byte every 2 s")
	)
	var dc deliveryConfig
	flag.IntVar(&dc.dests, "dests", 0, "delivery modes: destinations, each with its own receiver (default 1; 10 in fanout mode)")
	flag.IntVar(&dc.events, "events", 30000, "fanout mode: events ingested before the destinations are activated")
	flag.IntVar(&dc.batchMax, "batch-max", 0, "delivery modes: the destinations' batch.maxEvents (0: one event per request)")
	flag.IntVar(&dc.batchWaitMs, "batch-wait-ms", 0, "delivery modes: the destinations' batch.maxWaitMs (0: the server's default)")
	flag.IntVar(&dc.concurrency, "concurrency", 0, "delivery modes: the destinations' delivery.concurrency (0: the server's default)")
	flag.DurationVar(&dc.down, "down", 60*time.Second, "catchup mode: how long the receiver refuses connections while events are ingested")
	flag.IntVar(&dc.dead, "dead", 1, "downcost mode: destinations that refuse connections (0: the baseline run)")
	flag.DurationVar(&dc.sample, "sample", 5*time.Second, "delivery modes: how often the server's CPU and RSS are sampled")
	flag.DurationVar(&dc.drainTimeout, "drain-timeout", 3*time.Minute, "delivery modes: how long to wait for the deliveries after sending")
	flag.StringVar(&dc.profileURL, "profile", "", "delivery modes: the server's --debug-listen base URL; take a CPU profile when the measured phase starts")
	flag.StringVar(&dc.profileOut, "profile-out", "cpu.pprof", "where -profile writes the profile")
	flag.DurationVar(&dc.profileFor, "profile-seconds", 20*time.Second, "length of the -profile CPU profile")
	flag.StringVar(&dc.restart, "restart", "", "groups mode: after the runs, SIGTERM the server (-pid), time its exit, run this shell command (it starts the server again and prints its pid) and time the first delivery to every destination")
	flag.IntVar(&dc.readers, "readers", 500, "reads mode: GraphQL readers asking at once")
	flag.StringVar(&dc.expression, "expression", "", "latency, fanout and catchup modes: a CEL expression filter set on every destination created")
	flag.BoolVar(&dc.allToOne, "all-to-one", false, "groups mode: add one instance destination that takes every event")
	flag.BoolVar(&dc.isolate, "isolate", false, "groups mode: then add an instance destination refusing connections for -down during a steady phase, and time its catch-up")
	flag.StringVar(&dc.listen, "listen", "127.0.0.1:9000", "receive mode: the receiver's address")
	flag.Parse()
	flag.Visit(func(f *flag.Flag) { dc.profileAsked = dc.profileAsked || f.Name == "profile-out" })
	if *mode == "receive" {
		dc.duration = *duration
		os.Exit(runReceive(dc))
	}
	if *token == "" {
		fmt.Fprintln(os.Stderr, "loadgen: -token or AUDITSTREAM_TOKEN is required")
		os.Exit(2)
	}
	l := &loader{url: strings.TrimSuffix(*url, "/"), token: *token, size: *size, groups: *groups,
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *clients * 2, MaxConnsPerHost: *clients * 2}, Timeout: 60 * time.Second}}
	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	if *batch == 0 {
		*batch = 1000
		if *mode != "batch" {
			*batch = 1
		}
	}
	if isDeliveryMode(*mode) {
		cancel()
		dc.mode, dc.rate, dc.clients, dc.batch, dc.duration, dc.pid = *mode, *rate, *clients, *batch, *duration, *pid
		l.stamp = true
		os.Exit(runDelivery(l, dc))
	}
	cpu0 := cpuSeconds(*pid)
	start := time.Now()
	lagDone := make(chan struct{})
	var maxLag atomic.Int64
	go func() { // sample the store's lag while sending
		defer close(lagDone)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if lag := l.storeLag(); lag > maxLag.Load() {
					maxLag.Store(lag)
				}
			}
		}
	}()
	switch *mode {
	case "batch":
		l.run(ctx, *clients, func(ctx context.Context, c int) { l.send(ctx, c, *batch, "application/x-ndjson") })
	case "single":
		l.run(ctx, *clients, func(ctx context.Context, c int) { l.send(ctx, c, 1, "application/json") })
	case "steady":
		l.steady(ctx, *clients, *batch, *rate)
	case "slow":
		stop, err := l.slowBodies(ctx, *attackers)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
		l.steady(ctx, *clients, *batch, *rate)
		stop()
	default:
		fmt.Fprintln(os.Stderr, "loadgen: -mode must be batch, single, steady, slow, latency, fanout, catchup, downcost or receive")
		os.Exit(2)
	}
	elapsed := time.Since(start)
	cpuSend := cpuSeconds(*pid) - cpu0
	<-lagDone
	ev := l.events.Load()
	fmt.Printf("mode=%s clients=%d batch=%d size=%dB duration=%s\n", *mode, *clients, *batch, *size, elapsed.Round(time.Millisecond))
	fmt.Printf("acked events: %d (%.0f events/s), requests: %d, failed requests: %d\n", ev, float64(ev)/elapsed.Seconds(), l.requests.Load(), l.failures.Load())
	lat := l.latencies()
	if len(lat) > 0 {
		fmt.Printf("ack latency per request: p50=%s p90=%s p99=%s max=%s\n", pct(lat, 50), pct(lat, 90), pct(lat, 99), lat[len(lat)-1])
	}
	rateNow := float64(ev) / elapsed.Seconds()
	fmt.Printf("store lag while sending: max %d events (%.2fs at %.0f events/s)\n", maxLag.Load(), float64(maxLag.Load())/rateNow, rateNow)
	if *waitStore {
		t0 := time.Now()
		lagAtEnd := l.storeLag()
		for lag := lagAtEnd; lag > 0 && time.Since(t0) < 5*time.Minute; lag = l.storeLag() {
			time.Sleep(20 * time.Millisecond) // polling interval
		}
		fmt.Printf("store lag when sending stopped: %d events; caught up %s later\n", lagAtEnd, time.Since(t0).Round(time.Millisecond))
	}
	if *pid != 0 {
		fmt.Printf("server peak RSS (VmHWM): %s; server CPU while sending: %.1fs (%.0f%% of one core)\n", peakRSS(*pid), cpuSend, 100*cpuSend/elapsed.Seconds())
	}
	if l.failures.Load() > 0 {
		fmt.Printf("first failure: %s\n", l.firstFailure.Load())
		os.Exit(1)
	}
}

type loader struct {
	url, token   string
	size, groups int
	client       *http.Client
	events       atomic.Int64
	requests     atomic.Int64
	failures     atomic.Int64
	firstFailure atomic.Value
	mu           sync.Mutex
	lat          []time.Duration

	// Delivery modes: stamp puts the send time in each event's details (lg_sent_ns), and acks,
	// when set, records when each acknowledged event id was acknowledged.
	stamp bool
	acks  *ackLog
}

// steady sends rate events per second spread over the clients until ctx ends.
func (l *loader) steady(ctx context.Context, clients, batch int, rate float64) {
	interval := time.Duration(float64(time.Second) * float64(clients) * float64(batch) / rate)
	ctype := "application/json"
	if batch > 1 {
		ctype = "application/x-ndjson"
	}
	l.run(ctx, clients, func(ctx context.Context, c int) {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				l.sendOne(ctx, c, batch, ctype)
			}
		}
	})
}

func (l *loader) run(ctx context.Context, clients int, f func(ctx context.Context, c int)) {
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx, c) }()
	}
	wg.Wait()
}

func (l *loader) send(ctx context.Context, c, n int, ctype string) {
	for ctx.Err() == nil {
		l.sendOne(ctx, c, n, ctype)
	}
}

// body builds n events of about l.size bytes each.
func (l *loader) body(c, n int, seq int64) []byte {
	var b bytes.Buffer
	stamp := ""
	if l.stamp { // the same size: the stamp takes the place of padding
		stamp = fmt.Sprintf(`,"lg_sent_ns":%d`, clock())
	}
	pad := strings.Repeat("x", max(0, l.size-430-len(stamp)))
	for i := range n {
		g := (int64(c)*7919 + seq + int64(i)) % int64(l.groups)
		fmt.Fprintf(&b, `{"event_type":"member_created","entity_type":"Group","entity_id":%d,"entity_path":"load-%d","author_id":%d,"author_name":"Load Tester","author_email":"load@example.com","target_id":%d,"target_type":"User","target_details":"someone","ip_address":"10.20.30.40","details":{"custom_message":"Added member %s","add":"user_access","as":"Developer"%s}}`,
			1000+g, g, 1+c, seq+int64(i), pad, stamp)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func (l *loader) sendOne(ctx context.Context, c, n int, ctype string) {
	seq := l.requests.Add(1)
	body := l.body(c, n, seq)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, l.url+"/api/v4/audit_events", bytes.NewReader(body))
	req.Header.Set("PRIVATE-TOKEN", l.token)
	req.Header.Set("Content-Type", ctype)
	t0 := time.Now()
	resp, err := l.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			l.fail(err.Error())
		}
		return
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	d := time.Since(t0)
	ackedAt := clock()
	if err != nil {
		if ctx.Err() == nil { // the run's end cancels reads in flight: not the server's failure
			l.fail("reading the response: " + err.Error())
		}
		return
	}
	if resp.StatusCode != http.StatusCreated {
		l.fail(fmt.Sprintf("%d %s", resp.StatusCode, b))
		return
	}
	var res struct{ IDs []int64 }
	if err := json.Unmarshal(b, &res); err != nil || len(res.IDs) != n {
		l.fail("bad response: " + string(b))
		return
	}
	if l.acks != nil {
		l.acks.add(res.IDs, ackedAt)
	}
	l.events.Add(int64(n))
	l.mu.Lock()
	l.lat = append(l.lat, d)
	l.mu.Unlock()
}

func (l *loader) fail(msg string) {
	if l.failures.Add(1) == 1 {
		l.firstFailure.Store(msg)
	}
}

func (l *loader) latencies() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	slices.Sort(l.lat)
	return l.lat
}

func pct(s []time.Duration, p int) time.Duration {
	return s[min(len(s)-1, len(s)*p/100)].Round(10 * time.Microsecond)
}

// storeLag reads auditstream_store_lag_events from /metrics; -1 when unknown.
func (l *loader) storeLag() int64 {
	resp, err := l.client.Get(l.url + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "auditstream_store_lag_events "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return int64(f)
		}
	}
	return -1
}

func peakRSS(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return fmt.Sprintf("%.0f MiB", float64(kb)/1024)
		}
	}
	return "unknown"
}

// cpuSeconds is the user+system CPU time of pid from /proc (clock ticks of 100 Hz).
func cpuSeconds(pid int) float64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / 100
}

package main

// The delivery modes: loadgen runs one HTTP receiver per destination in its own process,
// creates instance destinations pointing at them through GraphQL, ingests events and measures
// what arrives. Every loop is bounded by a duration, a count or -drain-timeout.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type deliveryConfig struct {
	mode                                 string
	dests, events, dead                  int
	batchMax, batchWaitMs, concurrency   int
	rate                                 float64
	clients, batch, pid, readers         int
	duration, down, sample, drainTimeout time.Duration
	profileURL, profileOut, listen       string
	profileFor                           time.Duration
	profileAsked                         bool // -profile-out given: the groups mode profiles its batched ingest
	restart, expression                  string
	isolate, allToOne                    bool
}

func isDeliveryMode(m string) bool {
	switch m {
	case "latency", "fanout", "catchup", "downcost", "groups", "reads":
		return true
	}
	return false
}

// ackLog records when each event id was acknowledged to loadgen (clock()).
type ackLog struct {
	mu  sync.Mutex
	ids []int64
	at  map[int64]int64
}

func newAckLog() *ackLog { return &ackLog{at: map[int64]int64{}} }

func (a *ackLog) add(ids []int64, at int64) {
	a.mu.Lock()
	a.ids = append(a.ids, ids...)
	for _, id := range ids {
		a.at[id] = at
	}
	a.mu.Unlock()
}

func (a *ackLog) snapshot() (ids []int64, at map[int64]int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.ids), a.at
}

func runDelivery(l *loader, c deliveryConfig) int {
	if c.dests == 0 && c.mode != "groups" {
		c.dests = 1
		if c.mode == "fanout" {
			c.dests = 10
		}
	}
	d := &deliveryRun{l: l, c: c}
	var err error
	switch c.mode {
	case "latency":
		err = d.latency()
	case "fanout":
		err = d.fanout()
	case "catchup":
		err = d.catchup()
	case "downcost":
		err = d.downcost()
	case "groups":
		err = d.groups()
	case "reads":
		err = d.reads()
	}
	for _, r := range d.recvs {
		r.stop()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		return 1
	}
	if l.failures.Load() > 0 {
		fmt.Printf("failed ingest requests: %d; first: %s\n", l.failures.Load(), l.firstFailure.Load())
		return 1
	}
	return 0
}

type deliveryRun struct {
	l       *loader
	c       deliveryConfig
	recvs   []*receiver
	gids    []string
	profile chan struct{}
}

func (d *deliveryRun) header() {
	c := d.c
	batching := "one event per request"
	if c.batchMax > 0 {
		batching = fmt.Sprintf("batch maxEvents=%d", c.batchMax)
		if c.batchWaitMs > 0 {
			batching += fmt.Sprintf(" maxWaitMs=%d", c.batchWaitMs)
		}
	}
	conc := "default concurrency"
	if c.concurrency > 0 {
		conc = fmt.Sprintf("concurrency %d", c.concurrency)
	}
	fmt.Printf("mode=%s destinations=%d (%s, %s) size=%dB\n", c.mode, c.dests, batching, conc, d.l.size)
}

// --- setup ---

// destConfig is the JSON config of a destination delivering to addr.
func (d *deliveryRun) destConfig(addr string) map[string]any {
	cfg := map[string]any{"url": "http://" + addr + "/events", "delivery": map[string]any{"bufferWhilePaused": true}}
	if d.c.concurrency > 0 {
		cfg["delivery"].(map[string]any)["concurrency"] = d.c.concurrency
	}
	if d.c.batchMax > 0 {
		b := map[string]any{"maxEvents": d.c.batchMax}
		if d.c.batchWaitMs > 0 {
			b["maxWaitMs"] = d.c.batchWaitMs
		}
		cfg["batch"] = b
	}
	return cfg
}

// setup makes n receivers (started unless down) and a destination for each.
func (d *deliveryRun) setup(n int, live func(i int) bool) error {
	for i := range n {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		r := newReceiver(fmt.Sprintf("dest-%d", i), addr)
		if live(i) {
			if err := r.start(); err != nil {
				return err
			}
		}
		d.recvs = append(d.recvs, r)
		gid, err := d.createDestination(fmt.Sprintf("loadgen-%s-%d-%d", d.c.mode, os.Getpid(), i), d.destConfig(addr))
		if err != nil {
			return err
		}
		d.gids = append(d.gids, gid)
	}
	return nil
}

// warmUp ingests one event and waits until every live receiver has it: the workers run and
// their connections are open.
func (d *deliveryRun) warmUp() error {
	acks := newAckLog()
	d.l.acks = acks
	d.l.sendOne(context.Background(), 0, 1, "application/json")
	d.l.acks = nil
	ids, _ := acks.snapshot()
	if len(ids) != 1 {
		return fmt.Errorf("warm-up event not acknowledged: %v", d.l.firstFailure.Load())
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, r := range d.recvs {
		if !r.up.Load() {
			continue
		}
		for r.arrivalOf(ids[0]) == 0 {
			if time.Now().After(deadline) {
				return fmt.Errorf("the warm-up event did not reach %s within 20s", r.name)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}

func (d *deliveryRun) gql(query string, vars map[string]any, out any) error {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, d.l.url+"/api/graphql", bytes.NewReader(body))
	req.Header.Set("PRIVATE-TOKEN", d.l.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.l.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var res struct {
		Data   json.RawMessage
		Errors []struct{ Message string }
	}
	if err := json.Unmarshal(b, &res); err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("graphql: %s: %s", resp.Status, b)
	}
	if len(res.Errors) > 0 {
		return fmt.Errorf("graphql: %s", res.Errors[0].Message)
	}
	return json.Unmarshal(res.Data, out)
}

func (d *deliveryRun) createDestination(name string, cfg map[string]any) (string, error) {
	var out struct {
		P struct {
			Errors []string
			Dest   *struct{ ID string } `json:"externalAuditEventDestination"`
		} `json:"instanceAuditEventStreamingDestinationsCreate"`
	}
	err := d.gql(`mutation($cfg: JSON!, $name: String) { instanceAuditEventStreamingDestinationsCreate(input: {category: "http", name: $name, config: $cfg, active: true}) { errors externalAuditEventDestination { id } } }`,
		map[string]any{"cfg": cfg, "name": name}, &out)
	if err != nil {
		return "", err
	}
	if len(out.P.Errors) > 0 || out.P.Dest == nil {
		return "", fmt.Errorf("creating a destination: %v", out.P.Errors)
	}
	if d.c.expression != "" {
		var set struct {
			P struct{ Errors []string } `json:"auditEventStreamingDestinationFilterExpressionSet"`
		}
		err := d.gql(`mutation($id: ID!, $e: String!) { auditEventStreamingDestinationFilterExpressionSet(input: {destinationId: $id, expression: $e}) { errors } }`,
			map[string]any{"id": out.P.Dest.ID, "e": d.c.expression}, &set)
		if err == nil && len(set.P.Errors) > 0 {
			err = fmt.Errorf("setting the expression: %v", set.P.Errors)
		}
		if err != nil {
			return "", err
		}
	}
	return out.P.Dest.ID, nil
}

func (d *deliveryRun) setActive(gid string, active bool) error {
	var out struct {
		P struct{ Errors []string } `json:"instanceAuditEventStreamingDestinationsUpdate"`
	}
	err := d.gql(`mutation($id: AuditEventsInstanceExternalStreamingDestinationID!, $active: Boolean) { instanceAuditEventStreamingDestinationsUpdate(input: {id: $id, active: $active}) { errors } }`,
		map[string]any{"id": gid, "active": active}, &out)
	if err == nil && len(out.P.Errors) > 0 {
		err = fmt.Errorf("updating a destination: %v", out.P.Errors)
	}
	return err
}

// destNumber is the number at the end of a global id.
func destNumber(gid string) string { return gid[strings.LastIndexByte(gid, '/')+1:] }

// --- measuring ---

// startProfile fetches a CPU profile of the server from now on, in the background.
func (d *deliveryRun) startProfile() {
	if d.c.profileURL == "" {
		return
	}
	d.profile = make(chan struct{})
	go func() {
		defer close(d.profile)
		u := strings.TrimSuffix(d.c.profileURL, "/") + "/debug/pprof/profile?seconds=" + strconv.Itoa(int(d.c.profileFor.Seconds()))
		resp, err := http.Get(u)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen: profile:", err)
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(d.c.profileOut)
		if err == nil {
			_, err = io.Copy(f, resp.Body)
			f.Close()
		}
		if err != nil || resp.StatusCode != http.StatusOK {
			fmt.Fprintln(os.Stderr, "loadgen: profile:", resp.Status, err)
		}
	}()
}

func (d *deliveryRun) waitProfile() {
	if d.profile != nil {
		<-d.profile
		fmt.Printf("CPU profile (%s from the start of the measured phase): %s\n", d.c.profileFor, d.c.profileOut)
	}
}

// sampler records the server's CPU seconds and RSS every interval.
type sampler struct {
	pid   int
	every time.Duration
	t0    time.Time
	mu    sync.Mutex
	at    []time.Duration
	cpu   []float64
	rss   []float64 // MiB
	busy  []float64 // the machine's busy CPU seconds (all processes)
	self  []float64 // loadgen's CPU seconds
	stop  chan struct{}
	done  chan struct{}
}

func startSampler(pid int, every time.Duration) *sampler {
	s := &sampler{pid: pid, every: every, t0: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	s.take()
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				s.take()
				return
			case <-t.C:
				s.take()
			}
		}
	}()
	return s
}

func (s *sampler) take() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.at = append(s.at, time.Since(s.t0))
	s.cpu = append(s.cpu, cpuSeconds(s.pid))
	s.rss = append(s.rss, rssMiB(s.pid))
	s.busy = append(s.busy, machineBusy())
	s.self = append(s.self, selfCPU())
}

// machineBusy is the CPU time all processes of the machine used so far (/proc/stat: everything
// but idle and iowait), in seconds.
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0
	}
	total := 0.0
	for i, v := range f[1:] {
		x, _ := strconv.ParseFloat(v, 64)
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 8 { // guest time is already counted in user
			break
		}
		total += x
	}
	return total / 100
}

func (s *sampler) end() {
	close(s.stop)
	<-s.done
}

func (s *sampler) report(what string) {
	if s.pid == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.at)
	el := (s.at[n-1] - s.at[0]).Seconds()
	cpu := s.cpu[n-1] - s.cpu[0]
	fmt.Printf("server CPU %s: %.2fs over %.1fs = %.1f%% of one core; peak RSS (VmHWM) %s\n", what, cpu, el, 100*cpu/el, peakRSS(s.pid))
	busy, self := s.busy[n-1]-s.busy[0], s.self[n-1]-s.self[0]
	fmt.Printf("machine CPU over the same time: %.0f%% of %d cores busy: server %.0f%%, loadgen %.0f%%, other processes %.0f%% (of one core)\n",
		100*busy/el/float64(runtime.NumCPU()), runtime.NumCPU(), 100*cpu/el, 100*self/el, 100*max(0, busy-cpu-self)/el)
	if other := max(0, busy-cpu-self) / el; other > 0.10 {
		fmt.Printf("WARNING: other processes took %.0f%% of a core: this run shared the machine; repeat it on a quiet one\n", 100*other)
	}
	var rss, pcts []string
	for i := range n {
		rss = append(rss, fmt.Sprintf("%.0f", s.rss[i]))
		if i > 0 && s.at[i]-s.at[i-1] >= s.every/2 { // not the last, partial interval
			pcts = append(pcts, fmt.Sprintf("%.0f", 100*(s.cpu[i]-s.cpu[i-1])/(s.at[i]-s.at[i-1]).Seconds()))
		}
	}
	fmt.Printf("server RSS (MiB) at %s: %s\n", s.times(), strings.Join(rss, " "))
	fmt.Printf("server CPU (%% of a core) per interval: %s\n", strings.Join(pcts, " "))
}

func (s *sampler) times() string {
	var ts []string
	for _, a := range s.at {
		ts = append(ts, strconv.Itoa(int(a.Round(time.Second).Seconds())))
	}
	return strings.Join(ts, ",") + " s"
}

// rssMiB is the current resident set of pid.
func rssMiB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}

// waitDelivered waits until every live receiver has every id of want, or until deadline.
func (d *deliveryRun) waitDelivered(want []int64, deadline time.Time) bool {
	n := int64(len(want))
	lastCheck := map[*receiver]time.Time{}
	for {
		complete := true
		for _, r := range d.recvs {
			if !r.up.Load() {
				return false
			}
			if r.stats().unique < n {
				complete = false
				break
			}
			if time.Since(lastCheck[r]) < 250*time.Millisecond {
				complete = false
				break
			}
			lastCheck[r] = time.Now()
			if r.missing(want) > 0 {
				complete = false
				break
			}
		}
		if complete {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// report prints per-receiver counts and returns the arrival times of want (all receivers).
func (d *deliveryRun) report(want []int64) (arrivals []int64, missing int) {
	set := make(map[int64]bool, len(want))
	for _, id := range want {
		set[id] = true
	}
	for i, r := range d.recvs {
		st := r.stats()
		m := r.missing(want)
		missing += m
		a := r.arrivals(want)
		arrivals = append(arrivals, a...)
		extra := st.unique - int64(len(a))
		if len(d.recvs) <= 12 {
			fmt.Printf("  %s (destination %s): %s; of the %d acknowledged: missing %d, duplicated %d; other events (warm-up, self-audit, requests cut off at the end) %d\n",
				r.name, destNumber(d.gids[i]), st, len(want), m, r.duplicatesOf(set), extra)
		}
	}
	return arrivals, missing
}

func ms(ns int64) string { return fmt.Sprintf("%.2fms", float64(ns)/1e6) }

func pctInt(s []int64, p float64) int64 {
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, int(float64(len(s))*p/100))]
}

func latencyLine(s []int64) string {
	slices.Sort(s)
	if len(s) == 0 {
		return "none"
	}
	return fmt.Sprintf("p50=%s p90=%s p99=%s p99.9=%s max=%s (n=%d)", ms(pctInt(s, 50)), ms(pctInt(s, 90)), ms(pctInt(s, 99)), ms(pctInt(s, 99.9)), ms(s[len(s)-1]), len(s))
}

func secs(ns int64) string { return fmt.Sprintf("%.2fs", float64(ns)/1e9) }

// timeline prints how many of the arrivals fell in each second after from.
func timeline(arrivals []int64, from int64) string {
	var counts []int
	for _, a := range arrivals {
		s := int((a - from) / 1e9)
		if s < 0 {
			s = 0
		}
		for len(counts) <= s {
			counts = append(counts, 0)
		}
		counts[s]++
	}
	var out []string
	for _, c := range counts {
		out = append(out, strconv.Itoa(c))
	}
	return strings.Join(out, " ")
}

// selfCPU is loadgen's own CPU time (it shares the machine with the server).
func selfCPU() float64 { return cpuSeconds(os.Getpid()) }

// --- the modes ---

// latency: steady ingest to one destination; ingest ack → receiver arrival per event.
func (d *deliveryRun) latency() error {
	c := d.c
	if err := d.setup(c.dests, func(int) bool { return true }); err != nil {
		return err
	}
	if err := d.warmUp(); err != nil {
		return err
	}
	d.header()
	fmt.Printf("steady %.0f events/s for %s (%d per request, %d clients)\n", c.rate, c.duration, c.batch, c.clients)
	acks := newAckLog()
	d.l.acks = acks
	d.startProfile()
	smp := startSampler(c.pid, c.sample)
	ctx, cancel := context.WithTimeout(context.Background(), c.duration)
	t0 := time.Now()
	d.l.steady(ctx, c.clients, c.batch, c.rate)
	cancel()
	el := time.Since(t0)
	smp.end()
	d.l.acks = nil
	want, ackAt := acks.snapshot()
	fmt.Printf("acked events: %d (%.0f events/s); ack latency per request: %s\n", len(want), float64(len(want))/el.Seconds(), d.l.ackLine())
	ok := d.waitDelivered(want, time.Now().Add(c.drainTimeout))
	_, missing := d.report(want)
	var lat []int64
	early := 0
	for _, r := range d.recvs {
		for _, id := range want {
			if a := r.arrivalOf(id); a != 0 {
				v := a - ackAt[id]
				if v < 0 {
					early++
				}
				lat = append(lat, v)
			}
		}
	}
	fmt.Printf("end-to-end, ingest ack → receiver arrival: %s\n", latencyLine(lat))
	fmt.Printf("  (%d events arrived before loadgen had read their ack; counted as negative)\n", early)
	var sent []int64
	for _, r := range d.recvs {
		sent = append(sent, r.sentLatencies()...)
	}
	fmt.Printf("send (request built) → receiver arrival: %s\n", latencyLine(sent))
	smp.report("while sending")
	d.waitProfile()
	if !ok || missing > 0 {
		fmt.Printf("NOT COMPLETE: %d deliveries missing after %s\n", missing, c.drainTimeout)
	}
	return nil
}

// fanout: a backlog of -events events for -dests destinations, delivered as fast as the engine
// can: the destinations are paused (buffering) while it is ingested, then activated together.
func (d *deliveryRun) fanout() error {
	c := d.c
	if err := d.setup(c.dests, func(int) bool { return true }); err != nil {
		return err
	}
	if err := d.warmUp(); err != nil {
		return err
	}
	d.header()
	for _, g := range d.gids {
		if err := d.setActive(g, false); err != nil {
			return err
		}
	}
	time.Sleep(time.Second) // the workers' last fetches (≤ 100 ms, or maxWaitMs) expire
	acks := newAckLog()
	d.l.acks = acks
	t0 := time.Now()
	bs := max(c.batch, 100)
	d.l.sendN(context.Background(), 4, bs, c.events)
	d.l.acks = nil
	want, _ := acks.snapshot()
	fmt.Printf("backlog: %d events ingested in %s while the destinations were paused (bufferWhilePaused)\n", len(want), time.Since(t0).Round(time.Millisecond))
	time.Sleep(2 * time.Second) // the store catches up; the drain competes with nothing else

	d.startProfile()
	smp := startSampler(c.pid, c.sample)
	act := clock()
	for _, g := range d.gids {
		if err := d.setActive(g, true); err != nil {
			return err
		}
	}
	fmt.Printf("activating %d destinations took %s\n", len(d.gids), secs(clock()-act))
	ok := d.waitDelivered(want, time.Now().Add(c.drainTimeout))
	smp.end()
	arr, missing := d.report(want)
	slices.Sort(arr)
	if len(arr) == 0 {
		return errors.New("nothing was delivered")
	}
	first, last := arr[0], arr[len(arr)-1]
	n := len(arr)
	p10, p90 := arr[n/10], arr[n*9/10]
	fmt.Printf("deliveries: %d of %d (%d destinations × %d events)\n", n, len(want)*len(d.recvs), len(d.recvs), len(want))
	fmt.Printf("rate from activation to the last arrival: %.0f deliveries/s (%s)\n", float64(n)/((float64(last-act))/1e9), secs(last-act))
	fmt.Printf("rate from the first to the last arrival: %.0f deliveries/s (%s; first arrival %s after activation)\n", float64(n)/(float64(last-first)/1e9), secs(last-first), secs(first-act))
	fmt.Printf("sustained rate, 10%% → 90%% of the deliveries: %.0f deliveries/s\n", float64(n*8/10)/(float64(p90-p10)/1e9))
	fmt.Printf("deliveries per second after activation: %s\n", timeline(arr, act))
	var lasts []string
	for _, r := range d.recvs {
		a := r.arrivals(want)
		if len(a) > 0 {
			lasts = append(lasts, secs(slices.Max(a)-act))
		}
	}
	fmt.Printf("each destination's last arrival after activation: %s\n", strings.Join(lasts, " "))
	smp.report("from activation to the last delivery")
	d.waitProfile()
	if !ok || missing > 0 {
		fmt.Printf("NOT COMPLETE: %d deliveries missing after %s\n", missing, c.drainTimeout)
	}
	return nil
}

// catchup: the receiver refuses connections for -down while events are ingested, then comes
// up; how long until the backlog is delivered.
func (d *deliveryRun) catchup() error {
	c := d.c
	if err := d.setup(1, func(int) bool { return false }); err != nil {
		return err
	}
	d.header()
	fmt.Printf("receiver down (connection refused) for %s while %.0f events/s are ingested (%d per request, %d clients); then up, ingest stopped\n",
		c.down, c.rate, c.batch, c.clients)
	r := d.recvs[0]
	dest := destNumber(d.gids[0])
	mctx, mcancel := context.WithCancel(context.Background())
	failTimes := d.watchFailures(mctx, dest)
	acks := newAckLog()
	d.l.acks = acks
	smp := startSampler(c.pid, c.sample)
	ctx, cancel := context.WithTimeout(context.Background(), c.down)
	start := clock()
	d.l.steady(ctx, c.clients, c.batch, c.rate)
	cancel()
	d.l.acks = nil
	want, _ := acks.snapshot()
	if err := r.start(); err != nil {
		mcancel()
		return err
	}
	up := clock()
	d.startProfile()
	fmt.Printf("acked while down: %d events (%.0f events/s); the receiver came up %s after the first event\n", len(want), float64(len(want))/(float64(up-start)/1e9), secs(up-start))
	ok := d.waitDelivered(want, time.Now().Add(c.drainTimeout))
	smp.end()
	mcancel()
	_, missing := d.report(want)
	arr := r.arrivals(want)
	slices.Sort(arr)
	st := r.stats()
	var probes []string
	for _, f := range <-failTimes {
		probes = append(probes, secs(f-start))
	}
	fmt.Printf("failed delivery requests (server metrics, 100 ms resolution), after the first event: %s\n", strings.Join(probes, " "))
	if st.first == 0 || len(arr) == 0 {
		fmt.Printf("NOTHING DELIVERED within %s of the receiver coming up\n", c.drainTimeout)
		return nil
	}
	last := arr[len(arr)-1]
	fmt.Printf("first request after recovery (the circuit's probe): %s after the receiver came up\n", secs(st.first-up))
	fmt.Printf("backlog drained: %s after the receiver came up; %s after the first delivery (%.0f events/s)\n",
		secs(last-up), secs(last-st.first), float64(len(arr))/(float64(last-st.first)/1e9))
	fmt.Printf("deliveries per second after the first delivery: %s\n", timeline(arr, st.first))
	smp.report("from the first event to the end of the drain")
	d.waitProfile()
	if !ok || missing > 0 {
		fmt.Printf("NOT COMPLETE: %d deliveries missing after %s\n", missing, c.drainTimeout)
	}
	return nil
}

// watchFailures samples the destination's failed-events counter from /metrics every 100 ms and
// returns (when ctx ends) the clock() times at which it grew: the failed requests.
func (d *deliveryRun) watchFailures(ctx context.Context, dest string) chan []int64 {
	out := make(chan []int64, 1)
	go func() {
		var times []int64
		prev := 0.0
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				out <- times
				return
			case <-t.C:
			}
			v := d.metric(`auditstream_delivery_events_failed_total{destination="` + dest + `"}`)
			if v > prev {
				times = append(times, clock())
				prev = v
			}
		}
	}()
	return out
}

// metric reads one sample of /metrics (-1 when absent).
func (d *deliveryRun) metric(name string) float64 {
	resp, err := d.l.client.Get(d.l.url + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// downcost: steady ingest with -dead destinations that refuse connections; the server's CPU
// and RSS every -sample. Run it with -dead 0 for the baseline.
func (d *deliveryRun) downcost() error {
	c := d.c
	if err := d.setup(c.dead, func(int) bool { return false }); err != nil {
		return err
	}
	c.dests = c.dead
	d.c = c
	d.header()
	fmt.Printf("steady %.0f events/s for %s (%d per request, %d clients), %d destination(s) refusing connections\n", c.rate, c.duration, c.batch, c.clients, c.dead)
	d.startProfile()
	smp := startSampler(c.pid, c.sample)
	ctx, cancel := context.WithTimeout(context.Background(), c.duration)
	t0 := time.Now()
	d.l.steady(ctx, c.clients, c.batch, c.rate)
	cancel()
	smp.end()
	ev := d.l.events.Load()
	fmt.Printf("acked events: %d (%.0f events/s); ack latency per request: %s\n", ev, float64(ev)/time.Since(t0).Seconds(), d.l.ackLine())
	smp.report("while sending")
	d.waitProfile()
	return nil
}

// sendN sends batches of n events from clients until total events were acknowledged.
func (l *loader) sendN(ctx context.Context, clients, n, total int) {
	ctype := "application/json"
	if n > 1 {
		ctype = "application/x-ndjson"
	}
	var claimed atomic.Int64
	l.run(ctx, clients, func(ctx context.Context, c int) {
		for ctx.Err() == nil && l.failures.Load() == 0 {
			k := min(int64(n), int64(total)-claimed.Add(int64(n))+int64(n))
			if k <= 0 {
				return
			}
			l.sendOne(ctx, c, int(k), ctype)
		}
	})
}

// ackLine summarises the ack latencies of the requests so far, and forgets them.
func (l *loader) ackLine() string {
	lat := l.latencies()
	defer func() { l.mu.Lock(); l.lat = nil; l.mu.Unlock() }()
	if len(lat) == 0 {
		return "none"
	}
	return fmt.Sprintf("p50=%s p99=%s max=%s", pct(lat, 50), pct(lat, 99), lat[len(lat)-1])
}

// runReceive runs one receiver until -duration or an interrupt, printing what arrived each
// second.
func runReceive(c deliveryConfig) int {
	r := newReceiver("receiver", c.listen)
	if err := r.start(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		return 1
	}
	defer r.stop()
	fmt.Printf("receiving on http://%s/ for %s\n", c.listen, c.duration)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	end := time.After(c.duration)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	prev := receiverStats{}
	for {
		select {
		case <-sig:
			fmt.Println("total:", r.stats())
			return 0
		case <-end:
			fmt.Println("total:", r.stats())
			return 0
		case <-t.C:
			st := r.stats()
			fmt.Printf("%d events/s (%d requests/s); %s\n", st.unique-prev.unique, st.requests-prev.requests, st)
			prev = st
		}
	}
}

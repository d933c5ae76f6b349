package main

// The groups mode: an instance of many top-level groups, each streaming to a destination of
// its own (all to one receiver in loadgen): what it costs to have them, to ingest into them,
// and to restart with them.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// groupsBody is one member_created event for each group in [from, to), as NDJSON.
func (l *loader) groupsBody(from, to int) []byte {
	var b bytes.Buffer
	for g := from; g < to; g++ {
		fmt.Fprintf(&b, `{"event_type":"member_created","entity_type":"Group","entity_id":%d,"entity_path":"load-%d","author_id":1,"details":{"lg_sent_ns":%d}}`+"\n", 1000+g, g, clock())
	}
	return b.Bytes()
}

// eachGroup sends one event to every group in [0, n) in requests of 1,000 and returns the ids.
func (d *deliveryRun) eachGroup(n int) ([]int64, error) {
	acks := newAckLog()
	d.l.acks = acks
	defer func() { d.l.acks = nil }()
	for from := 0; from < n; from += 1000 {
		if err := d.l.post(d.l.groupsBody(from, min(from+1000, n)), acks); err != nil {
			return nil, err
		}
	}
	ids, _ := acks.snapshot()
	return ids, nil
}

// post sends an NDJSON body and records its ids.
func (l *loader) post(body []byte, acks *ackLog) error {
	var res struct{ IDs []int64 }
	if err := l.postBody("/api/v4/audit_events", "application/x-ndjson", body, &res); err != nil {
		return err
	}
	acks.add(res.IDs, clock())
	return nil
}

// postBody POSTs body to path with the loader's token and decodes the 201 answer into out.
func (l *loader) postBody(path, contentType string, body []byte, out any) error {
	req, _ := http.NewRequest(http.MethodPost, l.url+path, bytes.NewReader(body))
	req.Header.Set("PRIVATE-TOKEN", l.token)
	req.Header.Set("Content-Type", contentType)
	resp, err := l.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("POST %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (d *deliveryRun) createGroupDestination(g int, url string) error {
	var out struct {
		P struct{ Errors []string } `json:"groupAuditEventStreamingDestinationsCreate"`
	}
	err := d.gql(`mutation($g: ID!, $cfg: JSON!) { groupAuditEventStreamingDestinationsCreate(input: {groupPath: $g, category: "http", config: $cfg}) { errors } }`,
		map[string]any{"g": "load-" + strconv.Itoa(g), "cfg": map[string]any{"url": url}}, &out)
	if err == nil && len(out.P.Errors) > 0 {
		err = fmt.Errorf("creating a destination: %v", out.P.Errors)
	}
	return err
}

// goroutines reads the server's goroutine count from its --debug-listen address; -1 unknown.
func (d *deliveryRun) goroutines() int {
	if d.c.profileURL == "" {
		return -1
	}
	resp, err := http.Get(d.c.profileURL + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "goroutine profile: total ")))
	return n
}

// groups runs the scenario; see the mode's flags in main.
func (d *deliveryRun) groups() error {
	c := d.c
	l := d.l
	r := newReceiver("receiver", mustFreeAddr())
	if err := r.start(); err != nil {
		return err
	}
	d.recvs = []*receiver{r}
	d.gids = []string{"gid://groups/0"}
	fmt.Printf("mode=groups groups=%d destinations=%d (one per group, one receiver) size=%dB\n", l.groups, c.dests, l.size)
	if _, err := d.eachGroup(l.groups); err != nil {
		return err
	}
	// Every event goes to a destination: one per group, or one instance destination for all
	// (-all-to-one: as many deliveries, one destination).
	delivering := c.dests == l.groups
	if c.allToOne {
		if _, err := d.createDestination(fmt.Sprintf("loadgen-all-%d", os.Getpid()), map[string]any{"url": "http://" + r.addr + "/all"}); err != nil {
			return err
		}
		fmt.Println("plus one instance destination that takes every event")
		delivering = true
	}
	if c.dests > 0 {
		t0 := time.Now()
		work := make(chan int)
		errs := make(chan error, 8)
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for g := range work {
					if err := d.createGroupDestination(g, "http://"+r.addr+"/g"+strconv.Itoa(g)); err != nil {
						select {
						case errs <- err:
						default:
						}
					}
				}
			}()
		}
		for g := range c.dests {
			work <- g
		}
		close(work)
		wg.Wait()
		select {
		case err := <-errs:
			return err
		default:
		}
		fmt.Printf("created %d destinations in %s (%.0f/s)\n", c.dests, time.Since(t0).Round(time.Millisecond), float64(c.dests)/time.Since(t0).Seconds())
		t1 := time.Now()
		ids, err := d.eachGroup(c.dests)
		if err != nil {
			return err
		}
		if !d.waitDelivered(ids, time.Now().Add(c.drainTimeout)) {
			return fmt.Errorf("the first event of every destination was not delivered within %s", c.drainTimeout)
		}
		fmt.Printf("one event to each destination: all %d delivered %s after the first was sent\n", len(ids), time.Since(t1).Round(time.Millisecond))
	}
	// What the destinations' creation and first events set off settles: the attempt log writes
	// the first events' successes after its 10 s window.
	time.Sleep(15 * time.Second)
	smp := startSampler(c.pid, c.sample)
	time.Sleep(10 * time.Second) // idle: nothing is sent
	smp.end()
	smp.report("idle (no events) for 10 s")
	if n := d.goroutines(); n >= 0 {
		fmt.Printf("server goroutines while idle: %d\n", n)
	} else {
		fmt.Println("server goroutines while idle: unknown (they are read from -profile's address)")
	}

	// Batched ingest over every group.
	acks := newAckLog()
	l.acks = acks
	t0 := time.Now()
	cpu0 := cpuSeconds(c.pid)
	if c.profileAsked {
		d.startProfile()
		defer d.waitProfile()
	}
	l.sendN(context.Background(), c.clients, c.batch, c.events)
	el := time.Since(t0)
	cpu := cpuSeconds(c.pid) - cpu0
	l.acks = nil
	want, ackAt := acks.snapshot()
	fmt.Printf("batched ingest: %d events in %s = %.0f events/s (%d per request, %d clients); server CPU %.1fs; ack latency %s\n",
		len(want), el.Round(time.Millisecond), float64(len(want))/el.Seconds(), c.batch, c.clients, cpu, l.ackLine())
	if delivering {
		ok := d.waitDelivered(want, time.Now().Add(c.drainTimeout))
		arr := r.arrivals(want)
		all := cpuSeconds(c.pid) - cpu0
		fmt.Printf("all delivered: %v, %d of %d, the last %s after the first was sent (ingest ack → arrival: %s)\n",
			ok, len(arr), len(want), secs(maxOf(arr)-int64(t0.Sub(clockBase))), latencyLine(ackToArrival(r, want, ackAt)))
		// What an event costs the server with its delivery, wherever it fell: during the ingest
		// (taking CPU from it) or after.
		fmt.Printf("server CPU from the ingest's start until all delivered: %.2fs = %.0f µs per event and its delivery\n",
			all, 1e6*all/float64(max(len(want), 1)))
	}
	fmt.Printf("server peak RSS (VmHWM): %s\n", peakRSS(c.pid))

	if c.rate > 0 && delivering {
		acks := newAckLog()
		l.acks = acks
		ctx, cancel := context.WithTimeout(context.Background(), c.duration)
		l.steady(ctx, c.clients, 1, c.rate)
		cancel()
		l.acks = nil
		want, ackAt := acks.snapshot()
		d.waitDelivered(want, time.Now().Add(c.drainTimeout))
		fmt.Printf("steady %.0f single events/s for %s over every group: ingest ack → arrival %s\n", c.rate, c.duration, latencyLine(ackToArrival(r, want, ackAt)))
	}
	if c.isolate && c.rate > 0 && c.dests == l.groups {
		if err := d.isolation(r); err != nil {
			return err
		}
	}
	if c.restart != "" {
		return d.restart(r)
	}
	return nil
}

// isolation adds an instance destination (it takes every event) whose receiver refuses
// connections, ingests -rate single events/s for -down, and reports the group destinations'
// latency meanwhile; then the receiver comes up, and it reports how fast the backlog arrives.
func (d *deliveryRun) isolation(r *receiver) error {
	c, l := d.c, d.l
	down := newReceiver("down", mustFreeAddr())
	if _, err := d.createDestination(fmt.Sprintf("loadgen-isolation-%d", os.Getpid()), map[string]any{"url": "http://" + down.addr + "/events"}); err != nil {
		return err
	}
	acks := newAckLog()
	l.acks = acks
	ctx, cancel := context.WithTimeout(context.Background(), c.down)
	l.steady(ctx, c.clients, 1, c.rate)
	cancel()
	l.acks = nil
	want, ackAt := acks.snapshot()
	d.waitDelivered(want, time.Now().Add(c.drainTimeout))
	fmt.Printf("with an instance destination refusing connections, steady %.0f single events/s for %s: the groups' ingest ack → arrival %s\n",
		c.rate, c.down, latencyLine(ackToArrival(r, want, ackAt)))
	if err := down.start(); err != nil {
		return err
	}
	defer down.stop()
	up := clock()
	d.recvs = []*receiver{down}
	ok := d.waitDelivered(want, time.Now().Add(c.drainTimeout))
	arr := down.arrivals(want)
	last, first := maxOf(arr), down.stats().first
	fmt.Printf("the refusing destination came up: %d of its %d events delivered (complete %v) %s later = %.0f events/s\n",
		len(arr), len(want), ok, secs(last-up), float64(len(arr))/(float64(last-up)/1e9))
	if first != 0 {
		// The wait for the circuit's probe (at most 5 s apart after a long outage) is not the
		// catch-up's speed: that is the drain after the first delivery.
		fmt.Printf("its first request after it came up (the circuit's probe): %s; the backlog drained %s after it (%.0f events/s)\n",
			secs(first-up), secs(last-first), float64(len(arr))/(float64(last-first)/1e9))
	}
	d.recvs = []*receiver{r}
	return nil
}

// restart sends the server SIGTERM, times its exit, runs -restart (which starts it again and
// prints its pid), and times how long until every destination has received an event sent as
// soon as the server is ready.
func (d *deliveryRun) restart(r *receiver) error {
	p, err := os.FindProcess(d.c.pid)
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	for syscall.Kill(d.c.pid, 0) == nil && time.Since(t0) < time.Minute {
		time.Sleep(5 * time.Millisecond) // polling interval
	}
	fmt.Printf("SIGTERM → exit: %s\n", time.Since(t0).Round(time.Millisecond))
	t1 := time.Now()
	out, err := exec.Command("bash", "-c", d.c.restart).Output()
	if err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	ready := time.Since(t1)
	ids, err := d.eachGroup(d.c.dests)
	if err != nil {
		return err
	}
	if !d.waitDelivered(ids, time.Now().Add(d.c.drainTimeout)) {
		return fmt.Errorf("after the restart, not every destination received its event within %s", d.c.drainTimeout)
	}
	fmt.Printf("restart → ready %s; → an event delivered to each of the %d destinations %s (server pid %d)\n",
		ready.Round(time.Millisecond), d.c.dests, time.Since(t1).Round(time.Millisecond), pid)
	return nil
}

func ackToArrival(r *receiver, ids []int64, ackAt map[int64]int64) []int64 {
	var out []int64
	for _, id := range ids {
		if a := r.arrivalOf(id); a != 0 {
			out = append(out, a-ackAt[id])
		}
	}
	return out
}

func maxOf(s []int64) int64 {
	var m int64
	for _, v := range s {
		m = max(m, v)
	}
	return m
}

func mustFreeAddr() string {
	a, err := freeAddr()
	if err != nil {
		panic(err)
	}
	return a
}

package main

// The reads mode: many GraphQL readers at once (issue 13: reads must cost what they read and
// not slow ingest down) while events are ingested at a steady rate.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// reads starts -dests destinations, then -readers clients each asking the destinations' status
// list again and again, while -rate events/s are ingested for -duration; it reports the ingest
// ack latency, how the reads were answered, and the server's CPU and RSS.
func (d *deliveryRun) reads() error {
	c, l := d.c, d.l
	if err := d.setup(c.dests, func(int) bool { return true }); err != nil {
		return err
	}
	if err := d.warmUp(); err != nil {
		return err
	}
	fmt.Printf("mode=reads destinations=%d readers=%d; steady %.0f events/s for %s\n", c.dests, c.readers, c.rate, c.duration)
	query := []byte(`{"query":"{ auditEventsInstanceStreamingDestinations(first: 50) { nodes { id name deliveryStatus { status pendingEvents deliveredEvents failedEvents lastError { message } } deliveryAttempts(first: 20) { at success count } } } }"}`)
	ctx, cancel := context.WithTimeout(context.Background(), c.duration)
	defer cancel()
	var ok, refused, failed atomic.Int64
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c.readers, MaxConnsPerHost: c.readers}, Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	for range c.readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, l.url+"/api/graphql", bytes.NewReader(query))
				req.Header.Set("PRIVATE-TOKEN", l.token)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
					}
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case resp.StatusCode == http.StatusOK && !bytes.Contains(b, []byte(`"errors"`)):
					ok.Add(1)
				case bytes.Contains(b, []byte("too_many_requests")) || resp.StatusCode == http.StatusTooManyRequests:
					refused.Add(1)
				default:
					failed.Add(1)
				}
			}
		}()
	}
	smp := startSampler(c.pid, c.sample)
	l.steady(ctx, c.clients, 1, c.rate)
	wg.Wait()
	smp.end()
	fmt.Printf("ingest ack latency while reading: %s; acked %d events\n", l.ackLine(), l.events.Load())
	fmt.Printf("reads answered: %d, refused (too_many_requests) %d, failed %d\n", ok.Load(), refused.Load(), failed.Load())
	smp.report("while reading and ingesting")
	if failed.Load() > 0 {
		fmt.Fprintln(os.Stderr, "loadgen: some reads failed")
	}
	return nil
}

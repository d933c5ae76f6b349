package httpdest_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/destination/httpdest"
	"github.com/auditstream/auditstream/internal/netguard"
)

// event1KB returns an event whose JSON is about 1 KB, a typical audit event with details.
func event1KB(id int64) destination.Event {
	e := event(id, eventTypeOne)
	pad := 1024 - len(e.JSON)
	e.JSON = []byte(strings.Replace(string(e.JSON), `"custom_message":"`, `"custom_message":"`+strings.Repeat("m", max(pad, 0)), 1))
	return e
}

// discardTransport answers 200 to every request from memory, after reading the body: it
// measures the sender's own cost, without sockets or a server.
type discardTransport struct{}

func (discardTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	_, _ = io.Copy(io.Discard, r.Body)
	_ = r.Body.Close()
	return &http.Response{StatusCode: http.StatusOK, Status: "200 OK", Body: http.NoBody, Header: http.Header{}, Request: r}, nil
}

// BenchmarkSend measures Send of one 1 KB event and of a batch of 100 of them: over loopback
// HTTP/1.1 to an httptest server that discards the body (allocations include the server's),
// serially and from parallel goroutines (the delivery engine's concurrency), and against an
// in-memory transport (the sender and net/http's client alone).
func BenchmarkSend(b *testing.B) {
	one := []destination.Event{event1KB(1)}
	batch := make([]destination.Event, 100)
	for i := range batch {
		batch[i] = event1KB(int64(i + 1))
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()

	clients := []struct {
		name   string
		client *http.Client
		url    string
	}{
		{"server", netguard.Policy{AllowPrivate: true}.HTTPClient(), srv.URL + "/hook"},
		{"memory", &http.Client{Transport: discardTransport{}, Timeout: time.Minute}, "https://siem.example.com/hook"},
	}
	for _, c := range clients {
		for _, bc := range []struct {
			name   string
			events []destination.Event
		}{{"event1KB", one}, {"batch100", batch}} {
			snd, err := httpdest.New(settings(c.url, false), destination.Env{HTTPClient: c.client})
			if err != nil {
				b.Fatal(err)
			}
			b.Run(c.name+"/"+bc.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(bc.events) * len(bc.events[0].JSON)))
				for b.Loop() {
					if err := snd.Send(context.Background(), bc.events); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(c.name+"-parallel/"+bc.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(bc.events) * len(bc.events[0].JSON)))
				b.SetParallelism(4) // 4 requests in flight per core, DefaultConcurrency-like
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := snd.Send(context.Background(), bc.events); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
			_ = snd.Close()
		}
	}
}

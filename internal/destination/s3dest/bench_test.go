package s3dest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/internal/destination"
)

// event1KB returns an event whose JSON is about 1 KB, a typical audit event with details.
func event1KB(id int64, at time.Time) destination.Event {
	e := event(id, "Project", "project_created", at)
	pad := 1024 - len(e.JSON)
	e.JSON = []byte(strings.Replace(string(e.JSON), `"custom_message":"`, `"custom_message":"`+strings.Repeat("m", max(pad, 0)), 1))
	return e
}

// BenchmarkSendBatch measures Send of a batch of 100 1 KB events, gzip NDJSON in one object,
// to gofakes3 over loopback HTTP (the server's cost included). Each iteration writes a new
// object, as the engine would.
func BenchmarkSendBatch(b *testing.B) {
	url, _ := fakeS3(b, bucket)
	snd := newSender(b, settings(url, bucket, secretKey, batchConfig), client)
	at := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	batch := make([]destination.Event, 100)
	size := 0
	for i := range batch {
		batch[i] = event1KB(int64(i+1), at)
		size += len(batch[i].JSON)
	}
	ctx := context.Background()
	b.SetBytes(int64(size))
	b.ReportAllocs()
	n := 0
	for ; b.Loop(); n++ {
		for i := range batch {
			batch[i].ID = int64(n*len(batch) + i + 1)
		}
		if err := snd.Send(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*len(batch))/b.Elapsed().Seconds(), "events/s")
}

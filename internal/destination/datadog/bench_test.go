package datadog

import (
	"context"
	"strings"
	"testing"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/destination/destinationtest"
)

// BenchmarkSend measures Send of one 1 KB event and of a batch of 100 to the test intake, which
// checks and decodes what Datadog would (its work, the gunzip and JSON decoding, is in the
// numbers; compare with httpdest's "server" cases).
func BenchmarkSend(b *testing.B) {
	in := newIntake(b, apiKey)
	snd, err := New(destination.Settings{Category: Category, Config: []byte(`{"url":"` + in.URL + IntakePath + `"}`), SecretToken: apiKey}, destinationtest.Allowing())
	if err != nil {
		b.Fatal(err)
	}
	defer snd.Close()
	ev := func(id int64) destination.Event {
		e := destinationtest.Event(id, "group_created")
		e.JSON = []byte(strings.Replace(string(e.JSON), `"event_name":"`, `"event_name":"`+strings.Repeat("m", max(1024-len(e.JSON), 0)), 1))
		return e
	}
	batch := make([]destination.Event, 100)
	for i := range batch {
		batch[i] = ev(int64(i + 1))
	}
	for _, bc := range []struct {
		name   string
		events []destination.Event
	}{{"event1KB", batch[:1]}, {"batch100", batch}} {
		b.Run("intake/"+bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.events) * len(bc.events[0].JSON)))
			for b.Loop() {
				if err := snd.Send(context.Background(), bc.events); err != nil {
					b.Fatal(err)
				}
			}
			in.mu.Lock()
			in.entries = nil // the intake keeps what it took: do not measure its memory
			in.mu.Unlock()
		})
	}
}

package kafka

import (
	"context"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/destination/destinationtest"
)

// event1KB returns an event whose JSON is about 1 KB, as httpdest's benchmark sends.
func event1KB(id int64) destination.Event {
	e := destinationtest.Event(id, "group_created")
	pad := 1024 - len(e.JSON)
	e.JSON = []byte(strings.Replace(string(e.JSON), `"event_name":"`, `"event_name":"`+strings.Repeat("m", max(pad, 0)), 1))
	return e
}

// BenchmarkSend measures Send of one 1 KB event and of a batch of 100 of them to an in-process
// kfake cluster of 3 brokers (SASL SCRAM-SHA-256), serially and from parallel goroutines.
// kfake's own work is in the numbers: compare with httpdest's BenchmarkSend "server" cases,
// whose httptest server is in process too.
func BenchmarkSend(b *testing.B) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(partitions, topic), kfake.EnableSASL(),
		kfake.Superuser(MechanismSCRAMSHA256, user, password))
	if err != nil {
		b.Fatal(err)
	}
	defer kc.Close()
	cfg := Config{Brokers: kc.ListenAddrs(), Topic: topic, SASLMechanism: MechanismSCRAMSHA256, Username: user}
	snd, err := newSender(cfg, destination.Settings{Category: Category, SecretToken: password}, destinationtest.Allowing(), options{})
	if err != nil {
		b.Fatal(err)
	}
	defer snd.Close()
	one := []destination.Event{event1KB(1)}
	batch := make([]destination.Event, 100)
	for i := range batch {
		batch[i] = event1KB(int64(i + 1))
	}
	for _, bc := range []struct {
		name   string
		events []destination.Event
	}{{"event1KB", one}, {"batch100", batch}} {
		b.Run("kfake/"+bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.events) * len(bc.events[0].JSON)))
			for b.Loop() {
				if err := snd.Send(context.Background(), bc.events); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("kfake-parallel/"+bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.events) * len(bc.events[0].JSON)))
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := snd.Send(context.Background(), bc.events); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

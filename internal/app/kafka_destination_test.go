package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/auditstream/auditstream/internal/poll"
)

// TestKafkaDestinationThroughTheService: an owner streams to a Kafka cluster (kfake, SASL
// SCRAM-SHA-512) with one GraphQL call; the events of the group and of its project arrive as
// records keyed by the top-level group, in one partition; the test event arrives too, and the
// password is never shown.
func TestKafkaDestinationThroughTheService(t *testing.T) {
	const password = "kafka-pa55word-for-the-test"
	kc, err := kfake.NewCluster(kfake.NumBrokers(2), kfake.SeedTopics(6, "gitlab-audit"), kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-512", "auditstream", password))
	require.NoError(t, err)
	t.Cleanup(kc.Close)

	s := start(t, "sqlite", noLimits, allowPrivate)
	w := newWorld(t, s)
	owner := w.tokens["owner"]
	id := s.createGroupDestination(owner, "org", "kafka", map[string]any{"brokers": kc.ListenAddrs()[0], "topic": "gitlab-audit",
		"saslMechanism": "SCRAM-SHA-512", "username": "auditstream", "batch": map[string]any{"maxEvents": 10, "maxWaitMs": 100}}, password)
	ids := s.ingest(w.tokens["ingest"], ev("member_created", "Group", "org", w.org.ID, w.owner.ID, "one"),
		ev("protected_branch_created", "Project", "org/sub/app", w.proj.ID, w.dev.ID, "two"))

	consumer, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.ConsumeTopics("gitlab-audit"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.SASL(scram.Auth{User: "auditstream", Pass: password}.AsSha512Mechanism()))
	require.NoError(t, err)
	t.Cleanup(consumer.Close)
	type rec struct {
		key       string
		partition int32
	}
	got := map[int64]rec{}
	poll.Until(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		consumer.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			var e struct{ ID int64 }
			if json.Unmarshal(r.Value, &e) == nil {
				got[e.ID] = rec{string(r.Key), r.Partition}
			}
		})
		if _, ok := got[ids[1]]; !ok {
			return fmt.Errorf("records of %d events, not yet event %d", len(got), ids[1])
		}
		if _, ok := got[ids[0]]; !ok {
			return fmt.Errorf("records of %d events, not yet event %d", len(got), ids[0])
		}
		return nil
	})
	require.Equal(t, "org", got[ids[0]].key)
	require.Equal(t, got[ids[0]], got[ids[1]], "a group's events share a key and a partition")

	p := s.mutate(owner, "auditEventStreamingDestinationTestEventSend",
		`mutation($id: ID!) { auditEventStreamingDestinationTestEventSend(input: {destinationId: $id}) { errors success error } }`, map[string]any{"id": id})
	require.Equal(t, true, p["success"], p)
	data := s.gqlOK(owner, `{ group(fullPath: "org") { externalAuditEventStreamingDestinations { nodes { category config secretToken deliveryStatus { status } } } } }`, nil)
	nodes := dig(data, "group", "externalAuditEventStreamingDestinations", "nodes").([]any)
	require.Len(t, nodes, 1)
	require.Equal(t, "kafka", dig(nodes[0], "category"))
	require.Equal(t, "healthy", dig(nodes[0], "deliveryStatus", "status"), nodes[0])
	require.Equal(t, "", dig(nodes[0], "secretToken"), "the SASL password is never shown")
	require.NotContains(t, fmt.Sprint(data), password)
}

package delivery_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/delivery"
	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/destination/httpdest"
	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/store"
)

func (r *rig) allFactories() map[string]destination.Factory {
	out := map[string]destination.Factory{"http": httpdest.New}
	for c, f := range r.factories {
		out[c] = f
	}
	return out
}

// TestCheckpointEventsAreOptIn: the trail's checkpoint events reach an HTTP destination only
// when its event-type filter names the type (no filter, or a category filter that covers the
// type, does not opt in), and reach object-store destinations whatever their filters.
func TestCheckpointEventsAreOptIn(t *testing.T) {
	r := newRig(t, delivery.Options{})
	// The rule looks at the category only: an "aws" destination here is delivered by the
	// HTTP sender to a real receiver, so that what it takes can be seen.
	r.stop()
	r.checkpointKeepers = map[string]bool{destination.CategoryAWS: true}
	r.factories = map[string]destination.Factory{destination.CategoryAWS: func(s destination.Settings, env destination.Env) (destination.Sender, error) {
		s.Category = "http"
		return httpdest.New(s, env)
	}}
	r.start()
	all, named, byCategory, bucket := newReceiver(t), newReceiver(t), newReceiver(t), newReceiver(t)
	r.destination(all.URL)
	r.destination(named.URL, func(p *store.DestinationCreateParams) {
		p.EventTypes = []string{"user_created", event.TypeTrailCheckpoint}
	})
	r.destination(byCategory.URL, func(p *store.DestinationCreateParams) { p.Categories = []string{"audit_events"} })
	r.destination(bucket.URL, func(p *store.DestinationCreateParams) {
		p.Category = destination.CategoryAWS
		p.EventTypes = []string{"user_created"}
	})
	ids := r.publish("user_created", event.TypeTrailCheckpoint, "user_blocked", "user_created")
	created1, cp, blocked, created2 := ids[0], ids[1], ids[2], ids[3]

	all.waitReceived(t, []int64{created1, blocked, created2}, 10*time.Second)
	named.waitReceived(t, []int64{created1, cp, created2}, 10*time.Second)
	bucket.waitReceived(t, []int64{created1, cp, created2}, 10*time.Second)
	// Events are delivered in order: the last one received means the checkpoint's turn passed.
	require.NotContains(t, all.received(), cp, "no filter does not opt in")
	require.NotContains(t, named.received(), blocked)
	require.NotContains(t, bucket.received(), blocked, "the object store's other filters still apply")

	r.publish("audit_events_retention_purged")
	later := r.publish("audit_events_retention_purged")
	byCategory.waitReceived(t, later, 10*time.Second)
	require.NotContains(t, byCategory.received(), cp, "a category filter that covers the type does not opt in")
}

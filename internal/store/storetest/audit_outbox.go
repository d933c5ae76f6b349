package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/store"
)

func outboxIDs(es []store.AuditOutboxEntry) []int64 {
	out := make([]int64, 0, len(es))
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

// testAuditOutboxRoundTrip: queued events come back byte for byte, oldest first, paged by
// keyset, and go once deleted; deleting one twice is not an error.
func (s *suite) testAuditOutboxRoundTrip(t *testing.T) {
	ctx, st := s.setup(t)

	empty, err := st.AuditOutboxList(ctx, store.AuditOutboxListParams{Limit: 10})
	require.NoError(t, err)
	require.Empty(t, empty)

	// Not normalised JSON: the store must not rewrite it (PostgreSQL's jsonb would).
	events := []string{`{"event_type":"user_created", "details" : {"z":1,"a":[true,null]}}`, `{"event_type":"group_created"}`, `{"b":2,"a":1}`}
	var added []store.AuditOutboxEntry
	for i, ev := range events {
		e, err := st.AuditOutboxAdd(ctx, store.AuditOutboxAddParams{Event: []byte(ev), Producer: []byte(`{"via":"cli"}`),
			CreatedAt: base.Add(time.Duration(i)*time.Second + 1500*time.Microsecond)})
		require.NoError(t, err)
		require.Positive(t, e.ID)
		if i > 0 {
			require.Greater(t, e.ID, added[i-1].ID, "ids grow")
		}
		require.Equal(t, ms(base.Add(time.Duration(i)*time.Second+1500*time.Microsecond)), e.CreatedAt)
		added = append(added, e)
	}
	now := time.Now()
	zero, err := st.AuditOutboxAdd(ctx, store.AuditOutboxAddParams{Event: []byte(`{}`), Producer: []byte(`{}`)})
	require.NoError(t, err)
	require.WithinDuration(t, now, zero.CreatedAt, time.Minute, "a zero CreatedAt is now")
	added = append(added, zero)

	page, err := st.AuditOutboxList(ctx, store.AuditOutboxListParams{Limit: 2})
	require.NoError(t, err)
	require.Equal(t, outboxIDs(added[:2]), outboxIDs(page))
	for i, e := range page {
		require.Equal(t, events[i], string(e.Event))
		require.Equal(t, `{"via":"cli"}`, string(e.Producer))
		require.Equal(t, added[i].CreatedAt, e.CreatedAt)
		require.Equal(t, time.UTC, e.CreatedAt.Location())
	}
	page, err = st.AuditOutboxList(ctx, store.AuditOutboxListParams{AfterID: page[1].ID, Limit: 10})
	require.NoError(t, err)
	require.Equal(t, outboxIDs(added[2:]), outboxIDs(page))

	require.NoError(t, st.AuditOutboxDelete(ctx, added[1].ID))
	require.NoError(t, st.AuditOutboxDelete(ctx, added[1].ID), "deleting a deleted event")
	require.NoError(t, st.AuditOutboxDelete(ctx, 1<<40), "deleting one that never was")
	all, err := st.AuditOutboxList(ctx, store.AuditOutboxListParams{Limit: store.MaxDeliveryListLimit})
	require.NoError(t, err)
	require.Equal(t, []int64{added[0].ID, added[2].ID, added[3].ID}, outboxIDs(all))

	for _, limit := range []int{0, -1, store.MaxDeliveryListLimit + 1} {
		_, err := st.AuditOutboxList(ctx, store.AuditOutboxListParams{Limit: limit})
		require.Error(t, err, "limit %d", limit)
	}
}

// testAuditOutboxIDsNeverReused: an emptied outbox does not hand out an id again, since the
// idempotency key an event is published with is derived from its id.
func (s *suite) testAuditOutboxIDsNeverReused(t *testing.T) {
	ctx, st := s.setup(t)
	var last int64
	for range 3 {
		e, err := st.AuditOutboxAdd(ctx, store.AuditOutboxAddParams{Event: []byte(`{}`), Producer: []byte(`{}`), CreatedAt: base})
		require.NoError(t, err)
		require.Greater(t, e.ID, last)
		last = e.ID
		require.NoError(t, st.AuditOutboxDelete(ctx, e.ID))
	}
}

// testAuditOutboxConcurrent: events queued at once all get distinct ids and are all listed.
func (s *suite) testAuditOutboxConcurrent(t *testing.T) {
	ctx, st := s.setup(t)
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			_, err := st.AuditOutboxAdd(ctx, store.AuditOutboxAddParams{Event: fmt.Appendf(nil, `{"n":%d}`, i), Producer: []byte(`{}`), CreatedAt: base})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	all, err := st.AuditOutboxList(ctx, store.AuditOutboxListParams{Limit: n + 1})
	require.NoError(t, err)
	require.Len(t, all, n)
	seen := map[string]bool{}
	for _, e := range all {
		seen[string(e.Event)] = true
	}
	require.Len(t, seen, n)
}

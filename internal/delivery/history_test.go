package delivery_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/delivery"
	"github.com/auditstream/auditstream/internal/poll"
)

// TestHistoryOfAnOutage: a real engine's history counts the failed requests of an outage, the
// backlog a status read saw meanwhile, and the deliveries after it, the same in the hour's and
// the day's buckets.
func TestHistoryOfAnOutage(t *testing.T) {
	r := newRig(t, delivery.Options{BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond, ProbeMin: 20 * time.Millisecond, ProbeMax: 100 * time.Millisecond})
	rc := newReceiver(t)
	var mu sync.Mutex
	mode := http.StatusServiceUnavailable
	rc.setAnswer(func(*http.Request, []byte) int { mu.Lock(); defer mu.Unlock(); return mode })
	d := r.destination(rc.URL)
	require.Len(t, r.engine.History(d.ID).Hour, 60, "before anything: empty buckets")
	want := r.publish(slices.Repeat([]string{"user_created"}, 100)...)
	poll.Until(t, 10*time.Second, func() error {
		if st := r.engine.Status(context.Background(), d); st.Status != delivery.StatusCircuitOpen || st.Pending != 100 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	mu.Lock()
	mode = http.StatusOK
	mu.Unlock()
	rc.waitReceived(t, want, 20*time.Second)
	poll.Until(t, 5*time.Second, func() error {
		if st := r.engine.Status(context.Background(), d); st.Delivered != 100 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	h := r.engine.History(d.ID)
	sum := func(ss []delivery.Sample) (delivered, failed, pending int64) {
		for _, s := range ss {
			delivered, failed, pending = delivered+s.Delivered, failed+s.Failed, max(pending, s.Pending)
		}
		return
	}
	st := r.engine.Status(context.Background(), d)
	for _, ss := range [][]delivery.Sample{h.Hour, h.Day} {
		delivered, failed, pending := sum(ss)
		require.EqualValues(t, 100, delivered)
		require.Equal(t, st.Failed, failed, "every failed request's events, as the status counts them")
		require.EqualValues(t, 100, pending, "the backlog the status read saw")
	}
}

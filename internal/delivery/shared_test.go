package delivery

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/stretchr/testify/require"
)

func TestMergeShowsTheClustersView(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	view := func(s sharedStatus) []byte {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	failingB := sharedStatus{Status: StatusFailing, LastSuccess: t0.Add(-time.Minute), LastError: &LastError{At: t0, StatusCode: 503, Message: "503 Service Unavailable"},
		Delivered: 10, Failed: 4, Delivering: true, Pending: 9}
	openC := sharedStatus{Status: StatusCircuitOpen, LastSuccess: t0.Add(time.Second), Delivered: 5, DeadLettered: 2, Delivering: true}
	for _, tc := range []struct {
		name   string
		own    Status
		others [][]byte
		want   Status
	}{
		{"alone", Status{Status: StatusHealthy, Delivered: 3, Pending: 7}, nil, Status{Status: StatusHealthy, Delivered: 3, Pending: 7}},
		{"a failing replica makes it failing, with its error and backlog; counters add up",
			Status{Status: StatusHealthy, LastSuccess: t0.Add(-2 * time.Minute), Delivered: 3, Pending: 7}, [][]byte{view(failingB)},
			Status{Status: StatusFailing, LastSuccess: t0.Add(-time.Minute), LastError: failingB.LastError, Delivered: 13, Failed: 4, Pending: 9}},
		{"the worst state wins; the latest success and error",
			Status{Status: StatusHealthy, LastError: &LastError{At: t0.Add(-time.Hour), Message: "old"}, Delivered: 1}, [][]byte{view(failingB), view(openC)},
			Status{Status: StatusCircuitOpen, LastSuccess: t0.Add(time.Second), LastError: failingB.LastError, Delivered: 16, Failed: 4, DeadLettered: 2}},
		{"paused is this replica's: from the configuration", Status{Status: StatusPaused}, [][]byte{view(failingB)},
			Status{Status: StatusPaused, LastSuccess: failingB.LastSuccess, LastError: failingB.LastError, Delivered: 10, Failed: 4, Pending: 9}},
		{"a record that is not a view is skipped", Status{Status: StatusHealthy}, [][]byte{[]byte("{")}, Status{Status: StatusHealthy}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, merge(tc.own, tc.others))
		})
	}
}

// TestWaitingReplicaShowsNoState: a replica that does not deliver the destination (it waits
// (another replica holds its partition) reports no state of its own, and its view on the board
// does not make the destination failing; counters and errors still count.
func TestWaitingReplicaShowsNoState(t *testing.T) {
	st := &state{id: 1}
	o := Options{}
	o.defaults()
	now := time.Now()
	st.setDelivering(true)
	for range o.CircuitAfter {
		st.failed(&destination.Failure{Kind: destination.Retryable, StatusCode: 503, Message: "503 Service Unavailable"}, 1, time.Millisecond, now, false, o)
	}
	require.Equal(t, StatusCircuitOpen, merge(st.snapshot(), nil).Status, "while it delivers")
	st.setDelivering(false) // it handed the partition over
	got := merge(st.snapshot(), nil)
	require.Equal(t, StatusHealthy, got.Status)
	require.Equal(t, int64(o.CircuitAfter), got.Failed)
	require.Equal(t, "503 Service Unavailable", got.LastError.Message)

	waiting, _ := json.Marshal(sharedStatus{Status: StatusCircuitOpen, Failed: 7})
	got = merge(Status{Status: StatusHealthy, delivering: true}, [][]byte{waiting})
	require.Equal(t, StatusHealthy, got.Status, "the other replica waits: its old circuit does not count")
	require.Equal(t, int64(7), got.Failed)
}

package ingest_test

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/ingest"
)

// slow is a rate at which no token is refilled during a test (one event in ~30 years).
const slow = 1e-9

func TestRateLimiterBurst(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		burst int
		asks  []int
		want  []bool
	}{
		{"single events up to the burst", 3, []int{1, 1, 1, 1, 1}, []bool{true, true, true, false, false}},
		{"a request of the whole burst", 5, []int{5, 1}, []bool{true, false}},
		{"a refused request takes nothing", 5, []int{3, 3, 2, 1}, []bool{true, false, true, false}},
		{"a request over the burst is never allowed", 5, []int{6, 5}, []bool{false, true}},
		{"zero events", 1, []int{1, 0}, []bool{true, true}},
		{"zero burst refuses everything", 0, []int{1, 1}, []bool{false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := &ingest.RateLimiter{Rate: slow, Burst: tt.burst}
			got := make([]bool, 0, len(tt.asks))
			for _, n := range tt.asks {
				got = append(got, l.Allow(1, n))
			}
			require.Equal(t, tt.want, got)
		})
	}
}

func TestRateLimiterTokensAreIndependent(t *testing.T) {
	t.Parallel()
	l := &ingest.RateLimiter{Rate: slow, Burst: 2}
	require.True(t, l.Allow(1, 2))
	require.False(t, l.Allow(1, 1), "token 1 is exhausted")
	require.True(t, l.Allow(2, 1), "token 2 has its own bucket")
	require.True(t, l.Allow(2, 1))
	require.False(t, l.Allow(2, 1))
	require.True(t, l.Allow(0, 2), "token id 0 is a token like any other")
	require.True(t, l.Allow(-1, 2))
	require.False(t, l.Allow(1, 1), "token 1 is still exhausted")
}

func TestRateLimiterDisabled(t *testing.T) {
	t.Parallel()
	for _, l := range []*ingest.RateLimiter{
		{},                       // zero value
		{Rate: 0, Burst: 1},      // Rate 0 disables limiting, whatever the burst
		{Rate: -1, Burst: 0},     // as does a negative rate
		{Rate: 0, Burst: 10_000}, // and a large burst changes nothing
	} {
		for i := range 10_000 {
			require.True(t, l.Allow(int64(i%3), 1_000_000))
		}
	}
}

func TestRateLimiterConcurrent(t *testing.T) {
	t.Parallel()
	l := &ingest.RateLimiter{Rate: slow, Burst: 50}
	var allowed [3]atomic.Int64
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			for range 20 {
				token := int64(g % 3)
				if l.Allow(token, 1) {
					allowed[token].Add(1)
				}
			}
		})
	}
	wg.Wait()
	for token := range allowed {
		require.Equal(t, int64(50), allowed[token].Load(), "token %d gets exactly its burst", token)
	}
}

package ingest

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimiter allows each token a rate of events per second with a burst. Safe for concurrent
// use. The zero Rate disables limiting.
type RateLimiter struct {
	Rate  float64 // events per second per token
	Burst int     // events; at least the largest request allowed

	mu       sync.Mutex
	limiters map[int64]*rate.Limiter
}

// Allow reports whether tokenID may publish n events now, and takes them if so.
func (l *RateLimiter) Allow(tokenID int64, n int) bool {
	if l.Rate <= 0 {
		return true
	}
	l.mu.Lock()
	lim, ok := l.limiters[tokenID]
	if !ok {
		if l.limiters == nil {
			l.limiters = map[int64]*rate.Limiter{}
		}
		lim = rate.NewLimiter(rate.Limit(l.Rate), l.Burst)
		l.limiters[tokenID] = lim
	}
	l.mu.Unlock()
	return lim.AllowN(time.Now(), n)
}

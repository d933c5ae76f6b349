package delivery

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/store"
)

// successWindow is how many seconds of successful requests one attempt-log row sums up.
const successWindow = 10 * time.Second

// attemptLog writes the bounded log of delivery attempts: every failure, and one row per
// destination and successWindow for the successes. It writes in the background, once a
// second, so that a busy destination costs one insert a second, not one per request.
type attemptLog struct {
	store  Store
	keep   int
	logger *slog.Logger

	mu      sync.Mutex
	pending []store.DeliveryAttempt
	sums    map[int64]*successSum
	added   map[int64]int // rows written per destination since its last trim
}

// trimEvery is how many rows a destination gets before its log is trimmed (at most once a
// minute): one DELETE per destination and minute would be thousands a minute with thousands of
// destinations, and a shutdown must not wait for them. A destination's log may so hold up to
// trimEvery rows beyond the cap per restart of the process until its next trim.
const trimEvery = 50

type successSum struct {
	from        time.Time
	count       int
	first, last int64
	status      int // the last request's HTTP status; 0 when the category has none
	totalMs     int64
	requests    int64
}

func (l *attemptLog) success(dest int64, n int, first, last int64, status int, took time.Duration, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sums == nil {
		l.sums = map[int64]*successSum{}
	}
	s := l.sums[dest]
	if s == nil {
		s = &successSum{from: now, first: first}
		l.sums[dest] = s
	}
	s.count += n
	s.last = last
	s.status = status
	s.totalMs += took.Milliseconds()
	s.requests++
}

func (l *attemptLog) failure(dest int64, n int, first, last int64, f *destination.Failure, took time.Duration, now time.Time) {
	l.add(store.DeliveryAttempt{DestinationID: dest, At: now, Count: n, FirstEventID: first, LastEventID: last,
		StatusCode: f.StatusCode, Error: f.Message, DurationMs: took.Milliseconds()})
}

func (l *attemptLog) add(a store.DeliveryAttempt) {
	l.mu.Lock()
	l.pending = append(l.pending, a)
	l.mu.Unlock()
}

// take returns the rows to write: failures, and the success sums whose window has ended (all
// of them when final).
func (l *attemptLog) take(now time.Time, final bool) []store.DeliveryAttempt {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.pending
	l.pending = nil
	for dest, s := range l.sums {
		if !final && now.Sub(s.from) < successWindow {
			continue
		}
		out = append(out, store.DeliveryAttempt{DestinationID: dest, At: now, Success: true, Count: s.count,
			FirstEventID: s.first, LastEventID: s.last, StatusCode: s.status, DurationMs: s.totalMs / max(s.requests, 1)})
		delete(l.sums, dest)
	}
	if l.added == nil {
		l.added = map[int64]int{}
	}
	for _, a := range out {
		l.added[a.DestinationID]++
	}
	return out
}

func (l *attemptLog) run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	lastTrim := time.Now()
	for {
		final := false
		select {
		case <-ctx.Done():
			final = true
		case <-t.C:
		}
		// Written detached: the rows of the last second should survive a shutdown.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if rows := l.take(time.Now(), final); len(rows) > 0 {
			if err := l.store.DeliveryAttemptAdd(wctx, rows); err != nil {
				l.logger.Warn("delivery: writing the attempt log failed; those rows are lost", "rows", len(rows), "err", err)
			}
		}
		if final || time.Since(lastTrim) > time.Minute {
			var due []int64
			l.mu.Lock()
			for dest, n := range l.added {
				if n >= trimEvery {
					due = append(due, dest)
					delete(l.added, dest)
				}
			}
			l.mu.Unlock()
			for _, dest := range due {
				if _, err := l.store.DeliveryAttemptTrim(wctx, dest, l.keep); err != nil {
					l.logger.Warn("delivery: trimming the attempt log failed", "destination_id", dest, "err", err)
				}
			}
			lastTrim = time.Now()
		}
		cancel()
		if final {
			return
		}
	}
}

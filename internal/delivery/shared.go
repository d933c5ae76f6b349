package delivery

import (
	"context"
	"encoding/json"
	"strconv"
	"time"
)

// Board shares each process's view of its destinations with the other replicas
// (eventlog.Board), so that any replica shows a destination's status as the whole cluster
// sees it.
type Board interface {
	Put(ctx context.Context, key string, value []byte) error
	Others(key string) [][]byte
}

// sharedStatus is what a replica puts on the board for one destination.
type sharedStatus struct {
	Status       string     `json:"status"`
	LastSuccess  time.Time  `json:"lastSuccess"`
	LastError    *LastError `json:"lastError,omitempty"`
	Delivered    int64      `json:"delivered"`
	Failed       int64      `json:"failed"`
	DeadLettered int64      `json:"deadLettered"`
	// Delivering: the replica delivers the destination now. The state of one that does not (it
	// waits for an ordered destination's lease) says nothing about the destination.
	Delivering bool `json:"delivering"`
}

func boardKey(id int64) string { return "dest." + strconv.FormatInt(id, 10) }

// How often a replica puts its view: at once when it changed at the last look, and at least
// every boardRefresh so that it stays within the board's TTL.
const (
	boardEvery   = time.Second
	boardRefresh = 10 * time.Second
)

// BoardTTL is how long a replica's view counts on the board without being put again.
const BoardTTL = 3 * boardRefresh

// share puts this process's view of every destination on the board until ctx ends.
func (e *Engine) share(ctx context.Context) {
	last := map[int64]sharedStatus{}
	lastPut := map[int64]time.Time{}
	t := time.NewTicker(boardEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		e.mu.Lock()
		views := make(map[int64]sharedStatus, len(e.states))
		for id, st := range e.states {
			s := st.snapshot()
			views[id] = sharedStatus{Status: s.Status, LastSuccess: s.LastSuccess, LastError: s.LastError,
				Delivered: s.Delivered, Failed: s.Failed, DeadLettered: s.DeadLettered, Delivering: s.delivering}
		}
		e.mu.Unlock()
		for id, v := range views {
			if prev, ok := last[id]; ok && sameView(prev, v) && time.Since(lastPut[id]) < boardRefresh {
				continue
			}
			b, _ := json.Marshal(v)
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err := e.board.Put(pctx, boardKey(id), b)
			cancel()
			if err != nil {
				continue // the next tick tries again
			}
			last[id], lastPut[id] = v, time.Now()
		}
	}
}

func sameView(a, b sharedStatus) bool {
	ea, eb := a.LastError, b.LastError
	return a.Status == b.Status && a.LastSuccess.Equal(b.LastSuccess) && a.Delivered == b.Delivered && a.Failed == b.Failed &&
		a.DeadLettered == b.DeadLettered && a.Delivering == b.Delivering && (ea == nil) == (eb == nil) && (ea == nil || *ea == *eb)
}

// statusRank orders the states of a working destination: the worst replica's is the
// destination's.
var statusRank = map[string]int{StatusHealthy: 1, StatusFailing: 2, StatusCircuitOpen: 3}

// merge adds the other replicas' views to this process's: the worst state among the replicas
// delivering the destination, the latest success and error, and the sums of the counters.
// Paused and error come from the configuration and stay this process's.
func merge(own Status, others [][]byte) Status {
	if statusRank[own.Status] > 0 && !own.delivering {
		own.Status = StatusHealthy // waiting for another replica's lease: its old state is stale
	}
	for _, raw := range others {
		var o sharedStatus
		if json.Unmarshal(raw, &o) != nil {
			continue
		}
		if o.Delivering && statusRank[own.Status] > 0 && statusRank[o.Status] > statusRank[own.Status] {
			own.Status = o.Status
		}
		if o.LastSuccess.After(own.LastSuccess) {
			own.LastSuccess = o.LastSuccess
		}
		if o.LastError != nil && (own.LastError == nil || o.LastError.At.After(own.LastError.At)) {
			own.LastError = o.LastError
		}
		own.Delivered += o.Delivered
		own.Failed += o.Failed
		own.DeadLettered += o.DeadLettered
	}
	return own
}

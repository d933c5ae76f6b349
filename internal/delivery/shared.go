package delivery

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"sync"
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
	// Delivering: the replica delivers the destination now (it holds its partition). The
	// state of one that does not says nothing about the destination.
	Delivering bool `json:"delivering"`
	// Pending and OldestPending: the backlog, as the delivering replica last read it.
	Pending       int64     `json:"pending"`
	OldestPending time.Time `json:"oldestPending"`
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

// share puts this process's view of every destination on the board until ctx ends, with a
// record that says this replica is alive (for sharing the partitions out), and carries out the
// replays other replicas ask for.
func (e *Engine) share(ctx context.Context) {
	last := map[int64]sharedStatus{}
	lastPut := map[int64]time.Time{}
	replays := map[int64]time.Time{}
	t := time.NewTicker(boardEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		alive, _ := json.Marshal(replicaRecord{At: time.Now()})
		_ = e.board.Put(ctx, replicaKey, alive)
		e.mu.Lock()
		ds := make([]*dest, 0, len(e.dests))
		for _, x := range e.dests {
			ds = append(ds, x)
		}
		e.mu.Unlock()
		for _, x := range ds {
			s := x.st.snapshot()
			v := sharedStatus{Status: s.Status, LastSuccess: s.LastSuccess, LastError: s.LastError,
				Delivered: s.Delivered, Failed: s.Failed, DeadLettered: s.DeadLettered, Delivering: s.delivering, Pending: -1}
			if s.delivering {
				v.Pending, v.OldestPending = x.boardBacklog(ctx)
				x.st.noteBacklog(e.env.Now(), v.Pending, v.OldestPending)
				e.replayAsked(ctx, x.id, replays)
			}
			if prev, ok := last[x.id]; ok && sameView(prev, v) && time.Since(lastPut[x.id]) < boardRefresh {
				continue
			}
			b, _ := json.Marshal(v)
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err := e.board.Put(pctx, boardKey(x.id), b)
			cancel()
			if err != nil {
				continue // the next tick tries again
			}
			last[x.id], lastPut[x.id] = v, time.Now()
		}
	}
}

// replicaKey is the board record that says a replica is alive.
const replicaKey = "replica"

// replayRequest is a replay another replica asked for.
type replayRequest struct {
	Since time.Time `json:"since"`
	At    time.Time `json:"at"`
}

func replayKey(id int64) string { return "replay." + strconv.FormatInt(id, 10) }

// requestReplay asks the replica that delivers the destination to replay it.
func (e *Engine) requestReplay(ctx context.Context, id int64, since time.Time) error {
	b, _ := json.Marshal(replayRequest{Since: since, At: time.Now()})
	return e.board.Put(ctx, replayKey(id), b)
}

// replayAsked carries out a replay another replica asked for since the last look (done holds
// the time of the last request carried out per destination).
func (e *Engine) replayAsked(ctx context.Context, id int64, done map[int64]time.Time) {
	for _, raw := range e.board.Others(replayKey(id)) {
		var r replayRequest
		if json.Unmarshal(raw, &r) != nil || !r.At.After(done[id]) {
			continue
		}
		if _, seen := done[id]; !seen && time.Since(r.At) > BoardTTL {
			continue
		}
		done[id] = r.At
		if err := e.replay(ctx, id, r.Since); err != nil {
			e.logger.Warn("delivery: a replay asked for by another replica failed", "destination_id", id, "err", err)
		}
	}
}

// sharePartitions holds the leases of a fair share of the partitions (the partitions divided by
// the replicas alive, rounded up) until ctx ends. Every second it takes free partitions while it
// holds fewer than its share, and hands back what it holds beyond it (a replica joined); a
// partition whose holder died is free once the lease expires.
func (e *Engine) sharePartitions(ctx context.Context) {
	held := map[int]context.CancelFunc{}
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(boardEvery)
	defer t.Stop()
	lost := make(chan int, Partitions)
	for {
		share := e.fairShare()
		for k, cancel := range held {
			if len(held) <= share {
				break
			}
			cancel()
			delete(held, k)
		}
		for _, k := range rand.Perm(Partitions) {
			if len(held) >= share || ctx.Err() != nil {
				break
			}
			if _, ok := held[k]; ok {
				continue
			}
			hctx, cancel := context.WithCancel(ctx)
			taken := make(chan bool, 1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok := e.leases.Hold(hctx, "delivery-p"+strconv.Itoa(k), func(lctx context.Context) {
					taken <- true
					e.mu.Lock()
					e.acquireLocked(lctx, k)
					e.mu.Unlock()
					<-lctx.Done()
					e.mu.Lock()
					rctx, rcancel := context.WithTimeout(context.WithoutCancel(lctx), 5*time.Second)
					e.releaseLocked(rctx, k)
					rcancel()
					e.mu.Unlock()
				})
				if !ok {
					taken <- false
					return
				}
				select {
				case lost <- k:
				case <-ctx.Done():
				}
			}()
			if <-taken {
				held[k] = cancel
			} else {
				cancel()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case k := <-lost:
			if c, ok := held[k]; ok { // the lease could not be renewed
				c()
				delete(held, k)
			}
		}
	}
}

// replicaRecord says a replica is alive.
type replicaRecord struct {
	At time.Time `json:"at"`
}

// replicaFresh is how recent a replica's record must be for it to count as alive.
const replicaFresh = 5 * time.Second

// fairShare is how many partitions this replica should hold.
func (e *Engine) fairShare() int {
	replicas := 1
	for _, raw := range e.board.Others(replicaKey) {
		var r replicaRecord
		if json.Unmarshal(raw, &r) == nil && time.Since(r.At) < replicaFresh {
			replicas++
		}
	}
	return (Partitions + replicas - 1) / replicas
}

func sameView(a, b sharedStatus) bool {
	ea, eb := a.LastError, b.LastError
	return a.Status == b.Status && a.LastSuccess.Equal(b.LastSuccess) && a.Delivered == b.Delivered && a.Failed == b.Failed &&
		a.DeadLettered == b.DeadLettered && a.Delivering == b.Delivering && a.Pending == b.Pending && (ea == nil) == (eb == nil) && (ea == nil || *ea == *eb)
}

// statusRank orders the states of a working destination: the worst replica's is the
// destination's.
var statusRank = map[string]int{StatusHealthy: 1, StatusFailing: 2, StatusCircuitOpen: 3}

// merge adds the other replicas' views to this process's: the worst state among the replicas
// delivering the destination, the latest success and error, and the sums of the counters.
// Paused and error come from the configuration and stay this process's.
func merge(own Status, others [][]byte) Status {
	if statusRank[own.Status] > 0 && !own.delivering {
		own.Status = StatusHealthy // another replica delivers it: this one's old state is stale
	}
	for _, raw := range others {
		var o sharedStatus
		if json.Unmarshal(raw, &o) != nil {
			continue
		}
		if o.Delivering && statusRank[own.Status] > 0 && statusRank[o.Status] > statusRank[own.Status] {
			own.Status = o.Status
		}
		if o.Delivering && !own.delivering && o.Pending >= 0 {
			own.Pending, own.OldestPending = o.Pending, o.OldestPending
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

package delivery

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/auditstream/auditstream/internal/store"
)

// positions keeps what the store holds of the delivery positions (store.DeliveryPosition), so
// that each write sends only what changed: the base of each partition this process delivers,
// and a row for each destination that is behind its base.
type positions struct {
	mu    sync.Mutex
	saved map[store.DeliveryPositionKey]store.DeliveryPosition
}

func loadPositions(ctx context.Context, st Store) (*positions, error) {
	p := &positions{saved: map[store.DeliveryPositionKey]store.DeliveryPosition{}}
	return p, p.reload(ctx, st, -1)
}

// reload reads the rows of partition k (every partition when k is -1) again.
func (p *positions) reload(ctx context.Context, st Store, k int) error {
	rows, err := st.DeliveryPositionList(ctx)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	maps.DeleteFunc(p.saved, func(key store.DeliveryPositionKey, _ store.DeliveryPosition) bool { return k < 0 || key.Partition == k })
	for _, r := range rows {
		if k < 0 || r.Partition == k {
			p.saved[store.DeliveryPositionKey{Partition: r.Partition, DestinationID: r.DestinationID}] = r
		}
	}
	return nil
}

// of is the stored position of destination id of partition k: its own row, its partition's
// base when the base stands for it, or fromUpdatedAt (a destination created since).
func (p *positions) of(k int, id int64) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r, ok := p.saved[store.DeliveryPositionKey{Partition: k, DestinationID: id}]; ok {
		return r.Position
	}
	if b, ok := p.saved[store.DeliveryPositionKey{Partition: k}]; ok && id <= b.KnownID {
		return b.Position
	}
	return fromUpdatedAt
}

// snapshot is the positions of the partitions a process delivers, at one moment.
type snapshot struct {
	parts map[int]bool
	rows  map[store.DeliveryPositionKey]store.DeliveryPosition
}

// snapshotLocked takes the positions of the owned partitions: each base is the head's position,
// and each destination whose position is below it gets a row. Only the destinations listed in
// e.behind can be below it (see dest.listLocked), so an idle instance does not walk all of its
// destinations every PositionEvery: at 100,000 that walk was most of the idle CPU. Called with
// e.mu held.
func (e *Engine) snapshotLocked() snapshot {
	base := e.head.position()
	s := snapshot{parts: map[int]bool{}, rows: map[store.DeliveryPositionKey]store.DeliveryPosition{}}
	for k, owned := range e.owned {
		if owned {
			s.parts[k] = true
		}
	}
	if checkBehind {
		e.checkBehindLocked()
	}
	list := e.behind.take()
	kept := list[:0]
	for _, x := range list {
		if e.dests[x.id] != x { // deleted
			continue
		}
		owned := s.parts[x.part]
		x.mu.Lock()
		pos := x.floorLocked()
		// Another replica's destinations are listed again when their partition is acquired.
		x.listed = owned && !x.atHeadLocked()
		keep := x.listed
		x.mu.Unlock()
		if keep {
			kept = append(kept, x)
		}
		if owned && pos < base {
			s.rows[store.DeliveryPositionKey{Partition: x.part, DestinationID: x.id}] = store.DeliveryPosition{Partition: x.part, DestinationID: x.id, Position: pos}
		}
	}
	e.behind.add(kept...)
	known := e.knownLocked()
	for k := range s.parts {
		s.rows[store.DeliveryPositionKey{Partition: k}] = store.DeliveryPosition{Partition: k, Position: base, KnownID: known[k]}
	}
	return s
}

// behindList is the destinations that may be behind the head: every destination that is not a
// member of the head with nothing outstanding, and some that are (they are let go at the next
// snapshot).
type behindList struct {
	mu    sync.Mutex
	dests []*dest
}

func (b *behindList) add(ds ...*dest) {
	b.mu.Lock()
	b.dests = append(b.dests, ds...)
	b.mu.Unlock()
}

func (b *behindList) take() []*dest {
	b.mu.Lock()
	defer b.mu.Unlock()
	ds := b.dests
	b.dests = nil
	return ds
}

// listLocked lists the destination in e.behind, if it is not yet. Every change of its mode or
// reader (setModeLocked), and every event pushed, calls it: only the snapshot lets it go, once
// it is a member of the head with nothing outstanding. Called with d.mu held.
func (d *dest) listLocked() {
	if !d.listed {
		d.listed = true
		d.e.behind.add(d)
	}
}

// atHeadLocked reports whether the destination is a member of the head with nothing
// outstanding: its position is then the head's. Called with d.mu held.
func (d *dest) atHeadLocked() bool {
	return d.mode == modeReading && d.cur == d.e.head && len(d.outstanding) == 0
}

// knownLocked is the largest destination ID of each partition, which its base row stands for.
func (e *Engine) knownLocked() [Partitions]int64 {
	if e.knownStale {
		e.known = [Partitions]int64{}
		for _, x := range e.dests {
			e.known[x.part] = max(e.known[x.part], x.id)
		}
		e.knownStale = false
	}
	return e.known
}

// checkBehind turns on checkBehindLocked: in tests, every snapshot checks that no destination
// that is behind has been left out of e.behind, which would write a position past events it
// has not delivered.
var checkBehind = testing.Testing()

func (e *Engine) checkBehindLocked() {
	for _, x := range e.dests {
		if !e.owned[x.part] {
			continue
		}
		x.mu.Lock()
		lost, m := !x.listed && !x.atHeadLocked(), x.mode
		x.mu.Unlock()
		if lost {
			panic(fmt.Sprintf("delivery: destination %d is not at the head (mode %d) but not listed as behind", x.id, m))
		}
	}
	if !e.knownStale {
		kept := e.known
		e.knownStale = true
		if e.knownLocked() != kept {
			panic("delivery: the largest destination ID kept for a partition is not the largest there is")
		}
	}
}

// save writes what changed since the last save: new and moved rows, and the removal of rows no
// longer needed (destinations back at the base, or deleted).
func (p *positions) save(ctx context.Context, st Store, s snapshot) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var params store.DeliveryPositionSaveParams
	for k, r := range s.rows {
		if old, ok := p.saved[k]; !ok || old != r {
			params.Put = append(params.Put, r)
		}
	}
	for k := range p.saved {
		if _, ok := s.rows[k]; !ok && s.parts[k.Partition] {
			params.Delete = append(params.Delete, k)
		}
	}
	if err := st.DeliveryPositionSave(ctx, params); err != nil {
		return err
	}
	for _, r := range params.Put {
		p.saved[store.DeliveryPositionKey{Partition: r.Partition, DestinationID: r.DestinationID}] = r
	}
	for _, k := range params.Delete {
		delete(p.saved, k)
	}
	return nil
}

// savePositions writes the positions every PositionEvery until ctx ends.
func (e *Engine) savePositions(ctx context.Context) {
	t := time.NewTicker(e.opts.PositionEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		e.mu.Lock()
		s := e.snapshotLocked()
		e.mu.Unlock()
		if err := e.positions.save(ctx, e.store, s); err != nil && ctx.Err() == nil {
			e.logger.Warn("delivery: writing positions failed; retrying", "err", err)
		}
	}
}

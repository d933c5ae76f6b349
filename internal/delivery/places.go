package delivery

import (
	"context"
	"sync"
)

// places bounds the goroutines that send to destinations at once, over every destination
// (Options.Senders). A destination with events to send waits in line for a place without a
// goroutine of its own, so that one event to each of 100,000 destinations costs 100,000 places
// in line, not 100,000 goroutines with a request each. A sender that has to wait (a backoff,
// a Retry-After, an open circuit, a batch filling up) gives its place up meanwhile, so that
// failing destinations cannot hold the places of those that work. The line is first come,
// first served, and a runner whose queue is still not empty after a chunk goes to its back
// when others wait: destinations take turns.
type places struct {
	mu   sync.Mutex
	free int
	line []*turn // line[head:] wait, in order; some may have left (gone)
	head int
}

// turn is one wait in line: a destination's runner to start, or a goroutine to wake.
type turn struct {
	d       *dest           // start d's runner with ctx when the place comes
	ctx     context.Context //
	ready   chan struct{}   // or close ready
	granted bool
	gone    bool // left the line before its turn
}

// ticket says whether a goroutine holds a place.
type ticket struct{ held bool }

func newPlaces(n int) *places { return &places{free: n} }

// start runs d's runner with ctx in a place of its own, now or when its turn comes. d.running
// is set, and d.wg counts the run.
func (p *places) start(d *dest, ctx context.Context) {
	p.mu.Lock()
	if p.free > 0 {
		p.free--
		p.mu.Unlock()
		go d.run(ctx, &ticket{held: true})
		return
	}
	t := &turn{d: d, ctx: ctx}
	d.turn = t
	p.line = append(p.line, t)
	p.mu.Unlock()
}

// forget takes d's runner out of the line before it started; true when it was in line (the
// caller then does what the runner would have done on ending).
func (p *places) forget(d *dest) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := d.turn
	if t == nil {
		return false
	}
	t.gone, d.turn = true, nil
	return true
}

// acquire takes a place for s, waiting in line for it; false (no place held) when ctx ended
// first.
func (p *places) acquire(ctx context.Context, s *ticket) bool {
	p.mu.Lock()
	if p.free > 0 {
		p.free--
		p.mu.Unlock()
		s.held = true
		return true
	}
	t := &turn{ready: make(chan struct{})}
	p.line = append(p.line, t)
	p.mu.Unlock()
	select {
	case <-t.ready:
		s.held = true
		return true
	case <-ctx.Done():
	}
	p.mu.Lock()
	if !t.granted {
		t.gone = true
		p.mu.Unlock()
		return false
	}
	p.mu.Unlock()
	p.release(&ticket{held: true}) // granted meanwhile: pass it on
	return false
}

// release gives s's place to the first in line, or frees it.
func (p *places) release(s *ticket) {
	if !s.held {
		return
	}
	s.held = false
	p.mu.Lock()
	for p.head < len(p.line) {
		t := p.line[p.head]
		p.line[p.head] = nil
		p.head++
		if t.gone {
			continue
		}
		t.granted = true
		if t.d != nil {
			t.d.turn = nil
		}
		p.compactLocked()
		p.mu.Unlock()
		if t.d != nil {
			go t.d.run(t.ctx, &ticket{held: true})
		} else {
			close(t.ready)
		}
		return
	}
	p.free++
	p.compactLocked()
	p.mu.Unlock()
}

func (p *places) compactLocked() {
	if p.head == len(p.line) {
		p.line, p.head = p.line[:0], 0
	} else if p.head > 1024 && p.head > len(p.line)/2 {
		n := copy(p.line, p.line[p.head:])
		clear(p.line[n:])
		p.line, p.head = p.line[:n], 0
	}
}

// waiting reports whether anyone is in line (some of whom may have left).
func (p *places) waiting() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.head < len(p.line)
}

// idle runs wait, a wait of s's goroutine, without its place, and takes a place again after.
// false when wait returned false or ctx ended; s then holds no place.
func (p *places) idle(ctx context.Context, s *ticket, wait func() bool) bool {
	p.release(s)
	if !wait() {
		return false
	}
	return p.acquire(ctx, s)
}

package delivery

import (
	"container/list"
	"sync"

	"github.com/auditstream/auditstream/internal/destination"
)

// senders keeps the senders of the destinations that sent last open, at most max of them
// (4 × Options.Senders): a sender holds what its category needs to send (an HTTP sender its
// header map and signers, about 1 KB), and 100,000 destinations that each sent once would
// otherwise keep theirs for as long as they exist. A destination whose sender was closed opens
// it again when it next sends, from its stored record.
type senders struct {
	mu  sync.Mutex
	max int
	lru list.List // of *dest with an open sender, the most recently used at the front
}

// sender returns the destination's sender, opening it when it has none. Called by its
// runner (running is set, so the sender is not closed under it).
func (d *dest) sender() (destination.Sender, error) {
	d.mu.Lock()
	s := d.snd
	if s == nil {
		var err error
		if s, err = d.e.openSender(d.d); err != nil {
			d.mu.Unlock()
			return nil, err
		}
		d.snd = s
	}
	d.mu.Unlock()
	d.e.senders.used(d)
	return s, nil
}

// used puts d at the front and closes the senders of the least recently used destinations
// over max that are not sending.
func (c *senders) used(d *dest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d.lru != nil {
		c.lru.MoveToFront(d.lru)
	} else {
		d.lru = c.lru.PushFront(d)
	}
	for n := c.lru.Len() - c.max; n > 0; n-- {
		back := c.lru.Back()
		x := back.Value.(*dest)
		x.mu.Lock()
		if x.running { // sending, or about to: kept
			x.mu.Unlock()
			c.lru.MoveToFront(back)
			continue
		}
		s := x.snd
		x.snd = nil
		x.mu.Unlock()
		c.lru.Remove(back)
		x.lru = nil
		if s != nil {
			s.Close()
		}
	}
}

// forget takes d out (its sender was closed).
func (c *senders) forget(d *dest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d.lru != nil {
		c.lru.Remove(d.lru)
		d.lru = nil
	}
}

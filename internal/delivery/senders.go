package delivery

import (
	"sync/atomic"

	"github.com/auditstream/auditstream/internal/destination"
)

// senders bounds the senders that stay open when their destinations have nothing to send:
// a sender holds what its category needs to send (an HTTP sender its header map and signers,
// about 1 KB), and 100,000 destinations that each sent once would otherwise keep theirs for as
// long as they exist. A destination opens its sender when it sends and, when its run ends
// with more than max open (Options.IdleSenders), closes it; it opens it again, from its stored
// record, when it next sends. So at most max senders are open besides those of destinations
// with events to send.
//
// Which destinations keep theirs is not the most recently used: those that ended a run while
// fewer than max were open. Keeping an order of use (a list moved on every send) cost 13% of
// the server's CPU at 10,000 destinations, in the one lock every request took; this costs an
// atomic add per open and close.
type senders struct {
	max  int64
	open atomic.Int64
}

// sender returns the destination's sender, opening it when it has none. Called by its
// runner.
func (d *dest) sender() (destination.Sender, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.snd == nil {
		s, err := d.e.openSender(d.d)
		if err != nil {
			return nil, err
		}
		d.snd = s
		d.e.senders.open.Add(1)
	}
	return d.snd, nil
}

// idleSenderLocked takes d's sender, for the caller to close after unlocking d.mu, when more
// than max are open; nil otherwise. Called with d.mu held as its run ends.
func (d *dest) idleSenderLocked() destination.Sender {
	c := d.e.senders
	if d.snd == nil || c.open.Load() <= c.max {
		return nil
	}
	s := d.snd
	d.snd = nil
	c.open.Add(-1)
	return s
}

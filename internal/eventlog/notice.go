package eventlog

import (
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// NoticeSubjectPrefix starts the subjects of notices. They are plain NATS subjects outside the
// stream's (audit.>): notices are never stored.
const NoticeSubjectPrefix = "auditstream.notice."

// noticeOriginHeader names the process that published a notice, so that it does not hear its
// own.
const noticeOriginHeader = "Auditstream-Origin"

// Notices tells the other processes connected to the same NATS that something they cache has
// changed, on a plain NATS subject per topic: a publish reaches every process subscribed at
// that moment within milliseconds, at most once, and is not kept. A process that may have
// missed notices — its connection was re-established, or its subscription dropped messages —
// is told so (a nil notice), and must then assume that anything may have changed. Safe for
// concurrent use.
type Notices struct {
	nc      *nats.Conn
	subject string
	origin  string
	sub     *nats.Subscription
	status  chan nats.Status
	done    chan struct{}

	mu      sync.Mutex // serialises calls of on
	on      func(data []byte)
	pending struct {
		sync.Mutex
		data []byte // a notice Publish could not send; sent again on reconnection
		set  bool
	}
	dropped int // messages the subscription dropped, as last seen (by receive only)
	close   sync.Once
}

// Notices follows topic until Close: on is called, one call at a time, with the data of every
// notice another process publishes on it once Notices has returned, and with nil when notices
// may have been missed (see Notices). on must not block for long: it holds up the notices
// after it.
func (l *Log) Notices(topic string, on func(data []byte)) (*Notices, error) {
	n := &Notices{nc: l.nc, subject: NoticeSubjectPrefix + topic, origin: newOwnerID(), on: on,
		status: l.nc.StatusChanged(nats.CONNECTED), done: make(chan struct{})}
	sub, err := l.nc.Subscribe(n.subject, n.receive)
	if err != nil {
		l.nc.RemoveStatusListener(n.status)
		return nil, fmt.Errorf("subscribe to %s: %w", n.subject, err)
	}
	n.sub = sub
	go n.watch()
	// Once the server has the subscription, every notice published after this returns is heard.
	if err := l.nc.FlushTimeout(noticeFlushTimeout); err != nil {
		n.Close()
		return nil, fmt.Errorf("subscribe to %s: %w", n.subject, err)
	}
	return n, nil
}

// Publish sends data to the other processes following the topic, and waits (at most a second)
// until the NATS server has it, so that a change is announced before the caller answers. An
// error means it may not have been sent: the last notice that failed is sent again when the
// connection is re-established.
func (n *Notices) Publish(data []byte) error {
	err := n.send(data)
	n.pending.Lock()
	if err != nil {
		n.pending.data, n.pending.set = append([]byte(nil), data...), true
	} else {
		n.pending.data, n.pending.set = nil, false
	}
	n.pending.Unlock()
	return err
}

func (n *Notices) send(data []byte) error {
	m := nats.NewMsg(n.subject)
	m.Header.Set(noticeOriginHeader, n.origin)
	m.Data = data
	if err := n.nc.PublishMsg(m); err != nil {
		return fmt.Errorf("publish notice on %s: %w", n.subject, err)
	}
	if err := n.nc.FlushTimeout(noticeFlushTimeout); err != nil {
		return fmt.Errorf("publish notice on %s: %w", n.subject, err)
	}
	return nil
}

// noticeFlushTimeout bounds how long Publish waits for the server.
const noticeFlushTimeout = time.Second

// Close stops following the topic. Idempotent.
func (n *Notices) Close() {
	n.close.Do(func() {
		_ = n.sub.Unsubscribe()
		n.nc.RemoveStatusListener(n.status) // closes n.status: watch returns
		<-n.done
	})
}

func (n *Notices) receive(m *nats.Msg) {
	missed := false
	if d, err := m.Sub.Dropped(); err == nil && d != n.dropped {
		n.dropped, missed = d, true
	}
	if missed {
		n.deliver(nil)
	}
	if m.Header.Get(noticeOriginHeader) == n.origin {
		return
	}
	n.deliver(m.Data)
}

// watch reports a nil notice each time the connection is re-established (notices published
// while it was down did not reach this process), and sends again a notice Publish could not.
func (n *Notices) watch() {
	defer close(n.done)
	for range n.status {
		n.deliver(nil)
		n.pending.Lock()
		if n.pending.set && n.send(n.pending.data) == nil {
			n.pending.data, n.pending.set = nil, false
		}
		n.pending.Unlock()
	}
}

func (n *Notices) deliver(data []byte) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.on(data)
}

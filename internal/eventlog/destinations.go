package eventlog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A destination's durable consumer: created when the destination first needs one, starting at a
// time; updated in place when its filters change (its position is kept); deleted when the
// destination is, or paused without buffering. The delivery engine drives it with Fetch and the
// Delivered methods.

// ConsumerSpec describes a destination's durable consumer.
type ConsumerSpec struct {
	Durable        string
	FilterSubjects []string // empty: every event
	// StartAt is where a consumer that does not exist yet starts: the first event stored at or
	// after it. An existing consumer keeps its position.
	StartAt       time.Time
	AckWait       time.Duration // default 30s
	MaxAckPending int           // default 1,000
}

// EnsureConsumer creates the consumer, or updates an existing one's filters and limits keeping
// its position. created tells which.
func (l *Log) EnsureConsumer(ctx context.Context, spec ConsumerSpec) (created bool, err error) {
	if spec.AckWait == 0 {
		spec.AckWait = 30 * time.Second
	}
	if spec.MaxAckPending == 0 {
		spec.MaxAckPending = 1000
	}
	cfg := jetstream.ConsumerConfig{
		Durable:        spec.Durable,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        spec.AckWait,
		MaxAckPending:  spec.MaxAckPending,
		MaxDeliver:     -1, // the engine decides when to give up (dead letters)
		FilterSubjects: spec.FilterSubjects,
	}
	existing, err := l.stream.Consumer(ctx, spec.Durable)
	switch {
	case err == nil:
		// Deliver policy and start time cannot change; keep the ones it was created with.
		info := existing.CachedInfo()
		cfg.DeliverPolicy, cfg.OptStartTime = info.Config.DeliverPolicy, info.Config.OptStartTime
		if _, err := l.stream.UpdateConsumer(ctx, cfg); err != nil {
			return false, fmt.Errorf("%w: update consumer %s: %w", ErrUnavailable, spec.Durable, err)
		}
		return false, nil
	case !errors.Is(err, jetstream.ErrConsumerNotFound):
		return false, fmt.Errorf("%w: consumer %s: %w", ErrUnavailable, spec.Durable, err)
	}
	start := spec.StartAt.UTC()
	cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
	if _, err := l.stream.CreateConsumer(ctx, cfg); err != nil {
		return false, fmt.Errorf("%w: create consumer %s: %w", ErrUnavailable, spec.Durable, err)
	}
	return true, nil
}

// DeleteConsumer removes a durable consumer and its position. A missing one is not an error.
func (l *Log) DeleteConsumer(ctx context.Context, durable string) error {
	l.consumers.Delete(durable)
	err := l.stream.DeleteConsumer(ctx, durable)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("%w: delete consumer %s: %w", ErrUnavailable, durable, err)
	}
	return nil
}

// Fetch pulls up to max messages from the durable consumer, waiting at most maxWait for them.
// With available set it returns as soon as it has any message (what is there now, or else the
// first to come within maxWait) instead of waiting for max: a consumer that sends events one by
// one should not hold the first back until others arrive. An empty result is not an error.
func (l *Log) Fetch(ctx context.Context, durable string, max int, maxWait time.Duration, available bool) ([]Delivered, error) {
	cons, err := l.consumer(ctx, durable)
	if err != nil {
		return nil, err
	}
	var out []Delivered
	if available {
		msgs, err := cons.FetchNoWait(max)
		if err != nil {
			l.consumers.Delete(durable)
			return nil, fmt.Errorf("%w: fetch %s: %w", ErrUnavailable, durable, err)
		}
		if out, _ = collect(msgs, nil); len(out) > 0 {
			return out, nil
		}
		max = 1
	}
	msgs, err := cons.Fetch(max, jetstream.FetchMaxWait(maxWait))
	if err != nil {
		l.consumers.Delete(durable)
		return nil, fmt.Errorf("%w: fetch %s: %w", ErrUnavailable, durable, err)
	}
	out, _ = collect(msgs, nil)
	if err := msgs.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) && len(out) == 0 {
		l.consumers.Delete(durable)
		return nil, fmt.Errorf("%w: fetch %s: %w", ErrUnavailable, durable, err)
	}
	return out, nil
}

// consumer returns the durable consumer's handle, looked up once and kept until a fetch fails
// or the consumer is deleted.
func (l *Log) consumer(ctx context.Context, durable string) (jetstream.Consumer, error) {
	if c, ok := l.consumers.Load(durable); ok {
		return c.(jetstream.Consumer), nil
	}
	c, err := l.stream.Consumer(ctx, durable)
	if err != nil {
		return nil, fmt.Errorf("%w: consumer %s: %w", ErrUnavailable, durable, err)
	}
	l.consumers.Store(durable, c)
	return c, nil
}

// collect appends a fetch's messages to dst. A message without metadata cannot be placed in
// the log: it is terminated, and counted in dropped.
func collect(msgs jetstream.MessageBatch, dst []Delivered) (out []Delivered, dropped int) {
	for m := range msgs.Messages() {
		md, err := m.Metadata()
		if err != nil {
			_ = m.Term()
			dropped++
			continue
		}
		dst = append(dst, Delivered{Seq: int64(md.Sequence.Stream), Subject: m.Subject(), Data: m.Data(),
			NumDelivered: md.NumDelivered, Time: md.Timestamp, msg: m})
	}
	return dst, dropped
}

// Ack tells the log the message is done with.
func (d Delivered) Ack() error { return d.msg.Ack() }

// Nak hands the message back, to be delivered again after delay.
func (d Delivered) Nak(delay time.Duration) error { return d.msg.NakWithDelay(delay) }

// InProgress resets the message's ack timer while it is still being worked on.
func (d Delivered) InProgress() error { return d.msg.InProgress() }

// ConsumerState is what a destination's consumer tells about its backlog.
type ConsumerState struct {
	// Pending counts the events not yet acknowledged: waiting, and handed out.
	Pending uint64
	// OldestPending is when the first event after the acknowledged floor was stored; zero when
	// nothing is pending.
	OldestPending time.Time
}

// ConsumerBacklog reports the consumer's backlog. subject narrows the search for the oldest
// pending event (the destination's widest filter, such as audit.g7.>).
func (l *Log) ConsumerBacklog(ctx context.Context, durable, subject string) (ConsumerState, error) {
	c, err := l.stream.Consumer(ctx, durable) // fetches the consumer's info
	if err != nil {
		return ConsumerState{}, fmt.Errorf("%w: consumer %s: %w", ErrUnavailable, durable, err)
	}
	ci := c.CachedInfo()
	st := ConsumerState{Pending: ci.NumPending + uint64(ci.NumAckPending)}
	if st.Pending == 0 {
		return st, nil
	}
	var opts []jetstream.GetMsgOpt
	if subject != "" {
		opts = append(opts, jetstream.WithGetMsgSubject(subject))
	}
	m, err := l.stream.GetMsg(ctx, ci.AckFloor.Stream+1, opts...)
	if err == nil {
		st.OldestPending = m.Time
	}
	return st, nil
}

// ConsumerNames lists the durable consumers whose names start with prefix.
func (l *Log) ConsumerNames(ctx context.Context, prefix string) ([]string, error) {
	lister := l.stream.ConsumerNames(ctx)
	var out []string
	for name := range lister.Name() {
		if strings.HasPrefix(name, prefix) {
			out = append(out, name)
		}
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("%w: list consumers: %w", ErrUnavailable, err)
	}
	return out, nil
}

// RewindToAckFloor makes the consumer deliver again everything after its ack floor, in order:
// what was fetched but not acknowledged (by a process that died, say) comes next, before any
// newer event. The consumer keeps its configuration (JetStream's consumer reset). Used when an
// ordered destination's deliveries start, or move to another process.
func (l *Log) RewindToAckFloor(ctx context.Context, durable string) error {
	_, err := l.stream.ResetConsumer(ctx, durable)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) { // not created yet: nothing to rewind
		return fmt.Errorf("%w: reset consumer %s: %w", ErrUnavailable, durable, err)
	}
	return nil
}

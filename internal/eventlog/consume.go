package eventlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Delivered is one message handed to a consumer's handler.
type Delivered struct {
	Seq     int64 // the event id
	Subject string
	Data    []byte
	// NumDelivered counts deliveries of this message to this consumer (1 the first time).
	NumDelivered uint64
	// Time is when the log stored the message.
	Time time.Time
	msg  jetstream.Msg
}

// ConsumerOptions configures a durable consumer.
type ConsumerOptions struct {
	// Durable is the consumer's name: its position survives restarts.
	Durable string
	// FilterSubjects restricts the consumer to these subjects (wildcards allowed); empty: all.
	FilterSubjects []string
	// Batch is the most messages handed to the handler at once. Default 500.
	Batch int
	// MaxWait is how long a fetch waits for a full batch before handing over what it has.
	// Default 50ms.
	MaxWait time.Duration
	// AckWait is how long the log waits for an ack before redelivering. Default 30s.
	AckWait time.Duration
	// MaxAckPending bounds unacknowledged messages. Default 20,000.
	MaxAckPending int
}

// Handler processes a batch. Returning nil acks every message of the batch; returning an error
// leaves them unacked (they are redelivered after a short delay), and Consume keeps going.
type Handler func(ctx context.Context, batch []Delivered) error

// Consume pulls from the durable consumer (creating it if needed) and calls h with batches
// until ctx is done. Messages are acked only after h returned nil, so a crash redelivers
// whatever was not yet handled: handlers must be idempotent.
func (l *Log) Consume(ctx context.Context, opts ConsumerOptions, logger *slog.Logger, h Handler) error {
	if opts.Batch == 0 {
		opts.Batch = 500
	}
	if opts.MaxWait == 0 {
		opts.MaxWait = 50 * time.Millisecond
	}
	if opts.AckWait == 0 {
		opts.AckWait = 30 * time.Second
	}
	if opts.MaxAckPending == 0 {
		opts.MaxAckPending = 20000
	}
	cfg := jetstream.ConsumerConfig{
		Durable:        opts.Durable,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        opts.AckWait,
		MaxAckPending:  opts.MaxAckPending,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		FilterSubjects: opts.FilterSubjects,
		Replicas:       0, // inherit the stream's
	}
	var cons jetstream.Consumer
	for {
		var err error
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		cons, err = l.stream.CreateOrUpdateConsumer(cctx, cfg)
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		logger.Warn("create consumer failed; retrying", "consumer", opts.Durable, "err", err)
		if !waitCtx(ctx, time.Second) {
			return context.Cause(ctx)
		}
	}

	backoff := 100 * time.Millisecond
	batch := make([]Delivered, 0, opts.Batch)
	for ctx.Err() == nil {
		msgs, err := cons.Fetch(opts.Batch, jetstream.FetchMaxWait(opts.MaxWait))
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			logger.Warn("fetch failed", "consumer", opts.Durable, "err", err)
			if !waitCtx(ctx, time.Second) {
				break
			}
			continue
		}
		var dropped int
		if batch, dropped = collect(msgs, batch[:0]); dropped > 0 {
			logger.Error("messages without metadata; terminated them", "consumer", opts.Durable, "messages", dropped)
		}
		if err := msgs.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			logger.Warn("fetch ended with an error", "consumer", opts.Durable, "err", err)
		}
		if len(batch) == 0 {
			continue
		}
		if err := l.handle(ctx, h, batch, opts.AckWait); err != nil {
			if ctx.Err() != nil {
				break
			}
			logger.Warn("handler failed; batch will be redelivered", "consumer", opts.Durable, "events", len(batch), "err", err)
			for _, d := range batch {
				_ = d.msg.NakWithDelay(backoff)
			}
			backoff = min(backoff*2, 10*time.Second)
			if !waitCtx(ctx, backoff) {
				break
			}
			continue
		}
		backoff = 100 * time.Millisecond
		for _, d := range batch {
			if err := d.msg.Ack(); err != nil {
				logger.Warn("ack failed; message will be redelivered", "consumer", opts.Durable, "seq", d.Seq, "err", err)
			}
		}
	}
	return context.Cause(ctx)
}

// handle runs h on batch and, while it runs, tells the log every third of ackWait that the
// batch is still being worked on, so that a slow handler's batch is not redelivered to another
// worker in the meantime.
func (l *Log) handle(ctx context.Context, h Handler, batch []Delivered, ackWait time.Duration) error {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(ackWait / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				for _, d := range batch {
					_ = d.msg.InProgress()
				}
			}
		}
	}()
	err := h(ctx, batch)
	close(done)
	wg.Wait()
	return err
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

// ConsumerLag returns how many messages the durable consumer has not yet had acked (pending
// plus in flight), or ErrUnavailable.
func (l *Log) ConsumerLag(ctx context.Context, durable string) (uint64, error) {
	c, err := l.stream.Consumer(ctx, durable) // fetches the consumer's info
	if err != nil {
		return 0, fmt.Errorf("%w: consumer %s: %w", ErrUnavailable, durable, err)
	}
	ci := c.CachedInfo()
	return ci.NumPending + uint64(ci.NumAckPending), nil
}

func waitCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// slogAdapter routes the embedded server's log lines to slog.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Noticef(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Warnf(format string, v ...any)   { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Fatalf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Errorf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Debugf(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Tracef(format string, v ...any)  {}

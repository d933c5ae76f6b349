package eventlog

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// Earlier versions kept a durable consumer per destination ("dest-<id>"). The delivery engine
// takes their positions over once (ConsumerAckFloor) and removes them.

// DeleteConsumer removes a durable consumer and its position. A missing one is not an error.
func (l *Log) DeleteConsumer(ctx context.Context, durable string) error {
	err := l.stream.DeleteConsumer(ctx, durable)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("%w: delete consumer %s: %w", ErrUnavailable, durable, err)
	}
	return nil
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

// ConsumerAckFloor returns the last event id a durable consumer had acknowledged in order (its
// ack floor).
func (l *Log) ConsumerAckFloor(ctx context.Context, durable string) (int64, error) {
	c, err := l.stream.Consumer(ctx, durable)
	if err != nil {
		return 0, fmt.Errorf("%w: consumer %s: %w", ErrUnavailable, durable, err)
	}
	return int64(c.CachedInfo().AckFloor.Stream), nil
}

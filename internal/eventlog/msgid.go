package eventlog

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// FindMsgIDs reports which of keys (idempotency keys, Nats-Msg-Id) the log holds on a message
// stored at or after since whose subject matches one of subjects (non-overlapping filters), with
// each one's sequence. It answers what the duplicate window cannot: whether a publish that may
// have happened longer ago than the window did. It reads the headers of every matching message
// stored since then, so callers keep since and subjects narrow. A message aged out of the log
// is not found.
func (l *Log) FindMsgIDs(ctx context.Context, since time.Time, subjects, keys []string) (map[string]int64, error) {
	found := map[string]int64{}
	if len(keys) == 0 {
		return found, nil
	}
	want := make(map[string]bool, len(keys))
	for _, k := range keys {
		want[k] = true
	}
	start := since.UTC()
	cons, err := l.stream.CreateConsumer(ctx, jetstream.ConsumerConfig{AckPolicy: jetstream.AckNonePolicy, MemoryStorage: true,
		DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &start, FilterSubjects: subjects, HeadersOnly: true,
		InactiveThreshold: time.Minute, Replicas: 1})
	if err != nil {
		return nil, fmt.Errorf("%w: find message ids: %w", ErrUnavailable, err)
	}
	defer l.deleteEphemeral(cons)
	// Read what was there when asked: later messages were published after this question.
	left := cons.CachedInfo().NumPending
	for left > 0 && len(found) < len(want) {
		batch, err := cons.Fetch(int(min(left, 1000)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, fmt.Errorf("%w: find message ids: %w", ErrUnavailable, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			if k := m.Headers().Get(jetstream.MsgIDHeader); want[k] {
				if md, err := m.Metadata(); err == nil {
					found[k] = int64(md.Sequence.Stream)
				}
			}
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("%w: find message ids: %w", ErrUnavailable, err)
		}
		if n == 0 {
			return nil, fmt.Errorf("%w: find message ids: %d messages announced did not come", ErrUnavailable, left)
		}
		left -= uint64(min(uint64(n), left))
	}
	return found, nil
}

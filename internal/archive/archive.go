// Package archive keeps the classic, queryable copy of the log: a durable consumer ("store")
// that writes every event of a saved_to_database type into the store in batches, idempotently,
// acking only after the transaction committed; and the retention purge of stored events.
package archive

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/eventlog"
	"github.com/auditstream/auditstream/internal/store"
)

// ConsumerName is the durable consumer the archive reads the log with.
const ConsumerName = "store"

// Store is the part of the store the archive writes to.
type Store interface {
	EventInsertMany(ctx context.Context, events []store.EventRecord) error
	EventDeleteBefore(ctx context.Context, t time.Time, limit int) (int64, error)
	EventList(ctx context.Context, p store.EventListParams) ([]store.EventRecord, error)
}

// Log is the part of the log the archive reads from.
type Log interface {
	Consume(ctx context.Context, opts eventlog.ConsumerOptions, logger *slog.Logger, h eventlog.Handler) error
}

// Metrics receives what the archive did; any field may be nil.
type Metrics struct {
	Inserted      func(n int)
	Skipped       func(n int) // stream-only events not stored
	BatchDuration func(d time.Duration)
}

// Archiver runs the store consumer.
type Archiver struct {
	Store   Store
	Log     Log
	Catalog *event.Catalog
	Logger  *slog.Logger
	Metrics Metrics
	// Batch is the most events per insert transaction. Default 1000.
	Batch int
	// Workers is how many batches are being written at once, each pulled separately from the
	// shared durable consumer (inserts are idempotent, so their order does not matter). Default
	// 1. With a database server, 2 let the next batch be read and prepared while the database
	// writes one.
	Workers int
	// NowFunc is the clock. Default time.Now.
	NowFunc func() time.Time
	// BeforePurge, when set, is told the ids of every event a purge is about to delete, in
	// ascending pages, before it deletes any (the trail marks their leaves purged, so that an
	// audit tells retention from a deleted row). An error stops the purge.
	BeforePurge func(ctx context.Context, ids []int64) error
}

// Run consumes the log until ctx is done.
func (a *Archiver) Run(ctx context.Context) error {
	batch := a.Batch
	if batch == 0 {
		batch = 1000
	}
	workers := max(a.Workers, 1)
	g, gctx := errgroup.WithContext(ctx)
	for range workers {
		g.Go(func() error { return a.consume(gctx, batch) })
	}
	return g.Wait()
}

// consume is one worker: it pulls batches and writes them until ctx is done.
func (a *Archiver) consume(ctx context.Context, batch int) error {
	recs := make([]store.EventRecord, 0, batch)
	var data []byte // the batch's stored JSON, reused: the store has copied it once the insert returns
	// A batch that was in flight when a process died is redelivered after AckWait; keep it short
	// (inserting a batch takes milliseconds), since the store lags by that much after a crash.
	return a.Log.Consume(ctx, eventlog.ConsumerOptions{Durable: ConsumerName, Batch: batch, MaxWait: 100 * time.Millisecond, AckWait: 10 * time.Second},
		a.Logger, func(ctx context.Context, msgs []eventlog.Delivered) error {
			start := a.now()
			recs, data = recs[:0], data[:0]
			for _, m := range msgs {
				rec, keep, err := a.record(m, &data)
				if err != nil {
					// A message we cannot read would block the archive forever if we retried it.
					a.Logger.Error("skipping unreadable event", "id", m.Seq, "subject", m.Subject, "err", err)
					continue
				}
				if keep {
					recs = append(recs, rec)
				}
			}
			if len(recs) > 0 {
				// A batch in hand is finished even when shutdown begins, so that a graceful stop
				// leaves nothing to redeliver.
				ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
				err := a.Store.EventInsertMany(ictx, recs)
				cancel()
				if err != nil {
					return fmt.Errorf("insert %d events: %w", len(recs), err)
				}
			}
			a.observe(len(recs), len(msgs)-len(recs), a.now().Sub(start))
			return nil
		})
}

// record turns a log message into a store record; keep is false for stream-only types.
// The record's Data is appended to *data.
func (a *Archiver) record(m eventlog.Delivered, data *[]byte) (rec store.EventRecord, keep bool, err error) {
	eventType := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	if t := a.Catalog.Lookup(eventType); t != nil && !t.SavedToDatabase {
		return rec, false, nil
	}
	// Types unknown to this process's catalog (another replica's newer catalog) are kept.
	f, err := event.ParseIndex(m.Data)
	if err != nil {
		return rec, false, err
	}
	start := len(*data)
	*data = event.AppendWithID(*data, m.Data, m.Seq)
	return store.EventRecord{ID: m.Seq, CreatedAt: f.CreatedAt, EventType: eventType, EntityType: f.EntityType,
		EntityID: f.EntityID, AuthorID: f.AuthorID, Data: (*data)[start:len(*data):len(*data)]}, true, nil
}

func (a *Archiver) observe(inserted, skipped int, d time.Duration) {
	if a.Metrics.Inserted != nil {
		a.Metrics.Inserted(inserted)
	}
	if a.Metrics.Skipped != nil {
		a.Metrics.Skipped(skipped)
	}
	if a.Metrics.BatchDuration != nil {
		a.Metrics.BatchDuration(d)
	}
}

func (a *Archiver) now() time.Time {
	if a.NowFunc != nil {
		return a.NowFunc()
	}
	return time.Now()
}

// Purge deletes stored events older than retention, in steps of at most 10,000, and returns how
// many it deleted. retention 0 keeps everything.
func (a *Archiver) Purge(ctx context.Context, retention time.Duration) (int64, error) {
	if retention <= 0 {
		return 0, nil
	}
	cutoff := a.now().Add(-retention)
	if a.BeforePurge != nil {
		// Every id older than the cutoff, not only the first step's: the delete takes the oldest
		// by time, these pages go by id.
		for after := int64(0); ; {
			recs, err := a.Store.EventList(ctx, store.EventListParams{CreatedBefore: cutoff, Ascending: true, AfterID: after, Limit: 10_000})
			if err != nil {
				return 0, fmt.Errorf("purge: list events before %s: %w", cutoff.Format(time.RFC3339), err)
			}
			if len(recs) == 0 {
				break
			}
			ids := make([]int64, len(recs))
			for i, r := range recs {
				ids[i] = r.ID
			}
			if err := a.BeforePurge(ctx, ids); err != nil {
				return 0, fmt.Errorf("purge: %w", err)
			}
			after = ids[len(ids)-1]
		}
	}
	var total int64
	for {
		n, err := a.Store.EventDeleteBefore(ctx, cutoff, 10_000)
		total += n
		if err != nil {
			return total, fmt.Errorf("purge events before %s: %w", cutoff.Format(time.RFC3339), err)
		}
		if n < 10_000 {
			return total, nil
		}
	}
}

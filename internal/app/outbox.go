package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/eventlog"
	"github.com/auditstream/auditstream/internal/ingest"
	"github.com/auditstream/auditstream/internal/store"
)

// outboxPoll is how often the outbox is looked at (one query on an indexed, usually empty table).
const outboxPoll = time.Second

// outboxStore is the part of the store the outbox drainer uses.
type outboxStore interface {
	AuditOutboxList(ctx context.Context, p store.AuditOutboxListParams) ([]store.AuditOutboxEntry, error)
	AuditOutboxDelete(ctx context.Context, id int64) error
}

// recorder publishes one self-audit event (ingest.Service.Record).
type recorder interface {
	Record(ctx context.Context, in event.Input, by event.Producer) error
}

// msgFinder finds idempotency keys in the log (eventlog.Log.FindMsgIDs).
type msgFinder interface {
	FindMsgIDs(ctx context.Context, since time.Time, subjects, keys []string) (map[string]int64, error)
}

// outboxClockSkew is how far the CLI's clock (a row's CreatedAt) may run ahead of the log's
// (a message's time) for the search of earlier publishes.
const outboxClockSkew = 10 * time.Minute

// outbox publishes the audit events the CLI queued in the store (Admin.audit) through the same
// path as every other self-audit event, oldest first, and deletes each once the log has it.
//
// Each is published with an idempotency key derived from its row (outboxKey): when a publish
// is repeated within the log's duplicate window (a replica that lost the lease while
// publishing and the one that took it over), the log keeps the first copy only. Before
// publishing, the log is searched for the keys (msgFinder), so that a row published but not
// deleted (a crash between the log's ack and the delete) is not published again however much
// later the service restarts, as long as the log still holds the message. Only the holder of
// the "audit-outbox" lease drains, so replicas sharing a database do not race each other
// through the table.
//
// It is used by one goroutine at a time (the lease's holder).
type outbox struct {
	store  outboxStore
	rec    recorder
	log    msgFinder
	logger *slog.Logger
	// published holds the rows the log has but whose delete failed (the database went away):
	// they are deleted, not published again, on the next pass.
	published map[int64]bool
	// refused holds the rows the service refused as invalid: they stay in the table for an
	// operator, are logged once, and are not tried again by this process.
	refused map[int64]bool
	// failing is true from a failed pass to the next one that succeeds.
	failing bool
}

func newOutbox(st outboxStore, rec recorder, log msgFinder, logger *slog.Logger) *outbox {
	return &outbox{store: st, rec: rec, log: log, logger: logger, published: map[int64]bool{}, refused: map[int64]bool{}}
}

// run drains the outbox at once and then every outboxPoll, until ctx ends.
func (o *outbox) run(ctx context.Context) {
	t := time.NewTicker(outboxPoll)
	defer t.Stop()
	for {
		err := o.drain(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !o.failing:
			o.logger.Warn("audit outbox: could not publish the CLI's audit events; retrying every second", "err", err)
			o.failing = true
		case err != nil && ctx.Err() == nil:
			o.logger.Debug("audit outbox: still failing", "err", err) // said once, not every second
		case err == nil && o.failing:
			o.logger.Info("audit outbox: publishing again")
			o.failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// outboxPage is how many rows one query reads.
const outboxPage = 100

// drain publishes and deletes every row there is now. It stops at the first failure that is
// not the event's own (the log or the database), to try again on the next pass.
func (o *outbox) drain(ctx context.Context) error {
	var after int64
	for {
		rows, err := o.store.AuditOutboxList(ctx, store.AuditOutboxListParams{AfterID: after, Limit: outboxPage})
		if err != nil {
			return err
		}
		if err := o.findPublished(ctx, rows); err != nil {
			return err
		}
		for _, e := range rows {
			after = e.ID
			if err := o.publish(ctx, e); err != nil {
				return err
			}
		}
		if len(rows) < outboxPage {
			return nil
		}
	}
}

// findPublished marks the rows whose event the log already holds as published.
func (o *outbox) findPublished(ctx context.Context, rows []store.AuditOutboxEntry) error {
	var since time.Time
	var subjects, keys []string
	byKey := map[string]int64{}
	for _, e := range rows {
		if o.published[e.ID] || o.refused[e.ID] {
			continue
		}
		in, _, err := decodeOutbox(e)
		if err != nil {
			continue // publish refuses it
		}
		if since.IsZero() || e.CreatedAt.Before(since) {
			since = e.CreatedAt
		}
		// Every root's subject of the type: the row does not say under which root it was filed.
		if s := eventlog.Subject("*", in.EventType); !slices.Contains(subjects, s) {
			subjects = append(subjects, s)
		}
		keys = append(keys, in.IdempotencyKey)
		byKey[in.IdempotencyKey] = e.ID
	}
	if len(keys) == 0 {
		return nil
	}
	found, err := o.log.FindMsgIDs(ctx, since.Add(-outboxClockSkew), subjects, keys)
	if err != nil {
		return fmt.Errorf("look for earlier publishes of the outbox: %w", err)
	}
	for k := range found {
		o.published[byKey[k]] = true
	}
	return nil
}

func (o *outbox) publish(ctx context.Context, e store.AuditOutboxEntry) error {
	if o.refused[e.ID] {
		return nil
	}
	if !o.published[e.ID] {
		in, by, err := decodeOutbox(e)
		if err == nil {
			err = o.rec.Record(ctx, in, by)
		}
		if _, invalid := errors.AsType[*ingest.RequestError](err); invalid || errors.Is(err, errOutboxDecode) {
			o.refused[e.ID] = true
			o.logger.Error("audit outbox: an event queued by the CLI is refused; it stays in the outbox (table audit_outbox)",
				"outbox_id", e.ID, "err", err)
			return nil
		}
		if err != nil {
			return fmt.Errorf("publish outbox event %d: %w", e.ID, err)
		}
		o.published[e.ID] = true
	}
	if err := o.store.AuditOutboxDelete(ctx, e.ID); err != nil {
		return fmt.Errorf("delete published outbox event %d: %w", e.ID, err)
	}
	delete(o.published, e.ID)
	return nil
}

// errOutboxDecode marks a row that is not an event: it can never be published.
var errOutboxDecode = errors.New("audit outbox: not an event")

// decodeOutbox is the event of row e, with its idempotency key and its original time, and who
// wrote it.
func decodeOutbox(e store.AuditOutboxEntry) (event.Input, event.Producer, error) {
	var in event.Input
	var p outboxProducer
	if err := json.Unmarshal(e.Event, &in); err != nil {
		return in, event.Producer{}, fmt.Errorf("%w: %w", errOutboxDecode, err)
	}
	if err := json.Unmarshal(e.Producer, &p); err != nil {
		return in, event.Producer{}, fmt.Errorf("%w: producer: %w", errOutboxDecode, err)
	}
	in.IdempotencyKey = outboxKey(e)
	if in.CreatedAt == "" {
		in.CreatedAt = e.CreatedAt.UTC().Format(event.TimeLayout)
	}
	return in, event.Producer{TokenID: p.TokenID, UserID: p.UserID, Username: p.Username, Via: p.Via}, nil
}

// outboxKey is the idempotency key row e is published with. Producers' keys are scoped to
// their user ("u<id>:…"), so no producer can send this one. The time keeps it unique even
// should a database restored from a backup hand out a row id again.
func outboxKey(e store.AuditOutboxEntry) string {
	return "auditstream-outbox:" + strconv.FormatInt(e.ID, 10) + ":" + strconv.FormatInt(e.CreatedAt.UnixMilli(), 10)
}

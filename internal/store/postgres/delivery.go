package postgres

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/auditstream/auditstream/internal/store"
)

const deadLetterColumns = `id, destination_id, event_id, event_type, event, status_code, error, attempts,
	first_failed_at, last_failed_at, created_at`

func scanDeadLetter(r pgx.Row) (store.DeadLetter, error) {
	var d store.DeadLetter
	if err := r.Scan(&d.ID, &d.DestinationID, &d.EventID, &d.EventType, &d.Event, &d.StatusCode, &d.Error, &d.Attempts,
		&d.FirstFailedAt, &d.LastFailedAt, &d.CreatedAt); err != nil {
		return store.DeadLetter{}, err
	}
	if len(d.Event) == 0 {
		d.Event = nil
	}
	d.FirstFailedAt = fromDB(d.FirstFailedAt)
	d.LastFailedAt = fromDB(d.LastFailedAt)
	d.CreatedAt = fromDB(d.CreatedAt)
	return d, nil
}

// checkListLimit reports a page size outside 1..store.MaxDeliveryListLimit.
func checkListLimit(limit int) error {
	if limit < 1 || limit > store.MaxDeliveryListLimit {
		return fmt.Errorf("limit %d not in 1..%d", limit, store.MaxDeliveryListLimit)
	}
	return nil
}

// DeadLetterAdd inserts a dead letter, or updates the one the destination has for the event, in
// one statement (INSERT ... ON CONFLICT DO UPDATE, atomic also against a concurrent add).
func (s *Store) DeadLetterAdd(ctx context.Context, p store.DeadLetterAddParams) (store.DeadLetter, error) {
	op := fmt.Sprintf("add dead letter of event %d for destination %d", p.EventID, p.DestinationID)
	last := created(p.LastFailedAt)
	first := last
	if !p.FirstFailedAt.IsZero() {
		first = toMS(p.FirstFailedAt)
	}
	event := p.Event
	if event == nil {
		event = []byte{} // the column is NOT NULL; nil would bind as NULL
	}
	d, err := scanDeadLetter(s.pool.QueryRow(ctx, `INSERT INTO dead_letters
		(destination_id, event_id, event_type, event, status_code, error, attempts, first_failed_at, last_failed_at, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT ON CONSTRAINT dead_letters_destination_id_event_id_key DO UPDATE SET
			status_code = excluded.status_code, error = excluded.error, attempts = excluded.attempts,
			last_failed_at = excluded.last_failed_at
		RETURNING `+deadLetterColumns,
		p.DestinationID, p.EventID, p.EventType, event, p.StatusCode, p.Error, p.Attempts, first, last, created(p.CreatedAt)))
	return d, wrap(op, err)
}

// DeadLetterList returns a page of a destination's dead letters, newest first.
func (s *Store) DeadLetterList(ctx context.Context, p store.DeadLetterListParams) ([]store.DeadLetter, error) {
	op := fmt.Sprintf("list dead letters of destination %d", p.DestinationID)
	if p.DestinationID == 0 {
		return nil, fmt.Errorf("postgres: %s: a destination id is required", op)
	}
	if err := checkListLimit(p.Limit); err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", op, err)
	}
	before := p.BeforeID
	if before == 0 {
		before = math.MaxInt64
	}
	rows, err := s.pool.Query(ctx, `SELECT `+deadLetterColumns+` FROM dead_letters
		WHERE destination_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3`, p.DestinationID, before, p.Limit)
	if err != nil {
		return nil, wrap(op, err)
	}
	ds, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.DeadLetter, error) { return scanDeadLetter(r) })
	if err != nil {
		return nil, wrap(op, err)
	}
	if len(ds) == 0 {
		return nil, nil
	}
	return ds, nil
}

// DeadLetterCount counts a destination's dead letters.
func (s *Store) DeadLetterCount(ctx context.Context, destinationID int64) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM dead_letters WHERE destination_id = $1`, destinationID).Scan(&n)
	return n, wrap(fmt.Sprintf("count dead letters of destination %d", destinationID), err)
}

// DeadLetterGet returns one dead letter or store.ErrNotFound.
func (s *Store) DeadLetterGet(ctx context.Context, id int64) (store.DeadLetter, error) {
	d, err := scanDeadLetter(s.pool.QueryRow(ctx, `SELECT `+deadLetterColumns+` FROM dead_letters WHERE id = $1`, id))
	return d, wrap(fmt.Sprintf("get dead letter %d", id), err)
}

// DeadLetterDelete deletes the listed dead letters of a destination, or all of them.
func (s *Store) DeadLetterDelete(ctx context.Context, destinationID int64, ids []int64) (int64, error) {
	op := fmt.Sprintf("delete dead letters of destination %d", destinationID)
	q, args := `DELETE FROM dead_letters WHERE destination_id = $1`, []any{destinationID}
	if len(ids) > 0 {
		q, args = q+` AND id = ANY($2::bigint[])`, append(args, ids)
	}
	tag, err := s.pool.Exec(ctx, q, args...)
	if err != nil {
		return 0, wrap(op, err)
	}
	return tag.RowsAffected(), nil
}

// DeadLetterTrim deletes a destination's dead letters beyond the newest keep.
func (s *Store) DeadLetterTrim(ctx context.Context, destinationID int64, keep int) (int64, error) {
	return s.trim(ctx, "dead_letters", fmt.Sprintf("trim dead letters of destination %d to %d", destinationID, keep), destinationID, keep)
}

// trim deletes the rows of table (dead_letters or delivery_attempts) of a destination beyond
// the newest keep: every row at or below the id of the (keep+1)-th newest, when there is one.
// Rows added meanwhile have higher ids and stay.
func (s *Store) trim(ctx context.Context, table, op string, destinationID int64, keep int) (int64, error) {
	if keep < 0 {
		return 0, fmt.Errorf("postgres: %s: keep must not be negative", op)
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM `+table+` WHERE destination_id = $1 AND id <= (
		SELECT id FROM `+table+` WHERE destination_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)`,
		destinationID, keep)
	if err != nil {
		return 0, wrap(op, err)
	}
	return tag.RowsAffected(), nil
}

// DeliveryAttemptAdd appends attempts to the delivery log in one transaction, sent as one batch.
func (s *Store) DeliveryAttemptAdd(ctx context.Context, attempts []store.DeliveryAttempt) error {
	op := fmt.Sprintf("add %d delivery attempts", len(attempts))
	if len(attempts) == 0 {
		return nil
	}
	for _, a := range attempts {
		if a.ID != 0 {
			return fmt.Errorf("postgres: %s: id %d given; ids are assigned by the store", op, a.ID)
		}
	}
	now := time.Now()
	var b pgx.Batch
	for _, a := range attempts {
		at := a.At
		if at.IsZero() {
			at = now
		}
		b.Queue(`INSERT INTO delivery_attempts
			(destination_id, at, success, count, first_event_id, last_event_id, status_code, error, duration_ms, test)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			a.DestinationID, toMS(at), a.Success, a.Count, a.FirstEventID, a.LastEventID, a.StatusCode, a.Error, a.DurationMs, a.Test)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		br := tx.SendBatch(ctx, &b)
		for _, a := range attempts {
			if _, err := br.Exec(); err != nil {
				_ = br.Close()
				return fmt.Errorf("destination %d: %w", a.DestinationID, err)
			}
		}
		return br.Close()
	})
	return wrap(op, err)
}

// DeliveryAttemptList returns a destination's newest attempts, newest first.
func (s *Store) DeliveryAttemptList(ctx context.Context, destinationID int64, limit int) ([]store.DeliveryAttempt, error) {
	op := fmt.Sprintf("list delivery attempts of destination %d", destinationID)
	if err := checkListLimit(limit); err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", op, err)
	}
	rows, err := s.pool.Query(ctx, `SELECT id, destination_id, at, success, count, first_event_id, last_event_id,
		status_code, error, duration_ms, test FROM delivery_attempts
		WHERE destination_id = $1 ORDER BY id DESC LIMIT $2`, destinationID, limit)
	if err != nil {
		return nil, wrap(op, err)
	}
	as, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.DeliveryAttempt, error) {
		var a store.DeliveryAttempt
		err := r.Scan(&a.ID, &a.DestinationID, &a.At, &a.Success, &a.Count, &a.FirstEventID, &a.LastEventID,
			&a.StatusCode, &a.Error, &a.DurationMs, &a.Test)
		a.At = fromDB(a.At)
		return a, err
	})
	if err != nil {
		return nil, wrap(op, err)
	}
	if len(as) == 0 {
		return nil, nil
	}
	return as, nil
}

// DeliveryAttemptTrim deletes a destination's attempts beyond the newest keep.
func (s *Store) DeliveryAttemptTrim(ctx context.Context, destinationID int64, keep int) (int64, error) {
	return s.trim(ctx, "delivery_attempts", fmt.Sprintf("trim delivery attempts of destination %d to %d", destinationID, keep), destinationID, keep)
}

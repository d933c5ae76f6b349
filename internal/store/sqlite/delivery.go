package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/auditstream/auditstream/internal/store"
)

const deadLetterColumns = `id, destination_id, event_id, event_type, event, status_code, error, attempts,
	first_failed_at, last_failed_at, created_at`

// rowScanner is a *sql.Row or *sql.Rows.
type rowScanner interface {
	Scan(dest ...any) error
}

func scanDeadLetter(r rowScanner) (store.DeadLetter, error) {
	var d store.DeadLetter
	var first, last, created int64
	if err := r.Scan(&d.ID, &d.DestinationID, &d.EventID, &d.EventType, &d.Event, &d.StatusCode, &d.Error, &d.Attempts,
		&first, &last, &created); err != nil {
		return store.DeadLetter{}, err
	}
	if len(d.Event) == 0 {
		d.Event = nil
	}
	d.FirstFailedAt = fromMS(first)
	d.LastFailedAt = fromMS(last)
	d.CreatedAt = fromMS(created)
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
// one statement.
func (s *Store) DeadLetterAdd(ctx context.Context, p store.DeadLetterAddParams) (store.DeadLetter, error) {
	op := fmt.Sprintf("add dead letter of event %d for destination %d", p.EventID, p.DestinationID)
	last := createdMS(p.LastFailedAt)
	first := last
	if !p.FirstFailedAt.IsZero() {
		first = toMS(p.FirstFailedAt)
	}
	event := p.Event
	if event == nil {
		event = []byte{} // the column is NOT NULL; nil would bind as NULL
	}
	d, err := scanDeadLetter(s.w.QueryRowContext(ctx, `INSERT INTO dead_letters
		(destination_id, event_id, event_type, event, status_code, error, attempts, first_failed_at, last_failed_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (destination_id, event_id) DO UPDATE SET
			status_code = excluded.status_code, error = excluded.error, attempts = excluded.attempts,
			last_failed_at = excluded.last_failed_at
		RETURNING `+deadLetterColumns,
		p.DestinationID, p.EventID, p.EventType, event, p.StatusCode, p.Error, p.Attempts, first, last, createdMS(p.CreatedAt)))
	return d, wrap(op, err)
}

// DeadLetterList returns a page of a destination's dead letters, newest first.
func (s *Store) DeadLetterList(ctx context.Context, p store.DeadLetterListParams) ([]store.DeadLetter, error) {
	op := fmt.Sprintf("list dead letters of destination %d", p.DestinationID)
	if p.DestinationID == 0 {
		return nil, fmt.Errorf("sqlite: %s: a destination id is required", op)
	}
	if err := checkListLimit(p.Limit); err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", op, err)
	}
	before := p.BeforeID
	if before == 0 {
		before = math.MaxInt64
	}
	var ds []store.DeadLetter
	err := queryEach(ctx, s.r, `SELECT `+deadLetterColumns+` FROM dead_letters
		WHERE destination_id = ? AND id < ? ORDER BY id DESC LIMIT ?`, []any{p.DestinationID, before, p.Limit},
		func(rows *sql.Rows) error {
			d, err := scanDeadLetter(rows)
			if err != nil {
				return err
			}
			ds = append(ds, d)
			return nil
		})
	if err != nil {
		return nil, wrap(op, err)
	}
	return ds, nil
}

// DeadLetterCount counts a destination's dead letters.
func (s *Store) DeadLetterCount(ctx context.Context, destinationID int64) (int64, error) {
	var n int64
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM dead_letters WHERE destination_id = ?`, destinationID).Scan(&n)
	return n, wrap(fmt.Sprintf("count dead letters of destination %d", destinationID), err)
}

// DeadLetterGet returns one dead letter or store.ErrNotFound.
func (s *Store) DeadLetterGet(ctx context.Context, id int64) (store.DeadLetter, error) {
	d, err := scanDeadLetter(s.r.QueryRowContext(ctx, `SELECT `+deadLetterColumns+` FROM dead_letters WHERE id = ?`, id))
	return d, wrap(fmt.Sprintf("get dead letter %d", id), err)
}

// DeadLetterDelete deletes the listed dead letters of a destination, or all of them. The ids
// are bound as one JSON array, so that their number is not bounded by SQLite's variable limit.
func (s *Store) DeadLetterDelete(ctx context.Context, destinationID int64, ids []int64) (int64, error) {
	op := fmt.Sprintf("delete dead letters of destination %d", destinationID)
	var res sql.Result
	var err error
	if len(ids) == 0 {
		res, err = s.w.ExecContext(ctx, `DELETE FROM dead_letters WHERE destination_id = ?`, destinationID)
	} else {
		res, err = s.w.ExecContext(ctx, `DELETE FROM dead_letters
			WHERE destination_id = ? AND id IN (SELECT value FROM json_each(?))`, destinationID, jsonIDs(ids))
	}
	if err != nil {
		return 0, wrap(op, err)
	}
	n, err := res.RowsAffected()
	return n, wrap(op, err)
}

// jsonIDs returns ids as a JSON array.
func jsonIDs(ids []int64) string {
	b := make([]byte, 0, len(ids)*8+2)
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id, 10)
	}
	return string(append(b, ']'))
}

// DeadLetterTrim deletes a destination's dead letters beyond the newest keep.
func (s *Store) DeadLetterTrim(ctx context.Context, destinationID int64, keep int) (int64, error) {
	return s.trim(ctx, "dead_letters", fmt.Sprintf("trim dead letters of destination %d to %d", destinationID, keep), destinationID, keep)
}

// trim deletes the rows of table (dead_letters or delivery_attempts) of a destination beyond
// the newest keep: every row at or below the id of the (keep+1)-th newest, when there is one.
func (s *Store) trim(ctx context.Context, table, op string, destinationID int64, keep int) (int64, error) {
	if keep < 0 {
		return 0, fmt.Errorf("sqlite: %s: keep must not be negative", op)
	}
	res, err := s.w.ExecContext(ctx, `DELETE FROM `+table+` WHERE destination_id = ? AND id <= (
		SELECT id FROM `+table+` WHERE destination_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`,
		destinationID, destinationID, keep)
	if err != nil {
		return 0, wrap(op, err)
	}
	n, err := res.RowsAffected()
	return n, wrap(op, err)
}

// DeliveryAttemptAdd appends attempts to the delivery log in one transaction.
func (s *Store) DeliveryAttemptAdd(ctx context.Context, attempts []store.DeliveryAttempt) error {
	op := fmt.Sprintf("add %d delivery attempts", len(attempts))
	if len(attempts) == 0 {
		return nil
	}
	for _, a := range attempts {
		if a.ID != 0 {
			return fmt.Errorf("sqlite: %s: id %d given; ids are assigned by the store", op, a.ID)
		}
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return wrap(op, err)
	}
	defer func() { _ = tx.Rollback() }()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO delivery_attempts
		(destination_id, at, success, count, first_event_id, last_event_id, status_code, error, duration_ms, test)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return wrap(op, err)
	}
	defer func() { _ = stmt.Close() }()
	now := time.Now()
	for _, a := range attempts {
		at := a.At
		if at.IsZero() {
			at = now
		}
		if _, err := stmt.ExecContext(ctx, a.DestinationID, toMS(at), a.Success, a.Count, a.FirstEventID, a.LastEventID,
			a.StatusCode, a.Error, a.DurationMs, a.Test); err != nil {
			return wrap(op, fmt.Errorf("destination %d: %w", a.DestinationID, err))
		}
	}
	return wrap(op, tx.Commit())
}

// DeliveryAttemptList returns a destination's newest attempts, newest first.
func (s *Store) DeliveryAttemptList(ctx context.Context, destinationID int64, limit int) ([]store.DeliveryAttempt, error) {
	op := fmt.Sprintf("list delivery attempts of destination %d", destinationID)
	if err := checkListLimit(limit); err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", op, err)
	}
	var as []store.DeliveryAttempt
	err := queryEach(ctx, s.r, `SELECT id, destination_id, at, success, count, first_event_id, last_event_id,
		status_code, error, duration_ms, test FROM delivery_attempts
		WHERE destination_id = ? ORDER BY id DESC LIMIT ?`, []any{destinationID, limit},
		func(rows *sql.Rows) error {
			var a store.DeliveryAttempt
			var at int64
			if err := rows.Scan(&a.ID, &a.DestinationID, &at, &a.Success, &a.Count, &a.FirstEventID, &a.LastEventID,
				&a.StatusCode, &a.Error, &a.DurationMs, &a.Test); err != nil {
				return err
			}
			a.At = fromMS(at)
			as = append(as, a)
			return nil
		})
	if err != nil {
		return nil, wrap(op, err)
	}
	return as, nil
}

// DeliveryAttemptTrim deletes a destination's attempts beyond the newest keep.
func (s *Store) DeliveryAttemptTrim(ctx context.Context, destinationID int64, keep int) (int64, error) {
	return s.trim(ctx, "delivery_attempts", fmt.Sprintf("trim delivery attempts of destination %d to %d", destinationID, keep), destinationID, keep)
}

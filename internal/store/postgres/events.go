package postgres

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/auditstream/auditstream/internal/store"
)

// eventColumnNames are the events columns in table order.
var eventColumnNames = []string{"id", "created_at", "event_type", "entity_type", "entity_id", "author_id", "data"}

// createStaging creates the session's staging table for EventInsertMany once per connection.
// ON COMMIT DELETE ROWS empties it at the end of every transaction that used it.
const createStaging = `CREATE TEMP TABLE IF NOT EXISTS events_staging (
	id          bigint,
	created_at  timestamptz,
	event_type  text,
	entity_type text,
	entity_id   bigint,
	author_id   bigint,
	data        bytea
) ON COMMIT DELETE ROWS`

// EventInsertMany inserts events in one transaction, skipping IDs that are already stored: it
// COPYs them (binary) into a temporary staging table and moves them over with INSERT ... ON
// CONFLICT DO NOTHING. Measured with storetest.BenchEventInsertMany, that is 10-15% faster than
// one INSERT ... SELECT FROM unnest(arrays) and allocates a tenth of the memory.
func (s *Store) EventInsertMany(ctx context.Context, events []store.EventRecord) error {
	if len(events) == 0 {
		return nil
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, createStaging); err != nil {
			return err
		}
		row := make([]any, len(eventColumnNames))
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events_staging"}, eventColumnNames,
			pgx.CopyFromSlice(len(events), func(i int) ([]any, error) {
				e := &events[i]
				data := e.Data
				if data == nil {
					data = []byte{} // the column is NOT NULL; nil would be sent as NULL
				}
				row[0], row[1], row[2], row[3], row[4], row[5], row[6] =
					e.ID, toMS(e.CreatedAt), e.EventType, e.EntityType, e.EntityID, e.AuthorID, data
				return row, nil
			}),
		); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO events (`+eventColumns+`)
			SELECT `+eventColumns+` FROM events_staging
			ON CONFLICT (id) DO NOTHING`)
		return err
	})
	return wrap("insert events", err)
}

// filter accumulates a WHERE clause and its positional arguments.
type filter struct {
	conds []string
	args  []any
}

func (f *filter) add(cond string, arg any) {
	f.args = append(f.args, arg)
	f.conds = append(f.conds, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(f.args))))
}

func (f *filter) where() string {
	if len(f.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(f.conds, " AND ")
}

// eventFilter builds the filter of p (and, when keyset is set, of its AfterID).
func eventFilter(p store.EventListParams, keyset bool) *filter {
	f := &filter{}
	if p.EntityType != "" {
		f.add("entity_type = ?", p.EntityType)
	}
	if p.HasEntityID && p.AlsoEntityID != 0 {
		f.add("entity_id = ANY(?)", []int64{p.EntityID, p.AlsoEntityID})
	} else if p.HasEntityID {
		f.add("entity_id = ?", p.EntityID)
	}
	if p.HasAuthorID {
		f.add("author_id = ?", p.AuthorID)
	}
	if !p.CreatedAfter.IsZero() {
		f.add("created_at >= ?", ceilMS(p.CreatedAfter))
	}
	if !p.CreatedBefore.IsZero() {
		f.add("created_at <= ?", toMS(p.CreatedBefore))
	}
	if p.EventType != "" {
		f.add("event_type = ?", p.EventType)
	}
	if keyset && p.AfterID != 0 {
		if p.Ascending {
			f.add("id > ?", p.AfterID)
		} else {
			f.add("id < ?", p.AfterID)
		}
	}
	return f
}

const eventColumns = `id, created_at, event_type, entity_type, entity_id, author_id, data`

func scanEvent(row pgx.Row) (store.EventRecord, error) {
	var e store.EventRecord
	if err := row.Scan(&e.ID, &e.CreatedAt, &e.EventType, &e.EntityType, &e.EntityID, &e.AuthorID, &e.Data); err != nil {
		return store.EventRecord{}, err
	}
	e.CreatedAt = fromDB(e.CreatedAt)
	return e, nil
}

// EventList returns the events matching p, ordered by ID.
func (s *Store) EventList(ctx context.Context, p store.EventListParams) ([]store.EventRecord, error) {
	f := eventFilter(p, true)
	q := `SELECT ` + eventColumns + ` FROM events` + f.where()
	if p.DataOnly {
		q = `SELECT id, data FROM events` + f.where()
	}
	if p.Ascending {
		q += " ORDER BY id ASC"
	} else {
		q += " ORDER BY id DESC"
	}
	args := f.args
	if p.Limit > 0 {
		args = append(args, p.Limit)
		q += " LIMIT $" + strconv.Itoa(len(args))
	}
	if p.Offset > 0 {
		args = append(args, p.Offset)
		q += " OFFSET $" + strconv.Itoa(len(args))
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, wrap("list events", err)
	}
	events, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.EventRecord, error) {
		if p.DataOnly {
			var e store.EventRecord
			return e, row.Scan(&e.ID, &e.Data)
		}
		return scanEvent(row)
	})
	return events, wrap("list events", err)
}

// EventCount counts the events matching p's filters.
func (s *Store) EventCount(ctx context.Context, p store.EventListParams) (int64, error) {
	f := eventFilter(p, false)
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM events`+f.where(), f.args...).Scan(&n)
	return n, wrap("count events", err)
}

// EventGet returns one event or store.ErrNotFound.
func (s *Store) EventGet(ctx context.Context, id int64) (store.EventRecord, error) {
	e, err := scanEvent(s.pool.QueryRow(ctx, `SELECT `+eventColumns+` FROM events WHERE id = $1`, id))
	return e, wrap("get event", err)
}

// EventDeleteBefore deletes at most limit of the oldest events created before t; limit <= 0
// means no limit.
func (s *Store) EventDeleteBefore(ctx context.Context, t time.Time, limit int) (int64, error) {
	q := `DELETE FROM events WHERE created_at < $1`
	args := []any{ceilMS(t)}
	if limit > 0 {
		q = `DELETE FROM events WHERE id IN (
			SELECT id FROM events WHERE created_at < $1 ORDER BY created_at, id LIMIT $2)`
		args = append(args, limit)
	}
	tag, err := s.pool.Exec(ctx, q, args...)
	if err != nil {
		return 0, wrap("delete events", err)
	}
	return tag.RowsAffected(), nil
}

// EventMaxID returns the highest stored event ID, 0 when there is none.
func (s *Store) EventMaxID(ctx context.Context) (int64, error) {
	var id int64
	err := s.pool.QueryRow(ctx, `SELECT COALESCE(max(id), 0) FROM events`).Scan(&id)
	return id, wrap("max event id", err)
}

// EventVolume counts the events matching p.Filter per bucket of p.Step and event type.
func (s *Store) EventVolume(ctx context.Context, p store.EventVolumeParams) ([]store.EventVolume, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	f := eventFilter(p.Window(), false)
	n := len(f.args)
	q := `SELECT floor(extract(epoch FROM (created_at - $` + strconv.Itoa(n+1) + `::timestamptz)) * 1000 / $` + strconv.Itoa(n+2) + `::bigint)::bigint AS bucket,
		event_type, count(*) FROM events` + f.where() + ` GROUP BY bucket, event_type ORDER BY bucket, event_type`
	rows, err := s.pool.Query(ctx, q, append(f.args, toMS(p.Start), p.Step.Milliseconds())...)
	if err != nil {
		return nil, wrap("count event volume", err)
	}
	defer rows.Close()
	var out []store.EventVolume
	for rows.Next() {
		var v store.EventVolume
		if err := rows.Scan(&v.Bucket, &v.EventType, &v.Count); err != nil {
			return nil, wrap("count event volume", err)
		}
		v.Start = p.Start.Add(time.Duration(v.Bucket) * p.Step).UTC()
		out = append(out, v)
	}
	return out, wrap("count event volume", rows.Err())
}

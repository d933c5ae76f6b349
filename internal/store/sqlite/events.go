package sqlite

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/auditstream/auditstream/internal/store"
)

// insertChunk is how many events one INSERT statement carries (7 parameters each). Multi-row
// statements save most of the per-statement cost; 100 rows is where the gain levels off.
const insertChunk = 100

// insertSQL returns an INSERT of n events that skips IDs already stored.
func insertSQL(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO events (id, created_at, event_type, entity_type, entity_id, author_id, data) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`(?,?,?,?,?,?,?)`)
	}
	b.WriteString(` ON CONFLICT (id) DO NOTHING`)
	return b.String()
}

var insertChunkSQL = insertSQL(insertChunk)

// EventInsertMany inserts events in one transaction, in statements of up to insertChunk rows,
// skipping IDs that are already stored.
func (s *Store) EventInsertMany(ctx context.Context, events []store.EventRecord) error {
	if len(events) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return wrap("insert events", err)
	}
	defer func() { _ = tx.Rollback() }()

	// The driver watches a cancellable context with a goroutine per statement; the statements
	// here are short, so check ctx between them instead.
	execCtx := context.WithoutCancel(ctx)
	var chunk *sql.Stmt
	args := make([]any, 0, 7*min(len(events), insertChunk))
	for rest := events; len(rest) > 0; {
		if err := ctx.Err(); err != nil {
			return wrap("insert events", err)
		}
		n := min(len(rest), insertChunk)
		args = args[:0]
		for _, e := range rest[:n] {
			data := e.Data
			if data == nil {
				data = []byte{} // the column is NOT NULL; nil would bind as NULL
			}
			args = append(args, e.ID, toMS(e.CreatedAt), e.EventType, e.EntityType, e.EntityID, e.AuthorID, data)
		}
		rest = rest[n:]
		if n < insertChunk {
			_, err = tx.ExecContext(execCtx, insertSQL(n), args...)
		} else {
			if chunk == nil {
				if chunk, err = tx.PrepareContext(execCtx, insertChunkSQL); err != nil {
					return wrap("insert events", err)
				}
				defer chunk.Close()
			}
			_, err = chunk.ExecContext(execCtx, args...)
		}
		if err != nil {
			return wrap("insert events", err)
		}
	}
	return wrap("insert events", tx.Commit())
}

// where builds the WHERE clause of p's filters (and, when keyset is set, of its AfterID).
func where(p store.EventListParams, keyset bool) (string, []any) {
	var conds []string
	var args []any
	if p.EntityType != "" {
		conds = append(conds, "entity_type = ?")
		args = append(args, p.EntityType)
	}
	if p.HasEntityID && p.AlsoEntityID != 0 {
		conds = append(conds, "entity_id IN (?, ?)")
		args = append(args, p.EntityID, p.AlsoEntityID)
	} else if p.HasEntityID {
		conds = append(conds, "entity_id = ?")
		args = append(args, p.EntityID)
	}
	if p.HasAuthorID {
		conds = append(conds, "author_id = ?")
		args = append(args, p.AuthorID)
	}
	if !p.CreatedAfter.IsZero() {
		conds = append(conds, "created_at >= ?")
		args = append(args, ceilMS(p.CreatedAfter))
	}
	if !p.CreatedBefore.IsZero() {
		conds = append(conds, "created_at <= ?")
		args = append(args, toMS(p.CreatedBefore))
	}
	if p.EventType != "" {
		conds = append(conds, "event_type = ?")
		args = append(args, p.EventType)
	}
	if keyset && p.AfterID != 0 {
		if p.Ascending {
			conds = append(conds, "id > ?")
		} else {
			conds = append(conds, "id < ?")
		}
		args = append(args, p.AfterID)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// EventList returns the events matching p, ordered by ID.
func (s *Store) EventList(ctx context.Context, p store.EventListParams) ([]store.EventRecord, error) {
	w, args := where(p, true)
	q := `SELECT id, created_at, event_type, entity_type, entity_id, author_id, data FROM events` + w
	if p.DataOnly {
		q = `SELECT id, data FROM events` + w
	}
	if p.Ascending {
		q += " ORDER BY id ASC"
	} else {
		q += " ORDER BY id DESC"
	}
	switch {
	case p.Limit > 0:
		q += " LIMIT ?"
		args = append(args, p.Limit)
	case p.Offset > 0:
		q += " LIMIT -1" // SQLite only takes OFFSET after a LIMIT
	}
	if p.Offset > 0 {
		q += " OFFSET ?"
		args = append(args, p.Offset)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, wrap("list events", err)
	}
	defer rows.Close()
	var events []store.EventRecord
	if p.Limit > 0 {
		events = make([]store.EventRecord, 0, min(p.Limit, 10_000))
	}
	for rows.Next() {
		var e store.EventRecord
		if p.DataOnly {
			if err := rows.Scan(&e.ID, &e.Data); err != nil {
				return nil, wrap("list events", err)
			}
			events = append(events, e)
			continue
		}
		var created int64
		if err := rows.Scan(&e.ID, &created, &e.EventType, &e.EntityType, &e.EntityID, &e.AuthorID, &e.Data); err != nil {
			return nil, wrap("list events", err)
		}
		e.CreatedAt = fromMS(created)
		events = append(events, e)
	}
	return events, wrap("list events", rows.Err())
}

// EventCount counts the events matching p's filters.
func (s *Store) EventCount(ctx context.Context, p store.EventListParams) (int64, error) {
	w, args := where(p, false)
	var n int64
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM events`+w, args...).Scan(&n)
	return n, wrap("count events", err)
}

// EventGet returns one event or store.ErrNotFound.
func (s *Store) EventGet(ctx context.Context, id int64) (store.EventRecord, error) {
	var e store.EventRecord
	var created int64
	err := s.r.QueryRowContext(ctx,
		`SELECT id, created_at, event_type, entity_type, entity_id, author_id, data FROM events WHERE id = ?`, id,
	).Scan(&e.ID, &created, &e.EventType, &e.EntityType, &e.EntityID, &e.AuthorID, &e.Data)
	if err != nil {
		return store.EventRecord{}, wrap("get event", err)
	}
	e.CreatedAt = fromMS(created)
	return e, nil
}

// EventDeleteBefore deletes at most limit of the oldest events created before t; limit <= 0
// means no limit.
func (s *Store) EventDeleteBefore(ctx context.Context, t time.Time, limit int) (int64, error) {
	q := `DELETE FROM events WHERE created_at < ?`
	args := []any{ceilMS(t)}
	if limit > 0 {
		q = `DELETE FROM events WHERE id IN (
			SELECT id FROM events WHERE created_at < ? ORDER BY created_at, id LIMIT ?)`
		args = append(args, limit)
	}
	res, err := s.w.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, wrap("delete events", err)
	}
	n, err := res.RowsAffected()
	return n, wrap("delete events", err)
}

// EventMaxID returns the highest stored event ID, 0 when there is none.
func (s *Store) EventMaxID(ctx context.Context) (int64, error) {
	var id int64
	err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM events`).Scan(&id)
	return id, wrap("max event id", err)
}

// EventVolume counts the events matching p.Filter per bucket of p.Step and event type.
func (s *Store) EventVolume(ctx context.Context, p store.EventVolumeParams) ([]store.EventVolume, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	w, args := where(p.Window(), false)
	step := p.Step.Milliseconds()
	q := `SELECT (created_at - ?) / ? AS bucket, event_type, count(*) FROM events` + w + ` GROUP BY bucket, event_type ORDER BY bucket, event_type`
	rows, err := s.r.QueryContext(ctx, q, append([]any{toMS(p.Start), step}, args...)...)
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

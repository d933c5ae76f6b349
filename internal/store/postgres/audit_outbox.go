package postgres

import (
	"context"

	"github.com/auditstream/auditstream/internal/store"
)

// AuditOutboxAdd queues an event; see store.Store.
func (s *Store) AuditOutboxAdd(ctx context.Context, p store.AuditOutboxAddParams) (store.AuditOutboxEntry, error) {
	e := store.AuditOutboxEntry{Event: nonNil(p.Event), Producer: nonNil(p.Producer), CreatedAt: created(p.CreatedAt)}
	err := s.pool.QueryRow(ctx, `INSERT INTO audit_outbox (event, producer, created_at) VALUES ($1, $2, $3) RETURNING id`,
		e.Event, e.Producer, e.CreatedAt).Scan(&e.ID)
	if err != nil {
		return store.AuditOutboxEntry{}, wrap("add to audit outbox", err)
	}
	return e, nil
}

// AuditOutboxList returns queued events oldest first; see store.Store.
func (s *Store) AuditOutboxList(ctx context.Context, p store.AuditOutboxListParams) ([]store.AuditOutboxEntry, error) {
	if err := checkListLimit(p.Limit); err != nil {
		return nil, wrap("list audit outbox", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT id, event, producer, created_at FROM audit_outbox
		WHERE id > $1 ORDER BY id LIMIT $2`, p.AfterID, p.Limit)
	if err != nil {
		return nil, wrap("list audit outbox", err)
	}
	defer rows.Close()
	var out []store.AuditOutboxEntry
	for rows.Next() {
		var e store.AuditOutboxEntry
		if err := rows.Scan(&e.ID, &e.Event, &e.Producer, &e.CreatedAt); err != nil {
			return nil, wrap("list audit outbox", err)
		}
		e.CreatedAt = fromDB(e.CreatedAt)
		out = append(out, e)
	}
	return out, wrap("list audit outbox", rows.Err())
}

// AuditOutboxDelete removes a queued event; a missing one is not an error.
func (s *Store) AuditOutboxDelete(ctx context.Context, id int64) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM audit_outbox WHERE id = $1`, id)
	return wrap("delete from audit outbox", err)
}

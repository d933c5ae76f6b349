package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/auditstream/auditstream/internal/store"
)

// RetentionSet sets or (retention 0) removes the group's own retention.
func (s *Store) RetentionSet(ctx context.Context, groupKey int64, retention time.Duration) error {
	if retention < 0 {
		return fmt.Errorf("sqlite: set retention: negative retention %s", retention)
	}
	if retention == 0 {
		_, err := s.w.ExecContext(ctx, `DELETE FROM group_retention WHERE namespace_key = ?`, groupKey)
		return wrap("set retention", err)
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO group_retention (namespace_key, retention_ms, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (namespace_key) DO UPDATE SET retention_ms = excluded.retention_ms, updated_at = excluded.updated_at`,
		groupKey, retention.Milliseconds(), time.Now().UnixMilli())
	return wrap("set retention", err)
}

// RetentionGet returns the group's own retention, 0 when it has none.
func (s *Store) RetentionGet(ctx context.Context, groupKey int64) (time.Duration, error) {
	var ms int64
	err := s.r.QueryRowContext(ctx, `SELECT retention_ms FROM group_retention WHERE namespace_key = ?`, groupKey).Scan(&ms)
	if err == sql.ErrNoRows {
		return 0, nil
	}
	return time.Duration(ms) * time.Millisecond, wrap("get retention", err)
}

// RetentionList returns every group's own retention by group key.
func (s *Store) RetentionList(ctx context.Context) (map[int64]time.Duration, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT namespace_key, retention_ms FROM group_retention`)
	if err != nil {
		return nil, wrap("list retention", err)
	}
	defer rows.Close()
	out := map[int64]time.Duration{}
	for rows.Next() {
		var key, ms int64
		if err := rows.Scan(&key, &ms); err != nil {
			return nil, wrap("list retention", err)
		}
		out[key] = time.Duration(ms) * time.Millisecond
	}
	return out, wrap("list retention", rows.Err())
}

// EventAgeList returns the oldest events before p.Before after the keyset, with the top-level
// group of their entity. The local-id join matches events written before their namespace
// adopted GitLab's id.
func (s *Store) EventAgeList(ctx context.Context, p store.EventAgeListParams) ([]store.EventAge, error) {
	if p.Limit < 1 || p.Limit > store.MaxDeliveryListLimit {
		return nil, fmt.Errorf("sqlite: list event ages: limit %d out of 1..%d", p.Limit, store.MaxDeliveryListLimit)
	}
	afterMS := int64(-1 << 62)
	if !p.AfterCreatedAt.IsZero() {
		afterMS = toMS(p.AfterCreatedAt)
	}
	rows, err := s.r.QueryContext(ctx, `
		SELECT e.id, e.created_at, COALESCE(byid.top_key, bykey.top_key, 0)
		FROM events e
		LEFT JOIN namespaces byid ON e.entity_type IN ('Group', 'Project')
			AND byid.kind = lower(e.entity_type) AND byid.id = e.entity_id
		LEFT JOIN namespaces bykey ON e.entity_type IN ('Group', 'Project') AND e.entity_id >= ?
			AND bykey.kind = lower(e.entity_type) AND bykey.key = e.entity_id - ?
		WHERE e.created_at < ? AND (e.created_at > ? OR (e.created_at = ? AND e.id > ?))
		ORDER BY e.created_at, e.id
		LIMIT ?`,
		store.LocalIDBase, store.LocalIDBase, ceilMS(p.Before), afterMS, afterMS, p.AfterID, p.Limit)
	if err != nil {
		return nil, wrap("list event ages", err)
	}
	defer rows.Close()
	var out []store.EventAge
	for rows.Next() {
		var a store.EventAge
		var ms int64
		if err := rows.Scan(&a.ID, &ms, &a.TopKey); err != nil {
			return nil, wrap("list event ages", err)
		}
		a.CreatedAt = fromMS(ms)
		out = append(out, a)
	}
	return out, wrap("list event ages", rows.Err())
}

// EventDeleteMany deletes the events with these ids in one transaction.
func (s *Store) EventDeleteMany(ctx context.Context, ids []int64) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	var total int64
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, wrap("delete events", err)
	}
	defer func() { _ = tx.Rollback() }()
	for rest := ids; len(rest) > 0; {
		n := min(len(rest), 500) // below SQLite's limit of bound parameters
		args := make([]any, n)
		for i, id := range rest[:n] {
			args[i] = id
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM events WHERE id IN (?`+strings.Repeat(",?", n-1)+`)`, args...)
		if err != nil {
			return 0, wrap("delete events", err)
		}
		k, err := res.RowsAffected()
		if err != nil {
			return 0, wrap("delete events", err)
		}
		total += k
		rest = rest[n:]
	}
	return total, wrap("delete events", tx.Commit())
}

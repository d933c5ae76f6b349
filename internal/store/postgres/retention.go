package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/auditstream/auditstream/internal/store"
)

// RetentionSet sets or (retention 0) removes the group's own retention.
func (s *Store) RetentionSet(ctx context.Context, groupKey int64, retention time.Duration) error {
	if retention < 0 {
		return fmt.Errorf("postgres: set retention: negative retention %s", retention)
	}
	if retention == 0 {
		_, err := s.pool.Exec(ctx, `DELETE FROM group_retention WHERE namespace_key = $1`, groupKey)
		return wrap("set retention", err)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO group_retention (namespace_key, retention_ms, updated_at) VALUES ($1, $2, now())
		ON CONFLICT (namespace_key) DO UPDATE SET retention_ms = excluded.retention_ms, updated_at = excluded.updated_at`,
		groupKey, retention.Milliseconds())
	return wrap("set retention", err)
}

// RetentionGet returns the group's own retention, 0 when it has none.
func (s *Store) RetentionGet(ctx context.Context, groupKey int64) (time.Duration, error) {
	var ms int64
	err := s.pool.QueryRow(ctx, `SELECT retention_ms FROM group_retention WHERE namespace_key = $1`, groupKey).Scan(&ms)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return time.Duration(ms) * time.Millisecond, wrap("get retention", err)
}

// RetentionList returns every group's own retention by group key.
func (s *Store) RetentionList(ctx context.Context) (map[int64]time.Duration, error) {
	rows, err := s.pool.Query(ctx, `SELECT namespace_key, retention_ms FROM group_retention`)
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
		return nil, fmt.Errorf("postgres: list event ages: limit %d out of 1..%d", p.Limit, store.MaxDeliveryListLimit)
	}
	after := time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC) // before any stored time
	if !p.AfterCreatedAt.IsZero() {
		after = toMS(p.AfterCreatedAt)
	}
	rows, err := s.pool.Query(ctx, `
		SELECT e.id, e.created_at, COALESCE(byid.top_key, bykey.top_key, 0)
		FROM events e
		LEFT JOIN namespaces byid ON e.entity_type IN ('Group', 'Project')
			AND byid.kind = lower(e.entity_type) AND byid.id = e.entity_id
		LEFT JOIN namespaces bykey ON e.entity_type IN ('Group', 'Project') AND e.entity_id >= $1
			AND bykey.kind = lower(e.entity_type) AND bykey.key = e.entity_id - $1
		WHERE e.created_at < $2 AND (e.created_at, e.id) > ($3, $4)
		ORDER BY e.created_at, e.id
		LIMIT $5`,
		store.LocalIDBase, ceilMS(p.Before), after, p.AfterID, p.Limit)
	if err != nil {
		return nil, wrap("list event ages", err)
	}
	defer rows.Close()
	var out []store.EventAge
	for rows.Next() {
		var a store.EventAge
		if err := rows.Scan(&a.ID, &a.CreatedAt, &a.TopKey); err != nil {
			return nil, wrap("list event ages", err)
		}
		a.CreatedAt = fromDB(a.CreatedAt)
		out = append(out, a)
	}
	return out, wrap("list event ages", rows.Err())
}

// EventDeleteMany deletes the events with these ids in one statement.
func (s *Store) EventDeleteMany(ctx context.Context, ids []int64) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM events WHERE id = ANY($1)`, ids)
	if err != nil {
		return 0, wrap("delete events", err)
	}
	return tag.RowsAffected(), nil
}

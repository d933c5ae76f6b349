package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/auditstream/auditstream/internal/store"
)

// RepublishedAdd records re-published events; see store.Store.
func (s *Store) RepublishedAdd(ctx context.Context, ids []int64, at time.Time) error {
	if len(ids) > store.MaxListIDs {
		return fmt.Errorf("postgres: record republished events: more than %d ids", store.MaxListIDs)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO republished_events (event_id, republished_at)
		SELECT unnest($1::bigint[]), $2 ON CONFLICT (event_id) DO NOTHING`, ids, at.UTC().Truncate(time.Millisecond))
	return wrap("record republished events", err)
}

// RepublishedList returns the ids recorded as re-published; see store.Store.
func (s *Store) RepublishedList(ctx context.Context, ids []int64) ([]int64, error) {
	if len(ids) > store.MaxListIDs {
		return nil, fmt.Errorf("postgres: list republished events: more than %d ids", store.MaxListIDs)
	}
	rows, err := s.pool.Query(ctx, `SELECT event_id FROM republished_events WHERE event_id = ANY($1::bigint[]) ORDER BY event_id`, ids)
	if err != nil {
		return nil, wrap("list republished events", err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, wrap("list republished events", err)
		}
		out = append(out, id)
	}
	return out, wrap("list republished events", rows.Err())
}

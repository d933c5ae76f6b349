package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/auditstream/auditstream/internal/store"
)

// TrailSize returns the tree's size; see store.Store.
func (s *Store) TrailSize(ctx context.Context) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT size FROM trail_tree WHERE one = 1`).Scan(&n)
	return n, wrap("trail size", err)
}

// TrailAppend stores hashes and moves the size, in one transaction; see store.Store. The
// hashes go in with COPY: an append of 1,000 events carries about 2,000 of them.
func (s *Store) TrailAppend(ctx context.Context, p store.TrailAppendParams) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE trail_tree SET size = $1 WHERE one = 1 AND size = $2`, p.NewSize, p.OldSize)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("%w (the tree is not at size %d)", store.ErrVersionConflict, p.OldSize)
		}
		row := make([]any, 3)
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"trail_hashes"}, []string{"idx", "hash", "kind"},
			pgx.CopyFromSlice(len(p.Hashes), func(i int) ([]any, error) {
				h := &p.Hashes[i]
				row[0], row[1], row[2] = h.Index, h.Hash, int16(h.Kind)
				return row, nil
			}))
		return err
	})
	return wrap("trail append", err)
}

// TrailHashes returns the hashes at indexes, in that order; see store.Store.
func (s *Store) TrailHashes(ctx context.Context, indexes []int64) ([]store.TrailHash, error) {
	if len(indexes) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT idx, hash, kind FROM trail_hashes WHERE idx = ANY($1)`, indexes)
	if err != nil {
		return nil, wrap("trail hashes", err)
	}
	defer rows.Close()
	found := make(map[int64]store.TrailHash, len(indexes))
	for rows.Next() {
		var h store.TrailHash
		var kind int16
		if err := rows.Scan(&h.Index, &h.Hash, &kind); err != nil {
			return nil, wrap("trail hashes", err)
		}
		h.Kind = store.TrailLeafKind(kind)
		found[h.Index] = h
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("trail hashes", err)
	}
	out := make([]store.TrailHash, len(indexes))
	for i, idx := range indexes {
		h, ok := found[idx]
		if !ok {
			return nil, fmt.Errorf("postgres: trail hashes: index %d: %w", idx, store.ErrNotFound)
		}
		out[i] = h
	}
	return out, nil
}

// TrailHashRange returns the hashes with from <= Index < to; see store.Store.
func (s *Store) TrailHashRange(ctx context.Context, from, to int64) ([]store.TrailHash, error) {
	rows, err := s.pool.Query(ctx, `SELECT idx, hash, kind FROM trail_hashes WHERE idx >= $1 AND idx < $2 ORDER BY idx`, from, to)
	if err != nil {
		return nil, wrap("trail hash range", err)
	}
	defer rows.Close()
	var out []store.TrailHash
	for rows.Next() {
		var h store.TrailHash
		var kind int16
		if err := rows.Scan(&h.Index, &h.Hash, &kind); err != nil {
			return nil, wrap("trail hash range", err)
		}
		h.Kind = store.TrailLeafKind(kind)
		out = append(out, h)
	}
	return out, wrap("trail hash range", rows.Err())
}

// TrailMarkPurged marks stored leaves purged; see store.Store.
func (s *Store) TrailMarkPurged(ctx context.Context, indexes []int64) error {
	if len(indexes) == 0 {
		return nil
	}
	_, err := s.pool.Exec(ctx, `UPDATE trail_hashes SET kind = $1 WHERE kind IN ($2, $3) AND idx = ANY($4)`,
		int16(store.TrailPurged), int16(store.TrailStored), int16(store.TrailRecovered), indexes)
	return wrap("mark trail leaves purged", err)
}

// TrailCheckpointAdd stores a checkpoint; see store.Store.
func (s *Store) TrailCheckpointAdd(ctx context.Context, c store.TrailCheckpoint) (store.TrailCheckpoint, error) {
	c.Note, c.CreatedAt = nonNil(c.Note), created(c.CreatedAt)
	err := s.pool.QueryRow(ctx, `INSERT INTO trail_checkpoints (size, note, created_at) VALUES ($1, $2, $3) RETURNING id`,
		c.Size, c.Note, c.CreatedAt).Scan(&c.ID)
	if err != nil {
		return store.TrailCheckpoint{}, wrap("add trail checkpoint", err)
	}
	return c, nil
}

// TrailCheckpointList returns checkpoints oldest first; see store.Store.
func (s *Store) TrailCheckpointList(ctx context.Context, p store.TrailCheckpointListParams) ([]store.TrailCheckpoint, error) {
	if err := checkListLimit(p.Limit); err != nil {
		return nil, wrap("list trail checkpoints", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT id, size, note, created_at FROM trail_checkpoints WHERE id > $1 ORDER BY id LIMIT $2`, p.AfterID, p.Limit)
	if err != nil {
		return nil, wrap("list trail checkpoints", err)
	}
	defer rows.Close()
	var out []store.TrailCheckpoint
	for rows.Next() {
		var c store.TrailCheckpoint
		if err := rows.Scan(&c.ID, &c.Size, &c.Note, &c.CreatedAt); err != nil {
			return nil, wrap("list trail checkpoints", err)
		}
		c.CreatedAt = fromDB(c.CreatedAt)
		out = append(out, c)
	}
	return out, wrap("list trail checkpoints", rows.Err())
}

// TrailCheckpointLatest returns the checkpoint stored last; see store.Store.
func (s *Store) TrailCheckpointLatest(ctx context.Context) (store.TrailCheckpoint, error) {
	var c store.TrailCheckpoint
	err := s.pool.QueryRow(ctx, `SELECT id, size, note, created_at FROM trail_checkpoints ORDER BY id DESC LIMIT 1`).
		Scan(&c.ID, &c.Size, &c.Note, &c.CreatedAt)
	if err != nil {
		return store.TrailCheckpoint{}, wrap("latest trail checkpoint", err)
	}
	c.CreatedAt = fromDB(c.CreatedAt)
	return c, nil
}

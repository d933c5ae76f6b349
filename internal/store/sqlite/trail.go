package sqlite

import (
	"context"
	"fmt"
	"strings"

	"github.com/auditstream/auditstream/internal/store"
)

// trailChunk is how many hashes one INSERT carries (3 parameters each).
const trailChunk = 300

// TrailSize returns the tree's size; see store.Store.
func (s *Store) TrailSize(ctx context.Context) (int64, error) {
	var n int64
	err := s.r.QueryRowContext(ctx, `SELECT size FROM trail_tree WHERE one = 1`).Scan(&n)
	return n, wrap("trail size", err)
}

// TrailAppend stores hashes and moves the size, in one transaction; see store.Store.
func (s *Store) TrailAppend(ctx context.Context, p store.TrailAppendParams) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return wrap("trail append", err)
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, `UPDATE trail_tree SET size = ? WHERE one = 1 AND size = ?`, p.NewSize, p.OldSize)
	if err != nil {
		return wrap("trail append", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return wrap("trail append", cmpErr(err, fmt.Errorf("%w (the tree is not at size %d)", store.ErrVersionConflict, p.OldSize)))
	}
	args := make([]any, 0, 3*trailChunk)
	for rest := p.Hashes; len(rest) > 0; {
		n := min(len(rest), trailChunk)
		var b strings.Builder
		b.WriteString(`INSERT INTO trail_hashes (idx, hash, kind) VALUES `)
		args = args[:0]
		for i, h := range rest[:n] {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`(?,?,?)`)
			args = append(args, h.Index, h.Hash, int64(h.Kind))
		}
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return wrap("trail append", err)
		}
		rest = rest[n:]
	}
	return wrap("trail append", tx.Commit())
}

// cmpErr returns err when it is not nil, else alt.
func cmpErr(err, alt error) error {
	if err != nil {
		return err
	}
	return alt
}

// TrailHashes returns the hashes at indexes, in that order; see store.Store.
func (s *Store) TrailHashes(ctx context.Context, indexes []int64) ([]store.TrailHash, error) {
	if len(indexes) == 0 {
		return nil, nil
	}
	found := make(map[int64]store.TrailHash, len(indexes))
	args := make([]any, 0, trailChunk)
	for rest := indexes; len(rest) > 0; {
		n := min(len(rest), trailChunk)
		args = args[:0]
		for _, i := range rest[:n] {
			args = append(args, i)
		}
		rows, err := s.r.QueryContext(ctx, `SELECT idx, hash, kind FROM trail_hashes WHERE idx IN (?`+strings.Repeat(",?", n-1)+`)`, args...)
		if err != nil {
			return nil, wrap("trail hashes", err)
		}
		for rows.Next() {
			var h store.TrailHash
			var kind int64
			if err := rows.Scan(&h.Index, &h.Hash, &kind); err != nil {
				rows.Close()
				return nil, wrap("trail hashes", err)
			}
			h.Kind = store.TrailLeafKind(kind)
			found[h.Index] = h
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, wrap("trail hashes", err)
		}
		rest = rest[n:]
	}
	out := make([]store.TrailHash, len(indexes))
	for i, idx := range indexes {
		h, ok := found[idx]
		if !ok {
			return nil, fmt.Errorf("sqlite: trail hashes: index %d: %w", idx, store.ErrNotFound)
		}
		out[i] = h
	}
	return out, nil
}

// TrailHashRange returns the hashes with from <= Index < to; see store.Store.
func (s *Store) TrailHashRange(ctx context.Context, from, to int64) ([]store.TrailHash, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT idx, hash, kind FROM trail_hashes WHERE idx >= ? AND idx < ? ORDER BY idx`, from, to)
	if err != nil {
		return nil, wrap("trail hash range", err)
	}
	defer rows.Close()
	var out []store.TrailHash
	for rows.Next() {
		var h store.TrailHash
		var kind int64
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
	args := make([]any, 0, trailChunk+3)
	for rest := indexes; len(rest) > 0; {
		n := min(len(rest), trailChunk)
		args = append(args[:0], int64(store.TrailPurged), int64(store.TrailStored), int64(store.TrailRecovered))
		for _, i := range rest[:n] {
			args = append(args, i)
		}
		_, err := s.w.ExecContext(ctx, `UPDATE trail_hashes SET kind = ? WHERE kind IN (?, ?) AND idx IN (?`+strings.Repeat(",?", n-1)+`)`, args...)
		if err != nil {
			return wrap("mark trail leaves purged", err)
		}
		rest = rest[n:]
	}
	return nil
}

// TrailCheckpointAdd stores a checkpoint; see store.Store.
func (s *Store) TrailCheckpointAdd(ctx context.Context, c store.TrailCheckpoint) (store.TrailCheckpoint, error) {
	c.Note, c.CreatedAt = nonNil(c.Note), fromMS(createdMS(c.CreatedAt))
	err := s.w.QueryRowContext(ctx, `INSERT INTO trail_checkpoints (size, note, created_at) VALUES (?, ?, ?) RETURNING id`,
		c.Size, c.Note, toMS(c.CreatedAt)).Scan(&c.ID)
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
	rows, err := s.r.QueryContext(ctx, `SELECT id, size, note, created_at FROM trail_checkpoints WHERE id > ? ORDER BY id LIMIT ?`, p.AfterID, p.Limit)
	if err != nil {
		return nil, wrap("list trail checkpoints", err)
	}
	defer rows.Close()
	var out []store.TrailCheckpoint
	for rows.Next() {
		var c store.TrailCheckpoint
		var created int64
		if err := rows.Scan(&c.ID, &c.Size, &c.Note, &created); err != nil {
			return nil, wrap("list trail checkpoints", err)
		}
		c.CreatedAt = fromMS(created)
		out = append(out, c)
	}
	return out, wrap("list trail checkpoints", rows.Err())
}

// TrailCheckpointLatest returns the checkpoint stored last; see store.Store.
func (s *Store) TrailCheckpointLatest(ctx context.Context) (store.TrailCheckpoint, error) {
	var c store.TrailCheckpoint
	var created int64
	err := s.r.QueryRowContext(ctx, `SELECT id, size, note, created_at FROM trail_checkpoints ORDER BY id DESC LIMIT 1`).
		Scan(&c.ID, &c.Size, &c.Note, &created)
	if err != nil {
		return store.TrailCheckpoint{}, wrap("latest trail checkpoint", err)
	}
	c.CreatedAt = fromMS(created)
	return c, nil
}

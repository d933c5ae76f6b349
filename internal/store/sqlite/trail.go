package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/auditstream/auditstream/internal/store"
)

// trailChunk is how many tiles one statement carries.
const trailChunk = 200

// TrailSize returns the tree's size; see store.Store.
func (s *Store) TrailSize(ctx context.Context) (int64, error) {
	var n int64
	err := s.r.QueryRowContext(ctx, `SELECT size FROM trail_tree WHERE one = 1`).Scan(&n)
	return n, wrap("trail size", err)
}

// TrailAppend stores tiles and moves the size, in one transaction; see store.Store.
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
	if err := putTiles(ctx, tx, p.Tiles); err != nil {
		return wrap("trail append", err)
	}
	return wrap("trail append", tx.Commit())
}

// putTiles writes tiles over those stored, appending level 0's kinds to the stored ones.
func putTiles(ctx context.Context, tx *sql.Tx, tiles []store.TrailTile) error {
	args := make([]any, 0, 4*trailChunk)
	for rest := tiles; len(rest) > 0; {
		n := min(len(rest), trailChunk)
		var b strings.Builder
		b.WriteString(`INSERT INTO trail_tiles (level, n, hashes, kinds) VALUES `)
		args = args[:0]
		for i, t := range rest[:n] {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`(?,?,?,?)`)
			args = append(args, t.Level, t.N, t.Hashes, store.EncodeKinds(t.Kinds))
		}
		// || makes text of blobs; the cast makes the same bytes a blob again.
		b.WriteString(` ON CONFLICT (level, n) DO UPDATE SET hashes = excluded.hashes,
			kinds = CAST(trail_tiles.kinds || excluded.kinds AS BLOB)`)
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return err
		}
		rest = rest[n:]
	}
	return nil
}

// cmpErr returns err when it is not nil, else alt.
func cmpErr(err, alt error) error {
	if err != nil {
		return err
	}
	return alt
}

// TrailTiles returns the tiles at keys, in that order; see store.Store.
func (s *Store) TrailTiles(ctx context.Context, keys []store.TrailTileKey) ([]store.TrailTile, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	found := make(map[store.TrailTileKey]store.TrailTile, len(keys))
	if err := queryTiles(ctx, s.r, keys, func(t store.TrailTile) { found[t.TrailTileKey] = t }); err != nil {
		return nil, wrap("trail tiles", err)
	}
	out := make([]store.TrailTile, len(keys))
	for i, k := range keys {
		t, ok := found[k]
		if !ok {
			return nil, fmt.Errorf("sqlite: trail tiles: tile %d/%d: %w", k.Level, k.N, store.ErrNotFound)
		}
		out[i] = t
	}
	return out, nil
}

// queryTiles calls f with each stored tile of keys.
func queryTiles(ctx context.Context, q querier, keys []store.TrailTileKey, f func(store.TrailTile)) error {
	args := make([]any, 0, 2*trailChunk)
	for rest := keys; len(rest) > 0; {
		n := min(len(rest), trailChunk)
		args = args[:0]
		for _, k := range rest[:n] {
			args = append(args, k.Level, k.N)
		}
		rows, err := q.QueryContext(ctx, `SELECT level, n, hashes, kinds FROM trail_tiles WHERE (level, n) IN (VALUES (?,?)`+
			strings.Repeat(",(?,?)", n-1)+`)`, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var t store.TrailTile
			var kinds []byte
			if err := rows.Scan(&t.Level, &t.N, &t.Hashes, &kinds); err != nil {
				rows.Close()
				return err
			}
			t.Kinds = store.DecodeKinds(kinds)
			f(t)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		rest = rest[n:]
	}
	return nil
}

// TrailMarkPurged marks stored leaves purged; see store.Store. It rewrites the kinds of the
// leaves' tiles in one transaction.
func (s *Store) TrailMarkPurged(ctx context.Context, leaves []int64) error {
	if len(leaves) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return wrap("mark trail leaves purged", err)
	}
	defer func() { _ = tx.Rollback() }()
	tiles := map[int64][]store.TrailLeafKind{}
	if err := queryTiles(ctx, tx, store.PurgeTileKeys(leaves), func(t store.TrailTile) { tiles[t.N] = t.Kinds }); err != nil {
		return wrap("mark trail leaves purged", err)
	}
	for _, n := range store.MarkPurged(tiles, leaves) {
		if _, err := tx.ExecContext(ctx, `UPDATE trail_tiles SET kinds = ? WHERE level = 0 AND n = ?`, store.EncodeKinds(tiles[n]), n); err != nil {
			return wrap("mark trail leaves purged", err)
		}
	}
	return wrap("mark trail leaves purged", tx.Commit())
}

// trailUpgradeStep is how many leaves of the previous format one step of upgradeTrail turns
// into tiles, in one transaction.
const trailUpgradeStep = 64 * store.TrailTileWidth

// upgradeTrail turns the hashes of the previous format (trail_hashes, migration 0011) into
// tiles, in steps of trailUpgradeStep leaves, each in its own transaction (an upgrade cut short
// goes on where it stopped), then drops trail_hashes and trail_upgrade.
func (s *Store) upgradeTrail(ctx context.Context) error {
	for {
		done, err := s.upgradeTrailStep(ctx)
		if err != nil || done {
			return err
		}
	}
}

func (s *Store) upgradeTrailStep(ctx context.Context) (done bool, err error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer func() { _ = tx.Rollback() }()
	var pending bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'trail_upgrade')`).Scan(&pending); err != nil {
		return false, err
	}
	if !pending {
		return true, nil
	}
	var converted, size int64
	if err := tx.QueryRowContext(ctx, `SELECT converted, (SELECT size FROM trail_tree WHERE one = 1) FROM trail_upgrade WHERE one = 1`).Scan(&converted, &size); err != nil {
		return false, err
	}
	if converted >= size {
		if _, err := tx.ExecContext(ctx, `DROP TABLE trail_hashes; DROP TABLE trail_upgrade`); err != nil {
			return false, err
		}
		return true, tx.Commit()
	}
	to := min(converted+trailUpgradeStep, size)
	tiles, err := store.TrailUpgradeStep(converted, to, func(indexes []int64) (map[int64]store.TrailOldHash, error) {
		return oldTrailHashes(ctx, tx, indexes)
	})
	if err != nil {
		return false, fmt.Errorf("trail upgrade of leaves %d-%d: %w", converted, to-1, err)
	}
	if err := putTiles(ctx, tx, tiles); err != nil {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE trail_upgrade SET converted = ? WHERE one = 1`, to); err != nil {
		return false, err
	}
	return false, tx.Commit()
}

// oldTrailHashes reads the rows of trail_hashes at indexes.
func oldTrailHashes(ctx context.Context, tx *sql.Tx, indexes []int64) (map[int64]store.TrailOldHash, error) {
	found := make(map[int64]store.TrailOldHash, len(indexes))
	const chunk = 1000
	args := make([]any, 0, chunk)
	for rest := indexes; len(rest) > 0; {
		n := min(len(rest), chunk)
		args = args[:0]
		for _, i := range rest[:n] {
			args = append(args, i)
		}
		rows, err := tx.QueryContext(ctx, `SELECT idx, hash, kind FROM trail_hashes WHERE idx IN (?`+strings.Repeat(",?", n-1)+`)`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var idx, kind int64
			var h []byte
			if err := rows.Scan(&idx, &h, &kind); err != nil {
				rows.Close()
				return nil, err
			}
			found[idx] = store.TrailOldHash{Hash: h, Kind: store.TrailLeafKind(kind)}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		rest = rest[n:]
	}
	return found, nil
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

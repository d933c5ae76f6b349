package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/auditstream/auditstream/internal/store"
)

// TrailSize returns the tree's size; see store.Store.
func (s *Store) TrailSize(ctx context.Context) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT size FROM trail_tree WHERE one = 1`).Scan(&n)
	return n, wrap("trail size", err)
}

// TrailAppend stores tiles and moves the size, in one transaction; see store.Store.
func (s *Store) TrailAppend(ctx context.Context, p store.TrailAppendParams) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE trail_tree SET size = $1 WHERE one = 1 AND size = $2`, p.NewSize, p.OldSize)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("%w (the tree is not at size %d)", store.ErrVersionConflict, p.OldSize)
		}
		return putTiles(ctx, tx, p.Tiles)
	})
	return wrap("trail append", err)
}

// putTiles writes tiles over those stored, appending level 0's kinds to the stored ones, in
// one statement.
func putTiles(ctx context.Context, tx pgx.Tx, tiles []store.TrailTile) error {
	if len(tiles) == 0 {
		return nil
	}
	levels, ns := make([]int16, len(tiles)), make([]int64, len(tiles))
	hashes, kinds := make([][]byte, len(tiles)), make([][]byte, len(tiles))
	for i, t := range tiles {
		levels[i], ns[i], hashes[i], kinds[i] = int16(t.Level), t.N, t.Hashes, store.EncodeKinds(t.Kinds)
	}
	_, err := tx.Exec(ctx, `INSERT INTO trail_tiles (level, n, hashes, kinds)
		SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[], $4::bytea[])
		ON CONFLICT (level, n) DO UPDATE SET hashes = EXCLUDED.hashes, kinds = trail_tiles.kinds || EXCLUDED.kinds`,
		levels, ns, hashes, kinds)
	return err
}

// TrailTiles returns the tiles at keys, in that order; see store.Store.
func (s *Store) TrailTiles(ctx context.Context, keys []store.TrailTileKey) ([]store.TrailTile, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	found, err := queryTiles(ctx, s.pool, keys, "")
	if err != nil {
		return nil, wrap("trail tiles", err)
	}
	out := make([]store.TrailTile, len(keys))
	for i, k := range keys {
		t, ok := found[k]
		if !ok {
			return nil, fmt.Errorf("postgres: trail tiles: tile %d/%d: %w", k.Level, k.N, store.ErrNotFound)
		}
		out[i] = t
	}
	return out, nil
}

// tileQuerier is what queryTiles reads with: the pool or a transaction.
type tileQuerier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// queryTiles reads the stored tiles of keys; suffix ends the query (" FOR UPDATE").
func queryTiles(ctx context.Context, q tileQuerier, keys []store.TrailTileKey, suffix string) (map[store.TrailTileKey]store.TrailTile, error) {
	levels, ns := make([]int16, len(keys)), make([]int64, len(keys))
	for i, k := range keys {
		levels[i], ns[i] = int16(k.Level), k.N
	}
	rows, err := q.Query(ctx, `SELECT t.level, t.n, t.hashes, t.kinds FROM trail_tiles t
		JOIN unnest($1::smallint[], $2::bigint[]) AS k(level, n) ON t.level = k.level AND t.n = k.n`+suffix, levels, ns)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	found := make(map[store.TrailTileKey]store.TrailTile, len(keys))
	for rows.Next() {
		var t store.TrailTile
		var level int16
		var kinds []byte
		if err := rows.Scan(&level, &t.N, &t.Hashes, &kinds); err != nil {
			return nil, err
		}
		t.Level, t.Kinds = int(level), store.DecodeKinds(kinds)
		found[t.TrailTileKey] = t
	}
	return found, rows.Err()
}

// TrailMarkPurged marks stored leaves purged; see store.Store. It rewrites the kinds of the
// leaves' tiles in one transaction, holding their rows.
func (s *Store) TrailMarkPurged(ctx context.Context, leaves []int64) error {
	if len(leaves) == 0 {
		return nil
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		found, err := queryTiles(ctx, tx, store.PurgeTileKeys(leaves), " ORDER BY t.n FOR UPDATE OF t")
		if err != nil {
			return err
		}
		tiles := make(map[int64][]store.TrailLeafKind, len(found))
		for k, t := range found {
			tiles[k.N] = t.Kinds
		}
		for _, n := range store.MarkPurged(tiles, leaves) {
			if _, err := tx.Exec(ctx, `UPDATE trail_tiles SET kinds = $1 WHERE level = 0 AND n = $2`, store.EncodeKinds(tiles[n]), n); err != nil {
				return err
			}
		}
		return nil
	})
	return wrap("mark trail leaves purged", err)
}

// trailUpgradeStep is how many leaves of the previous format one step of upgradeTrail turns
// into tiles, in one transaction.
const trailUpgradeStep = 64 * store.TrailTileWidth

// upgradeTrail turns the hashes of the previous format (trail_hashes, migration 0011) into
// tiles, in steps of trailUpgradeStep leaves, each in its own transaction (an upgrade cut short
// goes on where it stopped), then drops trail_hashes and trail_upgrade. conn holds the
// migration's lock.
func upgradeTrail(ctx context.Context, conn *pgxpool.Conn) error {
	for {
		done := false
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			var pending bool
			if err := tx.QueryRow(ctx, `SELECT to_regclass('trail_upgrade') IS NOT NULL`).Scan(&pending); err != nil {
				return err
			}
			if !pending {
				done = true
				return nil
			}
			var converted, size int64
			if err := tx.QueryRow(ctx, `SELECT converted, (SELECT size FROM trail_tree WHERE one = 1 FOR UPDATE)
				FROM trail_upgrade WHERE one = 1 FOR UPDATE`).Scan(&converted, &size); err != nil {
				return err
			}
			if converted >= size {
				done = true
				_, err := tx.Exec(ctx, `DROP TABLE trail_hashes; DROP TABLE trail_upgrade`)
				return err
			}
			to := min(converted+trailUpgradeStep, size)
			tiles, err := store.TrailUpgradeStep(converted, to, func(indexes []int64) (map[int64]store.TrailOldHash, error) {
				return oldTrailHashes(ctx, tx, indexes)
			})
			if err != nil {
				return fmt.Errorf("trail upgrade of leaves %d-%d: %w", converted, to-1, err)
			}
			if err := putTiles(ctx, tx, tiles); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `UPDATE trail_upgrade SET converted = $1 WHERE one = 1`, to)
			return err
		})
		if err != nil || done {
			return err
		}
	}
}

// oldTrailHashes reads the rows of trail_hashes at indexes.
func oldTrailHashes(ctx context.Context, tx pgx.Tx, indexes []int64) (map[int64]store.TrailOldHash, error) {
	rows, err := tx.Query(ctx, `SELECT idx, hash, kind FROM trail_hashes WHERE idx = ANY($1)`, indexes)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	found := make(map[int64]store.TrailOldHash, len(indexes))
	for rows.Next() {
		var idx int64
		var kind int16
		var h []byte
		if err := rows.Scan(&idx, &h, &kind); err != nil {
			return nil, err
		}
		found[idx] = store.TrailOldHash{Hash: h, Kind: store.TrailLeafKind(kind)}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return found, nil
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

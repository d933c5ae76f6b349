package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/auditstream/auditstream/internal/store"
)

// DestinationStamp reads the count of changes made to destinations (migration 0016's
// triggers): one row, however many destinations there are.
func (s *Store) DestinationStamp(ctx context.Context) (store.DestinationStamp, error) {
	var st store.DestinationStamp
	err := s.r.QueryRowContext(ctx, `SELECT n FROM destination_changes WHERE id = 1`).Scan(&st.Changes)
	return st, wrap("stamp destinations", err)
}

// DestinationVersions returns every destination's id and version.
func (s *Store) DestinationVersions(ctx context.Context) ([]store.DestinationVersion, error) {
	var out []store.DestinationVersion
	err := queryEach(ctx, s.r, `SELECT id, version FROM destinations ORDER BY id`, nil, func(rows *sql.Rows) error {
		var v store.DestinationVersion
		if err := rows.Scan(&v.ID, &v.Version); err != nil {
			return err
		}
		out = append(out, v)
		return nil
	})
	return out, wrap("list destination versions", err)
}

// DeliveryPositionList returns every delivery position.
func (s *Store) DeliveryPositionList(ctx context.Context) ([]store.DeliveryPosition, error) {
	var out []store.DeliveryPosition
	err := queryEach(ctx, s.r, `SELECT partition, destination_id, position, known_id FROM delivery_positions
		ORDER BY partition, destination_id`, nil, func(rows *sql.Rows) error {
		var p store.DeliveryPosition
		if err := rows.Scan(&p.Partition, &p.DestinationID, &p.Position, &p.KnownID); err != nil {
			return err
		}
		out = append(out, p)
		return nil
	})
	return out, wrap("list delivery positions", err)
}

// DeliveryPositionSave puts and deletes positions in one transaction.
func (s *Store) DeliveryPositionSave(ctx context.Context, p store.DeliveryPositionSaveParams) error {
	op := fmt.Sprintf("save %d delivery positions, delete %d", len(p.Put), len(p.Delete))
	if len(p.Put) == 0 && len(p.Delete) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return wrap(op, err)
	}
	defer func() { _ = tx.Rollback() }()
	if len(p.Put) > 0 {
		put, err := tx.PrepareContext(ctx, `INSERT INTO delivery_positions (partition, destination_id, position, known_id)
			VALUES (?, ?, ?, ?) ON CONFLICT (partition, destination_id) DO UPDATE SET
			position = excluded.position, known_id = excluded.known_id`)
		if err != nil {
			return wrap(op, err)
		}
		defer func() { _ = put.Close() }()
		for _, r := range p.Put {
			if _, err := put.ExecContext(ctx, r.Partition, r.DestinationID, r.Position, r.KnownID); err != nil {
				return wrap(op, err)
			}
		}
	}
	if len(p.Delete) > 0 {
		del, err := tx.PrepareContext(ctx, `DELETE FROM delivery_positions WHERE partition = ? AND destination_id = ?`)
		if err != nil {
			return wrap(op, err)
		}
		defer func() { _ = del.Close() }()
		for _, k := range p.Delete {
			if _, err := del.ExecContext(ctx, k.Partition, k.DestinationID); err != nil {
				return wrap(op, err)
			}
		}
	}
	return wrap(op, tx.Commit())
}

package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/auditstream/auditstream/internal/store"
)

// DestinationStamp reads the count of changes made to destinations (migration 0016's
// triggers): one row, however many destinations there are.
func (s *Store) DestinationStamp(ctx context.Context) (store.DestinationStamp, error) {
	var st store.DestinationStamp
	err := s.pool.QueryRow(ctx, `SELECT n FROM destination_changes WHERE id = 1`).Scan(&st.Changes)
	return st, wrap("stamp destinations", err)
}

// DestinationVersions returns every destination's id and version.
func (s *Store) DestinationVersions(ctx context.Context) ([]store.DestinationVersion, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, version FROM destinations ORDER BY id`)
	if err != nil {
		return nil, wrap("list destination versions", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.DestinationVersion, error) {
		var v store.DestinationVersion
		return v, r.Scan(&v.ID, &v.Version)
	})
	return out, wrap("list destination versions", err)
}

// DeliveryPositionList returns every delivery position.
func (s *Store) DeliveryPositionList(ctx context.Context) ([]store.DeliveryPosition, error) {
	rows, err := s.pool.Query(ctx, `SELECT partition, destination_id, position, known_id FROM delivery_positions
		ORDER BY partition, destination_id`)
	if err != nil {
		return nil, wrap("list delivery positions", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.DeliveryPosition, error) {
		var p store.DeliveryPosition
		err := r.Scan(&p.Partition, &p.DestinationID, &p.Position, &p.KnownID)
		return p, err
	})
	return out, wrap("list delivery positions", err)
}

// DeliveryPositionSave puts and deletes positions in one transaction, sent as one batch.
func (s *Store) DeliveryPositionSave(ctx context.Context, p store.DeliveryPositionSaveParams) error {
	op := fmt.Sprintf("save %d delivery positions, delete %d", len(p.Put), len(p.Delete))
	if len(p.Put) == 0 && len(p.Delete) == 0 {
		return nil
	}
	var b pgx.Batch
	for _, r := range p.Put {
		b.Queue(`INSERT INTO delivery_positions (partition, destination_id, position, known_id) VALUES ($1, $2, $3, $4)
			ON CONFLICT (partition, destination_id) DO UPDATE SET position = excluded.position, known_id = excluded.known_id`,
			r.Partition, r.DestinationID, r.Position, r.KnownID)
	}
	for _, k := range p.Delete {
		b.Queue(`DELETE FROM delivery_positions WHERE partition = $1 AND destination_id = $2`, k.Partition, k.DestinationID)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		return tx.SendBatch(ctx, &b).Close()
	})
	return wrap(op, err)
}

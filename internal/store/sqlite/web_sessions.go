package sqlite

import (
	"context"
	"time"

	"github.com/auditstream/auditstream/internal/store"
)

const webSessionColumns = `id_hash, user_id, token_hash, created_at, expires_at`

func scanWebSession(row scanner) (store.WebSession, error) {
	var ws store.WebSession
	var created, expires int64
	if err := row.Scan(&ws.IDHash, &ws.UserID, &ws.TokenHash, &created, &expires); err != nil {
		return store.WebSession{}, err
	}
	ws.CreatedAt = fromMS(created)
	ws.ExpiresAt = fromMS(expires)
	return ws, nil
}

// nonNil returns b, or an empty slice for nil: the hash columns are NOT NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// WebSessionCreate stores a session. store.ErrConflict when the id hash is taken,
// store.ErrNotFound when the user does not exist.
func (s *Store) WebSessionCreate(ctx context.Context, ws store.WebSession) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO web_sessions (`+webSessionColumns+`) VALUES (?, ?, ?, ?, ?)`,
		nonNil(ws.IDHash), ws.UserID, nonNil(ws.TokenHash), createdMS(ws.CreatedAt), toMS(ws.ExpiresAt))
	return wrap("create web session", err)
}

// WebSessionGet returns the session with that id hash, expired or not, or store.ErrNotFound.
func (s *Store) WebSessionGet(ctx context.Context, idHash []byte) (store.WebSession, error) {
	ws, err := scanWebSession(s.r.QueryRowContext(ctx,
		`SELECT `+webSessionColumns+` FROM web_sessions WHERE id_hash = ?`, nonNil(idHash)))
	return ws, wrap("get web session", err)
}

// WebSessionDelete deletes the session with that id hash; deleting a missing one is not an
// error.
func (s *Store) WebSessionDelete(ctx context.Context, idHash []byte) error {
	_, err := s.w.ExecContext(ctx, `DELETE FROM web_sessions WHERE id_hash = ?`, nonNil(idHash))
	return wrap("delete web session", err)
}

// WebSessionDeleteExpired deletes the sessions that expire at or before now.
func (s *Store) WebSessionDeleteExpired(ctx context.Context, now time.Time) (int64, error) {
	// A stored millisecond value m is <= now exactly when m <= toMS(now) (now rounded down).
	res, err := s.w.ExecContext(ctx, `DELETE FROM web_sessions WHERE expires_at <= ?`, toMS(now))
	if err != nil {
		return 0, wrap("delete expired web sessions", err)
	}
	n, err := res.RowsAffected()
	return n, wrap("delete expired web sessions", err)
}

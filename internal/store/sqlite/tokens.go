package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/auditstream/auditstream/internal/store"
)

const tokenColumns = `id, user_id, name, hash, scopes, expires_at, revoked, created_at, impersonation, namespace_key, access_level`

func scanToken(row scanner) (store.Token, error) {
	var t store.Token
	var scopes string
	var expires sql.NullInt64
	var created int64
	var nsKey sql.NullInt64
	if err := row.Scan(&t.ID, &t.UserID, &t.Name, &t.Hash, &scopes, &expires, &t.Revoked, &created, &t.Impersonation, &nsKey, &t.AccessLevel); err != nil {
		return store.Token{}, err
	}
	if err := json.Unmarshal([]byte(scopes), &t.Scopes); err != nil {
		return store.Token{}, fmt.Errorf("token %d: decode scopes: %w", t.ID, err)
	}
	if len(t.Scopes) == 0 {
		t.Scopes = nil
	}
	t.ExpiresAt = fromNullMS(expires)
	t.NamespaceKey = nsKey.Int64
	t.CreatedAt = fromMS(created)
	return t, nil
}

// encodeScopes encodes scopes as a JSON array ("[]" for none).
func encodeScopes(scopes []string) (string, error) {
	if scopes == nil {
		scopes = []string{}
	}
	b, err := json.Marshal(scopes)
	return string(b), err
}

// TokenCreate stores a token. store.ErrConflict when the hash is taken, store.ErrNotFound when
// the user does not exist.
func (s *Store) TokenCreate(ctx context.Context, p store.TokenCreateParams) (store.Token, error) {
	scopes, err := encodeScopes(p.Scopes)
	if err != nil {
		return store.Token{}, fmt.Errorf("sqlite: create token %q: %w", p.Name, err)
	}
	hash := p.Hash
	if hash == nil {
		hash = []byte{}
	}
	t, err := scanToken(s.w.QueryRowContext(ctx, `INSERT INTO tokens
		(user_id, name, hash, scopes, expires_at, revoked, created_at, impersonation, namespace_key, access_level)
		VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?)
		RETURNING `+tokenColumns,
		p.UserID, p.Name, hash, scopes, nullMS(p.ExpiresAt), createdMS(p.CreatedAt), p.Impersonation,
		sql.NullInt64{Int64: p.NamespaceKey, Valid: p.NamespaceKey != 0}, p.AccessLevel,
	))
	return t, wrap(fmt.Sprintf("create token %q", p.Name), err)
}

// TokenGetByHash returns the token with that hash, revoked or not, or store.ErrNotFound.
func (s *Store) TokenGetByHash(ctx context.Context, hash []byte) (store.Token, error) {
	if hash == nil {
		hash = []byte{}
	}
	t, err := scanToken(s.r.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE hash = ?`, hash))
	return t, wrap("get token by hash", err)
}

// TokenList returns the tokens of a user ordered by id.
func (s *Store) TokenList(ctx context.Context, userID int64) ([]store.Token, error) {
	return s.tokenList(ctx, "list tokens", `user_id = ?`, userID)
}

// TokenListByNamespace returns the tokens bound to a group ordered by id.
func (s *Store) TokenListByNamespace(ctx context.Context, namespaceKey int64) ([]store.Token, error) {
	return s.tokenList(ctx, "list group tokens", `namespace_key = ?`, namespaceKey)
}

func (s *Store) tokenList(ctx context.Context, op, where string, arg any) ([]store.Token, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE `+where+` ORDER BY id`, arg)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var ts []store.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, wrap(op, err)
		}
		ts = append(ts, t)
	}
	return ts, wrap(op, rows.Err())
}

// TokenRevoke marks a token revoked; revoking a revoked token is not an error.
func (s *Store) TokenRevoke(ctx context.Context, id int64) error {
	res, err := s.w.ExecContext(ctx, `UPDATE tokens SET revoked = 1 WHERE id = ?`, id)
	if err != nil {
		return wrap(fmt.Sprintf("revoke token %d", id), err)
	}
	return wrap(fmt.Sprintf("revoke token %d", id), affectedOne(res))
}

// TokenCount counts all tokens.
func (s *Store) TokenCount(ctx context.Context) (int64, error) {
	var n int64
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM tokens`).Scan(&n)
	return n, wrap("count tokens", err)
}

package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/auditstream/auditstream/internal/store"
)

const tokenColumns = `id, user_id, name, hash, scopes, expires_at, revoked, created_at, impersonation, namespace_key, access_level`

func scanToken(row pgx.Row) (store.Token, error) {
	var t store.Token
	var scopes string
	var expires *time.Time
	var nsKey *int64
	if err := row.Scan(&t.ID, &t.UserID, &t.Name, &t.Hash, &scopes, &expires, &t.Revoked, &t.CreatedAt, &t.Impersonation, &nsKey, &t.AccessLevel); err != nil {
		return store.Token{}, err
	}
	if err := json.Unmarshal([]byte(scopes), &t.Scopes); err != nil {
		return store.Token{}, fmt.Errorf("token %d: decode scopes: %w", t.ID, err)
	}
	if len(t.Scopes) == 0 {
		t.Scopes = nil
	}
	t.ExpiresAt = fromNullTime(expires)
	if nsKey != nil {
		t.NamespaceKey = *nsKey
	}
	t.CreatedAt = fromDB(t.CreatedAt)
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
		return store.Token{}, fmt.Errorf("postgres: create token %q: %w", p.Name, err)
	}
	hash := p.Hash
	if hash == nil {
		hash = []byte{}
	}
	t, err := scanToken(s.pool.QueryRow(ctx, `INSERT INTO tokens
		(user_id, name, hash, scopes, expires_at, created_at, impersonation, namespace_key, access_level)
		VALUES ($1, $2, $3, $4, $5, $6, $7, NULLIF($8::bigint, 0), $9)
		RETURNING `+tokenColumns,
		p.UserID, p.Name, hash, scopes, nullTime(p.ExpiresAt), created(p.CreatedAt), p.Impersonation,
		p.NamespaceKey, p.AccessLevel,
	))
	return t, wrap(fmt.Sprintf("create token %q", p.Name), err)
}

// TokenGetByHash returns the token with that hash, revoked or not, or store.ErrNotFound.
func (s *Store) TokenGetByHash(ctx context.Context, hash []byte) (store.Token, error) {
	if hash == nil {
		hash = []byte{}
	}
	t, err := scanToken(s.pool.QueryRow(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE hash = $1`, hash))
	return t, wrap("get token by hash", err)
}

// TokenList returns the tokens of a user ordered by id.
func (s *Store) TokenList(ctx context.Context, userID int64) ([]store.Token, error) {
	return s.tokenList(ctx, "list tokens", `user_id = $1`, userID)
}

// TokenListByNamespace returns the tokens bound to a group ordered by id.
func (s *Store) TokenListByNamespace(ctx context.Context, namespaceKey int64) ([]store.Token, error) {
	return s.tokenList(ctx, "list group tokens", `namespace_key = $1`, namespaceKey)
}

func (s *Store) tokenList(ctx context.Context, op, where string, arg any) ([]store.Token, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE `+where+` ORDER BY id`, arg)
	if err != nil {
		return nil, wrap(op, err)
	}
	ts, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Token, error) { return scanToken(row) })
	return ts, wrap(op, err)
}

// TokenRevoke marks a token revoked; revoking a revoked token is not an error.
func (s *Store) TokenRevoke(ctx context.Context, id int64) error {
	tag, err := s.pool.Exec(ctx, `UPDATE tokens SET revoked = true WHERE id = $1`, id)
	if err == nil && tag.RowsAffected() == 0 {
		err = pgx.ErrNoRows
	}
	return wrap(fmt.Sprintf("revoke token %d", id), err)
}

// TokenCount counts all tokens.
func (s *Store) TokenCount(ctx context.Context) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM tokens`).Scan(&n)
	return n, wrap("count tokens", err)
}

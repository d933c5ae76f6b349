package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/auditstream/auditstream/internal/store"
)

const memberColumns = `namespace_key, user_id, access_level, expires_at, created_at`

func scanMember(row pgx.Row) (store.Member, error) {
	var m store.Member
	var level int32
	var expires *time.Time
	if err := row.Scan(&m.NamespaceKey, &m.UserID, &level, &expires, &m.CreatedAt); err != nil {
		return store.Member{}, err
	}
	m.AccessLevel = int(level)
	m.ExpiresAt = fromNullTime(expires)
	m.CreatedAt = fromDB(m.CreatedAt)
	return m, nil
}

func (s *Store) listMembers(ctx context.Context, op, q string, arg int64) ([]store.Member, error) {
	rows, err := s.pool.Query(ctx, q, arg)
	if err != nil {
		return nil, wrap(op, err)
	}
	ms, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Member, error) { return scanMember(row) })
	return ms, wrap(op, err)
}

// MemberUpsert creates a membership or replaces the access level and expiry of an existing one;
// a replaced membership keeps its CreatedAt. store.ErrNotFound when the namespace or the user
// does not exist.
func (s *Store) MemberUpsert(ctx context.Context, p store.MemberUpsertParams) (store.Member, error) {
	m, err := scanMember(s.pool.QueryRow(ctx, `INSERT INTO members
		(namespace_key, user_id, access_level, expires_at, created_at)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (namespace_key, user_id) DO UPDATE
		SET access_level = EXCLUDED.access_level, expires_at = EXCLUDED.expires_at
		RETURNING `+memberColumns,
		p.NamespaceKey, p.UserID, p.AccessLevel, nullTime(p.ExpiresAt), created(p.CreatedAt),
	))
	return m, wrap(fmt.Sprintf("upsert member %d of namespace %d", p.UserID, p.NamespaceKey), err)
}

// MemberGet returns the direct membership of a user on a namespace or store.ErrNotFound.
func (s *Store) MemberGet(ctx context.Context, namespaceKey, userID int64) (store.Member, error) {
	m, err := scanMember(s.pool.QueryRow(ctx,
		`SELECT `+memberColumns+` FROM members WHERE namespace_key = $1 AND user_id = $2`, namespaceKey, userID))
	return m, wrap(fmt.Sprintf("get member %d of namespace %d", userID, namespaceKey), err)
}

// MemberList returns the direct members of a namespace ordered by user id.
func (s *Store) MemberList(ctx context.Context, namespaceKey int64) ([]store.Member, error) {
	return s.listMembers(ctx, fmt.Sprintf("list members of namespace %d", namespaceKey),
		`SELECT `+memberColumns+` FROM members WHERE namespace_key = $1 ORDER BY user_id`, namespaceKey)
}

// MemberListByUser returns every direct membership of a user ordered by namespace key.
func (s *Store) MemberListByUser(ctx context.Context, userID int64) ([]store.Member, error) {
	return s.listMembers(ctx, fmt.Sprintf("list memberships of user %d", userID),
		`SELECT `+memberColumns+` FROM members WHERE user_id = $1 ORDER BY namespace_key`, userID)
}

// MemberDelete removes a direct membership or returns store.ErrNotFound.
func (s *Store) MemberDelete(ctx context.Context, namespaceKey, userID int64) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM members WHERE namespace_key = $1 AND user_id = $2`, namespaceKey, userID)
	if err == nil && tag.RowsAffected() == 0 {
		err = pgx.ErrNoRows
	}
	return wrap(fmt.Sprintf("delete member %d of namespace %d", userID, namespaceKey), err)
}

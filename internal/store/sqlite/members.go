package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/auditstream/auditstream/internal/store"
)

const memberColumns = `namespace_key, user_id, access_level, expires_at, created_at`

func scanMember(row scanner) (store.Member, error) {
	var m store.Member
	var expires sql.NullInt64
	var created int64
	if err := row.Scan(&m.NamespaceKey, &m.UserID, &m.AccessLevel, &expires, &created); err != nil {
		return store.Member{}, err
	}
	m.ExpiresAt = fromNullMS(expires)
	m.CreatedAt = fromMS(created)
	return m, nil
}

func listMembers(ctx context.Context, db *sql.DB, op, q string, arg int64) ([]store.Member, error) {
	rows, err := db.QueryContext(ctx, q, arg)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var ms []store.Member
	for rows.Next() {
		m, err := scanMember(rows)
		if err != nil {
			return nil, wrap(op, err)
		}
		ms = append(ms, m)
	}
	return ms, wrap(op, rows.Err())
}

// MemberUpsert creates a membership or replaces the access level and expiry of an existing one;
// a replaced membership keeps its CreatedAt. store.ErrNotFound when the namespace or the user
// does not exist.
func (s *Store) MemberUpsert(ctx context.Context, p store.MemberUpsertParams) (store.Member, error) {
	m, err := scanMember(s.w.QueryRowContext(ctx, `INSERT INTO members
		(namespace_key, user_id, access_level, expires_at, created_at)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (namespace_key, user_id) DO UPDATE
		SET access_level = excluded.access_level, expires_at = excluded.expires_at
		RETURNING `+memberColumns,
		p.NamespaceKey, p.UserID, p.AccessLevel, nullMS(p.ExpiresAt), createdMS(p.CreatedAt),
	))
	return m, wrap(fmt.Sprintf("upsert member %d of namespace %d", p.UserID, p.NamespaceKey), err)
}

// MemberGet returns the direct membership of a user on a namespace or store.ErrNotFound.
func (s *Store) MemberGet(ctx context.Context, namespaceKey, userID int64) (store.Member, error) {
	m, err := scanMember(s.r.QueryRowContext(ctx,
		`SELECT `+memberColumns+` FROM members WHERE namespace_key = ? AND user_id = ?`, namespaceKey, userID))
	return m, wrap(fmt.Sprintf("get member %d of namespace %d", userID, namespaceKey), err)
}

// MemberList returns the direct members of a namespace ordered by user id.
func (s *Store) MemberList(ctx context.Context, namespaceKey int64) ([]store.Member, error) {
	return listMembers(ctx, s.r, fmt.Sprintf("list members of namespace %d", namespaceKey),
		`SELECT `+memberColumns+` FROM members WHERE namespace_key = ? ORDER BY user_id`, namespaceKey)
}

// MemberListByUser returns every direct membership of a user ordered by namespace key.
func (s *Store) MemberListByUser(ctx context.Context, userID int64) ([]store.Member, error) {
	return listMembers(ctx, s.r, fmt.Sprintf("list memberships of user %d", userID),
		`SELECT `+memberColumns+` FROM members WHERE user_id = ? ORDER BY namespace_key`, userID)
}

// MemberDelete removes a direct membership or returns store.ErrNotFound.
func (s *Store) MemberDelete(ctx context.Context, namespaceKey, userID int64) error {
	op := fmt.Sprintf("delete member %d of namespace %d", userID, namespaceKey)
	res, err := s.w.ExecContext(ctx, `DELETE FROM members WHERE namespace_key = ? AND user_id = ?`, namespaceKey, userID)
	if err != nil {
		return wrap(op, err)
	}
	return wrap(op, affectedOne(res))
}

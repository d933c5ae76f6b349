package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"

	"github.com/auditstream/auditstream/internal/store"
)

const namespaceColumns = `key, kind, id, name, path, full_path, parent_key, top_key, created_at`

type scanner interface{ Scan(dest ...any) error }

func scanNamespace(row scanner) (store.Namespace, error) {
	var n store.Namespace
	var id, parent sql.NullInt64
	var created int64
	if err := row.Scan(&n.Key, &n.Kind, &id, &n.Name, &n.Path, &n.FullPath, &parent, &n.TopKey, &created); err != nil {
		return store.Namespace{}, err
	}
	n.ID = id.Int64
	n.ParentKey = parent.Int64
	n.CreatedAt = fromMS(created)
	return n, nil
}

// lastSegment returns the part of a full path after its last slash.
func lastSegment(fullPath string) string {
	return fullPath[strings.LastIndexByte(fullPath, '/')+1:]
}

// NamespaceCreate inserts a namespace. Its TopKey is its own Key when ParentKey is 0 and the
// parent's TopKey otherwise; store.ErrNotFound when the parent does not exist.
func (s *Store) NamespaceCreate(ctx context.Context, p store.NamespaceCreateParams) (store.Namespace, error) {
	if p.Kind != store.KindGroup && p.Kind != store.KindProject {
		return store.Namespace{}, fmt.Errorf("sqlite: create namespace %q: invalid kind %q", p.FullPath, p.Kind)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return store.Namespace{}, wrap("create namespace", err)
	}
	defer func() { _ = tx.Rollback() }()

	var parent sql.NullInt64
	var topKey int64
	if p.ParentKey != 0 {
		parent = sql.NullInt64{Int64: p.ParentKey, Valid: true}
		if err := tx.QueryRowContext(ctx,
			`SELECT top_key FROM namespaces WHERE key = ?`, p.ParentKey,
		).Scan(&topKey); err != nil {
			return store.Namespace{}, wrap(fmt.Sprintf("create namespace %q: parent %d", p.FullPath, p.ParentKey), err)
		}
	}

	idExpr, idArg := "?", any(p.ID)
	switch {
	case p.IDUnknown:
		idArg = nil
	case p.ID == 0:
		// Writes are serialised (one writer connection, IMMEDIATE transactions), so the max
		// cannot change between this read and the insert.
		idExpr, idArg = `(SELECT COALESCE(MAX(id), 0) + 1 FROM namespaces WHERE kind = ? AND id < `+strconv.FormatInt(store.LocalIDBase, 10)+`)`, string(p.Kind)
	case p.LocalID:
		idArg = nil // set from the key below
	}
	row := tx.QueryRowContext(ctx, `INSERT INTO namespaces
		(kind, id, name, path, full_path, parent_key, top_key, created_at)
		VALUES (?, `+idExpr+`, ?, ?, ?, ?, ?, ?)
		RETURNING `+namespaceColumns,
		string(p.Kind), idArg, p.Name, lastSegment(p.FullPath), p.FullPath, parent, topKey, createdMS(p.CreatedAt),
	)
	n, err := scanNamespace(row)
	if err != nil {
		return store.Namespace{}, wrap(fmt.Sprintf("create namespace %q", p.FullPath), err)
	}
	if p.ParentKey == 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE namespaces SET top_key = key WHERE key = ?`, n.Key); err != nil {
			return store.Namespace{}, wrap(fmt.Sprintf("create namespace %q", p.FullPath), err)
		}
		n.TopKey = n.Key
	}
	if p.LocalID && !p.IDUnknown && p.ID == 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE namespaces SET id = ? WHERE key = ?`, store.LocalID(n.Key), n.Key); err != nil {
			return store.Namespace{}, wrap(fmt.Sprintf("create namespace %q", p.FullPath), err)
		}
		n.ID = store.LocalID(n.Key)
	}
	if err := tx.Commit(); err != nil {
		return store.Namespace{}, wrap(fmt.Sprintf("create namespace %q", p.FullPath), err)
	}
	return n, nil
}

// NamespaceGetByKey returns the namespace with that key or store.ErrNotFound.
func (s *Store) NamespaceGetByKey(ctx context.Context, key int64) (store.Namespace, error) {
	n, err := scanNamespace(s.r.QueryRowContext(ctx,
		`SELECT `+namespaceColumns+` FROM namespaces WHERE key = ?`, key))
	return n, wrap(fmt.Sprintf("get namespace key %d", key), err)
}

// NamespaceGetByID returns the namespace of that kind and GitLab id or store.ErrNotFound.
func (s *Store) NamespaceGetByID(ctx context.Context, kind store.NamespaceKind, id int64) (store.Namespace, error) {
	n, err := scanNamespace(s.r.QueryRowContext(ctx,
		`SELECT `+namespaceColumns+` FROM namespaces WHERE kind = ? AND id = ?`, string(kind), id))
	return n, wrap(fmt.Sprintf("get %s %d", kind, id), err)
}

// NamespaceGetByPath returns the namespace with that full path or store.ErrNotFound.
func (s *Store) NamespaceGetByPath(ctx context.Context, fullPath string) (store.Namespace, error) {
	n, err := scanNamespace(s.r.QueryRowContext(ctx,
		`SELECT `+namespaceColumns+` FROM namespaces WHERE full_path = ?`, fullPath))
	return n, wrap(fmt.Sprintf("get namespace %q", fullPath), err)
}

// NamespaceSetID sets the GitLab id of a namespace; id 0 makes it unknown again.
func (s *Store) NamespaceSetID(ctx context.Context, key, id int64) error {
	var v sql.NullInt64
	if id != 0 {
		v = sql.NullInt64{Int64: id, Valid: true}
	}
	res, err := s.w.ExecContext(ctx, `UPDATE namespaces SET id = ? WHERE key = ?`, v, key)
	if err != nil {
		return wrap(fmt.Sprintf("set id of namespace %d", key), err)
	}
	return wrap(fmt.Sprintf("set id of namespace %d", key), affectedOne(res))
}

// NamespaceList returns every namespace ordered by key.
func (s *Store) NamespaceList(ctx context.Context) ([]store.Namespace, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+namespaceColumns+` FROM namespaces ORDER BY key`)
	if err != nil {
		return nil, wrap("list namespaces", err)
	}
	defer rows.Close()
	var ns []store.Namespace
	for rows.Next() {
		n, err := scanNamespace(rows)
		if err != nil {
			return nil, wrap("list namespaces", err)
		}
		ns = append(ns, n)
	}
	return ns, wrap("list namespaces", rows.Err())
}

// NamespaceMove moves a namespace and its subtree to p.NewFullPath under p.NewParentKey. The
// subtree is selected by path prefix with substr, not LIKE: paths may contain '_' and '%'.
func (s *Store) NamespaceMove(ctx context.Context, p store.NamespaceMoveParams) error {
	op := fmt.Sprintf("move namespace %d to %q", p.Key, p.NewFullPath)
	if p.NewFullPath == "" {
		return fmt.Errorf("sqlite: %s: empty path", op)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return wrap(op, err)
	}
	defer func() { _ = tx.Rollback() }()

	var kind, oldPath string
	if err := tx.QueryRowContext(ctx,
		`SELECT kind, full_path FROM namespaces WHERE key = ?`, p.Key,
	).Scan(&kind, &oldPath); err != nil {
		return wrap(op, err)
	}
	var parent sql.NullInt64
	topKey := p.Key
	if p.NewParentKey == 0 {
		if store.NamespaceKind(kind) == store.KindProject {
			return fmt.Errorf("sqlite: %s: a project cannot be top level", op)
		}
	} else {
		if p.NewParentKey == p.Key {
			return fmt.Errorf("sqlite: %s: the new parent is the namespace itself", op)
		}
		parent = sql.NullInt64{Int64: p.NewParentKey, Valid: true}
		var parentKind, parentPath string
		if err := tx.QueryRowContext(ctx,
			`SELECT kind, full_path, top_key FROM namespaces WHERE key = ?`, p.NewParentKey,
		).Scan(&parentKind, &parentPath, &topKey); err != nil {
			return wrap(fmt.Sprintf("%s: parent %d", op, p.NewParentKey), err)
		}
		if store.NamespaceKind(parentKind) != store.KindGroup {
			return fmt.Errorf("sqlite: %s: the new parent %q is a project", op, parentPath)
		}
		if strings.HasPrefix(parentPath, oldPath+"/") {
			return fmt.Errorf("sqlite: %s: the new parent %q is inside the namespace's subtree", op, parentPath)
		}
	}

	if _, err := tx.ExecContext(ctx, `UPDATE namespaces SET
			full_path = ?1 || substr(full_path, length(?2) + 1),
			top_key = ?3,
			parent_key = CASE WHEN key = ?4 THEN ?5 ELSE parent_key END,
			path = CASE WHEN key = ?4 THEN ?6 ELSE path END
		WHERE full_path = ?2 OR substr(full_path, 1, length(?2) + 1) = ?2 || '/'`,
		p.NewFullPath, oldPath, topKey, p.Key, parent, lastSegment(p.NewFullPath),
	); err != nil {
		return wrap(op, err)
	}
	return wrap(op, tx.Commit())
}

// affectedOne returns sql.ErrNoRows when an update or delete matched no row.
func affectedOne(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return sql.ErrNoRows
	}
	return nil
}

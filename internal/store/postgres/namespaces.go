package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/auditstream/auditstream/internal/store"
)

const namespaceColumns = `key, kind, id, name, path, full_path, parent_key, top_key, created_at`

func scanNamespace(row pgx.Row) (store.Namespace, error) {
	var n store.Namespace
	var kind string
	var id, parent *int64
	if err := row.Scan(&n.Key, &kind, &id, &n.Name, &n.Path, &n.FullPath, &parent, &n.TopKey, &n.CreatedAt); err != nil {
		return store.Namespace{}, err
	}
	n.Kind = store.NamespaceKind(kind)
	if id != nil {
		n.ID = *id
	}
	if parent != nil {
		n.ParentKey = *parent
	}
	n.CreatedAt = fromDB(n.CreatedAt)
	return n, nil
}

// lastSegment returns the part of a full path after its last slash.
func lastSegment(fullPath string) string {
	return fullPath[strings.LastIndexByte(fullPath, '/')+1:]
}

// NamespaceCreate inserts a namespace. Its TopKey is its own Key when ParentKey is 0 and the
// parent's TopKey otherwise; store.ErrNotFound when the parent does not exist.
func (s *Store) NamespaceCreate(ctx context.Context, p store.NamespaceCreateParams) (store.Namespace, error) {
	op := fmt.Sprintf("create namespace %q", p.FullPath)
	if p.Kind != store.KindGroup && p.Kind != store.KindProject {
		return store.Namespace{}, fmt.Errorf("postgres: %s: invalid kind %q", op, p.Kind)
	}
	auto := p.ID == 0 && !p.IDUnknown && !p.LocalID
	for attempt := 0; ; attempt++ {
		n, err := s.namespaceCreate(ctx, p, auto)
		if auto && attempt < maxIDRetries && isViolationOf(err, "namespaces_kind_id_key") {
			continue // a concurrent create with an explicit id took max(id)+1 first
		}
		return n, wrap(op, err)
	}
}

func (s *Store) namespaceCreate(ctx context.Context, p store.NamespaceCreateParams, auto bool) (store.Namespace, error) {
	var n store.Namespace
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var parent, topKey *int64
		if p.ParentKey != 0 {
			parent = &p.ParentKey
			var top int64
			if err := tx.QueryRow(ctx, `SELECT top_key FROM namespaces WHERE key = $1`, p.ParentKey).Scan(&top); err != nil {
				return fmt.Errorf("parent %d: %w", p.ParentKey, err)
			}
			topKey = &top
		}
		var id *int64
		if !p.IDUnknown && !auto && !p.LocalID {
			id = &p.ID
		}
		if auto {
			if err := lockIDs(ctx, tx, "namespace:"+string(p.Kind)); err != nil {
				return err
			}
		}
		// The key is taken from the identity sequence first, so that a top-level group can be
		// its own top.
		var err error
		n, err = scanNamespace(tx.QueryRow(ctx, `WITH k AS (SELECT nextval('namespaces_key_seq') AS key)
			INSERT INTO namespaces (key, kind, id, name, path, full_path, parent_key, top_key, created_at)
			SELECT k.key, $1::text,
				CASE WHEN $9::boolean
					THEN (SELECT COALESCE(max(id), 0) + 1 FROM namespaces WHERE kind = $1::text AND id < $11::bigint)
					WHEN $10::boolean THEN k.key + $11::bigint
					ELSE $2::bigint END,
				$3::text, $4::text, $5::text, $6::bigint, COALESCE($7::bigint, k.key), $8::timestamptz
			FROM k
			RETURNING `+namespaceColumns,
			string(p.Kind), id, p.Name, lastSegment(p.FullPath), p.FullPath, parent, topKey, created(p.CreatedAt), auto,
			p.LocalID && !p.IDUnknown && p.ID == 0, store.LocalIDBase,
		))
		return err
	})
	return n, err
}

// NamespaceGetByKey returns the namespace with that key or store.ErrNotFound.
func (s *Store) NamespaceGetByKey(ctx context.Context, key int64) (store.Namespace, error) {
	n, err := scanNamespace(s.pool.QueryRow(ctx, `SELECT `+namespaceColumns+` FROM namespaces WHERE key = $1`, key))
	return n, wrap(fmt.Sprintf("get namespace key %d", key), err)
}

// NamespaceGetByID returns the namespace of that kind and GitLab id or store.ErrNotFound.
func (s *Store) NamespaceGetByID(ctx context.Context, kind store.NamespaceKind, id int64) (store.Namespace, error) {
	n, err := scanNamespace(s.pool.QueryRow(ctx,
		`SELECT `+namespaceColumns+` FROM namespaces WHERE kind = $1 AND id = $2`, string(kind), id))
	return n, wrap(fmt.Sprintf("get %s %d", kind, id), err)
}

// NamespaceGetByPath returns the namespace with that full path or store.ErrNotFound.
func (s *Store) NamespaceGetByPath(ctx context.Context, fullPath string) (store.Namespace, error) {
	n, err := scanNamespace(s.pool.QueryRow(ctx,
		`SELECT `+namespaceColumns+` FROM namespaces WHERE full_path = $1`, fullPath))
	return n, wrap(fmt.Sprintf("get namespace %q", fullPath), err)
}

// NamespaceSetID sets the GitLab id of a namespace; id 0 makes it unknown again.
func (s *Store) NamespaceSetID(ctx context.Context, key, id int64) error {
	var v *int64
	if id != 0 {
		v = &id
	}
	tag, err := s.pool.Exec(ctx, `UPDATE namespaces SET id = $1 WHERE key = $2`, v, key)
	if err == nil && tag.RowsAffected() == 0 {
		err = pgx.ErrNoRows
	}
	return wrap(fmt.Sprintf("set id of namespace %d", key), err)
}

// NamespaceMove moves a namespace and its subtree to p.NewFullPath under p.NewParentKey. The
// subtree is selected by path prefix with substr, not LIKE: paths may contain '_' and '%'. The
// namespace and its new parent are locked in key order, so that concurrent moves see each
// other's result (and cannot make a cycle) instead of deadlocking.
func (s *Store) NamespaceMove(ctx context.Context, p store.NamespaceMoveParams) error {
	op := fmt.Sprintf("move namespace %d to %q", p.Key, p.NewFullPath)
	if p.NewFullPath == "" {
		return fmt.Errorf("postgres: %s: empty path", op)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+namespaceColumns+` FROM namespaces
			WHERE key = $1 OR key = $2 ORDER BY key FOR UPDATE`, p.Key, p.NewParentKey)
		if err != nil {
			return err
		}
		locked, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Namespace, error) { return scanNamespace(row) })
		if err != nil {
			return err
		}
		var n, parent *store.Namespace
		for i := range locked {
			switch locked[i].Key {
			case p.Key:
				n = &locked[i]
			case p.NewParentKey:
				parent = &locked[i]
			}
		}
		if n == nil {
			return pgx.ErrNoRows
		}
		if p.NewParentKey == p.Key {
			return errors.New("the new parent is the namespace itself")
		}
		var parentKey *int64
		topKey := p.Key
		if p.NewParentKey == 0 {
			if n.Kind == store.KindProject {
				return errors.New("a project cannot be top level")
			}
		} else {
			if parent == nil {
				return fmt.Errorf("parent %d: %w", p.NewParentKey, pgx.ErrNoRows)
			}
			if parent.Kind != store.KindGroup {
				return fmt.Errorf("the new parent %q is a project", parent.FullPath)
			}
			if strings.HasPrefix(parent.FullPath, n.FullPath+"/") {
				return fmt.Errorf("the new parent %q is inside the namespace's subtree", parent.FullPath)
			}
			parentKey, topKey = &p.NewParentKey, parent.TopKey
		}
		_, err = tx.Exec(ctx, `UPDATE namespaces SET
				full_path = $1::text || substr(full_path, length($2::text) + 1),
				top_key = $3::bigint,
				parent_key = CASE WHEN key = $4::bigint THEN $5::bigint ELSE parent_key END,
				path = CASE WHEN key = $4::bigint THEN $6::text ELSE path END
			WHERE full_path = $2::text OR substr(full_path, 1, length($2::text) + 1) = $2::text || '/'`,
			p.NewFullPath, n.FullPath, topKey, p.Key, parentKey, lastSegment(p.NewFullPath))
		return err
	})
	return wrap(op, err)
}

// NamespaceList returns every namespace ordered by key.
func (s *Store) NamespaceList(ctx context.Context) ([]store.Namespace, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+namespaceColumns+` FROM namespaces ORDER BY key`)
	if err != nil {
		return nil, wrap("list namespaces", err)
	}
	ns, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Namespace, error) { return scanNamespace(row) })
	return ns, wrap("list namespaces", err)
}

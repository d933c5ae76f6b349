package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/auditstream/auditstream/internal/store"
)

const destinationColumns = `d.id, d.version, d.scope, d.namespace_key, d.name, d.category, d.config, d.secret_token,
	d.signing_secret, d.previous_signing_secret, d.previous_valid_until, d.active, d.created_at, d.updated_at,
	d.filter_expression`

// querier is what reads need: the read pool, or a transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// execer is what writes need: a write transaction.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// filterList names one of the four event filter lists of a destination by its columns.
type filterList struct {
	kind       string // "allow" or "deny"
	isCategory bool
}

// The four lists, in the order they are written.
var (
	allowTypes      = filterList{"allow", false}
	denyTypes       = filterList{"deny", false}
	allowCategories = filterList{"allow", true}
	denyCategories  = filterList{"deny", true}
	filterLists     = [...]filterList{allowTypes, denyTypes, allowCategories, denyCategories}
)

// list returns the list of d that f names.
func (f filterList) list(d *store.Destination) *[]string {
	switch f {
	case allowTypes:
		return &d.EventTypes
	case denyTypes:
		return &d.DenyEventTypes
	case allowCategories:
		return &d.Categories
	default:
		return &d.DenyCategories
	}
}

// replacement returns the replacement p gives for the list f names, nil when p leaves it.
func (f filterList) replacement(p *store.DestinationUpdateParams) *[]string {
	switch f {
	case allowTypes:
		return p.EventTypes
	case denyTypes:
		return p.DenyEventTypes
	case allowCategories:
		return p.Categories
	default:
		return p.DenyCategories
	}
}

// checkScope reports an invalid scope and namespace key pairing.
func checkScope(scope store.DestinationScope, namespaceKey int64) error {
	switch {
	case scope == store.ScopeGroup && namespaceKey == 0:
		return errors.New("group scope needs a namespace key")
	case scope == store.ScopeInstance && namespaceKey != 0:
		return errors.New("instance scope takes no namespace key")
	case scope != store.ScopeGroup && scope != store.ScopeInstance:
		return fmt.Errorf("invalid scope %q", scope)
	}
	return nil
}

// nullKey is a namespace key (or an entry id) to store: NULL for 0.
func nullKey(key int64) sql.NullInt64 {
	return sql.NullInt64{Int64: key, Valid: key != 0}
}

// DestinationCreate inserts a destination with its headers and filters in one transaction.
func (s *Store) DestinationCreate(ctx context.Context, p store.DestinationCreateParams) (store.Destination, error) {
	op := fmt.Sprintf("create %s destination %q", p.Scope, p.Name)
	if err := checkScope(p.Scope, p.NamespaceKey); err != nil {
		return store.Destination{}, fmt.Errorf("sqlite: %s: %w", op, err)
	}
	if p.Name == "" || p.Category == "" {
		return store.Destination{}, fmt.Errorf("sqlite: %s: name and category must not be empty", op)
	}
	if err := checkNoEntryIDs(p); err != nil {
		return store.Destination{}, fmt.Errorf("sqlite: %s: %w", op, err)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return store.Destination{}, wrap(op, err)
	}
	defer func() { _ = tx.Rollback() }()

	config := p.Config
	if config == nil {
		config = []byte{} // the column is NOT NULL; nil would bind as NULL
	}
	at := createdMS(p.CreatedAt)
	var id int64
	if err := tx.QueryRowContext(ctx, `INSERT INTO destinations
		(scope, namespace_key, name, category, config, secret_token, signing_secret,
		 previous_signing_secret, previous_valid_until, active, created_at, updated_at, filter_expression)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		RETURNING id`,
		string(p.Scope), nullKey(p.NamespaceKey), p.Name, p.Category, config, p.SecretToken, p.SigningSecret,
		p.PreviousSigningSecret, nullMS(p.PreviousValidUntil), p.Active, at, at, p.FilterExpression,
	).Scan(&id); err != nil {
		return store.Destination{}, wrap(op, err)
	}
	if err := insertHeaders(ctx, tx, id, p.Headers); err != nil {
		return store.Destination{}, wrap(op, err)
	}
	d := store.Destination{EventTypes: p.EventTypes, DenyEventTypes: p.DenyEventTypes, Categories: p.Categories, DenyCategories: p.DenyCategories}
	for _, f := range filterLists {
		if err := insertEventFilters(ctx, tx, id, f, *f.list(&d)); err != nil {
			return store.Destination{}, wrap(op, err)
		}
	}
	if err := insertNamespaceFilters(ctx, tx, id, p.Namespaces); err != nil {
		return store.Destination{}, wrap(op, err)
	}
	d, err = destinationGet(ctx, tx, id)
	if err != nil {
		return store.Destination{}, wrap(op, err)
	}
	return d, wrap(op, tx.Commit())
}

// checkNoEntryIDs reports a header or namespace filter of a create that has an ID: the store
// assigns them.
func checkNoEntryIDs(p store.DestinationCreateParams) error {
	for _, h := range p.Headers {
		if h.ID != 0 {
			return fmt.Errorf("header %q: id %d given; ids are assigned by the store", h.Name, h.ID)
		}
	}
	for _, n := range p.Namespaces {
		if n.ID != 0 {
			return fmt.Errorf("namespace filter %d: id %d given; ids are assigned by the store", n.Key, n.ID)
		}
	}
	return nil
}

// insertHeaders inserts hs as the headers of destination id, in order. A header with ID 0 gets a
// fresh id; any other ID is kept.
func insertHeaders(ctx context.Context, tx execer, id int64, hs []store.DestinationHeader) error {
	for i, h := range hs {
		if _, err := tx.ExecContext(ctx, `INSERT INTO destination_headers
			(id, destination_id, position, name, value, active) VALUES (?, ?, ?, ?, ?, ?)`,
			nullKey(h.ID), id, i, h.Name, h.Value, h.Active); err != nil {
			return fmt.Errorf("header %q: %w", h.Name, err)
		}
	}
	return nil
}

func insertEventFilters(ctx context.Context, tx execer, id int64, f filterList, values []string) error {
	for i, v := range values {
		if _, err := tx.ExecContext(ctx, `INSERT INTO destination_event_filters
			(destination_id, kind, is_category, position, value) VALUES (?, ?, ?, ?, ?)`,
			id, f.kind, f.isCategory, i, v); err != nil {
			return fmt.Errorf("%s filter %q: %w", f.kind, v, err)
		}
	}
	return nil
}

// insertNamespaceFilters inserts ns as the namespace filters of destination id, in order. A
// filter with ID 0 gets a fresh id; any other ID is kept.
func insertNamespaceFilters(ctx context.Context, tx execer, id int64, ns []store.DestinationNamespace) error {
	for i, n := range ns {
		if _, err := tx.ExecContext(ctx, `INSERT INTO destination_namespace_filters
			(id, destination_id, position, namespace_key, project) VALUES (?, ?, ?, ?, ?)`,
			nullKey(n.ID), id, i, n.Key, n.Project); err != nil {
			return fmt.Errorf("namespace filter %d: %w", n.Key, err)
		}
	}
	return nil
}

// DestinationGet returns one destination or store.ErrNotFound.
func (s *Store) DestinationGet(ctx context.Context, id int64) (store.Destination, error) {
	op := fmt.Sprintf("get destination %d", id)
	var d store.Destination
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		var err error
		d, err = destinationGet(ctx, tx, id)
		return err
	})
	return d, wrap(op, err)
}

// DestinationByHeader returns the destination owning a header, or store.ErrNotFound.
func (s *Store) DestinationByHeader(ctx context.Context, headerID int64) (store.Destination, error) {
	return s.destinationBy(ctx, fmt.Sprintf("get destination of header %d", headerID),
		`SELECT destination_id FROM destination_headers WHERE id = ?`, headerID)
}

// DestinationByNamespaceFilter returns the destination owning a namespace filter, or
// store.ErrNotFound.
func (s *Store) DestinationByNamespaceFilter(ctx context.Context, filterID int64) (store.Destination, error) {
	return s.destinationBy(ctx, fmt.Sprintf("get destination of namespace filter %d", filterID),
		`SELECT destination_id FROM destination_namespace_filters WHERE id = ?`, filterID)
}

// destinationBy returns the destination whose id query (one row, one column) returns for arg,
// in one read transaction.
func (s *Store) destinationBy(ctx context.Context, op, query string, arg int64) (store.Destination, error) {
	var d store.Destination
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		var id int64
		if err := tx.QueryRowContext(ctx, query, arg).Scan(&id); err != nil {
			return err
		}
		var err error
		d, err = destinationGet(ctx, tx, id)
		return err
	})
	return d, wrap(op, err)
}

// DestinationList returns the destinations p selects ordered by id.
func (s *Store) DestinationList(ctx context.Context, p store.DestinationListParams) ([]store.Destination, error) {
	op := fmt.Sprintf("list %s destinations", p.Scope)
	var where []string
	var args []any
	switch {
	case p.Scope == "" && p.NamespaceKey == 0:
	case p.Scope == "":
		return nil, fmt.Errorf("sqlite: %s: a namespace key needs group scope", op)
	default:
		if err := checkScope(p.Scope, p.NamespaceKey); err != nil {
			return nil, fmt.Errorf("sqlite: %s: %w", op, err)
		}
		where, args = append(where, `d.scope = ?`), append(args, string(p.Scope))
		if p.Scope == store.ScopeGroup {
			where, args = append(where, `d.namespace_key = ?`), append(args, p.NamespaceKey)
		} else {
			where = append(where, `d.namespace_key IS NULL`)
		}
	}
	if p.ActiveOnly {
		where = append(where, `d.active`)
	}
	if p.IDs != nil {
		if len(p.IDs) > store.MaxListIDs {
			return nil, fmt.Errorf("sqlite: %s: more than %d ids", op, store.MaxListIDs)
		}
		where = append(where, `d.id IN (SELECT value FROM json_each(?))`)
		ids, _ := json.Marshal(p.IDs)
		args = append(args, string(ids))
	}
	if len(where) == 0 {
		where = append(where, `true`)
	}
	var ds []store.Destination
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		var err error
		ds, err = destinationList(ctx, tx, strings.Join(where, " AND "), args...)
		return err
	})
	return ds, wrap(op, err)
}

// readTx runs f in a read transaction, so that its statements see one snapshot.
func (s *Store) readTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if err := f(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// destinationGet returns the destination with that id, or sql.ErrNoRows.
func destinationGet(ctx context.Context, q querier, id int64) (store.Destination, error) {
	ds, err := destinationList(ctx, q, `d.id = ?`, id)
	if err != nil {
		return store.Destination{}, err
	}
	if len(ds) == 0 {
		return store.Destination{}, sql.ErrNoRows
	}
	return ds[0], nil
}

// destinationList returns the destinations matching where (on destinations d) ordered by id,
// with their headers and filters: one query per table.
func destinationList(ctx context.Context, q querier, where string, args ...any) ([]store.Destination, error) {
	var ds []store.Destination
	index := map[int64]int{}
	err := queryEach(ctx, q, `SELECT `+destinationColumns+` FROM destinations d WHERE `+where+` ORDER BY d.id`, args,
		func(rows *sql.Rows) error {
			var d store.Destination
			var key, validUntil sql.NullInt64
			var created, updated int64
			if err := rows.Scan(&d.ID, &d.Version, &d.Scope, &key, &d.Name, &d.Category, &d.Config, &d.SecretToken,
				&d.SigningSecret, &d.PreviousSigningSecret, &validUntil, &d.Active, &created, &updated,
				&d.FilterExpression); err != nil {
				return err
			}
			if len(d.Config) == 0 {
				d.Config = nil
			}
			d.NamespaceKey = key.Int64
			d.PreviousValidUntil = fromNullMS(validUntil)
			d.CreatedAt = fromMS(created)
			d.UpdatedAt = fromMS(updated)
			index[d.ID] = len(ds)
			ds = append(ds, d)
			return nil
		})
	if err != nil || len(ds) == 0 {
		return ds, err
	}
	from := ` JOIN destinations d ON d.id = c.destination_id WHERE ` + where + ` ORDER BY c.destination_id, `
	err = queryEach(ctx, q, `SELECT c.destination_id, c.id, c.name, c.value, c.active FROM destination_headers c`+from+`c.position`, args,
		func(rows *sql.Rows) error {
			var id int64
			var h store.DestinationHeader
			if err := rows.Scan(&id, &h.ID, &h.Name, &h.Value, &h.Active); err != nil {
				return err
			}
			d := &ds[index[id]]
			d.Headers = append(d.Headers, h)
			return nil
		})
	if err != nil {
		return nil, err
	}
	err = queryEach(ctx, q, `SELECT c.destination_id, c.kind, c.is_category, c.value FROM destination_event_filters c`+from+`c.position`, args,
		func(rows *sql.Rows) error {
			var id int64
			var f filterList
			var v string
			if err := rows.Scan(&id, &f.kind, &f.isCategory, &v); err != nil {
				return err
			}
			l := f.list(&ds[index[id]])
			*l = append(*l, v)
			return nil
		})
	if err != nil {
		return nil, err
	}
	err = queryEach(ctx, q, `SELECT c.destination_id, c.id, c.namespace_key, c.project FROM destination_namespace_filters c`+from+`c.position`, args,
		func(rows *sql.Rows) error {
			var id int64
			var n store.DestinationNamespace
			if err := rows.Scan(&id, &n.ID, &n.Key, &n.Project); err != nil {
				return err
			}
			d := &ds[index[id]]
			d.Namespaces = append(d.Namespaces, n)
			return nil
		})
	if err != nil {
		return nil, err
	}
	return ds, nil
}

// queryEach runs a query and calls f on each row.
func queryEach(ctx context.Context, q querier, query string, args []any, f func(*sql.Rows) error) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := f(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// DestinationUpdate changes the fields p sets in one transaction.
func (s *Store) DestinationUpdate(ctx context.Context, p store.DestinationUpdateParams) (store.Destination, error) {
	op := fmt.Sprintf("update destination %d", p.ID)
	if (p.Name != nil && *p.Name == "") || (p.Category != nil && *p.Category == "") {
		return store.Destination{}, fmt.Errorf("sqlite: %s: name and category must not be empty", op)
	}
	var sets []string
	var args []any
	set := func(col string, v any) {
		sets = append(sets, col+" = ?")
		args = append(args, v)
	}
	if p.Name != nil {
		set("name", *p.Name)
	}
	if p.Category != nil {
		set("category", *p.Category)
	}
	if p.Config != nil {
		config := *p.Config
		if config == nil {
			config = []byte{}
		}
		set("config", config)
	}
	if p.SecretToken != nil {
		set("secret_token", *p.SecretToken)
	}
	if p.SigningSecret != nil {
		set("signing_secret", *p.SigningSecret)
	}
	if p.PreviousSigningSecret != nil {
		set("previous_signing_secret", *p.PreviousSigningSecret)
	}
	if p.PreviousValidUntil != nil {
		set("previous_valid_until", nullMS(*p.PreviousValidUntil))
	}
	if p.Active != nil {
		set("active", *p.Active)
	}
	if p.FilterExpression != nil {
		set("filter_expression", *p.FilterExpression)
	}
	set("updated_at", createdMS(p.UpdatedAt))
	sets = append(sets, "version = version + 1")
	update := `UPDATE destinations SET ` + strings.Join(sets, ", ") + ` WHERE id = ?`
	args = append(args, p.ID)
	if p.IfVersion != 0 {
		update += ` AND version = ?`
		args = append(args, p.IfVersion)
	}

	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return store.Destination{}, wrap(op, err)
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, update, args...)
	if err == nil {
		err = affectedOne(res)
	}
	if errors.Is(err, sql.ErrNoRows) && p.IfVersion != 0 {
		// Missing, or at another version?
		var exists bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM destinations WHERE id = ?)`, p.ID).Scan(&exists); err != nil {
			return store.Destination{}, wrap(op, err)
		}
		if exists {
			err = fmt.Errorf("%w (not at version %d)", store.ErrVersionConflict, p.IfVersion)
		}
	}
	if err != nil {
		return store.Destination{}, wrap(op, err)
	}
	if p.Headers != nil {
		ids := make([]int64, len(*p.Headers))
		for i, h := range *p.Headers {
			ids[i] = h.ID
		}
		if err := checkKeptIDs(ctx, tx, "header", `SELECT id FROM destination_headers WHERE destination_id = ?`, p.ID, ids); err != nil {
			return store.Destination{}, wrap(op, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM destination_headers WHERE destination_id = ?`, p.ID); err != nil {
			return store.Destination{}, wrap(op, err)
		}
		if err := insertHeaders(ctx, tx, p.ID, *p.Headers); err != nil {
			return store.Destination{}, wrap(op, err)
		}
	}
	for _, f := range filterLists {
		l := f.replacement(&p)
		if l == nil {
			continue
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM destination_event_filters
			WHERE destination_id = ? AND kind = ? AND is_category = ?`, p.ID, f.kind, f.isCategory); err != nil {
			return store.Destination{}, wrap(op, err)
		}
		if err := insertEventFilters(ctx, tx, p.ID, f, *l); err != nil {
			return store.Destination{}, wrap(op, err)
		}
	}
	if p.Namespaces != nil {
		ids := make([]int64, len(*p.Namespaces))
		for i, n := range *p.Namespaces {
			ids[i] = n.ID
		}
		if err := checkKeptIDs(ctx, tx, "namespace filter", `SELECT id FROM destination_namespace_filters WHERE destination_id = ?`, p.ID, ids); err != nil {
			return store.Destination{}, wrap(op, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM destination_namespace_filters WHERE destination_id = ?`, p.ID); err != nil {
			return store.Destination{}, wrap(op, err)
		}
		if err := insertNamespaceFilters(ctx, tx, p.ID, *p.Namespaces); err != nil {
			return store.Destination{}, wrap(op, err)
		}
	}
	d, err := destinationGet(ctx, tx, p.ID)
	if err != nil {
		return store.Destination{}, wrap(op, err)
	}
	return d, wrap(op, tx.Commit())
}

// checkKeptIDs checks the entry ids of a replacement list of destination id (0 for a new
// entry): query returns the ids the destination has now, and every other id must be one of them,
// and given once. Kept entries are then deleted and inserted again with their ids.
func checkKeptIDs(ctx context.Context, q querier, what, query string, id int64, ids []int64) error {
	have := map[int64]bool{}
	err := queryEach(ctx, q, query, []any{id}, func(rows *sql.Rows) error {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return err
		}
		have[v] = true
		return nil
	})
	if err != nil {
		return err
	}
	seen := map[int64]bool{}
	for _, e := range ids {
		switch {
		case e == 0:
		case seen[e]:
			return fmt.Errorf("%s id %d given twice", what, e)
		case !have[e]:
			return fmt.Errorf("%w: %s %d is not one of destination %d's", store.ErrNotFound, what, e, id)
		}
		seen[e] = true
	}
	return nil
}

// DestinationDelete removes a destination; its headers and filters go with it (ON DELETE
// CASCADE).
func (s *Store) DestinationDelete(ctx context.Context, id int64) error {
	op := fmt.Sprintf("delete destination %d", id)
	res, err := s.w.ExecContext(ctx, `DELETE FROM destinations WHERE id = ?`, id)
	if err != nil {
		return wrap(op, err)
	}
	return wrap(op, affectedOne(res))
}

// DestinationCount counts the destinations of one scope and namespace.
func (s *Store) DestinationCount(ctx context.Context, scope store.DestinationScope, namespaceKey int64) (int64, error) {
	op := fmt.Sprintf("count %s destinations", scope)
	if err := checkScope(scope, namespaceKey); err != nil {
		return 0, fmt.Errorf("sqlite: %s: %w", op, err)
	}
	var n int64
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM destinations WHERE scope = ? AND namespace_key IS ?`,
		string(scope), nullKey(namespaceKey)).Scan(&n)
	return n, wrap(op, err)
}

package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/auditstream/auditstream/internal/store"
)

const destinationColumns = `d.id, d.version, d.scope, d.namespace_key, d.name, d.category, d.config, d.secret_token,
	d.signing_secret, d.previous_signing_secret, d.previous_valid_until, d.active, d.created_at, d.updated_at,
	d.filter_expression`

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

// nullKey is a namespace key to store: NULL for 0.
func nullKey(key int64) *int64 {
	if key == 0 {
		return nil
	}
	return &key
}

// DestinationCreate inserts a destination with its headers and filters in one transaction.
func (s *Store) DestinationCreate(ctx context.Context, p store.DestinationCreateParams) (store.Destination, error) {
	op := fmt.Sprintf("create %s destination %q", p.Scope, p.Name)
	if err := checkScope(p.Scope, p.NamespaceKey); err != nil {
		return store.Destination{}, fmt.Errorf("postgres: %s: %w", op, err)
	}
	if p.Name == "" || p.Category == "" {
		return store.Destination{}, fmt.Errorf("postgres: %s: name and category must not be empty", op)
	}
	if err := checkNoEntryIDs(p); err != nil {
		return store.Destination{}, fmt.Errorf("postgres: %s: %w", op, err)
	}
	config := p.Config
	if config == nil {
		config = []byte{} // the column is NOT NULL; nil would bind as NULL
	}
	at := created(p.CreatedAt)
	var d store.Destination
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var id int64
		if err := tx.QueryRow(ctx, `INSERT INTO destinations
			(scope, namespace_key, name, category, config, secret_token, signing_secret,
			 previous_signing_secret, previous_valid_until, active, created_at, updated_at, filter_expression)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12)
			RETURNING id`,
			string(p.Scope), nullKey(p.NamespaceKey), p.Name, p.Category, config, p.SecretToken, p.SigningSecret,
			p.PreviousSigningSecret, nullTime(p.PreviousValidUntil), p.Active, at, p.FilterExpression,
		).Scan(&id); err != nil {
			return err
		}
		if err := insertHeaders(ctx, tx, id, p.Headers); err != nil {
			return err
		}
		lists := store.Destination{EventTypes: p.EventTypes, DenyEventTypes: p.DenyEventTypes, Categories: p.Categories, DenyCategories: p.DenyCategories}
		for _, f := range filterLists {
			if err := insertEventFilters(ctx, tx, id, f, *f.list(&lists)); err != nil {
				return err
			}
		}
		if err := insertNamespaceFilters(ctx, tx, id, p.Namespaces); err != nil {
			return err
		}
		var err error
		d, err = destinationGet(ctx, tx, id)
		return err
	})
	return d, wrap(op, err)
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
// fresh id from the identity column; any other ID is kept.
func insertHeaders(ctx context.Context, tx pgx.Tx, id int64, hs []store.DestinationHeader) error {
	for i, h := range hs {
		// The id column is GENERATED BY DEFAULT: COALESCE cannot ask for the default, so the
		// statement names the id column only when there is one to keep.
		q := `INSERT INTO destination_headers (destination_id, position, name, value, active) VALUES ($1, $2, $3, $4, $5)`
		args := []any{id, i, h.Name, h.Value, h.Active}
		if h.ID != 0 {
			q = `INSERT INTO destination_headers (destination_id, position, name, value, active, id) VALUES ($1, $2, $3, $4, $5, $6)`
			args = append(args, h.ID)
		}
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return fmt.Errorf("header %q: %w", h.Name, err)
		}
	}
	return nil
}

func insertEventFilters(ctx context.Context, tx pgx.Tx, id int64, f filterList, values []string) error {
	for i, v := range values {
		if _, err := tx.Exec(ctx, `INSERT INTO destination_event_filters
			(destination_id, kind, is_category, position, value) VALUES ($1, $2, $3, $4, $5)`,
			id, f.kind, f.isCategory, i, v); err != nil {
			return fmt.Errorf("%s filter %q: %w", f.kind, v, err)
		}
	}
	return nil
}

// insertNamespaceFilters inserts ns as the namespace filters of destination id, in order. A
// filter with ID 0 gets a fresh id from the identity column; any other ID is kept.
func insertNamespaceFilters(ctx context.Context, tx pgx.Tx, id int64, ns []store.DestinationNamespace) error {
	for i, n := range ns {
		q := `INSERT INTO destination_namespace_filters (destination_id, position, namespace_key, project) VALUES ($1, $2, $3, $4)`
		args := []any{id, i, n.Key, n.Project}
		if n.ID != 0 {
			q = `INSERT INTO destination_namespace_filters (destination_id, position, namespace_key, project, id) VALUES ($1, $2, $3, $4, $5)`
			args = append(args, n.ID)
		}
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return fmt.Errorf("namespace filter %d: %w", n.Key, err)
		}
	}
	return nil
}

// DestinationGet returns one destination or store.ErrNotFound.
func (s *Store) DestinationGet(ctx context.Context, id int64) (store.Destination, error) {
	var d store.Destination
	err := s.readTx(ctx, func(tx pgx.Tx) error {
		var err error
		d, err = destinationGet(ctx, tx, id)
		return err
	})
	return d, wrap(fmt.Sprintf("get destination %d", id), err)
}

// DestinationByHeader returns the destination owning a header, or store.ErrNotFound.
func (s *Store) DestinationByHeader(ctx context.Context, headerID int64) (store.Destination, error) {
	return s.destinationBy(ctx, fmt.Sprintf("get destination of header %d", headerID),
		`SELECT destination_id FROM destination_headers WHERE id = $1`, headerID)
}

// DestinationByNamespaceFilter returns the destination owning a namespace filter, or
// store.ErrNotFound.
func (s *Store) DestinationByNamespaceFilter(ctx context.Context, filterID int64) (store.Destination, error) {
	return s.destinationBy(ctx, fmt.Sprintf("get destination of namespace filter %d", filterID),
		`SELECT destination_id FROM destination_namespace_filters WHERE id = $1`, filterID)
}

// destinationBy returns the destination whose id query (one row, one column) returns for arg,
// in one read transaction.
func (s *Store) destinationBy(ctx context.Context, op, query string, arg int64) (store.Destination, error) {
	var d store.Destination
	err := s.readTx(ctx, func(tx pgx.Tx) error {
		var id int64
		if err := tx.QueryRow(ctx, query, arg).Scan(&id); err != nil {
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
		return nil, fmt.Errorf("postgres: %s: a namespace key needs group scope", op)
	default:
		if err := checkScope(p.Scope, p.NamespaceKey); err != nil {
			return nil, fmt.Errorf("postgres: %s: %w", op, err)
		}
		where, args = append(where, `d.scope = $1`), append(args, string(p.Scope))
		if p.Scope == store.ScopeGroup {
			where, args = append(where, `d.namespace_key = $2`), append(args, p.NamespaceKey)
		} else {
			where = append(where, `d.namespace_key IS NULL`)
		}
	}
	if p.ActiveOnly {
		where = append(where, `d.active`)
	}
	if p.IDs != nil {
		if len(p.IDs) > store.MaxListIDs {
			return nil, fmt.Errorf("postgres: %s: more than %d ids", op, store.MaxListIDs)
		}
		args = append(args, p.IDs)
		where = append(where, fmt.Sprintf(`d.id = ANY($%d)`, len(args)))
	}
	if len(where) == 0 {
		where = append(where, `true`)
	}
	var ds []store.Destination
	err := s.readTx(ctx, func(tx pgx.Tx) error {
		var err error
		ds, err = destinationList(ctx, tx, strings.Join(where, " AND "), args...)
		return err
	})
	return ds, wrap(op, err)
}

// readTx runs f in a read-only REPEATABLE READ transaction, so that its statements see one
// snapshot.
func (s *Store) readTx(ctx context.Context, f func(tx pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, f)
}

// destinationGet returns the destination with that id, or pgx.ErrNoRows.
func destinationGet(ctx context.Context, tx pgx.Tx, id int64) (store.Destination, error) {
	ds, err := destinationList(ctx, tx, `d.id = $1`, id)
	if err != nil {
		return store.Destination{}, err
	}
	if len(ds) == 0 {
		return store.Destination{}, pgx.ErrNoRows
	}
	return ds[0], nil
}

// destinationList returns the destinations matching where (on destinations d) ordered by id,
// with their headers and filters: one query per table.
func destinationList(ctx context.Context, tx pgx.Tx, where string, args ...any) ([]store.Destination, error) {
	var ds []store.Destination
	index := map[int64]int{}
	err := queryEach(ctx, tx, `SELECT `+destinationColumns+` FROM destinations d WHERE `+where+` ORDER BY d.id`, args,
		func(rows pgx.Rows) error {
			var d store.Destination
			var scope string
			var key *int64
			var validUntil *time.Time
			if err := rows.Scan(&d.ID, &d.Version, &scope, &key, &d.Name, &d.Category, &d.Config, &d.SecretToken,
				&d.SigningSecret, &d.PreviousSigningSecret, &validUntil, &d.Active, &d.CreatedAt, &d.UpdatedAt,
				&d.FilterExpression); err != nil {
				return err
			}
			d.Scope = store.DestinationScope(scope)
			if len(d.Config) == 0 {
				d.Config = nil
			}
			if key != nil {
				d.NamespaceKey = *key
			}
			d.PreviousValidUntil = fromNullTime(validUntil)
			d.CreatedAt = fromDB(d.CreatedAt)
			d.UpdatedAt = fromDB(d.UpdatedAt)
			index[d.ID] = len(ds)
			ds = append(ds, d)
			return nil
		})
	if err != nil || len(ds) == 0 {
		return ds, err
	}
	from := ` JOIN destinations d ON d.id = c.destination_id WHERE ` + where + ` ORDER BY c.destination_id, `
	err = queryEach(ctx, tx, `SELECT c.destination_id, c.id, c.name, c.value, c.active FROM destination_headers c`+from+`c.position`, args,
		func(rows pgx.Rows) error {
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
	err = queryEach(ctx, tx, `SELECT c.destination_id, c.kind, c.is_category, c.value FROM destination_event_filters c`+from+`c.position`, args,
		func(rows pgx.Rows) error {
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
	err = queryEach(ctx, tx, `SELECT c.destination_id, c.id, c.namespace_key, c.project FROM destination_namespace_filters c`+from+`c.position`, args,
		func(rows pgx.Rows) error {
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
func queryEach(ctx context.Context, tx pgx.Tx, query string, args []any, f func(pgx.Rows) error) error {
	rows, err := tx.Query(ctx, query, args...)
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
		return store.Destination{}, fmt.Errorf("postgres: %s: name and category must not be empty", op)
	}
	var sets []string
	var args []any
	set := func(col string, v any) {
		args = append(args, v)
		sets = append(sets, col+" = $"+strconv.Itoa(len(args)))
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
		set("previous_valid_until", nullTime(*p.PreviousValidUntil))
	}
	if p.Active != nil {
		set("active", *p.Active)
	}
	if p.FilterExpression != nil {
		set("filter_expression", *p.FilterExpression)
	}
	set("updated_at", created(p.UpdatedAt))
	sets = append(sets, "version = version + 1")
	args = append(args, p.ID)
	update := `UPDATE destinations SET ` + strings.Join(sets, ", ") + ` WHERE id = $` + strconv.Itoa(len(args))
	if p.IfVersion != 0 {
		args = append(args, p.IfVersion)
		update += ` AND version = $` + strconv.Itoa(len(args))
	}

	// READ COMMITTED is enough: the UPDATE locks the destination's row, so concurrent updates of
	// one destination run one after the other, and each statement after it sees the lists the
	// update before committed. An update waiting for the lock re-checks the version on the row
	// the other committed.
	var d store.Destination
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, update, args...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			if p.IfVersion == 0 {
				return pgx.ErrNoRows
			}
			// Missing, or at another version?
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM destinations WHERE id = $1)`, p.ID).Scan(&exists); err != nil {
				return err
			}
			if !exists {
				return pgx.ErrNoRows
			}
			return fmt.Errorf("%w (not at version %d)", store.ErrVersionConflict, p.IfVersion)
		}
		if p.Headers != nil {
			ids := make([]int64, len(*p.Headers))
			for i, h := range *p.Headers {
				ids[i] = h.ID
			}
			if err := checkKeptIDs(ctx, tx, "header", `SELECT id FROM destination_headers WHERE destination_id = $1`, p.ID, ids); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `DELETE FROM destination_headers WHERE destination_id = $1`, p.ID); err != nil {
				return err
			}
			if err := insertHeaders(ctx, tx, p.ID, *p.Headers); err != nil {
				return err
			}
		}
		for _, f := range filterLists {
			l := f.replacement(&p)
			if l == nil {
				continue
			}
			if _, err := tx.Exec(ctx, `DELETE FROM destination_event_filters
				WHERE destination_id = $1 AND kind = $2 AND is_category = $3`, p.ID, f.kind, f.isCategory); err != nil {
				return err
			}
			if err := insertEventFilters(ctx, tx, p.ID, f, *l); err != nil {
				return err
			}
		}
		if p.Namespaces != nil {
			ids := make([]int64, len(*p.Namespaces))
			for i, n := range *p.Namespaces {
				ids[i] = n.ID
			}
			if err := checkKeptIDs(ctx, tx, "namespace filter", `SELECT id FROM destination_namespace_filters WHERE destination_id = $1`, p.ID, ids); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `DELETE FROM destination_namespace_filters WHERE destination_id = $1`, p.ID); err != nil {
				return err
			}
			if err := insertNamespaceFilters(ctx, tx, p.ID, *p.Namespaces); err != nil {
				return err
			}
		}
		d, err = destinationGet(ctx, tx, p.ID)
		return err
	})
	return d, wrap(op, err)
}

// checkKeptIDs checks the entry ids of a replacement list of destination id (0 for a new
// entry): query returns the ids the destination has now, and every other id must be one of them,
// and given once. Kept entries are then deleted and inserted again with their ids.
func checkKeptIDs(ctx context.Context, tx pgx.Tx, what, query string, id int64, ids []int64) error {
	have := map[int64]bool{}
	err := queryEach(ctx, tx, query, []any{id}, func(rows pgx.Rows) error {
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
	tag, err := s.pool.Exec(ctx, `DELETE FROM destinations WHERE id = $1`, id)
	if err == nil && tag.RowsAffected() == 0 {
		err = pgx.ErrNoRows
	}
	return wrap(fmt.Sprintf("delete destination %d", id), err)
}

// DestinationCount counts the destinations of one scope and namespace.
func (s *Store) DestinationCount(ctx context.Context, scope store.DestinationScope, namespaceKey int64) (int64, error) {
	op := fmt.Sprintf("count %s destinations", scope)
	if err := checkScope(scope, namespaceKey); err != nil {
		return 0, fmt.Errorf("postgres: %s: %w", op, err)
	}
	q := `SELECT count(*) FROM destinations WHERE scope = $1 AND namespace_key = $2`
	args := []any{string(scope), namespaceKey}
	if namespaceKey == 0 {
		q, args = `SELECT count(*) FROM destinations WHERE scope = $1 AND namespace_key IS NULL`, args[:1]
	}
	var n int64
	err := s.pool.QueryRow(ctx, q, args...).Scan(&n)
	return n, wrap(op, err)
}

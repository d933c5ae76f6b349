package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/auditstream/auditstream/internal/store"
)

const userColumns = `id, username, name, email, admin, bot, created_at`

func scanUser(row pgx.Row) (store.User, error) {
	var u store.User
	if err := row.Scan(&u.ID, &u.Username, &u.Name, &u.Email, &u.Admin, &u.Bot, &u.CreatedAt); err != nil {
		return store.User{}, err
	}
	u.CreatedAt = fromDB(u.CreatedAt)
	return u, nil
}

// UserCreate inserts a user; ID 0 assigns the next free id, of LocalIDBase's range for a bot.
func (s *Store) UserCreate(ctx context.Context, p store.UserCreateParams) (store.User, error) {
	const q = `INSERT INTO users (id, username, name, email, admin, bot, created_at)
		VALUES (CASE WHEN $1::bigint <> 0 THEN $1::bigint
				WHEN $6::boolean THEN (SELECT COALESCE(max(id), $8::bigint) + 1 FROM users WHERE id > $8::bigint)
				ELSE (SELECT COALESCE(max(id), 0) + 1 FROM users WHERE id < $8::bigint) END,
			$2, $3, $4, $5, $6, $7)
		RETURNING ` + userColumns
	for attempt := 0; ; attempt++ {
		var u store.User
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if p.ID == 0 {
				if err := lockIDs(ctx, tx, "user"); err != nil {
					return err
				}
			}
			var err error
			u, err = scanUser(tx.QueryRow(ctx, q, p.ID, p.Username, p.Name, p.Email, p.Admin, p.Bot, created(p.CreatedAt), store.LocalIDBase))
			return err
		})
		if p.ID == 0 && attempt < maxIDRetries && isViolationOf(err, "users_pkey") {
			continue // a concurrent create with an explicit id took max(id)+1 first
		}
		return u, wrap(fmt.Sprintf("create user %q", p.Username), err)
	}
}

// UserGet returns the user with that id or store.ErrNotFound.
func (s *Store) UserGet(ctx context.Context, id int64) (store.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
	return u, wrap(fmt.Sprintf("get user %d", id), err)
}

// UserGetByUsername returns the user with that username or store.ErrNotFound.
func (s *Store) UserGetByUsername(ctx context.Context, username string) (store.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE username = $1`, username))
	return u, wrap(fmt.Sprintf("get user %q", username), err)
}

// UserList returns every user ordered by id.
func (s *Store) UserList(ctx context.Context) ([]store.User, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+userColumns+` FROM users ORDER BY id`)
	if err != nil {
		return nil, wrap("list users", err)
	}
	us, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.User, error) { return scanUser(row) })
	return us, wrap("list users", err)
}

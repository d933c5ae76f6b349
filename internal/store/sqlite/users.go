package sqlite

import (
	"context"
	"fmt"

	"github.com/auditstream/auditstream/internal/store"
)

const userColumns = `id, username, name, email, admin, bot, created_at`

func scanUser(row scanner) (store.User, error) {
	var u store.User
	var created int64
	if err := row.Scan(&u.ID, &u.Username, &u.Name, &u.Email, &u.Admin, &u.Bot, &created); err != nil {
		return store.User{}, err
	}
	u.CreatedAt = fromMS(created)
	return u, nil
}

// UserCreate inserts a user; ID 0 assigns the next free id, of LocalIDBase's range for a bot.
func (s *Store) UserCreate(ctx context.Context, p store.UserCreateParams) (store.User, error) {
	idExpr, idArgs := "?", []any{p.ID}
	// Writes are serialised, so the max cannot change under this statement.
	switch {
	case p.ID != 0:
	case p.Bot:
		idExpr, idArgs = `(SELECT COALESCE(MAX(id), ?) + 1 FROM users WHERE id > ?)`, []any{store.LocalIDBase, store.LocalIDBase}
	default:
		idExpr, idArgs = `(SELECT COALESCE(MAX(id), 0) + 1 FROM users WHERE id < ?)`, []any{store.LocalIDBase}
	}
	args := append(idArgs, p.Username, p.Name, p.Email, p.Admin, p.Bot, createdMS(p.CreatedAt))
	u, err := scanUser(s.w.QueryRowContext(ctx, `INSERT INTO users
		(id, username, name, email, admin, bot, created_at)
		VALUES (`+idExpr+`, ?, ?, ?, ?, ?, ?)
		RETURNING `+userColumns, args...))
	return u, wrap(fmt.Sprintf("create user %q", p.Username), err)
}

// UserGet returns the user with that id or store.ErrNotFound.
func (s *Store) UserGet(ctx context.Context, id int64) (store.User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id))
	return u, wrap(fmt.Sprintf("get user %d", id), err)
}

// UserGetByUsername returns the user with that username or store.ErrNotFound.
func (s *Store) UserGetByUsername(ctx context.Context, username string) (store.User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE username = ?`, username))
	return u, wrap(fmt.Sprintf("get user %q", username), err)
}

// UserList returns every user ordered by id.
func (s *Store) UserList(ctx context.Context) ([]store.User, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+userColumns+` FROM users ORDER BY id`)
	if err != nil {
		return nil, wrap("list users", err)
	}
	defer rows.Close()
	var us []store.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, wrap("list users", err)
		}
		us = append(us, u)
	}
	return us, wrap("list users", rows.Err())
}

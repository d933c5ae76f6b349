package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/store"
)

// adminUsername is the user the first admin token belongs to (GitLab's root, id 1).
const adminUsername = "root"

// bootstrapAdmin makes sure someone can administer the service: AUDITSTREAM_ADMIN_TOKEN becomes
// a valid admin token; without it, the first start creates one and prints it once.
func (a *App) bootstrapAdmin(ctx context.Context) error {
	if a.cfg.AdminToken != "" {
		if _, err := a.store.TokenGetByHash(ctx, auth.HashToken(a.cfg.AdminToken)); err == nil {
			return nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("admin token: %w", err)
		}
		return a.createAdminToken(ctx, a.cfg.AdminToken, "AUDITSTREAM_ADMIN_TOKEN")
	}
	n, err := a.store.TokenCount(ctx)
	if err != nil {
		return fmt.Errorf("count tokens: %w", err)
	}
	if n > 0 {
		return nil
	}
	raw, _ := auth.NewToken()
	if err := a.createAdminToken(ctx, raw, "first admin token"); err != nil {
		return err
	}
	fmt.Fprintf(a.out, "\nFirst start: created an admin token for user %q (scopes api, ingest).\nIt is shown only this once; keep it somewhere safe:\n\n    %s\n\n", adminUsername, raw)
	return nil
}

func (a *App) createAdminToken(ctx context.Context, raw, name string) error {
	u, err := a.store.UserGetByUsername(ctx, adminUsername)
	if errors.Is(err, store.ErrNotFound) {
		u, err = a.store.UserCreate(ctx, store.UserCreateParams{Username: adminUsername, Name: "Administrator",
			Email: "admin@localhost", Admin: true, CreatedAt: time.Now().UTC()})
		if errors.Is(err, store.ErrConflict) { // another replica starting at the same time made it
			u, err = a.store.UserGetByUsername(ctx, adminUsername)
		}
	}
	if err != nil {
		return fmt.Errorf("admin user: %w", err)
	}
	if !u.Admin {
		return fmt.Errorf("user %q exists but is not an admin", adminUsername)
	}
	_, err = a.store.TokenCreate(ctx, store.TokenCreateParams{UserID: u.ID, Name: name, Hash: auth.HashToken(raw),
		Scopes: []string{auth.ScopeAPI, auth.ScopeIngest}, CreatedAt: time.Now().UTC()})
	if errors.Is(err, store.ErrConflict) { // the same token, made by a replica starting at the same time
		return nil
	}
	if err != nil {
		return fmt.Errorf("admin token: %w", err)
	}
	return nil
}

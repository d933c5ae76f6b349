package app

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/namespace"
	"github.com/auditstream/auditstream/internal/store"
)

// Admin does what the admin API does, straight on the store, for the CLI: it works whether or
// not the server runs (SQLite in WAL mode and PostgreSQL both allow it).
type Admin struct {
	store    store.Store
	resolver *namespace.Resolver
}

// OpenAdmin opens the store cfg names.
func OpenAdmin(ctx context.Context, cfg Config) (*Admin, error) {
	st, err := OpenStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &Admin{store: st, resolver: namespace.NewResolver(st, nil)}, nil
}

// Close closes the store.
func (a *Admin) Close() error { return a.store.Close() }

// CreateUser creates a user; id 0 assigns the next free id.
func (a *Admin) CreateUser(ctx context.Context, id int64, username, name, email string, admin bool) (store.User, error) {
	if username == "" || name == "" || email == "" {
		return store.User{}, errors.New("username, name and email are required")
	}
	return a.store.UserCreate(ctx, store.UserCreateParams{ID: id, Username: username, Name: name, Email: email,
		Admin: admin, CreatedAt: time.Now().UTC()})
}

// user finds a user by id or username.
func (a *Admin) user(ctx context.Context, ref string) (store.User, error) {
	if id, err := strconv.ParseInt(ref, 10, 64); err == nil {
		return a.store.UserGet(ctx, id)
	}
	return a.store.UserGetByUsername(ctx, ref)
}

// CreateToken creates a personal access token for the user (id or username) and returns it.
func (a *Admin) CreateToken(ctx context.Context, userRef, name string, scopes []string, expires time.Time) (string, store.Token, error) {
	u, err := a.user(ctx, userRef)
	if err != nil {
		return "", store.Token{}, fmt.Errorf("user %q: %w", userRef, err)
	}
	if len(scopes) == 0 {
		return "", store.Token{}, errors.New("at least one scope is required (api, read_api, ingest)")
	}
	for _, s := range scopes {
		if !auth.ValidScope(s) {
			return "", store.Token{}, fmt.Errorf("scope %q is not one of api, read_api, ingest", s)
		}
	}
	raw, hash := auth.NewToken()
	t, err := a.store.TokenCreate(ctx, store.TokenCreateParams{UserID: u.ID, Name: name, Hash: hash, Scopes: scopes,
		ExpiresAt: expires, CreatedAt: time.Now().UTC()})
	return raw, t, err
}

// RevokeToken revokes a personal access token by id.
func (a *Admin) RevokeToken(ctx context.Context, id int64) error {
	return a.store.TokenRevoke(ctx, id)
}

// CreateNamespace creates a group or project at fullPath; its parent group must exist.
func (a *Admin) CreateNamespace(ctx context.Context, kind store.NamespaceKind, fullPath, name string, id int64) (store.Namespace, error) {
	fullPath = strings.Trim(fullPath, "/")
	var parentKey int64
	path := fullPath
	if i := strings.LastIndexByte(fullPath, '/'); i > 0 {
		parent, err := a.resolver.Find(ctx, store.KindGroup, fullPath[:i])
		if err != nil {
			return store.Namespace{}, fmt.Errorf("parent group %q: %w", fullPath[:i], err)
		}
		parentKey, path = parent.Key, fullPath[i+1:]
	} else if kind == store.KindProject {
		return store.Namespace{}, errors.New("a project's path includes its group: group/project")
	}
	if name == "" {
		name = path
	}
	return a.resolver.Create(ctx, kind, name, path, parentKey, id)
}

// AddMember gives a user (id or username) an access level on a group or project (id or path).
func (a *Admin) AddMember(ctx context.Context, kind store.NamespaceKind, nsRef, userRef string, level int) (store.Member, error) {
	if !auth.ValidAccessLevel(level) {
		return store.Member{}, fmt.Errorf("access level %d is not one of 10, 20, 30, 40, 50", level)
	}
	ns, err := a.resolver.Find(ctx, kind, nsRef)
	if err != nil {
		return store.Member{}, fmt.Errorf("%s %q: %w", kind, nsRef, err)
	}
	u, err := a.user(ctx, userRef)
	if err != nil {
		return store.Member{}, fmt.Errorf("user %q: %w", userRef, err)
	}
	return a.store.MemberUpsert(ctx, store.MemberUpsertParams{NamespaceKey: ns.Key, UserID: u.ID, AccessLevel: level,
		CreatedAt: time.Now().UTC()})
}

package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/auditstream/auditstream/internal/adminaudit"
	"github.com/auditstream/auditstream/internal/api/graphql/model"
	"github.com/auditstream/auditstream/internal/api/rest"
	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/namespace"
	"github.com/auditstream/auditstream/internal/store"
)

// Admin does what the admin API does, straight on the store, for the CLI: it works whether or
// not the server runs (SQLite in WAL mode and PostgreSQL both allow it). It returns what the
// REST API shows (GitLab's shapes, rest.User and the like) and errors in the API's words.
//
// Every change is audited as the REST API's are (internal/adminaudit), with the operator at the
// shell as author. The CLI cannot publish to the log (a running server holds it), so it queues
// the event in the store's audit outbox right after the change, and the server publishes it
// (outbox.go): within a second when it runs, else when it next starts.
type Admin struct {
	store    store.Store
	resolver *namespace.Resolver
	base     string // the external URL, for web_url
	author   adminaudit.Author
}

// ErrUnaudited wraps the error of an Admin method whose change was made but whose audit event
// could not be queued: the result is valid (print it), and the operator must be told.
var ErrUnaudited = errors.New("the change was made, but its audit event could not be recorded")

// OpenAdmin opens the store cfg names.
func OpenAdmin(ctx context.Context, cfg Config) (*Admin, error) {
	st, err := OpenStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	base := strings.TrimSuffix(cfg.ExternalURL, "/")
	if base == "" {
		base = "http://" + cfg.Listen
	}
	return &Admin{store: st, resolver: namespace.NewResolver(st, nil), base: base, author: cliAuthor()}, nil
}

// cliAuthor is the author of the CLI's changes: not a user of ours (the CLI needs no token), so
// id 0, named after the account at the shell.
func cliAuthor() adminaudit.Author {
	name := "auditstream CLI"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name += " (" + u.Username + ")"
	}
	return adminaudit.Author{Name: name}
}

// outboxProducer is the producer of an event in the audit outbox (store.AuditOutboxEntry.Producer).
type outboxProducer struct {
	TokenID  int64  `json:"token_id"`
	UserID   int64  `json:"user_id"`
	Username string `json:"username"`
	Via      string `json:"via"`
}

// audit queues the audit event of a change just made, stamped with the time of the change. The
// change is made whatever happens here, so a failure says so: the operator must know that the
// audit trail lacks it.
func (a *Admin) audit(ctx context.Context, in event.Input) error {
	now := time.Now().UTC().Truncate(time.Millisecond)
	in.CreatedAt = now.Format(event.TimeLayout)
	ev, err := json.Marshal(in)
	if err == nil {
		var by []byte
		by, err = json.Marshal(outboxProducer{Via: event.ViaCLI})
		if err == nil {
			// An interrupt after the change must not lose its event.
			_, err = a.store.AuditOutboxAdd(context.WithoutCancel(ctx), store.AuditOutboxAddParams{Event: ev, Producer: by, CreatedAt: now})
		}
	}
	if err != nil {
		return fmt.Errorf("%w (%s): %w", ErrUnaudited, in.EventType, err)
	}
	return nil
}

// notFound is the API's 404 for what ref names ("User", "Group", "Project").
func notFound(what, ref string) error { return fmt.Errorf("404 %s Not Found: %s", what, ref) }

func kindName(kind store.NamespaceKind) string {
	if kind == store.KindProject {
		return "Project"
	}
	return "Group"
}

// lookupErr turns a failed lookup of what ref names into the API's words.
func lookupErr(err error, what, ref string) error {
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, namespace.ErrNotFound) {
		return notFound(what, ref)
	}
	return fmt.Errorf("%s %q: %w", strings.ToLower(what), ref, err)
}

func (a *Admin) parentOf(ctx context.Context) func(store.Namespace) (store.Namespace, bool) {
	return func(ns store.Namespace) (store.Namespace, bool) {
		if ns.ParentKey == 0 {
			return store.Namespace{}, false
		}
		p, err := a.resolver.ByKey(ctx, ns.ParentKey)
		return p, err == nil
	}
}

// Close closes the store.
func (a *Admin) Close() error { return a.store.Close() }

// CreateUser creates a user; id 0 assigns the next free id.
func (a *Admin) CreateUser(ctx context.Context, id int64, username, name, email string, admin bool) (rest.User, error) {
	if username == "" || name == "" || email == "" {
		return rest.User{}, errors.New("400 Bad request - username, name and email are required")
	}
	u, err := a.store.UserCreate(ctx, store.UserCreateParams{ID: id, Username: username, Name: name, Email: email,
		Admin: admin, CreatedAt: time.Now().UTC()})
	if errors.Is(err, store.ErrConflict) {
		return rest.User{}, errors.New("409 Conflict: Username or id has already been taken")
	}
	if err != nil {
		return rest.User{}, err
	}
	return rest.NewUser(u, a.base, true, true), a.audit(ctx, adminaudit.UserCreated(a.author, u))
}

// ListUsers returns every user, by id.
func (a *Admin) ListUsers(ctx context.Context) ([]rest.User, error) {
	us, err := a.store.UserList(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]rest.User, 0, len(us))
	for _, u := range us {
		out = append(out, rest.NewUser(u, a.base, true, true))
	}
	return out, nil
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
		return "", store.Token{}, lookupErr(err, "User", userRef)
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
	if err != nil {
		return "", store.Token{}, err
	}
	// The token is made: print it even when its event could not be queued.
	return raw, t, a.audit(ctx, adminaudit.TokenCreated(a.author, u, t))
}

// RevokeToken revokes a token (personal or impersonation) by id. A token revoked already is
// not revoked again, and nothing is recorded.
func (a *Admin) RevokeToken(ctx context.Context, id int64) error {
	ref := strconv.FormatInt(id, 10)
	t, owner, err := a.tokenByID(ctx, id)
	if err != nil {
		return lookupErr(err, "Token", ref)
	}
	if t.Revoked {
		return nil
	}
	if err := a.store.TokenRevoke(ctx, id); err != nil {
		return lookupErr(err, "Token", ref)
	}
	return a.audit(ctx, adminaudit.TokenRevoked(a.author, owner, t))
}

// tokenByID finds a token and its owner among the tokens of every user (users are few, as the
// REST API's search assumes too), or store.ErrNotFound.
func (a *Admin) tokenByID(ctx context.Context, id int64) (store.Token, store.User, error) {
	users, err := a.store.UserList(ctx)
	if err != nil {
		return store.Token{}, store.User{}, err
	}
	for _, u := range users {
		ts, err := a.store.TokenList(ctx, u.ID)
		if err != nil {
			return store.Token{}, store.User{}, err
		}
		for _, t := range ts {
			if t.ID == id {
				return t, u, nil
			}
		}
	}
	return store.Token{}, store.User{}, store.ErrNotFound
}

// ListTokens returns the tokens of a user (id or username), impersonation tokens included;
// never their secrets.
func (a *Admin) ListTokens(ctx context.Context, userRef string) ([]rest.Token, error) {
	u, err := a.user(ctx, userRef)
	if err != nil {
		return nil, lookupErr(err, "User", userRef)
	}
	ts, err := a.store.TokenList(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	out := make([]rest.Token, 0, len(ts))
	for _, t := range ts {
		out = append(out, rest.NewToken(t, time.Now()))
	}
	return out, nil
}

// CreateNamespace creates a group or project at fullPath; its parent group must exist.
func (a *Admin) CreateNamespace(ctx context.Context, kind store.NamespaceKind, fullPath, name string, id int64) (rest.Namespace, error) {
	fullPath = strings.Trim(fullPath, "/")
	var parentKey int64
	path := fullPath
	if i := strings.LastIndexByte(fullPath, '/'); i > 0 {
		parent, err := a.resolver.Find(ctx, store.KindGroup, fullPath[:i])
		if err != nil {
			return rest.Namespace{}, lookupErr(err, "Group", fullPath[:i])
		}
		parentKey, path = parent.Key, fullPath[i+1:]
	} else if kind == store.KindProject {
		return rest.Namespace{}, errors.New("400 Bad request - a project's path includes its group: group/project")
	}
	if name == "" {
		name = path
	}
	ns, err := a.resolver.Create(ctx, kind, name, path, parentKey, id)
	switch {
	case errors.Is(err, store.ErrConflict):
		return rest.Namespace{}, errors.New("409 Conflict: path or id has already been taken")
	case errors.Is(err, namespace.ErrUnknownLocalID):
		return rest.Namespace{}, fmt.Errorf("400 Bad request - id must be GitLab's id, below %d: ids from there on are assigned here", store.LocalIDBase)
	case err != nil:
		return rest.Namespace{}, err
	}
	return rest.NewNamespace(ns, a.parentOf(ctx), a.base), a.audit(ctx, adminaudit.NamespaceCreated(a.author, ns))
}

// ListNamespaces returns every group or every project, by full path.
func (a *Admin) ListNamespaces(ctx context.Context, kind store.NamespaceKind) ([]rest.Namespace, error) {
	all, err := a.store.NamespaceList(ctx)
	if err != nil {
		return nil, err
	}
	all = slices.DeleteFunc(all, func(ns store.Namespace) bool { return ns.Kind != kind })
	slices.SortFunc(all, func(x, y store.Namespace) int { return strings.Compare(x.FullPath, y.FullPath) })
	out := make([]rest.Namespace, 0, len(all))
	for _, ns := range all {
		out = append(out, rest.NewNamespace(ns, a.parentOf(ctx), a.base))
	}
	return out, nil
}

// ListMembers returns the direct members of a group or project (id or full path).
func (a *Admin) ListMembers(ctx context.Context, kind store.NamespaceKind, nsRef string) ([]rest.Member, error) {
	ns, err := a.resolver.Find(ctx, kind, nsRef)
	if err != nil {
		return nil, lookupErr(err, kindName(kind), nsRef)
	}
	ms, err := a.store.MemberList(ctx, ns.Key)
	if err != nil {
		return nil, err
	}
	out := make([]rest.Member, 0, len(ms))
	for _, m := range ms {
		u, err := a.store.UserGet(ctx, m.UserID)
		if err != nil {
			return nil, err
		}
		out = append(out, rest.NewMember(m, u, a.base))
	}
	return out, nil
}

// Destination is a streaming destination as the CLI lists it: GitLab's GraphQL names and
// global id, the non-secret config; never a secret or a header value.
type Destination struct {
	ID               string          `json:"id"`
	Name             string          `json:"name"`
	Category         string          `json:"category"`
	Active           bool            `json:"active"`
	GroupPath        string          `json:"groupPath,omitempty"` // empty for the instance's
	Config           json.RawMessage `json:"config"`
	EventTypeFilters []string        `json:"eventTypeFilters"`
}

// ListDestinations returns every streaming destination, the instance's first.
func (a *Admin) ListDestinations(ctx context.Context) ([]Destination, error) {
	ds, err := a.store.DestinationList(ctx, store.DestinationListParams{})
	if err != nil {
		return nil, err
	}
	out := make([]Destination, 0, len(ds))
	for _, d := range ds {
		v := Destination{ID: model.GID(model.ClassInstanceDestination, d.ID), Name: d.Name, Category: d.Category,
			Active: d.Active, Config: json.RawMessage(d.Config), EventTypeFilters: d.EventTypes}
		if d.Scope == store.ScopeGroup {
			v.ID = model.GID(model.ClassGroupDestination, d.ID)
			if g, err := a.resolver.ByKey(ctx, d.NamespaceKey); err == nil {
				v.GroupPath = g.FullPath
			}
		}
		if v.EventTypeFilters == nil {
			v.EventTypeFilters = []string{}
		}
		out = append(out, v)
	}
	slices.SortStableFunc(out, func(x, y Destination) int { return strings.Compare(x.GroupPath, y.GroupPath) })
	return out, nil
}

// AddMember gives a user (id or username) an access level on a group or project (id or path),
// changing the membership the user has there already.
func (a *Admin) AddMember(ctx context.Context, kind store.NamespaceKind, nsRef, userRef string, level int) (rest.Member, error) {
	return a.setMember(ctx, kind, nsRef, userRef, level, false)
}

// UpdateMember changes the access level of a user's existing membership; 404 when there is none.
func (a *Admin) UpdateMember(ctx context.Context, kind store.NamespaceKind, nsRef, userRef string, level int) (rest.Member, error) {
	return a.setMember(ctx, kind, nsRef, userRef, level, true)
}

func (a *Admin) setMember(ctx context.Context, kind store.NamespaceKind, nsRef, userRef string, level int, mustExist bool) (rest.Member, error) {
	if !auth.ValidAccessLevel(level) {
		return rest.Member{}, fmt.Errorf("400 Bad request - access_level does not have a valid value (10, 20, 30, 40, 50), not %d", level)
	}
	ns, u, err := a.namespaceAndUser(ctx, kind, nsRef, userRef)
	if err != nil {
		return rest.Member{}, err
	}
	old, err := a.store.MemberGet(ctx, ns.Key, u.ID)
	exists := err == nil
	switch {
	case errors.Is(err, store.ErrNotFound) && mustExist:
		return rest.Member{}, notFound("Member", userRef)
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return rest.Member{}, err
	}
	m, err := a.store.MemberUpsert(ctx, store.MemberUpsertParams{NamespaceKey: ns.Key, UserID: u.ID, AccessLevel: level,
		CreatedAt: time.Now().UTC()})
	if err != nil {
		return rest.Member{}, err
	}
	out := rest.NewMember(m, u, a.base)
	switch {
	case !exists:
		return out, a.audit(ctx, adminaudit.MemberCreated(a.author, ns, u, m))
	case old.AccessLevel != m.AccessLevel || !old.ExpiresAt.Equal(m.ExpiresAt):
		return out, a.audit(ctx, adminaudit.MemberUpdated(a.author, ns, u, old, m))
	}
	return out, nil // nothing changed, nothing to record
}

// RemoveMember removes a user's direct membership of a group or project; 404 when there is none.
func (a *Admin) RemoveMember(ctx context.Context, kind store.NamespaceKind, nsRef, userRef string) error {
	ns, u, err := a.namespaceAndUser(ctx, kind, nsRef, userRef)
	if err != nil {
		return err
	}
	old, err := a.store.MemberGet(ctx, ns.Key, u.ID)
	if err == nil {
		err = a.store.MemberDelete(ctx, ns.Key, u.ID)
	}
	if errors.Is(err, store.ErrNotFound) {
		return notFound("Member", userRef)
	} else if err != nil {
		return err
	}
	return a.audit(ctx, adminaudit.MemberDestroyed(a.author, ns, u, old))
}

func (a *Admin) namespaceAndUser(ctx context.Context, kind store.NamespaceKind, nsRef, userRef string) (store.Namespace, store.User, error) {
	ns, err := a.resolver.Find(ctx, kind, nsRef)
	if err != nil {
		return store.Namespace{}, store.User{}, lookupErr(err, kindName(kind), nsRef)
	}
	u, err := a.user(ctx, userRef)
	if err != nil {
		return store.Namespace{}, store.User{}, lookupErr(err, "User", userRef)
	}
	return ns, u, nil
}

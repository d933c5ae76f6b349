// Package namespace keeps GitLab's hierarchy of top-level groups, subgroups and projects. It
// learns namespaces from the events that name them (entity_type, entity_path, entity_id),
// creates ancestors seen only in a path, and resolves a group or project by numeric id or full
// path. Lookups are served from memory after the first. Namespaces are never deleted, but they
// move: a resolver that moves, parks or re-ids one empties its cache and calls its OnChange
// function, so that other processes sharing the store can be told to Forget theirs. Safe for
// concurrent use.
package namespace

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/auditstream/auditstream/internal/store"
)

// Store is the part of the store the resolver needs.
type Store interface {
	NamespaceCreate(ctx context.Context, p store.NamespaceCreateParams) (store.Namespace, error)
	NamespaceGetByKey(ctx context.Context, key int64) (store.Namespace, error)
	NamespaceGetByID(ctx context.Context, kind store.NamespaceKind, id int64) (store.Namespace, error)
	NamespaceGetByPath(ctx context.Context, fullPath string) (store.Namespace, error)
	NamespaceSetID(ctx context.Context, key, id int64) error
	NamespaceMove(ctx context.Context, p store.NamespaceMoveParams) error
}

// Errors callers branch on.
var (
	// ErrKindMismatch means the path belongs to a namespace of the other kind (a project where
	// a group was named, or the reverse).
	ErrKindMismatch = errors.New("namespace: path belongs to a namespace of another kind")
	// ErrNotFound means no such group or project.
	ErrNotFound = errors.New("namespace: not found")
	// ErrIDRequired means an event names a group or project auditstream does not know the id of,
	// without giving its id. Ids are never invented for events: a made-up id could later be a
	// real group's.
	ErrIDRequired = errors.New("namespace: the id of this group or project is not known; send its entity_id")
	// ErrNotAllowed means a namespace-bound producer's event (LearnBound) would change where a
	// namespace is — move or rename it, park the holder of its path, tell the id of one known
	// only by path — or create a top-level group: only instance producers may. Nothing was
	// changed.
	ErrNotAllowed = errors.New("namespace: only an instance producer may create top-level groups or move, rename or re-id groups and projects")
	// ErrUnknownLocalID means an event gives an id of the range assigned here
	// (store.IsLocalID) that was assigned to no namespace of that kind: only GitLab's ids, and
	// ids this service handed out, name namespaces.
	ErrUnknownLocalID = errors.New("namespace: this id is in the range of ids auditstream assigns and names no group or project here")
)

type idKey struct {
	kind store.NamespaceKind
	id   int64
}

// Resolver resolves and learns namespaces.
type Resolver struct {
	st      Store
	nowFunc func() time.Time

	mu sync.RWMutex
	// The three caches share one copy of each namespace (100,000 groups: 20 MB less).
	byPath map[string]*store.Namespace
	byID   map[idKey]*store.Namespace
	byKey  map[int64]*store.Namespace
	// gen counts the times the caches were emptied: what was read from the store before the
	// last time may be stale and is not cached (rememberAt).
	gen uint64
	// learn serialises creation so that concurrent first events of one path create it once.
	learn sync.Mutex
	// onChange is called after this resolver changed where a namespace is, or its id.
	onChange func()
}

// NewResolver returns a resolver over st.
func NewResolver(st Store, nowFunc func() time.Time) *Resolver {
	if nowFunc == nil {
		nowFunc = time.Now
	}
	return &Resolver{st: st, nowFunc: nowFunc, byPath: map[string]*store.Namespace{},
		byID: map[idKey]*store.Namespace{}, byKey: map[int64]*store.Namespace{}}
}

// OnChange sets f, called (without the resolver's locks on its caches, but while it holds the
// lock that serialises learning) each time this resolver has changed in the store where a
// namespace is, or its id: moved, renamed or transferred it with its subtree, parked it, or
// given it GitLab's id. Other processes sharing the store cache the old tree until told;
// the caller tells them, and they call Forget. Set it before the resolver is used.
func (r *Resolver) OnChange(f func()) { r.onChange = f }

// Forget empties the caches: another process changed the tree. A lookup under way keeps the
// result it read but does not cache it, since it may have read the store before the change.
func (r *Resolver) Forget() { r.forget() }

// generation returns the count of Forgets: take it before reading the store, and pass it to
// rememberAt.
func (r *Resolver) generation() uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.gen
}

// rememberAt caches ns, read from the store after generation returned gen, unless the caches
// were emptied since (ns may predate the change that emptied them). It returns ns.
func (r *Resolver) rememberAt(gen uint64, ns store.Namespace) store.Namespace {
	r.mu.Lock()
	if r.gen == gen {
		p := &ns
		r.byPath[ns.FullPath] = p
		r.byKey[ns.Key] = p
		if ns.ID != 0 {
			r.byID[idKey{ns.Kind, ns.ID}] = p
		}
	}
	r.mu.Unlock()
	return ns
}

// changed empties the caches after this resolver changed the tree, tells OnChange's function,
// and returns the new generation (what is read from the store after it may be cached).
// Callers hold r.learn.
func (r *Resolver) changed() uint64 {
	r.forget()
	if r.onChange != nil {
		r.onChange()
	}
	return r.generation()
}

func (r *Resolver) cachedPath(path string) (store.Namespace, bool) {
	r.mu.RLock()
	ns, ok := r.byPath[path]
	r.mu.RUnlock()
	if !ok {
		return store.Namespace{}, false
	}
	return *ns, true
}

// Learn returns the namespace of kind at fullPath, creating it and its missing ancestor groups
// when first seen. id is the GitLab id the event carries; 0 is allowed only for a namespace whose
// id is already known (ErrIDRequired otherwise). The id, not the path, is the identity, and the
// newest event says where a namespace is:
//   - a known id under another path was renamed or transferred: it moves there with its subtree;
//   - a path held by a namespace with another id was given up by it (renamed away, to a path we
//     have not seen yet): that namespace is parked on a path no event can name, and the path is
//     the new id's. The parked one moves to its real path when its next event arrives.
//
// So a new group on an old group's path never inherits the old group's members, and the old
// group never sees the new one's events.
func (r *Resolver) Learn(ctx context.Context, kind store.NamespaceKind, fullPath string, id int64) (store.Namespace, error) {
	return r.learnAt(ctx, kind, fullPath, id, false)
}

// LearnBound is Learn for a namespace-bound producer's event: it resolves the namespace, or
// creates it (and its ancestors) when both its id and its path are new, below an existing
// top-level group; anything Learn would do beyond that — move or rename a namespace, park the
// holder of a path, set the id of a namespace known only by path, create a top-level group —
// is refused with ErrNotAllowed, and nothing is changed. Which top-level groups the producer
// may write is the caller's to check.
func (r *Resolver) LearnBound(ctx context.Context, kind store.NamespaceKind, fullPath string, id int64) (store.Namespace, error) {
	return r.learnAt(ctx, kind, fullPath, id, true)
}

func (r *Resolver) learnAt(ctx context.Context, kind store.NamespaceKind, fullPath string, id int64, bound bool) (store.Namespace, error) {
	if id == 0 {
		ns, err := r.byPathFresh(ctx, fullPath)
		switch {
		case errors.Is(err, ErrNotFound):
			if err := r.checkAncestors(ctx, fullPath); err != nil {
				return store.Namespace{}, err
			}
			return store.Namespace{}, ErrIDRequired
		case err != nil:
			return store.Namespace{}, err
		case ns.Kind != kind:
			return store.Namespace{}, fmt.Errorf("%w: %s is a %s", ErrKindMismatch, fullPath, ns.Kind)
		case ns.ID == 0:
			return store.Namespace{}, ErrIDRequired
		}
		return ns, nil
	}
	r.mu.RLock()
	cached, ok := r.byID[idKey{kind, id}]
	r.mu.RUnlock()
	if ok && cached.FullPath == fullPath {
		return *cached, nil
	}

	r.learn.Lock()
	defer r.learn.Unlock()
	gen := r.generation()
	ns, err := r.getByID(ctx, kind, id)
	if store.IsLocalID(id) && errors.Is(err, store.ErrNotFound) {
		return store.Namespace{}, ErrUnknownLocalID
	}
	switch {
	case err == nil && ns.FullPath == fullPath:
		return r.rememberAt(gen, ns), nil
	case err == nil && bound:
		return store.Namespace{}, fmt.Errorf("%w: %s %d is at %s, not %s", ErrNotAllowed, kind, id, ns.FullPath, fullPath)
	case err == nil:
		return r.move(ctx, ns, fullPath)
	case !errors.Is(err, store.ErrNotFound):
		return store.Namespace{}, fmt.Errorf("namespace by id: %w", err)
	}
	ns, err = r.st.NamespaceGetByPath(ctx, fullPath)
	switch {
	case err == nil:
		if ns.Kind != kind {
			return store.Namespace{}, fmt.Errorf("%w: %s is a %s", ErrKindMismatch, fullPath, ns.Kind)
		}
		if ns.ID == id { // another process learned it a moment ago
			return r.rememberAt(gen, ns), nil
		}
		if bound {
			return store.Namespace{}, fmt.Errorf("%w: %s belongs to %s %d", ErrNotAllowed, fullPath, ns.Kind, ns.ID)
		}
		// Learned from paths only, or created here before GitLab told its id: this event
		// tells it, and the namespace adopts it (keeping its key, members and subtree).
		if ns.ID == 0 || store.IsLocalID(ns.ID) {
			if err := r.st.NamespaceSetID(ctx, ns.Key, id); err != nil {
				return store.Namespace{}, fmt.Errorf("set namespace id: %w", err)
			}
			// Here the id assigned here is cached under it, elsewhere also the missing id.
			gen = r.changed()
			ns.ID = id
			return r.rememberAt(gen, ns), nil
		}
		if err := r.park(ctx, ns); err != nil {
			return store.Namespace{}, err
		}
	case !errors.Is(err, store.ErrNotFound):
		return store.Namespace{}, fmt.Errorf("namespace by path: %w", err)
	}

	if bound {
		if err := r.checkBoundCreate(ctx, fullPath); err != nil {
			return store.Namespace{}, err
		}
	}
	parentKey, err := r.parentKey(ctx, kind, fullPath)
	if err != nil {
		return store.Namespace{}, err
	}
	return r.create(ctx, store.NamespaceCreateParams{Kind: kind, ID: id,
		Name: lastSegment(fullPath), FullPath: fullPath, ParentKey: parentKey})
}

// checkBoundCreate refuses, before anything is written, to create fullPath for a bound
// producer when that would create a top-level group: fullPath is one, or its top-level group
// does not exist. Ancestors below an existing top-level group may be created (without ids).
// Callers hold r.learn.
func (r *Resolver) checkBoundCreate(ctx context.Context, fullPath string) error {
	top, _, nested := strings.Cut(fullPath, "/")
	if !nested {
		return fmt.Errorf("%w: %s would be a new top-level group", ErrNotAllowed, fullPath)
	}
	if _, ok := r.cachedPath(top); ok {
		return nil
	}
	_, err := r.st.NamespaceGetByPath(ctx, top)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %s would be a new top-level group", ErrNotAllowed, top)
	case err != nil:
		return fmt.Errorf("namespace by path: %w", err)
	}
	return nil
}

// Check reports, without learning or changing anything, whether Learn would refuse an event
// of kind at fullPath with id for want of a usable id: ErrIDRequired (no id, and the namespace
// is unknown or has none) or ErrUnknownLocalID. nil means Learn may go ahead; it can still
// fail for other reasons (a path of the other kind, the store). Ingest calls it while
// validating, so that a request's every problem is reported at once.
func (r *Resolver) Check(ctx context.Context, kind store.NamespaceKind, fullPath string, id int64) error {
	switch {
	case id == 0:
		ns, err := r.byPathFresh(ctx, fullPath)
		switch {
		case errors.Is(err, ErrNotFound):
			if r.checkAncestors(ctx, fullPath) != nil {
				return nil // Learn reports what is wrong with the path
			}
			return ErrIDRequired
		case err != nil:
			return err
		case ns.Kind == kind && ns.ID == 0:
			return ErrIDRequired
		}
	case store.IsLocalID(id):
		r.mu.RLock()
		_, ok := r.byID[idKey{kind, id}]
		r.mu.RUnlock()
		if ok {
			return nil
		}
		if _, err := r.getByID(ctx, kind, id); errors.Is(err, store.ErrNotFound) {
			return ErrUnknownLocalID
		} else if err != nil {
			return fmt.Errorf("namespace by id: %w", err)
		}
	}
	return nil
}

// move puts ns (and its subtree) at fullPath, under that path's parent group, parking whatever
// holds the path now. Callers hold r.learn.
func (r *Resolver) move(ctx context.Context, ns store.Namespace, fullPath string) (store.Namespace, error) {
	if strings.HasPrefix(fullPath, ns.FullPath+"/") {
		return store.Namespace{}, fmt.Errorf("%s cannot move into its own subtree (%s)", ns.FullPath, fullPath)
	}
	parentKey, err := r.parentKey(ctx, ns.Kind, fullPath)
	if err != nil {
		return store.Namespace{}, err
	}
	if holder, err := r.st.NamespaceGetByPath(ctx, fullPath); err == nil && holder.Key != ns.Key {
		if err := r.park(ctx, holder); err != nil {
			return store.Namespace{}, err
		}
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.Namespace{}, fmt.Errorf("namespace by path: %w", err)
	}
	if err := r.st.NamespaceMove(ctx, store.NamespaceMoveParams{Key: ns.Key, NewFullPath: fullPath, NewParentKey: parentKey}); err != nil {
		return store.Namespace{}, fmt.Errorf("move %s to %s: %w", ns.FullPath, fullPath, err)
	}
	gen := r.changed() // the subtree's cached paths and top keys are stale, here and elsewhere
	moved, err := r.st.NamespaceGetByKey(ctx, ns.Key)
	if err != nil {
		return store.Namespace{}, fmt.Errorf("namespace by key: %w", err)
	}
	return r.rememberAt(gen, moved), nil
}

// parentKey returns the key of the group that holds fullPath, learning it (and its ancestors)
// without ids when unseen; 0 for a top-level group. Callers hold r.learn.
func (r *Resolver) parentKey(ctx context.Context, kind store.NamespaceKind, fullPath string) (int64, error) {
	i := strings.LastIndexByte(fullPath, '/')
	if i <= 0 {
		if kind == store.KindProject {
			return 0, fmt.Errorf("project path %q has no namespace", fullPath)
		}
		return 0, nil
	}
	parent, err := r.learnAncestor(ctx, fullPath[:i])
	if err != nil {
		return 0, err
	}
	return parent.Key, nil
}

// park moves ns off its path to "<parent>/-moved-<key>": event paths cannot start a segment
// with '-', so no event can name it, and the namespace keeps its members and subtree until its
// next event tells where it went. Callers hold r.learn.
func (r *Resolver) park(ctx context.Context, ns store.Namespace) error {
	parked := "-moved-" + strconv.FormatInt(ns.Key, 10)
	if i := strings.LastIndexByte(ns.FullPath, '/'); i > 0 {
		parked = ns.FullPath[:i+1] + parked
	}
	if err := r.st.NamespaceMove(ctx, store.NamespaceMoveParams{Key: ns.Key, NewFullPath: parked, NewParentKey: ns.ParentKey}); err != nil {
		return fmt.Errorf("park %s: %w", ns.FullPath, err)
	}
	r.changed()
	return nil
}

// forget empties the caches; moves are rare.
func (r *Resolver) forget() {
	r.mu.Lock()
	r.gen++
	clear(r.byPath)
	clear(r.byID)
	clear(r.byKey)
	r.mu.Unlock()
}

// checkAncestors reports ErrKindMismatch when the nearest existing ancestor of path is a project.
func (r *Resolver) checkAncestors(ctx context.Context, path string) error {
	for i := strings.LastIndexByte(path, '/'); i > 0; i = strings.LastIndexByte(path[:i], '/') {
		ns, err := r.byPathFresh(ctx, path[:i])
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		_, err = r.checkGroup(ns)
		return err
	}
	return nil
}

// byPathFresh returns the namespace at path from the cache, or from the store when it is not
// cached or cached without an id (another process may have learned it since).
func (r *Resolver) byPathFresh(ctx context.Context, path string) (store.Namespace, error) {
	if ns, ok := r.cachedPath(path); ok && ns.ID != 0 {
		return ns, nil
	}
	gen := r.generation()
	ns, err := r.st.NamespaceGetByPath(ctx, path)
	if errors.Is(err, store.ErrNotFound) {
		return store.Namespace{}, ErrNotFound
	}
	if err != nil {
		return store.Namespace{}, fmt.Errorf("namespace by path: %w", err)
	}
	return r.rememberAt(gen, ns), nil
}

// learnAncestor returns the group at path, creating it (and its ancestors) without an id.
// Callers hold r.learn.
func (r *Resolver) learnAncestor(ctx context.Context, path string) (store.Namespace, error) {
	if ns, ok := r.cachedPath(path); ok {
		return r.checkGroup(ns)
	}
	gen := r.generation()
	ns, err := r.st.NamespaceGetByPath(ctx, path)
	if err == nil {
		return r.checkGroup(r.rememberAt(gen, ns))
	}
	if !errors.Is(err, store.ErrNotFound) {
		return store.Namespace{}, fmt.Errorf("namespace by path: %w", err)
	}
	parentKey, err := r.parentKey(ctx, store.KindGroup, path)
	if err != nil {
		return store.Namespace{}, err
	}
	return r.create(ctx, store.NamespaceCreateParams{Kind: store.KindGroup, IDUnknown: true,
		Name: lastSegment(path), FullPath: path, ParentKey: parentKey})
}

func (r *Resolver) checkGroup(ns store.Namespace) (store.Namespace, error) {
	if ns.Kind != store.KindGroup {
		return store.Namespace{}, fmt.Errorf("%w: %s is a %s and cannot contain others", ErrKindMismatch, ns.FullPath, ns.Kind)
	}
	return ns, nil
}

func (r *Resolver) create(ctx context.Context, p store.NamespaceCreateParams) (store.Namespace, error) {
	p.CreatedAt = r.nowFunc().UTC()
	gen := r.generation()
	ns, err := r.st.NamespaceCreate(ctx, p)
	if errors.Is(err, store.ErrConflict) {
		// Another process created it first.
		ns, err = r.st.NamespaceGetByPath(ctx, p.FullPath)
	}
	if err != nil {
		return store.Namespace{}, fmt.Errorf("create namespace %s: %w", p.FullPath, err)
	}
	return r.rememberAt(gen, ns), nil
}

// Create makes a group or project ahead of its first event (the admin API and CLI). parentKey 0
// makes a top-level group. id 0 gives it an id of the range assigned here
// (store.LocalID(key)), usable at once; the first event that names its path with a GitLab id
// makes it adopt that id, and the id assigned here keeps naming it (Find).
// store.ErrConflict when the path or id is taken.
func (r *Resolver) Create(ctx context.Context, kind store.NamespaceKind, name, path string, parentKey, id int64) (store.Namespace, error) {
	full := path
	if parentKey != 0 {
		parent, err := r.ByKey(ctx, parentKey)
		if err != nil {
			return store.Namespace{}, err
		}
		if parent.Kind != store.KindGroup {
			return store.Namespace{}, fmt.Errorf("%w: %s is a project", ErrKindMismatch, parent.FullPath)
		}
		full = parent.FullPath + "/" + path
	}
	r.learn.Lock()
	defer r.learn.Unlock()
	if store.IsLocalID(id) {
		return store.Namespace{}, fmt.Errorf("%w: %d", ErrUnknownLocalID, id)
	}
	gen := r.generation()
	ns, err := r.st.NamespaceCreate(ctx, store.NamespaceCreateParams{Kind: kind, ID: id, LocalID: id == 0, Name: name,
		FullPath: full, ParentKey: parentKey, CreatedAt: r.nowFunc().UTC()})
	if err != nil {
		return store.Namespace{}, err
	}
	return r.rememberAt(gen, ns), nil
}

// Find resolves a group or project named the way GitLab's API names them: a numeric id or a
// full path. ErrNotFound when there is none of that kind.
func (r *Resolver) Find(ctx context.Context, kind store.NamespaceKind, idOrPath string) (store.Namespace, error) {
	var ns store.Namespace
	var err error
	gen := r.generation()
	if id, perr := strconv.ParseInt(idOrPath, 10, 64); perr == nil {
		r.mu.RLock()
		cached, ok := r.byID[idKey{kind, id}]
		r.mu.RUnlock()
		if ok {
			return *cached, nil
		}
		ns, err = r.getByID(ctx, kind, id)
	} else {
		ns, err = r.byPathFresh(ctx, idOrPath)
	}
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, ErrNotFound) || (err == nil && ns.Kind != kind) {
		return store.Namespace{}, ErrNotFound
	}
	if err != nil {
		return store.Namespace{}, fmt.Errorf("find namespace: %w", err)
	}
	return r.rememberAt(gen, ns), nil
}

// FindPath resolves a group or project by full path alone (a path may be all digits, which
// Find would read as an id). ErrNotFound when there is none of that kind.
func (r *Resolver) FindPath(ctx context.Context, kind store.NamespaceKind, fullPath string) (store.Namespace, error) {
	ns, err := r.byPathFresh(ctx, fullPath)
	if errors.Is(err, ErrNotFound) || (err == nil && ns.Kind != kind) {
		return store.Namespace{}, ErrNotFound
	}
	return ns, err
}

// getByID reads the namespace of kind with GitLab id id from the store. An id of the range
// assigned here names its namespace also after it adopted GitLab's id.
func (r *Resolver) getByID(ctx context.Context, kind store.NamespaceKind, id int64) (store.Namespace, error) {
	ns, err := r.st.NamespaceGetByID(ctx, kind, id)
	if !errors.Is(err, store.ErrNotFound) || !store.IsLocalID(id) {
		return ns, err
	}
	ns, err = r.st.NamespaceGetByKey(ctx, id-store.LocalIDBase)
	if err == nil && ns.Kind != kind {
		return store.Namespace{}, store.ErrNotFound
	}
	return ns, err
}

// ByKey returns the namespace with the internal key.
func (r *Resolver) ByKey(ctx context.Context, key int64) (store.Namespace, error) {
	r.mu.RLock()
	cached, ok := r.byKey[key]
	r.mu.RUnlock()
	if ok {
		return *cached, nil
	}
	gen := r.generation()
	ns, err := r.st.NamespaceGetByKey(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return store.Namespace{}, ErrNotFound
	}
	if err != nil {
		return store.Namespace{}, fmt.Errorf("namespace by key: %w", err)
	}
	return r.rememberAt(gen, ns), nil
}

// Chain returns ns and its ancestors, nearest first.
func (r *Resolver) Chain(ctx context.Context, ns store.Namespace) ([]store.Namespace, error) {
	chain := []store.Namespace{ns}
	for ns.ParentKey != 0 {
		var err error
		ns, err = r.ByKey(ctx, ns.ParentKey)
		if err != nil {
			return nil, err
		}
		chain = append(chain, ns)
	}
	return chain, nil
}

func lastSegment(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

package namespace_test

import (
	"context"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/namespace"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/store/sqlite"
)

var now = time.Date(2025, 10, 14, 18, 0, 8, 677_000_000, time.UTC)

func clock() time.Time { return now }

// openStore returns a migrated SQLite store on a new file, closed when the test ends.
func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "db"))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	require.NoError(t, st.Migrate(t.Context()))
	return st
}

// setup marks the test parallel and returns a resolver over a fresh store, and the store (to
// build a second resolver over it, as another process or a restart would).
func setup(t *testing.T) (context.Context, *namespace.Resolver, *sqlite.Store) {
	t.Helper()
	t.Parallel()
	st := openStore(t)
	return t.Context(), namespace.NewResolver(st, clock), st
}

func TestLearnCreatesProjectAndAncestors(t *testing.T) {
	ctx, r, st := setup(t)

	p, err := r.Learn(ctx, store.KindProject, "acme/platform/api", 100)
	require.NoError(t, err)
	require.Equal(t, store.KindProject, p.Kind)
	require.Equal(t, int64(100), p.ID)
	require.Equal(t, "acme/platform/api", p.FullPath)
	require.Equal(t, "api", p.Name)
	require.Equal(t, "api", p.Path)
	require.Equal(t, now.Truncate(time.Millisecond), p.CreatedAt)

	// Read back through a resolver with an empty cache: the hierarchy is in the store.
	for name, res := range map[string]*namespace.Resolver{"same": r, "fresh": namespace.NewResolver(st, clock)} {
		top, err := res.Find(ctx, store.KindGroup, "acme")
		require.NoError(t, err, name)
		mid, err := res.Find(ctx, store.KindGroup, "acme/platform")
		require.NoError(t, err, name)

		require.Zero(t, top.ID, "%s: an ancestor seen only in a path has no GitLab id yet", name)
		require.Zero(t, mid.ID, name)
		require.Equal(t, "acme", top.Name, name)
		require.Equal(t, "platform", mid.Name, name)
		require.Zero(t, top.ParentKey, name)
		require.Equal(t, top.Key, top.TopKey, name)
		require.Equal(t, top.Key, mid.ParentKey, name)
		require.Equal(t, top.Key, mid.TopKey, name)
		require.Equal(t, mid.Key, p.ParentKey, name)
		require.Equal(t, top.Key, p.TopKey, "%s: events of the project are filed under the top-level group", name)

		got, err := res.Find(ctx, store.KindProject, "100")
		require.NoError(t, err, name)
		require.Equal(t, p, got, name)
	}

	all, err := st.NamespaceList(ctx)
	require.NoError(t, err)
	require.Len(t, all, 3)

	// A second project under a known group creates nothing else.
	q, err := r.Learn(ctx, store.KindProject, "acme/platform/web", 101)
	require.NoError(t, err)
	require.Equal(t, p.ParentKey, q.ParentKey)
	require.Equal(t, p.TopKey, q.TopKey)
	all, err = st.NamespaceList(ctx)
	require.NoError(t, err)
	require.Len(t, all, 4)
}

func TestLearnAncestorIDLater(t *testing.T) {
	ctx, r, st := setup(t)
	p, err := r.Learn(ctx, store.KindProject, "acme/platform/api", 100)
	require.NoError(t, err)
	before, err := r.Find(ctx, store.KindGroup, "acme")
	require.NoError(t, err)
	require.Zero(t, before.ID)

	// A later event of the group itself tells its id.
	g, err := r.Learn(ctx, store.KindGroup, "acme", 7)
	require.NoError(t, err)
	require.Equal(t, before.Key, g.Key, "the same namespace, not a new one")
	require.Equal(t, int64(7), g.ID)
	require.Equal(t, p.TopKey, g.Key)

	sub, err := r.Learn(ctx, store.KindGroup, "acme/platform", 8)
	require.NoError(t, err)
	require.Equal(t, p.ParentKey, sub.Key)
	require.Equal(t, int64(8), sub.ID)

	for name, res := range map[string]*namespace.Resolver{"same": r, "fresh": namespace.NewResolver(st, clock)} {
		got, err := res.Find(ctx, store.KindGroup, "7")
		require.NoError(t, err, name)
		require.Equal(t, g.Key, got.Key, name)
		require.Equal(t, int64(7), got.ID, name)
		got, err = res.Find(ctx, store.KindGroup, "acme")
		require.NoError(t, err, name)
		require.Equal(t, int64(7), got.ID, "%s: a lookup by path sees the id too", name)
		got, err = res.Find(ctx, store.KindGroup, "8")
		require.NoError(t, err, name)
		require.Equal(t, "acme/platform", got.FullPath, name)
	}

	// Learning it again without an id keeps the id.
	again, err := r.Learn(ctx, store.KindGroup, "acme", 0)
	require.NoError(t, err)
	require.Equal(t, int64(7), again.ID)
	again, err = namespace.NewResolver(st, clock).Learn(ctx, store.KindGroup, "acme", 0)
	require.NoError(t, err)
	require.Equal(t, int64(7), again.ID)
}

// A known id under another path was renamed or transferred in GitLab: it moves there, with its
// subtree; nothing is created at the old path.
func TestLearnByKnownIDUnderAnotherPathMovesIt(t *testing.T) {
	ctx, r, st := setup(t)
	orig, err := r.Learn(ctx, store.KindProject, "acme/api", 100)
	require.NoError(t, err)
	group, err := r.Learn(ctx, store.KindGroup, "acme", 7)
	require.NoError(t, err)
	web, err := r.Learn(ctx, store.KindProject, "acme/web", 101)
	require.NoError(t, err)

	// The project is transferred to another top-level group and renamed.
	got, err := r.Learn(ctx, store.KindProject, "other/api-renamed", 100)
	require.NoError(t, err)
	require.Equal(t, orig.Key, got.Key, "the id, not the path, is the identity")
	require.Equal(t, "other/api-renamed", got.FullPath)
	other, err := r.Find(ctx, store.KindGroup, "other")
	require.NoError(t, err)
	require.Equal(t, other.Key, got.ParentKey)
	require.Equal(t, other.Key, got.TopKey, "its events now belong to the other top-level group")

	// The group is renamed; its remaining project moves with it.
	g, err := r.Learn(ctx, store.KindGroup, "acme-renamed", 7)
	require.NoError(t, err)
	require.Equal(t, group.Key, g.Key)
	for name, res := range map[string]*namespace.Resolver{"same": r, "fresh": namespace.NewResolver(st, clock)} {
		w, err := res.Find(ctx, store.KindProject, "acme-renamed/web")
		require.NoError(t, err, name)
		require.Equal(t, web.Key, w.Key, name)
		_, err = res.Find(ctx, store.KindGroup, "acme")
		require.ErrorIs(t, err, namespace.ErrNotFound, "%s: nothing is left at the old path", name)
		_, err = res.Find(ctx, store.KindProject, "acme/api")
		require.ErrorIs(t, err, namespace.ErrNotFound, name)
	}
}

// The leak a review found: GitLab renames group 7 away from "acme" and a new group 9 takes the
// path. Group 9's projects must never end up under group 7 (whose members would see them),
// whichever order the events arrive in.
func TestNewGroupOnAnOldPathNeverJoinsTheOldGroup(t *testing.T) {
	for _, order := range []string{"rename seen first", "new owner seen first"} {
		t.Run(order, func(t *testing.T) {
			ctx, r, _ := setup(t)
			old, err := r.Learn(ctx, store.KindGroup, "acme", 7)
			require.NoError(t, err)
			if order == "rename seen first" {
				_, err = r.Learn(ctx, store.KindGroup, "acme-old", 7)
				require.NoError(t, err)
			}
			newer, err := r.Learn(ctx, store.KindGroup, "acme", 9)
			require.NoError(t, err)
			require.NotEqual(t, old.Key, newer.Key)
			require.Equal(t, int64(9), newer.ID)
			p, err := r.Learn(ctx, store.KindProject, "acme/secret", 200)
			require.NoError(t, err)
			chain, err := r.Chain(ctx, p)
			require.NoError(t, err)
			for _, ns := range chain {
				require.NotEqual(t, old.Key, ns.Key, "project 200 must not be under group 7")
			}
			require.Equal(t, newer.Key, p.TopKey)

			// Group 7's next event tells where it went; it keeps its own key (and members).
			moved, err := r.Learn(ctx, store.KindGroup, "acme-old", 7)
			require.NoError(t, err)
			require.Equal(t, old.Key, moved.Key)
			require.Equal(t, "acme-old", moved.FullPath)
			g, err := r.Find(ctx, store.KindGroup, "acme")
			require.NoError(t, err)
			require.Equal(t, int64(9), g.ID)
		})
	}
}

func TestLearnKindMismatch(t *testing.T) {
	ctx, r, st := setup(t)
	_, err := r.Learn(ctx, store.KindProject, "acme/api", 100)
	require.NoError(t, err)
	count := func() int {
		all, err := st.NamespaceList(ctx)
		require.NoError(t, err)
		return len(all)
	}
	require.Equal(t, 2, count())

	for _, tc := range []struct {
		name string
		kind store.NamespaceKind
		path string
		id   int64
	}{
		{"project as a group's parent", store.KindGroup, "acme/api/sub", 0},
		{"project as a group's parent, with id", store.KindGroup, "acme/api/sub", 5},
		{"project as a project's parent", store.KindProject, "acme/api/p", 6},
		{"project as a deeper ancestor", store.KindProject, "acme/api/x/p", 6},
		{"group path learned as a project", store.KindProject, "acme", 0},
		{"group path learned as a project, with id", store.KindProject, "acme", 9},
		{"project path learned as a group", store.KindGroup, "acme/api", 0},
		{"project path learned as a group, with id", store.KindGroup, "acme/api", 9},
	} {
		for name, res := range map[string]*namespace.Resolver{"same": r, "fresh": namespace.NewResolver(st, clock)} {
			_, err := res.Learn(ctx, tc.kind, tc.path, tc.id)
			require.ErrorIs(t, err, namespace.ErrKindMismatch, "%s (%s resolver)", tc.name, name)
		}
	}
	require.Equal(t, 2, count(), "a rejected learn creates nothing")
}

func TestLearnTopLevelProjectFails(t *testing.T) {
	ctx, r, st := setup(t)
	_, err := r.Learn(ctx, store.KindProject, "lonely", 3)
	require.Error(t, err, "a project always lives in a namespace")
	all, err := st.NamespaceList(ctx)
	require.NoError(t, err)
	require.Empty(t, all)
}

func TestFind(t *testing.T) {
	ctx, r, st := setup(t)
	g, err := r.Learn(ctx, store.KindGroup, "acme", 5)
	require.NoError(t, err)
	p, err := r.Learn(ctx, store.KindProject, "acme/api", 5) // ids are per kind
	require.NoError(t, err)

	for name, res := range map[string]*namespace.Resolver{"same": r, "fresh": namespace.NewResolver(st, clock)} {
		for _, tc := range []struct {
			kind     store.NamespaceKind
			idOrPath string
			want     store.Namespace
		}{
			{store.KindGroup, "5", g},
			{store.KindGroup, "acme", g},
			{store.KindProject, "5", p},
			{store.KindProject, "acme/api", p},
		} {
			got, err := res.Find(ctx, tc.kind, tc.idOrPath)
			require.NoError(t, err, "%s %s (%s)", tc.kind, tc.idOrPath, name)
			require.Equal(t, tc.want, got, "%s %s (%s)", tc.kind, tc.idOrPath, name)
		}
		for _, tc := range []struct {
			kind     store.NamespaceKind
			idOrPath string
		}{
			{store.KindGroup, "6"},           // unknown id
			{store.KindGroup, "nope"},        // unknown path
			{store.KindProject, "acme/nope"}, // unknown path
			{store.KindGroup, "acme/api"},    // a project's path as a group
			{store.KindProject, "acme"},      // a group's path as a project
			{store.KindGroup, "0"},           // no namespace has id 0
			{store.KindGroup, "-5"},
		} {
			_, err := res.Find(ctx, tc.kind, tc.idOrPath)
			require.ErrorIs(t, err, namespace.ErrNotFound, "%s %s (%s)", tc.kind, tc.idOrPath, name)
		}
	}

	// An ancestor whose id is unknown is found by path, never by id 0.
	_, err = r.Learn(ctx, store.KindProject, "beta/app", 9)
	require.NoError(t, err)
	beta, err := r.Find(ctx, store.KindGroup, "beta")
	require.NoError(t, err)
	require.Zero(t, beta.ID)
	_, err = r.Find(ctx, store.KindGroup, "0")
	require.ErrorIs(t, err, namespace.ErrNotFound)

	_, err = r.ByKey(ctx, 999_999)
	require.ErrorIs(t, err, namespace.ErrNotFound)
}

func TestChainNearestFirst(t *testing.T) {
	ctx, r, st := setup(t)
	p, err := r.Learn(ctx, store.KindProject, "a/b/c/proj", 1)
	require.NoError(t, err)

	for name, res := range map[string]*namespace.Resolver{"same": r, "fresh": namespace.NewResolver(st, clock)} {
		chain, err := res.Chain(ctx, p)
		require.NoError(t, err, name)
		var paths []string
		for _, ns := range chain {
			paths = append(paths, ns.FullPath)
		}
		require.Equal(t, []string{"a/b/c/proj", "a/b/c", "a/b", "a"}, paths, name)
		require.Equal(t, p.TopKey, chain[len(chain)-1].Key, name)

		top, err := res.Find(ctx, store.KindGroup, "a")
		require.NoError(t, err, name)
		chain, err = res.Chain(ctx, top)
		require.NoError(t, err, name)
		require.Equal(t, []store.Namespace{top}, chain, name)
	}
}

func TestConcurrentLearnCreatesOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		resolvers int // resolvers over one store: several processes sharing a database
		id        int64
	}{
		{"one resolver", 1, 42},
		{"one resolver, no id", 1, 0},
		{"two resolvers", 2, 42},
		{"two resolvers, no id", 2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, _, st := setup(t)
			var rs []*namespace.Resolver
			for range tc.resolvers {
				rs = append(rs, namespace.NewResolver(st, clock))
			}
			const n = 20
			keys := make([]int64, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					ns, err := rs[i%len(rs)].Learn(ctx, store.KindProject, "new/deep/proj", tc.id)
					keys[i], errs[i] = ns.Key, err
				})
			}
			close(start)
			wg.Wait()
			all, err := st.NamespaceList(ctx)
			require.NoError(t, err)
			if tc.id == 0 {
				// Ids are never invented: an unknown namespace without its id is refused.
				for i := range n {
					require.ErrorIs(t, errs[i], namespace.ErrIDRequired, "goroutine %d", i)
				}
				require.Empty(t, all, "a refused learn creates nothing")
				return
			}
			for i := range n {
				require.NoError(t, errs[i], "goroutine %d", i)
				require.Equal(t, keys[0], keys[i], "goroutine %d got another namespace", i)
			}
			var paths []string
			for _, ns := range all {
				paths = append(paths, ns.FullPath)
			}
			require.ElementsMatch(t, []string{"new", "new/deep", "new/deep/proj"}, paths)
		})
	}
}

func TestCreate(t *testing.T) {
	ctx, r, st := setup(t)
	g, err := r.Create(ctx, store.KindGroup, "Acme Inc", "acme", 0, 0)
	require.NoError(t, err)
	require.Equal(t, "acme", g.FullPath)
	require.Equal(t, "Acme Inc", g.Name)
	require.Equal(t, store.LocalID(g.Key), g.ID, "without GitLab's id it gets one of the range assigned here, at once")
	require.Equal(t, g.Key, g.TopKey)
	byPath, err := r.Learn(ctx, store.KindGroup, "acme", 0)
	require.NoError(t, err, "events may name it by path alone")
	require.Equal(t, g, byPath)
	byLocal, err := r.Learn(ctx, store.KindGroup, "acme", g.ID)
	require.NoError(t, err, "or by the id assigned here")
	require.Equal(t, g, byLocal)
	// The first event that names the group with GitLab's id makes it adopt that id.
	adopted, err := r.Learn(ctx, store.KindGroup, "acme", 24)
	require.NoError(t, err)
	require.Equal(t, g.Key, adopted.Key)
	require.Equal(t, int64(24), adopted.ID)
	for _, ref := range []string{"24", strconv.FormatInt(g.ID, 10), "acme"} {
		found, err := r.Find(ctx, store.KindGroup, ref)
		require.NoError(t, err, ref)
		require.Equal(t, adopted, found, "%s: the id assigned here still names it", ref)
	}
	_, err = r.Find(ctx, store.KindProject, strconv.FormatInt(g.ID, 10))
	require.ErrorIs(t, err, namespace.ErrNotFound, "the id is a group's, not a project's")
	_, err = r.Learn(ctx, store.KindGroup, "elsewhere", store.LocalID(g.Key+1000))
	require.ErrorIs(t, err, namespace.ErrUnknownLocalID, "ids of the range assigned here are not invented by events")
	_, err = r.Create(ctx, store.KindGroup, "Claim", "claim", 0, store.LocalID(g.Key+1000))
	require.ErrorIs(t, err, namespace.ErrUnknownLocalID, "nor claimed when creating")

	sub, err := r.Create(ctx, store.KindGroup, "Platform", "platform", g.Key, 77)
	require.NoError(t, err)
	require.Equal(t, "acme/platform", sub.FullPath)
	require.Equal(t, int64(77), sub.ID)
	require.Equal(t, g.Key, sub.TopKey)

	p, err := r.Create(ctx, store.KindProject, "API", "api", sub.Key, 0)
	require.NoError(t, err)
	require.Equal(t, "acme/platform/api", p.FullPath)
	require.Equal(t, sub.Key, p.ParentKey)
	require.Equal(t, g.Key, p.TopKey)

	_, err = r.Create(ctx, store.KindGroup, "Sub", "sub", p.Key, 0)
	require.ErrorIs(t, err, namespace.ErrKindMismatch, "a project cannot contain a group")
	_, err = r.Create(ctx, store.KindProject, "P", "p", p.Key, 0)
	require.ErrorIs(t, err, namespace.ErrKindMismatch, "a project cannot contain a project")
	_, err = r.Create(ctx, store.KindGroup, "X", "x", 999_999, 0)
	require.ErrorIs(t, err, namespace.ErrNotFound, "unknown parent")
	_, err = r.Create(ctx, store.KindGroup, "Again", "platform", g.Key, 0)
	require.ErrorIs(t, err, store.ErrConflict, "path taken")
	_, err = r.Create(ctx, store.KindGroup, "Other", "other", 0, 77)
	require.ErrorIs(t, err, store.ErrConflict, "group id taken")

	all, err := st.NamespaceList(ctx)
	require.NoError(t, err)
	require.Len(t, all, 3, "failed creates leave nothing behind")

	// Events of a namespace created ahead of time are filed under it, by path alone at once, and
	// after one told its GitLab id too.
	learned, err := r.Learn(ctx, store.KindProject, "acme/platform/api", 0)
	require.NoError(t, err)
	require.Equal(t, p, learned)
	learned, err = r.Learn(ctx, store.KindProject, "acme/platform/api", 500)
	require.NoError(t, err)
	require.Equal(t, p.Key, learned.Key)
	learned, err = r.Learn(ctx, store.KindProject, "acme/platform/api", 0)
	require.NoError(t, err)
	require.Equal(t, int64(500), learned.ID)
	found, err := namespace.NewResolver(st, clock).Find(ctx, store.KindGroup, "77")
	require.NoError(t, err)
	require.Equal(t, sub, found)
}

// TestFindSeesIDLearnedByAnotherResolver: replicas share one database, each with its own
// resolver. When one replica learns the id of a group that every replica first saw only as an
// ancestor, the others must serve that id too (it is what the REST API filters events by).
func TestFindSeesIDLearnedByAnotherResolver(t *testing.T) {
	ctx, a, st := setup(t)
	b := namespace.NewResolver(st, clock)

	_, err := a.Learn(ctx, store.KindProject, "acme/api", 100)
	require.NoError(t, err)
	_, err = b.Learn(ctx, store.KindProject, "acme/api", 100)
	require.NoError(t, err)
	g, err := b.Find(ctx, store.KindGroup, "acme")
	require.NoError(t, err)
	require.Zero(t, g.ID)

	_, err = a.Learn(ctx, store.KindGroup, "acme", 7) // replica a sees the group's own event
	require.NoError(t, err)

	got, err := b.Find(ctx, store.KindGroup, "acme")
	require.NoError(t, err)
	require.Equal(t, int64(7), got.ID, "replica b still serves the group with id 0")
	got, err = b.Learn(ctx, store.KindGroup, "acme", 0)
	require.NoError(t, err)
	require.Equal(t, int64(7), got.ID, "replica b files the group's id-less events with entity_id 0")
}

// TestLearnNeverReturnsAnotherID: the id, not the path, is a namespace's identity. When a path
// now belongs to a group with another id (GitLab: group 7 was renamed away from "acme" and a new
// group 9 took the path), events of group 9 must not be filed under group 7 — ingest copies the
// returned namespace's id into the event's entity_id.
func TestLearnNeverReturnsAnotherID(t *testing.T) {
	ctx, r, st := setup(t)
	old, err := r.Learn(ctx, store.KindGroup, "acme", 7)
	require.NoError(t, err)

	for name, res := range map[string]*namespace.Resolver{"same": r, "fresh": namespace.NewResolver(st, clock)} {
		got, err := res.Learn(ctx, store.KindGroup, "acme", 9)
		if err == nil {
			require.Equal(t, int64(9), got.ID, "%s: Learn(acme, id 9) returned group %d", name, got.ID)
			require.NotEqual(t, old.Key, got.Key, name)
		}
		still, err := res.Find(ctx, store.KindGroup, "7")
		require.NoError(t, err, name)
		require.Equal(t, old.Key, still.Key, name)
	}
}

// A namespace-bound producer's event resolves namespaces and creates new ones below an
// existing top-level group, and changes nothing else: no move or rename, no parking of a
// path's holder, no id told for a namespace known by path only, no new top-level group
// (issue 13, item 1).
func TestLearnBoundNeverChangesWhereANamespaceIs(t *testing.T) {
	ctx, r, st := setup(t)
	_, err := r.Learn(ctx, store.KindGroup, "alpha", 100)
	require.NoError(t, err)
	_, err = r.Learn(ctx, store.KindGroup, "beta", 300)
	require.NoError(t, err)
	_, err = r.Learn(ctx, store.KindGroup, "alpha/pathonly/leaf", 0+110)
	require.NoError(t, err) // alpha/pathonly is known by path only

	// Allowed: what exists where the event says, and new namespaces below alpha.
	for _, c := range []struct {
		kind store.NamespaceKind
		path string
		id   int64
	}{
		{store.KindGroup, "alpha", 100}, {store.KindGroup, "alpha", 0}, {store.KindGroup, "alpha/new", 150},
		{store.KindProject, "alpha/new/p", 151}, {store.KindProject, "alpha/x/y/p2", 152},
	} {
		_, err := r.LearnBound(ctx, c.kind, c.path, c.id)
		require.NoError(t, err, "%s %d", c.path, c.id)
	}

	for _, c := range []struct {
		name string
		kind store.NamespaceKind
		path string
		id   int64
	}{
		{"move beta into alpha", store.KindGroup, "alpha/stolen", 300},
		{"rename a subgroup", store.KindGroup, "alpha/renamed", 150},
		{"take alpha's path", store.KindGroup, "alpha", 999},
		{"take a subgroup's path", store.KindGroup, "alpha/new", 998},
		{"tell the id of a group known by path", store.KindGroup, "alpha/pathonly", 997},
		{"a new top-level group", store.KindGroup, "gamma", 996},
		{"below a new top-level group", store.KindProject, "gamma/p", 995},
	} {
		_, err := r.LearnBound(ctx, c.kind, c.path, c.id)
		require.ErrorIs(t, err, namespace.ErrNotAllowed, c.name)
	}
	// Nothing moved, nothing was parked or created, with a fresh resolver reading the store.
	fresh := namespace.NewResolver(st, clock)
	for path, id := range map[string]int64{"alpha": 100, "beta": 300, "alpha/new": 150, "alpha/pathonly": 0} {
		ns, err := fresh.Find(ctx, store.KindGroup, path)
		require.NoError(t, err, path)
		require.Equal(t, id, ns.ID, path)
	}
	for _, path := range []string{"gamma", "alpha/stolen", "alpha/renamed"} {
		_, err := fresh.Find(ctx, store.KindGroup, path)
		require.ErrorIs(t, err, namespace.ErrNotFound, path)
	}
}

// TestCheckAgreesWithLearnAndChangesNothing: Check says what Learn would refuse for want of an
// id, without creating anything.
func TestCheckAgreesWithLearnAndChangesNothing(t *testing.T) {
	ctx, r, st := setup(t)
	_, err := r.Learn(ctx, store.KindProject, "acme/sub/app", 300) // acme and acme/sub without ids
	require.NoError(t, err)
	here, err := r.Create(ctx, store.KindGroup, "Here", "here", 0, 0)
	require.NoError(t, err)
	before, err := st.NamespaceList(ctx)
	require.NoError(t, err)
	for _, tt := range []struct {
		kind store.NamespaceKind
		path string
		id   int64
		want error
	}{
		{store.KindGroup, "unknown", 0, namespace.ErrIDRequired},
		{store.KindGroup, "acme/sub", 0, namespace.ErrIDRequired}, // known, without an id
		{store.KindProject, "acme/sub/app", 0, nil},
		{store.KindGroup, "here", 0, nil}, // created here: an id of the reserved range
		{store.KindGroup, "here", here.ID, nil},
		{store.KindGroup, "unknown", store.LocalID(here.Key + 1000), namespace.ErrUnknownLocalID},
		{store.KindGroup, "unknown", 5, nil},
		{store.KindGroup, "acme/sub/app/x", 0, nil}, // under a project: Learn reports the mismatch
	} {
		require.ErrorIs(t, r.Check(ctx, tt.kind, tt.path, tt.id), tt.want, "%s %s %d", tt.kind, tt.path, tt.id)
		if tt.want != nil {
			_, err := r.Learn(ctx, tt.kind, tt.path, tt.id)
			require.ErrorIs(t, err, tt.want, "Learn agrees: %s %s %d", tt.kind, tt.path, tt.id)
		}
	}
	after, err := st.NamespaceList(ctx)
	require.NoError(t, err)
	require.Equal(t, before, after, "nothing was learned")
}

// TestChangesReachOtherResolvers: two resolvers over one store, as two replicas. What one
// caches of the tree is stale once the other moves, renames, parks or re-ids a namespace; the
// resolver that changed it calls its OnChange function, and a Forget of the other's (what
// app wires through NATS) makes the other resolve by the new tree at once: paths, ids, keys
// and chains (which decide authorization) alike.
func TestChangesReachOtherResolvers(t *testing.T) {
	ctx, a, st := setup(t)
	b := namespace.NewResolver(st, clock)
	changes := 0
	a.OnChange(func() { changes++; b.Forget() })

	_, err := a.Learn(ctx, store.KindGroup, "org", 101)
	require.NoError(t, err)
	_, err = a.Learn(ctx, store.KindGroup, "other", 103)
	require.NoError(t, err)
	_, err = a.Learn(ctx, store.KindProject, "org/team/app", 201)
	require.NoError(t, err)
	_, err = a.Learn(ctx, store.KindGroup, "org/team", 102)
	require.NoError(t, err) // tells the id of an ancestor learned from a path
	require.Equal(t, 1, changes, "giving a namespace its id is a change others must hear of")
	changes = 0

	// b caches the tree as it is: by id, by path, by key (the chain of the project).
	app, err := b.Find(ctx, store.KindProject, "201")
	require.NoError(t, err)
	chain, err := b.Chain(ctx, app)
	require.NoError(t, err)
	require.Equal(t, []string{"org/team/app", "org/team", "org"}, paths(chain))
	_, err = b.Find(ctx, store.KindGroup, "org/team")
	require.NoError(t, err)

	// a learns that org/team moved to other/team.
	_, err = a.Learn(ctx, store.KindGroup, "other/team", 102)
	require.NoError(t, err)
	require.Equal(t, 1, changes)

	team, err := b.Find(ctx, store.KindGroup, "102")
	require.NoError(t, err)
	require.Equal(t, "other/team", team.FullPath)
	app, err = b.Find(ctx, store.KindProject, "other/team/app")
	require.NoError(t, err)
	chain, err = b.Chain(ctx, app)
	require.NoError(t, err)
	require.Equal(t, []string{"other/team/app", "other/team", "other"}, paths(chain), "authorization follows the new tree")
	_, err = b.Find(ctx, store.KindGroup, "org/team")
	require.ErrorIs(t, err, namespace.ErrNotFound, "the old path names nothing")
	_, err = b.LearnBound(ctx, store.KindProject, "org/team/app", 201)
	require.ErrorIs(t, err, namespace.ErrNotAllowed, "an event on the old path would move it back")

	// A path taken by a new id parks its holder: also a change.
	changes = 0
	_, err = a.Learn(ctx, store.KindGroup, "other/team", 555)
	require.NoError(t, err)
	require.Equal(t, 1, changes)
	team, err = b.Find(ctx, store.KindGroup, "other/team")
	require.NoError(t, err)
	require.Equal(t, int64(555), team.ID)
}

// TestForgetDuringALookupCachesNothingStale: a lookup that read the store before another
// process's change, and finishes after the Forget that tells of it, must not cache what it
// read, or the resolver would keep the old tree until the next change.
func TestForgetDuringALookupCachesNothingStale(t *testing.T) {
	ctx, a, st := setup(t)
	_, err := a.Learn(ctx, store.KindGroup, "org", 101)
	require.NoError(t, err)
	_, err = a.Learn(ctx, store.KindGroup, "org/team", 102)
	require.NoError(t, err)

	var b *namespace.Resolver
	var once sync.Once
	slow := &forgetAfterRead{Store: st, after: func() {
		once.Do(func() {
			// Between b's read and its caching, another process moves the group and b hears of it.
			_, err := a.Learn(ctx, store.KindGroup, "team", 102)
			require.NoError(t, err)
			b.Forget()
		})
	}}
	b = namespace.NewResolver(slow, clock)
	old, err := b.Find(ctx, store.KindGroup, "102")
	require.NoError(t, err)
	require.Equal(t, "org/team", old.FullPath, "the lookup returns what it read")
	fresh, err := b.Find(ctx, store.KindGroup, "102")
	require.NoError(t, err)
	require.Equal(t, "team", fresh.FullPath, "but did not cache it")
}

// forgetAfterRead is the real store with a function called after each read by id.
type forgetAfterRead struct {
	*sqlite.Store
	after func()
}

func (f *forgetAfterRead) NamespaceGetByID(ctx context.Context, kind store.NamespaceKind, id int64) (store.Namespace, error) {
	ns, err := f.Store.NamespaceGetByID(ctx, kind, id)
	f.after()
	return ns, err
}

func paths(chain []store.Namespace) []string {
	out := make([]string, len(chain))
	for i, ns := range chain {
		out[i] = ns.FullPath
	}
	return out
}

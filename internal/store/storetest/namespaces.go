package storetest

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/store"
)

// namespaceTree creates the namespaces of specs in order; each spec is "kind:full/path", and
// the parent is the namespace created with the path before the last slash.
func namespaceTree(t *testing.T, ctx context.Context, st store.Store, specs ...string) map[string]store.Namespace {
	t.Helper()
	ns := make(map[string]store.Namespace, len(specs))
	for _, spec := range specs {
		kind, path := store.KindGroup, spec
		if rest, ok := strings.CutPrefix(spec, "project:"); ok {
			kind, path = store.KindProject, rest
		}
		p := store.NamespaceCreateParams{Kind: kind, Name: "N " + path, FullPath: path, CreatedAt: base}
		if i := strings.LastIndexByte(path, '/'); i >= 0 {
			parent, ok := ns[path[:i]]
			require.True(t, ok, "parent of %q created first", path)
			p.ParentKey = parent.Key
		}
		n, err := st.NamespaceCreate(ctx, p)
		require.NoError(t, err)
		ns[path] = n
	}
	return ns
}

// requireMoved checks that n now has newPath and topKey (and, when parentKey is not nil, that
// parent), is found by its new path and no longer by its old one, and kept everything else.
func requireMoved(t *testing.T, ctx context.Context, st store.Store, n store.Namespace, newPath string, parentKey *int64, topKey int64) {
	t.Helper()
	want := n
	want.FullPath = newPath
	want.Path = newPath[strings.LastIndexByte(newPath, '/')+1:]
	want.TopKey = topKey
	if parentKey != nil {
		want.ParentKey = *parentKey
	}
	got, err := st.NamespaceGetByKey(ctx, n.Key)
	require.NoError(t, err)
	require.Equal(t, want, got)
	got, err = st.NamespaceGetByPath(ctx, newPath)
	require.NoError(t, err)
	require.Equal(t, want, got)
	if n.FullPath != newPath {
		_, err = st.NamespaceGetByPath(ctx, n.FullPath)
		require.ErrorIs(t, err, store.ErrNotFound, "old path %q", n.FullPath)
	}
}

func requireUnchanged(t *testing.T, ctx context.Context, st store.Store, before []store.Namespace) {
	t.Helper()
	after, err := st.NamespaceList(ctx)
	require.NoError(t, err)
	require.Equal(t, before, after)
}

func (s *suite) testNamespaceMoveRename(t *testing.T) {
	ctx, st := s.setup(t)
	ns := namespaceTree(t, ctx, st, "acme", "acme/platform", "project:acme/platform/api", "acme/platform/infra",
		"project:acme/platform/infra/tf", "project:acme/web", "acme-other", "project:acme-other/x")

	// Rename the top-level group; "acme-old" starts with "acme" but is no descendant.
	acme := ns["acme"]
	require.NoError(t, st.NamespaceMove(ctx, store.NamespaceMoveParams{Key: acme.Key, NewFullPath: "acme-old"}))
	zero := int64(0)
	requireMoved(t, ctx, st, acme, "acme-old", &zero, acme.Key)
	for _, old := range []string{"acme/platform", "acme/platform/api", "acme/platform/infra", "acme/platform/infra/tf", "acme/web"} {
		requireMoved(t, ctx, st, ns[old], "acme-old"+old[len("acme"):], nil, acme.Key)
	}
	requireMoved(t, ctx, st, ns["acme-other"], "acme-other", nil, ns["acme-other"].Key)
	requireMoved(t, ctx, st, ns["acme-other/x"], "acme-other/x", nil, ns["acme-other"].Key)

	// Rename it back: the new path is a prefix of the old ones.
	require.NoError(t, st.NamespaceMove(ctx, store.NamespaceMoveParams{Key: acme.Key, NewFullPath: "acme"}))
	all, err := st.NamespaceList(ctx)
	require.NoError(t, err)
	for _, n := range all {
		require.Equal(t, ns[n.FullPath], n)
	}

	// Moving to its own path changes nothing.
	sub := ns["acme/platform"]
	require.NoError(t, st.NamespaceMove(ctx, store.NamespaceMoveParams{Key: sub.Key, NewFullPath: "acme/platform", NewParentKey: acme.Key}))
	requireUnchanged(t, ctx, st, all)
}

func (s *suite) testNamespaceMoveAcrossTops(t *testing.T) {
	ctx, st := s.setup(t)
	ns := namespaceTree(t, ctx, st, "g1", "g1/sub", "g1/sub/deep", "project:g1/sub/deep/p", "project:g1/sub/q", "project:g1/keep", "g2", "g2/inner")
	g1, g2, inner := ns["g1"], ns["g2"], ns["g2/inner"]

	// A subgroup moves under a subgroup of another top-level group.
	sub := ns["g1/sub"]
	require.NoError(t, st.NamespaceMove(ctx, store.NamespaceMoveParams{Key: sub.Key, NewFullPath: "g2/inner/moved", NewParentKey: inner.Key}))
	requireMoved(t, ctx, st, sub, "g2/inner/moved", &inner.Key, g2.Key)
	requireMoved(t, ctx, st, ns["g1/sub/deep"], "g2/inner/moved/deep", nil, g2.Key)
	requireMoved(t, ctx, st, ns["g1/sub/deep/p"], "g2/inner/moved/deep/p", nil, g2.Key)
	requireMoved(t, ctx, st, ns["g1/sub/q"], "g2/inner/moved/q", nil, g2.Key)
	requireMoved(t, ctx, st, ns["g1/keep"], "g1/keep", nil, g1.Key)
	requireMoved(t, ctx, st, g2, "g2", nil, g2.Key)
	requireMoved(t, ctx, st, inner, "g2/inner", nil, g2.Key)

	// Then it becomes a top-level group of its own.
	sub, err := st.NamespaceGetByKey(ctx, sub.Key)
	require.NoError(t, err)
	deep, err := st.NamespaceGetByKey(ctx, ns["g1/sub/deep"].Key)
	require.NoError(t, err)
	zero := int64(0)
	require.NoError(t, st.NamespaceMove(ctx, store.NamespaceMoveParams{Key: sub.Key, NewFullPath: "top"}))
	requireMoved(t, ctx, st, sub, "top", &zero, sub.Key)
	requireMoved(t, ctx, st, deep, "top/deep", nil, sub.Key)
	requireMoved(t, ctx, st, ns["g1/sub/deep/p"], "top/deep/p", nil, sub.Key)
	requireMoved(t, ctx, st, ns["g1/sub/q"], "top/q", nil, sub.Key)
	requireMoved(t, ctx, st, inner, "g2/inner", nil, g2.Key)

	// A project moves to another group, within the same top.
	p, err := st.NamespaceGetByKey(ctx, ns["g1/sub/deep/p"].Key)
	require.NoError(t, err)
	require.NoError(t, st.NamespaceMove(ctx, store.NamespaceMoveParams{Key: p.Key, NewFullPath: "top/p2", NewParentKey: sub.Key}))
	requireMoved(t, ctx, st, p, "top/p2", &sub.Key, sub.Key)
}

func (s *suite) testNamespaceMoveUnderscore(t *testing.T) {
	ctx, st := s.setup(t)
	// With LIKE 'a_b/%' every one of these would match; with LIKE 'a%' too.
	ns := namespaceTree(t, ctx, st, "a_b", "a_b/c", "project:a_b/c/d", "axb", "axb/c", "a%b", "a%b/c", "a_bc", "a_bc/c", "a", "a/b")
	require.NoError(t, st.NamespaceMove(ctx, store.NamespaceMoveParams{Key: ns["a_b"].Key, NewFullPath: "z"}))
	zero := int64(0)
	requireMoved(t, ctx, st, ns["a_b"], "z", &zero, ns["a_b"].Key)
	requireMoved(t, ctx, st, ns["a_b/c"], "z/c", nil, ns["a_b"].Key)
	requireMoved(t, ctx, st, ns["a_b/c/d"], "z/c/d", nil, ns["a_b"].Key)
	for _, path := range []string{"axb", "axb/c", "a%b", "a%b/c", "a_bc", "a_bc/c", "a", "a/b"} {
		got, err := st.NamespaceGetByKey(ctx, ns[path].Key)
		require.NoError(t, err)
		require.Equal(t, ns[path], got, "%q is untouched", path)
	}

	// A path with '%' too.
	require.NoError(t, st.NamespaceMove(ctx, store.NamespaceMoveParams{Key: ns["a%b"].Key, NewFullPath: "y"}))
	requireMoved(t, ctx, st, ns["a%b/c"], "y/c", nil, ns["a%b"].Key)
	got, err := st.NamespaceGetByKey(ctx, ns["axb/c"].Key)
	require.NoError(t, err)
	require.Equal(t, ns["axb/c"], got)
}

func (s *suite) testNamespaceMoveErrors(t *testing.T) {
	ctx, st := s.setup(t)
	ns := namespaceTree(t, ctx, st, "a", "a/x", "a/x/y", "project:a/p", "b", "b/x", "c", "c/z", "c/z/y")
	// "free" is not taken but "free/x" is (a path no parent's path prefixes; the store does not
	// require it to), so only a descendant of "a" conflicts, after "a" itself was moved.
	_, err := st.NamespaceCreate(ctx, store.NamespaceCreateParams{Kind: store.KindGroup, Name: "odd", FullPath: "free/x", ParentKey: ns["c"].Key, CreatedAt: base})
	require.NoError(t, err)
	before, err := st.NamespaceList(ctx)
	require.NoError(t, err)

	tests := []struct {
		name string
		p    store.NamespaceMoveParams
		want error // nil: some other error
	}{
		{"target path taken", store.NamespaceMoveParams{Key: ns["a/x"].Key, NewFullPath: "b/x", NewParentKey: ns["b"].Key}, store.ErrConflict},
		{"target taken by a top-level group", store.NamespaceMoveParams{Key: ns["a/x"].Key, NewFullPath: "b"}, store.ErrConflict},
		{"target and a descendant's path taken", store.NamespaceMoveParams{Key: ns["a"].Key, NewFullPath: "b"}, store.ErrConflict},
		{"only a descendant's path taken", store.NamespaceMoveParams{Key: ns["a"].Key, NewFullPath: "free"}, store.ErrConflict},
		{"a grandchild's path taken", store.NamespaceMoveParams{Key: ns["a/x"].Key, NewFullPath: "c/z", NewParentKey: ns["c"].Key}, store.ErrConflict},
		{"unknown key", store.NamespaceMoveParams{Key: ns["c/z/y"].Key + 1000, NewFullPath: "q"}, store.ErrNotFound},
		{"unknown parent", store.NamespaceMoveParams{Key: ns["a/x"].Key, NewFullPath: "nope/x", NewParentKey: ns["c/z/y"].Key + 1000}, store.ErrNotFound},
		{"parent is itself", store.NamespaceMoveParams{Key: ns["a"].Key, NewFullPath: "a/a", NewParentKey: ns["a"].Key}, nil},
		{"parent is a child", store.NamespaceMoveParams{Key: ns["a"].Key, NewFullPath: "a/x/a", NewParentKey: ns["a/x"].Key}, nil},
		{"parent is a grandchild", store.NamespaceMoveParams{Key: ns["a"].Key, NewFullPath: "a/x/y/a", NewParentKey: ns["a/x/y"].Key}, nil},
		{"parent is a project", store.NamespaceMoveParams{Key: ns["b/x"].Key, NewFullPath: "a/p/x", NewParentKey: ns["a/p"].Key}, nil},
		{"project to top level", store.NamespaceMoveParams{Key: ns["a/p"].Key, NewFullPath: "p"}, nil},
		{"empty path", store.NamespaceMoveParams{Key: ns["a/x"].Key, NewFullPath: ""}, nil},
	}
	for _, tt := range tests {
		err := st.NamespaceMove(ctx, tt.p)
		require.Error(t, err, tt.name)
		if tt.want != nil {
			require.ErrorIs(t, err, tt.want, tt.name)
		} else {
			require.NotErrorIs(t, err, store.ErrConflict, tt.name)
			require.NotErrorIs(t, err, store.ErrNotFound, tt.name)
		}
		requireUnchanged(t, ctx, st, before)
	}
}

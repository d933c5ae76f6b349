package graphql

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/poll"
	"github.com/auditstream/auditstream/internal/store"
)

// cost returns the complexity of the only operation of query.
func cost(t *testing.T, query string, vars map[string]any) int {
	t.Helper()
	doc, errs := gqlparser.LoadQuery(loadSchema(t), query)
	require.Nil(t, errs, query)
	w := costWalk{limit: costLimit{pages: pageSizes(50)}, vars: vars, fragments: map[*ast.FragmentDefinition]int{}}
	return w.set(doc.Operations[0].SelectionSet)
}

// A page multiplies what is selected of each of its items (GitLab's, graphql-ruby's, rule):
// first or last when given, the field's default page otherwise, never more than the field can
// return; a connection's count and pageInfo count once.
func TestCostMultipliesPages(t *testing.T) {
	attempt := `at success count statusCode error durationMs`
	for _, c := range []struct {
		query string
		vars  map[string]any
		want  int
	}{
		{`{ currentUser { id } }`, nil, 2},
		// group 1 + destinations 1 + count 1 + 50 destinations × (nodes 1 + id 1)
		{`{ group(fullPath: "g") { externalAuditEventStreamingDestinations { count nodes { id } } } }`, nil, 1 + 1 + 1 + 50*2},
		{`{ group(fullPath: "g") { externalAuditEventStreamingDestinations(first: 3) { nodes { id name } } } }`, nil, 1 + 1 + 3*3},
		{`{ group(fullPath: "g") { externalAuditEventStreamingDestinations(first: 1000) { nodes { id } } } }`, nil, 1 + 1 + 50*2},
		{`query($n: Int) { group(fullPath: "g") { externalAuditEventStreamingDestinations(first: $n) { nodes { id } } } }`, map[string]any{"n": 7}, 1 + 1 + 7*2},
		// deliveryAttempts: 50 by default, first otherwise, at most 100
		{`{ auditEventsInstanceStreamingDestinations(first: 1) { nodes { deliveryAttempts { ` + attempt + ` } } } }`, nil, 1 + 1*(1+1+50*6)},
		{`{ auditEventsInstanceStreamingDestinations(first: 1) { nodes { deliveryAttempts(first: 100) { ` + attempt + ` } } } }`, nil, 1 + 1*(1+1+100*6)},
		// a fragment counts where it is spread
		{`{ auditEventsInstanceStreamingDestinations(first: 2) { nodes { ...d } } } fragment d on InstanceAuditEventStreamingDestination { id name }`, nil, 1 + 2*(1+2)},
	} {
		require.Equal(t, c.want, cost(t, c.query, c.vars), c.query)
	}
}

// The query of issue 13, item 4 — 240 aliases of deliveryAttempts(first: 100) — costs far over
// the limit; every operation of GitLab's documentation fits under it.
func TestCostLimitRefusesTheAliasAttackAndFitsGitLabsDocs(t *testing.T) {
	var q strings.Builder
	q.WriteString(`{ group(fullPath: "org") { externalAuditEventStreamingDestinations(first: 1) { nodes {`)
	for i := range 240 {
		fmt.Fprintf(&q, " a%d: deliveryAttempts(first: 100) { at success count statusCode error durationMs firstEventId lastEventId test }", i)
	}
	q.WriteString(" } } } }")
	require.Greater(t, cost(t, q.String(), nil), 20*DefaultMaxComplexity)

	files, err := filepath.Glob("testdata/gitlab-docs/*.graphql")
	require.NoError(t, err)
	require.Len(t, files, 33)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		c := cost(t, string(b), nil)
		require.LessOrEqual(t, c, DefaultMaxComplexity, "%s costs %d: it must fit with room to spare", filepath.Base(f), c)
	}
}

// A user runs at most MaxConcurrentPerUser reads at once: another waits for its turn (a client
// that sends many at once is slowed down, not refused), and is refused only when it has waited
// RequestTimeout. Another user, and a change, are not held back by it.
func TestReadsPerUserAreBounded(t *testing.T) {
	h := New(Options{Auth: authFunc(func(_ context.Context, raw string) (*auth.Principal, error) {
		id := map[string]int64{"alice": 5, "bob": 6}[raw]
		return &auth.Principal{User: store.User{ID: id, Username: raw}, Token: store.Token{Scopes: []string{auth.ScopeAPI}}}, nil
	}), MaxConcurrentPerUser: 2, MaxConcurrent: -1, RequestTimeout: 300 * time.Millisecond})
	query := func(token string) string {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "/api/graphql", strings.NewReader(`{"query":"{ currentUser { username } }"}`))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("PRIVATE-TOKEN", token)
		h.ServeHTTP(w, r)
		require.Equal(t, http.StatusOK, w.Code)
		return w.Body.String()
	}
	require.Contains(t, query("alice"), `"username":"alice"`)
	// Two reads of alice's are running (held here as the interceptor holds them).
	var held []func()
	for range 2 {
		release, err := h.gate.enter(t.Context(), "u:5")
		require.NoError(t, err)
		held = append(held, release)
	}
	body := query("alice")
	require.Contains(t, body, `"code":"too_many_requests"`, "waited its turn for RequestTimeout")
	require.Contains(t, body, "at most 2")
	require.Contains(t, query("bob"), `"username":"bob"`, "another user is served")

	answered := make(chan string)
	go func() { answered <- query("alice") }()
	poll.Until(t, 5*time.Second, func() error {
		if n := h.gate.waiting("u:5"); n != 1 {
			return fmt.Errorf("%d of alice's reads wait", n)
		}
		return nil
	})
	held[0]()
	require.Contains(t, <-answered, `"username":"alice"`, "served once one has finished")
	held[1]()
}

// Past maxWaiting reads of a user waiting, another is refused at once; past the bound of all
// users, a read of any user waits.
func TestReadGateBounds(t *testing.T) {
	g := newReadGate(1, 2, 1)
	ctx := t.Context()
	a1, err := g.enter(ctx, "a")
	require.NoError(t, err)
	entered := make(chan func())
	go func() {
		r, err := g.enter(ctx, "a")
		if err == nil {
			entered <- r
		}
	}()
	poll.Until(t, 5*time.Second, func() error {
		if g.waiting("a") != 1 {
			return fmt.Errorf("not waiting yet")
		}
		return nil
	})
	_, err = g.enter(ctx, "a")
	require.ErrorIs(t, err, errQueueFull, "one may wait; the next is refused at once")

	b1, err := g.enter(ctx, "b")
	require.NoError(t, err, "b has a slot of its own, and one of the two of all is free")
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = g.enter(short, "c")
	require.ErrorIs(t, err, context.DeadlineExceeded, "both slots of all are taken")

	a1()
	a2 := <-entered // a's waiting read runs in the slot a1 left
	a2()
	b1()
	require.Empty(t, g.users, "nothing is kept for users with no read")
}

type authFunc func(ctx context.Context, raw string) (*auth.Principal, error)

func (f authFunc) Authenticate(ctx context.Context, raw string) (*auth.Principal, error) {
	return f(ctx, raw)
}

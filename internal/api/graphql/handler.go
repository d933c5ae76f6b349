// Package graphql serves auditstream's GraphQL API at POST /api/graphql: GitLab's audit event
// streaming API (unified and legacy) over streamconfig.Service. The schema files in schema/
// are the reference; exec/ and model/ are generated from them by gqlgen (go generate).
package graphql

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"

	gqlgen "github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/auditstream/auditstream/internal/api/graphql/exec"
	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/streamconfig"
)

// Authenticator checks tokens (auth.Authenticator).
type Authenticator interface {
	Authenticate(ctx context.Context, raw string) (*auth.Principal, error)
}

// Options configure the handler. Zero limits take the defaults.
type Options struct {
	Service *streamconfig.Service
	Catalog *event.Catalog
	Auth    Authenticator
	Logger  *slog.Logger
	// MaxBodyBytes bounds a request body (query and variables). Default 256 KiB.
	MaxBodyBytes int64
	// MaxDepth bounds how deeply selections nest. Default 15, as GitLab's.
	MaxDepth int
	// MaxComplexity bounds an operation's complexity: one per field, what is selected of each
	// item of a page multiplied by the page size (costLimit). Default 10,000.
	MaxComplexity int
	// MaxDestinations is the most destinations a group or the instance has (streamconfig's
	// limit): a list of destinations costs at most that many items. Default 50.
	MaxDestinations int
	// MaxConcurrentPerUser bounds the reads of one user (or, without a token, one address)
	// running at once; more wait for their turn (readGate). Default 4; negative: no bound.
	MaxConcurrentPerUser int
	// MaxConcurrent bounds the reads of all users running at once, so that reads leave CPU to
	// ingest. Default half of GOMAXPROCS, at least 1; negative: no bound.
	MaxConcurrent int
	// RequestTimeout bounds the time one request may run. Default 10s.
	RequestTimeout time.Duration
}

// Defaults of Options.
const (
	DefaultMaxBodyBytes         = 256 << 10
	DefaultMaxDepth             = 15
	DefaultMaxComplexity        = 10_000
	DefaultMaxConcurrentPerUser = 4
	DefaultRequestTimeout       = 10 * time.Second
)

// Handler serves POST /api/graphql.
type Handler struct {
	opts Options
	srv  *handler.Server
	gate *readGate
}

// New returns the GraphQL handler.
func New(opts Options) *Handler {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxDepth <= 0 {
		opts.MaxDepth = DefaultMaxDepth
	}
	if opts.MaxComplexity <= 0 {
		opts.MaxComplexity = DefaultMaxComplexity
	}
	if opts.MaxDestinations <= 0 {
		opts.MaxDestinations = 50
	}
	if opts.MaxConcurrentPerUser == 0 {
		opts.MaxConcurrentPerUser = DefaultMaxConcurrentPerUser
	}
	if opts.MaxConcurrent == 0 {
		opts.MaxConcurrent = max(runtime.GOMAXPROCS(0)/2, 1)
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	r := &Resolver{svc: opts.Service, catalog: opts.Catalog, log: opts.Logger}
	srv := handler.New(exec.NewExecutableSchema(exec.Config{Resolvers: r}))
	srv.AddTransport(transport.POST{})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	srv.Use(extension.Introspection{})
	srv.Use(depthLimit{max: opts.MaxDepth})
	srv.Use(costLimit{max: opts.MaxComplexity, pages: pageSizes(opts.MaxDestinations)})
	h := &Handler{opts: opts, srv: srv, gate: newReadGate(opts.MaxConcurrentPerUser, opts.MaxConcurrent, maxWaitingPerUser)}
	// One user runs a few reads at a time, the server a few in all, each for a bounded time: a
	// user's parallel queries cannot take the server's CPU, memory and database from everyone
	// else, and reads leave CPU to ingest.
	srv.Use(readLimit{gate: h.gate, wait: opts.RequestTimeout})
	srv.Use(timeLimit{d: opts.RequestTimeout})
	srv.SetRecoverFunc(func(ctx context.Context, v any) error {
		opts.Logger.Error("graphql: panic in a resolver", "panic", fmt.Sprint(v))
		return gqlErr(ctx, "Internal server error", codeUnavailable)
	})
	return h
}

// errorResponse writes a GraphQL response with only errors, for requests refused before
// execution.
func errorResponse(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]any{{"message": msg, "extensions": map[string]string{"code": code}}}})
}

// ServeHTTP authenticates the request, bounds its body and runs it.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		errorResponse(w, http.StatusMethodNotAllowed, "method_not_allowed", "Use POST with a JSON body {\"query\", \"variables\", \"operationName\"}; GraphiQL is at /-/graphql-explorer")
		return
	}
	raw := r.Header.Get("PRIVATE-TOKEN")
	if raw == "" {
		if v := r.Header.Get("Authorization"); len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
			raw = v[7:]
		}
	}
	var p *auth.Principal
	if raw != "" {
		var err error
		p, err = h.opts.Auth.Authenticate(r.Context(), raw)
		switch {
		case errors.Is(err, auth.ErrUnauthenticated):
			errorResponse(w, http.StatusUnauthorized, "unauthorized", "Invalid token")
			return
		case err != nil:
			h.opts.Logger.Error("graphql: authentication unavailable", "err", err)
			w.Header().Set("Retry-After", "1")
			errorResponse(w, http.StatusServiceUnavailable, codeUnavailable, "The database cannot be reached right now; retry")
			return
		}
	}
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		errorResponse(w, http.StatusRequestEntityTooLarge, "request_too_large", fmt.Sprintf("The request body is larger than %d bytes", h.opts.MaxBodyBytes))
		return
	case err != nil:
		errorResponse(w, http.StatusBadRequest, "unreadable_body", "The request body could not be read")
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))

	h.srv.ServeHTTP(w, r.WithContext(withActor(r.Context(), streamconfig.Actor{Principal: p, IP: ip, Seen: streamconfig.NewSeen()})))
}

// readLimit admits reads (query operations) through the gate; a user without a token is counted
// by address. A read that cannot have its turn is answered, without running, with an error of
// code too_many_requests. Changes have their own rate limit (streamconfig).
type readLimit struct {
	gate *readGate
	wait time.Duration
}

func (readLimit) ExtensionName() string                  { return "ReadLimit" }
func (readLimit) Validate(gqlgen.ExecutableSchema) error { return nil }

func (l readLimit) InterceptResponse(ctx context.Context, next gqlgen.ResponseHandler) *gqlgen.Response {
	if !gqlgen.HasOperationContext(ctx) {
		return next(ctx)
	}
	if op := gqlgen.GetOperationContext(ctx).Operation; op == nil || op.Operation != ast.Query {
		return next(ctx)
	}
	a := actor(ctx)
	key := "ip:" + a.IP
	if a.Principal != nil {
		key = "u:" + strconv.FormatInt(a.Principal.User.ID, 10)
	}
	wctx, cancel := context.WithTimeout(ctx, l.wait)
	release, err := l.gate.enter(wctx, key)
	cancel()
	if err != nil {
		msg := fmt.Sprintf("Too many GraphQL reads of this user are running or waiting (at most %d at once); retry when one has finished", l.gate.perUser)
		if !errors.Is(err, errQueueFull) {
			msg = fmt.Sprintf("This read waited %s for its turn (at most %d of a user's run at once); retry later", l.wait, l.gate.perUser)
		}
		return &gqlgen.Response{Errors: gqlerror.List{gqlErr(ctx, msg, codeTooManyRequests)}}
	}
	defer release()
	return next(ctx)
}

// timeLimit bounds the time one operation runs: its resolvers' context ends after d, so what
// reads or writes the store stops (with an error of code timeout, Resolver.fail).
type timeLimit struct{ d time.Duration }

func (timeLimit) ExtensionName() string                  { return "TimeLimit" }
func (timeLimit) Validate(gqlgen.ExecutableSchema) error { return nil }

func (l timeLimit) InterceptResponse(ctx context.Context, next gqlgen.ResponseHandler) *gqlgen.Response {
	ctx, cancel := context.WithTimeout(ctx, l.d)
	defer cancel()
	return next(ctx)
}

// maxWaitingPerUser is how many reads of one user may wait for their turn; more are refused at
// once. Waiting costs a goroutine and no CPU, so a client that sends many reads at once is
// slowed down to what it is allowed instead of spinning on refusals.
const maxWaitingPerUser = 1024

// errQueueFull: a user has maxWaitingPerUser reads waiting already.
var errQueueFull = errors.New("graphql: too many reads waiting")

// readGate lets each key (a user) run at most perUser reads at once and all keys at most all;
// a read over a bound waits its turn, first come first served.
type readGate struct {
	perUser, maxWaiting int
	all                 chan struct{} // nil: no bound

	mu    sync.Mutex
	users map[string]*userReads
}

// userReads is one key's reads: slots holds a token per running read.
type userReads struct {
	slots chan struct{} // nil: no bound
	refs  int           // running and waiting: the entry is dropped at 0
	wait  int
}

func newReadGate(perUser, all, maxWaiting int) *readGate {
	g := &readGate{perUser: perUser, maxWaiting: maxWaiting, users: map[string]*userReads{}}
	if all > 0 {
		g.all = make(chan struct{}, all)
	}
	return g
}

// enter waits until key may run one more read, or ctx ends, or too many wait already; release
// ends the read.
func (g *readGate) enter(ctx context.Context, key string) (release func(), err error) {
	g.mu.Lock()
	u := g.users[key]
	if u == nil {
		u = &userReads{}
		if g.perUser >= 0 {
			u.slots = make(chan struct{}, max(g.perUser, 1))
		}
		g.users[key] = u
	}
	if u.wait >= g.maxWaiting {
		g.mu.Unlock()
		return nil, errQueueFull
	}
	u.refs++
	u.wait++
	g.mu.Unlock()
	err = take(ctx, u.slots)
	if err == nil {
		if err = take(ctx, g.all); err != nil {
			give(u.slots)
		}
	}
	g.mu.Lock()
	u.wait--
	g.mu.Unlock()
	if err != nil {
		g.done(key, u)
		return nil, err
	}
	return func() {
		give(g.all)
		give(u.slots)
		g.done(key, u)
	}, nil
}

// waiting reports how many reads of key wait for their turn.
func (g *readGate) waiting(key string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if u := g.users[key]; u != nil {
		return u.wait
	}
	return 0
}

func (g *readGate) done(key string, u *userReads) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if u.refs--; u.refs == 0 {
		delete(g.users, key)
	}
}

// take takes a token of sem (nil: no bound) unless ctx ends first.
func take(ctx context.Context, sem chan struct{}) error {
	if sem == nil {
		return nil
	}
	select {
	case sem <- struct{}{}:
		return nil
	default:
	}
	select {
	case sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// give returns a token to sem.
func give(sem chan struct{}) {
	if sem != nil {
		<-sem
	}
}

// depthLimit refuses operations whose selections nest deeper than max, counting through
// fragments. Complexity alone does not stop a deep, narrow query.
type depthLimit struct{ max int }

func (depthLimit) ExtensionName() string                  { return "DepthLimit" }
func (depthLimit) Validate(gqlgen.ExecutableSchema) error { return nil }

func (d depthLimit) MutateOperationContext(ctx context.Context, oc *gqlgen.OperationContext) *gqlerror.Error {
	op := oc.Doc.Operations.ForName(oc.OperationName)
	if op == nil {
		return nil
	}
	if depth := selectionDepth(op.SelectionSet, 0, d.max); depth > d.max {
		// HTTP 200 with the error, as GitLab answers an over-deep or over-complex query.
		return &gqlerror.Error{Message: fmt.Sprintf("Query has depth of %d, which exceeds max depth of %d", depth, d.max),
			Extensions: map[string]any{"code": "max_depth_exceeded"}}
	}
	return nil
}

// selectionDepth returns the depth of set below depth, stopping once it passes limit (the
// parser has rejected fragment cycles, but a wide fragment reused at every level could still
// make a full walk expensive).
func selectionDepth(set ast.SelectionSet, depth, limit int) int {
	deepest := depth
	for _, s := range set {
		if deepest > limit {
			break
		}
		var d int
		switch s := s.(type) {
		case *ast.Field:
			if len(s.SelectionSet) == 0 {
				d = depth + 1
			} else {
				d = selectionDepth(s.SelectionSet, depth+1, limit)
			}
		case *ast.InlineFragment:
			d = selectionDepth(s.SelectionSet, depth, limit)
		case *ast.FragmentSpread:
			if s.Definition != nil {
				d = selectionDepth(s.Definition.SelectionSet, depth, limit)
			}
		}
		deepest = max(deepest, d)
	}
	return deepest
}

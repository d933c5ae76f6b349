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
	"strings"

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
	// MaxComplexity bounds an operation's complexity (one per field). Default 500.
	MaxComplexity int
}

// Defaults of Options.
const (
	DefaultMaxBodyBytes  = 256 << 10
	DefaultMaxDepth      = 15
	DefaultMaxComplexity = 500
)

// Handler serves POST /api/graphql.
type Handler struct {
	opts Options
	srv  *handler.Server
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
	r := &Resolver{svc: opts.Service, catalog: opts.Catalog, log: opts.Logger}
	srv := handler.New(exec.NewExecutableSchema(exec.Config{Resolvers: r}))
	srv.AddTransport(transport.POST{})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	srv.Use(extension.Introspection{})
	srv.Use(depthLimit{max: opts.MaxDepth})
	srv.Use(extension.FixedComplexityLimit(opts.MaxComplexity))
	srv.SetRecoverFunc(func(ctx context.Context, v any) error {
		opts.Logger.Error("graphql: panic in a resolver", "panic", fmt.Sprint(v))
		return gqlErr(ctx, "Internal server error", codeUnavailable)
	})
	return &Handler{opts: opts, srv: srv}
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

	raw := r.Header.Get("PRIVATE-TOKEN")
	if raw == "" {
		if v := r.Header.Get("Authorization"); len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
			raw = v[7:]
		}
	}
	var p *auth.Principal
	if raw != "" {
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
	h.srv.ServeHTTP(w, r.WithContext(withActor(r.Context(), streamconfig.Actor{Principal: p, IP: ip})))
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

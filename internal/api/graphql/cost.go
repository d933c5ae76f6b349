package graphql

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	gqlgen "github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// costLimit refuses, before anything runs, an operation whose complexity is over max. The
// complexity counts what the operation can make the server produce, as GitLab's GraphQL
// (graphql-ruby) counts it: every field is 1, and a field that returns a page of items — one
// with a first or last argument — multiplies what is selected of each item by the page size
// (first or last, or the field's default, never more than the field can return). A
// connection's count and pageInfo are counted once. So 240 aliases of
// deliveryAttempts(first: 100) cost 240 × (1 + 100 × the fields of an attempt), not 240 × 7.
type costLimit struct {
	max int
	// pages says, per field name, the page size when first and last are absent and the most
	// items the field can return; fields not listed: defaultPage, maxPageSize.
	pages map[string]pageBounds
}

type pageBounds struct{ def, max int }

// maxHeaders is GitLab's limit of custom headers per destination: destination.MaxHeaders,
// which this transport may not import. Keep them equal.
const maxHeaders = 20

// pageSizes are the page bounds of the fields that return pages: a list of destinations holds
// at most maxDestinations, of headers at most 20; delivery attempts and dead letters come 50 to
// a page unless first says otherwise.
func pageSizes(maxDestinations int) map[string]pageBounds {
	dests := pageBounds{def: min(maxPageSize, maxDestinations), max: min(maxPageSize, maxDestinations)}
	pages := map[string]pageBounds{
		"deliveryAttempts": {def: defaultPageLimit, max: maxPageSize},
		"deadLetters":      {def: defaultPageLimit, max: maxPageSize},
		"headers":          {def: maxHeaders, max: maxHeaders},
	}
	for _, f := range []string{"externalAuditEventStreamingDestinations", "externalAuditEventDestinations", "googleCloudLoggingConfigurations",
		"amazonS3Configurations", "auditEventsInstanceStreamingDestinations", "instanceExternalAuditEventDestinations",
		"instanceGoogleCloudLoggingConfigurations", "auditEventsInstanceAmazonS3Configurations"} {
		pages[f] = dests
	}
	return pages
}

func (costLimit) ExtensionName() string                  { return "CostLimit" }
func (costLimit) Validate(gqlgen.ExecutableSchema) error { return nil }

func (c costLimit) MutateOperationContext(_ context.Context, oc *gqlgen.OperationContext) *gqlerror.Error {
	op := oc.Doc.Operations.ForName(oc.OperationName)
	if op == nil {
		return nil
	}
	w := costWalk{limit: c, vars: oc.Variables, fragments: map[*ast.FragmentDefinition]int{}}
	if cost := w.set(op.SelectionSet); cost > c.max {
		// HTTP 200 with the error, as GitLab answers an over-complex query.
		return &gqlerror.Error{Message: fmt.Sprintf("Query has complexity of %d, which exceeds the limit of %d: ask for fewer fields, "+
			"fewer aliases or smaller pages (first), which multiply what is selected of each item", cost, c.max),
			Extensions: map[string]any{"code": "max_complexity_exceeded"}}
	}
	return nil
}

// costCap bounds the arithmetic: costs saturate here, far above any limit.
const costCap = 1 << 40

type costWalk struct {
	limit     costLimit
	vars      map[string]any
	fragments map[*ast.FragmentDefinition]int // the cost of each fragment's selection, once
}

// set is the cost of a selection set: the sum of its selections (fragments for other types
// included, which can only overcount).
func (w *costWalk) set(set ast.SelectionSet) int {
	total := 0
	for _, s := range set {
		var c int
		switch s := s.(type) {
		case *ast.Field:
			c = w.field(s)
		case *ast.InlineFragment:
			c = w.set(s.SelectionSet)
		case *ast.FragmentSpread:
			if s.Definition == nil {
				continue
			}
			var ok bool
			if c, ok = w.fragments[s.Definition]; !ok {
				c = w.set(s.Definition.SelectionSet)
				w.fragments[s.Definition] = c
			}
		}
		total = min(total+c, costCap)
	}
	return total
}

func (w *costWalk) field(f *ast.Field) int {
	n, paged := w.pageSize(f)
	if !paged {
		return min(1+w.set(f.SelectionSet), costCap)
	}
	if f.Definition != nil && strings.HasSuffix(f.Definition.Type.Name(), "Connection") {
		// A connection: count and pageInfo once, nodes and edges once per item.
		var meta, items ast.SelectionSet
		for _, s := range f.SelectionSet {
			if sf, ok := s.(*ast.Field); ok && (sf.Name == "count" || sf.Name == "pageInfo" || sf.Name == "__typename") {
				meta = append(meta, s)
			} else {
				items = append(items, s)
			}
		}
		return min(1+w.set(meta)+mul(w.set(items), n), costCap)
	}
	return min(1+mul(w.set(f.SelectionSet), n), costCap)
}

func mul(a, b int) int {
	if a > 0 && b > costCap/a {
		return costCap
	}
	return a * b
}

// pageSize returns how many items f can return, and whether it returns a page at all (has a
// first or last argument).
func (w *costWalk) pageSize(f *ast.Field) (int, bool) {
	if f.Definition == nil || (f.Definition.Arguments.ForName("first") == nil && f.Definition.Arguments.ForName("last") == nil) {
		return 0, false
	}
	b, ok := w.limit.pages[f.Name]
	if !ok {
		b = pageBounds{def: maxPageSize, max: maxPageSize}
	}
	n := -1
	args := f.ArgumentMap(w.vars)
	for _, name := range []string{"first", "last"} {
		if v, ok := toInt(args[name]); ok && (n < 0 || v < n) {
			n = max(v, 0)
		}
	}
	if n < 0 {
		n = b.def
	}
	return min(n, b.max), true
}

// toInt reads an Int argument: a literal (int64) or a variable (json.Number, or a Go number).
func toInt(v any) (int, bool) {
	switch v := v.(type) {
	case int:
		return v, true
	case int32:
		return int(v), true
	case int64:
		return int(min(max(v, -costCap), costCap)), true
	case float64:
		return int(min(max(v, -costCap), costCap)), true
	case json.Number:
		n, err := v.Int64()
		return int(min(max(n, -costCap), costCap)), err == nil
	}
	return 0, false
}

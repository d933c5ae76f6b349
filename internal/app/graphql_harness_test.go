package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/app"
)

// gqlResult is one GraphQL response, with its HTTP status.
type gqlResult struct {
	Status int
	Data   map[string]any
	Errors []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	}
	Raw string
}

// messages lists the top-level error messages.
func (r gqlResult) messages() []string {
	var out []string
	for _, e := range r.Errors {
		out = append(out, e.Message)
	}
	return out
}

// gql sends one GraphQL request as a plain HTTP POST.
func (s *server) gql(token, query string, vars map[string]any) gqlResult {
	s.t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	require.NoError(s.t, err)
	status, b, _ := s.do(http.MethodPost, "/api/graphql", token, "application/json", body)
	res := gqlResult{Status: status, Raw: string(b)}
	require.NoError(s.t, json.Unmarshal(b, &res), "response: %s", b)
	return res
}

// gqlOK sends a request that must succeed without top-level errors and returns data.
func (s *server) gqlOK(token, query string, vars map[string]any) map[string]any {
	s.t.Helper()
	r := s.gql(token, query, vars)
	require.Equal(s.t, http.StatusOK, r.Status, r.Raw)
	require.Empty(s.t, r.Errors, r.Raw)
	return r.Data
}

// mutate runs a mutation root field that must succeed with an empty errors list and returns
// its payload.
func (s *server) mutate(token, field, query string, vars map[string]any) map[string]any {
	s.t.Helper()
	data := s.gqlOK(token, query, vars)
	p, ok := data[field].(map[string]any)
	require.True(s.t, ok, "payload %s missing: %v", field, data)
	require.Empty(s.t, p["errors"], "payload errors: %v", p["errors"])
	return p
}

// dig walks nested maps (and list indexes written as numbers).
func dig(v any, path ...string) any {
	for _, p := range path {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			var i int
			if _, err := fmt.Sscan(p, &i); err != nil || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

// noLimits lifts the mutation rate limit, for tests that make many changes.
func noLimits(c *app.Config) { c.ConfigMutationsPerMinute = 0 }

// createGroupDestination creates a destination through the unified API and returns its gid.
func (s *server) createGroupDestination(token, group, category string, config map[string]any, secret string) string {
	s.t.Helper()
	vars := map[string]any{"g": group, "c": category, "cfg": config}
	q := `mutation($g: ID!, $c: String!, $cfg: JSON!, $s: String) { groupAuditEventStreamingDestinationsCreate(input: {groupPath: $g, category: $c, config: $cfg, secretToken: $s}) { errors externalAuditEventDestination { id } } }`
	if secret != "" {
		vars["s"] = secret
	}
	p := s.mutate(token, "groupAuditEventStreamingDestinationsCreate", q, vars)
	id, _ := dig(p, "externalAuditEventDestination", "id").(string)
	require.True(s.t, strings.HasPrefix(id, "gid://gitlab/AuditEvents::Group::ExternalStreamingDestination/"), id)
	return id
}

// createInstanceDestination creates an instance destination and returns its gid.
func (s *server) createInstanceDestination(category string, config map[string]any, secret string) string {
	s.t.Helper()
	vars := map[string]any{"c": category, "cfg": config}
	if secret != "" {
		vars["s"] = secret
	}
	q := `mutation($c: String!, $cfg: JSON!, $s: String) { instanceAuditEventStreamingDestinationsCreate(input: {category: $c, config: $cfg, secretToken: $s}) { errors externalAuditEventDestination { id } } }`
	p := s.mutate(s.admin, "instanceAuditEventStreamingDestinationsCreate", q, vars)
	id, _ := dig(p, "externalAuditEventDestination", "id").(string)
	require.True(s.t, strings.HasPrefix(id, "gid://gitlab/AuditEvents::Instance::ExternalStreamingDestination/"), id)
	return id
}

// httpConfig is a valid http config.
func httpConfig(url string) map[string]any { return map[string]any{"url": url} }

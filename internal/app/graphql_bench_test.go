package app_test

import (
	"fmt"
	"testing"
)

// BenchmarkGraphQLListDestinations measures what an owner's list of a group's streaming
// destinations costs end to end (HTTP, auth, store, opening every sealed secret, encoding):
// 50 http destinations (the default cap), each with 5 headers and 10 event-type filters.
//
//	go test -run '^$' -bench BenchmarkGraphQL -benchtime 2s ./internal/app/
func BenchmarkGraphQLListDestinations(b *testing.B) {
	s := start(b, "sqlite", noLimits)
	mkGroup(b, s, "org", 101, 0)
	types := []any{"user_created", "member_created", "user_blocked", "user_activate", "user_destroyed",
		"user_deactivate", "member_updated", "member_destroyed", "group_created", "project_created"}
	for i := range 50 {
		hs := map[string]any{}
		for h := range 5 {
			hs[fmt.Sprintf("X-H%d", h)] = map[string]any{"value": "value", "active": true}
		}
		id := s.createGroupDestination(s.admin, "org", "http", map[string]any{"url": fmt.Sprintf("https://receiver.example/%d", i), "headers": hs}, "")
		s.mutate(s.admin, "auditEventsGroupDestinationEventsAdd",
			`mutation($d: AuditEventsGroupExternalStreamingDestinationID!, $t: [String!]!) { auditEventsGroupDestinationEventsAdd(input: {destinationId: $d, eventTypeFilters: $t}) { errors } }`,
			map[string]any{"d": id, "t": types})
	}
	q := `{ group(fullPath: "org") { externalAuditEventStreamingDestinations { nodes { id name category config secretToken active eventTypeFilters signingSecret namespaceFilters { id } } } } }`
	b.ResetTimer()
	for b.Loop() {
		data := s.gqlOK(s.admin, q, nil)
		if n := len(dig(data, "group", "externalAuditEventStreamingDestinations", "nodes").([]any)); n != 50 {
			b.Fatalf("%d destinations", n)
		}
	}
}

package app_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/app"
)

const destFields = `id name category config secretToken active eventTypeFilters denyEventTypeFilters categoryFilters denyCategoryFilters
	signingSecret previousSigningSecretExpiresAt namespaceFilters { id namespace { id fullPath } }`

// TestGraphQLUnifiedDestinations drives a group's and the instance's destinations through
// GitLab's unified API and our extensions, and reads them back through both APIs.
func TestGraphQLUnifiedDestinations(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := start(t, driver, noLimits)
		w := newWorld(t, s)
		owner := w.tokens["owner"]

		// Create: the secret token is generated, the name defaulted, the signing secret made.
		cfg := map[string]any{"url": "https://receiver.example/org", "headers": map[string]any{
			"X-Team": map[string]any{"value": "audit", "active": true}, "Authorization": map[string]any{"value": "Bearer abc", "active": false}}}
		p := s.mutate(owner, "groupAuditEventStreamingDestinationsCreate",
			`mutation($cfg: JSON!) { groupAuditEventStreamingDestinationsCreate(input: {groupPath: "org", category: "http", config: $cfg}) { errors externalAuditEventDestination { `+destFields+` } } }`,
			map[string]any{"cfg": cfg})
		d := p["externalAuditEventDestination"].(map[string]any)
		id := d["id"].(string)
		require.Equal(t, "gid://gitlab/AuditEvents::Group::ExternalStreamingDestination/1", id)
		require.True(t, strings.HasPrefix(d["name"].(string), "Destination_"), d["name"])
		require.Equal(t, "http", d["category"])
		require.Equal(t, map[string]any{"url": "https://receiver.example/org", "headers": map[string]any{
			"Authorization": map[string]any{"value": "Bearer abc", "active": false}, "X-Team": map[string]any{"value": "audit", "active": true}}}, d["config"])
		require.Len(t, d["secretToken"], 24)
		require.True(t, strings.HasPrefix(d["signingSecret"].(string), "whsec_"))
		require.Equal(t, true, d["active"])
		require.Equal(t, []any{}, d["eventTypeFilters"])
		require.Equal(t, []any{}, d["namespaceFilters"])

		// The list is the same object; the legacy API sees it as an HTTP destination.
		list := s.gqlOK(owner, `{ group(fullPath: "org") { externalAuditEventStreamingDestinations { count nodes { `+destFields+` } } } }`, nil)
		require.Equal(t, []any{d}, dig(list, "group", "externalAuditEventStreamingDestinations", "nodes"))
		legacy := s.gqlOK(owner, `{ group(fullPath: "org") { externalAuditEventDestinations { nodes { id destinationUrl verificationToken headers { nodes { id key value active } } } } } }`, nil)
		require.Equal(t, map[string]any{"id": "gid://gitlab/AuditEvents::ExternalAuditEventDestination/1", "destinationUrl": "https://receiver.example/org",
			"verificationToken": d["secretToken"], "headers": map[string]any{"nodes": []any{
				map[string]any{"id": "gid://gitlab/AuditEvents::Streaming::Header/1", "key": "Authorization", "value": "Bearer abc", "active": false},
				map[string]any{"id": "gid://gitlab/AuditEvents::Streaming::Header/2", "key": "X-Team", "value": "audit", "active": true}}}},
			dig(legacy, "group", "externalAuditEventDestinations", "nodes", "0"))

		// Update: a header that keeps its name keeps its id; active false pauses.
		cfg["headers"] = map[string]any{"X-Team": map[string]any{"value": "security", "active": true}, "X-New": map[string]any{"value": "1", "active": true}}
		p = s.mutate(owner, "groupAuditEventStreamingDestinationsUpdate",
			`mutation($id: AuditEventsGroupExternalStreamingDestinationID!, $cfg: JSON) { groupAuditEventStreamingDestinationsUpdate(input: {id: $id, config: $cfg, name: "siem", active: false}) { errors externalAuditEventDestination { `+destFields+` } } }`,
			map[string]any{"id": id, "cfg": cfg})
		require.Equal(t, "siem", dig(p, "externalAuditEventDestination", "name"))
		require.Equal(t, false, dig(p, "externalAuditEventDestination", "active"))
		require.Equal(t, d["secretToken"], dig(p, "externalAuditEventDestination", "secretToken"), "the token stays unless given")
		legacy = s.gqlOK(owner, `{ group(fullPath: "org") { externalAuditEventDestinations { nodes { headers { nodes { id key } } } } } }`, nil)
		require.Equal(t, []any{map[string]any{"id": "gid://gitlab/AuditEvents::Streaming::Header/3", "key": "X-New"}, map[string]any{"id": "gid://gitlab/AuditEvents::Streaming::Header/2", "key": "X-Team"}},
			dig(legacy, "group", "externalAuditEventDestinations", "nodes", "0", "headers", "nodes"))

		// Event type filters (GitLab's), deny list (GitLab's), categories (ours).
		p = s.mutate(owner, "auditEventsGroupDestinationEventsAdd",
			`mutation($id: AuditEventsGroupExternalStreamingDestinationID!) { auditEventsGroupDestinationEventsAdd(input: {destinationId: $id, eventTypeFilters: ["user_created", "member_created"]}) { errors eventTypeFilters } }`,
			map[string]any{"id": id})
		require.Equal(t, []any{"user_created", "member_created"}, p["eventTypeFilters"])
		s.mutate(owner, "auditEventsGroupDestinationEventsDelete",
			`mutation($id: AuditEventsGroupExternalStreamingDestinationID!) { auditEventsGroupDestinationEventsDelete(input: {destinationId: $id, eventTypeFilters: ["user_created"]}) { errors } }`,
			map[string]any{"id": id})
		p = s.mutate(owner, "auditEventsGroupDestinationDenylistEventsAdd",
			`mutation($id: AuditEventsGroupExternalStreamingDestinationID!) { auditEventsGroupDestinationDenylistEventsAdd(input: {destinationId: $id, eventTypeFilters: ["repository_git_operation"]}) { errors eventTypeFilters } }`,
			map[string]any{"id": id})
		require.Equal(t, []any{"repository_git_operation"}, p["eventTypeFilters"])
		p = s.mutate(owner, "auditEventStreamingDestinationFiltersSet",
			`mutation($id: ID!) { auditEventStreamingDestinationFiltersSet(input: {destinationId: $id, categoryFilters: ["audit_events"], denyCategoryFilters: []}) { errors eventTypeFilters denyEventTypeFilters categoryFilters denyCategoryFilters } }`,
			map[string]any{"id": id})
		require.Equal(t, map[string]any{"errors": []any{}, "eventTypeFilters": []any{"member_created"}, "denyEventTypeFilters": []any{"repository_git_operation"},
			"categoryFilters": []any{"audit_events"}, "denyCategoryFilters": []any{}}, p)

		// Namespace filters: a subgroup and a project of the group.
		nsq := `mutation($id: AuditEventsGroupExternalStreamingDestinationID!, $p: String) { auditEventsGroupDestinationNamespaceFilterCreate(input: {destinationId: $id, namespacePath: $p}) { errors namespaceFilter { id namespace { id fullPath } externalStreamingDestination { id } } } }`
		p = s.mutate(owner, "auditEventsGroupDestinationNamespaceFilterCreate", nsq, map[string]any{"id": id, "p": "org/sub"})
		require.Equal(t, map[string]any{"id": "gid://gitlab/AuditEvents::Group::NamespaceFilter/1", "namespace": map[string]any{"id": "gid://gitlab/Group/102", "fullPath": "org/sub"},
			"externalStreamingDestination": map[string]any{"id": id}}, p["namespaceFilter"])
		p = s.mutate(owner, "auditEventsGroupDestinationNamespaceFilterCreate", nsq, map[string]any{"id": id, "p": "org/sub/app"})
		require.Equal(t, "gid://gitlab/Project/201", dig(p, "namespaceFilter", "namespace", "id"))
		s.mutate(owner, "auditEventsGroupDestinationNamespaceFilterDelete",
			`mutation { auditEventsGroupDestinationNamespaceFilterDelete(input: {namespaceFilterId: "gid://gitlab/AuditEvents::Group::NamespaceFilter/1"}) { errors } }`, nil)

		// Signing secret rotation keeps the old secret valid for the grace period.
		p = s.mutate(owner, "auditEventStreamingDestinationSigningSecretRotate",
			`mutation($id: ID!) { auditEventStreamingDestinationSigningSecretRotate(input: {destinationId: $id, gracePeriodSeconds: 3600}) { errors signingSecret previousSigningSecretExpiresAt } }`,
			map[string]any{"id": id})
		require.NotEqual(t, d["signingSecret"], p["signingSecret"])
		require.NotEmpty(t, p["previousSigningSecretExpiresAt"])

		got := s.gqlOK(owner, `{ group(fullPath: "org") { externalAuditEventStreamingDestinations { nodes { `+destFields+` } } } }`, nil)
		node := dig(got, "group", "externalAuditEventStreamingDestinations", "nodes", "0").(map[string]any)
		require.Equal(t, []any{map[string]any{"id": "gid://gitlab/AuditEvents::Group::NamespaceFilter/2", "namespace": map[string]any{"id": "gid://gitlab/Project/201", "fullPath": "org/sub/app"}}}, node["namespaceFilters"])
		require.Equal(t, p["signingSecret"], node["signingSecret"])

		// Instance: an aws destination never shows its secret.
		iid := s.createInstanceDestination("aws", map[string]any{"accessKeyXid": "AKIAIOSFODNN7EXAMPLE", "bucketName": "audit-bucket", "awsRegion": " us-east-1 "}, "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY")
		inst := s.gqlOK(s.admin, `{ auditEventsInstanceStreamingDestinations { nodes { `+destFields+` } } auditEventsInstanceAmazonS3Configurations { nodes { id accessKeyXid awsRegion bucketName } } }`, nil)
		in := dig(inst, "auditEventsInstanceStreamingDestinations", "nodes", "0").(map[string]any)
		require.Equal(t, iid, in["id"])
		require.Equal(t, "", in["secretToken"], "a cloud credential is never shown")
		require.Nil(t, in["signingSecret"])
		require.Equal(t, map[string]any{"accessKeyXid": "AKIAIOSFODNN7EXAMPLE", "awsRegion": "us-east-1", "bucketName": "audit-bucket"}, in["config"])
		require.Equal(t, "gid://gitlab/AuditEvents::Instance::AmazonS3Configuration/2", dig(inst, "auditEventsInstanceAmazonS3Configurations", "nodes", "0", "id"))
		require.NotContains(t, fmt.Sprint(inst), "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY")

		// Changing the category drops the old credential: an AWS key never becomes a token
		// that owners can read.
		p = s.mutate(s.admin, "instanceAuditEventStreamingDestinationsUpdate",
			`mutation($id: AuditEventsInstanceExternalStreamingDestinationID!) { instanceAuditEventStreamingDestinationsUpdate(input: {id: $id, category: "http", config: {url: "https://receiver.example/now-http"}}) { errors externalAuditEventDestination { category secretToken signingSecret } } }`,
			map[string]any{"id": iid})
		require.Equal(t, "http", dig(p, "externalAuditEventDestination", "category"))
		require.Len(t, dig(p, "externalAuditEventDestination", "secretToken"), 24)
		require.NotContains(t, fmt.Sprint(p), "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY")
		require.True(t, strings.HasPrefix(dig(p, "externalAuditEventDestination", "signingSecret").(string), "whsec_"))

		// Instance namespace filters may name any group.
		p = s.mutate(s.admin, "auditEventsInstanceDestinationNamespaceFilterCreate",
			`mutation($id: AuditEventsInstanceExternalStreamingDestinationID!) { auditEventsInstanceDestinationNamespaceFilterCreate(input: {destinationId: $id, namespacePath: "other"}) { errors namespaceFilter { id namespace { fullPath } } } }`,
			map[string]any{"id": iid})
		require.Equal(t, "other", dig(p, "namespaceFilter", "namespace", "fullPath"))

		// Delete: gone from both APIs; a second delete is not found.
		delQ := `mutation($id: AuditEventsGroupExternalStreamingDestinationID!) { groupAuditEventStreamingDestinationsDelete(input: {id: $id}) { errors } }`
		s.mutate(owner, "groupAuditEventStreamingDestinationsDelete", delQ, map[string]any{"id": id})
		got = s.gqlOK(owner, `{ group(fullPath: "org") { externalAuditEventStreamingDestinations { count } externalAuditEventDestinations { count } } }`, nil)
		require.Equal(t, map[string]any{"externalAuditEventStreamingDestinations": map[string]any{"count": float64(0)}, "externalAuditEventDestinations": map[string]any{"count": float64(0)}}, got["group"])
		r := s.gql(owner, delQ, map[string]any{"id": id})
		require.Equal(t, []string{"The resource that you are attempting to access does not exist or you don't have permission to perform this action"}, r.messages())
	})
}

// TestGraphQLValidation checks every validation rule: a clear entry in the payload's errors
// (HTTP 200, as GitLab does), and nothing changed.
func TestGraphQLValidation(t *testing.T) {
	s := start(t, "sqlite", noLimits, func(c *app.Config) { c.MaxDestinations = 3; c.MaxDestinationFilters = 4 })
	w := newWorld(t, s)
	owner := w.tokens["owner"]
	keep := s.createGroupDestination(owner, "org", "http", httpConfig("https://receiver.example/keep"), "")
	s.mutate(owner, "groupAuditEventStreamingDestinationsUpdate",
		`mutation($id: AuditEventsGroupExternalStreamingDestinationID!) { groupAuditEventStreamingDestinationsUpdate(input: {id: $id, name: "taken"}) { errors } }`, map[string]any{"id": keep})
	s.createGroupDestination(owner, "org", "gcp", map[string]any{"googleProjectIdName": "proj-one", "clientEmail": "a@b.c", "logIdName": "log"}, "YOUR_PRIVATE_KEY")

	headers := func(n int) map[string]any {
		hs := map[string]any{}
		for i := range n {
			hs[fmt.Sprintf("X-H%d", i)] = map[string]any{"value": "v", "active": true}
		}
		return hs
	}
	create := `mutation($g: ID!, $c: String!, $cfg: JSON!, $n: String, $s: String) { groupAuditEventStreamingDestinationsCreate(input: {groupPath: $g, category: $c, config: $cfg, name: $n, secretToken: $s}) { errors externalAuditEventDestination { id } } }`
	type tc struct {
		name, field, query string
		vars               map[string]any
		want               string // in the one error message
	}
	mk := func(name, category string, cfg map[string]any, secret, want string) tc {
		vars := map[string]any{"g": "org", "c": category, "cfg": cfg}
		if secret != "" {
			vars["s"] = secret
		}
		return tc{name, "groupAuditEventStreamingDestinationsCreate", create, vars, want}
	}
	long := func(n int) string { return strings.Repeat("a", n) }
	cases := []tc{
		mk("unknown category", "ftp", httpConfig("https://x.example"), "", "ftp"),
		mk("url missing", "http", map[string]any{}, "", "config.url"),
		mk("url too long", "http", httpConfig("https://x.example/"+long(240)), "", "255"),
		mk("url scheme", "http", httpConfig("ftp://x.example/"), "", "config.url"),
		mk("unknown config key", "http", map[string]any{"url": "https://x.example", "method": "PUT"}, "", "config.method"),
		mk("21 headers", "http", map[string]any{"url": "https://x.example", "headers": headers(21)}, "", "20"),
		mk("header name", "http", map[string]any{"url": "https://x.example", "headers": map[string]any{"Bad Name": map[string]any{"value": "v"}}}, "", "config.headers"),
		mk("header value too long", "http", map[string]any{"url": "https://x.example", "headers": map[string]any{"X-A": map[string]any{"value": long(256)}}}, "", "255"),
		mk("reserved header", "http", map[string]any{"url": "https://x.example", "headers": map[string]any{"X-Gitlab-Event-Streaming-Token": map[string]any{"value": "v"}}}, "", "X-Gitlab-Event-Streaming-Token"),
		mk("aws region", "aws", map[string]any{"accessKeyXid": "AKIAIOSFODNN7EXAMPLE", "bucketName": "b-1", "awsRegion": "US_EAST"}, "secret", "config.awsRegion"),
		mk("aws bucket", "aws", map[string]any{"accessKeyXid": "AKIAIOSFODNN7EXAMPLE", "bucketName": "Bad_Bucket", "awsRegion": "us-east-1"}, "secret", "config.bucketName"),
		mk("aws key id", "aws", map[string]any{"accessKeyXid": "short", "bucketName": "bucket", "awsRegion": "us-east-1"}, "secret", "config.accessKeyXid"),
		mk("aws secret missing", "aws", map[string]any{"accessKeyXid": "AKIAIOSFODNN7EXAMPLE", "bucketName": "bucket", "awsRegion": "us-east-1"}, "", "secretToken"),
		mk("gcp project id", "gcp", map[string]any{"googleProjectIdName": "1bad", "clientEmail": "a@b.c"}, "key", "config.googleProjectIdName"),
		mk("gcp json key file", "gcp", map[string]any{"googleProjectIdName": "proj-two", "clientEmail": "a@b.c"}, `{"type":"service_account"}`, "JSON key file"),
		mk("gcp pair taken", "gcp", map[string]any{"googleProjectIdName": "proj-one", "clientEmail": "x@b.c", "logIdName": "log"}, "key", "googleProjectIdName and logIdName"),
		mk("gcs bucket missing", "gcs", map[string]any{}, `{}`, "config.bucketName"),
		mk("splunk url", "splunk", map[string]any{"url": "splunk:8088"}, "token", "config.url"),
		mk("unknown format", "http", map[string]any{"url": "https://x.example", "format": "leef"}, "", "config.format: must be one of gitlab, ocsf, cef"),
		mk("format the category cannot carry", "syslog", map[string]any{"address": "siem.example:514", "format": "ocsf"}, "", `config.format: "ocsf" cannot be sent to a syslog destination (use one of gitlab, cef)`),
		{"name too long", "groupAuditEventStreamingDestinationsCreate", create, map[string]any{"g": "org", "c": "http", "cfg": httpConfig("https://x.example"), "n": long(73)}, "72"},
		{"name taken", "groupAuditEventStreamingDestinationsCreate", create, map[string]any{"g": "org", "c": "http", "cfg": httpConfig("https://x.example"), "n": "taken"}, "Name has already been taken"},
		{"subgroup", "groupAuditEventStreamingDestinationsCreate", create, map[string]any{"g": "org/sub", "c": "http", "cfg": httpConfig("https://x.example")}, "must not be a subgroup"},
		{"legacy token too short", "externalAuditEventDestinationCreate",
			`mutation { externalAuditEventDestinationCreate(input: {groupPath: "org", destinationUrl: "https://x.example/l", verificationToken: "fifteen-chars-x"}) { errors } }`, nil, "16"},
		{"legacy token too long", "externalAuditEventDestinationCreate",
			`mutation { externalAuditEventDestinationCreate(input: {groupPath: "org", destinationUrl: "https://x.example/l", verificationToken: "twenty-five-characters-xx"}) { errors } }`, nil, "24"},
		{"legacy url taken", "externalAuditEventDestinationCreate",
			`mutation { externalAuditEventDestinationCreate(input: {groupPath: "org", destinationUrl: "https://receiver.example/keep"}) { errors } }`, nil, "Destination url has already been taken"},
		{"unknown event type", "auditEventsGroupDestinationEventsAdd",
			`mutation($id: AuditEventsGroupExternalStreamingDestinationID!) { auditEventsGroupDestinationEventsAdd(input: {destinationId: $id, eventTypeFilters: ["no_such_type"]}) { errors } }`, map[string]any{"id": keep}, `eventTypeFilters: unknown event type "no_such_type"`},
		{"unknown category filter", "auditEventStreamingDestinationFiltersSet",
			`mutation($id: ID!) { auditEventStreamingDestinationFiltersSet(input: {destinationId: $id, categoryFilters: ["no_such_category"]}) { errors } }`, map[string]any{"id": keep}, `categoryFilters: unknown category "no_such_category"`},
		{"allowed and denied", "auditEventStreamingDestinationFiltersSet",
			`mutation($id: ID!) { auditEventStreamingDestinationFiltersSet(input: {destinationId: $id, eventTypeFilters: ["user_created"], denyEventTypeFilters: ["user_created"]}) { errors } }`, map[string]any{"id": keep}, "both allowed and denied"},
		{"too many filters", "auditEventsGroupDestinationEventsAdd",
			`mutation($id: AuditEventsGroupExternalStreamingDestinationID!) { auditEventsGroupDestinationEventsAdd(input: {destinationId: $id, eventTypeFilters: ["user_created", "member_created", "user_blocked", "user_deactivate", "user_destroyed"]}) { errors } }`, map[string]any{"id": keep}, "(4)"},
		{"remove a filter that is not there", "auditEventsGroupDestinationEventsDelete",
			`mutation($id: AuditEventsGroupExternalStreamingDestinationID!) { auditEventsGroupDestinationEventsDelete(input: {destinationId: $id, eventTypeFilters: ["user_created"]}) { errors } }`, map[string]any{"id": keep}, "Couldn't find event type filters"},
		{"namespace of another group", "auditEventsGroupDestinationNamespaceFilterCreate",
			`mutation($id: AuditEventsGroupExternalStreamingDestinationID!) { auditEventsGroupDestinationNamespaceFilterCreate(input: {destinationId: $id, namespacePath: "other"}) { errors } }`, map[string]any{"id": keep}, `no group or project "other" in group "org"`},
		{"namespace that does not exist", "auditEventsGroupDestinationNamespaceFilterCreate",
			`mutation($id: AuditEventsGroupExternalStreamingDestinationID!) { auditEventsGroupDestinationNamespaceFilterCreate(input: {destinationId: $id, namespacePath: "org/nope"}) { errors } }`, map[string]any{"id": keep}, `no group or project "org/nope" in group "org"`},
		{"legacy namespace filter needs one path", "auditEventsStreamingHttpNamespaceFiltersAdd",
			`mutation { auditEventsStreamingHttpNamespaceFiltersAdd(input: {destinationId: "gid://gitlab/AuditEvents::ExternalAuditEventDestination/1"}) { errors } }`, nil, "Exactly one of groupPath and projectPath"},
		{"rotate a non-http destination", "auditEventStreamingDestinationSigningSecretRotate",
			`mutation { auditEventStreamingDestinationSigningSecretRotate(input: {destinationId: "gid://gitlab/AuditEvents::Group::ExternalStreamingDestination/2"}) { errors } }`, nil, "Only http destinations"},
		{"grace period too long", "auditEventStreamingDestinationSigningSecretRotate",
			`mutation($id: ID!) { auditEventStreamingDestinationSigningSecretRotate(input: {destinationId: $id, gracePeriodSeconds: 604801}) { errors } }`, map[string]any{"id": keep}, "604800"},
		{"category change without config", "groupAuditEventStreamingDestinationsUpdate",
			`mutation($id: AuditEventsGroupExternalStreamingDestinationID!) { groupAuditEventStreamingDestinationsUpdate(input: {id: $id, category: "aws"}) { errors } }`, map[string]any{"id": keep}, "Config is required"},
	}
	before := s.gqlOK(s.admin, `{ group(fullPath: "org") { externalAuditEventStreamingDestinations { nodes { `+destFields+` } } } }`, nil)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := s.gql(owner, c.query, c.vars)
			require.Equal(t, http.StatusOK, r.Status, r.Raw)
			require.Empty(t, r.Errors, r.Raw)
			errs, _ := dig(r.Data, c.field, "errors").([]any)
			require.NotEmpty(t, errs, r.Raw)
			require.Contains(t, fmt.Sprint(errs), c.want)
		})
	}
	// The limit on destinations per group: the third is allowed, the fourth is not.
	s.createGroupDestination(owner, "org", "http", httpConfig("https://receiver.example/third"), "")
	r := s.gql(owner, create, map[string]any{"g": "org", "c": "http", "cfg": httpConfig("https://receiver.example/fourth")})
	require.Equal(t, []any{"Maximum number of streaming destinations (3) exceeded"}, dig(r.Data, "groupAuditEventStreamingDestinationsCreate", "errors"), r.Raw)
	s.mutate(owner, "groupAuditEventStreamingDestinationsDelete",
		`mutation { groupAuditEventStreamingDestinationsDelete(input: {id: "gid://gitlab/AuditEvents::Group::ExternalStreamingDestination/3"}) { errors } }`, nil)

	after := s.gqlOK(s.admin, `{ group(fullPath: "org") { externalAuditEventStreamingDestinations { nodes { `+destFields+` } } } }`, nil)
	require.Equal(t, before, after, "refused changes change nothing")
}

// TestGraphQLRequestLimits covers what is refused before a resolver runs: malformed GraphQL,
// over-deep and over-complex operations, oversized bodies, bad tokens, wrong methods; and the
// per-user rate limit on changes.
func TestGraphQLRequestLimits(t *testing.T) {
	s := start(t, "sqlite", func(c *app.Config) { c.ConfigMutationsPerMinute = 3 })
	w := newWorld(t, s)
	owner := w.tokens["owner"]

	r := s.gql(owner, `{ group(fullPath: "org") { id `, nil)
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, r.Raw)
	require.Contains(t, r.messages()[0], "Expected Name")

	r = s.gql(owner, `{ nope }`, nil)
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, r.Raw)
	require.Contains(t, r.messages()[0], `Cannot query field "nope" on type "Query"`)

	// The schema is cyclic (filter → destination → filters), so depth must be bounded.
	deep := "{ auditEventsInstanceStreamingDestinations { nodes {" + strings.Repeat(" namespaceFilters { externalStreamingDestination {", 7) +
		" id" + strings.Repeat(" } }", 7) + " } } }" // 17 levels
	r = s.gql(s.admin, deep, nil)
	require.Equal(t, http.StatusOK, r.Status, r.Raw) // GitLab answers limits with 200 and errors
	require.Nil(t, r.Data, r.Raw)
	require.Contains(t, r.messages()[0], "exceeds max depth of 15")

	var wide strings.Builder
	wide.WriteString("{")
	for i := range 5100 { // 2 each: 10,200
		fmt.Fprintf(&wide, " a%d: currentUser { id }", i)
	}
	wide.WriteString(" }")
	r = s.gql(s.admin, wide.String(), nil)
	require.Equal(t, http.StatusOK, r.Status)
	require.Nil(t, r.Data)
	require.Contains(t, r.messages()[0], "exceeds the limit of 10000")

	// The standard introspection query fits both limits.
	data := s.gqlOK(owner, introspectionQuery, nil)
	require.Equal(t, "Query", dig(data, "__schema", "queryType", "name"))

	r = s.gql(owner, `query($x: String) { currentUser { id } }`, map[string]any{"x": strings.Repeat("x", 300<<10)})
	require.Equal(t, http.StatusRequestEntityTooLarge, r.Status, r.Raw)
	require.Contains(t, r.messages()[0], "larger than")

	r = s.gql("ast-not-a-real-token-000000", `{ currentUser { id } }`, nil)
	require.Equal(t, http.StatusUnauthorized, r.Status, r.Raw)
	require.Equal(t, []string{"Invalid token"}, r.messages())

	data = s.gqlOK("", `{ currentUser { id } group(fullPath: "org") { id } }`, nil)
	require.Equal(t, map[string]any{"currentUser": nil, "group": nil}, data, "anonymous sees nothing")

	status, body, _ := s.do(http.MethodGet, "/api/graphql?query=%7BcurrentUser%7Bid%7D%7D", owner, "", nil)
	require.Equal(t, http.StatusMethodNotAllowed, status, string(body))

	// Rate limit: three changes a minute; the fourth is refused, reads still work.
	for i := range 3 {
		s.createGroupDestination(owner, "org", "http", httpConfig(fmt.Sprintf("https://receiver.example/%d", i)), "")
	}
	r = s.gql(owner, `mutation { groupAuditEventStreamingDestinationsCreate(input: {groupPath: "org", category: "http", config: {url: "https://receiver.example/4"}}) { errors } }`, nil)
	require.Equal(t, []string{"This endpoint has been requested too many times. Try again later."}, r.messages())
	require.Equal(t, "rate_limited", r.Errors[0].Extensions["code"])
	data = s.gqlOK(owner, `{ group(fullPath: "org") { externalAuditEventStreamingDestinations { count } } }`, nil)
	require.Equal(t, float64(3), dig(data, "group", "externalAuditEventStreamingDestinations", "count"))
	// Another user has a budget of their own.
	s.createGroupDestination(s.admin, "org", "http", httpConfig("https://receiver.example/admin"), "")
}

// introspectionQuery is the introspection query GraphiQL and graphql-js send.
const introspectionQuery = `query IntrospectionQuery {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } }
}`

// TestGraphQLConcurrentChanges: changes that read and rewrite one destination at the same time
// all land (each is retried when another got there first).
func TestGraphQLConcurrentChanges(t *testing.T) {
	s := start(t, "sqlite", noLimits)
	mkGroup(t, s, "org", 101, 0)
	id := s.createGroupDestination(s.admin, "org", "http", httpConfig("https://receiver.example/c"), "")
	legacyID := strings.Replace(id, "Group::ExternalStreamingDestination", "ExternalAuditEventDestination", 1)
	types := []string{"user_created", "member_created", "user_blocked", "user_activate", "user_destroyed"}
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i < 5 {
				s.mutate(s.admin, "auditEventsStreamingHeadersCreate",
					`mutation($d: AuditEventsExternalAuditEventDestinationID!, $k: String!) { auditEventsStreamingHeadersCreate(input: {destinationId: $d, key: $k, value: "v"}) { errors } }`,
					map[string]any{"d": legacyID, "k": fmt.Sprintf("X-H%d", i)})
				return
			}
			s.mutate(s.admin, "auditEventsGroupDestinationEventsAdd",
				`mutation($d: AuditEventsGroupExternalStreamingDestinationID!, $t: String!) { auditEventsGroupDestinationEventsAdd(input: {destinationId: $d, eventTypeFilters: [$t]}) { errors } }`,
				map[string]any{"d": id, "t": types[i-5]})
		}()
	}
	wg.Wait()
	data := s.gqlOK(s.admin, `{ group(fullPath: "org") { externalAuditEventStreamingDestinations { nodes { config eventTypeFilters } } } }`, nil)
	node := dig(data, "group", "externalAuditEventStreamingDestinations", "nodes", "0")
	require.Len(t, dig(node, "config", "headers"), 5, "every header landed: %v", node)
	require.ElementsMatch(t, types, dig(node, "eventTypeFilters"), "every filter landed")
}

// GraphQL costs what it reads (issue 13, item 4): a page multiplies what is selected of each
// item, so one owner's 240 aliases of deliveryAttempts(first: 100) — and 60 of them, which
// counting one point per field let through (6,000 attempts read for a cost of 423) — are
// refused before anything runs, with a clear error; one page of them runs.
func TestGraphQLCostCountsPages(t *testing.T) {
	s := start(t, "sqlite", noLimits)
	w := newWorld(t, s)
	owner := w.tokens["owner"]
	s.createGroupDestination(owner, "org", "http", httpConfig("https://receiver.example/a"), "")
	attempts := "deliveryAttempts(first: 100) { at success count statusCode error durationMs }"
	for _, aliases := range []int{60, 240} {
		var q strings.Builder
		q.WriteString(`{ group(fullPath: "org") { externalAuditEventStreamingDestinations { nodes {`)
		for i := range aliases {
			fmt.Fprintf(&q, " a%d: %s", i, attempts)
		}
		q.WriteString(" } } } }")
		r := s.gql(owner, q.String(), nil)
		require.Equal(t, http.StatusOK, r.Status)
		require.Nil(t, r.Data, "%d aliases ran", aliases)
		require.Len(t, r.messages(), 1, r.Raw)
		require.Contains(t, r.messages()[0], "Query has complexity of")
		require.Contains(t, r.messages()[0], "exceeds the limit of 10000")
		require.Contains(t, r.messages()[0], "smaller pages (first)")
		require.Contains(t, r.Raw, `"max_complexity_exceeded"`)
	}

	data := s.gqlOK(owner, `{ group(fullPath: "org") { externalAuditEventStreamingDestinations(first: 5) { nodes { `+attempts+` } } } }`, nil)
	require.Len(t, dig(data, "group", "externalAuditEventStreamingDestinations", "nodes").([]any), 1)
}

// A GraphQL request runs for a bounded time (--graphql-timeout): past it, what reads the store
// stops with an error of code timeout.
func TestGraphQLRequestTimeLimit(t *testing.T) {
	s := start(t, "sqlite", noLimits, func(c *app.Config) { c.GraphQLTimeout = time.Nanosecond })
	r := s.gql(s.admin, `{ auditEventsInstanceStreamingDestinations { nodes { id } } }`, nil)
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	require.NotEmpty(t, r.messages(), r.Raw)
	require.Contains(t, r.Raw, `"code":"timeout"`)
	require.Contains(t, r.messages()[0], "time limit")
}

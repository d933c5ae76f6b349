package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// gqlAuthzKit names one set of destinations of a scope (the group org, or the instance) by
// number: the same number names a destination in every GraphQL class of its category and scope.
type gqlAuthzKit struct {
	missing          bool   // every id names nothing, and group paths name no group
	a, b, gcp, aws   int64  // a: http (with a header, filters and a namespace filter when made); b: bare http
	header, nsFilter int64  // a's custom header and namespace filter
	signing          string // a's signing secret when it was made
}

// gqlAuthzOp is one GraphQL operation of the authorization matrix.
type gqlAuthzOp struct {
	name   string
	kind   string // a key of the expectation table
	field  string // the Mutation or Query field; for a group query the Group field
	doc    string
	create bool     // the operation names no existing destination
	needs  []string // the fixtures it acts on (see newKit); none for creates and queries
	vars   func(k gqlAuthzKit) map[string]any
	// check runs after a success, with the mutation's payload or the query's connection,
	// against the kit the operation ran on.
	check func(t *testing.T, k gqlAuthzKit, payload map[string]any)
}

// TestGraphQLAuthorizationMatrix sends every GraphQL operation family (unified, legacy and
// extensions, group and instance, mutations and queries) as every kind of caller, GitLab's
// rules: a group's destinations are managed by the owners of the top-level group and by
// administrators, the instance's by administrators only; mutations need a token with scope
// api, queries api or read_api. Everyone else gets GitLab's not-found error, whether the
// destination exists or not, sees none of the destination's data, and changes nothing; a
// group the caller is not a member of is null.
//
// Refused requests run against one shared set of fixtures (made by the admin, with distinctive
// names, URLs and secrets), whose state as the admin reads it back must be unchanged after the
// refused requests of each operation. Allowed mutations run against fresh fixtures, which are
// removed again after their effect is checked, so that the shared state is also unchanged
// after every allowed caller of every operation.
func TestGraphQLAuthorizationMatrix(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := start(t, driver, noLimits)
		w := newWorld(t, s)

		const (
			notFoundMsg  = "The resource that you are attempting to access does not exist or you don't have permission to perform this action"
			invalidToken = "ast-not-a-real-token-000000"
			missingID    = 999999

			cGroupDest   = "AuditEvents::Group::ExternalStreamingDestination"
			cInstDest    = "AuditEvents::Instance::ExternalStreamingDestination"
			cGroupNS     = "AuditEvents::Group::NamespaceFilter"
			cInstNS      = "AuditEvents::Instance::NamespaceFilter"
			cLegacy      = "AuditEvents::ExternalAuditEventDestination"
			cLegacyInst  = "AuditEvents::InstanceExternalAuditEventDestination"
			cHeader      = "AuditEvents::Streaming::Header"
			cInstHeader  = "AuditEvents::Streaming::InstanceHeader"
			cHTTPNS      = "AuditEvents::Streaming::HTTP::NamespaceFilter"
			cGCP         = "AuditEvents::GoogleCloudLoggingConfiguration"
			cInstGCP     = "AuditEvents::Instance::GoogleCloudLoggingConfiguration"
			cAWS         = "AuditEvents::AmazonS3Configuration"
			cInstAWS     = "AuditEvents::Instance::AmazonS3Configuration"
			groupToken   = "orgFixtureVerifyTok1"  // a's verification token, group fixtures
			instToken    = "instFixtureVerifyTok1" // and instance fixtures
			headerSecret = "hdr-secret-value"
			awsKeyID     = "AKIAIOSFODNN7EXAMPLE"
			awsSecret    = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY"
			gcpProject   = "my-project-123"
			gcpEmail     = "sa@my-project-123.iam.gserviceaccount.com"
			gcpKey       = "YOUR_PRIVATE_KEY"
		)
		// What no refused caller may find in a response body: names, URLs, secrets, ids.
		private := []string{"org-secret-receiver", "org-fixture", groupToken, headerSecret, "instance-secret-receiver",
			"inst-fixture", instToken, awsKeyID, awsSecret, gcpKey, gcpProject, "audit-bucket", "whsec_", "ExternalStreamingDestination/"}

		// Expected outcome per caller, for each kind of operation.
		const ok, notFound, hidden, unauthorized = "succeeds", "not found", "group is null", "401 invalid token"
		actors := []string{"admin", "owner", "owner_read_api", "maint", "dev", "rep", "outside", "ingest", "anonymous", "invalid"}
		want := map[string]map[string]string{
			"group mutation": {"admin": ok, "owner": ok, "owner_read_api": notFound, "maint": notFound, "dev": notFound, "rep": notFound,
				"outside": notFound, "ingest": notFound, "anonymous": notFound, "invalid": unauthorized},
			"group query": {"admin": ok, "owner": ok, "owner_read_api": ok, "maint": notFound, "dev": notFound, "rep": notFound,
				"outside": hidden, "ingest": hidden, "anonymous": hidden, "invalid": unauthorized},
			"instance mutation": {"admin": ok, "owner": notFound, "owner_read_api": notFound, "maint": notFound, "dev": notFound, "rep": notFound,
				"outside": notFound, "ingest": notFound, "anonymous": notFound, "invalid": unauthorized},
			"instance query": {"admin": ok, "owner": notFound, "owner_read_api": notFound, "maint": notFound, "dev": notFound, "rep": notFound,
				"outside": notFound, "ingest": notFound, "anonymous": notFound, "invalid": unauthorized},
		}
		token := func(actor string) string {
			switch actor {
			case "anonymous":
				return ""
			case "invalid":
				return invalidToken
			}
			tok, found := w.tokens[actor]
			require.True(t, found, actor)
			return tok
		}
		// on gives the server's helpers the (sub)test they report to.
		on := func(t *testing.T) *server {
			c := *s
			c.t = t
			return &c
		}
		do := func(t *testing.T, actor, doc string, vars map[string]any) gqlResult {
			t.Helper()
			return on(t).gql(token(actor), doc, vars)
		}
		gid := func(class string, n int64) string { return fmt.Sprintf("gid://gitlab/%s/%d", class, n) }
		num := func(t *testing.T, id any) int64 {
			t.Helper()
			str, _ := id.(string)
			i := strings.LastIndexByte(str, '/')
			require.Positive(t, i, "not a global id: %v", id)
			n, err := strconv.ParseInt(str[i+1:], 10, 64)
			require.NoError(t, err, str)
			return n
		}
		seq := 0
		next := func() int { seq++; return seq }

		// --- the state, as the admin reads it ---------------------------------------------------

		const snapDest = `id name category config secretToken active eventTypeFilters denyEventTypeFilters categoryFilters denyCategoryFilters
			signingSecret previousSigningSecretExpiresAt createdAt updatedAt namespaceFilters { id namespace { fullPath } }`
		// The config holds the custom headers with their values.
		const snapDoc = `query {
			group(fullPath: "org") { externalAuditEventStreamingDestinations { nodes { ` + snapDest + ` } } }
			auditEventsInstanceStreamingDestinations { nodes { ` + snapDest + ` } }
		}`
		// snapshot returns every destination of org and of the instance, as canonical JSON.
		snapshot := func(t *testing.T) (string, map[string]any) {
			t.Helper()
			data := on(t).gqlOK(adminToken, snapDoc, nil)
			b, err := json.Marshal(data)
			require.NoError(t, err)
			return string(b), data
		}
		const groupDoc = `query { group(fullPath: "org") { externalAuditEventStreamingDestinations { nodes { ` + snapDest + ` } } } }`
		const instanceDoc = `query { auditEventsInstanceStreamingDestinations { nodes { ` + snapDest + ` } } }`
		nodesOf := func(data map[string]any, scope string) []any {
			if scope == "group" {
				l, _ := dig(data, "group", "externalAuditEventStreamingDestinations", "nodes").([]any)
				return l
			}
			l, _ := dig(data, "auditEventsInstanceStreamingDestinations", "nodes").([]any)
			return l
		}
		// node returns destination n of scope as the unified API shows it, or nil.
		node := func(t *testing.T, scope string, n int64) map[string]any {
			t.Helper()
			data := on(t).gqlOK(adminToken, map[string]string{"group": groupDoc, "instance": instanceDoc}[scope], nil)
			class := map[string]string{"group": cGroupDest, "instance": cInstDest}[scope]
			for _, d := range nodesOf(data, scope) {
				if m, _ := d.(map[string]any); m["id"] == gid(class, n) {
					return m
				}
			}
			return nil
		}

		// --- fixtures --------------------------------------------------------------------------

		// newKit creates, as the admin, the fixtures that parts names, of scope ("group": of org):
		// "a" an http destination, to which "filters" gives event type filters (allow
		// user_created, deny member_created), "ns" a namespace filter (org/sub) and "header" a
		// custom header; "b" a bare http destination; "gcp" and "aws" one of each. sfx keeps
		// names, URLs, GCP logs and S3 buckets unique, as the legacy API requires. The
		// destinations are paused: nothing is delivered to the made-up hosts.
		allParts := []string{"a", "filters", "ns", "header", "b", "gcp", "aws"}
		newKit := func(t *testing.T, scope, sfx string, parts ...string) gqlAuthzKit {
			t.Helper()
			c := on(t)
			var k gqlAuthzKit
			has := func(p string) bool { return slices.Contains(parts, p) }
			host, name, tok, title := "org-secret-receiver.example", "org-fixture", groupToken, "Group"
			if scope == "instance" {
				host, name, tok, title = "instance-secret-receiver.example", "inst-fixture", instToken, "Instance"
			}
			create := func(category, name string, cfg map[string]any, secret string) int64 {
				vars := map[string]any{"c": category, "cfg": cfg, "n": name, "s": secret}
				doc := `mutation($c: String!, $cfg: JSON!, $n: String, $s: String) { instanceAuditEventStreamingDestinationsCreate(input: {category: $c, config: $cfg, name: $n, secretToken: $s, active: false}) { errors externalAuditEventDestination { id } } }`
				field := "instanceAuditEventStreamingDestinationsCreate"
				if scope == "group" {
					doc = `mutation($c: String!, $cfg: JSON!, $n: String, $s: String) { groupAuditEventStreamingDestinationsCreate(input: {groupPath: "org", category: $c, config: $cfg, name: $n, secretToken: $s, active: false}) { errors externalAuditEventDestination { id } } }`
					field = "groupAuditEventStreamingDestinationsCreate"
				}
				return num(t, dig(c.mutate(adminToken, field, doc, vars), "externalAuditEventDestination", "id"))
			}
			destClass := map[string]string{"group": cGroupDest, "instance": cInstDest}[scope]
			if has("a") {
				k.a = create("http", name+sfx, httpConfig("https://"+host+"/hook"+sfx), tok)
				a := node(t, scope, k.a)
				require.NotNil(t, a)
				k.signing, _ = a["signingSecret"].(string)
				require.True(t, strings.HasPrefix(k.signing, "whsec_"), k.signing)
			}
			if has("filters") {
				c.mutate(adminToken, "auditEventStreamingDestinationFiltersSet",
					`mutation($id: ID!) { auditEventStreamingDestinationFiltersSet(input: {destinationId: $id, eventTypeFilters: ["user_created"], denyEventTypeFilters: ["member_created"]}) { errors } }`,
					map[string]any{"id": gid(destClass, k.a)})
			}
			if has("ns") {
				p := c.mutate(adminToken, "auditEvents"+title+"DestinationNamespaceFilterCreate",
					`mutation($id: AuditEvents`+title+`ExternalStreamingDestinationID!) { auditEvents`+title+`DestinationNamespaceFilterCreate(input: {destinationId: $id, namespacePath: "org/sub"}) { errors namespaceFilter { id } } }`,
					map[string]any{"id": gid(destClass, k.a)})
				k.nsFilter = num(t, dig(p, "namespaceFilter", "id"))
			}
			if has("header") {
				var p map[string]any
				if scope == "group" {
					p = c.mutate(adminToken, "auditEventsStreamingHeadersCreate",
						`mutation($id: AuditEventsExternalAuditEventDestinationID!) { auditEventsStreamingHeadersCreate(input: {destinationId: $id, key: "X-Fixture", value: "`+headerSecret+`"}) { errors header { id } } }`,
						map[string]any{"id": gid(cLegacy, k.a)})
				} else {
					p = c.mutate(adminToken, "auditEventsStreamingInstanceHeadersCreate",
						`mutation($id: AuditEventsInstanceExternalAuditEventDestinationID!) { auditEventsStreamingInstanceHeadersCreate(input: {destinationId: $id, key: "X-Fixture", value: "`+headerSecret+`"}) { errors header { id } } }`,
						map[string]any{"id": gid(cLegacyInst, k.a)})
				}
				k.header = num(t, dig(p, "header", "id"))
			}
			if has("b") {
				k.b = create("http", name+"-b"+sfx, httpConfig("https://"+host+"/hook-b"+sfx), tok)
			}
			if has("gcp") {
				k.gcp = create("gcp", name+"-gcp"+sfx, map[string]any{"googleProjectIdName": gcpProject, "clientEmail": gcpEmail, "logIdName": "audit-events" + sfx}, gcpKey)
			}
			if has("aws") {
				k.aws = create("aws", name+"-aws"+sfx, map[string]any{"accessKeyXid": awsKeyID, "bucketName": "audit-bucket" + sfx, "awsRegion": "us-east-1"}, awsSecret)
			}
			return k
		}
		missing := gqlAuthzKit{missing: true, a: missingID, b: missingID, gcp: missingID, aws: missingID, header: missingID, nsFilter: missingID}
		groupPath := func(k gqlAuthzKit) string {
			if k.missing {
				return "no-such-group"
			}
			return "org"
		}

		// --- checks after a success ------------------------------------------------------------

		field := func(t *testing.T, scope string, n int64, key string) any {
			t.Helper()
			d := node(t, scope, n)
			require.NotNil(t, d, "%s destination %d is missing", scope, n)
			return d[key]
		}
		gone := func(scope string, pick func(gqlAuthzKit) int64) func(*testing.T, gqlAuthzKit, map[string]any) {
			return func(t *testing.T, k gqlAuthzKit, _ map[string]any) {
				require.Nil(t, node(t, scope, pick(k)), "deleted")
			}
		}
		renamed := func(scope string, pick func(gqlAuthzKit) int64) func(*testing.T, gqlAuthzKit, map[string]any) {
			return func(t *testing.T, k gqlAuthzKit, _ map[string]any) {
				require.True(t, strings.HasPrefix(fmt.Sprint(field(t, scope, pick(k), "name")), "renamed-"), "renamed")
			}
		}
		created := func(scope, obj, category string) func(*testing.T, gqlAuthzKit, map[string]any) {
			return func(t *testing.T, _ gqlAuthzKit, p map[string]any) {
				n := num(t, dig(p, obj, "id"))
				require.Equal(t, category, field(t, scope, n, "category"))
				require.True(t, strings.HasPrefix(fmt.Sprint(field(t, scope, n, "name")), "created-"))
			}
		}
		list := func(scope, key string, pick func(gqlAuthzKit) int64, want ...any) func(*testing.T, gqlAuthzKit, map[string]any) {
			return func(t *testing.T, k gqlAuthzKit, _ map[string]any) {
				require.Equal(t, append([]any{}, want...), field(t, scope, pick(k), key), key)
			}
		}
		namespaces := func(scope string, pick func(gqlAuthzKit) int64, want ...string) func(*testing.T, gqlAuthzKit, map[string]any) {
			return func(t *testing.T, k gqlAuthzKit, _ map[string]any) {
				var got []string
				for _, f := range field(t, scope, pick(k), "namespaceFilters").([]any) {
					got = append(got, fmt.Sprint(dig(f, "namespace", "fullPath")))
				}
				require.Equal(t, want, got)
			}
		}
		header := func(scope, name string, wantValue any) func(*testing.T, gqlAuthzKit, map[string]any) {
			return func(t *testing.T, k gqlAuthzKit, _ map[string]any) {
				require.Equal(t, wantValue, dig(field(t, scope, k.a, "config"), "headers", name, "value"), "header %s", name)
			}
		}
		rotated := func(scope string) func(*testing.T, gqlAuthzKit, map[string]any) {
			return func(t *testing.T, k gqlAuthzKit, p map[string]any) {
				sec, _ := p["signingSecret"].(string)
				require.True(t, strings.HasPrefix(sec, "whsec_"), sec)
				require.NotEqual(t, k.signing, sec)
				require.Equal(t, sec, field(t, scope, k.a, "signingSecret"))
				require.NotNil(t, p["previousSigningSecretExpiresAt"])
			}
		}
		filtersSet := func(scope string) func(*testing.T, gqlAuthzKit, map[string]any) {
			return func(t *testing.T, k gqlAuthzKit, _ map[string]any) {
				require.Equal(t, []any{"member_created"}, field(t, scope, k.a, "eventTypeFilters"))
				require.Equal(t, []any{}, field(t, scope, k.a, "denyEventTypeFilters"))
			}
		}
		// listed checks what a query shows its allowed callers of the shared fixtures.
		listed := func(count int, key string, values ...string) func(*testing.T, gqlAuthzKit, map[string]any) {
			return func(t *testing.T, _ gqlAuthzKit, conn map[string]any) {
				require.EqualValues(t, count, conn["count"])
				var got []string
				for _, n := range conn["nodes"].([]any) {
					got = append(got, fmt.Sprint(dig(n, key)))
				}
				for _, v := range values {
					require.Contains(t, got, v)
				}
			}
		}
		pickA := func(k gqlAuthzKit) int64 { return k.a }
		pickB := func(k gqlAuthzKit) int64 { return k.b }
		pickGCP := func(k gqlAuthzKit) int64 { return k.gcp }
		pickAWS := func(k gqlAuthzKit) int64 { return k.aws }
		id := func(class string, pick func(gqlAuthzKit) int64) func(gqlAuthzKit) map[string]any {
			return func(k gqlAuthzKit) map[string]any { return map[string]any{"id": gid(class, pick(k))} }
		}
		idName := func(class string, pick func(gqlAuthzKit) int64) func(gqlAuthzKit) map[string]any {
			return func(k gqlAuthzKit) map[string]any {
				return map[string]any{"id": gid(class, pick(k)), "n": fmt.Sprintf("renamed-%d", next())}
			}
		}
		noVars := func(gqlAuthzKit) map[string]any { return nil }

		// --- the operations --------------------------------------------------------------------

		var ops []gqlAuthzOp
		// GitLab's unified API, for both scopes.
		for _, sc := range []struct{ lower, title, dest, ns, host string }{
			{"group", "Group", cGroupDest, cGroupNS, "org-secret-receiver.example"},
			{"instance", "Instance", cInstDest, cInstNS, "instance-secret-receiver.example"},
		} {
			r := strings.NewReplacer("{s}", sc.lower, "{S}", sc.title)
			m, q := sc.lower+" mutation", sc.lower+" query"
			create := gqlAuthzOp{name: "unified " + sc.lower + " create", kind: m, create: true, field: sc.lower + "AuditEventStreamingDestinationsCreate",
				doc: `mutation($cfg: JSON!, $n: String) { instanceAuditEventStreamingDestinationsCreate(input: {category: "http", config: $cfg, name: $n, active: false}) { errors externalAuditEventDestination { id name } } }`,
				vars: func(k gqlAuthzKit) map[string]any {
					n := next()
					return map[string]any{"cfg": httpConfig(fmt.Sprintf("https://%s/created-%d", sc.host, n)), "n": fmt.Sprintf("created-%d", n)}
				},
				check: created(sc.lower, "externalAuditEventDestination", "http")}
			if sc.lower == "group" {
				create.doc = `mutation($g: ID!, $cfg: JSON!, $n: String) { groupAuditEventStreamingDestinationsCreate(input: {groupPath: $g, category: "http", config: $cfg, name: $n, active: false}) { errors externalAuditEventDestination { id name } } }`
				vars := create.vars
				create.vars = func(k gqlAuthzKit) map[string]any {
					v := vars(k)
					v["g"] = groupPath(k)
					return v
				}
			}
			destID := func(op string) string {
				return r.Replace(`mutation($id: AuditEvents{S}ExternalStreamingDestinationID!) { ` + op + ` }`)
			}
			ops = append(ops, create,
				gqlAuthzOp{name: "unified " + sc.lower + " update", kind: m, needs: []string{"a"}, field: sc.lower + "AuditEventStreamingDestinationsUpdate",
					doc:  r.Replace(`mutation($id: AuditEvents{S}ExternalStreamingDestinationID!, $n: String) { {s}AuditEventStreamingDestinationsUpdate(input: {id: $id, name: $n}) { errors externalAuditEventDestination { id name } } }`),
					vars: idName(sc.dest, pickA), check: renamed(sc.lower, pickA)},
				gqlAuthzOp{name: "unified " + sc.lower + " delete", kind: m, needs: []string{"a"}, field: sc.lower + "AuditEventStreamingDestinationsDelete",
					doc:  destID(r.Replace(`{s}AuditEventStreamingDestinationsDelete(input: {id: $id}) { errors }`)),
					vars: id(sc.dest, pickA), check: gone(sc.lower, pickA)},
				gqlAuthzOp{name: "unified " + sc.lower + " events add", kind: m, needs: []string{"b"}, field: "auditEvents" + sc.title + "DestinationEventsAdd",
					doc:  destID(r.Replace(`auditEvents{S}DestinationEventsAdd(input: {destinationId: $id, eventTypeFilters: ["user_created"]}) { errors eventTypeFilters }`)),
					vars: id(sc.dest, pickB), check: list(sc.lower, "eventTypeFilters", pickB, "user_created")},
				gqlAuthzOp{name: "unified " + sc.lower + " events delete", kind: m, needs: []string{"a", "filters"}, field: "auditEvents" + sc.title + "DestinationEventsDelete",
					doc:  destID(r.Replace(`auditEvents{S}DestinationEventsDelete(input: {destinationId: $id, eventTypeFilters: ["user_created"]}) { errors }`)),
					vars: id(sc.dest, pickA), check: list(sc.lower, "eventTypeFilters", pickA)},
				gqlAuthzOp{name: "unified " + sc.lower + " namespace filter create", kind: m, needs: []string{"b"}, field: "auditEvents" + sc.title + "DestinationNamespaceFilterCreate",
					doc:  destID(r.Replace(`auditEvents{S}DestinationNamespaceFilterCreate(input: {destinationId: $id, namespacePath: "org/sub"}) { errors namespaceFilter { id namespace { fullPath } } }`)),
					vars: id(sc.dest, pickB), check: namespaces(sc.lower, pickB, "org/sub")},
				gqlAuthzOp{name: "unified " + sc.lower + " namespace filter delete", kind: m, needs: []string{"a", "ns"}, field: "auditEvents" + sc.title + "DestinationNamespaceFilterDelete",
					doc:  r.Replace(`mutation($id: AuditEvents{S}NamespaceFilterID!) { auditEvents{S}DestinationNamespaceFilterDelete(input: {namespaceFilterId: $id}) { errors } }`),
					vars: id(sc.ns, func(k gqlAuthzKit) int64 { return k.nsFilter }), check: namespaces(sc.lower, pickA)},
				gqlAuthzOp{name: "extension " + sc.lower + " filters set", kind: m, needs: []string{"a", "filters"}, field: "auditEventStreamingDestinationFiltersSet",
					doc:  `mutation($id: ID!) { auditEventStreamingDestinationFiltersSet(input: {destinationId: $id, eventTypeFilters: ["member_created"], denyEventTypeFilters: []}) { errors eventTypeFilters denyEventTypeFilters } }`,
					vars: id(sc.dest, pickA), check: filtersSet(sc.lower)},
				gqlAuthzOp{name: "extension " + sc.lower + " signing secret rotate", kind: m, needs: []string{"a"}, field: "auditEventStreamingDestinationSigningSecretRotate",
					doc:  `mutation($id: ID!) { auditEventStreamingDestinationSigningSecretRotate(input: {destinationId: $id, gracePeriodSeconds: 60}) { errors signingSecret previousSigningSecretExpiresAt } }`,
					vars: id(sc.dest, pickA), check: rotated(sc.lower)},
			)
			if sc.lower == "group" {
				ops = append(ops,
					gqlAuthzOp{name: "unified group denylist add", kind: m, needs: []string{"b"}, field: "auditEventsGroupDestinationDenylistEventsAdd",
						doc:  destID(`auditEventsGroupDestinationDenylistEventsAdd(input: {destinationId: $id, eventTypeFilters: ["member_created"]}) { errors eventTypeFilters }`),
						vars: id(sc.dest, pickB), check: list("group", "denyEventTypeFilters", pickB, "member_created")},
					gqlAuthzOp{name: "unified group denylist delete", kind: m, needs: []string{"a", "filters"}, field: "auditEventsGroupDestinationDenylistEventsDelete",
						doc:  destID(`auditEventsGroupDestinationDenylistEventsDelete(input: {destinationId: $id, eventTypeFilters: ["member_created"]}) { errors }`),
						vars: id(sc.dest, pickA), check: list("group", "denyEventTypeFilters", pickA)},
					gqlAuthzOp{name: "unified group query", kind: q, field: "externalAuditEventStreamingDestinations",
						doc:  `query { group(fullPath: "org") { externalAuditEventStreamingDestinations { count nodes { id name secretToken config } } } }`,
						vars: noVars, check: listed(4, "secretToken", groupToken)},
				)
			} else {
				ops = append(ops, gqlAuthzOp{name: "unified instance query", kind: q, field: "auditEventsInstanceStreamingDestinations",
					doc:  `query { auditEventsInstanceStreamingDestinations { count nodes { id name secretToken config } } }`,
					vars: noVars, check: listed(4, "secretToken", instToken)})
			}
		}

		// GitLab's legacy API, group.
		legacyCreate := func(k gqlAuthzKit) map[string]any {
			n := next()
			return map[string]any{"g": groupPath(k), "url": fmt.Sprintf("https://org-secret-receiver.example/created-%d", n), "n": fmt.Sprintf("created-%d", n)}
		}
		pickHeader := func(k gqlAuthzKit) int64 { return k.header }
		pickNS := func(k gqlAuthzKit) int64 { return k.nsFilter }
		ops = append(ops,
			gqlAuthzOp{name: "legacy group http create", kind: "group mutation", create: true, field: "externalAuditEventDestinationCreate",
				doc:  `mutation($url: String!, $g: ID!, $n: String) { externalAuditEventDestinationCreate(input: {destinationUrl: $url, groupPath: $g, name: $n}) { errors externalAuditEventDestination { id name destinationUrl } } }`,
				vars: legacyCreate, check: created("group", "externalAuditEventDestination", "http")},
			gqlAuthzOp{name: "legacy group http update", kind: "group mutation", needs: []string{"a"}, field: "externalAuditEventDestinationUpdate",
				doc:  `mutation($id: AuditEventsExternalAuditEventDestinationID!, $n: String) { externalAuditEventDestinationUpdate(input: {id: $id, name: $n}) { errors externalAuditEventDestination { id name } } }`,
				vars: idName(cLegacy, pickA), check: renamed("group", pickA)},
			gqlAuthzOp{name: "legacy group http destroy", kind: "group mutation", needs: []string{"a"}, field: "externalAuditEventDestinationDestroy",
				doc:  `mutation($id: AuditEventsExternalAuditEventDestinationID!) { externalAuditEventDestinationDestroy(input: {id: $id}) { errors } }`,
				vars: id(cLegacy, pickA), check: gone("group", pickA)},
			gqlAuthzOp{name: "legacy group header create", kind: "group mutation", needs: []string{"a"}, field: "auditEventsStreamingHeadersCreate",
				doc:  `mutation($id: AuditEventsExternalAuditEventDestinationID!) { auditEventsStreamingHeadersCreate(input: {destinationId: $id, key: "X-Added", value: "added-value"}) { errors header { id key value active } } }`,
				vars: id(cLegacy, pickA), check: header("group", "X-Added", "added-value")},
			gqlAuthzOp{name: "legacy group header update", kind: "group mutation", needs: []string{"a", "header"}, field: "auditEventsStreamingHeadersUpdate",
				doc:  `mutation($id: AuditEventsStreamingHeaderID!) { auditEventsStreamingHeadersUpdate(input: {headerId: $id, value: "updated-value"}) { errors header { id key value } } }`,
				vars: id(cHeader, pickHeader), check: header("group", "X-Fixture", "updated-value")},
			gqlAuthzOp{name: "legacy group header destroy", kind: "group mutation", needs: []string{"a", "header"}, field: "auditEventsStreamingHeadersDestroy",
				doc:  `mutation($id: AuditEventsStreamingHeaderID!) { auditEventsStreamingHeadersDestroy(input: {headerId: $id}) { errors } }`,
				vars: id(cHeader, pickHeader), check: header("group", "X-Fixture", nil)},
			gqlAuthzOp{name: "legacy group events add", kind: "group mutation", needs: []string{"b"}, field: "auditEventsStreamingDestinationEventsAdd",
				doc:  `mutation($id: AuditEventsExternalAuditEventDestinationID!) { auditEventsStreamingDestinationEventsAdd(input: {destinationId: $id, eventTypeFilters: ["user_created"]}) { errors eventTypeFilters } }`,
				vars: id(cLegacy, pickB), check: list("group", "eventTypeFilters", pickB, "user_created")},
			gqlAuthzOp{name: "legacy group events remove", kind: "group mutation", needs: []string{"a", "filters"}, field: "auditEventsStreamingDestinationEventsRemove",
				doc:  `mutation($id: AuditEventsExternalAuditEventDestinationID!) { auditEventsStreamingDestinationEventsRemove(input: {destinationId: $id, eventTypeFilters: ["user_created"]}) { errors } }`,
				vars: id(cLegacy, pickA), check: list("group", "eventTypeFilters", pickA)},
			gqlAuthzOp{name: "legacy group namespace filter add", kind: "group mutation", needs: []string{"b"}, field: "auditEventsStreamingHttpNamespaceFiltersAdd",
				doc:  `mutation($id: AuditEventsExternalAuditEventDestinationID!) { auditEventsStreamingHttpNamespaceFiltersAdd(input: {destinationId: $id, groupPath: "org/sub"}) { errors namespaceFilter { id namespace { fullPath } } } }`,
				vars: id(cLegacy, pickB), check: namespaces("group", pickB, "org/sub")},
			gqlAuthzOp{name: "legacy group namespace filter delete", kind: "group mutation", needs: []string{"a", "ns"}, field: "auditEventsStreamingHttpNamespaceFiltersDelete",
				doc:  `mutation($id: AuditEventsStreamingHTTPNamespaceFilterID!) { auditEventsStreamingHttpNamespaceFiltersDelete(input: {namespaceFilterId: $id}) { errors } }`,
				vars: id(cHTTPNS, pickNS), check: namespaces("group", pickA)},
			gqlAuthzOp{name: "legacy group gcp create", kind: "group mutation", create: true, field: "googleCloudLoggingConfigurationCreate",
				doc: `mutation($g: ID!, $log: String, $n: String) { googleCloudLoggingConfigurationCreate(input: {groupPath: $g, googleProjectIdName: "` + gcpProject + `", clientEmail: "` + gcpEmail + `", privateKey: "` + gcpKey + `", logIdName: $log, name: $n}) { errors googleCloudLoggingConfiguration { id name logIdName } } }`,
				vars: func(k gqlAuthzKit) map[string]any {
					n := next()
					return map[string]any{"g": groupPath(k), "log": fmt.Sprintf("created-%d", n), "n": fmt.Sprintf("created-%d", n)}
				},
				check: created("group", "googleCloudLoggingConfiguration", "gcp")},
			gqlAuthzOp{name: "legacy group gcp update", kind: "group mutation", needs: []string{"gcp"}, field: "googleCloudLoggingConfigurationUpdate",
				doc:  `mutation($id: AuditEventsGoogleCloudLoggingConfigurationID!, $n: String) { googleCloudLoggingConfigurationUpdate(input: {id: $id, name: $n}) { errors googleCloudLoggingConfiguration { id name } } }`,
				vars: idName(cGCP, pickGCP), check: renamed("group", pickGCP)},
			gqlAuthzOp{name: "legacy group gcp destroy", kind: "group mutation", needs: []string{"gcp"}, field: "googleCloudLoggingConfigurationDestroy",
				doc:  `mutation($id: AuditEventsGoogleCloudLoggingConfigurationID!) { googleCloudLoggingConfigurationDestroy(input: {id: $id}) { errors } }`,
				vars: id(cGCP, pickGCP), check: gone("group", pickGCP)},
			gqlAuthzOp{name: "legacy group s3 create", kind: "group mutation", create: true, field: "auditEventsAmazonS3ConfigurationCreate",
				doc: `mutation($g: ID!, $bucket: String!, $n: String) { auditEventsAmazonS3ConfigurationCreate(input: {groupPath: $g, accessKeyXid: "` + awsKeyID + `", secretAccessKey: "` + awsSecret + `", bucketName: $bucket, awsRegion: "us-east-1", name: $n}) { errors amazonS3Configuration { id name bucketName } } }`,
				vars: func(k gqlAuthzKit) map[string]any {
					n := next()
					return map[string]any{"g": groupPath(k), "bucket": fmt.Sprintf("created-%d", n), "n": fmt.Sprintf("created-%d", n)}
				},
				check: created("group", "amazonS3Configuration", "aws")},
			gqlAuthzOp{name: "legacy group s3 update", kind: "group mutation", needs: []string{"aws"}, field: "auditEventsAmazonS3ConfigurationUpdate",
				doc:  `mutation($id: AuditEventsAmazonS3ConfigurationID!, $n: String) { auditEventsAmazonS3ConfigurationUpdate(input: {id: $id, name: $n}) { errors amazonS3Configuration { id name } } }`,
				vars: idName(cAWS, pickAWS), check: renamed("group", pickAWS)},
			gqlAuthzOp{name: "legacy group s3 delete", kind: "group mutation", needs: []string{"aws"}, field: "auditEventsAmazonS3ConfigurationDelete",
				doc:  `mutation($id: AuditEventsAmazonS3ConfigurationID!) { auditEventsAmazonS3ConfigurationDelete(input: {id: $id}) { errors } }`,
				vars: id(cAWS, pickAWS), check: gone("group", pickAWS)},
			gqlAuthzOp{name: "legacy group http query", kind: "group query", field: "externalAuditEventDestinations",
				doc:  `query { group(fullPath: "org") { externalAuditEventDestinations { count nodes { id name destinationUrl verificationToken headers { nodes { id key value } } namespaceFilter { id } } } } }`,
				vars: noVars, check: listed(2, "verificationToken", groupToken)},
			gqlAuthzOp{name: "legacy group gcp query", kind: "group query", field: "googleCloudLoggingConfigurations",
				doc:  `query { group(fullPath: "org") { googleCloudLoggingConfigurations { count nodes { id name googleProjectIdName clientEmail logIdName } } } }`,
				vars: noVars, check: listed(1, "logIdName", "audit-events")},
			gqlAuthzOp{name: "legacy group s3 query", kind: "group query", field: "amazonS3Configurations",
				doc:  `query { group(fullPath: "org") { amazonS3Configurations { count nodes { id name accessKeyXid bucketName awsRegion } } } }`,
				vars: noVars, check: listed(1, "bucketName", "audit-bucket")},
		)

		// GitLab's legacy API, instance.
		ops = append(ops,
			gqlAuthzOp{name: "legacy instance http create", kind: "instance mutation", create: true, field: "instanceExternalAuditEventDestinationCreate",
				doc: `mutation($url: String!, $n: String) { instanceExternalAuditEventDestinationCreate(input: {destinationUrl: $url, name: $n}) { errors instanceExternalAuditEventDestination { id name } } }`,
				vars: func(gqlAuthzKit) map[string]any {
					n := next()
					return map[string]any{"url": fmt.Sprintf("https://instance-secret-receiver.example/created-%d", n), "n": fmt.Sprintf("created-%d", n)}
				},
				check: created("instance", "instanceExternalAuditEventDestination", "http")},
			gqlAuthzOp{name: "legacy instance http update", kind: "instance mutation", needs: []string{"a"}, field: "instanceExternalAuditEventDestinationUpdate",
				doc:  `mutation($id: AuditEventsInstanceExternalAuditEventDestinationID!, $n: String) { instanceExternalAuditEventDestinationUpdate(input: {id: $id, name: $n}) { errors instanceExternalAuditEventDestination { id name } } }`,
				vars: idName(cLegacyInst, pickA), check: renamed("instance", pickA)},
			gqlAuthzOp{name: "legacy instance http destroy", kind: "instance mutation", needs: []string{"a"}, field: "instanceExternalAuditEventDestinationDestroy",
				doc:  `mutation($id: AuditEventsInstanceExternalAuditEventDestinationID!) { instanceExternalAuditEventDestinationDestroy(input: {id: $id}) { errors } }`,
				vars: id(cLegacyInst, pickA), check: gone("instance", pickA)},
			gqlAuthzOp{name: "legacy instance header create", kind: "instance mutation", needs: []string{"a"}, field: "auditEventsStreamingInstanceHeadersCreate",
				doc:  `mutation($id: AuditEventsInstanceExternalAuditEventDestinationID!) { auditEventsStreamingInstanceHeadersCreate(input: {destinationId: $id, key: "X-Added", value: "added-value"}) { errors header { id key value active } } }`,
				vars: id(cLegacyInst, pickA), check: header("instance", "X-Added", "added-value")},
			gqlAuthzOp{name: "legacy instance header update", kind: "instance mutation", needs: []string{"a", "header"}, field: "auditEventsStreamingInstanceHeadersUpdate",
				doc:  `mutation($id: AuditEventsStreamingInstanceHeaderID!) { auditEventsStreamingInstanceHeadersUpdate(input: {headerId: $id, value: "updated-value"}) { errors header { id key value } } }`,
				vars: id(cInstHeader, pickHeader), check: header("instance", "X-Fixture", "updated-value")},
			gqlAuthzOp{name: "legacy instance header destroy", kind: "instance mutation", needs: []string{"a", "header"}, field: "auditEventsStreamingInstanceHeadersDestroy",
				doc:  `mutation($id: AuditEventsStreamingInstanceHeaderID!) { auditEventsStreamingInstanceHeadersDestroy(input: {headerId: $id}) { errors } }`,
				vars: id(cInstHeader, pickHeader), check: header("instance", "X-Fixture", nil)},
			gqlAuthzOp{name: "legacy instance events add", kind: "instance mutation", needs: []string{"b"}, field: "auditEventsStreamingDestinationInstanceEventsAdd",
				doc:  `mutation($id: AuditEventsInstanceExternalAuditEventDestinationID!) { auditEventsStreamingDestinationInstanceEventsAdd(input: {destinationId: $id, eventTypeFilters: ["user_created"]}) { errors eventTypeFilters } }`,
				vars: id(cLegacyInst, pickB), check: list("instance", "eventTypeFilters", pickB, "user_created")},
			gqlAuthzOp{name: "legacy instance events remove", kind: "instance mutation", needs: []string{"a", "filters"}, field: "auditEventsStreamingDestinationInstanceEventsRemove",
				doc:  `mutation($id: AuditEventsInstanceExternalAuditEventDestinationID!) { auditEventsStreamingDestinationInstanceEventsRemove(input: {destinationId: $id, eventTypeFilters: ["user_created"]}) { errors } }`,
				vars: id(cLegacyInst, pickA), check: list("instance", "eventTypeFilters", pickA)},
			gqlAuthzOp{name: "legacy instance gcp create", kind: "instance mutation", create: true, field: "instanceGoogleCloudLoggingConfigurationCreate",
				doc: `mutation($log: String, $n: String) { instanceGoogleCloudLoggingConfigurationCreate(input: {googleProjectIdName: "` + gcpProject + `", clientEmail: "` + gcpEmail + `", privateKey: "` + gcpKey + `", logIdName: $log, name: $n}) { errors instanceGoogleCloudLoggingConfiguration { id name logIdName } } }`,
				vars: func(gqlAuthzKit) map[string]any {
					n := next()
					return map[string]any{"log": fmt.Sprintf("created-%d", n), "n": fmt.Sprintf("created-%d", n)}
				},
				check: created("instance", "instanceGoogleCloudLoggingConfiguration", "gcp")},
			gqlAuthzOp{name: "legacy instance gcp update", kind: "instance mutation", needs: []string{"gcp"}, field: "instanceGoogleCloudLoggingConfigurationUpdate",
				doc:  `mutation($id: AuditEventsInstanceGoogleCloudLoggingConfigurationID!, $n: String) { instanceGoogleCloudLoggingConfigurationUpdate(input: {id: $id, name: $n}) { errors instanceGoogleCloudLoggingConfiguration { id name } } }`,
				vars: idName(cInstGCP, pickGCP), check: renamed("instance", pickGCP)},
			gqlAuthzOp{name: "legacy instance gcp destroy", kind: "instance mutation", needs: []string{"gcp"}, field: "instanceGoogleCloudLoggingConfigurationDestroy",
				doc:  `mutation($id: AuditEventsInstanceGoogleCloudLoggingConfigurationID!) { instanceGoogleCloudLoggingConfigurationDestroy(input: {id: $id}) { errors } }`,
				vars: id(cInstGCP, pickGCP), check: gone("instance", pickGCP)},
			gqlAuthzOp{name: "legacy instance s3 create", kind: "instance mutation", create: true, field: "auditEventsInstanceAmazonS3ConfigurationCreate",
				doc: `mutation($bucket: String!, $n: String) { auditEventsInstanceAmazonS3ConfigurationCreate(input: {accessKeyXid: "` + awsKeyID + `", secretAccessKey: "` + awsSecret + `", bucketName: $bucket, awsRegion: "us-east-1", name: $n}) { errors instanceAmazonS3Configuration { id name bucketName } } }`,
				vars: func(gqlAuthzKit) map[string]any {
					n := next()
					return map[string]any{"bucket": fmt.Sprintf("created-%d", n), "n": fmt.Sprintf("created-%d", n)}
				},
				check: created("instance", "instanceAmazonS3Configuration", "aws")},
			gqlAuthzOp{name: "legacy instance s3 update", kind: "instance mutation", needs: []string{"aws"}, field: "auditEventsInstanceAmazonS3ConfigurationUpdate",
				doc:  `mutation($id: AuditEventsInstanceAmazonS3ConfigurationID!, $n: String) { auditEventsInstanceAmazonS3ConfigurationUpdate(input: {id: $id, name: $n}) { errors instanceAmazonS3Configuration { id name } } }`,
				vars: idName(cInstAWS, pickAWS), check: renamed("instance", pickAWS)},
			gqlAuthzOp{name: "legacy instance s3 delete", kind: "instance mutation", needs: []string{"aws"}, field: "auditEventsInstanceAmazonS3ConfigurationDelete",
				doc:  `mutation($id: AuditEventsInstanceAmazonS3ConfigurationID!) { auditEventsInstanceAmazonS3ConfigurationDelete(input: {id: $id}) { errors } }`,
				vars: id(cInstAWS, pickAWS), check: gone("instance", pickAWS)},
			gqlAuthzOp{name: "legacy instance http query", kind: "instance query", field: "instanceExternalAuditEventDestinations",
				doc:  `query { instanceExternalAuditEventDestinations { count nodes { id name destinationUrl verificationToken headers { nodes { id key value } } } } }`,
				vars: noVars, check: listed(2, "verificationToken", instToken)},
			gqlAuthzOp{name: "legacy instance gcp query", kind: "instance query", field: "instanceGoogleCloudLoggingConfigurations",
				doc:  `query { instanceGoogleCloudLoggingConfigurations { count nodes { id name googleProjectIdName clientEmail logIdName } } }`,
				vars: noVars, check: listed(1, "logIdName", "audit-events")},
			gqlAuthzOp{name: "legacy instance s3 query", kind: "instance query", field: "auditEventsInstanceAmazonS3Configurations",
				doc:  `query { auditEventsInstanceAmazonS3Configurations { count nodes { id name accessKeyXid bucketName awsRegion } } }`,
				vars: noVars, check: listed(1, "bucketName", "audit-bucket")},
		)

		// --- outcomes --------------------------------------------------------------------------

		isQuery := func(op gqlAuthzOp) bool { return strings.HasSuffix(op.kind, "query") }
		groupField := func(op gqlAuthzOp) bool { return op.kind == "group query" }
		// result returns what the operation's field holds in data, and whether the key is there.
		result := func(t *testing.T, op gqlAuthzOp, data map[string]any) (any, bool) {
			holder := data
			if groupField(op) {
				g, isMap := data["group"].(map[string]any)
				require.True(t, isMap, "the group is visible: %v", data)
				holder = g
			}
			v, present := holder[op.field]
			return v, present
		}
		noLeak := func(t *testing.T, raw string) {
			t.Helper()
			for _, p := range private {
				require.NotContains(t, raw, p, "a refused caller sees nothing of the destinations")
			}
		}
		// assertOutcome checks r against the outcome o, and returns the payload or connection of
		// a success.
		assertOutcome := func(t *testing.T, op gqlAuthzOp, o string, r gqlResult) map[string]any {
			t.Helper()
			switch o {
			case ok:
				require.Equal(t, http.StatusOK, r.Status, r.Raw)
				require.Empty(t, r.Errors, r.Raw)
				v, _ := result(t, op, r.Data)
				p, isMap := v.(map[string]any)
				require.True(t, isMap, "%s: %s", op.field, r.Raw)
				if !isQuery(op) {
					require.Equal(t, []any{}, p["errors"], "payload errors: %s", r.Raw)
				}
				return p
			case notFound:
				require.Equal(t, http.StatusOK, r.Status, r.Raw)
				require.Len(t, r.Errors, 1, r.Raw)
				require.Equal(t, notFoundMsg, r.Errors[0].Message, r.Raw)
				require.Equal(t, "not_found", r.Errors[0].Extensions["code"], r.Raw)
				v, present := result(t, op, r.Data)
				require.True(t, present, "data.%s is there, null: %s", op.field, r.Raw)
				require.Nil(t, v, r.Raw)
			case hidden:
				require.Equal(t, http.StatusOK, r.Status, r.Raw)
				require.Empty(t, r.Errors, r.Raw)
				g, present := r.Data["group"]
				require.True(t, present, r.Raw)
				require.Nil(t, g, "the group is null for a non-member: %s", r.Raw)
			case unauthorized:
				require.Equal(t, http.StatusUnauthorized, r.Status, r.Raw)
				require.Nil(t, r.Data, r.Raw)
				require.Equal(t, []string{"Invalid token"}, r.messages(), r.Raw)
			default:
				t.Fatalf("unknown outcome %q", o)
			}
			noLeak(t, r.Raw)
			return nil
		}

		// --- who sees the group at all ---------------------------------------------------------

		t.Run("group visibility", func(t *testing.T) {
			const doc = `query($p: ID!) { group(fullPath: $p) { id fullPath name } }`
			for _, actor := range actors {
				r := do(t, actor, doc, map[string]any{"p": "org"})
				switch actor {
				case "invalid":
					require.Equal(t, http.StatusUnauthorized, r.Status, r.Raw)
				case "outside", "ingest", "anonymous":
					require.Equal(t, http.StatusOK, r.Status, r.Raw)
					require.Empty(t, r.Errors, r.Raw)
					require.Contains(t, r.Data, "group")
					require.Nil(t, r.Data["group"], "%s must not see org: %s", actor, r.Raw)
					require.NotContains(t, r.Raw, "org")
				default: // members (of any role, any scope) and the admin see that org exists
					require.Empty(t, r.Errors, r.Raw)
					require.Equal(t, "org", dig(r.Data, "group", "fullPath"), "%s: %s", actor, r.Raw)
				}
			}
			// The outsider's token works: it sees its own group, whose owner it is.
			require.Equal(t, "other", dig(on(t).gqlOK(token("outside"), doc, map[string]any{"p": "other"}), "group", "fullPath"))
			require.Nil(t, on(t).gqlOK(token("owner"), doc, map[string]any{"p": "other"})["group"], "org's owner does not see other")
			require.Nil(t, on(t).gqlOK(token("admin"), doc, map[string]any{"p": "no-such-group"})["group"])
		})

		// --- the outsider manages its own group, and only that ---------------------------------

		t.Run("cross tenant", func(t *testing.T) {
			c := on(t)
			otherDest := c.createGroupDestination(token("outside"), "other", "http", httpConfig("https://other-receiver.example/hook"), "")
			const upd = `mutation($id: AuditEventsGroupExternalStreamingDestinationID!) { groupAuditEventStreamingDestinationsUpdate(input: {id: $id, name: "taken-over"}) { errors externalAuditEventDestination { id name } } }`
			r := do(t, "owner", upd, map[string]any{"id": otherDest})
			require.Equal(t, []string{notFoundMsg}, r.messages(), "org's owner may not change other's destination: %s", r.Raw)
			require.NotContains(t, r.Raw, "other-receiver")
			const list = `query($p: ID!) { group(fullPath: $p) { externalAuditEventStreamingDestinations { nodes { id name config } } } }`
			require.Nil(t, c.gqlOK(token("owner"), list, map[string]any{"p": "other"})["group"])
			nodes := dig(c.gqlOK(token("outside"), list, map[string]any{"p": "other"}), "group", "externalAuditEventStreamingDestinations", "nodes")
			require.Len(t, nodes, 1)
			require.Equal(t, otherDest, dig(nodes, "0", "id"))
			require.NotEqual(t, "taken-over", dig(nodes, "0", "name"))
			c.mutate(token("outside"), "groupAuditEventStreamingDestinationsDelete",
				`mutation($id: AuditEventsGroupExternalStreamingDestinationID!) { groupAuditEventStreamingDestinationsDelete(input: {id: $id}) { errors } }`,
				map[string]any{"id": otherDest})
		})

		// --- the matrix ------------------------------------------------------------------------

		shared := map[string]gqlAuthzKit{"group": newKit(t, "group", "", allParts...), "instance": newKit(t, "instance", "", allParts...)}
		sharedIDs := map[string][]any{}
		initial, data := snapshot(t)
		for _, scope := range []string{"group", "instance"} {
			for _, d := range nodesOf(data, scope) {
				sharedIDs[scope] = append(sharedIDs[scope], dig(d, "id"))
			}
			require.Len(t, sharedIDs[scope], 4, scope)
		}
		// restore deletes, as the admin, every destination that is not a shared fixture, and
		// returns the snapshot after that.
		restore := func(t *testing.T) string {
			t.Helper()
			for {
				snap, data := snapshot(t)
				deleted := false
				for _, scope := range []string{"group", "instance"} {
					for _, d := range nodesOf(data, scope) {
						if id := dig(d, "id"); !slices.Contains(sharedIDs[scope], id) {
							class := map[string]string{"group": "AuditEventsGroupExternalStreamingDestinationID", "instance": "AuditEventsInstanceExternalStreamingDestinationID"}[scope]
							on(t).mutate(adminToken, scope+"AuditEventStreamingDestinationsDelete",
								`mutation($id: `+class+`!) { `+scope+`AuditEventStreamingDestinationsDelete(input: {id: $id}) { errors } }`, map[string]any{"id": id})
							deleted = true
						}
					}
				}
				if !deleted {
					return snap
				}
			}
		}
		scopeOf := func(op gqlAuthzOp) string { return strings.Fields(op.kind)[0] }

		covered := map[string]bool{}
		for _, op := range ops {
			require.False(t, covered[op.name], "operation %q twice", op.name)
			covered[op.name] = true
			t.Run(op.name, func(t *testing.T) {
				// Refused callers, against the shared fixtures.
				var forbidden gqlResult
				for _, actor := range actors {
					o := want[op.kind][actor]
					if o == ok {
						continue
					}
					t.Run(actor, func(t *testing.T) {
						r := do(t, actor, op.doc, op.vars(shared[scopeOf(op)]))
						assertOutcome(t, op, o, r)
						if o == notFound && (actor == "dev" && scopeOf(op) == "group" || actor == "owner" && scopeOf(op) == "instance") {
							forbidden = r
						}
					})
				}
				// Nothing tells a destination that exists from one that does not: the same
				// request for an id (or group) that names nothing gets the very same response,
				// for the admin too.
				if !isQuery(op) && !(op.create && scopeOf(op) == "instance") {
					t.Run("missing id", func(t *testing.T) {
						require.NotEmpty(t, forbidden.Raw)
						for _, actor := range []string{"admin", "owner", "dev", "outside", "anonymous"} {
							r := do(t, actor, op.doc, op.vars(missing))
							assertOutcome(t, op, notFound, r)
							require.Equal(t, forbidden.Raw, r.Raw, "%s, missing id vs forbidden", actor)
						}
					})
				}
				after, _ := snapshot(t)
				require.Equal(t, initial, after, "a refused %s changed something", op.name)

				// Allowed callers, against fresh fixtures (queries read the shared ones).
				for _, actor := range actors {
					if want[op.kind][actor] != ok {
						continue
					}
					t.Run(actor, func(t *testing.T) {
						k := shared[scopeOf(op)]
						if len(op.needs) > 0 {
							k = newKit(t, scopeOf(op), fmt.Sprintf("-%d", next()), op.needs...)
						}
						r := do(t, actor, op.doc, op.vars(k))
						p := assertOutcome(t, op, ok, r)
						op.check(t, k, p)
						require.Equal(t, initial, restore(t), "%s by %s changed the shared fixtures", op.name, actor)
					})
				}
			})
		}

		// --- ids of another scope or category name nothing -------------------------------------

		t.Run("wrong scope or category", func(t *testing.T) {
			g, i := shared["group"], shared["instance"]
			cases := []struct {
				field, doc, id string
			}{
				{"groupAuditEventStreamingDestinationsDelete", `mutation($id: AuditEventsGroupExternalStreamingDestinationID!) { groupAuditEventStreamingDestinationsDelete(input: {id: $id}) { errors } }`, gid(cGroupDest, i.a)},
				{"instanceAuditEventStreamingDestinationsDelete", `mutation($id: AuditEventsInstanceExternalStreamingDestinationID!) { instanceAuditEventStreamingDestinationsDelete(input: {id: $id}) { errors } }`, gid(cInstDest, g.a)},
				{"googleCloudLoggingConfigurationDestroy", `mutation($id: AuditEventsGoogleCloudLoggingConfigurationID!) { googleCloudLoggingConfigurationDestroy(input: {id: $id}) { errors } }`, gid(cGCP, g.a)},
				{"externalAuditEventDestinationDestroy", `mutation($id: AuditEventsExternalAuditEventDestinationID!) { externalAuditEventDestinationDestroy(input: {id: $id}) { errors } }`, gid(cLegacy, g.aws)},
				{"auditEventsAmazonS3ConfigurationDelete", `mutation($id: AuditEventsAmazonS3ConfigurationID!) { auditEventsAmazonS3ConfigurationDelete(input: {id: $id}) { errors } }`, gid(cAWS, i.aws)},
				{"auditEventsStreamingHeadersDestroy", `mutation($id: AuditEventsStreamingHeaderID!) { auditEventsStreamingHeadersDestroy(input: {headerId: $id}) { errors } }`, gid(cHeader, i.header)},
				{"auditEventsGroupDestinationNamespaceFilterDelete", `mutation($id: AuditEventsGroupNamespaceFilterID!) { auditEventsGroupDestinationNamespaceFilterDelete(input: {namespaceFilterId: $id}) { errors } }`, gid(cGroupNS, i.nsFilter)},
				{"auditEventsInstanceDestinationNamespaceFilterDelete", `mutation($id: AuditEventsInstanceNamespaceFilterID!) { auditEventsInstanceDestinationNamespaceFilterDelete(input: {namespaceFilterId: $id}) { errors } }`, gid(cInstNS, g.nsFilter)},
			}
			for _, c := range cases {
				r := do(t, "admin", c.doc, map[string]any{"id": c.id})
				assertOutcome(t, gqlAuthzOp{kind: "instance mutation", field: c.field}, notFound, r)
			}
			after, _ := snapshot(t)
			require.Equal(t, initial, after)
		})

		// After everything, the shared fixtures read back as they were made.
		final, _ := snapshot(t)
		require.Equal(t, initial, final)
		require.Len(t, ops, 58, "every operation family is covered")
	})
}

// TestGraphQLInputJudgedAfterAuthorization: a malformed request from someone who may not
// change the destination gets the not-found answer, not a verdict on its input.
func TestGraphQLInputJudgedAfterAuthorization(t *testing.T) {
	s := start(t, "sqlite", noLimits)
	w := newWorld(t, s)
	id := s.createGroupDestination(s.admin, "org", "http", httpConfig("https://receiver.example/judged"), "")
	legacy := strings.Replace(id, "Group::ExternalStreamingDestination", "ExternalAuditEventDestination", 1)
	for name, q := range map[string]string{
		"empty filters":   `mutation { auditEventsGroupDestinationEventsAdd(input: {destinationId: "` + id + `", eventTypeFilters: []}) { errors } }`,
		"grace too long":  `mutation { auditEventStreamingDestinationSigningSecretRotate(input: {destinationId: "` + id + `", gracePeriodSeconds: 99999999}) { errors } }`,
		"no path":         `mutation { auditEventsGroupDestinationNamespaceFilterCreate(input: {destinationId: "` + id + `"}) { errors } }`,
		"neither path":    `mutation { auditEventsStreamingHttpNamespaceFiltersAdd(input: {destinationId: "` + legacy + `"}) { errors } }`,
		"read-only token": `mutation { auditEventsStreamingHttpNamespaceFiltersAdd(input: {destinationId: "` + legacy + `"}) { errors } }`,
	} {
		for _, tok := range []string{"", w.tokens["dev"], w.tokens["outside"], w.tokens["owner_read_api"]} {
			r := s.gql(tok, q, nil)
			require.Equal(t, []string{"The resource that you are attempting to access does not exist or you don't have permission to perform this action"}, r.messages(), "%s: %s", name, r.Raw)
		}
		r := s.gql(w.tokens["owner"], q, nil)
		require.Empty(t, r.Errors, r.Raw)
		require.Contains(t, r.Raw, `"errors":["`, "the owner is told what is wrong: %s", r.Raw)
	}
}

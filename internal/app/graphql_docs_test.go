package app_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	gitlab "gitlab.com/gitlab-org/api/client-go"
)

// docFixture prepares what one documented operation names (groups, ids), as GitLab's
// documentation assumes they exist.
type docFixture func(t *testing.T, s *server)

// docCheck asserts the response of one documented operation: data (nil when the request
// failed) and the error client-go returned.
type docCheck func(t *testing.T, data map[string]any, err error)

// TestGitLabDocumentedOperations sends every GraphQL operation of GitLab's audit event
// streaming documentation (testdata/gitlab-docs, copied verbatim) unchanged through client-go's
// GraphQL.Do, each against a fresh instance prepared with the ids and paths it names.
//
// Four operations cannot succeed as written, against GitLab either (see the README there):
// groups-02's token is 37 characters where 16-24 are allowed, groups-09 passes an enum where
// an id belongs, instances-08 keeps the "<id>" placeholder, and groups-11/12 and
// instances-09/10 filter on the placeholder "list of event type filters", which is not an event
// type (auditstream checks filters against the catalog). Those must fail with a clear error
// and change nothing.
func TestGitLabDocumentedOperations(t *testing.T) {
	dir := "../api/graphql/testdata/gitlab-docs"
	files, err := filepath.Glob(filepath.Join(dir, "*.graphql"))
	require.NoError(t, err)
	require.Len(t, files, 33, "every documented operation is covered")

	myGroup := func(t *testing.T, s *server) { mkGroup(t, s, "my-group", 11, 0) }
	pathTree := func(t *testing.T, s *server) {
		mkGroup(t, s, "path", 21, 0)
		mkGroup(t, s, "to", 22, 21)
		mkGroup(t, s, "subgroup", 23, 22)
		status, b, _ := s.do(http.MethodPost, "/api/v4/projects", s.admin, "application/json", []byte(`{"name":"project","path":"project","namespace_id":22,"id":31}`))
		require.Equal(t, http.StatusCreated, status, string(b))
	}
	groupHTTP := func(group string, headers ...string) docFixture {
		return func(t *testing.T, s *server) {
			cfg := httpConfig("https://receiver.example/" + group)
			if len(headers) > 0 {
				hs := map[string]any{}
				for _, h := range headers {
					hs[h] = map[string]any{"value": "v-" + h, "active": true}
				}
				cfg["headers"] = hs
			}
			s.createGroupDestination(s.admin, group, "http", cfg, "")
		}
	}
	instanceHTTP := func(headers ...string) docFixture {
		return func(t *testing.T, s *server) {
			cfg := httpConfig("https://receiver.example/instance")
			if len(headers) > 0 {
				hs := map[string]any{}
				for _, h := range headers {
					hs[h] = map[string]any{"value": "v-" + h, "active": true}
				}
				cfg["headers"] = hs
			}
			s.createInstanceDestination("http", cfg, "")
		}
	}
	gcpConfig := map[string]any{"googleProjectIdName": "fixture-project", "clientEmail": "sa@fixture-project.iam.gserviceaccount.com", "logIdName": "fixture-log"}
	groupGCP := func(t *testing.T, s *server) {
		s.createGroupDestination(s.admin, "my-group", "gcp", gcpConfig, "YOUR_PRIVATE_KEY")
	}
	instanceGCP := func(t *testing.T, s *server) { s.createInstanceDestination("gcp", gcpConfig, "YOUR_PRIVATE_KEY") }
	// burnDestinationIDs creates and deletes destinations until the next id is next.
	burnDestinationIDs := func(next int) docFixture {
		return func(t *testing.T, s *server) {
			for i := 1; i < next; i++ {
				id := s.createInstanceDestination("http", httpConfig(fmt.Sprintf("https://receiver.example/burn/%d", i)), "")
				s.mutate(s.admin, "instanceAuditEventStreamingDestinationsDelete",
					`mutation($id: AuditEventsInstanceExternalStreamingDestinationID!) { instanceAuditEventStreamingDestinationsDelete(input: {id: $id}) { errors } }`, map[string]any{"id": id})
			}
		}
	}
	// namespaceFilterFive leaves destination 1 of group path with namespace filter id 5.
	namespaceFilterFive := func(t *testing.T, s *server) {
		const dest = "gid://gitlab/AuditEvents::Group::ExternalStreamingDestination/1"
		for i := 1; i <= 5; i++ {
			p := s.mutate(s.admin, "auditEventsGroupDestinationNamespaceFilterCreate",
				`mutation($d: AuditEventsGroupExternalStreamingDestinationID!) { auditEventsGroupDestinationNamespaceFilterCreate(input: {destinationId: $d, namespacePath: "path/to/subgroup"}) { errors namespaceFilter { id } } }`,
				map[string]any{"d": dest})
			id := dig(p, "namespaceFilter", "id").(string)
			if i == 5 {
				require.Equal(t, "gid://gitlab/AuditEvents::Group::NamespaceFilter/5", id)
				return
			}
			s.mutate(s.admin, "auditEventsGroupDestinationNamespaceFilterDelete",
				`mutation($f: AuditEventsGroupNamespaceFilterID!) { auditEventsGroupDestinationNamespaceFilterDelete(input: {namespaceFilterId: $f}) { errors } }`, map[string]any{"f": id})
		}
	}

	noErrors := func(field string) docCheck {
		return func(t *testing.T, data map[string]any, err error) {
			require.NoError(t, err)
			require.Empty(t, data["errors"], "top-level errors")
			require.Equal(t, []any{}, dig(data, "data", field, "errors"), "payload errors")
		}
	}
	payloadError := func(field, want string) docCheck {
		return func(t *testing.T, data map[string]any, err error) {
			require.NoError(t, err)
			errs, _ := dig(data, "data", field, "errors").([]any)
			require.Len(t, errs, 1, "one clear error: %v", data)
			require.Contains(t, errs[0], want)
		}
	}
	// invalidID: the operation is refused while its arguments are read, with a top-level
	// error naming the bad value, and nothing runs.
	invalidID := func(field, want string) docCheck {
		return func(t *testing.T, data map[string]any, err error) {
			require.NoError(t, err)
			require.Contains(t, fmt.Sprint(dig(data, "errors", "0", "message")), want)
			require.Nil(t, dig(data, "data", field))
		}
	}
	and := func(checks ...docCheck) docCheck {
		return func(t *testing.T, data map[string]any, err error) {
			for _, c := range checks {
				c(t, data, err)
			}
		}
	}
	equal := func(want any, path ...string) docCheck {
		return func(t *testing.T, data map[string]any, err error) {
			require.Equal(t, want, dig(data, append([]string{"data"}, path...)...), "at %v", path)
		}
	}
	token24 := func(path ...string) docCheck {
		return func(t *testing.T, data map[string]any, err error) {
			tok, _ := dig(data, append([]string{"data"}, path...)...).(string)
			require.Len(t, tok, 24, "a generated verification token")
		}
	}
	legacyDest := "gid://gitlab/AuditEvents::ExternalAuditEventDestination/1"

	cases := map[string]struct {
		setup []docFixture
		check docCheck
	}{
		"groups-01": {[]docFixture{myGroup}, and(noErrors("externalAuditEventDestinationCreate"),
			equal(legacyDest, "externalAuditEventDestinationCreate", "externalAuditEventDestination", "id"),
			equal("https://mydomain.io/endpoint/ingest", "externalAuditEventDestinationCreate", "externalAuditEventDestination", "destinationUrl"),
			equal("my-group", "externalAuditEventDestinationCreate", "externalAuditEventDestination", "group", "name"),
			token24("externalAuditEventDestinationCreate", "externalAuditEventDestination", "verificationToken"))},
		"groups-02": {[]docFixture{myGroup}, and(payloadError("externalAuditEventDestinationCreate", "verificationToken"),
			equal(nil, "externalAuditEventDestinationCreate", "externalAuditEventDestination"))},
		"groups-03": {[]docFixture{myGroup}, and(noErrors("externalAuditEventDestinationCreate"),
			equal("destination-name-here", "externalAuditEventDestinationCreate", "externalAuditEventDestination", "name"))},
		"groups-04": {[]docFixture{myGroup, groupHTTP("my-group")}, and(noErrors("auditEventsStreamingHeadersCreate"),
			equal(map[string]any{"id": "gid://gitlab/AuditEvents::Streaming::Header/1", "key": "foo", "value": "bar", "active": false}, "auditEventsStreamingHeadersCreate", "header"))},
		"groups-05": {[]docFixture{myGroup, groupHTTP("my-group", "X-One")}, func(t *testing.T, data map[string]any, err error) {
			require.NoError(t, err)
			equal("gid://gitlab/Group/11", "group", "id")(t, data, err)
			equal(legacyDest, "group", "externalAuditEventDestinations", "nodes", "0", "id")(t, data, err)
			equal("https://receiver.example/my-group", "group", "externalAuditEventDestinations", "nodes", "0", "destinationUrl")(t, data, err)
			equal("X-One", "group", "externalAuditEventDestinations", "nodes", "0", "headers", "nodes", "0", "key")(t, data, err)
			equal([]any{}, "group", "externalAuditEventDestinations", "nodes", "0", "eventTypeFilters")(t, data, err)
			equal(nil, "group", "externalAuditEventDestinations", "nodes", "0", "namespaceFilter")(t, data, err)
		}},
		"groups-06": {[]docFixture{myGroup, groupHTTP("my-group")}, and(noErrors("externalAuditEventDestinationUpdate"),
			equal("https://www.new-domain.com/webhook", "externalAuditEventDestinationUpdate", "externalAuditEventDestination", "destinationUrl"),
			equal("destination-name", "externalAuditEventDestinationUpdate", "externalAuditEventDestination", "name"))},
		"groups-07": {[]docFixture{myGroup, groupHTTP("my-group", "X-A", "X-B")}, and(noErrors("auditEventsStreamingHeadersUpdate"),
			equal(map[string]any{"id": "gid://gitlab/AuditEvents::Streaming::Header/2", "key": "new-key", "value": "new-value", "active": false}, "auditEventsStreamingHeadersUpdate", "header"))},
		"groups-08": {[]docFixture{myGroup, groupHTTP("my-group", "X-A")}, noErrors("auditEventsStreamingHeadersDestroy")},
		"groups-09": {[]docFixture{myGroup, groupHTTP("my-group")}, invalidID("externalAuditEventDestinationDestroy", `"destination" is not a valid ID for AuditEvents::ExternalAuditEventDestination`)},
		"groups-10": {[]docFixture{myGroup, groupHTTP("my-group", "X-A")}, noErrors("auditEventsStreamingHeadersDestroy")},
		"groups-11": {[]docFixture{myGroup, groupHTTP("my-group")}, payloadError("auditEventsStreamingDestinationEventsAdd", `unknown event type "list of event type filters"`)},
		"groups-12": {[]docFixture{myGroup, groupHTTP("my-group")}, payloadError("auditEventsStreamingDestinationEventsRemove", "Couldn't find event type filters")},
		"groups-13": {[]docFixture{pathTree, groupHTTP("path")}, and(noErrors("auditEventsStreamingHttpNamespaceFiltersAdd"),
			equal(map[string]any{"id": "gid://gitlab/Group/23", "name": "subgroup", "fullName": "path / to / subgroup"}, "auditEventsStreamingHttpNamespaceFiltersAdd", "namespaceFilter", "namespace"))},
		"groups-14": {[]docFixture{pathTree, groupHTTP("path")}, and(noErrors("auditEventsStreamingHttpNamespaceFiltersAdd"),
			equal(map[string]any{"id": "gid://gitlab/Project/31", "name": "project", "fullName": "path / to / project"}, "auditEventsStreamingHttpNamespaceFiltersAdd", "namespaceFilter", "namespace"))},
		"groups-15": {[]docFixture{pathTree, groupHTTP("path"), namespaceFilterFive}, noErrors("auditEventsStreamingHttpNamespaceFiltersDelete")},
		"groups-16": {[]docFixture{myGroup}, and(noErrors("googleCloudLoggingConfigurationCreate"),
			equal(map[string]any{"id": "gid://gitlab/AuditEvents::GoogleCloudLoggingConfiguration/1", "googleProjectIdName": "my-google-project", "logIdName": "audit-events",
				"clientEmail": "my-email@my-google-project.iam.gservice.account.com", "name": "destination-name"}, "googleCloudLoggingConfigurationCreate", "googleCloudLoggingConfiguration"))},
		"groups-17": {[]docFixture{myGroup, groupGCP}, func(t *testing.T, data map[string]any, err error) {
			require.NoError(t, err)
			node, _ := dig(data, "data", "group", "googleCloudLoggingConfigurations", "nodes", "0").(map[string]any)
			require.True(t, strings.HasPrefix(fmt.Sprint(node["name"]), "Destination_"), "GitLab's default name: %v", node["name"])
			delete(node, "name")
			require.Equal(t, map[string]any{"id": "gid://gitlab/AuditEvents::GoogleCloudLoggingConfiguration/1", "logIdName": "fixture-log",
				"googleProjectIdName": "fixture-project", "clientEmail": "sa@fixture-project.iam.gserviceaccount.com"}, node)
		}},
		"groups-18": {[]docFixture{myGroup, groupGCP}, and(noErrors("googleCloudLoggingConfigurationUpdate"),
			equal(map[string]any{"id": "gid://gitlab/AuditEvents::GoogleCloudLoggingConfiguration/1", "googleProjectIdName": "my-google-project", "logIdName": "audit-events",
				"clientEmail": "my-email@my-google-project.iam.gservice.account.com", "name": "updated-destination-name"}, "googleCloudLoggingConfigurationUpdate", "googleCloudLoggingConfiguration"))},
		"groups-19": {[]docFixture{myGroup, groupGCP}, noErrors("googleCloudLoggingConfigurationDestroy")},

		"instances-01": {nil, and(noErrors("instanceExternalAuditEventDestinationCreate"),
			equal("https://mydomain.io/endpoint/ingest", "instanceExternalAuditEventDestinationCreate", "instanceExternalAuditEventDestination", "destinationUrl"),
			token24("instanceExternalAuditEventDestinationCreate", "instanceExternalAuditEventDestination", "verificationToken"))},
		"instances-02": {nil, and(noErrors("instanceExternalAuditEventDestinationCreate"),
			equal("destination-name-here", "instanceExternalAuditEventDestinationCreate", "instanceExternalAuditEventDestination", "name"))},
		"instances-03": {[]docFixture{burnDestinationIDs(42), instanceHTTP()}, and(noErrors("auditEventsStreamingInstanceHeadersCreate"),
			equal(map[string]any{"id": "gid://gitlab/AuditEvents::Streaming::InstanceHeader/1", "key": "foo", "value": "bar", "active": true}, "auditEventsStreamingInstanceHeadersCreate", "header"))},
		"instances-04": {[]docFixture{instanceHTTP("X-One")}, and(
			equal("gid://gitlab/AuditEvents::InstanceExternalAuditEventDestination/1", "instanceExternalAuditEventDestinations", "nodes", "0", "id"),
			equal("X-One", "instanceExternalAuditEventDestinations", "nodes", "0", "headers", "nodes", "0", "key"))},
		"instances-05": {[]docFixture{instanceHTTP()}, and(noErrors("instanceExternalAuditEventDestinationUpdate"),
			equal("https://www.new-domain.com/webhook", "instanceExternalAuditEventDestinationUpdate", "instanceExternalAuditEventDestination", "destinationUrl"))},
		"instances-06": {[]docFixture{instanceHTTP("X-A", "X-B")}, and(noErrors("auditEventsStreamingInstanceHeadersUpdate"),
			equal("new-key", "auditEventsStreamingInstanceHeadersUpdate", "header", "key"))},
		"instances-07": {[]docFixture{instanceHTTP()}, noErrors("instanceExternalAuditEventDestinationDestroy")},
		"instances-08": {[]docFixture{instanceHTTP("X-A")}, invalidID("auditEventsStreamingInstanceHeadersDestroy", "is not a valid ID for AuditEvents::Streaming::InstanceHeader")},
		"instances-09": {[]docFixture{instanceHTTP()}, payloadError("auditEventsStreamingDestinationInstanceEventsAdd", `unknown event type "list of event type filters"`)},
		"instances-10": {[]docFixture{instanceHTTP()}, payloadError("auditEventsStreamingDestinationInstanceEventsRemove", "Couldn't find event type filters")},
		"instances-11": {nil, and(noErrors("instanceGoogleCloudLoggingConfigurationCreate"),
			equal("gid://gitlab/AuditEvents::Instance::GoogleCloudLoggingConfiguration/1", "instanceGoogleCloudLoggingConfigurationCreate", "googleCloudLoggingConfiguration", "id"))},
		"instances-12": {[]docFixture{instanceGCP}, equal("fixture-project", "instanceGoogleCloudLoggingConfigurations", "nodes", "0", "googleProjectIdName")},
		"instances-13": {[]docFixture{instanceGCP}, and(noErrors("instanceGoogleCloudLoggingConfigurationUpdate"),
			equal("updated-google-id", "instanceGoogleCloudLoggingConfigurationUpdate", "instanceGoogleCloudLoggingConfiguration", "googleProjectIdName"))},
		"instances-14": {[]docFixture{instanceGCP}, noErrors("instanceGoogleCloudLoggingConfigurationDestroy")},
	}

	for _, f := range files {
		base := filepath.Base(f)
		name := base[:strings.Index(base, "-")+3] // groups-01
		c, ok := cases[name]
		require.True(t, ok, "no expectation for %s", base)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			op, err := os.ReadFile(f)
			require.NoError(t, err)
			s := start(t, "sqlite", noLimits)
			for _, fx := range c.setup {
				fx(t, s)
			}
			before := s.gqlOK(s.admin, allDestinationsQuery, nil)
			var resp map[string]any
			_, err = s.client(s.admin).GraphQL.Do(gitlab.GraphQLQuery{Query: string(op)}, &resp)
			c.check(t, resp, err)
			if err != nil || dig(resp, "data") == nil || hasPayloadErrors(resp) {
				require.Equal(t, before, s.gqlOK(s.admin, allDestinationsQuery, nil), "a refused operation changes nothing")
			}
		})
	}
}

// allDestinationsQuery reads every destination the fixtures of the documented operations
// create, with everything that could change.
const allDestinationsQuery = `{
  auditEventsInstanceStreamingDestinations { nodes { id name config active eventTypeFilters namespaceFilters { id } } }
  a: group(fullPath: "my-group") { externalAuditEventStreamingDestinations { nodes { id name config active eventTypeFilters namespaceFilters { id } } } }
  b: group(fullPath: "path") { externalAuditEventStreamingDestinations { nodes { id name config active eventTypeFilters namespaceFilters { id } } } }
}`

func hasPayloadErrors(resp map[string]any) bool {
	data, _ := resp["data"].(map[string]any)
	for _, v := range data {
		if errs, _ := dig(v, "errors").([]any); len(errs) > 0 {
			return true
		}
	}
	return false
}

// mkGroup creates a group through the admin REST API.
func mkGroup(t testing.TB, s *server, path string, id, parent int) {
	t.Helper()
	body := fmt.Sprintf(`{"name":%q,"path":%q,"id":%d}`, path, path, id)
	if parent != 0 {
		body = fmt.Sprintf(`{"name":%q,"path":%q,"id":%d,"parent_id":%d}`, path, path, id, parent)
	}
	status, b, _ := s.do(http.MethodPost, "/api/v4/groups", s.admin, "application/json", []byte(body))
	require.Equal(t, http.StatusCreated, status, string(b))
}

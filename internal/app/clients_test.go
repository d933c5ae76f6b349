package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/auditstream/auditstream/internal/app"
	"github.com/auditstream/auditstream/internal/store"
)

// Issue 14: what GitLab's own clients (client-go, gitbeaker) and the SIEM collectors that
// speak GitLab's API send, run unchanged against the service.

// TestTimeParametersAsGitLabAccepts: created_after and created_before take what GitLab's Grape
// DateTime parameters take. A SIEM collector sends Python's naive isoformat()
// (2025-10-14T21:00:00.000000): it was refused with 400, and the collector, which swallows
// errors, collected nothing.
func TestTimeParametersAsGitLabAccepts(t *testing.T) {
	s := start(t, "sqlite")
	base := time.Date(2025, 10, 14, 18, 0, 0, 0, time.UTC) // events at 18:00 … 03:00 the next day
	var events []map[string]any
	for i := range 10 {
		e := ev("user_created", "Instance", "", 0, 1, fmt.Sprint(i))
		e["created_at"] = base.Add(time.Duration(i) * time.Hour).Format(time.RFC3339)
		events = append(events, e)
	}
	s.ingest(adminToken, events...)
	s.waitStored(10)
	for _, tt := range []struct {
		after string
		want  string
	}{
		{"2025-10-14T21:00:00.000000", "7"}, // naive: UTC
		{"2025-10-14T21:00:00", "7"},
		{"2025-10-14 21:00:00", "7"},
		{"2025-10-14 21:00:00 +0000", "7"},
		{"2025-10-14T23:00:00+0200", "7"},
		{"2025-10-14T21:00:00.5Z", "6"},
		{"2025-10-15", "4"}, // a date alone: midnight UTC
	} {
		for _, path := range []string{"/api/v4/audit_events", "/api/v4/audit_events?pagination=keyset&per_page=100"} {
			sep := "?"
			if len(path) > len("/api/v4/audit_events") {
				sep = "&"
			}
			status, body, h := s.do(http.MethodGet, path+sep+"created_after="+url.QueryEscape(tt.after), adminToken, "", nil)
			require.Equal(t, http.StatusOK, status, "%s: %s", tt.after, body)
			if h.Get("X-Total") != "" {
				require.Equal(t, tt.want, h.Get("X-Total"), tt.after)
			}
		}
	}
	// created_before too, and the instant a "+" that was not encoded turned into a space.
	status, body, h := s.do(http.MethodGet, "/api/v4/audit_events?created_before=2025-10-14T22:00:00+02:00", adminToken, "", nil)
	require.Equal(t, http.StatusOK, status, string(body))
	require.Equal(t, "3", h.Get("X-Total"), "before 20:00Z: 18:00, 19:00, 20:00")

	// gitbeaker passes the collector's strings through as they are.
	var got []map[string]any
	if err := s.gitbeaker(adminToken, `return await api.AuditEvents.all({
		createdAfter: '2025-10-14T21:00:00.000000', createdBefore: '2025-10-15 00:00:00', maxPages: 1 });`, &got); err != nil {
		t.Fatalf("gitbeaker AuditEvents.all: %+v", err)
	}
	require.Len(t, got, 4, "21:00, 22:00, 23:00 and 00:00")

	status, body, _ = s.do(http.MethodGet, "/api/v4/audit_events?created_after=yesterday", adminToken, "", nil)
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, string(body), "created_after")
}

// TestListUsersFiltersAndPages: GET /users honours GitLab's filters and pages like the other
// lists. client-go's ListUsers and gitbeaker's Users.all({username}) got every user.
func TestListUsersFiltersAndPages(t *testing.T) {
	s := start(t, "sqlite")
	admin := s.client(adminToken)
	for _, u := range [][2]string{{"alice", "Alice Liddell"}, {"bob", "Bob Builder"}, {"carol", "Carol Alison"}} {
		_, _, err := admin.Users.CreateUser(&gitlab.CreateUserOptions{Username: gitlab.Ptr(u[0]), Name: gitlab.Ptr(u[1]), Email: gitlab.Ptr(u[0] + "@example.com")})
		require.NoError(t, err)
	}
	names := func(us []*gitlab.User) []string {
		var out []string
		for _, u := range us {
			out = append(out, u.Username)
		}
		return out
	}
	list := func(opt *gitlab.ListUsersOptions) []string {
		t.Helper()
		us, _, err := admin.Users.ListUsers(opt)
		require.NoError(t, err)
		return names(us)
	}
	require.Equal(t, []string{"alice"}, list(&gitlab.ListUsersOptions{Username: gitlab.Ptr("alice")}))
	require.Equal(t, []string{"alice"}, list(&gitlab.ListUsersOptions{Username: gitlab.Ptr("ALICE")}), "usernames match case-insensitively")
	require.Empty(t, list(&gitlab.ListUsersOptions{Username: gitlab.Ptr("ali")}), "username is exact")
	require.ElementsMatch(t, []string{"alice", "carol"}, list(&gitlab.ListUsersOptions{Search: gitlab.Ptr("ali")}), "search: name, username or email")
	require.Equal(t, []string{"bob"}, list(&gitlab.ListUsersOptions{Search: gitlab.Ptr("bob@example.com")}))
	require.Len(t, list(&gitlab.ListUsersOptions{Active: gitlab.Ptr(true)}), 4)
	require.Empty(t, list(&gitlab.ListUsersOptions{Blocked: gitlab.Ptr(true)}), "no user is blocked")
	require.Empty(t, list(&gitlab.ListUsersOptions{External: gitlab.Ptr(true)}), "no user is external")
	require.Len(t, list(&gitlab.ListUsersOptions{ExcludeExternal: gitlab.Ptr(true)}), 4)
	require.Len(t, list(&gitlab.ListUsersOptions{Active: gitlab.Ptr(false)}), 4, "false filters nothing, as in GitLab")
	require.Len(t, list(&gitlab.ListUsersOptions{Blocked: gitlab.Ptr(false)}), 4)
	require.Len(t, list(&gitlab.ListUsersOptions{Admins: gitlab.Ptr(true)}), 1)
	require.Equal(t, []string{"carol", "bob", "alice", "root"}, list(nil), "GitLab's default order: id descending")
	require.Equal(t, []string{"alice", "bob", "carol", "root"}, list(&gitlab.ListUsersOptions{OrderBy: gitlab.Ptr("username"), Sort: gitlab.Ptr("asc")}))

	// Pages, with GitLab's headers.
	us, resp, err := admin.Users.ListUsers(&gitlab.ListUsersOptions{ListOptions: gitlab.ListOptions{Page: 2, PerPage: 3}})
	require.NoError(t, err)
	require.Len(t, us, 1)
	require.Equal(t, int64(4), resp.TotalItems)
	require.Equal(t, int64(2), resp.TotalPages)
	require.Equal(t, int64(2), resp.CurrentPage)
	require.Equal(t, int64(1), resp.PreviousPage)
	require.Contains(t, resp.Header.Get("Link"), `rel="first"`)

	var got []map[string]any
	if e := s.gitbeaker(adminToken, `return await api.Users.all({ username: 'alice' });`, &got); e != nil {
		t.Fatalf("gitbeaker Users.all: %+v", e)
	}
	require.Len(t, got, 1)
	require.Equal(t, "alice", got[0]["username"])
	var paged struct {
		Data           []map[string]any `json:"data"`
		PaginationInfo struct {
			Total      int `json:"total"`
			TotalPages int `json:"totalPages"`
			Next       *int
		} `json:"paginationInfo"`
	}
	if e := s.gitbeaker(adminToken, `return await api.Users.all({ perPage: 2, maxPages: 1, showExpanded: true });`, &paged); e != nil {
		t.Fatalf("gitbeaker Users.all: %+v", e)
	}
	require.Len(t, paged.Data, 2)
	require.Equal(t, 4, paged.PaginationInfo.Total)
	require.Equal(t, 2, paged.PaginationInfo.TotalPages)

	status, body, _ := s.do(http.MethodGet, "/api/v4/users?active=maybe", adminToken, "", nil)
	require.Equal(t, http.StatusBadRequest, status, string(body))
}

// TestImpersonationTokens: GitLab's impersonation-token API (admins only). An impersonation
// token is a token of that user marked impersonation: it acts as the user, is listed and
// revoked only through this API, and its user cannot see or revoke it through
// /personal_access_tokens. Both clients call it; it was 404.
func TestImpersonationTokens(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := start(t, driver)
		admin := s.client(adminToken)
		alice, _, err := admin.Users.CreateUser(&gitlab.CreateUserOptions{Username: gitlab.Ptr("alice"), Name: gitlab.Ptr("Alice"), Email: gitlab.Ptr("alice@example.com")})
		require.NoError(t, err)
		pat, _, err := admin.Users.CreatePersonalAccessToken(alice.ID, &gitlab.CreatePersonalAccessTokenOptions{Name: gitlab.Ptr("own"), Scopes: &[]string{"api"}})
		require.NoError(t, err)

		// client-go sends expires_at as a full time; GitLab reads the date of it.
		expires := time.Now().AddDate(0, 1, 0).UTC()
		imp, _, err := admin.Users.CreateImpersonationToken(alice.ID, &gitlab.CreateImpersonationTokenOptions{
			Name: gitlab.Ptr("support"), Scopes: &[]string{"read_api"}, ExpiresAt: &expires})
		require.NoError(t, err)
		require.NotEmpty(t, imp.Token)
		require.True(t, imp.Active)
		require.Equal(t, []string{"read_api"}, imp.Scopes)
		require.Equal(t, expires.Format("2006-01-02"), imp.ExpiresAt.String())

		// It acts as alice.
		me, _, err := s.client(imp.Token).Users.CurrentUser()
		require.NoError(t, err)
		require.Equal(t, "alice", me.Username)

		got, _, err := admin.Users.GetImpersonationToken(alice.ID, imp.ID)
		require.NoError(t, err)
		require.Equal(t, "support", got.Name)
		require.Empty(t, got.Token, "the token is shown once")
		list, _, err := admin.Users.GetAllImpersonationTokens(alice.ID, nil)
		require.NoError(t, err)
		require.Len(t, list, 1, "personal access tokens are not impersonation tokens")
		_, resp, err := admin.Users.GetImpersonationToken(alice.ID, pat.ID)
		require.Error(t, err)
		require.Equal(t, http.StatusNotFound, resp.StatusCode, "a personal access token is not an impersonation token")

		// alice's own view leaves it out, and she cannot revoke it (GitLab's finder: impersonation false).
		own, _, err := s.client(pat.Token).PersonalAccessTokens.ListPersonalAccessTokens(nil)
		require.NoError(t, err)
		require.Len(t, own, 1)
		require.Equal(t, "own", own[0].Name)
		resp, err = s.client(pat.Token).PersonalAccessTokens.RevokePersonalAccessTokenByID(imp.ID)
		require.Error(t, err)
		require.Equal(t, http.StatusNotFound, resp.StatusCode)

		// Admins only.
		_, resp, err = s.client(pat.Token).Users.GetAllImpersonationTokens(alice.ID, nil)
		require.Error(t, err)
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
		_, resp, err = admin.Users.GetAllImpersonationTokens(alice.ID+100, nil)
		require.Error(t, err)
		require.Equal(t, http.StatusNotFound, resp.StatusCode)

		// gitbeaker: create, list active, show, revoke.
		var created map[string]any
		if e := s.gitbeaker(adminToken, fmt.Sprintf(`return await api.UserImpersonationTokens.create(%d, 'gb', ['api'], { expiresAt: '%s' });`,
			alice.ID, expires.Format("2006-01-02")), &created); e != nil {
			t.Fatalf("gitbeaker UserImpersonationTokens.create: %+v", e)
		}
		require.Equal(t, true, created["impersonation"])
		require.NotEmpty(t, created["token"])
		gbID := int64(created["id"].(float64))
		var shown map[string]any
		require.Nil(t, s.gitbeaker(adminToken, fmt.Sprintf(`return await api.UserImpersonationTokens.show(%d, %d);`, alice.ID, gbID), &shown))
		require.Equal(t, "gb", shown["name"])
		require.Nil(t, s.gitbeaker(adminToken, fmt.Sprintf(`return await api.UserImpersonationTokens.revoke(%d, %d);`, alice.ID, gbID), nil))
		var active, inactive []map[string]any
		require.Nil(t, s.gitbeaker(adminToken, fmt.Sprintf(`return await api.UserImpersonationTokens.all(%d, { state: 'active' });`, alice.ID), &active))
		require.Nil(t, s.gitbeaker(adminToken, fmt.Sprintf(`return await api.UserImpersonationTokens.all(%d, { state: 'inactive' });`, alice.ID), &inactive))
		require.Len(t, active, 1)
		require.Len(t, inactive, 1)
		require.Equal(t, "gb", inactive[0]["name"])
		require.Equal(t, true, inactive[0]["revoked"])

		// Revoked: it no longer authenticates.
		_, err = admin.Users.RevokeImpersonationToken(alice.ID, imp.ID)
		require.NoError(t, err)
		_, resp, err = s.client(imp.Token).Users.CurrentUser()
		require.Error(t, err)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	})
}

// TestCreatedNamespacesHaveIDsAtOnce: a group or project created through the API or the CLI has
// a usable id at once (it had 0), so the next natural call, creating a project in it by
// namespace_id, works through both clients; a group created ahead with the CLI takes events
// naming it by path alone, and when the GitLab instance's first event tells the group's real id
// the group adopts it: same group, same members, same events, and the id given here still
// resolves.
func TestCreatedNamespacesHaveIDsAtOnce(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		cfg := serviceConfig(t, driver)
		// The CLI (auditstream group create --path acme/sub) before the server runs.
		adm, err := app.OpenAdmin(t.Context(), cfg)
		require.NoError(t, err)
		_, err = adm.CreateNamespace(t.Context(), store.KindGroup, "acme", "", 0)
		require.NoError(t, err)
		sub, err := adm.CreateNamespace(t.Context(), store.KindGroup, "acme/sub", "", 0)
		require.NoError(t, err)
		require.NoError(t, adm.Close())
		require.NotZero(t, sub.ID, "a usable id at once")
		s := startCfg(t, cfg)
		admin := s.client(adminToken)

		// client-go: a group, then a project in it by namespace_id.
		g, _, err := admin.Groups.CreateGroup(&gitlab.CreateGroupOptions{Name: gitlab.Ptr("Org"), Path: gitlab.Ptr("org")})
		require.NoError(t, err)
		require.NotZero(t, g.ID)
		p, _, err := admin.Projects.CreateProject(&gitlab.CreateProjectOptions{Name: gitlab.Ptr("app"), NamespaceID: gitlab.Ptr(g.ID)})
		require.NoError(t, err)
		require.NotZero(t, p.ID)
		require.Equal(t, "org/app", p.PathWithNamespace)
		got, _, err := admin.Projects.GetProject(p.ID, nil)
		require.NoError(t, err)
		require.Equal(t, "org/app", got.PathWithNamespace)

		// gitbeaker: the same, in a subgroup.
		var gb, gp map[string]any
		if e := s.gitbeaker(adminToken, fmt.Sprintf(`return await api.Groups.create('Team', 'team', { parentId: %d });`, g.ID), &gb); e != nil {
			t.Fatalf("gitbeaker Groups.create: %+v", e)
		}
		require.NotZero(t, gb["id"])
		if e := s.gitbeaker(adminToken, fmt.Sprintf(`return await api.Projects.create({ name: 'svc', namespaceId: %v });`, gb["id"]), &gp); e != nil {
			t.Fatalf("gitbeaker Projects.create: %+v", e)
		}
		require.Equal(t, "org/team/svc", gp["path_with_namespace"])

		// The CLI's group takes events by path alone.
		owner, _, err := admin.Users.CreateUser(&gitlab.CreateUserOptions{Username: gitlab.Ptr("owner"), Name: gitlab.Ptr("Owner"), Email: gitlab.Ptr("o@example.com")})
		require.NoError(t, err)
		_, _, err = admin.GroupMembers.AddGroupMember("acme/sub", &gitlab.AddGroupMemberOptions{UserID: gitlab.Ptr(owner.ID), AccessLevel: gitlab.Ptr(gitlab.OwnerPermissions)})
		require.NoError(t, err)
		s.ingest(adminToken, ev("group_created", "Group", "acme/sub", 0, 1, "by path"))
		// GitLab's own event about it tells its real id: the group adopts it.
		s.ingest(adminToken, ev("group_created", "Group", "acme/sub", 555, 1, "from GitLab"))
		s.waitStored(2 + 6 + 2) // and the audit events of the 6 changes above (2 groups, 2 projects, a user, a member) and of the CLI's 2 groups
		adopted, _, err := admin.Groups.GetGroup(555, nil)
		require.NoError(t, err)
		require.Equal(t, "acme/sub", adopted.FullPath)
		byOldID, _, err := admin.Groups.GetGroup(sub.ID, nil)
		require.NoError(t, err, "the id given here still names the group")
		require.Equal(t, int64(555), byOldID.ID)
		members, _, err := admin.Groups.ListGroupMembers(555, nil)
		require.NoError(t, err)
		require.Len(t, members, 1, "members stay with the group")
		evs, _, err := admin.AuditEvents.ListGroupAuditEvents(555, nil)
		require.NoError(t, err)
		require.Len(t, evs, 4, "both events are the group's, and so are the audit events of its creation by the CLI and of the member added under the id given here")

		// An id of the range assigned here names only what it was given to.
		status, body, _ := s.do(http.MethodPost, "/api/v4/audit_events", adminToken, "application/json",
			[]byte(fmt.Sprintf(`{"event_type":"group_created","entity_type":"Group","entity_path":"elsewhere","entity_id":%d}`, sub.ID+1000)))
		require.Equal(t, http.StatusUnprocessableEntity, status, string(body))
		require.Contains(t, string(body), "entity_id")
	})
}

// TestGraphQLConfigAsJSONString: the unified API takes config as a JSON object or, as GitLab's
// own QA client sends it, as a string holding the object's JSON (GitLab stores config in a
// jsonb attribute, which parses a string). It was refused "must be a JSON object".
func TestGraphQLConfigAsJSONString(t *testing.T) {
	s := start(t, "sqlite", noLimits)
	newWorld(t, s)
	// GitLab QA's literal, verbatim in the query text.
	p := s.mutate(adminToken, "groupAuditEventStreamingDestinationsCreate",
		`mutation { groupAuditEventStreamingDestinationsCreate(input: {groupPath: "org", name: "qa", category: "http",
			config: "{\"url\":\"https://receiver.example/qa\"}"}) { errors externalAuditEventDestination { id config } } }`, nil)
	require.Equal(t, map[string]any{"url": "https://receiver.example/qa"}, dig(p, "externalAuditEventDestination", "config"))
	id := dig(p, "externalAuditEventDestination", "id")
	// And as a variable, on update and for the instance.
	p = s.mutate(adminToken, "groupAuditEventStreamingDestinationsUpdate",
		`mutation($id: AuditEventsGroupExternalStreamingDestinationID!, $cfg: JSON) { groupAuditEventStreamingDestinationsUpdate(input: {id: $id, config: $cfg}) { errors externalAuditEventDestination { config } } }`,
		map[string]any{"id": id, "cfg": `{"url":"https://receiver.example/qa2"}`})
	require.Equal(t, "https://receiver.example/qa2", dig(p, "externalAuditEventDestination", "config", "url"))
	p = s.mutate(adminToken, "instanceAuditEventStreamingDestinationsCreate",
		`mutation($cfg: JSON!) { instanceAuditEventStreamingDestinationsCreate(input: {category: "http", config: $cfg}) { errors externalAuditEventDestination { config } } }`,
		map[string]any{"cfg": `{"url":"https://receiver.example/instance"}`})
	require.Equal(t, "https://receiver.example/instance", dig(p, "externalAuditEventDestination", "config", "url"))
	// A string that does not hold an object is still refused.
	r := s.gql(adminToken, `mutation { groupAuditEventStreamingDestinationsCreate(input: {groupPath: "org", category: "http", config: "https://receiver.example"}) { errors } }`, nil)
	require.NotEmpty(t, dig(r.Data, "groupAuditEventStreamingDestinationsCreate", "errors"), r.Raw)
}

// TestDestinationNamesAreUniquePerCategory: GitLab keeps a destination's name unique per
// category and group (per category for the instance): the legacy API has a table per category
// and the unified model validates name uniqueness scoped to category. Run in the order of
// GitLab's docs page, the Cloud Logging configuration named like the renamed HTTP destination
// failed "Name has already been taken".
func TestDestinationNamesAreUniquePerCategory(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := start(t, driver, noLimits)
		newWorld(t, s)
		s.mutate(adminToken, "externalAuditEventDestinationCreate",
			`mutation { externalAuditEventDestinationCreate(input: {destinationUrl: "https://receiver.example/docs", groupPath: "org"}) { errors externalAuditEventDestination { id } } }`, nil)
		list := s.gqlOK(adminToken, `{ group(fullPath: "org") { externalAuditEventDestinations { nodes { id } } } }`, nil)
		httpID := dig(list, "group", "externalAuditEventDestinations", "nodes", "0", "id")
		s.mutate(adminToken, "externalAuditEventDestinationUpdate",
			`mutation($id: AuditEventsExternalAuditEventDestinationID!) { externalAuditEventDestinationUpdate(input: {id: $id, name: "destination-name"}) { errors } }`,
			map[string]any{"id": httpID})
		const gcpKey = "YOUR_PRIVATE_KEY"
		p := s.mutate(adminToken, "googleCloudLoggingConfigurationCreate",
			`mutation { googleCloudLoggingConfigurationCreate(input: {groupPath: "org", googleProjectIdName: "my-google-project", clientEmail: "my-email@my-google-project.iam.gservice.account.com", privateKey: "`+gcpKey+`", logIdName: "audit-events", name: "destination-name"}) { errors googleCloudLoggingConfiguration { name } } }`, nil)
		require.Equal(t, "destination-name", dig(p, "googleCloudLoggingConfiguration", "name"))

		// The unified API: another category may share the name, the same category may not.
		create := func(category, cfg, secret string) gqlResult {
			return s.gql(adminToken, `mutation($c: String!, $cfg: JSON!, $s: String) { groupAuditEventStreamingDestinationsCreate(input: {groupPath: "org", name: "destination-name", category: $c, config: $cfg, secretToken: $s}) { errors } }`,
				map[string]any{"c": category, "cfg": cfg, "s": secret})
		}
		r := create("aws", `{"accessKeyXid":"AKIAIOSFODNN7EXAMPLE","bucketName":"audit-bucket","awsRegion":"us-east-1"}`, "secret-access-key")
		require.Empty(t, dig(r.Data, "groupAuditEventStreamingDestinationsCreate", "errors"), r.Raw)
		r = create("http", `{"url":"https://receiver.example/other"}`, "")
		require.Equal(t, []any{"Name has already been taken"}, dig(r.Data, "groupAuditEventStreamingDestinationsCreate", "errors"), r.Raw)

		// The instance: the same, per category.
		for _, tt := range []struct {
			category, cfg, secret string
			errs                  []any
		}{
			{"http", `{"url":"https://receiver.example/i"}`, "", []any{}},
			{"gcp", `{"googleProjectIdName":"my-google-project","clientEmail":"a@b.iam.gserviceaccount.com","logIdName":"audit-events"}`, gcpKey, []any{}},
			{"http", `{"url":"https://receiver.example/i2"}`, "", []any{"Name has already been taken"}},
		} {
			r := s.gql(adminToken, `mutation($c: String!, $cfg: JSON!, $s: String) { instanceAuditEventStreamingDestinationsCreate(input: {name: "shared", category: $c, config: $cfg, secretToken: $s}) { errors } }`,
				map[string]any{"c": tt.category, "cfg": tt.cfg, "s": tt.secret})
			require.Equal(t, tt.errs, dig(r.Data, "instanceAuditEventStreamingDestinationsCreate", "errors"), r.Raw)
		}
	})
}

// TestValidationReportsEveryProblemAtOnce: the README's bad batch has two invalid events (event
// 0 names a group nobody told the id of; it was reported only when sent alone), and a GraphQL
// create or update with a taken name and a bad URL reports both (the name came only after the
// URL was fixed).
func TestValidationReportsEveryProblemAtOnce(t *testing.T) {
	s := start(t, "sqlite", noLimits)
	newWorld(t, s)
	status, body, _ := s.do(http.MethodPost, "/api/v4/audit_events", adminToken, "application/json",
		[]byte(`[{"event_type":"member_created","entity_type":"Group","entity_path":"g"},{"event_type":"nope","entity_type":"User"}]`))
	require.Equal(t, http.StatusUnprocessableEntity, status, string(body))
	var res struct {
		Message string
		Code    string
		Events  []struct {
			Index  int
			Errors []struct{ Field, Code string }
		}
	}
	require.NoError(t, json.Unmarshal(body, &res))
	require.Equal(t, "validation_failed", res.Code)
	require.Equal(t, "2 of 2 events are invalid; nothing was accepted", res.Message)
	require.Len(t, res.Events, 2, string(body))
	require.Equal(t, 0, res.Events[0].Index)
	require.Equal(t, "entity_id", res.Events[0].Errors[0].Field)
	require.Equal(t, "required", res.Events[0].Errors[0].Code)
	require.Equal(t, 1, res.Events[1].Index)
	// An id given by an earlier event of the same batch still counts.
	s.ingest(adminToken, ev("member_created", "Group", "fresh", 900, 1, "with id"), ev("member_created", "Group", "fresh", 0, 1, "by path"))

	create := `mutation($n: String, $cfg: JSON!) { groupAuditEventStreamingDestinationsCreate(input: {groupPath: "org", name: $n, category: "http", config: $cfg}) { errors externalAuditEventDestination { id } } }`
	p := s.mutate(adminToken, "groupAuditEventStreamingDestinationsCreate", create, map[string]any{"n": "taken", "cfg": map[string]any{"url": "https://receiver.example/a"}})
	id := dig(p, "externalAuditEventDestination", "id")
	s.mutate(adminToken, "groupAuditEventStreamingDestinationsCreate", create, map[string]any{"n": "other", "cfg": map[string]any{"url": "https://receiver.example/b"}})
	r := s.gql(adminToken, create, map[string]any{"n": "taken", "cfg": map[string]any{"url": "ftp://nope"}})
	errs := dig(r.Data, "groupAuditEventStreamingDestinationsCreate", "errors").([]any)
	require.Len(t, errs, 2, r.Raw)
	require.Contains(t, errs, "Name has already been taken")
	update := `mutation($id: AuditEventsGroupExternalStreamingDestinationID!, $cfg: JSON) { groupAuditEventStreamingDestinationsUpdate(input: {id: $id, name: "other", config: $cfg}) { errors } }`
	r = s.gql(adminToken, update, map[string]any{"id": id, "cfg": map[string]any{"url": "ftp://nope"}})
	errs = dig(r.Data, "groupAuditEventStreamingDestinationsUpdate", "errors").([]any)
	require.Len(t, errs, 2, r.Raw)
	require.Contains(t, errs, "Name has already been taken")
}

// TestMemberAndTokenListsPage: the members and personal access token lists page with GitLab's
// headers like the other lists (they returned everything, without X-Total or Link).
func TestMemberAndTokenListsPage(t *testing.T) {
	s := start(t, "sqlite")
	w := newWorld(t, s)
	admin := s.client(adminToken)
	ms, resp, err := admin.Groups.ListGroupMembers(w.org.ID, &gitlab.ListGroupMembersOptions{ListOptions: gitlab.ListOptions{Page: 2, PerPage: 3}})
	require.NoError(t, err)
	require.Len(t, ms, 1, "4 members: owner, maint, dev, rep")
	require.Equal(t, int64(4), resp.TotalItems)
	require.Equal(t, int64(2), resp.TotalPages)
	require.Contains(t, resp.Header.Get("Link"), `rel="first"`)
	ts, resp, err := admin.PersonalAccessTokens.ListPersonalAccessTokens(&gitlab.ListPersonalAccessTokensOptions{
		UserID: gitlab.Ptr(w.owner.ID), ListOptions: gitlab.ListOptions{PerPage: 1}})
	require.NoError(t, err)
	require.Len(t, ts, 1)
	require.Equal(t, int64(2), resp.TotalItems, "the owner's api and read_api tokens")
	var paged struct {
		Data           []map[string]any `json:"data"`
		PaginationInfo struct {
			Total int `json:"total"`
		} `json:"paginationInfo"`
	}
	if e := s.gitbeaker(adminToken, fmt.Sprintf(`return await api.GroupMembers.all(%d, { perPage: 2, maxPages: 1, showExpanded: true });`, w.org.ID), &paged); e != nil {
		t.Fatalf("gitbeaker GroupMembers.all: %+v", e)
	}
	require.Len(t, paged.Data, 2)
	require.Equal(t, 4, paged.PaginationInfo.Total)
}

package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/stretchr/testify/require"
)

// TestAuthorizationMatrix checks every role against every read endpoint, GitLab's rules:
// instance events — admins; group events — owners all, developers and maintainers their own,
// others 403, non-members 404; project events — maintainers all, developers their own.
func TestAuthorizationMatrix(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := start(t, driver)
		w := newWorld(t, s)
		var events []map[string]any
		for _, u := range []int64{w.owner.ID, w.maint.ID, w.dev.ID, w.rep.ID} {
			events = append(events, ev("member_created", "Group", "org", w.org.ID, u, "g"))
			events = append(events, ev("protected_branch_created", "Project", "org/sub/app", w.proj.ID, u, "p"))
		}
		events = append(events, ev("member_created", "Group", "other", w.other.ID, w.outside.ID, "other"))
		events = append(events, ev("member_created", "Group", "org/sub", w.sub.ID, w.dev.ID, "sub"))
		ids := s.ingest(w.tokens["ingest"], events...)
		s.waitStored(len(events))
		groupEvent, projectEvent := ids[0], ids[1]

		const all, own, forbidden, notFound = -1, -2, 403, 404
		g := fmt.Sprintf("/api/v4/groups/%d/audit_events", w.org.ID)
		sub := fmt.Sprintf("/api/v4/groups/%d/audit_events", w.sub.ID)
		p := fmt.Sprintf("/api/v4/projects/%d/audit_events", w.proj.ID)
		gOne := fmt.Sprintf("%s/%d", g, groupEvent)
		pOne := fmt.Sprintf("%s/%d", p, projectEvent)
		otherG := fmt.Sprintf("/api/v4/groups/%d/audit_events", w.other.ID)
		cases := []struct {
			role string
			path string
			want int // HTTP status, or all/own for a 200 list
		}{
			{"admin", "/api/v4/audit_events", all},
			{"admin", g, all},
			{"admin", p, all},
			{"admin", gOne, 200},
			{"owner", "/api/v4/audit_events", forbidden},
			{"owner", fmt.Sprintf("/api/v4/audit_events/%d", groupEvent), forbidden},
			{"owner", g, all},
			{"owner", "/api/v4/groups/org/audit_events", all},
			{"owner", sub, all}, // inherited
			{"owner", p, all},   // inherited
			{"owner", gOne, 200},
			{"owner", pOne, 200},
			{"owner", otherG, notFound}, // another group's data: 404, not a leak
			{"owner_read_api", g, all},
			{"maint", g, own},
			{"maint", gOne, forbidden},
			{"maint", p, all},
			{"maint", pOne, 200},
			{"dev", g, own},
			{"dev", p, own},
			{"dev", pOne, forbidden},
			{"rep", g, forbidden},
			{"rep", p, forbidden},
			{"outside", g, notFound},
			{"outside", p, notFound},
			{"outside", gOne, notFound},
			{"outside", otherG, all},
			{"outside", "/api/v4/groups/99999/audit_events", notFound},
			{"ingest", g, forbidden},
			{"ingest", "/api/v4/audit_events", forbidden},
			{"", g, 401},
			{"bogus", g, 401},
		}
		users := map[string]int64{"owner": w.owner.ID, "maint": w.maint.ID, "dev": w.dev.ID, "rep": w.rep.ID, "outside": w.outside.ID}
		for _, c := range cases {
			t.Run(c.role+" "+c.path, func(t *testing.T) {
				tok := w.tokens[c.role]
				if c.role == "bogus" {
					tok = "ast-not-a-real-token"
				}
				status, body, _ := s.do(http.MethodGet, c.path, tok, "", nil)
				switch c.want {
				case all, own:
					require.Equal(t, http.StatusOK, status, string(body))
					var got []struct {
						AuthorID int64 `json:"author_id"`
					}
					require.NoError(t, json.Unmarshal(body, &got))
					require.NotEmpty(t, got)
					for _, e := range got {
						if c.want == own {
							require.Equal(t, users[c.role], e.AuthorID, "developers and maintainers see only their own events")
						}
					}
					if c.want == all && c.path == g {
						require.Len(t, got, 4)
					}
				case 200:
					require.Equal(t, http.StatusOK, status, string(body))
					require.Contains(t, string(body), `"id":`)
				default:
					require.Equal(t, c.want, status, string(body))
					require.NotContains(t, string(body), "member_created", "no data in an error")
				}
			})
		}
		// Bearer works as PRIVATE-TOKEN does.
		req, _ := http.NewRequest(http.MethodGet, s.base+g, nil)
		req.Header.Set("Authorization", "Bearer "+w.tokens["owner"])
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	})
}

// TestAdminAPIAuthorization: only admins manage users and tokens; only owners manage members;
// ingest needs the ingest scope; read_api tokens cannot change anything.
func TestAdminAPIAuthorization(t *testing.T) {
	s := start(t, "sqlite")
	w := newWorld(t, s)
	member := []byte(fmt.Sprintf(`{"user_id":%d,"access_level":30}`, w.outside.ID))
	cases := []struct {
		role, method, path string
		body               []byte
		want               int
	}{
		{"owner", "POST", "/api/v4/users", []byte(`{"username":"x","name":"x","email":"x@x"}`), 403},
		{"owner", "POST", fmt.Sprintf("/api/v4/users/%d/personal_access_tokens", w.owner.ID), []byte(`{"name":"x","scopes":["api"]}`), 403},
		{"owner", "POST", "/api/v4/groups", []byte(`{"name":"top","path":"top"}`), 403},
		{"owner", "POST", "/api/v4/groups", []byte(fmt.Sprintf(`{"name":"sub2","path":"sub2","parent_id":%d}`, w.org.ID)), 201},
		{"maint", "POST", fmt.Sprintf("/api/v4/groups/%d/members", w.org.ID), member, 403},
		{"outside", "POST", fmt.Sprintf("/api/v4/groups/%d/members", w.org.ID), member, 404},
		{"owner_read_api", "POST", fmt.Sprintf("/api/v4/groups/%d/members", w.org.ID), member, 403},
		{"owner", "POST", fmt.Sprintf("/api/v4/projects/%d/members", w.proj.ID), member, 201},
		{"owner", "POST", fmt.Sprintf("/api/v4/projects/%d/members", w.proj.ID), member, 409},
		{"owner", "PUT", fmt.Sprintf("/api/v4/projects/%d/members/%d", w.proj.ID, w.outside.ID), []byte(`{"access_level":99}`), 400},
		{"owner", "DELETE", fmt.Sprintf("/api/v4/projects/%d/members/%d", w.proj.ID, w.outside.ID), nil, 204},
		{"owner", "DELETE", fmt.Sprintf("/api/v4/projects/%d/members/%d", w.proj.ID, w.outside.ID), nil, 404},
		{"admin", "POST", "/api/v4/users", []byte(`{"username":"owner","name":"x","email":"x@x"}`), 409},
		{"admin", "POST", "/api/v4/users", []byte(`{"username":"bad name","name":"x","email":"x@x"}`), 400},
		{"admin", "POST", "/api/v4/users", []byte(`{"username":"u2","name":"x"}`), 400},
		{"admin", "POST", "/api/v4/users", []byte(`{"username":`), 400},
		{"admin", "POST", fmt.Sprintf("/api/v4/users/%d/personal_access_tokens", w.owner.ID), []byte(`{"name":"x","scopes":["sudo"]}`), 400},
		{"admin", "POST", "/api/v4/users/424242/personal_access_tokens", []byte(`{"name":"x","scopes":["api"]}`), 404},
		{"ingest", "POST", "/api/v4/users", []byte(`{"username":"x","name":"x","email":"x@x"}`), 403},
		{"owner", "POST", "/api/v4/audit_events", []byte(`{"event_type":"user_created","entity_type":"Instance"}`), 403},
	}
	for _, c := range cases {
		status, body, _ := s.do(c.method, c.path, w.tokens[c.role], "application/json", c.body)
		require.Equal(t, c.want, status, "%s %s %s: %s", c.role, c.method, c.path, body)
		var e struct {
			Message, Code string
		}
		if status >= 400 {
			require.NoError(t, json.Unmarshal(body, &e), string(body))
			require.NotEmpty(t, e.Message)
			require.NotEmpty(t, e.Code)
		}
	}
	// A revoked token stops working at once in this process.
	status, body, _ := s.do("GET", "/api/v4/personal_access_tokens", w.tokens["dev"], "", nil)
	require.Equal(t, 200, status)
	var toks []struct{ ID int64 }
	require.NoError(t, json.Unmarshal(body, &toks))
	require.Len(t, toks, 1)
	status, _, _ = s.do("DELETE", fmt.Sprintf("/api/v4/personal_access_tokens/%d", toks[0].ID), w.tokens["dev"], "", nil)
	require.Equal(t, 204, status)
	status, _, _ = s.do("GET", "/api/v4/user", w.tokens["dev"], "", nil)
	require.Equal(t, 401, status)
}

// TestTenantIsolationRegressions pins three holes a review found: an owner of a group whose id
// is unknown listing every group's events; an idempotency key of one producer swallowing
// another producer's event; a group owner claiming a GitLab id to capture another's events.
func TestTenantIsolationRegressions(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := start(t, driver)
		w := newWorld(t, s)
		admin := s.client(adminToken)

		// 1. "acme" is learned only as the parent of a project: its id is unknown.
		s.ingest(w.tokens["ingest"], ev("protected_branch_created", "Project", "acme/app", 500, 1, "acme project"))
		s.ingest(w.tokens["ingest"], ev("member_created", "Group", "other", w.other.ID, 1, "secret of other"))
		s.waitStored(2)
		status, body, _ := s.do(http.MethodPost, "/api/v4/groups/acme/members", adminToken, "application/json",
			[]byte(fmt.Sprintf(`{"user_id":%d,"access_level":50}`, w.dev.ID)))
		require.Equal(t, http.StatusCreated, status, string(body))
		status, body, h := s.do(http.MethodGet, "/api/v4/groups/acme/audit_events", w.tokens["dev"], "", nil)
		require.Equal(t, http.StatusOK, status, string(body))
		require.Equal(t, "0", h.Get("X-Total"))
		require.NotContains(t, string(body), "secret")

		// 2. The same idempotency key from two producers names two events; one request may not
		// use a key twice. (Both are instance producers: administrators' tokens, since a
		// namespace-bound producer may not write instance events.)
		u2, _, err := admin.Users.CreateUser(&gitlab.CreateUserOptions{Username: gitlab.Ptr("producer2"), Name: gitlab.Ptr("P2"), Email: gitlab.Ptr("p2@example.com"), Admin: gitlab.Ptr(true)})
		require.NoError(t, err)
		tok2, _, err := admin.Users.CreatePersonalAccessToken(u2.ID, &gitlab.CreatePersonalAccessTokenOptions{Name: gitlab.Ptr("p"), Scopes: &[]string{"ingest"}})
		require.NoError(t, err)
		e := map[string]any{"event_type": "user_created", "entity_type": "Instance", "idempotency_key": "k1"}
		a := s.ingest(w.tokens["ingest"], e)
		b := s.ingest(tok2.Token, e)
		require.NotEqual(t, a, b, "another producer's key is not ours")
		require.Equal(t, a, s.ingest(w.tokens["ingest"], e), "our own retry returns our id")
		status, body, _ = s.do(http.MethodPost, "/api/v4/audit_events", w.tokens["ingest"], "application/x-ndjson",
			[]byte(`{"event_type":"user_created","entity_type":"Instance","idempotency_key":"k9"}`+"\n"+`{"event_type":"user_created","entity_type":"Instance","idempotency_key":"k9"}`))
		require.Equal(t, http.StatusUnprocessableEntity, status, string(body))
		require.Contains(t, string(body), `"field":"idempotency_key"`)

		// 3. Only admins set ids; without one the group gets an id of the range assigned here
		// until an event tells GitLab's.
		status, body, _ = s.do(http.MethodPost, "/api/v4/groups", w.tokens["owner"], "application/json",
			[]byte(fmt.Sprintf(`{"name":"x","path":"x","parent_id":%d,"id":777}`, w.org.ID)))
		require.Equal(t, http.StatusForbidden, status, string(body))
		status, body, _ = s.do(http.MethodPost, "/api/v4/groups", w.tokens["owner"], "application/json",
			[]byte(fmt.Sprintf(`{"name":"x","path":"x","parent_id":%d}`, w.org.ID)))
		require.Equal(t, http.StatusCreated, status, string(body))
		var created struct{ ID int64 }
		require.NoError(t, json.Unmarshal(body, &created))
		require.Equal(t, true, created.ID >= 1<<52, "an id of the range assigned here: %s", body)
		s.ingest(w.tokens["ingest"], ev("member_created", "Group", "org/x", 778, 1, "org/x's own event"))
		g, _, err := admin.Groups.GetGroup(778, nil)
		require.NoError(t, err)
		require.Equal(t, "org/x", g.FullPath, "the first event gave the group its id")
	})
}

// is_admin is shown to administrators only, as GitLab does (its UserWithAdmin entity): not to
// another user, nor to the user themself (issue 13, item 5).
func TestIsAdminShownToAdministratorsOnly(t *testing.T) {
	s := start(t, "sqlite")
	w := newWorld(t, s)
	get := func(token, path string) map[string]any {
		status, body, _ := s.do(http.MethodGet, path, token, "", nil)
		require.Equal(t, http.StatusOK, status, string(body))
		var m map[string]any
		require.NoError(t, json.Unmarshal(body, &m), string(body))
		return m
	}
	for _, role := range []string{"owner", "outside", "owner_read_api"} {
		for _, path := range []string{"/api/v4/users/1", fmt.Sprintf("/api/v4/users/%d", w.dev.ID), fmt.Sprintf("/api/v4/users/%d", w.owner.ID), "/api/v4/user"} {
			u := get(w.tokens[role], path)
			require.NotContains(t, u, "is_admin", "%s reads %s: %v", role, path, u)
		}
	}
	require.NotContains(t, get(w.tokens["outside"], "/api/v4/users/1"), "email", "another user's email")
	require.Equal(t, true, get(adminToken, "/api/v4/users/1")["is_admin"])
	require.Equal(t, false, get(adminToken, fmt.Sprintf("/api/v4/users/%d", w.dev.ID))["is_admin"])
	require.Equal(t, true, get(adminToken, "/api/v4/user")["is_admin"])
	status, body, _ := s.do(http.MethodGet, "/api/v4/users", adminToken, "", nil)
	require.Equal(t, http.StatusOK, status)
	var all []map[string]any
	require.NoError(t, json.Unmarshal(body, &all))
	for _, u := range all {
		require.Contains(t, u, "is_admin")
	}
}

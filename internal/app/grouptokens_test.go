package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/auditstream/auditstream/internal/poll"
	"github.com/auditstream/auditstream/internal/store"
)

// groupToken is the JSON of a group access token (GitLab's shape).
type groupToken struct {
	ID          int64    `json:"id"`
	Name        string   `json:"name"`
	Revoked     bool     `json:"revoked"`
	Active      bool     `json:"active"`
	Scopes      []string `json:"scopes"`
	UserID      int64    `json:"user_id"`
	AccessLevel int      `json:"access_level"`
	ExpiresAt   *string  `json:"expires_at"`
	Token       string   `json:"token"`
}

// createGroupToken creates a group access token through the API and requires 201.
func (s *server) createGroupToken(token, group, body string) groupToken {
	s.t.Helper()
	status, b, _ := s.do(http.MethodPost, "/api/v4/groups/"+group+"/access_tokens", token, "application/json", []byte(body))
	require.Equal(s.t, http.StatusCreated, status, string(b))
	var gt groupToken
	require.NoError(s.t, json.Unmarshal(b, &gt))
	require.NotEmpty(s.t, gt.Token)
	return gt
}

// Issue 13, item 1: group access tokens, GitLab's API. Only owners of the group and
// administrators may create, list, read, rotate and revoke them: members below owner get 403,
// others 404 (GitLab's semantics), a read_api token 403 on changes.
func TestGroupAccessTokenAuthorization(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := start(t, driver)
		w := newWorld(t, s)
		org := fmt.Sprint(w.org.ID)
		// One token for the others to try to read and revoke.
		victim := s.createGroupToken(adminToken, org, `{"name":"victim","scopes":["ingest"]}`)
		path := func(id int64) string { return fmt.Sprintf("/api/v4/groups/%s/access_tokens/%d", org, id) }

		for _, c := range []struct {
			role string
			want int // create, list, get, rotate and revoke; 0: allowed
		}{
			{"admin", 0},
			{"owner", 0},
			{"maint", http.StatusForbidden},
			{"dev", http.StatusForbidden},
			{"rep", http.StatusForbidden},
			{"outside", http.StatusNotFound}, // not a member: the group does not exist for them
			{"bogus", http.StatusUnauthorized},
		} {
			t.Run(c.role, func(t *testing.T) {
				tok := w.tokens[c.role]
				if c.role == "bogus" {
					tok = "ast-bogus"
				}
				expect := func(op string, ok, status int, body []byte) {
					t.Helper()
					want := c.want
					if want == 0 {
						want = ok
					}
					require.Equal(t, want, status, "%s %s: %s", c.role, op, body)
				}
				status, b, _ := s.do(http.MethodPost, "/api/v4/groups/"+org+"/access_tokens", tok, "application/json",
					[]byte(`{"name":"by `+c.role+`","scopes":["ingest","read_api"],"access_level":30}`))
				expect("create", http.StatusCreated, status, b)
				status, b, _ = s.do(http.MethodGet, "/api/v4/groups/"+org+"/access_tokens", tok, "", nil)
				expect("list", http.StatusOK, status, b)
				status, b, _ = s.do(http.MethodGet, path(victim.ID), tok, "", nil)
				expect("get", http.StatusOK, status, b)
				if c.want != 0 {
					status, b, _ = s.do(http.MethodPost, path(victim.ID)+"/rotate", tok, "", nil)
					expect("rotate", 0, status, b)
					status, b, _ = s.do(http.MethodDelete, path(victim.ID), tok, "", nil)
					expect("revoke", 0, status, b)
					return
				}
				// Rotate and revoke a token of their own.
				mine := s.createGroupToken(tok, org, `{"name":"mine","scopes":["ingest"]}`)
				status, b, _ = s.do(http.MethodPost, path(mine.ID)+"/rotate", tok, "", nil)
				expect("rotate", http.StatusOK, status, b)
				var rotated groupToken
				require.NoError(t, json.Unmarshal(b, &rotated))
				status, b, _ = s.do(http.MethodDelete, path(rotated.ID), tok, "", nil)
				expect("revoke", http.StatusNoContent, status, b)
			})
		}
		// The victim is untouched.
		status, b, _ := s.do(http.MethodGet, path(victim.ID), adminToken, "", nil)
		require.Equal(t, http.StatusOK, status)
		var got groupToken
		require.NoError(t, json.Unmarshal(b, &got))
		require.True(t, got.Active, "no one below owner revoked it")

		// A read_api token of an owner reads but does not change.
		status, _, _ = s.do(http.MethodGet, "/api/v4/groups/"+org+"/access_tokens", w.tokens["owner_read_api"], "", nil)
		require.Equal(t, http.StatusOK, status)
		status, _, _ = s.do(http.MethodPost, "/api/v4/groups/"+org+"/access_tokens", w.tokens["owner_read_api"], "application/json", []byte(`{"name":"x","scopes":["api"]}`))
		require.Equal(t, http.StatusForbidden, status)
		// The owner of another group gets 404 here, and 201 in their own group.
		s.createGroupToken(w.tokens["outside"], fmt.Sprint(w.other.ID), `{"name":"theirs","scopes":["ingest"]}`)
		// A token of a group may not be found through another group.
		status, _, _ = s.do(http.MethodGet, fmt.Sprintf("/api/v4/groups/%d/access_tokens/%d", w.other.ID, victim.ID), adminToken, "", nil)
		require.Equal(t, http.StatusNotFound, status)
		// An owner-level group access token may not mint others.
		bot := s.createGroupToken(adminToken, org, `{"name":"owner bot","scopes":["api"],"access_level":50}`)
		status, b, _ = s.do(http.MethodPost, "/api/v4/groups/"+org+"/access_tokens", bot.Token, "application/json", []byte(`{"name":"x","scopes":["api"]}`))
		require.Equal(t, http.StatusForbidden, status, string(b))

		// Bots are users, told apart as GitLab does; their id range is not for people.
		listUsers := func(query string) []groupToken { // id alone matters
			status, b, _ := s.do(http.MethodGet, "/api/v4/users?per_page=100&"+query, adminToken, "", nil)
			require.Equal(t, http.StatusOK, status, string(b))
			var us []groupToken
			require.NoError(t, json.Unmarshal(b, &us))
			return us
		}
		bots := listUsers("exclude_humans=true")
		require.NotEmpty(t, bots)
		for _, u := range bots {
			require.Greater(t, u.ID, store.LocalIDBase)
		}
		for _, u := range listUsers("humans=true") {
			require.Less(t, u.ID, store.LocalIDBase)
		}
		require.Len(t, listUsers(""), len(bots)+len(listUsers("without_project_bots=true")))
		status, b, _ = s.do(http.MethodPost, "/api/v4/users", adminToken, "application/json",
			[]byte(fmt.Sprintf(`{"username":"x","name":"x","email":"x@example.com","id":%d}`, store.LocalIDBase+1000)))
		require.Equal(t, http.StatusBadRequest, status, string(b))

		for _, bad := range []string{
			`{"scopes":["api"]}`,
			`{"name":"x"}`,
			`{"name":"x","scopes":["sudo"]}`,
			`{"name":"x","scopes":["api"],"access_level":45}`,
			`{"name":"x","scopes":["api"],"expires_at":"2001-01-01"}`,
		} {
			status, b, _ := s.do(http.MethodPost, "/api/v4/groups/"+org+"/access_tokens", adminToken, "application/json", []byte(bad))
			require.Equal(t, http.StatusBadRequest, status, "%s: %s", bad, b)
		}
	})
}

// A group access token with the ingest scope is a namespace-bound producer of its group's
// tree, and of nothing else: not another group, not the group's parent, not instance or user
// events, and it never creates top-level groups or moves, renames or re-ids namespaces. Its
// events name it and its bot user as their producer. A revoked token, or one whose bot was
// removed from the group, writes nothing.
func TestGroupAccessTokenIngest(t *testing.T) {
	s := start(t, "sqlite")
	w := newWorld(t, s) // org 101, org/sub 102, other 103, org/sub/app 201
	orgTok := s.createGroupToken(w.tokens["owner"], "101", `{"name":"org producer","scopes":["ingest"]}`)
	subTok := s.createGroupToken(w.tokens["owner"], "org%2Fsub", `{"name":"sub producer","scopes":["ingest"],"access_level":50}`)

	send := func(token, body string) (int, string, string) {
		status, b, _ := s.do(http.MethodPost, "/api/v4/audit_events", token, "application/json", []byte(body))
		var e struct{ Code, Message string }
		_ = json.Unmarshal(b, &e)
		return status, e.Code, e.Message
	}
	grp := func(path string, id int64) string {
		return fmt.Sprintf(`{"event_type":"member_created","entity_type":"Group","entity_id":%d,"entity_path":%q}`, id, path)
	}
	for _, c := range []struct {
		name, token, body string
	}{
		{"another top-level group", orgTok.Token, grp("other", 103)},
		{"move another group into its tree", orgTok.Token, grp("org/stolen", 103)},
		{"rename a subgroup", orgTok.Token, grp("org/renamed", 102)},
		{"re-id its own group", orgTok.Token, grp("org", 999)},
		{"create a top-level group", orgTok.Token, grp("mine", 555)},
		{"an instance event", orgTok.Token, `{"event_type":"user_created","entity_type":"Instance"}`},
		{"a user event", orgTok.Token, fmt.Sprintf(`{"event_type":"user_created","entity_type":"User","entity_id":%d}`, w.outside.ID)},
		{"a subgroup token: the parent group", subTok.Token, grp("org", 101)},
		{"a subgroup token: a sibling", subTok.Token, grp("org/sibling", 160)},
		{"a subgroup token: a path that only starts like it", subTok.Token, grp("org/subway", 161)},
		{"one bad event in a batch", orgTok.Token, "[" + grp("org", 101) + "," + grp("other", 103) + "]"},
	} {
		status, code, msg := send(c.token, c.body)
		require.Equal(t, http.StatusForbidden, status, "%s: %s", c.name, msg)
		require.Equal(t, "producer_scope", code, c.name)
	}
	_, _, msg := send(subTok.Token, grp("org", 101))
	require.Contains(t, msg, "only in the tree of its group, org/sub", "the refusal says where it may write")

	// Allowed: its own tree, with new subgroups and projects.
	ids := s.ingest(orgTok.Token, ev("member_created", "Group", "org", 101, w.owner.ID, "ok"),
		ev("member_created", "Group", "org/sub", 102, w.owner.ID, "ok"),
		ev("project_created", "Project", "org/new/p", 151, w.owner.ID, "new project"))
	s.ingest(subTok.Token, ev("member_created", "Group", "org/sub", 102, w.owner.ID, "ok"),
		ev("protected_branch_created", "Project", "org/sub/app", 201, w.owner.ID, "ok"))

	// Provenance names the token and its bot user.
	var b []byte
	poll.Until(t, 20*time.Second, func() error {
		var status int
		if status, b, _ = s.do(http.MethodGet, fmt.Sprintf("/api/v4/audit_events/%d", ids[0]), adminToken, "", nil); status != http.StatusOK {
			return fmt.Errorf("%d: %s", status, b)
		}
		return nil
	})
	var e map[string]any
	require.NoError(t, json.Unmarshal(b, &e))
	status, ub, _ := s.do(http.MethodGet, fmt.Sprintf("/api/v4/users/%d", orgTok.UserID), adminToken, "", nil)
	require.Equal(t, http.StatusOK, status)
	var bot struct {
		ID       int64
		Username string
		Bot      bool
	}
	require.NoError(t, json.Unmarshal(ub, &bot))
	require.True(t, bot.Bot)
	require.Regexp(t, `^group_101_bot_[0-9a-f]{32}$`, bot.Username)
	require.Greater(t, bot.ID, store.LocalIDBase, "bots never take an id a GitLab user may get")
	require.Equal(t, map[string]any{"token_id": float64(orgTok.ID), "user_id": float64(bot.ID), "username": bot.Username, "via": "ingest"},
		e["auditstream_producer"])

	// The bot removed from the group: its token writes nothing.
	status, b, _ = s.do(http.MethodDelete, fmt.Sprintf("/api/v4/groups/org%%2Fsub/members/%d", subTok.UserID), w.tokens["owner"], "", nil)
	require.Equal(t, http.StatusNoContent, status, string(b))
	status, code, msg := send(subTok.Token, grp("org/sub", 102))
	require.Equal(t, http.StatusForbidden, status, msg)
	require.Equal(t, "producer_scope", code)
	// Revoked: 401.
	status, _, _ = s.do(http.MethodDelete, fmt.Sprintf("/api/v4/groups/101/access_tokens/%d", orgTok.ID), w.tokens["owner"], "", nil)
	require.Equal(t, http.StatusNoContent, status)
	status, _, _ = send(orgTok.Token, grp("org", 101))
	require.Equal(t, http.StatusUnauthorized, status)

	// Revoked through the personal access token API (by itself), it leaves its group too.
	self := s.createGroupToken(w.tokens["owner"], "101", `{"name":"self","scopes":["api"]}`)
	status, b, _ = s.do(http.MethodDelete, fmt.Sprintf("/api/v4/personal_access_tokens/%d", self.ID), self.Token, "", nil)
	require.Equal(t, http.StatusNoContent, status, string(b))
	status, _, _ = s.do(http.MethodGet, fmt.Sprintf("/api/v4/groups/101/members/%d", self.UserID), w.tokens["owner"], "", nil)
	require.Equal(t, http.StatusNotFound, status, "its bot left the group")

	// Nothing refused moved or was created; the personal ingest token of the owner still writes
	// in every top-level group its user owns, as before.
	for _, p := range []string{"mine", "org%2Fstolen", "org%2Frenamed", "org%2Fsibling", "org%2Fsubway"} {
		status, _, _ := s.do(http.MethodGet, "/api/v4/groups/"+p, adminToken, "", nil)
		require.Equal(t, http.StatusNotFound, status, p)
	}
	s.ingest(s.ingestToken(w.owner.ID), ev("member_created", "Group", "org", 101, w.owner.ID, "personal"))
}

// The group access token API through GitLab's Go client, so that the shapes are GitLab's; and
// the audit events GitLab records for it.
func TestGroupAccessTokensClientGo(t *testing.T) {
	s := start(t, "sqlite")
	w := newWorld(t, s)
	c := s.client(w.tokens["owner"])
	expires := gitlab.ISOTime(time.Now().AddDate(0, 1, 0))
	created, resp, err := c.GroupAccessTokens.CreateGroupAccessToken(int64(101), &gitlab.CreateGroupAccessTokenOptions{
		Name: gitlab.Ptr("producer"), Scopes: &[]string{"ingest", "read_api"},
		AccessLevel: gitlab.Ptr(gitlab.DeveloperPermissions), ExpiresAt: &expires,
	})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	require.Positive(t, created.ID)
	require.Equal(t, "producer", created.Name)
	require.Equal(t, []string{"ingest", "read_api"}, created.Scopes)
	require.Equal(t, gitlab.DeveloperPermissions, created.AccessLevel)
	require.True(t, created.Active)
	require.False(t, created.Revoked)
	require.NotEmpty(t, created.Token)
	require.NotNil(t, created.ExpiresAt)
	require.Equal(t, time.Time(expires).Format(time.DateOnly), time.Time(*created.ExpiresAt).Format(time.DateOnly))
	require.Greater(t, created.UserID, store.LocalIDBase)

	// The bot is a member of the group with the token's level, as in GitLab.
	m, _, err := c.GroupMembers.GetGroupMember(int64(101), created.UserID)
	require.NoError(t, err)
	require.Equal(t, gitlab.DeveloperPermissions, m.AccessLevel)
	// And the token reads the group's API as that member.
	_, _, err = s.client(created.Token).Groups.GetGroup(int64(101), nil)
	require.NoError(t, err)
	_, resp, err = s.client(created.Token).Groups.GetGroup(int64(103), nil)
	require.Error(t, err)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)

	list, _, err := c.GroupAccessTokens.ListGroupAccessTokens(int64(101), nil)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, created.ID, list[0].ID)
	require.Empty(t, list[0].Token, "the token's value is shown once")
	got, _, err := c.GroupAccessTokens.GetGroupAccessToken("org", created.ID)
	require.NoError(t, err)
	require.Equal(t, created.UserID, got.UserID)
	// An owner changes the bot's role: the token shows it, as GitLab shows its bot's.
	_, _, err = c.GroupMembers.EditGroupMember(int64(101), created.UserID, &gitlab.EditGroupMemberOptions{AccessLevel: gitlab.Ptr(gitlab.MaintainerPermissions)})
	require.NoError(t, err)
	got, _, err = c.GroupAccessTokens.GetGroupAccessToken(int64(101), created.ID)
	require.NoError(t, err)
	require.Equal(t, gitlab.MaintainerPermissions, got.AccessLevel)

	rotated, resp, err := c.GroupAccessTokens.RotateGroupAccessToken(int64(101), created.ID, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NotEqual(t, created.ID, rotated.ID)
	require.NotEqual(t, created.Token, rotated.Token)
	require.Equal(t, created.UserID, rotated.UserID, "the same bot")
	require.NotNil(t, rotated.ExpiresAt, "a rotated token expires (a week, as GitLab)")
	require.Equal(t, gitlab.MaintainerPermissions, rotated.AccessLevel, "at its bot's level")

	resp, err = c.GroupAccessTokens.RevokeGroupAccessToken(int64(101), rotated.ID)
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	inactive := gitlab.AccessTokenStateInactive
	list, _, err = c.GroupAccessTokens.ListGroupAccessTokens(int64(101), &gitlab.ListGroupAccessTokensOptions{State: &inactive})
	require.NoError(t, err)
	require.Len(t, list, 2, "the rotated and the revoked")
	for _, tok := range list {
		require.True(t, tok.Revoked)
		require.False(t, tok.Active)
	}
	_, resp, err = c.GroupMembers.GetGroupMember(int64(101), created.UserID)
	require.Error(t, err)
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "a revoked token's bot leaves the group")

	// GitLab's audit events: created (twice: create and rotate), deleted (rotate and revoke),
	// and the owner's change of the bot's role.
	s.waitStored(5)
	events, _, err := s.client(adminToken).AuditEvents.ListGroupAuditEvents(int64(101), nil)
	require.NoError(t, err)
	var types []string
	for _, e := range events {
		types = append(types, e.EventType)
		require.Equal(t, w.owner.ID, e.AuthorID)
		if e.EventType != "member_updated" {
			require.Equal(t, "PersonalAccessToken", e.Details.TargetType)
		}
	}
	slices.Sort(types)
	require.Equal(t, []string{"group_access_token_created", "group_access_token_created", "group_access_token_deleted",
		"group_access_token_deleted", "member_updated"}, types)
}

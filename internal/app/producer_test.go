package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// The producer model (issue 13, item 1): an administrator's ingest token is an instance
// producer and may write anything; any other user's ingest token is bound to the top-level
// groups its user owns. It may write Group and Project events there, creating new subgroups
// and projects, and nothing else: it cannot move, rename or re-id a namespace, take a path,
// create a top-level group, write into a group its user does not own, or write instance and
// user events. A refused request gets 403 producer_scope and changes nothing.
func TestNamespaceBoundProducers(t *testing.T) {
	s := start(t, "sqlite")
	w := newWorld(t, s) // org 101 (owner), org/sub 102, other 103 (outside), org/sub/app 201
	ownerIngest := s.ingestToken(w.owner.ID)
	strangerIngest := s.ingestToken(w.dev.ID) // a developer of org, owner of nothing
	status, b, _ := s.do(http.MethodPost, "/api/v4/groups", adminToken, "application/json", []byte(`{"name":"pathonly","path":"pathonly","parent_id":101}`))
	require.Equal(t, http.StatusCreated, status, string(b)) // org/pathonly: GitLab's id unknown, one assigned here
	var pathOnly struct{ ID int }
	require.NoError(t, json.Unmarshal(b, &pathOnly))

	send := func(token, body string) (int, string) {
		status, b, _ := s.do(http.MethodPost, "/api/v4/audit_events", token, "application/json", []byte(body))
		var e struct{ Code string }
		_ = json.Unmarshal(b, &e)
		return status, e.Code
	}
	grp := func(path string, id int64) string {
		return fmt.Sprintf(`{"event_type":"member_created","entity_type":"Group","entity_id":%d,"entity_path":%q,"author_id":%d,"details":{"custom_message":"FORGED"}}`, id, path, w.owner.ID)
	}
	for _, c := range []struct {
		name, token, body string
	}{
		{"move another owner's group into mine (issue item 1)", ownerIngest, grp("org/stolen", 103)},
		{"take a top-level path (issue item 2)", strangerIngest, grp("org", 999)},
		{"take my own top-level path with another id", ownerIngest, grp("org", 999)},
		{"write into a group the user does not own (issue item 2)", ownerIngest, grp("other", 103)},
		{"write into a group where the user is a developer", strangerIngest, grp("org/sub", 102)},
		{"rename a subgroup", ownerIngest, grp("org/renamed", 102)},
		{"give GitLab's id to a group created here", ownerIngest, grp("org/pathonly", 777)},
		{"create a top-level group", ownerIngest, grp("mine", 555)},
		{"an instance event", ownerIngest, `{"event_type":"user_created","entity_type":"Instance"}`},
		{"a user event", ownerIngest, fmt.Sprintf(`{"event_type":"user_created","entity_type":"User","entity_id":%d}`, w.outside.ID)},
		{"one bad event in a batch", ownerIngest, "[" + grp("org", 101) + "," + grp("other", 103) + "]"},
	} {
		status, code := send(c.token, c.body)
		require.Equal(t, http.StatusForbidden, status, c.name)
		require.Equal(t, "producer_scope", code, c.name)
	}
	// Nothing moved, was created or was written.
	for path, id := range map[string]int{"org": 101, "org/sub": 102, "other": 103, "org/pathonly": pathOnly.ID} {
		status, b, _ := s.do(http.MethodGet, "/api/v4/groups/"+urlPath(path), adminToken, "", nil)
		require.Equal(t, http.StatusOK, status, "%s: %s", path, b)
		var g struct {
			ID       int
			FullPath string `json:"full_path"`
		}
		require.NoError(t, json.Unmarshal(b, &g))
		require.Equal(t, id, g.ID, path)
	}
	for _, path := range []string{"mine", "org%2Fstolen", "org%2Frenamed"} {
		status, _, _ := s.do(http.MethodGet, "/api/v4/groups/"+path, adminToken, "", nil)
		require.Equal(t, http.StatusNotFound, status, path)
	}
	// Nothing of a refused request was published: the only events are the audit events of the
	// setup's three changes (two tokens, a group).
	s.waitStored(3)
	status, _, h := s.do(http.MethodGet, "/api/v4/audit_events?per_page=100", adminToken, "", nil)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "3", h.Get("X-Total"), "nothing of a refused request was published")

	// Allowed: events of the owner's own tree, new subgroups and projects in it.
	s.ingest(ownerIngest, ev("member_created", "Group", "org", 101, w.owner.ID, "ok"),
		ev("member_created", "Group", "org/sub", 102, w.owner.ID, "ok"),
		ev("member_created", "Group", "org/new", 150, w.owner.ID, "new subgroup"),
		ev("project_created", "Project", "org/new/p", 151, w.owner.ID, "new project"))
	// An administrator's token is an instance producer, as before: it may rename.
	s.ingest(w.tokens["ingest"], ev("member_created", "Group", "org/renamed", 150, 1, "rename"))
	status, _, _ = s.do(http.MethodGet, "/api/v4/groups/org%2Frenamed", adminToken, "", nil)
	require.Equal(t, http.StatusOK, status)
}

func urlPath(p string) string {
	out := ""
	for _, c := range p {
		if c == '/' {
			out += "%2F"
		} else {
			out += string(c)
		}
	}
	return out
}

package app_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/adminaudit"
	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/poll"
)

// postJSON sends a JSON body and requires want; it decodes the answer into out (when not nil).
func (s *server) postJSON(method, path, token string, body any, want int, out any) {
	s.t.Helper()
	b, err := json.Marshal(body)
	require.NoError(s.t, err)
	status, resp, _ := s.do(method, path, token, "application/json", b)
	require.Equal(s.t, want, status, "%s %s: %s", method, path, resp)
	if out != nil {
		require.NoError(s.t, json.Unmarshal(resp, out), "%s", resp)
	}
}

// storedEvent is an event as GET /audit_events returns it.
type storedEvent struct {
	ID            int64          `json:"id"`
	AuthorID      int64          `json:"author_id"`
	EntityID      int64          `json:"entity_id"`
	EntityType    string         `json:"entity_type"`
	EventType     string         `json:"event_type"`
	TargetID      any            `json:"target_id"`
	TargetType    string         `json:"target_type"`
	TargetDetails string         `json:"target_details"`
	Details       map[string]any `json:"details"`
}

// TestAdminChangesAreAudited: every change made through the admin API — a user, a personal
// access token and an impersonation token created and revoked, a group and a project created,
// a member added, changed and removed — is recorded as GitLab's audit event with the acting
// user as author, stored and streamed like any producer's event, and no token value is in any
// of them.
func TestAdminChangesAreAudited(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := start(t, driver, noLimits, allowPrivate)
		h := newHook(t)
		s.createInstanceDestination("http", httpConfig(h.URL), "verification-token-0123")
		var admin struct {
			ID int64 `json:"id"`
		}
		s.postJSON(http.MethodGet, "/api/v4/user", s.admin, nil, http.StatusOK, &admin)

		var alice struct {
			ID int64 `json:"id"`
		}
		s.postJSON(http.MethodPost, "/api/v4/users", s.admin, map[string]any{"username": "alice", "name": "Alice", "email": "alice@example.com"}, http.StatusCreated, &alice)
		var pat, imp struct {
			ID    int64  `json:"id"`
			Token string `json:"token"`
		}
		s.postJSON(http.MethodPost, fmt.Sprintf("/api/v4/users/%d/personal_access_tokens", alice.ID), s.admin,
			map[string]any{"name": "ci", "scopes": []string{"api"}}, http.StatusCreated, &pat)
		s.postJSON(http.MethodPost, fmt.Sprintf("/api/v4/users/%d/impersonation_tokens", alice.ID), s.admin,
			map[string]any{"name": "support", "scopes": []string{"read_api"}}, http.StatusCreated, &imp)
		require.NotEmpty(t, pat.Token)
		require.NotEmpty(t, imp.Token)
		s.postJSON(http.MethodDelete, fmt.Sprintf("/api/v4/users/%d/impersonation_tokens/%d", alice.ID, imp.ID), s.admin, nil, http.StatusNoContent, nil)

		var group, project struct {
			ID int64 `json:"id"`
		}
		s.postJSON(http.MethodPost, "/api/v4/groups", s.admin, map[string]any{"name": "Acme", "path": "acme"}, http.StatusCreated, &group)
		s.postJSON(http.MethodPost, "/api/v4/projects", s.admin, map[string]any{"name": "app", "namespace_id": group.ID}, http.StatusCreated, &project)
		members := fmt.Sprintf("/api/v4/groups/%d/members", group.ID)
		s.postJSON(http.MethodPost, members, s.admin, map[string]any{"user_id": alice.ID, "access_level": 50}, http.StatusCreated, nil)
		// Alice, an owner now, makes the next changes herself: she is their author.
		var bob struct {
			ID int64 `json:"id"`
		}
		s.postJSON(http.MethodPost, "/api/v4/users", s.admin, map[string]any{"username": "bob", "name": "Bob", "email": "bob@example.com"}, http.StatusCreated, &bob)
		s.postJSON(http.MethodPost, members, pat.Token, map[string]any{"user_id": bob.ID, "access_level": 30}, http.StatusCreated, nil)
		s.postJSON(http.MethodPut, fmt.Sprintf("%s/%d", members, bob.ID), pat.Token, map[string]any{"access_level": 40}, http.StatusOK, nil)
		s.postJSON(http.MethodDelete, fmt.Sprintf("%s/%d", members, bob.ID), pat.Token, nil, http.StatusNoContent, nil)
		// Alice revokes her own token last: it is the author's token until then.
		s.postJSON(http.MethodDelete, fmt.Sprintf("/api/v4/personal_access_tokens/%d", pat.ID), pat.Token, nil, http.StatusNoContent, nil)

		want := []string{"user_created", "personal_access_token_created", "personal_access_token_created", "personal_access_token_revoked",
			"group_created", "project_created", "member_created", "user_created", "member_created", "member_updated", "member_destroyed",
			"personal_access_token_revoked"}
		var got []storedEvent
		var raw []byte
		poll.Until(t, 20*time.Second, func() error {
			status, body, _ := s.do(http.MethodGet, "/api/v4/audit_events?per_page=100&sort=asc&pagination=keyset", s.admin, "", nil)
			if status != http.StatusOK {
				return errors.New(string(body))
			}
			var all []storedEvent
			if err := json.Unmarshal(body, &all); err != nil {
				return err
			}
			got = slices.DeleteFunc(all, func(e storedEvent) bool { return !slices.Contains(adminaudit.Types(), e.EventType) })
			raw = body
			if len(got) < len(want) {
				return fmt.Errorf("%d admin events stored, want %d", len(got), len(want))
			}
			return nil
		})
		types := make([]string, len(got))
		for i, e := range got {
			types[i] = e.EventType
		}
		require.Equal(t, want, types)
		for _, secret := range []string{pat.Token, imp.Token} {
			require.NotContains(t, string(raw), secret, "a token's value is in an audit event")
		}

		byAuthor := func(i int, author int64, entityType string, entityID int64, targetType string) storedEvent {
			t.Helper()
			e := got[i]
			require.Equal(t, author, e.AuthorID, "%d %s: author", i, e.EventType)
			require.Equal(t, entityType, e.EntityType, "%d %s: entity type", i, e.EventType)
			require.Equal(t, entityID, e.EntityID, "%d %s: entity id", i, e.EventType)
			require.Equal(t, targetType, e.TargetType, "%d %s: target type", i, e.EventType)
			return e
		}
		e := byAuthor(0, admin.ID, "User", alice.ID, "User")
		require.Equal(t, "alice", e.TargetDetails)
		e = byAuthor(1, admin.ID, "User", alice.ID, "PersonalAccessToken")
		require.Equal(t, fmt.Sprintf("Created personal access token with id %d", pat.ID), e.Details["custom_message"])
		require.Equal(t, []any{"api"}, e.Details["scopes"])
		e = byAuthor(2, admin.ID, "User", alice.ID, "PersonalAccessToken")
		require.Equal(t, fmt.Sprintf("Created impersonation token with id %d", imp.ID), e.Details["custom_message"])
		require.Equal(t, true, e.Details["impersonation"])
		e = byAuthor(3, admin.ID, "User", alice.ID, "PersonalAccessToken")
		require.Equal(t, fmt.Sprintf("Revoked impersonation token with id %d", imp.ID), e.Details["custom_message"])
		e = byAuthor(4, admin.ID, "Group", group.ID, "Group")
		require.Equal(t, "acme", e.TargetDetails)
		e = byAuthor(5, admin.ID, "Project", project.ID, "Project")
		require.Equal(t, "acme/app", e.TargetDetails)
		e = byAuthor(6, admin.ID, "Group", group.ID, "User")
		require.Equal(t, "Owner", e.Details["as"])
		e = byAuthor(8, alice.ID, "Group", group.ID, "User")
		require.Equal(t, "bob", e.TargetDetails)
		require.Equal(t, "user_access", e.Details["add"])
		require.Equal(t, "Developer", e.Details["as"])
		e = byAuthor(9, alice.ID, "Group", group.ID, "User")
		require.Equal(t, "access_level", e.Details["change"])
		require.Equal(t, "Developer", e.Details["from"])
		require.Equal(t, "Maintainer", e.Details["to"])
		e = byAuthor(10, alice.ID, "Group", group.ID, "User")
		require.Equal(t, "user_access", e.Details["remove"])
		e = byAuthor(11, alice.ID, "User", alice.ID, "PersonalAccessToken")
		require.Equal(t, fmt.Sprintf("Revoked personal access token with id %d", pat.ID), e.Details["custom_message"])

		// Streamed like any other event: the instance's destination receives each of them (in
		// any order: the destination is not in ordered mode).
		sortedWant := slices.Sorted(slices.Values(want))
		poll.Until(t, 20*time.Second, func() error {
			streamed := slices.DeleteFunc(h.types(), func(t string) bool { return !slices.Contains(adminaudit.Types(), t) })
			slices.Sort(streamed)
			if !slices.Equal(streamed, sortedWant) {
				return fmt.Errorf("streamed %v", streamed)
			}
			return nil
		})
		h.mu.Lock()
		for _, b := range h.bodies {
			for _, secret := range []string{pat.Token, imp.Token} {
				require.False(t, strings.Contains(string(b), secret), "a token's value was streamed")
			}
		}
		h.mu.Unlock()
	})
}

// TestAdminAuditTypesAreInTheCatalog: every event type of an admin change is GitLab's, in the
// embedded catalog, and stored (saved_to_database), so validation never refuses one.
func TestAdminAuditTypesAreInTheCatalog(t *testing.T) {
	cat, err := event.Load("")
	require.NoError(t, err)
	for _, name := range adminaudit.Types() {
		et := cat.Lookup(name)
		require.NotNil(t, et, name)
	}
}

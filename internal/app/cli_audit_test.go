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
	"github.com/auditstream/auditstream/internal/app"
	"github.com/auditstream/auditstream/internal/poll"
	"github.com/auditstream/auditstream/internal/store"
)

// cliEvent is an admin event as GET /audit_events returns it, with who wrote it.
type cliEvent struct {
	storedEvent
	AuthorName string    `json:"author_name"`
	CreatedAt  time.Time `json:"created_at"`
	Producer   struct {
		TokenID  int64  `json:"token_id"`
		UserID   int64  `json:"user_id"`
		Username string `json:"username"`
		Via      string `json:"via"`
	} `json:"auditstream_producer"`
}

// adminEvents polls until the service stores at least n events of admin changes and returns
// them, oldest first.
func (s *server) adminEvents(n int) []cliEvent {
	s.t.Helper()
	var got []cliEvent
	poll.Until(s.t, 20*time.Second, func() error {
		status, body, _ := s.do(http.MethodGet, "/api/v4/audit_events?per_page=100&sort=asc&pagination=keyset", s.admin, "", nil)
		if status != http.StatusOK {
			return errors.New(string(body))
		}
		var all []cliEvent
		if err := json.Unmarshal(body, &all); err != nil {
			return err
		}
		got = slices.DeleteFunc(all, func(e cliEvent) bool { return !slices.Contains(adminaudit.Types(), e.EventType) })
		if len(got) < n {
			return fmt.Errorf("%d admin events stored, want %d", len(got), n)
		}
		return nil
	})
	return got
}

// outboxEmpty polls until the store's audit outbox is empty.
func outboxEmpty(t *testing.T, cfg app.Config) {
	t.Helper()
	st, err := app.OpenStore(t.Context(), cfg)
	require.NoError(t, err)
	defer st.Close()
	poll.Until(t, 20*time.Second, func() error {
		left, err := st.AuditOutboxList(t.Context(), store.AuditOutboxListParams{Limit: 10})
		if err != nil {
			return err
		}
		if len(left) > 0 {
			return fmt.Errorf("%d events left in the outbox", len(left))
		}
		return nil
	})
}

// TestCLIChangesAreAudited: the CLI's changes (a user, a token created and revoked, a group and
// a project, a member added, changed and removed) made while no server runs are published when
// the server starts, as GitLab's events with their original times, the CLI as author and
// producer (via "cli"), and the outbox is emptied; a change made while the server runs is
// stored and streamed within seconds, as every other event is.
func TestCLIChangesAreAudited(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		cfg := serviceConfig(t, driver, noLimits, allowPrivate)
		ctx := t.Context()
		adm, err := app.OpenAdmin(ctx, cfg)
		require.NoError(t, err)
		alice, err := adm.CreateUser(ctx, 0, "alice", "Alice", "alice@example.com", false)
		require.NoError(t, err)
		_, tok, err := adm.CreateToken(ctx, "alice", "ci", []string{"api"}, time.Time{})
		require.NoError(t, err)
		require.NoError(t, adm.RevokeToken(ctx, tok.ID))
		require.NoError(t, adm.RevokeToken(ctx, tok.ID), "revoking a revoked token")
		group, err := adm.CreateNamespace(ctx, store.KindGroup, "acme", "Acme", 0)
		require.NoError(t, err)
		project, err := adm.CreateNamespace(ctx, store.KindProject, "acme/app", "", 0)
		require.NoError(t, err)
		_, err = adm.AddMember(ctx, store.KindGroup, "acme", "alice", 30)
		require.NoError(t, err)
		_, err = adm.UpdateMember(ctx, store.KindGroup, "acme", "alice", 40)
		require.NoError(t, err)
		_, err = adm.AddMember(ctx, store.KindGroup, "acme", "alice", 40) // no change, no event
		require.NoError(t, err)
		require.NoError(t, adm.RemoveMember(ctx, store.KindGroup, "acme", "alice"))
		_, err = adm.UpdateMember(ctx, store.KindGroup, "acme", "alice", 40)
		require.EqualError(t, err, "404 Member Not Found: alice")
		require.NoError(t, adm.Close())
		before := time.Now()

		s := startCfg(t, cfg)
		want := []string{"user_created", "personal_access_token_created", "personal_access_token_revoked", "group_created",
			"project_created", "member_created", "member_updated", "member_destroyed"}
		got := s.adminEvents(len(want))
		types := make([]string, len(got))
		for i, e := range got {
			types[i] = e.EventType
		}
		require.Equal(t, want, types)
		for _, e := range got {
			require.Zero(t, e.AuthorID, "%s: the CLI is no user of ours", e.EventType)
			require.True(t, strings.HasPrefix(e.AuthorName, "auditstream CLI"), "%s: author %q", e.EventType, e.AuthorName)
			require.Equal(t, "cli", e.Producer.Via, e.EventType)
			require.Zero(t, e.Producer.TokenID, e.EventType)
			require.True(t, e.CreatedAt.Before(before), "%s: created at %s, the time of the change, not of its publication", e.EventType, e.CreatedAt)
		}
		require.Equal(t, alice.ID, got[0].EntityID)
		require.Equal(t, "alice", got[0].TargetDetails)
		require.Equal(t, fmt.Sprintf("Revoked personal access token with id %d", tok.ID), got[2].Details["custom_message"])
		require.Equal(t, group.ID, got[3].EntityID)
		require.Equal(t, project.ID, got[4].EntityID)
		require.Equal(t, "Project", got[4].EntityType)
		require.Equal(t, "Developer", got[6].Details["from"])
		require.Equal(t, "Maintainer", got[6].Details["to"])
		require.Equal(t, "user_access", got[7].Details["remove"])
		outboxEmpty(t, cfg)

		// The server runs: a change through the CLI is stored and streamed within seconds.
		h := newHook(t)
		s.createInstanceDestination("http", httpConfig(h.URL), "verification-token-0123")
		adm, err = app.OpenAdmin(ctx, cfg)
		require.NoError(t, err)
		defer adm.Close()
		_, err = adm.CreateUser(ctx, 0, "bob", "Bob", "bob@example.com", false)
		require.NoError(t, err)
		got = s.adminEvents(len(want) + 1)
		require.Len(t, got, len(want)+1, "each event is published once")
		bob := got[len(want)]
		require.Equal(t, "user_created", bob.EventType)
		require.Equal(t, "bob", bob.TargetDetails)
		require.Equal(t, "cli", bob.Producer.Via)
		poll.Until(t, 20*time.Second, func() error {
			if !slices.Contains(h.types(), "user_created") {
				return fmt.Errorf("streamed %v", h.types())
			}
			return nil
		})
		outboxEmpty(t, cfg)
	})
}

// TestReplicasPublishTheOutboxOnce: with two replicas sharing a database and NATS, each event
// the CLI queued is published once (one replica drains at a time, and keys derived from the
// rows make a repeated publish harmless).
func TestReplicasPublishTheOutboxOnce(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		a, b := startReplicas(t, driver)
		adm, err := app.OpenAdmin(t.Context(), a.cfg)
		require.NoError(t, err)
		defer adm.Close()
		const n = 10
		for i := range n {
			_, err := adm.CreateUser(t.Context(), 0, fmt.Sprintf("user%d", i), "User", "user@example.com", false)
			require.NoError(t, err)
		}
		outboxEmpty(t, a.cfg)
		for _, s := range []*server{a, b} {
			got := s.adminEvents(n)
			require.Len(t, got, n, "each event stored once")
			for i, e := range got {
				require.Equal(t, fmt.Sprintf("user%d", i), e.TargetDetails)
			}
		}
	})
}

package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/app"
	"github.com/auditstream/auditstream/internal/natstest"
	"github.com/auditstream/auditstream/internal/poll"
)

// startReplicas runs two replicas in-process, each with its own data directory, sharing one
// NATS server and one database (a SQLite file both open, or a PostgreSQL database).
func startReplicas(t *testing.T, driver string, mutate ...func(*app.Config)) (a, b *server) {
	t.Helper()
	natsURL := natstest.Start(t, t.TempDir(), 0).ClientURL()
	dbURL := "sqlite://" + filepath.Join(t.TempDir(), "shared.db")
	if driver == "postgres" {
		dbURL = freshPostgres(t)
	}
	cfg := func() app.Config {
		c := app.Defaults()
		c.DataDir, c.Listen, c.AdminToken, c.LogLevel = t.TempDir(), "127.0.0.1:0", adminToken, "warn"
		c.NATSURL, c.DatabaseURL = natsURL, dbURL
		for _, m := range mutate {
			m(&c)
		}
		return c
	}
	a = startCfg(t, cfg()) // migrates the database and creates the stream first
	b = startCfg(t, cfg())
	return a, b
}

// TestReplicasAgreeOnTheTree (issue 13, item 6): each replica caches namespaces. When one
// learns that a group moved (GitLab's event with a known id under a new path), the other must
// authorize reads and file events by the new tree within a second, not at its next restart:
// the new owners read the group and what is below it, the old ones no longer do, and an
// event naming the old place is refused as a move a namespace-bound producer may not make.
func TestReplicasAgreeOnTheTree(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		a, b := startReplicas(t, driver)
		w := newWorld(t, a) // org 101 (owner) > org/sub 102 > org/sub/app 201; other 103 (outside)
		owner, outside := w.tokens["owner"], w.tokens["outside"]
		ownerIngest, outsideIngest := a.ingestToken(w.owner.ID), a.ingestToken(w.outside.ID)
		get := func(s *server, path, token string) int {
			status, _, _ := s.do(http.MethodGet, path, token, "", nil)
			return status
		}
		send := func(s *server, token string, e map[string]any) (int, string) {
			body, err := json.Marshal(e)
			require.NoError(t, err)
			status, rb, _ := s.do(http.MethodPost, "/api/v4/audit_events", token, "application/json", body)
			var r struct{ Code string }
			_ = json.Unmarshal(rb, &r)
			return status, r.Code
		}

		// b learns the tree as it is: by id, by path, with the chain of a project below the group.
		require.Equal(t, http.StatusOK, get(b, "/api/v4/groups/102/audit_events", owner))
		require.Equal(t, http.StatusOK, get(b, "/api/v4/projects/org%2Fsub%2Fapp/audit_events", owner))
		require.Equal(t, http.StatusNotFound, get(b, "/api/v4/groups/102/audit_events", outside))
		status, code := send(b, ownerIngest, ev("protected_branch_created", "Project", "org/sub/app", 201, w.owner.ID, "before"))
		require.Equal(t, http.StatusCreated, status, code)

		// a learns from GitLab's instance that org/sub moved to other/sub.
		a.ingest(w.tokens["ingest"], ev("group_path_updated", "Group", "other/sub", 102, 1, "moved"))

		// Within a second, b reads by the new tree.
		poll.Until(t, time.Second, func() error {
			for _, c := range []struct {
				path, token, who string
				want             int
			}{
				{"/api/v4/projects/other%2Fsub%2Fapp/audit_events", outside, "the new owner, a project below it by its new path", http.StatusOK},
				{"/api/v4/groups/102/audit_events", outside, "the new owner, by id", http.StatusOK},
				{"/api/v4/groups/102/audit_events", owner, "the old owner, by id", http.StatusNotFound},
				{"/api/v4/projects/201/audit_events", owner, "the old owner, the project by id", http.StatusNotFound},
				{"/api/v4/groups/org%2Fsub/audit_events", adminToken, "anyone, the old path", http.StatusNotFound},
			} {
				if got := get(b, c.path, c.token); got != c.want {
					return fmt.Errorf("%s, %s: %d, want %d", c.who, c.path, got, c.want)
				}
			}
			return nil
		})
		// ... and files events by it: the old owner's producer cannot write the project where
		// it was (that would move it back), the new owner's writes it where it is.
		status, code = send(b, ownerIngest, ev("protected_branch_created", "Project", "org/sub/app", 201, w.owner.ID, "old place"))
		require.Equal(t, http.StatusForbidden, status)
		require.Equal(t, "producer_scope", code)
		ids := b.ingest(outsideIngest, ev("protected_branch_created", "Project", "other/sub/app", 201, w.outside.ID, "new place"),
			map[string]any{"event_type": "member_created", "entity_type": "Group", "entity_path": "other/sub", "author_id": w.outside.ID})
		poll.Until(t, 20*time.Second, func() error {
			for _, path := range []string{fmt.Sprintf("/api/v4/projects/other%%2Fsub%%2Fapp/audit_events/%d", ids[0]),
				fmt.Sprintf("/api/v4/groups/other%%2Fsub/audit_events/%d", ids[1])} {
				if got := get(b, path, outside); got != http.StatusOK {
					return fmt.Errorf("%s: %d", path, got)
				}
			}
			return nil
		})
	})
}

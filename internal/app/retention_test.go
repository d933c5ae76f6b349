package app_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/app"
	"github.com/auditstream/auditstream/internal/poll"
)

const (
	retentionQuery = `query($g: ID!) { group(fullPath: $g) { auditEventRetention {
		groupPath days effectiveDays instanceDefaultDays minDays maxDays } } }`
	retentionSet = `mutation($g: ID!, $d: Int) { auditEventRetentionUpdate(input: {groupPath: $g, days: $d}) {
		errors retention { groupPath days effectiveDays instanceDefaultDays minDays maxDays } } }`
	notFoundMessage = "The resource that you are attempting to access does not exist or you don't have permission to perform this action"
)

// retentionBounds: instance default 30 days, owners may choose 7 to 400.
func retentionBounds(c *app.Config) {
	c.Retention, c.RetentionMin, c.RetentionMax = 30*24*time.Hour, 7*24*time.Hour, 400*24*time.Hour
	c.ConfigMutationsPerMinute = 0
}

// storedEvents lists up to 100 stored events as the administrator reads them, newest first.
func storedEvents(t *testing.T, s *server, query string) []map[string]any {
	t.Helper()
	status, body, _ := s.do(http.MethodGet, "/api/v4/audit_events?per_page=100&"+query, s.admin, "", nil)
	require.Equal(t, http.StatusOK, status, "%s", body)
	var out []map[string]any
	require.NoError(t, json.Unmarshal(body, &out))
	return out
}

// TestRetentionAuthorizationMatrix: a group's retention is read by its maintainers and above
// and administrators, and changed by the owners of its top-level group and administrators,
// with a token of scope api; everyone else gets GitLab's not-found error (or, not being a
// member, a null group) and changes nothing. Invalid values are refused in the payload's
// errors with the reason and change nothing; a change is recorded as an audit event of the
// group.
func TestRetentionAuthorizationMatrix(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := start(t, driver, retentionBounds)
		w := newWorld(t, s)
		read := func(token, group string) gqlResult { return s.gql(token, retentionQuery, map[string]any{"g": group}) }
		current := func() map[string]any {
			return dig(s.gqlOK(adminToken, retentionQuery, map[string]any{"g": "org"}), "group", "auditEventRetention").(map[string]any)
		}
		initial := map[string]any{"groupPath": "org", "days": nil, "effectiveDays": 30.0, "instanceDefaultDays": 30.0, "minDays": 7.0, "maxDays": 400.0}
		require.Equal(t, initial, current())

		for _, tc := range []struct {
			caller    string
			read, set bool
		}{
			{"admin", true, true},
			{"owner", true, true},
			{"maint", true, false},
			{"dev", false, false},
			{"rep", false, false},
			{"outside", false, false}, // owns another group, not a member of org
			{"owner_read_api", true, false},
		} {
			t.Run(tc.caller, func(t *testing.T) {
				token := w.tokens[tc.caller]
				r := read(token, "org")
				if tc.read {
					require.Empty(t, r.Errors, r.Raw)
					require.Equal(t, "org", dig(r.Data, "group", "auditEventRetention", "groupPath"))
					require.Equal(t, "org", dig(read(token, "org/sub").Data, "group", "auditEventRetention", "groupPath"), "a subgroup tells its top-level group's")
				} else if dig(r.Data, "group") != nil {
					require.Equal(t, []string{notFoundMessage}, r.messages(), r.Raw)
					require.Equal(t, "not_found", r.Errors[0].Extensions["code"])
					require.Nil(t, dig(r.Data, "group", "auditEventRetention"))
				}

				before := current()
				res := s.gql(token, retentionSet, map[string]any{"g": "org", "d": 90})
				if !tc.set {
					require.Equal(t, []string{notFoundMessage}, res.messages(), res.Raw)
					require.Nil(t, dig(res.Data, "auditEventRetentionUpdate"))
					require.Equal(t, before, current(), "a refused change changes nothing")
					return
				}
				require.Empty(t, res.Errors, res.Raw)
				require.Empty(t, dig(res.Data, "auditEventRetentionUpdate", "errors"))
				require.Equal(t, 90.0, dig(res.Data, "auditEventRetentionUpdate", "retention", "days"))
				require.Equal(t, 90.0, current()["days"])
				require.Equal(t, 90.0, current()["effectiveDays"])
				// Back to the instance default for the next caller.
				p := s.mutate(token, "auditEventRetentionUpdate", retentionSet, map[string]any{"g": "org", "d": nil})
				require.Nil(t, dig(p, "retention", "days"))
				require.Equal(t, initial, current())
			})
		}

		t.Run("invalid", func(t *testing.T) {
			s.mutate(w.tokens["owner"], "auditEventRetentionUpdate", retentionSet, map[string]any{"g": "org", "d": 60})
			for _, tc := range []struct {
				group string
				days  any
				want  string
			}{
				{"org", 6, "Retention must be at least 7 days (the instance's floor), not 6"},
				{"org", 0, "Retention must be at least 7 days (the instance's floor), not 0"},
				{"org", -1, "Retention must be at least 7 days (the instance's floor), not -1"},
				{"org", 401, "Retention must be at most 400 days (the instance's ceiling), not 401"},
				{"org/sub", 30, "Retention is set on top-level groups only: org/sub belongs to org"},
			} {
				res := s.gqlOK(w.tokens["owner"], retentionSet, map[string]any{"g": tc.group, "d": tc.days})
				require.Equal(t, []any{tc.want}, dig(res, "auditEventRetentionUpdate", "errors"), "%s %v", tc.group, tc.days)
				require.Nil(t, dig(res, "auditEventRetentionUpdate", "retention"))
				require.Equal(t, 60.0, current()["days"], "a refused value changes nothing")
			}
			res := s.gql(w.tokens["owner"], retentionSet, map[string]any{"g": "no/such/group", "d": 30})
			require.Equal(t, []string{notFoundMessage}, res.messages())
		})

		t.Run("audited", func(t *testing.T) {
			// Every change above was recorded as an event of the group, by who made it.
			poll.Until(t, 20*time.Second, func() error {
				var msgs []string
				for _, e := range storedEvents(t, s, "entity_type=Group&entity_id=101") {
					if e["event_type"] == "audit_events_retention_updated" {
						msgs = append(msgs, fmt.Sprint(dig(e, "details", "custom_message"))+" by "+fmt.Sprint(e["author_name"]))
					}
				}
				want := []string{
					"Changed the retention of stored audit events from the instance default (30 days) to 60 days by OWNER",
					"Changed the retention of stored audit events from 90 days to the instance default (30 days) by OWNER",
					"Changed the retention of stored audit events from the instance default (30 days) to 90 days by OWNER",
					"Changed the retention of stored audit events from 90 days to the instance default (30 days) by Administrator",
					"Changed the retention of stored audit events from the instance default (30 days) to 90 days by Administrator",
				}
				if strings.Join(msgs, "\n") != strings.Join(want, "\n") {
					return fmt.Errorf("retention events, newest first: %q", msgs)
				}
				return nil
			})
		})
	})
}

// TestRetentionPurgesAGroupsEvents: an owner shortens the group's retention; the purge deletes
// the group's (its subgroups' and projects') events older than that and keeps the rest, also
// other groups' events, which keep the instance default, and records what it deleted as an
// audit event of the group. Both stores, real log and ingest.
func TestRetentionPurgesAGroupsEvents(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := start(t, driver, retentionBounds, func(c *app.Config) { c.RetentionPurgeInterval = time.Second })
		w := newWorld(t, s)
		ago := func(d time.Duration) string { return time.Now().Add(-d).UTC().Format(time.RFC3339) }
		ev := func(entityType string, id int, path string, age time.Duration) map[string]any {
			return map[string]any{"event_type": "group_created", "entity_type": entityType, "entity_id": id, "entity_path": path,
				"author_id": 1, "created_at": ago(age), "details": map[string]any{"custom_message": path + " " + age.String()}}
		}
		day := 24 * time.Hour
		ids := s.ingest(adminToken,
			ev("Group", 101, "org", 10*day),                // gone: org keeps 7 days
			ev("Project", 201, "org/sub/app", 8*day),       // gone
			ev("Group", 102, "org/sub", 2*day),             // kept
			ev("Group", 103, "other", 10*day),              // kept: other keeps the default, 30 days
			ev("Group", 103, "other", 31*day),              // gone at the first purge
			ev("Gitlab::Audit::InstanceScope", 1, "", day), // kept
		)
		stored := func() map[float64]bool {
			got := map[float64]bool{}
			for _, e := range storedEvents(t, s, "") {
				got[e["id"].(float64)] = true
			}
			return got
		}
		// The org's old events are stored before its retention changes, so that one purge
		// deletes both (the other group's 31-day-old one may be gone already).
		poll.Until(t, 20*time.Second, func() error {
			if got := stored(); !got[float64(ids[0])] || !got[float64(ids[1])] {
				return errors.New("the org's events are not stored yet")
			}
			return nil
		})

		s.mutate(w.tokens["owner"], "auditEventRetentionUpdate", retentionSet, map[string]any{"g": "org", "d": 7})
		poll.Until(t, 20*time.Second, func() error {
			got := stored()
			for i, keep := range []bool{false, false, true, true, false, true} {
				if got[float64(ids[i])] != keep {
					return fmt.Errorf("event %d (#%d) stored: %v, want %v", ids[i], i, got[float64(ids[i])], keep)
				}
			}
			return nil
		})
		poll.Until(t, 20*time.Second, func() error {
			for _, e := range storedEvents(t, s, "entity_type=Group&entity_id=101") {
				if e["event_type"] == "audit_events_retention_purged" {
					msg := fmt.Sprint(dig(e, "details", "custom_message"))
					if !strings.HasPrefix(msg, "Deleted 2 stored audit events created before ") || !strings.HasSuffix(msg, "(the group's retention: 7 days)") {
						return fmt.Errorf("purge event says %q", msg)
					}
					require.Equal(t, 2.0, dig(e, "details", "deleted_count"))
					return nil
				}
			}
			return errors.New("no purge event for org yet")
		})
		status, body, _ := s.do(http.MethodGet, "/metrics", "", "", nil)
		require.Equal(t, http.StatusOK, status)
		require.Contains(t, string(body), "\nauditstream_store_purged_events_total 3\n")
	})
}

// TestRetentionOnTheStreamsPage: the group's streams page tells how long its stored events are
// kept and lets its owner change it (days, or empty for the instance default); a refused value
// is shown with the reason and changes nothing; a read-only session cannot change it.
func TestRetentionOnTheStreamsPage(t *testing.T) {
	s := start(t, "sqlite", retentionBounds)
	w := newWorld(t, s)
	const page = "/groups/org/-/streams"
	b := signIn(s, w.tokens["owner"])
	p := b.get(page)
	require.Equal(t, http.StatusOK, p.status, p.body)
	require.Contains(t, p.text(), "Stored audit events of org and its subgroups and projects are kept for the instance default, 30 days.")
	require.Contains(t, p.body, `min="7" max="400"`)

	p = b.submit(page+"/retention", form("days", "90"))
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	require.Equal(t, page+"#retention", p.location())
	p = b.get(page)
	require.Contains(t, p.text(), "Stored audit events of org are kept for 90 days (this group's setting).", "the notice")
	require.Contains(t, p.text(), "are kept for 90 days (this group's setting). Older ones")
	require.Contains(t, p.body, `value="90"`)

	for _, tc := range []struct{ days, want string }{
		{"3", "Retention must be at least 7 days (the instance's floor), not 3"},
		{"401", "Retention must be at most 400 days (the instance's ceiling), not 401"},
		{"ninety", "Retention must be a whole number of days, or empty for the instance default."},
	} {
		p = b.submit(page+"/retention", form("days", tc.days))
		require.Equal(t, http.StatusUnprocessableEntity, p.status, p.body)
		require.Contains(t, p.text(), tc.want)
		require.Contains(t, p.body, `value="`+tc.days+`"`, "the form keeps what was typed")
	}
	require.Equal(t, 90.0, dig(s.gqlOK(adminToken, retentionQuery, map[string]any{"g": "org"}), "group", "auditEventRetention", "days"), "refused values change nothing")

	ro := signIn(s, w.tokens["owner_read_api"])
	require.Contains(t, ro.get(page).text(), "kept for 90 days")
	require.NotContains(t, ro.get(page).body, "Save retention")
	p = ro.submit(page+"/retention", form("days", "30"))
	require.Equal(t, http.StatusForbidden, p.status)
	require.Equal(t, http.StatusNotFound, signIn(s, w.tokens["maint"]).submit(page+"/retention", form("days", "30")).status)

	p = b.submit(page+"/retention", form("days", ""))
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	require.Contains(t, b.get(page).text(), "kept for the instance default, 30 days")
	require.Nil(t, dig(s.gqlOK(adminToken, retentionQuery, map[string]any{"g": "org"}), "group", "auditEventRetention", "days"))
}

// TestRetentionOneReplicaPurges: two replicas share one log and one database; one of them at a
// time purges (the lease retention-purge), so the events past their retention are deleted and
// recorded once: the purge events' counts add up to what was deleted, not twice that.
func TestRetentionOneReplicaPurges(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		a, b := startReplicas(t, driver, func(c *app.Config) {
			c.Retention, c.RetentionPurgeInterval = 30*24*time.Hour, time.Second
		})
		old := map[string]any{"event_type": "user_created", "entity_type": "Instance", "created_at": "2020-01-01T00:00:00Z"}
		fresh := map[string]any{"event_type": "user_created", "entity_type": "Instance"}
		a.ingest(adminToken, old, old, fresh)
		b.ingest(adminToken, old, fresh)
		var deleted float64
		poll.Until(t, 30*time.Second, func() error {
			deleted = 0
			var fresh int
			for _, e := range storedEvents(t, b, "") {
				switch {
				case e["event_type"] == "audit_events_retention_purged":
					deleted += dig(e, "details", "deleted_count").(float64)
				case e["created_at"] == "2020-01-01T00:00:00.000Z":
					return errors.New("an old event is still stored")
				default:
					fresh++
				}
			}
			if fresh != 2 || deleted < 3 {
				return fmt.Errorf("%d fresh events stored, %v purges recorded", fresh, deleted)
			}
			return nil
		})
		require.Equal(t, 3.0, deleted, "each old event was purged and recorded once")
	})
}

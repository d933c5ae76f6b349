package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/poll"
)

// tokenWithID creates a token with scopes for the user and returns it and its id.
func (s *server) tokenWithID(userID int64, scopes ...string) (string, int64) {
	s.t.Helper()
	body, err := json.Marshal(map[string]any{"name": "provenance", "scopes": scopes})
	require.NoError(s.t, err)
	status, b, _ := s.do(http.MethodPost, fmt.Sprintf("/api/v4/users/%d/personal_access_tokens", userID), adminToken, "application/json", body)
	require.Equal(s.t, http.StatusCreated, status, string(b))
	var tok struct {
		ID    int64
		Token string
	}
	require.NoError(s.t, json.Unmarshal(b, &tok))
	require.NotZero(s.t, tok.ID)
	return tok.Token, tok.ID
}

// producerOf returns the auditstream_producer object of an event's JSON (nil without one).
func producerOf(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var e map[string]any
	require.NoError(t, json.Unmarshal(data, &e), "%s", data)
	p, _ := e["auditstream_producer"].(map[string]any)
	return p
}

func wantProducer(tokenID, userID int64, username, via string) map[string]any {
	return map[string]any{"token_id": float64(tokenID), "user_id": float64(userID), "username": username, "via": via}
}

// TestEventsRecordTheirProducer (issue 13, item 2): every event records which producer wrote
// it — the token it was published with and that token's user — in auditstream_producer, a
// key a producer cannot send. It is there in GET /api/v4/audit_events, the group's events,
// the UI's event page and what an HTTP destination receives, and it tells the truth where
// author_id does not have to: a producer may name anyone as the author, not itself as
// someone else. Self-recorded events (a destination created) name the user who acted.
func TestEventsRecordTheirProducer(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := start(t, driver, noLimits, allowPrivate)
		w := newWorld(t, s)
		ownerAPI, ownerAPIID := s.tokenWithID(w.owner.ID, "api")
		ownerIngest, ownerIngestID := s.tokenWithID(w.owner.ID, "ingest")
		adminIngest, adminIngestID := s.tokenWithID(1, "ingest")
		h := newHook(t)
		s.createGroupDestination(ownerAPI, "org", "http", httpConfig(h.URL), "verification-token-0123")

		// A forged producer is refused, alone or in a batch, and nothing of it is stored.
		forged := `{"event_type":"member_created","entity_type":"Group","entity_id":101,"entity_path":"org",` +
			fmt.Sprintf(`"auditstream_producer":{"token_id":%d,"user_id":1,"username":"root","via":"ingest"}}`, adminIngestID)
		for _, body := range []string{forged, `[{"event_type":"member_created","entity_type":"Group","entity_id":101,"entity_path":"org"},` + forged + `]`} {
			status, b, _ := s.do(http.MethodPost, "/api/v4/audit_events", ownerIngest, "application/json", []byte(body))
			require.Equal(t, http.StatusBadRequest, status, string(b))
			var e struct{ Code string }
			require.NoError(t, json.Unmarshal(b, &e))
			require.Equal(t, "reserved_field", e.Code, string(b))
		}

		// The owner's namespace-bound token writes an event that names another user as its
		// author; the instance producer writes one too.
		bound := s.ingest(ownerIngest, ev("member_created", "Group", "org", w.org.ID, w.outside.ID, "says outside did it"))[0]
		inst := s.ingest(adminIngest, ev("member_updated", "Group", "org", w.org.ID, w.owner.ID, "from GitLab"))[0]
		want := map[int64]map[string]any{
			bound: wantProducer(ownerIngestID, w.owner.ID, "owner", "ingest"),
			inst:  wantProducer(adminIngestID, 1, "root", "ingest"),
		}

		// Stored: the instance and the group's REST API show it.
		var created map[string]any // the self-recorded event of the destination's creation
		poll.Until(t, 20*time.Second, func() error {
			status, b, _ := s.do(http.MethodGet, "/api/v4/audit_events?per_page=100", adminToken, "", nil)
			if status != http.StatusOK {
				return fmt.Errorf("%d %s", status, b)
			}
			var events []json.RawMessage
			require.NoError(t, json.Unmarshal(b, &events))
			found := 0
			for _, e := range events {
				var head struct {
					ID        int64  `json:"id"`
					EventType string `json:"event_type"`
				}
				require.NoError(t, json.Unmarshal(e, &head))
				if p, ok := want[head.ID]; ok {
					require.Equal(t, p, producerOf(t, e), "event %d: %s", head.ID, e)
					found++
				}
				if head.EventType == "created_group_audit_event_streaming_destination" {
					created = producerOf(t, e)
				}
			}
			if found != len(want) || created == nil {
				return fmt.Errorf("found %d of %d events, creation recorded: %v", found, len(want), created != nil)
			}
			return nil
		})
		require.Equal(t, wantProducer(ownerAPIID, w.owner.ID, "owner", "auditstream"), created,
			"a self-recorded event names the user (and token) whose change it records")
		status, b, _ := s.do(http.MethodGet, fmt.Sprintf("/api/v4/groups/%d/audit_events/%d", w.org.ID, bound), ownerAPI, "", nil)
		require.Equal(t, http.StatusOK, status, string(b))
		require.Equal(t, want[bound], producerOf(t, b))
		// GitLab's client reads the event as before: the key is an addition it ignores.
		ge, _, err := s.client(ownerAPI).AuditEvents.GetGroupAuditEvent(w.org.ID, bound)
		require.NoError(t, err)
		require.Equal(t, w.outside.ID, ge.AuthorID, "author_id is what the producer said")

		// The UI's event page shows it in the event's JSON.
		page := signIn(s, ownerAPI).get(fmt.Sprintf("/groups/org/-/audit_events/%d", bound))
		require.Equal(t, http.StatusOK, page.status)
		require.Contains(t, page.text(), `"auditstream_producer": {`)
		require.Contains(t, page.text(), fmt.Sprintf(`"token_id": %d`, ownerIngestID))

		// Streamed: the HTTP destination receives it.
		poll.Until(t, 20*time.Second, func() error {
			h.mu.Lock()
			defer h.mu.Unlock()
			got := map[int64]map[string]any{}
			for _, b := range h.bodies {
				var head struct {
					ID int64 `json:"id"`
				}
				require.NoError(t, json.Unmarshal(b, &head))
				if _, ok := want[head.ID]; ok {
					got[head.ID] = producerOf(t, b)
					require.True(t, strings.HasSuffix(strings.TrimSpace(string(b)), "}}"), "the producer is the last key: %s", b)
				}
			}
			if len(got) != len(want) {
				return fmt.Errorf("received %d of %d", len(got), len(want))
			}
			require.Equal(t, want, got)
			return nil
		})
	})
}

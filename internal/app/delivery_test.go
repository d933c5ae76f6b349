package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/app"
	"github.com/auditstream/auditstream/internal/poll"
)

// hook is a real HTTP receiver that records the requests it accepts.
type hook struct {
	*httptest.Server
	mu      sync.Mutex
	bodies  [][]byte
	headers []http.Header
	status  int
}

func newHook(t *testing.T) *hook {
	h := &hook{status: http.StatusOK}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		status := h.status
		if status < 300 {
			h.bodies = append(h.bodies, b)
			h.headers = append(h.headers, r.Header.Clone())
		}
		h.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hook) setStatus(s int) {
	h.mu.Lock()
	h.status = s
	h.mu.Unlock()
}

// types returns the event types received, in order.
func (h *hook) types() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, hd := range h.headers {
		out = append(out, hd.Get("X-Gitlab-Audit-Event-Type"))
	}
	return out
}

func allowPrivate(c *app.Config) { c.AllowPrivateDestinations = true }

// TestGraphQLDeliveryThroughTheService: an owner's destination receives the group's events in
// GitLab's format, and its status, attempt log, test events and dead letters are there to see.
func TestGraphQLDeliveryThroughTheService(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := start(t, driver, noLimits, allowPrivate)
		w := newWorld(t, s)
		owner := w.tokens["owner"]
		h := newHook(t)
		id := s.createGroupDestination(owner, "org", "http", map[string]any{"url": h.URL + "/audit?k=1",
			"headers": map[string]any{"X-Team": map[string]any{"value": "sec", "active": true}}}, "verification-token-0123")
		statusQ := `query { group(fullPath: "org") { externalAuditEventStreamingDestinations { nodes { deliveryStatus { status pendingEvents deliveredEvents deadLetterCount lastError { statusCode message } }
			deliveryAttempts(first: 10) { success count statusCode error test } deadLetters(first: 5) { count nodes { eventId eventType statusCode } } } } } }`
		status := func() map[string]any {
			return dig(s.gqlOK(owner, statusQ, nil), "group", "externalAuditEventStreamingDestinations", "nodes", "0").(map[string]any)
		}

		s.ingest(w.tokens["ingest"], ev("member_created", "Group", "org", w.org.ID, w.owner.ID, "one"),
			ev("protected_branch_created", "Project", "org/sub/app", w.proj.ID, w.dev.ID, "two"),
			ev("member_created", "Group", "other", w.other.ID, w.outside.ID, "not org's"))
		poll.Until(t, 10*time.Second, func() error {
			if got := h.types(); !slices.Contains(got, "protected_branch_created") || !slices.Contains(got, "member_created") {
				return fmt.Errorf("received %v", got)
			}
			return nil
		})
		h.mu.Lock()
		for i, b := range h.bodies {
			require.NotContains(t, string(b), "not org's", "another group's event")
			require.Equal(t, "verification-token-0123", h.headers[i].Get("X-Gitlab-Event-Streaming-Token"))
			require.Equal(t, "sec", h.headers[i].Get("X-Team"))
			require.Equal(t, "application/json", h.headers[i].Get("Content-Type"))
			require.True(t, strings.HasPrefix(h.headers[i].Get("webhook-signature"), "v1,"))
			var e map[string]any
			require.NoError(t, json.Unmarshal(b, &e))
			require.Equal(t, h.headers[i].Get("webhook-id"), fmt.Sprint(e["id"]), "the event id is the webhook id")
		}
		h.mu.Unlock()
		poll.Until(t, 10*time.Second, func() error {
			st := status()
			if dig(st, "deliveryStatus", "status") != "healthy" || dig(st, "deliveryStatus", "pendingEvents") != float64(0) {
				return fmt.Errorf("%v", st)
			}
			return nil
		})

		// A test event reaches the receiver and shows in the attempt log.
		p := s.mutate(owner, "auditEventStreamingDestinationTestEventSend",
			`mutation($id: ID!) { auditEventStreamingDestinationTestEventSend(input: {destinationId: $id}) { errors success statusCode latencyMs error } }`, map[string]any{"id": id})
		require.Equal(t, true, p["success"], p)
		require.Equal(t, float64(200), p["statusCode"])
		require.Contains(t, h.types(), "audit_events_streaming_test_event")

		// The receiver refuses: the event is dead-lettered with the status, and the log says so.
		h.setStatus(http.StatusUnprocessableEntity)
		s.ingest(w.tokens["ingest"], ev("member_updated", "Group", "org", w.org.ID, w.owner.ID, "refused"))
		poll.Until(t, 10*time.Second, func() error {
			st := status()
			if dig(st, "deadLetters", "count") != float64(1) || dig(st, "deliveryStatus", "deadLetterCount") != float64(1) {
				return fmt.Errorf("%v", st)
			}
			return nil
		})
		st := status()
		require.Equal(t, "member_updated", dig(st, "deadLetters", "nodes", "0", "eventType"))
		require.Equal(t, float64(422), dig(st, "deadLetters", "nodes", "0", "statusCode"))
		require.Equal(t, float64(422), dig(st, "deliveryStatus", "lastError", "statusCode"))
		require.NotContains(t, fmt.Sprint(st), "k=1", "no URL query in what owners see")
		poll.Until(t, 10*time.Second, func() error {
			attempts, _ := dig(status(), "deliveryAttempts").([]any)
			var sawTest, sawFailure bool
			for _, a := range attempts {
				sawTest = sawTest || dig(a, "test") == true
				sawFailure = sawFailure || dig(a, "statusCode") == float64(422)
			}
			if !sawTest || !sawFailure {
				return fmt.Errorf("attempts %v", attempts)
			}
			return nil
		})

		// Fixed: redelivering empties the dead letters.
		h.setStatus(http.StatusOK)
		p = s.mutate(owner, "auditEventStreamingDestinationDeadLettersRedeliver",
			`mutation($id: ID!) { auditEventStreamingDestinationDeadLettersRedeliver(input: {destinationId: $id}) { errors delivered failed } }`, map[string]any{"id": id})
		require.Equal(t, float64(1), p["delivered"])
		require.Contains(t, h.types(), "member_updated")
		require.Equal(t, float64(0), dig(status(), "deadLetters", "count"))

		// Replay within the log's max age; not from the future.
		r := s.gql(owner, `mutation($id: ID!, $t: Time!) { auditEventStreamingDestinationReplay(input: {destinationId: $id, since: $t}) { errors } }`,
			map[string]any{"id": id, "t": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
		require.Equal(t, []any{"since must not be in the future"}, dig(r.Data, "auditEventStreamingDestinationReplay", "errors"), r.Raw)
		// Time takes what the REST API's time parameters take (GitLab's forms; no offset: UTC).
		r = s.gql(owner, `mutation($id: ID!, $t: Time!) { auditEventStreamingDestinationReplay(input: {destinationId: $id, since: $t}) { errors } }`,
			map[string]any{"id": id, "t": time.Now().Add(time.Hour).UTC().Format("2006-01-02 15:04:05.000000")})
		require.Equal(t, []any{"since must not be in the future"}, dig(r.Data, "auditEventStreamingDestinationReplay", "errors"), r.Raw)
		before := len(h.types())
		s.mutate(owner, "auditEventStreamingDestinationReplay",
			`mutation($id: ID!, $t: Time!) { auditEventStreamingDestinationReplay(input: {destinationId: $id, since: $t}) { errors } }`,
			map[string]any{"id": id, "t": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)})
		poll.Until(t, 10*time.Second, func() error {
			if n := len(h.types()); n < before+3 {
				return fmt.Errorf("%d received after the replay, %d before", n, before)
			}
			return nil
		})

		// Others get GitLab's not-found answer for all of it.
		for _, tok := range []string{w.tokens["maint"], w.tokens["outside"], w.tokens["owner_read_api"]} {
			r := s.gql(tok, `mutation($id: ID!) { auditEventStreamingDestinationTestEventSend(input: {destinationId: $id}) { errors } }`, map[string]any{"id": id})
			require.Equal(t, "not_found", r.Errors[0].Extensions["code"], r.Raw)
			r = s.gql(tok, `mutation($id: ID!) { auditEventStreamingDestinationDeadLettersRedeliver(input: {destinationId: $id}) { errors } }`, map[string]any{"id": id})
			require.Equal(t, "not_found", r.Errors[0].Extensions["code"], r.Raw)
		}
	})
}

// TestGraphQLPausedDestination: deactivating shows "paused" at once and stops delivery.
func TestGraphQLPausedDestination(t *testing.T) {
	s := start(t, "sqlite", noLimits, allowPrivate)
	w := newWorld(t, s)
	h := newHook(t)
	id := s.createGroupDestination(s.admin, "org", "http", httpConfig(h.URL), "")
	s.mutate(s.admin, "groupAuditEventStreamingDestinationsUpdate",
		`mutation($id: AuditEventsGroupExternalStreamingDestinationID!) { groupAuditEventStreamingDestinationsUpdate(input: {id: $id, active: false}) { errors } }`, map[string]any{"id": id})
	data := s.gqlOK(s.admin, `{ group(fullPath: "org") { externalAuditEventStreamingDestinations { nodes { deliveryStatus { status } } } } }`, nil)
	require.Equal(t, "paused", dig(data, "group", "externalAuditEventStreamingDestinations", "nodes", "0", "deliveryStatus", "status"))
	s.ingest(w.tokens["ingest"], ev("member_created", "Group", "org", w.org.ID, w.owner.ID, "while paused"))
	s.waitStored(3) // the event and the two changes' audit events
	require.NotContains(t, h.types(), "member_created")
}

// A receiver that only --destination-allow-cidrs lets destinations reach is an internal service:
// the test event's result shows its status, never its body (issue 13, item 5).
func TestInternalReceiverBodyIsNotShown(t *testing.T) {
	page := "<html><title>Jenkins admin</title><body>secret internal page: build agents a1 a2 a3</body></html>"
	rec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, page)
	}))
	defer rec.Close()
	s := start(t, "sqlite", noLimits, func(c *app.Config) {
		c.AllowPrivateDestinations = false
		c.DestinationAllowCIDRs = "127.0.0.0/8"
	})
	gid := s.createInstanceDestination("http", httpConfig(rec.URL), "")
	p := s.mutate(s.admin, "auditEventStreamingDestinationTestEventSend",
		`mutation($id: ID!) { auditEventStreamingDestinationTestEventSend(input: {destinationId: $id}) { errors success statusCode error } }`,
		map[string]any{"id": gid})
	require.Equal(t, false, p["success"])
	require.Equal(t, float64(http.StatusForbidden), p["statusCode"])
	require.Equal(t, "403 Forbidden", p["error"], "nothing of the internal page")
}

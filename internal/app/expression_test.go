package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/poll"
)

const (
	setExpressionQ = `mutation($id: ID!, $e: String!) { auditEventStreamingDestinationFilterExpressionSet(input: {destinationId: $id, expression: $e}) { errors errorCodes filterExpression } }`
	previewQ       = `query($g: ID, $e: String!) { auditEventStreamingFilterPreview(groupPath: $g, expression: $e) { examinedCount matchedCount matchedEventIds error errorCode } }`
	// tokenExpr is the example.
	tokenExpr = `details.custom_message.contains("token") && !ip_address.startsWith("10.")`
)

// messages returns the custom_message of every event of type typ the hook received, with
// its id.
func (h *hook) messages(typ string) map[string]int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]int64{}
	for _, b := range h.bodies {
		var e struct {
			ID        int64  `json:"id"`
			EventType string `json:"event_type"`
			Details   struct {
				CustomMessage string `json:"custom_message"`
			} `json:"details"`
		}
		if json.Unmarshal(b, &e) == nil && e.EventType == typ {
			out[e.Details.CustomMessage] = e.ID
		}
	}
	return out
}

// TestExpressionFilterThroughTheEngine: a destination with an expression receives, through
// the real engine, only the events the expression takes; a refused expression changes
// nothing; the preview tells the same events apart.
func TestExpressionFilterThroughTheEngine(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := start(t, driver, noLimits, allowPrivate)
		w := newWorld(t, s)
		owner := w.tokens["owner"]
		h := newHook(t)
		id := s.createGroupDestination(owner, "org", "http", httpConfig(h.URL), "verification-token-0123")

		p := s.mutate(owner, "auditEventStreamingDestinationFilterExpressionSet", setExpressionQ, map[string]any{"id": id, "e": "  " + tokenExpr + "\n"})
		require.Equal(t, tokenExpr, p["filterExpression"], "trimmed")
		require.Equal(t, []any{}, p["errorCodes"])

		// Refused with the compiler's message and a stable code; the expression in force stays.
		for expr, code := range map[string]string{
			`author_id == "x"`:         "invalid_expression",
			`details.custom_message +`: "invalid_expression",
			`author_name`:              "expression_not_bool",
			`details.exists(a, details.exists(b, details.exists(c, string(details[a]).matches(string(details[b]) + string(details[c])))))`: "expression_too_costly",
		} {
			r := s.gqlOK(owner, setExpressionQ, map[string]any{"id": id, "e": expr})
			pl := dig(r, "auditEventStreamingDestinationFilterExpressionSet")
			require.Equal(t, []any{code}, dig(pl, "errorCodes"), "%s: %v", expr, pl)
			errs, _ := dig(pl, "errors").([]any)
			require.Len(t, errs, 1)
			require.True(t, strings.HasPrefix(errs[0].(string), "filterExpression: "), errs[0])
			require.Nil(t, dig(pl, "filterExpression"))
		}
		got := s.gqlOK(owner, `query { group(fullPath: "org") { externalAuditEventStreamingDestinations { nodes { filterExpression } } } }`, nil)
		require.Equal(t, tokenExpr, dig(got, "group", "externalAuditEventStreamingDestinations", "nodes", "0", "filterExpression"))

		// The engine rereads the destination on its own time: from the first probe pair whose
		// refused half does not arrive, the expression is in force.
		probe, pending := 0, false
		poll.Until(t, 30*time.Second, func() error {
			if !pending {
				probe++
				refused := ev("member_created", "Group", "org", w.org.ID, w.owner.ID, fmt.Sprint("probe ", probe))
				refused["ip_address"] = "192.0.2.1"
				taken := ev("member_created", "Group", "org", w.org.ID, w.owner.ID, fmt.Sprint("token probe ", probe))
				taken["ip_address"] = "192.0.2.1"
				s.ingest(w.tokens["ingest"], refused, taken)
				pending = true
			}
			got := h.messages("member_created")
			if _, ok := got[fmt.Sprint("token probe ", probe)]; !ok {
				return fmt.Errorf("probe %d not there yet", probe)
			}
			pending = false
			if _, ok := got[fmt.Sprint("probe ", probe)]; ok {
				return fmt.Errorf("probe %d: the refused half arrived: no expression yet", probe)
			}
			return nil
		})

		cases := []struct {
			msg, ip string
			taken   bool
		}{
			{"case: rotated a token", "192.0.2.1", true},
			{"case: rotated a token from inside", "10.9.9.9", false},
			{"case: nothing to see", "192.0.2.1", false},
			{"case: token again", "2001:db8::1", true},
		}
		var events []map[string]any
		for _, c := range cases {
			e := ev("member_created", "Group", "org", w.org.ID, w.owner.ID, c.msg)
			e["ip_address"] = c.ip
			events = append(events, e)
		}
		noMessage := ev("member_created", "Group", "org", w.org.ID, w.owner.ID, "")
		delete(noMessage, "details")
		noMessage["details"] = map[string]any{"other": "token"}
		noMessage["ip_address"] = "192.0.2.1"
		events = append(events, noMessage)
		ids := s.ingest(w.tokens["ingest"], events...)
		poll.Until(t, 10*time.Second, func() error {
			got := h.messages("member_created")
			for _, c := range cases {
				if _, ok := got[c.msg]; c.taken && !ok {
					return fmt.Errorf("%q not received yet", c.msg)
				}
			}
			return nil
		})
		received := h.messages("member_created")
		for _, c := range cases {
			_, ok := received[c.msg]
			require.Equal(t, c.taken, ok, c.msg)
		}
		_, ok := received[""]
		require.False(t, ok, "an event without details.custom_message is not taken")

		// The preview tells the same events apart, among the group's latest, once they are
		// stored (the store follows the log on its own time).
		poll.Until(t, 10*time.Second, func() error { // every case stored (not in id order on PostgreSQL)
			for _, id := range ids {
				if status, body, _ := s.do(http.MethodGet, "/api/v4/audit_events/"+strconv.FormatInt(id, 10), s.admin, "", nil); status != http.StatusOK {
					return fmt.Errorf("event %d: %d %s", id, status, body)
				}
			}
			return nil
		})
		pv := dig(s.gqlOK(owner, previewQ, map[string]any{"g": "org", "e": tokenExpr}), "auditEventStreamingFilterPreview")
		require.Nil(t, dig(pv, "error"), pv)
		matched := dig(pv, "matchedEventIds").([]any)
		require.Equal(t, float64(len(matched)), dig(pv, "matchedCount"))
		require.LessOrEqual(t, dig(pv, "examinedCount").(float64), float64(100))
		for i, c := range cases {
			require.Equal(t, c.taken, slices.Contains(matched, any(fmt.Sprint(ids[i]))), c.msg)
		}
		require.NotContains(t, matched, any(fmt.Sprint(ids[len(cases)])))
		pv = dig(s.gqlOK(owner, previewQ, map[string]any{"g": "org", "e": "entity_path =="}), "auditEventStreamingFilterPreview")
		require.Equal(t, "invalid_expression", dig(pv, "errorCode"), pv)
		require.Contains(t, dig(pv, "error"), "Syntax error")

		// Cleared: everything flows again.
		p = s.mutate(owner, "auditEventStreamingDestinationFilterExpressionSet", setExpressionQ, map[string]any{"id": id, "e": " "})
		require.Equal(t, "", p["filterExpression"])
	})
}

// TestExpressionFilterAuthorization: who may set an expression and preview one: owners of the
// top-level group and administrators for a group's destinations, administrators only for the
// instance's, on both APIs; the change is recorded as an update of the destination.
func TestExpressionFilterAuthorization(t *testing.T) {
	s := start(t, "sqlite", noLimits, allowPrivate)
	w := newWorld(t, s)
	h := newHook(t)
	group := s.createGroupDestination(w.tokens["owner"], "org", "http", httpConfig(h.URL), "verification-token-0123")
	instance := s.createInstanceDestination("http", httpConfig(h.URL+"/i"), "verification-token-0123")
	legacy := strings.Replace(group, "AuditEvents::Group::ExternalStreamingDestination", "AuditEvents::ExternalAuditEventDestination", 1)
	legacyInstance := strings.Replace(instance, "AuditEvents::Instance::ExternalStreamingDestination", "AuditEvents::InstanceExternalAuditEventDestination", 1)

	for _, tc := range []struct {
		who     string
		id      string
		allowed bool
	}{
		{"owner", group, true},
		{"owner", legacy, true},
		{"admin", group, true},
		{"maint", group, false},
		{"dev", group, false},
		{"rep", group, false},
		{"outside", group, false},
		{"owner_read_api", group, false},
		{"owner", instance, false},
		{"owner", legacyInstance, false},
		{"admin", instance, true},
		{"admin", legacyInstance, true},
		{"maint", instance, false},
	} {
		expr := fmt.Sprintf("author_id != %d", len(tc.who))
		r := s.gql(w.tokens[tc.who], setExpressionQ, map[string]any{"id": tc.id, "e": expr})
		if !tc.allowed {
			require.NotEmpty(t, r.Errors, "%s on %s: %s", tc.who, tc.id, r.Raw)
			require.Equal(t, "not_found", r.Errors[0].Extensions["code"], r.Raw)
			continue
		}
		require.Empty(t, r.Errors, r.Raw)
		require.Equal(t, expr, dig(r.Data, "auditEventStreamingDestinationFilterExpressionSet", "filterExpression"), "%s on %s: %s", tc.who, tc.id, r.Raw)
	}
	// Both APIs show it.
	got := s.gqlOK(w.tokens["owner"], `query { group(fullPath: "org") { externalAuditEventDestinations { nodes { filterExpression } } } }`, nil)
	require.Equal(t, "author_id != 5", dig(got, "group", "externalAuditEventDestinations", "nodes", "0", "filterExpression"))
	got = s.gqlOK(w.tokens["admin"], `query { instanceExternalAuditEventDestinations { nodes { filterExpression } } }`, nil)
	require.Equal(t, "author_id != 5", dig(got, "instanceExternalAuditEventDestinations", "nodes", "0", "filterExpression"))

	for _, tc := range []struct {
		who     string
		group   any
		allowed bool
	}{
		{"owner", "org", true},
		{"admin", "org", true},
		{"admin", nil, true},
		{"owner", nil, false},
		{"maint", "org", false},
		{"outside", "org", false},
		{"owner", "nowhere", false},
	} {
		r := s.gql(w.tokens[tc.who], previewQ, map[string]any{"g": tc.group, "e": "true"})
		if tc.allowed {
			require.Empty(t, r.Errors, r.Raw)
			require.Nil(t, dig(r.Data, "auditEventStreamingFilterPreview", "error"), r.Raw)
			continue
		}
		require.NotEmpty(t, r.Errors, "%s on %v: %s", tc.who, tc.group, r.Raw)
		require.Equal(t, "not_found", r.Errors[0].Extensions["code"], r.Raw)
	}

	// The change is audited as an update of the destination, with the expression.
	poll.Until(t, 10*time.Second, func() error {
		status, body, _ := s.do("GET", "/api/v4/groups/101/audit_events?per_page=100", w.tokens["owner"], "", nil)
		if status != 200 || !strings.Contains(string(body), `filter expression set to \"author_id != 5\"`) {
			return fmt.Errorf("%d %s", status, body)
		}
		return nil
	})
}

// TestWebExpressionForm: the stream page's expression field tries an expression on the last
// events without saving it, shows the compiler's message for a bad one, and saves a good one.
func TestWebExpressionForm(t *testing.T) {
	s := start(t, "sqlite", noLimits, allowPrivate)
	w := newWorld(t, s)
	h := newHook(t)
	gid := s.createGroupDestination(w.tokens["owner"], "org", "http", httpConfig(h.URL), "verification-token-0123")
	taken := ev("member_created", "Group", "org", w.org.ID, w.owner.ID, "a token")
	taken["ip_address"] = "192.0.2.1"
	ids := s.ingest(w.tokens["ingest"], taken, ev("member_created", "Group", "org", w.org.ID, w.owner.ID, "other"))
	s.waitStored(len(ids) + 1) // and the destination's creation, recorded

	b := signIn(s, w.tokens["owner"])
	page := "/groups/org/-/streams/" + gid[strings.LastIndexByte(gid, '/')+1:]
	p := b.get(page)
	require.Equal(t, 200, p.status, p.body)
	require.Contains(t, p.body, `name="expression"`)
	require.Contains(t, p.body, "Try it on the last 100 events")

	p = b.submit(page, form("action", "expression_try", "expression", tokenExpr))
	require.Equal(t, 200, p.status, p.body)
	require.Contains(t, p.text(), "Of the last 3 events, ")
	require.Contains(t, p.body, "<code>"+fmt.Sprint(ids[0])+"</code>")
	require.NotContains(t, p.body, "<code>"+fmt.Sprint(ids[1])+"</code>")
	require.Contains(t, p.text(), "Nothing was saved.")
	require.Contains(t, p.text(), tokenExpr, "the tried expression stays in the field")
	require.Equal(t, "", dig(s.gqlOK(w.tokens["owner"], `query { group(fullPath: "org") { externalAuditEventStreamingDestinations { nodes { filterExpression } } } }`, nil),
		"group", "externalAuditEventStreamingDestinations", "nodes", "0", "filterExpression"), "trying saves nothing")

	p = b.submit(page, form("action", "expression_try", "expression", `author_name`))
	require.Contains(t, p.text(), "Refused: filterExpression: the expression's result is string, it must be bool")

	p = b.submit(page, form("action", "expression", "expression", `ip_address ==`))
	require.Equal(t, 422, p.status)
	require.Contains(t, p.text(), "Syntax error")
	require.Contains(t, p.text(), "ip_address ==", "the refused expression stays in the field")

	p = b.submit(page, form("action", "expression", "expression", tokenExpr))
	require.Equal(t, 303, p.status, p.body)
	require.Equal(t, tokenExpr, dig(s.gqlOK(w.tokens["owner"], `query { group(fullPath: "org") { externalAuditEventStreamingDestinations { nodes { filterExpression } } } }`, nil),
		"group", "externalAuditEventStreamingDestinations", "nodes", "0", "filterExpression"))
	require.Contains(t, b.get(page).text(), tokenExpr)
}

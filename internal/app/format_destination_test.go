package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/app"
	"github.com/auditstream/auditstream/internal/poll"
)

// TestOCSFDestinationThroughTheService: an owner creates an HTTP destination with format ocsf;
// through the real engine it receives the group's events as OCSF (Group Management for a
// membership, Entity Management for a protected branch), with GitLab's headers and signature;
// the config reads back with its format, and a test event goes out as OCSF too.
func TestOCSFDestinationThroughTheService(t *testing.T) {
	s := start(t, "sqlite", noLimits, allowPrivate)
	w := newWorld(t, s)
	owner := w.tokens["owner"]
	h := newHook(t)
	id := s.createGroupDestination(owner, "org", "http", map[string]any{"url": h.URL + "/ocsf", "format": "ocsf"}, "verification-token-0123")
	ids := s.ingest(w.tokens["ingest"], ev("member_created", "Group", "org", w.org.ID, w.owner.ID, "one"),
		ev("protected_branch_created", "Project", "org/sub/app", w.proj.ID, w.dev.ID, "two"))

	type ocsf struct {
		ClassUID int `json:"class_uid"`
		Metadata struct {
			UID       string `json:"uid"`
			EventCode string `json:"event_code"`
			Version   string `json:"version"`
		} `json:"metadata"`
		Message string `json:"message"`
	}
	got := map[string]ocsf{}
	poll.Until(t, 15*time.Second, func() error {
		h.mu.Lock()
		defer h.mu.Unlock()
		for i, b := range h.bodies {
			var o ocsf
			require.NoError(t, json.Unmarshal(b, &o), "%s", b)
			require.Equal(t, "application/json", h.headers[i].Get("Content-Type"))
			require.Equal(t, "verification-token-0123", h.headers[i].Get("X-Gitlab-Event-Streaming-Token"))
			require.Equal(t, o.Metadata.EventCode, h.headers[i].Get("X-Gitlab-Audit-Event-Type"))
			require.Equal(t, o.Metadata.UID, h.headers[i].Get("webhook-id"))
			require.Regexp(t, `^v1,`, h.headers[i].Get("webhook-signature"))
			got[o.Metadata.UID] = o
		}
		for _, id := range ids { // the destination's own creation event may come too
			if _, ok := got[strconv.FormatInt(id, 10)]; !ok {
				return fmt.Errorf("event %d not received (%d received)", id, len(got))
			}
		}
		return nil
	})
	member, branch := got[strconv.FormatInt(ids[0], 10)], got[strconv.FormatInt(ids[1], 10)]
	require.Equal(t, 3006, member.ClassUID, "member_created is Group Management")
	require.Equal(t, "member_created", member.Metadata.EventCode)
	require.Equal(t, "one", member.Message)
	require.Equal(t, 3004, branch.ClassUID, "protected_branch_created is Entity Management")
	require.Equal(t, "1.3.0", branch.Metadata.Version)

	// The config reads back with its format.
	cfg := dig(s.gqlOK(owner, `{ group(fullPath: "org") { externalAuditEventStreamingDestinations { nodes { config } } } }`, nil),
		"group", "externalAuditEventStreamingDestinations", "nodes", "0", "config")
	require.Equal(t, "ocsf", dig(cfg, "format"), "%v", cfg)

	// A test event is OCSF too (its type is in no catalog: API Activity, Other).
	p := s.mutate(owner, "auditEventStreamingDestinationTestEventSend",
		`mutation($id: ID!) { auditEventStreamingDestinationTestEventSend(input: {destinationId: $id}) { errors success statusCode error } }`, map[string]any{"id": id})
	require.Equal(t, true, p["success"], p)
	h.mu.Lock()
	defer h.mu.Unlock()
	var last ocsf
	require.NoError(t, json.Unmarshal(h.bodies[len(h.bodies)-1], &last))
	require.Equal(t, 6003, last.ClassUID)
	require.Equal(t, "audit_events_streaming_test_event", last.Metadata.EventCode)
}

// TestWebStreamFormFormat: the stream form offers the formats the category can carry (syslog:
// GitLab's JSON and CEF, not OCSF); a stream added with CEF stores format cef, and its page
// shows it selected; a refused format is the service's message.
func TestWebStreamFormFormat(t *testing.T) {
	s := start(t, "sqlite", noLimits)
	w := newWorld(t, s)
	b := signIn(s, w.tokens["owner"])
	p := b.get("/groups/org/-/streams/new?category=syslog")
	require.Equal(t, http.StatusOK, p.status, p.body)
	require.Contains(t, p.body, `<select id="format" name="format"`)
	require.Contains(t, p.body, `<option value="gitlab" selected>`)
	require.Contains(t, p.body, `<option value="cef">`)
	require.NotContains(t, p.body, `<option value="ocsf"`)

	id := streamID(t, b.submit("/groups/org/-/streams", form("category", "syslog", "name", "siem", "config_address", "siem.example:514", "format", "cef", "active", "on")))
	cfg := dig(s.groupDestination("org", id), "config")
	require.Equal(t, "cef", dig(cfg, "format"), "%v", cfg)
	require.Contains(t, b.get("/groups/org/-/streams/"+strconv.FormatInt(id, 10)).body, `<option value="cef" selected>`)

	refused := b.submit("/groups/org/-/streams", form("category", "syslog", "name", "siem2", "config_address", "siem.example:514", "format", "ocsf", "active", "on"))
	require.Contains(t, refused.text(), `config.format: "ocsf" cannot be sent to a syslog destination`)
}

// TestCEFUsesTheServiceCatalog: the encoder the senders get is made from the service's catalog,
// --event-types-dir included: a type defined there has its description and OCSF activity in the
// CEF an HTTP destination receives.
func TestCEFUsesTheServiceCatalog(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, writeFile(filepath.Join(dir, "widget_created.yml"), `---
name: widget_created
description: A widget was created by the test.
introduced_by_issue: https://example.com/1
introduced_by_mr: https://example.com/2
feature_category: compliance_management
milestone: '18.0'
saved_to_database: true
streamed: true
scope: [Group]
ocsf: {class: entity_management, activity: create}
`))
	s := start(t, "sqlite", noLimits, allowPrivate, func(c *app.Config) { c.EventTypesDir = dir })
	w := newWorld(t, s)
	h := newHook(t)
	s.createGroupDestination(w.tokens["owner"], "org", "http", map[string]any{"url": h.URL, "format": "cef"}, "")
	s.ingest(w.tokens["ingest"], ev("widget_created", "Group", "org", w.org.ID, w.owner.ID, "made one"))
	var body string
	poll.Until(t, 15*time.Second, func() error {
		h.mu.Lock()
		defer h.mu.Unlock()
		for i, b := range h.bodies { // the destination's own creation event may come first
			if strings.Contains(string(b), "|widget_created|") {
				body = string(b)
				require.Equal(t, "text/plain; charset=utf-8", h.headers[i].Get("Content-Type"))
				return nil
			}
		}
		return fmt.Errorf("no widget_created event among %d received", len(h.bodies))
	})
	require.Regexp(t, `^CEF:0\|auditstream\|auditstream\|[^|]+\|widget_created\|A widget was created by the test\.\|3\|`, body)
	require.Contains(t, body, " cat=compliance_management act=Create outcome=success ")
	require.Contains(t, body, " msg=made one ")
}

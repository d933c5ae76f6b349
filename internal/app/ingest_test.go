package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/auditstream/auditstream/internal/app"
	"github.com/auditstream/auditstream/internal/poll"
)

// TestIngestBadInput sends every kind of bad request: each gets its documented status and code,
// nothing is published, and the service keeps serving.
func TestIngestBadInput(t *testing.T) {
	s := start(t, "sqlite", func(c *app.Config) {
		c.MaxRequestBytes = 64 << 10
		c.MaxEventBytes = 4 << 10
		c.MaxEventsPerRequest = 5
		c.IngestRate, c.IngestBurst = 0, 0
	})
	ro := newWorld(t, s).tokens["owner_read_api"]
	good := `{"event_type":"user_created","entity_type":"Instance"}`
	big := `{"event_type":"user_created","entity_type":"Instance","details":{"x":"` + strings.Repeat("a", 5000) + `"}}`
	cases := []struct {
		name, token, ctype, body string
		status                   int
		code                     string
		index                    int // of the first bad event, -1 when none is named
		field                    string
	}{
		{"malformed JSON", adminToken, "application/json", `{"event_type":`, 400, "invalid_json", 0, ""},
		{"malformed in a batch", adminToken, "application/json", "[" + good + "," + good + ",{]", 400, "invalid_json", 2, ""},
		{"malformed NDJSON line", adminToken, "application/x-ndjson", good + "\n" + good + "\nnope\n", 400, "invalid_json", 2, ""},
		{"wrong type", adminToken, "application/json", `{"event_type":"user_created","entity_type":"User","entity_id":"seven"}`, 400, "invalid_json", 0, "entity_id"},
		{"duplicate key", adminToken, "application/json", `{"event_type":"nope","event_type":"user_created","entity_type":"Instance"}`, 400, "duplicate_key", 0, "event_type"},
		{"duplicate key in details", adminToken, "application/x-ndjson", good + "\n" + `{"event_type":"user_created","entity_type":"Instance","details":{"custom_message":"a","custom_message":"FORGED"}}`, 400, "duplicate_key", 1, "details"},
		{"unknown field", adminToken, "application/json", `{"event_type":"user_created","entity_type":"Instance","colour":"red"}`, 400, "invalid_json", 0, "colour"},
		{"not an object", adminToken, "application/json", `42`, 400, "invalid_json", 0, ""},
		{"empty", adminToken, "application/json", ``, 400, "empty_request", -1, ""},
		{"empty array", adminToken, "application/json", `[]`, 400, "empty_request", -1, ""},
		{"two objects as JSON", adminToken, "application/json", good + good, 400, "invalid_json", -1, ""},
		{"unknown event type", adminToken, "application/json", `[` + good + `,{"event_type":"made_up","entity_type":"Instance"}]`, 422, "validation_failed", 1, "event_type"},
		{"missing event type", adminToken, "application/json", `{"entity_type":"Instance"}`, 422, "validation_failed", 0, "event_type"},
		{"missing entity type", adminToken, "application/json", `{"event_type":"user_created"}`, 422, "validation_failed", 0, "entity_type"},
		{"group without path", adminToken, "application/json", `{"event_type":"member_created","entity_type":"Group","entity_id":3}`, 422, "validation_failed", 0, "entity_path"},
		{"bad created_at", adminToken, "application/json", `{"event_type":"user_created","entity_type":"Instance","created_at":"yesterday"}`, 422, "validation_failed", 0, "created_at"},
		{"bad ip", adminToken, "application/json", `{"event_type":"user_created","entity_type":"Instance","ip_address":"1.2.3"}`, 422, "validation_failed", 0, "ip_address"},
		{"details not an object", adminToken, "application/json", `{"event_type":"user_created","entity_type":"Instance","details":[1]}`, 422, "validation_failed", 0, "details"},
		{"too many events", adminToken, "application/x-ndjson", strings.Repeat(good+"\n", 6), 413, "too_many_events", -1, ""},
		{"event too large", adminToken, "application/json", big, 413, "event_too_large", 0, ""},
		{"request too large", adminToken, "application/json", `{"event_type":"user_created","entity_type":"Instance","details":{"x":"` + strings.Repeat("a", 70<<10) + `"}}`, 413, "request_too_large", -1, ""},
		{"wrong content type", adminToken, "text/plain", good, 415, "unsupported_media_type", -1, ""},
		{"no token", "", "application/json", good, 401, "unauthorized", -1, ""},
		{"invalid token", "ast-nope", "application/json", good, 401, "unauthorized", -1, ""},
		{"read-only token", ro, "application/json", good, 403, "insufficient_scope", -1, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body, _ := s.do(http.MethodPost, "/api/v4/audit_events", c.token, c.ctype, []byte(c.body))
			require.Equal(t, c.status, status, string(body))
			var e struct {
				Message string `json:"message"`
				Code    string `json:"code"`
				Events  []struct {
					Index  int `json:"index"`
					Errors []struct {
						Field, Code, Message string
					} `json:"errors"`
				} `json:"events"`
			}
			require.NoError(t, json.Unmarshal(body, &e), string(body))
			require.Equal(t, c.code, e.Code, string(body))
			require.NotEmpty(t, e.Message)
			if c.index >= 0 {
				require.NotEmpty(t, e.Events, string(body))
				require.Equal(t, c.index, e.Events[0].Index, string(body))
				if c.field != "" {
					require.Equal(t, c.field, e.Events[0].Errors[0].Field, string(body))
				}
			}
		})
	}
	// Nothing of any rejected request was published, and the service still takes good events.
	ids := s.ingest(adminToken, map[string]any{"event_type": "user_created", "entity_type": "Instance"})
	require.Equal(t, []int64{1}, ids, "the first accepted event has id 1: nothing before it reached the log")
	s.waitStored(1)
}

func TestIngestRateLimit(t *testing.T) {
	s := start(t, "sqlite", func(c *app.Config) {
		c.IngestRate, c.IngestBurst, c.MaxEventsPerRequest = 1, 10, 10
	})
	batch := bytes.Repeat([]byte(`{"event_type":"user_created","entity_type":"Instance"}`+"\n"), 10)
	status, body, _ := s.do(http.MethodPost, "/api/v4/audit_events", adminToken, "application/x-ndjson", batch)
	require.Equal(t, http.StatusCreated, status, string(body))
	status, body, h := s.do(http.MethodPost, "/api/v4/audit_events", adminToken, "application/x-ndjson", batch)
	require.Equal(t, http.StatusTooManyRequests, status, string(body))
	require.Contains(t, string(body), `"code":"rate_limited"`)
	require.NotEmpty(t, h.Get("Retry-After"))
	s.waitStored(10)
}

// TestIdempotencyKey: a retried publish with the same key returns the original id and stores
// one event.
func TestIdempotencyKey(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := start(t, driver)
		body := []byte(`{"event_type":"user_created","entity_type":"Instance"}`)
		post := func(key string) string {
			req, _ := http.NewRequest(http.MethodPost, s.base+"/api/v4/audit_events", bytes.NewReader(body))
			req.Header.Set("PRIVATE-TOKEN", adminToken)
			req.Header.Set("Idempotency-Key", key)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, http.StatusCreated, resp.StatusCode)
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			return b.String()
		}
		first := post("order-42")
		require.Equal(t, first, post("order-42"))
		require.NotEqual(t, first, post("order-43"))
		ids := s.ingest(adminToken,
			map[string]any{"event_type": "user_created", "entity_type": "Instance", "idempotency_key": "batch-1"},
			map[string]any{"event_type": "user_created", "entity_type": "Instance", "idempotency_key": "order-42"})
		require.Equal(t, strings.TrimSpace(first), fmt.Sprintf(`{"ids":[%d]}`, ids[1]))
		s.waitStored(3)
	})
}

// TestNamespacesLearnedFromEvents: groups, subgroups and projects named only by events become
// addressable by id and path, and their ancestors exist.
func TestNamespacesLearnedFromEvents(t *testing.T) {
	s := start(t, "sqlite")
	s.ingest(adminToken,
		ev("protected_branch_created", "Project", "acme/platform/api", 77, 1, "p"),
		ev("member_created", "Group", "acme/platform", 12, 1, "g"),
	)
	admin := s.client(adminToken)
	p, _, err := admin.Projects.GetProject(77, nil)
	require.NoError(t, err)
	require.Equal(t, "acme/platform/api", p.PathWithNamespace)
	g, _, err := admin.Groups.GetGroup("acme/platform", nil)
	require.NoError(t, err)
	require.Equal(t, int64(12), g.ID, "an ancestor learned from a path gets its id from a later event")
	top, _, err := admin.Groups.GetGroup("acme", nil)
	require.NoError(t, err)
	require.Equal(t, g.ParentID, top.ID)
	s.waitStored(2)
	evs, _, err := admin.AuditEvents.ListGroupAuditEvents(12, nil)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	// A group path under a project is refused, and nothing is published.
	status, body, _ := s.do(http.MethodPost, "/api/v4/audit_events", adminToken, "application/json",
		[]byte(`{"event_type":"member_created","entity_type":"Group","entity_path":"acme/platform/api/x","entity_id":99}`))
	require.Equal(t, http.StatusUnprocessableEntity, status, string(body))

	// Without entity_id: fine for a namespace whose id is known, refused for an unknown one
	// (ids are never invented), and the refused request publishes nothing.
	ids := s.ingest(adminToken, map[string]any{"event_type": "member_created", "entity_type": "Group", "entity_path": "acme/platform"})
	status, body, _ = s.do(http.MethodPost, "/api/v4/audit_events", adminToken, "application/json",
		[]byte(`[{"event_type":"member_created","entity_type":"Group","entity_path":"acme/platform"},{"event_type":"member_created","entity_type":"Group","entity_path":"acme/unknown"}]`))
	require.Equal(t, http.StatusUnprocessableEntity, status, string(body))
	require.Contains(t, string(body), `"index":1,"errors":[{"field":"entity_id","code":"required"`)
	status, body, _ = s.do(http.MethodPost, "/api/v4/audit_events", adminToken, "application/json",
		[]byte(`{"event_type":"member_created","entity_type":"Group","entity_path":"acme"}`))
	require.Equal(t, http.StatusUnprocessableEntity, status, "acme was only seen as an ancestor: its id is unknown: %s", body)
	// A path that now belongs to another id (a rename in GitLab): the new group takes the path,
	// the event keeps its own id.
	ids = append(ids, s.ingest(adminToken, ev("member_created", "Group", "acme/platform", 13, 1, "new group on an old path"))...)
	s.waitStored(4)
	got, _, err := admin.AuditEvents.GetInstanceAuditEvent(ids[0])
	require.NoError(t, err)
	require.Equal(t, int64(12), got.EntityID, "the known id was filled in")
	got, _, err = admin.AuditEvents.GetInstanceAuditEvent(ids[1])
	require.NoError(t, err)
	require.Equal(t, int64(13), got.EntityID, "never filed under group 12")
	require.Equal(t, ids[1]-1, ids[0], "nothing of the refused requests reached the log")

	// Group 12 was parked (renamed away in GitLab) with its project; its next event moves it.
	s.ingest(adminToken, ev("member_created", "Group", "acme/platform-old", 12, 1, "the old group, renamed"))
	g12, _, err := admin.Groups.GetGroup(12, nil)
	require.NoError(t, err)
	require.Equal(t, "acme/platform-old", g12.FullPath)
	p77, _, err := admin.Projects.GetProject(77, nil)
	require.NoError(t, err)
	require.Equal(t, "acme/platform-old/api", p77.PathWithNamespace, "the project moved with its group")
}

func TestMembersWithClientGo(t *testing.T) {
	s := start(t, "sqlite")
	w := newWorld(t, s)
	owner := s.client(w.tokens["owner"])
	m, _, err := owner.ProjectMembers.AddProjectMember(w.proj.ID, &gitlab.AddProjectMemberOptions{UserID: w.outside.ID, AccessLevel: gitlab.Ptr(gitlab.DeveloperPermissions)})
	require.NoError(t, err)
	require.Equal(t, gitlab.DeveloperPermissions, m.AccessLevel)
	m, _, err = owner.ProjectMembers.EditProjectMember(w.proj.ID, w.outside.ID, &gitlab.EditProjectMemberOptions{AccessLevel: gitlab.Ptr(gitlab.MaintainerPermissions)})
	require.NoError(t, err)
	require.Equal(t, gitlab.MaintainerPermissions, m.AccessLevel)
	got, _, err := owner.ProjectMembers.GetProjectMember(w.proj.ID, w.outside.ID)
	require.NoError(t, err)
	require.Equal(t, "outside", got.Username)
	list, _, err := owner.Groups.ListGroupMembers(w.org.ID, nil)
	require.NoError(t, err)
	require.Len(t, list, 4)
	_, err = owner.ProjectMembers.DeleteProjectMember(w.proj.ID, w.outside.ID)
	require.NoError(t, err)
	gm, _, err := owner.GroupMembers.EditGroupMember(w.org.ID, w.dev.ID, &gitlab.EditGroupMemberOptions{AccessLevel: gitlab.Ptr(gitlab.OwnerPermissions)})
	require.NoError(t, err)
	require.Equal(t, gitlab.OwnerPermissions, gm.AccessLevel)
	// The promotion takes effect at once: the developer now sees every group event.
	status, _, _ := s.do(http.MethodGet, fmt.Sprintf("/api/v4/groups/%d/audit_events/999999", w.org.ID), w.tokens["dev"], "", nil)
	require.Equal(t, http.StatusNotFound, status, "owner rights: no such event (404), not 403")
	_, err = owner.GroupMembers.RemoveGroupMember(w.org.ID, w.rep.ID, nil)
	require.NoError(t, err)
	status, _, _ = s.do(http.MethodGet, fmt.Sprintf("/api/v4/groups/%d/audit_events", w.org.ID), w.tokens["rep"], "", nil)
	require.Equal(t, http.StatusNotFound, status, "a removed member no longer sees the group")
	u, _, err := s.client(adminToken).Users.GetUser(w.dev.ID, gitlab.GetUsersOptions{})
	require.NoError(t, err)
	require.Equal(t, "dev", u.Username)
}

func TestHealthReadyMetricsAndBanner(t *testing.T) {
	s := start(t, "sqlite", func(c *app.Config) { c.AdminToken = "" })
	require.Contains(t, s.banner.String(), "First start: created an admin token")
	tok := strings.TrimSpace(strings.SplitN(strings.SplitN(s.banner.String(), "keep it somewhere safe:", 2)[1], "\n\n", 3)[1])
	require.True(t, strings.HasPrefix(tok, "ast-"), s.banner.String())
	s.admin = tok
	s.ingest(tok, map[string]any{"event_type": "user_created", "entity_type": "Instance"})
	s.waitStored(1)
	for _, p := range []string{"/-/healthy", "/-/ready"} {
		status, body, _ := s.do(http.MethodGet, p, "", "", nil)
		require.Equal(t, http.StatusOK, status, string(body))
	}
	// The row is visible before its ack reaches the log, so the lag may read 1 for a moment.
	var body []byte
	poll.Until(t, 10*time.Second, func() error {
		var status int
		status, body, _ = s.do(http.MethodGet, "/metrics", "", "", nil)
		if status != http.StatusOK || !strings.Contains(string(body), "auditstream_store_lag_events 0") {
			return fmt.Errorf("status %d, lag not 0 yet", status)
		}
		return nil
	})
	for _, m := range []string{"auditstream_ingest_events_total 1", "auditstream_ingest_bytes_total", "auditstream_ingest_request_duration_seconds_bucket",
		"auditstream_store_inserted_events_total 1", `auditstream_ingest_requests_total{code="201"} 1`} {
		require.Contains(t, string(body), m)
	}

	// A second start on the same data dir prints no new token; the old one still works.
	s.shutdown()
	cfg := s.cfg
	cfg.Listen = "127.0.0.1:0"
	s2 := startCfg(t, cfg)
	s2.admin = tok
	require.NotContains(t, s2.banner.String(), "First start")
	s2.waitStored(1)
	status, _, _ := s2.do(http.MethodGet, "/api/v4/user", tok, "", nil)
	require.Equal(t, http.StatusOK, status)
}

func TestInvalidConfigurationIsReportedWhole(t *testing.T) {
	cfg := app.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "nope"
	cfg.NATSURL = "http://x"
	cfg.LogLevel = "loud"
	_, err := app.New(t.Context(), cfg, app.NewLogger(testWriter{t}, "info"), &bytes.Buffer{})
	require.Error(t, err)
	for _, want := range []string{"listen", "nats url", "log level"} {
		require.Contains(t, err.Error(), want)
	}
	bad := t.TempDir()
	require.NoError(t, writeFile(bad+"/broken.yml", "name: broken\ndescription: x\nfeature_category: x\nsaved_to_database: false\nstreamed: false\nscope: [Group]\n"))
	cfg = app.Defaults()
	cfg.DataDir, cfg.Listen, cfg.EventTypesDir = t.TempDir(), "127.0.0.1:0", bad
	_, err = app.New(t.Context(), cfg, app.NewLogger(testWriter{t}, "info"), &bytes.Buffer{})
	require.ErrorContains(t, err, "broken.yml")
	require.ErrorContains(t, err, "cannot both be false")
}

// TestRetentionPurgesOldEvents: with --retention, stored events older than that are deleted
// (the purge runs at start and hourly) and the purge is recorded as an instance event; the log
// and newer events are untouched.
func TestRetentionPurgesOldEvents(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := start(t, driver)
		old := map[string]any{"event_type": "user_created", "entity_type": "Instance", "created_at": "2020-01-01T00:00:00Z"}
		fresh := map[string]any{"event_type": "user_created", "entity_type": "Instance"}
		ids := s.ingest(adminToken, old, fresh, old)
		s.waitStored(3)
		s.shutdown()

		cfg := s.cfg
		cfg.Listen, cfg.Retention = "127.0.0.1:0", 24*time.Hour
		s2 := startCfg(t, cfg)
		s2.waitStored(2) // the fresh event and the purge's own
		events := storedEvents(t, s2, "entity_type=Gitlab::Audit::InstanceScope")
		require.Equal(t, "audit_events_retention_purged", events[0]["event_type"])
		require.Contains(t, dig(events[0], "details", "custom_message"), "Deleted 2 stored audit events created before ")
		status, body, _ := s2.do(http.MethodGet, fmt.Sprintf("/api/v4/audit_events/%d", ids[1]), adminToken, "", nil)
		require.Equal(t, http.StatusOK, status, string(body))
		status, _, _ = s2.do(http.MethodGet, fmt.Sprintf("/api/v4/audit_events/%d", ids[0]), adminToken, "", nil)
		require.Equal(t, http.StatusNotFound, status)
	})
}

// Paths follow GitLab's rules (Gitlab::PathRegex) and never hold "." or "..": an event or an
// admin request naming one is refused and creates nothing (issue 13, item 5).
func TestPathSegmentsFollowGitLabsRules(t *testing.T) {
	s := start(t, "sqlite")
	newWorld(t, s)
	for _, c := range []struct{ typ, path string }{
		{"Group", "../beta"}, {"Group", "org/../other"}, {"Group", "org/."}, {"Group", "."}, {"Group", ".."},
		{"Project", "org/.."}, {"Project", "org/."}, {"Project", "../x"}, {"Group", "-lead"}, {"Group", "org/sub."},
		{"Group", "org/x.git"}, {"Project", "org/x.atom"}, {"Group", "org/" + strings.Repeat("a", 256)},
	} {
		body := fmt.Sprintf(`{"event_type":"member_created","entity_type":%q,"entity_id":900,"entity_path":%q}`, c.typ, c.path)
		status, b, _ := s.do(http.MethodPost, "/api/v4/audit_events", adminToken, "application/json", []byte(body))
		require.Equal(t, http.StatusUnprocessableEntity, status, "%s %s: %s", c.typ, c.path, b)
		require.Contains(t, string(b), `"field":"entity_path"`)
		status, _, _ = s.do(http.MethodGet, "/api/v4/groups/900", adminToken, "", nil)
		require.Equal(t, http.StatusNotFound, status, "%s %s created a namespace", c.typ, c.path)
	}
	for _, c := range []struct{ endpoint, body string }{
		{"/api/v4/groups", `{"name":"x","path":".."}`},
		{"/api/v4/groups", `{"name":"x","path":"."}`},
		{"/api/v4/groups", `{"name":"x","path":"sub.","parent_id":101}`},
		{"/api/v4/groups", `{"name":"x","path":"-x","parent_id":101}`},
		{"/api/v4/groups", `{"name":"x","path":"x.git"}`},
		{"/api/v4/projects", `{"name":"x","path":"..","namespace_id":101}`},
		{"/api/v4/projects", `{"name":"x","path":".","namespace_id":101}`},
		{"/api/v4/projects", `{"name":"x","path":"x.atom","namespace_id":101}`},
	} {
		status, b, _ := s.do(http.MethodPost, c.endpoint, adminToken, "application/json", []byte(c.body))
		require.Equal(t, http.StatusBadRequest, status, "%s %s: %s", c.endpoint, c.body, b)
		require.Contains(t, string(b), `"code":"invalid_parameter"`)
	}
	// What GitLab allows still works: a leading dot or underscore, a project ending in a dot.
	s.ingest(adminToken, ev("member_created", "Group", "org/.hidden_1", 901, 1, "x"))
	s.ingest(adminToken, ev("member_created", "Project", "org/_p.", 902, 1, "x"))
	status, b, _ := s.do(http.MethodPost, "/api/v4/groups", adminToken, "application/json", []byte(`{"name":"y","path":"_y.z-1"}`))
	require.Equal(t, http.StatusCreated, status, string(b))
}

package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/auditstream/auditstream/internal/app"
	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/store"
)

// world is a small GitLab: an org with a subgroup and a project, another org, and users with
// every role, each with a token.
type world struct {
	s                               *server
	org, sub, other                 *gitlab.Group
	proj                            *gitlab.Project
	owner, maint, dev, rep, outside *gitlab.User
	tokens                          map[string]string // role → token
}

// newWorld sets up the users, groups, project, memberships and tokens most tests share. It
// seeds them into the store directly, as a fixture, so that the tests count only their own
// events (how such changes are audited is TestAdminChangesAreAudited's and
// TestCLIChangesAreAudited's), then reads them back with client-go.
func newWorld(t *testing.T, s *server) *world {
	admin := s.client(adminToken)
	w := &world{s: s, tokens: map[string]string{"admin": adminToken}}
	ctx := t.Context()
	st, err := app.OpenStore(ctx, s.cfg)
	require.NoError(t, err)
	defer st.Close()
	keys := map[string]int64{}
	create := func(kind store.NamespaceKind, path, name string, id int64) {
		parent := keys[path[:max(strings.LastIndexByte(path, '/'), 0)]]
		ns, err := st.NamespaceCreate(ctx, store.NamespaceCreateParams{Kind: kind, ID: id, Name: name, FullPath: path, ParentKey: parent, CreatedAt: time.Now()})
		require.NoError(t, err)
		keys[path] = ns.Key
	}
	create(store.KindGroup, "org", "Org", 101)
	create(store.KindGroup, "org/sub", "Sub", 102)
	create(store.KindGroup, "other", "Other", 103)
	create(store.KindProject, "org/sub/app", "app", 201)
	w.org, _, err = admin.Groups.GetGroup(101, nil)
	require.NoError(t, err)
	w.sub, _, err = admin.Groups.GetGroup("org/sub", nil)
	require.NoError(t, err)
	require.Equal(t, int64(102), w.sub.ID)
	w.other, _, err = admin.Groups.GetGroup(103, nil)
	require.NoError(t, err)
	w.proj, _, err = admin.Projects.GetProject("org/sub/app", nil)
	require.NoError(t, err)
	require.Equal(t, int64(201), w.proj.ID)

	token := func(userID int64, name string, scopes ...string) string {
		raw, hash := auth.NewToken()
		_, err := st.TokenCreate(ctx, store.TokenCreateParams{UserID: userID, Name: name, Hash: hash, Scopes: scopes, CreatedAt: time.Now()})
		require.NoError(t, err)
		return raw
	}
	ids := map[string]int64{}
	mk := func(name string) *gitlab.User {
		cu, err := st.UserCreate(ctx, store.UserCreateParams{Username: name, Name: strings.ToUpper(name), Email: name + "@example.com", CreatedAt: time.Now()})
		require.NoError(t, err)
		ids[name] = cu.ID
		w.tokens[name] = token(cu.ID, "t", auth.ScopeAPI)
		u, _, err := admin.Users.GetUser(cu.ID, gitlab.GetUsersOptions{})
		require.NoError(t, err)
		return u
	}
	w.owner, w.maint, w.dev, w.rep, w.outside = mk("owner"), mk("maint"), mk("dev"), mk("rep"), mk("outside")
	member := func(path, user string, level int) {
		_, err := st.MemberUpsert(ctx, store.MemberUpsertParams{NamespaceKey: keys[path], UserID: ids[user], AccessLevel: level, CreatedAt: time.Now()})
		require.NoError(t, err)
	}
	member("org", "owner", 50)
	member("org", "maint", 40)
	member("org", "dev", 30)
	member("org", "rep", 20)
	member("other", "outside", 50) // the outsider owns the other org

	w.tokens["ingest"] = token(1, "producer", auth.ScopeIngest)
	w.tokens["owner_read_api"] = token(ids["owner"], "ro", auth.ScopeReadAPI)
	return w
}

func ev(eventType, entityType, path string, id, author int64, msg string) map[string]any {
	e := map[string]any{"event_type": eventType, "entity_type": entityType, "author_id": author, "author_name": fmt.Sprint("user", author),
		"target_id": id, "target_type": entityType, "target_details": path, "ip_address": "10.1.2.3",
		"details": map[string]any{"custom_message": msg, "from": 1, "to": map[string]any{"x": true}}}
	if path != "" {
		e["entity_path"] = path
	}
	if id != 0 {
		e["entity_id"] = id
	}
	return e
}

func TestGitLabClientReadsEvents(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := start(t, driver)
		w := newWorld(t, s)
		var events []map[string]any
		for i := range 60 {
			events = append(events, ev("member_created", "Group", "org", w.org.ID, w.owner.ID, fmt.Sprint("group ", i)))
		}
		for i := range 45 {
			events = append(events, ev("protected_branch_created", "Project", "org/sub/app", w.proj.ID, w.dev.ID, fmt.Sprint("project ", i)))
		}
		events = append(events, ev("user_created", "Instance", "", 0, 1, "instance"))
		events = append(events, ev("personal_access_token_created", "User", "owner", w.owner.ID, w.owner.ID, "user"))
		events = append(events, ev("repository_git_operation", "Project", "org/sub/app", w.proj.ID, w.dev.ID, "stream only"))
		ids := s.ingest(w.tokens["ingest"], events...)
		require.True(t, slices.IsSorted(ids), "ids are assigned in order: %v", ids)
		s.waitStored(len(events) - 1) // the git operation is stream-only

		admin := s.client(adminToken)
		for _, mode := range []string{"offset", "keyset"} {
			opts := &gitlab.ListAuditEventsOptions{ListOptions: gitlab.ListOptions{PerPage: 7}}
			if mode == "keyset" {
				opts.Pagination, opts.OrderBy, opts.Sort = "keyset", "id", "desc"
			}
			all, err := gitlab.ScanAndCollect(func(p gitlab.PaginationOptionFunc) ([]*gitlab.AuditEvent, *gitlab.Response, error) {
				return admin.AuditEvents.ListInstanceAuditEvents(opts, p)
			})
			require.NoError(t, err, mode)
			require.Len(t, all, len(events)-1, mode)
			require.True(t, slices.IsSortedFunc(all, func(a, b *gitlab.AuditEvent) int { return int(b.ID - a.ID) }), "%s: newest first", mode)
			seen := map[int64]bool{}
			for _, e := range all {
				require.False(t, seen[e.ID], "%s: id %d twice", mode, e.ID)
				seen[e.ID] = true
				require.NotEqual(t, "repository_git_operation", e.EventType)
			}

			grp, err := gitlab.ScanAndCollect(func(p gitlab.PaginationOptionFunc) ([]*gitlab.AuditEvent, *gitlab.Response, error) {
				return admin.AuditEvents.ListGroupAuditEvents("org", opts, p)
			})
			require.NoError(t, err, mode)
			require.Len(t, grp, 60, mode)
			prj, err := gitlab.ScanAndCollect(func(p gitlab.PaginationOptionFunc) ([]*gitlab.AuditEvent, *gitlab.Response, error) {
				return admin.AuditEvents.ListProjectAuditEvents(w.proj.ID, opts, p)
			})
			require.NoError(t, err, mode)
			require.Len(t, prj, 45, mode)
		}

		// By id and by URL-encoded path give the same group.
		byID, _, err := admin.AuditEvents.ListGroupAuditEvents(w.org.ID, &gitlab.ListAuditEventsOptions{ListOptions: gitlab.ListOptions{PerPage: 100}})
		require.NoError(t, err)
		byPath, resp, err := admin.AuditEvents.ListGroupAuditEvents("org", &gitlab.ListAuditEventsOptions{ListOptions: gitlab.ListOptions{PerPage: 100}})
		require.NoError(t, err)
		require.Equal(t, byID, byPath)
		require.Equal(t, int64(60), resp.TotalItems)
		prjByPath, _, err := admin.AuditEvents.ListProjectAuditEvents("org/sub/app", nil)
		require.NoError(t, err)
		require.Len(t, prjByPath, 20, "default per_page is 20")

		// Details decode into client-go's string fields, whatever type the producer sent.
		e := byID[0]
		require.Equal(t, "group 59", e.Details.CustomMessage)
		require.Equal(t, "1", e.Details.From)
		require.Equal(t, `{"x":true}`, e.Details.To)
		require.Equal(t, "org", e.Details.EntityPath)
		require.Equal(t, "10.1.2.3", e.Details.IPAddress)
		require.Equal(t, "member_created", e.EventType)
		require.Equal(t, "Group", e.EntityType)
		require.Equal(t, w.org.ID, e.EntityID)

		one, _, err := admin.AuditEvents.GetInstanceAuditEvent(e.ID)
		require.NoError(t, err)
		require.Equal(t, e.ID, one.ID)
		one, _, err = admin.AuditEvents.GetGroupAuditEvent("org", e.ID)
		require.NoError(t, err)
		require.Equal(t, e.ID, one.ID)
		_, resp, err = admin.AuditEvents.GetProjectAuditEvent(w.proj.ID, e.ID) // a group event is not the project's
		require.Error(t, err)
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
		_, _, err = admin.AuditEvents.GetProjectAuditEvent(w.proj.ID, prjByPath[0].ID)
		require.NoError(t, err)

		// Instance filters.
		inst, _, err := admin.AuditEvents.ListInstanceAuditEvents(&gitlab.ListAuditEventsOptions{}, gitlab.WithRequestRetry(nil))
		require.NoError(t, err)
		require.Len(t, inst, 20)
		status, body, _ := s.do(http.MethodGet, "/api/v4/audit_events?entity_type=User&entity_id="+fmt.Sprint(w.owner.ID), adminToken, "", nil)
		require.Equal(t, http.StatusOK, status)
		var users []map[string]any
		require.NoError(t, json.Unmarshal(body, &users))
		require.Len(t, users, 1)
		status, body, _ = s.do(http.MethodGet, "/api/v4/audit_events?entity_type=Gitlab::Audit::InstanceScope", adminToken, "", nil)
		require.Equal(t, http.StatusOK, status)
		require.NoError(t, json.Unmarshal(body, &users))
		require.Len(t, users, 1)
	})
}

func TestCreatedAfterBefore(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := start(t, driver)
		base := time.Date(2025, 10, 14, 18, 0, 0, 0, time.UTC)
		var events []map[string]any
		for i := range 10 {
			e := ev("user_created", "Instance", "", 0, 1, fmt.Sprint(i))
			e["created_at"] = base.Add(time.Duration(i) * time.Hour).In(time.FixedZone("X", 2*3600)).Format(time.RFC3339Nano)
			events = append(events, e)
		}
		s.ingest(adminToken, events...)
		s.waitStored(10)
		admin := s.client(adminToken)
		after := base.Add(3 * time.Hour)
		before := base.Add(6 * time.Hour)
		got, _, err := admin.AuditEvents.ListInstanceAuditEvents(&gitlab.ListAuditEventsOptions{CreatedAfter: &after, CreatedBefore: &before})
		require.NoError(t, err)
		require.Len(t, got, 4, "3h, 4h, 5h and 6h are inside, both ends inclusive")
		require.Equal(t, base.Add(6*time.Hour), got[0].CreatedAt.UTC())
		// Offsets other than Z mean the same instant.
		q := "/api/v4/audit_events?created_after=" + strings.ReplaceAll(after.In(time.FixedZone("", -5*3600)).Format(time.RFC3339), "+", "%2B")
		status, body, h := s.do(http.MethodGet, q, adminToken, "", nil)
		require.Equal(t, http.StatusOK, status, string(body))
		require.Equal(t, "7", h.Get("X-Total"))
		status, body, _ = s.do(http.MethodGet, "/api/v4/audit_events?created_after=yesterday", adminToken, "", nil)
		require.Equal(t, http.StatusBadRequest, status)
		require.Contains(t, string(body), "created_after")
	})
}

func TestOffsetPaginationHeaders(t *testing.T) {
	s := start(t, "sqlite")
	var events []map[string]any
	for i := range 45 {
		events = append(events, ev("user_created", "Instance", "", 0, 1, fmt.Sprint(i)))
	}
	s.ingest(adminToken, events...)
	s.waitStored(45)
	status, _, h := s.do(http.MethodGet, "/api/v4/audit_events?page=2&per_page=20", adminToken, "", nil)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "45", h.Get("X-Total"))
	require.Equal(t, "3", h.Get("X-Total-Pages"))
	require.Equal(t, "2", h.Get("X-Page"))
	require.Equal(t, "20", h.Get("X-Per-Page"))
	require.Equal(t, "3", h.Get("X-Next-Page"))
	require.Equal(t, "1", h.Get("X-Prev-Page"))
	link := h.Get("Link")
	for _, want := range []string{`page=1&per_page=20>; rel="prev"`, `page=3&per_page=20>; rel="next"`, `rel="first"`, `page=3&per_page=20>; rel="last"`} {
		require.Contains(t, link, want)
	}
	_, _, h = s.do(http.MethodGet, "/api/v4/audit_events?per_page=1000", adminToken, "", nil)
	require.Equal(t, "100", h.Get("X-Per-Page"), "per_page is capped at 100")
	_, _, h = s.do(http.MethodGet, "/api/v4/audit_events?page=3", adminToken, "", nil)
	require.Equal(t, "", h.Get("X-Next-Page"))
	status, _, h = s.do(http.MethodGet, "/api/v4/audit_events?pagination=keyset&per_page=45", adminToken, "", nil)
	require.Equal(t, http.StatusOK, status)
	require.Empty(t, h.Get("Link"), "no next link on the last keyset page")
}

// A page number whose offset does not fit is refused with 400 invalid_parameter, on every
// offset-paginated endpoint, instead of wrapping around to another page (issue 13, item 5).
func TestHugePageNumbersAreRefused(t *testing.T) {
	s := start(t, "sqlite")
	w := newWorld(t, s)
	s.ingest(adminToken, ev("user_created", "Instance", "", 0, 1, "one"))
	s.waitStored(1)
	for _, path := range []string{"/api/v4/audit_events", "/api/v4/groups/101/audit_events", "/api/v4/projects/201/audit_events"} {
		for _, page := range []string{"4611686018427387904", "9223372036854775807", "2147483647", "99999999999999999999", "0", "-1", "x"} {
			status, body, h := s.do(http.MethodGet, path+"?per_page=20&page="+page, w.tokens["admin"], "", nil)
			require.Equal(t, http.StatusBadRequest, status, "%s page=%s: %s (X-Page %q)", path, page, body, h.Get("X-Page"))
			var e struct{ Code, Message string }
			require.NoError(t, json.Unmarshal(body, &e))
			require.Equal(t, "invalid_parameter", e.Code, string(body))
			require.Contains(t, e.Message, "page")
		}
		// The largest page that fits is served (empty), with the page asked for.
		status, body, h := s.do(http.MethodGet, path+"?per_page=100&page=21474837", w.tokens["admin"], "", nil)
		require.Equal(t, http.StatusOK, status, string(body))
		require.Equal(t, "21474837", h.Get("X-Page"))
		require.JSONEq(t, "[]", string(body))
	}
}

package app_test

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/auditstream/auditstream/internal/app"
	"github.com/auditstream/auditstream/internal/poll"
)

// Tests of the web UI (internal/web) at the handler level, in the running service: a small
// browser (a cookie jar, redirects not followed, forms sent same-origin with the session's
// CSRF token) asks the pages, and the REST and GraphQL APIs, asked the same with the same
// user's token, say what the answer must be.

// --- a small browser -------------------------------------------------------------------------

const sessionCookie = "auditstream_session"

// browser is one user agent: its own cookies, and the CSRF token of its session once signed in.
type browser struct {
	s      *server
	jar    http.CookieJar
	client *http.Client
	csrf   string
	// raw sends each request as a single round trip, cookies handled as the client does: Go's
	// client gives up on a Location header it cannot parse before CheckRedirect sees it, and a
	// test of open redirects must read such a header.
	raw bool
}

// page is one answer.
type page struct {
	status int
	body   string
	header http.Header
}

func (p page) location() string { return p.header.Get("Location") }

// text is the body with HTML entities decoded, to look for messages in.
func (p page) text() string { return html.UnescapeString(p.body) }

func (p page) cookies() []*http.Cookie { return (&http.Response{Header: p.header}).Cookies() }

func newBrowser(s *server) *browser {
	jar, err := cookiejar.New(nil)
	require.NoError(s.t, err)
	return &browser{s: s, jar: jar, client: &http.Client{Jar: jar, Timeout: 2 * time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(req *http.Request) page {
	b.s.t.Helper()
	var resp *http.Response
	var err error
	if b.raw {
		for _, c := range b.jar.Cookies(req.URL) {
			req.AddCookie(c)
		}
		if resp, err = http.DefaultTransport.RoundTrip(req); err == nil {
			b.jar.SetCookies(req.URL, resp.Cookies())
		}
	} else {
		resp, err = b.client.Do(req)
	}
	require.NoError(b.s.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(b.s.t, err)
	return page{status: resp.StatusCode, body: string(body), header: resp.Header}
}

func (b *browser) get(path string) page {
	b.s.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.s.base+path, nil)
	require.NoError(b.s.t, err)
	return b.do(req)
}

// post sends a form as a same-origin page would: Origin is the server's. Header pairs are set
// after it, so that a test can forge them.
func (b *browser) post(path string, f url.Values, header ...string) page {
	b.s.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.s.base+path, strings.NewReader(f.Encode()))
	require.NoError(b.s.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.s.base)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return b.do(req)
}

// submit posts a form with the session's CSRF token, as the page's own form would.
func (b *browser) submit(path string, f url.Values) page {
	b.s.t.Helper()
	f = cloneForm(f)
	f.Set("csrf_token", b.csrf)
	return b.post(path, f)
}

var csrfRe = regexp.MustCompile(`<input type="hidden" name="csrf_token" value="([^"]+)">`)

// csrfFrom GETs a page and returns the csrf_token hidden field of its forms.
func (b *browser) csrfFrom(path string) string {
	b.s.t.Helper()
	p := b.get(path)
	require.Equal(b.s.t, http.StatusOK, p.status, "GET %s: %s", path, p.body)
	m := csrfRe.FindStringSubmatch(p.body)
	require.NotNil(b.s.t, m, "no csrf_token on %s", path)
	return m[1]
}

// signIn fills in the sign-in form.
func (b *browser) signIn(token, returnTo string) page {
	b.s.t.Helper()
	csrf := b.csrfFrom("/users/sign_in")
	return b.post("/users/sign_in", url.Values{"csrf_token": {csrf}, "token": {token}, "return_to": {returnTo}})
}

// signIn returns a browser signed in with token.
func signIn(s *server, token string) *browser {
	s.t.Helper()
	b := newBrowser(s)
	p := b.signIn(token, "/")
	require.Equal(s.t, http.StatusSeeOther, p.status, p.body)
	b.csrf = b.csrfFrom("/")
	return b
}

func (b *browser) cookie(name string) string {
	u, _ := url.Parse(b.s.base)
	for _, c := range b.jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// setCookie stores a cookie without expiry, as a browser that kept it (or someone who copied it).
func (b *browser) setCookie(name, value string) {
	u, _ := url.Parse(b.s.base)
	b.jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: "/"}})
}

// form builds form values from name, value pairs; a name may repeat.
func form(pairs ...string) url.Values {
	f := url.Values{}
	for i := 0; i+1 < len(pairs); i += 2 {
		f.Add(pairs[i], pairs[i+1])
	}
	return f
}

func cloneForm(f url.Values) url.Values {
	out := url.Values{}
	for k, v := range f {
		out[k] = slices.Clone(v)
	}
	return out
}

var (
	eventLinkRe = regexp.MustCompile(`href="[^"]*/audit_events/(\d+)"`)
	olderLinkRe = regexp.MustCompile(`<a href="([^"]+)" rel="next">`)
	streamURLRe = regexp.MustCompile(`^/(?:admin|groups/[^?#]+/-)/streams/(\d+)$`)
	headerIDRe  = regexp.MustCompile(`name="header_id" value="(\d+)"`)
	filterIDRe  = regexp.MustCompile(`name="filter_id" value="(\d+)"`)
)

// eventIDs reads an events table and the older pages it links to: the rows' event ids, newest
// first. A first page that is not 200 gives its status and no ids.
func (b *browser) eventIDs(path string) (int, []int64) {
	b.s.t.Helper()
	ids := []int64{}
	for path != "" {
		p := b.get(path)
		if p.status != http.StatusOK {
			require.Empty(b.s.t, ids, "GET %s: %d after the first page", path, p.status)
			return p.status, nil
		}
		for _, m := range eventLinkRe.FindAllStringSubmatch(p.body, -1) {
			ids = append(ids, mustInt(b.s.t, m[1]))
		}
		path = ""
		if m := olderLinkRe.FindStringSubmatch(p.body); m != nil {
			path = html.UnescapeString(m[1])
		}
	}
	return http.StatusOK, ids
}

// csvExport GETs a CSV export: the answer and, when it is 200, the records (header row first).
func (b *browser) csvExport(path string) (page, [][]string) {
	b.s.t.Helper()
	p := b.get(path)
	if p.status != http.StatusOK {
		return p, nil
	}
	recs, err := csv.NewReader(strings.NewReader(p.body)).ReadAll()
	require.NoError(b.s.t, err, p.body)
	require.NotEmpty(b.s.t, recs)
	require.Equal(b.s.t, "ID", recs[0][0])
	return p, recs
}

// csvIDs is the ID column of a CSV export.
func csvIDs(t testing.TB, recs [][]string) []int64 {
	ids := []int64{}
	for _, r := range recs[min(1, len(recs)):] {
		ids = append(ids, mustInt(t, r[0]))
	}
	return ids
}

// streamID is the destination a create form redirected to.
func streamID(t testing.TB, p page) int64 {
	t.Helper()
	require.Equal(t, http.StatusSeeOther, p.status, p.text())
	m := streamURLRe.FindStringSubmatch(p.location())
	require.NotNil(t, m, "redirect to %q", p.location())
	return mustInt(t, m[1])
}

func mustInt(t testing.TB, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	require.NoError(t, err)
	return n
}

// --- the APIs' answers -----------------------------------------------------------------------

type apiEvent struct {
	ID        int64  `json:"id"`
	EventType string `json:"event_type"`
	AuthorID  int64  `json:"author_id"`
}

func idsOf(evs []apiEvent) []int64 {
	ids := []int64{}
	for _, e := range evs {
		ids = append(ids, e.ID)
	}
	return ids
}

var nextLinkRe = regexp.MustCompile(`<([^>]+)>; rel="next"`)

// apiEvents lists a REST events endpoint as token through every keyset page, newest first; or
// returns the status when it is not 200.
func (s *server) apiEvents(token, path string, filters url.Values) (int, []apiEvent) {
	s.t.Helper()
	q := cloneForm(filters)
	q.Set("pagination", "keyset")
	q.Set("order_by", "id")
	q.Set("sort", "desc")
	q.Set("per_page", "100")
	next := path + "?" + q.Encode()
	out := []apiEvent{}
	for next != "" {
		status, body, h := s.do(http.MethodGet, next, token, "", nil)
		if status != http.StatusOK {
			require.Empty(s.t, out, "GET %s: %d after the first page", next, status)
			return status, nil
		}
		var evs []apiEvent
		require.NoError(s.t, json.Unmarshal(body, &evs), string(body))
		out = append(out, evs...)
		next = ""
		if m := nextLinkRe.FindStringSubmatch(h.Get("Link")); m != nil {
			u, err := url.Parse(m[1])
			require.NoError(s.t, err)
			next = u.RequestURI()
		}
	}
	return http.StatusOK, out
}

// apiStreams asks GraphQL, as token, for the destinations of a group (its full path) or of the
// instance ("instance"): whether it lists them, and their ids.
func (s *server) apiStreams(token, scope string) (bool, []int64) {
	s.t.Helper()
	var r gqlResult
	var conn any
	if scope == "instance" {
		r = s.gql(token, `{ auditEventsInstanceStreamingDestinations { nodes { id } } }`, nil)
		conn = dig(r.Data, "auditEventsInstanceStreamingDestinations")
	} else {
		r = s.gql(token, `query($p: ID!) { group(fullPath: $p) { externalAuditEventStreamingDestinations { nodes { id } } } }`, map[string]any{"p": scope})
		conn = dig(r.Data, "group", "externalAuditEventStreamingDestinations")
	}
	if r.Status != http.StatusOK || len(r.Errors) > 0 || conn == nil {
		return false, nil
	}
	var ids []int64
	nodes, _ := dig(conn, "nodes").([]any)
	for _, n := range nodes {
		id, _ := dig(n, "id").(string)
		ids = append(ids, secGIDNumber(s.t.(*testing.T), id))
	}
	return true, ids
}

const webDestFields = `id name category config secretToken active eventTypeFilters denyEventTypeFilters categoryFilters
	denyCategoryFilters signingSecret previousSigningSecretExpiresAt updatedAt filterExpression namespaceFilters { id namespace { fullPath } }`

// streamsState is every destination of org and of the instance as the admin reads them, as
// JSON: what a refused request must leave as it was.
func (s *server) streamsState() string {
	s.t.Helper()
	data := s.gqlOK(adminToken, `query {
		group(fullPath: "org") { externalAuditEventStreamingDestinations { nodes { `+webDestFields+` } } }
		auditEventsInstanceStreamingDestinations { nodes { `+webDestFields+` } } }`, nil)
	b, err := json.Marshal(data)
	require.NoError(s.t, err)
	return string(b)
}

// groupDestination is destination id of group as the admin reads it through GraphQL, or nil.
func (s *server) groupDestination(group string, id int64) map[string]any {
	s.t.Helper()
	data := s.gqlOK(adminToken, `query($p: ID!) { group(fullPath: $p) { externalAuditEventStreamingDestinations { nodes { `+webDestFields+` } } } }`, map[string]any{"p": group})
	nodes, _ := dig(data, "group", "externalAuditEventStreamingDestinations", "nodes").([]any)
	for _, n := range nodes {
		if gid, _ := dig(n, "id").(string); strings.HasSuffix(gid, "/"+strconv.FormatInt(id, 10)) {
			return n.(map[string]any)
		}
	}
	return nil
}

func (s *server) groupDestinationCount(group string) int {
	s.t.Helper()
	listed, ids := s.apiStreams(adminToken, group)
	require.True(s.t, listed)
	return len(ids)
}

// addUser creates a user who is a member of nothing, and returns an api token of theirs.
func addUser(t *testing.T, s *server, name string) string {
	admin := s.client(adminToken)
	u, _, err := admin.Users.CreateUser(&gitlab.CreateUserOptions{Username: gitlab.Ptr(name), Name: gitlab.Ptr(name), Email: gitlab.Ptr(name + "@example.com")})
	require.NoError(t, err)
	tok, _, err := admin.Users.CreatePersonalAccessToken(u.ID, &gitlab.CreatePersonalAccessTokenOptions{Name: gitlab.Ptr("t"), Scopes: &[]string{"api"}})
	require.NoError(t, err)
	return tok.Token
}

// streamFixtures gives org and the instance an http destination each, to the hook, with a
// custom header and a namespace filter (org/sub for org's, org for the instance's), and
// returns their gids.
func streamFixtures(t *testing.T, s *server, hookURL string) (orgGID, instGID string) {
	cfg := map[string]any{"url": hookURL, "headers": map[string]any{"X-Team": map[string]any{"value": "security", "active": true}}}
	orgGID = s.createGroupDestination(adminToken, "org", "http", cfg, "orgVerificationToken01")
	instGID = s.createInstanceDestination("http", cfg, "instVerificationToken1")
	s.mutate(adminToken, "auditEventsGroupDestinationNamespaceFilterCreate",
		`mutation($d: AuditEventsGroupExternalStreamingDestinationID!) { auditEventsGroupDestinationNamespaceFilterCreate(input: {destinationId: $d, namespacePath: "org/sub"}) { errors } }`,
		map[string]any{"d": orgGID})
	s.mutate(adminToken, "auditEventsInstanceDestinationNamespaceFilterCreate",
		`mutation($d: AuditEventsInstanceExternalStreamingDestinationID!) { auditEventsInstanceDestinationNamespaceFilterCreate(input: {destinationId: $d, namespacePath: "org"}) { errors } }`,
		map[string]any{"d": instGID})
	return orgGID, instGID
}

// streamForms are a form of each kind a stream page posts, naming the header and namespace
// filter shown on streamPage (the page's HTML): each would change the destination.
func streamForms(t *testing.T, streamPage, nsPath string) []url.Values {
	h := headerIDRe.FindStringSubmatch(streamPage)
	require.NotNil(t, h, "no header on the stream page")
	f := filterIDRe.FindStringSubmatch(streamPage)
	require.NotNil(t, f, "no namespace filter on the stream page")
	return []url.Values{
		form("action", "update", "name", "changed-by-a-form", "config_url", "http://127.0.0.1:9/changed", "active", "on", "secret_token", "changedVerifyToken01"),
		form("action", "deactivate"),
		form("action", "activate"),
		form("action", "delete"),
		form("action", "header_add", "header_name", "X-Added", "header_value", "added", "header_active", "on"),
		form("action", "header_update", "header_id", h[1], "header_name", "X-Team", "header_value", "changed", "header_active", "on"),
		form("action", "header_delete", "header_id", h[1]),
		form("action", "filters", "mode", "include", "filter", "user_created", "filter", "category:compliance_management"),
		form("action", "expression", "expression", `author_id == 1`),
		form("action", "namespace_add", "namespace_path", nsPath, "namespace_kind", "project"),
		form("action", "namespace_delete", "filter_id", f[1]),
		form("action", "rotate_secret", "grace", "0s"),
		form("action", "test"),
		form("action", "replay", "since", "2020-01-01T00:00"),
		form("action", "redeliver", "all", "1"),
	}
}

// --- tests -----------------------------------------------------------------------------------

// TestWebAuthorizationFollowsTheAPI: for every kind of user and every page, the UI answers as
// the API answers the same user's token — the REST API for events (and the same events), the
// GraphQL API for streams — and no form changes a destination the user may not change.
func TestWebAuthorizationFollowsTheAPI(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := start(t, driver, noLimits, allowPrivate)
		w := newWorld(t, s)
		w.tokens["nonmember"] = addUser(t, s, "nonmember")
		hook := newHook(t)
		orgGID, instGID := streamFixtures(t, s, hook.URL)
		orgDest, instDest := secGIDNumber(t, orgGID), secGIDNumber(t, instGID)

		var events []map[string]any
		for _, u := range []*gitlab.User{w.owner, w.maint, w.dev, w.rep} {
			events = append(events, ev("member_created", "Group", "org", w.org.ID, u.ID, "g"),
				ev("protected_branch_created", "Project", "org/sub/app", w.proj.ID, u.ID, "p"))
		}
		events = append(events, ev("member_created", "Group", "other", w.other.ID, w.outside.ID, "other"),
			ev("member_created", "Group", "org/sub", w.sub.ID, w.dev.ID, "sub"),
			ev("user_created", "Instance", "", 0, 1, "instance"))
		ids := s.ingest(w.tokens["ingest"], events...)
		// With the four self-audit events of the fixtures (two creates, two namespace filters)
		// and the two of addUser (a user, a token).
		s.waitStored(len(events) + 4 + 2)
		orgEv, projEv, otherEv, subEv, instEv := ids[0], ids[1], ids[8], ids[9], ids[10]

		const (
			home = iota
			list
			export
			one
			streams
		)
		type route struct {
			kind int
			ui   string
			// list, export, one: the REST path. streams: the group's full path or "instance"
			// (GraphQL), "" for a subgroup, which has no streams.
			api  string
			dest int64 // streams: the destination the page is about; 0 for none
		}
		g := func(id int64) string { return fmt.Sprintf("/api/v4/groups/%d/audit_events", id) }
		proj := fmt.Sprintf("/api/v4/projects/%d/audit_events", w.proj.ID)
		n := func(id int64) string { return strconv.FormatInt(id, 10) }
		routes := []route{
			{home, "/", "", 0},
			{list, "/admin/audit_events", "/api/v4/audit_events", 0},
			{export, "/admin/audit_events.csv", "/api/v4/audit_events", 0},
			{one, "/admin/audit_events/" + n(instEv), "/api/v4/audit_events/" + n(instEv), 0},
			{one, "/admin/audit_events/" + n(orgEv), "/api/v4/audit_events/" + n(orgEv), 0},
			{streams, "/admin/streams", "instance", 0},
			{streams, "/admin/streams/new?category=http", "instance", 0},
			{streams, "/admin/streams/" + n(instDest), "instance", instDest},
			{streams, "/admin/streams/" + n(instDest) + "/delete", "instance", instDest},
			{streams, "/admin/streams/" + n(orgDest), "instance", orgDest}, // another owner's id
			{list, "/groups/org/-/audit_events", g(w.org.ID), 0},
			{export, "/groups/org/-/audit_events.csv", g(w.org.ID), 0},
			{one, "/groups/org/-/audit_events/" + n(orgEv), g(w.org.ID) + "/" + n(orgEv), 0},
			{one, "/groups/org/-/audit_events/" + n(projEv), g(w.org.ID) + "/" + n(projEv), 0},   // not the group's
			{one, "/groups/org/-/audit_events/" + n(otherEv), g(w.org.ID) + "/" + n(otherEv), 0}, // another group's
			{streams, "/groups/org/-/streams", "org", 0},
			{streams, "/groups/org/-/streams/new?category=aws", "org", 0},
			{streams, "/groups/org/-/streams/" + n(orgDest), "org", orgDest},
			{streams, "/groups/org/-/streams/" + n(orgDest) + "/delete", "org", orgDest},
			{streams, "/groups/org/-/streams/" + n(instDest), "org", instDest},
			{streams, "/groups/org/-/streams/999999", "org", 999999},
			{list, "/groups/org/sub/-/audit_events", g(w.sub.ID), 0},
			{export, "/groups/org/sub/-/audit_events.csv", g(w.sub.ID), 0},
			{one, "/groups/org/sub/-/audit_events/" + n(subEv), g(w.sub.ID) + "/" + n(subEv), 0},
			{streams, "/groups/org/sub/-/streams", "", 0},
			{list, "/groups/other/-/audit_events", g(w.other.ID), 0},
			{export, "/groups/other/-/audit_events.csv", g(w.other.ID), 0},
			{streams, "/groups/other/-/streams", "other", 0},
			{streams, "/groups/other/-/streams/" + n(orgDest), "other", orgDest},
			{list, "/groups/nope/-/audit_events", "/api/v4/groups/nope/audit_events", 0},
			{streams, "/groups/nope/-/streams", "nope", 0},
			{list, "/projects/org/sub/app/-/audit_events", proj, 0},
			{export, "/projects/org/sub/app/-/audit_events.csv", proj, 0},
			{one, "/projects/org/sub/app/-/audit_events/" + n(projEv), proj + "/" + n(projEv), 0},
			{one, "/projects/org/sub/app/-/audit_events/" + n(orgEv), proj + "/" + n(orgEv), 0},
		}
		// apiAnswer is what the API answers the token: a status, and for lists the event ids.
		apiAnswer := func(token string, r route) (int, []int64) {
			switch r.kind {
			case home:
				return http.StatusOK, nil
			case list, export:
				status, evs := s.apiEvents(token, r.api, nil)
				return status, idsOf(evs)
			case one:
				status, _, _ := s.do(http.MethodGet, r.api, token, "", nil)
				return status, nil
			}
			if r.api == "" {
				return http.StatusNotFound, nil
			}
			listed, ids := s.apiStreams(token, r.api)
			if !listed || r.dest != 0 && !slices.Contains(ids, r.dest) {
				return http.StatusNotFound, nil
			}
			return http.StatusOK, nil
		}
		uiAnswer := func(b *browser, r route) (int, []int64) {
			switch r.kind {
			case list:
				return b.eventIDs(r.ui)
			case export:
				p, recs := b.csvExport(r.ui)
				if p.status != http.StatusOK {
					return p.status, nil
				}
				return p.status, csvIDs(t, recs)
			}
			return b.get(r.ui).status, nil
		}

		users := []string{"admin", "owner", "owner_read_api", "maint", "dev", "rep", "outside", "nonmember"}
		browsers := map[string]*browser{}
		for _, u := range users {
			browsers[u] = signIn(s, w.tokens[u])
		}
		seen := map[int]int{} // the API's statuses: the matrix must hold each kind of answer
		var compared int
		for _, u := range users {
			for _, r := range routes {
				want, wantIDs := apiAnswer(w.tokens[u], r)
				got, gotIDs := uiAnswer(browsers[u], r)
				seen[want]++
				if got != want {
					t.Errorf("%s: GET %s answers %d; the API answers %d", u, r.ui, got, want)
					continue
				}
				if r.kind == list || r.kind == export {
					compared += len(wantIDs)
					if !slices.Equal(gotIDs, wantIDs) {
						t.Errorf("%s: GET %s shows events %v; the API lists %v", u, r.ui, gotIDs, wantIDs)
					}
				}
			}
		}
		require.Positive(t, seen[http.StatusOK])
		require.Positive(t, seen[http.StatusForbidden])
		require.Positive(t, seen[http.StatusNotFound])
		require.Greater(t, compared, 50, "event lists compared")

		// Whoever may not see a destination gets the same page whether it exists or not.
		for _, u := range users {
			b := browsers[u]
			for _, pair := range [][2]string{
				{"/groups/org/-/streams/" + n(orgDest), "/groups/org/-/streams/999999"},
				{"/groups/org/-/streams/" + n(orgDest) + "/delete", "/groups/org/-/streams/999999/delete"},
				{"/admin/streams/" + n(instDest), "/admin/streams/999999"},
			} {
				existing, missing := b.get(pair[0]), b.get(pair[1])
				if existing.status == http.StatusOK {
					continue
				}
				if existing.status != missing.status || existing.body != missing.body {
					t.Errorf("%s: GET %s (%d) and GET %s (%d) differ", u, pair[0], existing.status, pair[1], missing.status)
				}
			}
		}

		// No form of a stream changes anything for a user who may not change it. A read_api
		// token of an owner sees the pages (above) and is refused with 403.
		admin := browsers["admin"]
		orgURL, instURL := "/groups/org/-/streams/"+n(orgDest), "/admin/streams/"+n(instDest)
		create := form("category", "http", "name", "created-by-a-form", "config_url", hook.URL, "active", "on")
		targets := []struct {
			path    string
			writers []string
			forms   []url.Values
		}{
			{"/groups/org/-/streams", []string{"admin", "owner"}, []url.Values{create}},
			{orgURL, []string{"admin", "owner"}, streamForms(t, admin.get(orgURL).body, "org/sub/app")},
			{"/admin/streams", []string{"admin"}, []url.Values{create}},
			{instURL, []string{"admin"}, streamForms(t, admin.get(instURL).body, "org/sub/app")},
		}
		before := s.streamsState()
		for _, tg := range targets {
			for _, u := range users {
				if slices.Contains(tg.writers, u) {
					continue
				}
				for _, f := range tg.forms {
					p := browsers[u].submit(tg.path, f)
					switch {
					case p.status < 400:
						t.Errorf("%s: POST %s action=%s answers %d (to %q)", u, tg.path, f.Get("action"), p.status, p.location())
					case u == "owner_read_api" && strings.HasPrefix(tg.path, "/groups/") && p.status != http.StatusForbidden:
						t.Errorf("%s: POST %s action=%s answers %d, want 403", u, tg.path, f.Get("action"), p.status)
					}
				}
			}
		}
		require.JSONEq(t, before, s.streamsState(), "refused forms changed a destination")

		// The same forms work for those who may: the refusals above were not broken forms.
		require.Equal(t, http.StatusSeeOther, browsers["owner"].submit(orgURL, form("action", "deactivate")).status)
		require.Equal(t, http.StatusSeeOther, admin.submit(instURL, form("action", "header_add", "header_name", "X-Added", "header_value", "v", "header_active", "on")).status)
		streamID(t, browsers["owner"].submit("/groups/org/-/streams", create))
		require.NotEqual(t, before, s.streamsState())
	})
}

// TestWebCSRF: every form of a signed-in user is refused with 403, and changes nothing, without
// the session's CSRF token, with another session's, or from another site; the same forms with
// the token work. Without a session, a form goes to the sign-in page and changes nothing.
func TestWebCSRF(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := start(t, driver, noLimits, allowPrivate)
		w := newWorld(t, s)
		hook := newHook(t)
		orgGID, instGID := streamFixtures(t, s, hook.URL)
		admin := signIn(s, adminToken)
		other := signIn(s, w.tokens["owner"])
		require.NotEqual(t, admin.csrf, other.csrf)

		orgURL := "/groups/org/-/streams/" + strconv.FormatInt(secGIDNumber(t, orgGID), 10)
		instURL := "/admin/streams/" + strconv.FormatInt(secGIDNumber(t, instGID), 10)
		create := form("category", "http", "name", "forged", "config_url", hook.URL, "active", "on")
		type post struct {
			path string
			form url.Values
		}
		posts := []post{{"/users/sign_out", form()}, {"/groups/org/-/streams", create}, {"/admin/streams", create}}
		for _, f := range streamForms(t, admin.get(orgURL).body, "org/sub/app") {
			posts = append(posts, post{orgURL, f})
		}
		for _, f := range streamForms(t, admin.get(instURL).body, "org/sub/app") {
			posts = append(posts, post{instURL, f})
		}
		forgeries := []struct {
			name   string
			csrf   string
			header []string
		}{
			{"without csrf_token", "", nil},
			{"with another session's csrf_token", other.csrf, nil},
			{"with a cross-site Origin", admin.csrf, []string{"Origin", "https://evil.example"}},
			{"with Sec-Fetch-Site cross-site", admin.csrf, []string{"Sec-Fetch-Site", "cross-site"}},
		}
		before := s.streamsState()
		for _, fg := range forgeries {
			for _, ps := range posts {
				f := cloneForm(ps.form)
				if fg.csrf != "" {
					f.Set("csrf_token", fg.csrf)
				}
				if p := admin.post(ps.path, f, fg.header...); p.status != http.StatusForbidden {
					t.Errorf("POST %s action=%s %s: %d, want 403", ps.path, f.Get("action"), fg.name, p.status)
				}
			}
		}
		require.JSONEq(t, before, s.streamsState(), "a forged form changed a destination")
		home := admin.get("/")
		require.Equal(t, http.StatusOK, home.status, "still signed in after the forged sign-outs")
		require.Contains(t, home.body, `action="/users/sign_out"`)

		// Without a session: to the sign-in page, nothing changed.
		anon := newBrowser(s)
		for _, ps := range posts {
			p := anon.post(ps.path, ps.form)
			if p.status != http.StatusSeeOther || p.location() != "/users/sign_in" {
				t.Errorf("POST %s without a session: %d to %q", ps.path, p.status, p.location())
			}
		}
		require.JSONEq(t, before, s.streamsState(), "a form without a session changed a destination")

		// With the session's token the same forms work.
		require.Equal(t, http.StatusSeeOther, admin.submit(orgURL, form("action", "header_add", "header_name", "X-Real", "header_value", "1", "header_active", "on")).status)
		require.NotEqual(t, before, s.streamsState())
		p := admin.submit("/users/sign_out", form())
		require.Equal(t, http.StatusSeeOther, p.status)
		require.Equal(t, "/users/sign_in", p.location())
		require.Equal(t, http.StatusSeeOther, admin.get("/").status, "signed out")
		require.Equal(t, http.StatusOK, other.get("/").status, "the other session goes on")
	})
}

// TestWebSessions: sign-in and its errors, the session cookie, sign-out, expiry and revocation.
func TestWebSessions(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := start(t, driver, func(c *app.Config) { c.TokenCacheTTL = 0 })
		w := newWorld(t, s)

		// Without a session every page sends to the sign-in page, and back after it.
		anon := newBrowser(s)
		p := anon.get("/groups/org/-/audit_events?per_page=20")
		require.Equal(t, http.StatusSeeOther, p.status)
		require.Equal(t, "/users/sign_in?return_to="+url.QueryEscape("/groups/org/-/audit_events?per_page=20"), p.location())
		p = anon.get("/")
		require.Equal(t, http.StatusSeeOther, p.status)
		require.Equal(t, "/users/sign_in", p.location())

		// Sign-in errors: no session, and the form again.
		for _, c := range []struct {
			name, token, csrf string // csrf: "" the form's own, "none", or a value
			status            int
			text              string
		}{
			{"wrong token", "ast-not-a-real-token-000000", "", http.StatusUnprocessableEntity, "Invalid token"},
			{"ingest-only token", w.tokens["ingest"], "", http.StatusUnprocessableEntity, "scope ingest"},
			{"no csrf_token", w.tokens["owner"], "none", http.StatusForbidden, "The sign-in form has expired"},
			{"wrong csrf_token", w.tokens["owner"], "x" + strings.Repeat("A", 42), http.StatusForbidden, "The sign-in form has expired"},
			{"another browser's csrf_token", w.tokens["owner"], newBrowser(s).csrfFrom("/users/sign_in"), http.StatusForbidden, "The sign-in form has expired"},
		} {
			b := newBrowser(s)
			f := form("csrf_token", b.csrfFrom("/users/sign_in"), "token", c.token, "return_to", "/")
			switch c.csrf {
			case "":
			case "none":
				f.Del("csrf_token")
			default:
				f.Set("csrf_token", c.csrf)
			}
			p := b.post("/users/sign_in", f)
			require.Equal(t, c.status, p.status, "%s: %s", c.name, p.body)
			require.Contains(t, p.text(), c.text, c.name)
			require.Contains(t, p.body, `name="token"`, "%s: the form again", c.name)
			for _, ck := range p.cookies() {
				require.NotEqual(t, sessionCookie, ck.Name, "%s: no session", c.name)
			}
			require.Equal(t, http.StatusSeeOther, b.get("/").status, "%s: not signed in", c.name)
		}

		// Another site's sign-in form is refused too, even with a valid token and csrf_token.
		b := newBrowser(s)
		p = b.post("/users/sign_in", form("csrf_token", b.csrfFrom("/users/sign_in"), "token", w.tokens["owner"], "return_to", "/"), "Origin", "https://evil.example")
		require.Equal(t, http.StatusForbidden, p.status)
		require.Equal(t, http.StatusSeeOther, b.get("/").status, "not signed in")

		// return_to: a path of this site, never another site.
		for _, c := range []struct{ returnTo, want string }{
			{"/groups/org/-/audit_events?per_page=20", "/groups/org/-/audit_events?per_page=20"},
			{"", "/"},
			{"//evil.example/x", "/"},
			{"https://evil.example/", "/"},
			{`/\evil.example`, "/"},
			{"/\t/evil.example", "/"}, // browsers drop tabs from URLs: this is //evil.example
			{"javascript:alert(1)", "/"},
		} {
			b := newBrowser(s)
			b.raw = true
			p := b.signIn(w.tokens["owner"], c.returnTo)
			require.Equal(t, http.StatusSeeOther, p.status, p.body)
			if p.location() != c.want {
				t.Errorf("sign-in with return_to %q redirects to %q, want %q", c.returnTo, p.location(), c.want)
			}
			// The sign-in page of a signed-in browser redirects to return_to at once.
			p = b.get("/users/sign_in?return_to=" + url.QueryEscape(c.returnTo))
			require.Equal(t, http.StatusSeeOther, p.status, p.body)
			if p.location() != c.want {
				t.Errorf("GET /users/sign_in signed in, with return_to %q, redirects to %q, want %q", c.returnTo, p.location(), c.want)
			}
		}
		p = newBrowser(s).get("/users/sign_in?return_to=" + url.QueryEscape("//evil.example"))
		require.Contains(t, p.body, `name="return_to" value="/"`)

		// The session cookie.
		b = newBrowser(s)
		p = b.signIn(w.tokens["owner"], "/")
		require.Equal(t, http.StatusSeeOther, p.status)
		var session *http.Cookie
		for _, c := range p.cookies() {
			if c.Name == sessionCookie {
				session = c
			}
		}
		require.NotNil(t, session, "sign-in sets %s", sessionCookie)
		require.True(t, session.HttpOnly, "HttpOnly")
		require.Equal(t, http.SameSiteLaxMode, session.SameSite)
		require.Equal(t, "/", session.Path)
		require.False(t, session.Secure, "plain HTTP without SecureCookies")
		require.Equal(t, int(app.Defaults().WebSessionTTL.Seconds()), session.MaxAge)
		require.GreaterOrEqual(t, len(session.Value), 32)
		b.csrf = b.csrfFrom("/")
		require.Equal(t, http.StatusOK, b.get("/groups/org/-/audit_events").status)

		// Sign-out ends the session on the server: the old cookie no longer works.
		p = b.submit("/users/sign_out", form())
		require.Equal(t, http.StatusSeeOther, p.status)
		require.Equal(t, "/users/sign_in", p.location())
		require.Contains(t, b.get("/users/sign_in").text(), "Signed out.")
		require.Equal(t, http.StatusSeeOther, b.get("/").status)
		replay := newBrowser(s)
		replay.setCookie(sessionCookie, session.Value)
		p = replay.get("/groups/org/-/audit_events")
		require.Equal(t, http.StatusSeeOther, p.status, "a signed-out cookie")
		require.True(t, strings.HasPrefix(p.location(), "/users/sign_in"), p.location())

		// Revoking the token ends the session.
		dev := signIn(s, w.tokens["dev"])
		require.Equal(t, http.StatusOK, dev.get("/groups/org/-/audit_events").status)
		status, body, _ := s.do(http.MethodGet, "/api/v4/personal_access_tokens", w.tokens["dev"], "", nil)
		require.Equal(t, http.StatusOK, status, string(body))
		var toks []struct{ ID int64 }
		require.NoError(t, json.Unmarshal(body, &toks))
		require.Len(t, toks, 1)
		status, _, _ = s.do(http.MethodDelete, fmt.Sprintf("/api/v4/personal_access_tokens/%d", toks[0].ID), w.tokens["dev"], "", nil)
		require.Equal(t, http.StatusNoContent, status)
		poll.Until(t, 20*time.Second, func() error {
			p := dev.get("/groups/org/-/audit_events")
			if p.status == http.StatusOK {
				return errors.New("still signed in after the token was revoked")
			}
			require.Equal(t, http.StatusSeeOther, p.status)
			require.Equal(t, "/users/sign_in?return_to="+url.QueryEscape("/groups/org/-/audit_events"), p.location())
			return nil
		})
		require.Contains(t, dev.get("/users/sign_in").text(), "The token you signed in with is no longer valid")

		// Expiry, with a short --web-session-ttl.
		const ttl = 4 * time.Second
		sx := start(t, driver, func(c *app.Config) { c.WebSessionTTL = ttl })
		b = newBrowser(sx)
		p = b.signIn(adminToken, "/")
		require.Equal(t, http.StatusSeeOther, p.status)
		for _, c := range p.cookies() {
			if c.Name == sessionCookie {
				require.Equal(t, int(ttl.Seconds()), c.MaxAge, "the cookie lasts as long as the session")
				session = c
			}
		}
		// A browser that keeps the cookie longer than it was told: the server ends the session.
		kept := newBrowser(sx)
		kept.setCookie(sessionCookie, session.Value)
		require.Equal(t, http.StatusOK, kept.get("/admin/audit_events").status, "signed in before the TTL")
		poll.Until(t, 30*time.Second, func() error {
			p := kept.get("/admin/audit_events")
			if p.status == http.StatusOK {
				return errors.New("the session has not expired yet")
			}
			require.Equal(t, http.StatusSeeOther, p.status)
			require.Equal(t, "/users/sign_in?return_to="+url.QueryEscape("/admin/audit_events"), p.location())
			return nil
		})
		p = kept.get("/users/sign_in?return_to=" + url.QueryEscape("/admin/audit_events"))
		require.Equal(t, http.StatusOK, p.status)
		require.Contains(t, p.text(), "Your session has expired")
		require.Empty(t, kept.cookie(sessionCookie), "the expired cookie is cleared")
		require.Equal(t, http.StatusSeeOther, b.get("/admin/audit_events").status, "the browser that signed in is signed out too")
	})
}

// TestWebCSVExport: a group's CSV export lists the events the REST API lists, in the same
// order, across the export's pages of 1,000, with and without filters; spreadsheet formulas are
// defused.
func TestWebCSVExport(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := start(t, driver)
		w := newWorld(t, s)
		const total = 2500
		base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
		types := []string{"member_created", "member_updated"}
		formulas := map[int][2]string{ // event index → author name, custom message
			10:  {`=HYPERLINK("http://evil.example","x")`, "=1+2"},
			20:  {"+cmd", "-2+3"},
			30:  {"@SUM(1)", "plain message"},
			999: {"plain name", "\t=tab"},
		}
		var events []map[string]any
		for i := range total {
			author := w.owner.ID
			if i%3 == 0 {
				author = w.dev.ID
			}
			e := ev(types[i%2], "Group", "org", w.org.ID, author, fmt.Sprint("event ", i))
			e["created_at"] = base.Add(time.Duration(i) * 5 * time.Minute).Format(time.RFC3339)
			if f, ok := formulas[i]; ok {
				e["author_name"] = f[0]
				e["details"] = map[string]any{"custom_message": f[1]}
			}
			events = append(events, e)
		}
		var ids []int64
		for chunk := range slices.Chunk(events, 500) {
			ids = append(ids, s.ingest(w.tokens["ingest"], chunk...)...)
		}
		s.waitStored(total)

		owner := signIn(s, w.tokens["owner"])
		for _, c := range []struct {
			name      string
			ui, api   url.Values
			eventType string // the REST API has no event_type filter: the test applies it
			atLeast   int
		}{
			{"all", nil, nil, "", total},
			{"event type", form("event_type", "member_created"), nil, "member_created", 1001},
			{"dates", form("created_after", "2026-03-03", "created_before", "2026-03-05"),
				form("created_after", "2026-03-03T00:00:00Z", "created_before", "2026-03-05T23:59:59.999Z"), "", 3 * 288},
			{"times as the REST API takes them", form("created_after", "2026-03-03 00:00:00", "created_before", "2026-03-05T12:00:00.000000"),
				form("created_after", "2026-03-03T00:00:00Z", "created_before", "2026-03-05T12:00:00Z"), "", 2*288 + 144},
			{"event type and dates", form("event_type", "member_updated", "created_after", "2026-03-02", "created_before", "2026-03-08"),
				form("created_after", "2026-03-02T00:00:00Z", "created_before", "2026-03-08T23:59:59.999Z"), "member_updated", 1001},
		} {
			path := "/groups/org/-/audit_events.csv"
			if len(c.ui) > 0 {
				path += "?" + c.ui.Encode()
			}
			p, recs := owner.csvExport(path)
			require.Equal(t, http.StatusOK, p.status, "%s: %s", c.name, p.body)
			require.True(t, strings.HasPrefix(p.header.Get("Content-Type"), "text/csv"), p.header.Get("Content-Type"))
			require.Regexp(t, `^attachment; filename="[^"/]+\.csv"$`, p.header.Get("Content-Disposition"))
			status, evs := s.apiEvents(w.tokens["owner"], fmt.Sprintf("/api/v4/groups/%d/audit_events", w.org.ID), c.api)
			require.Equal(t, http.StatusOK, status)
			if c.eventType != "" {
				evs = slices.DeleteFunc(evs, func(e apiEvent) bool { return e.EventType != c.eventType })
			}
			require.GreaterOrEqual(t, len(evs), c.atLeast, c.name)
			require.Equal(t, idsOf(evs), csvIDs(t, recs), "%s: the export's ids and order are the API's", c.name)
			for i, e := range evs {
				r := recs[i+1]
				require.Equal(t, e.EventType, r[2], "%s: event %d's type", c.name, e.ID)
				require.Equal(t, strconv.FormatInt(e.AuthorID, 10), r[3], "%s: event %d's author", c.name, e.ID)
			}
		}

		// Formulas: a leading apostrophe, in every column that holds text; plain values as they are.
		_, recs := owner.csvExport("/groups/org/-/audit_events.csv")
		rows := map[int64][]string{}
		for _, r := range recs[1:] {
			rows[mustInt(t, r[0])] = r
		}
		const authorName, action = 4, 12
		for i, f := range formulas {
			r := rows[ids[i]]
			require.NotNil(t, r, "event %d in the export", ids[i])
			for col, v := range map[int]string{authorName: f[0], action: f[1]} {
				want := v
				if strings.ContainsAny(v[:1], "=+-@\t\r") {
					want = "'" + v
				}
				require.Equal(t, want, r[col], "column %s of event %d", recs[0][col], ids[i])
			}
		}
		require.Equal(t, "event 5", rows[ids[5]][action])
	})
}

// TestWebStreamForms: the stream forms make what the GraphQL API makes of the same settings,
// refuse what it refuses with its messages (and never send a secret back), keep custom headers
// when the settings are saved, and save filters as the API shows them.
func TestWebStreamForms(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := start(t, driver, noLimits, allowPrivate)
		w := newWorld(t, s)
		hook := newHook(t)
		owner := signIn(s, w.tokens["owner"])
		const awsSecret, hecToken = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY", "5a8e6f2c-1d3b-4c7a-9e0f-2b6d8c4a1e3f"
		keyFile, pemKey := serviceAccountKey(t), secRSAKeys()[1]

		// Only the http destination is active; the others name loopback endpoints or none and
		// are paused, so that nothing leaves this machine.
		creates := []struct {
			category string
			fields   url.Values     // the form's settings
			config   map[string]any // the same settings as the API takes them
			secret   string
		}{
			{"http", form("config_url", hook.URL, "active", "on"), map[string]any{"url": hook.URL}, "uiVerificationToken01"},
			{"aws", form("config_accessKeyXid", "AKIAIOSFODNN7EXAMPLE", "config_bucketName", "audit-logs", "config_awsRegion", "eu-west-1",
				"config_endpoint", "http://127.0.0.1:9/", "config_pathStyle", "on", "batch", "on", "batch_max_events", "10", "batch_max_wait_ms", "100"),
				map[string]any{"accessKeyXid": "AKIAIOSFODNN7EXAMPLE", "bucketName": "audit-logs", "awsRegion": "eu-west-1",
					"endpoint": "http://127.0.0.1:9/", "pathStyle": true, "batch": map[string]any{"maxEvents": 10, "maxWaitMs": 100}}, awsSecret},
			{"gcs", form("config_bucketName", "audit-archive", "config_prefix", "gitlab/", "ordered", "on", "buffer_while_paused", "on"),
				map[string]any{"bucketName": "audit-archive", "prefix": "gitlab/", "delivery": map[string]any{"ordered": true, "bufferWhilePaused": true}}, keyFile},
			{"gcp", form("config_googleProjectIdName", "my-project-123", "config_clientEmail", "sa@my-project-123.iam.gserviceaccount.com", "config_logIdName", "audit_events"),
				map[string]any{"googleProjectIdName": "my-project-123", "clientEmail": "sa@my-project-123.iam.gserviceaccount.com", "logIdName": "audit_events"}, pemKey},
			{"splunk", form("config_url", "http://127.0.0.1:9", "config_index", "gitlab", "config_sourcetype", "gitlab:audit", "config_ack", "on", "concurrency", "4"),
				map[string]any{"url": "http://127.0.0.1:9", "index": "gitlab", "sourcetype": "gitlab:audit", "ack": true, "delivery": map[string]any{"concurrency": 4}}, hecToken},
			{"kafka", form("config_brokers", "127.0.0.1:9", "config_topic", "gitlab-audit", "config_tls", "on", "config_saslMechanism", "SCRAM-SHA-512", "config_username", "auditstream"),
				map[string]any{"brokers": "127.0.0.1:9", "topic": "gitlab-audit", "tls": true, "saslMechanism": "SCRAM-SHA-512", "username": "auditstream"}, "kafka-ui-password"},
			{"datadog", form("config_site", "datadoghq.eu", "config_service", "gitlab-prod", "config_ddtags", "env:prod", "batch", "on", "batch_max_events", "500"),
				map[string]any{"site": "datadoghq.eu", "service": "gitlab-prod", "ddtags": "env:prod", "batch": map[string]any{"maxEvents": 500}}, "0123456789abcdef0123456789abcdef"},
			{"syslog", form("config_address", "127.0.0.1:9", "config_tls", "on", "config_hostname", "gitlab.example.com"),
				map[string]any{"address": "127.0.0.1:9", "tls": true, "hostname": "gitlab.example.com"}, ""},
		}
		var httpDest int64
		for _, c := range creates {
			f := cloneForm(c.fields)
			f.Set("category", c.category)
			f.Set("name", "ui-"+c.category)
			f.Set("secret_token", c.secret)
			p := owner.submit("/groups/org/-/streams", f)
			id := streamID(t, p)
			require.Contains(t, owner.get(p.location()).text(), `Added stream "ui-`+c.category+`"`)
			got := s.groupDestination("org", id)
			require.NotNil(t, got, c.category)

			// The API's destination of the same settings, in another group.
			active := f.Get("active") == "on"
			twin := s.mutate(adminToken, "groupAuditEventStreamingDestinationsCreate",
				`mutation($c: String!, $cfg: JSON!, $n: String, $s: String, $a: Boolean) { groupAuditEventStreamingDestinationsCreate(input: {groupPath: "other", category: $c, config: $cfg, name: $n, secretToken: $s, active: $a}) { errors externalAuditEventDestination { id } } }`,
				map[string]any{"c": c.category, "cfg": c.config, "n": "api-" + c.category, "s": c.secret, "a": active})
			want := s.groupDestination("other", secGIDNumber(t, dig(twin, "externalAuditEventDestination", "id").(string)))
			require.NotNil(t, want)
			require.Equal(t, c.category, got["category"])
			require.Equal(t, "ui-"+c.category, got["name"])
			require.Equal(t, active, got["active"], c.category)
			gotCfg, _ := json.Marshal(got["config"])
			wantCfg, _ := json.Marshal(want["config"])
			require.JSONEq(t, string(wantCfg), string(gotCfg), "%s: the form's config is the API's", c.category)
			require.Equal(t, want["secretToken"], got["secretToken"], c.category)
			if c.category == "http" {
				require.Equal(t, c.secret, got["secretToken"])
				httpDest = id
			}
		}

		// Refused: the form again with the API's messages, the settings as typed but not the
		// secret, and nothing created.
		for _, c := range []struct {
			name, category string
			fields         url.Values
			config         map[string]any // nil: a problem of the form itself
			secret, text   string
		}{
			{"http URL not a URL", "http", form("config_url", "not a url"), map[string]any{"url": "not a url"}, "SeCrEt-NoEcHo-4711", ""},
			{"aws without a bucket", "aws", form("config_accessKeyXid", "AKIAIOSFODNN7EXAMPLE", "config_awsRegion", "eu-west-1"),
				map[string]any{"accessKeyXid": "AKIAIOSFODNN7EXAMPLE", "awsRegion": "eu-west-1"}, "NoEcHoAwSsEcReTkEy0123456789", ""},
			{"gcs key that is no key file", "gcs", form("config_bucketName", "audit-archive"), map[string]any{"bucketName": "audit-archive"}, `{"NoEcHo": "gcs-key-4711"}`, ""},
			{"batch size not a number", "http", form("config_url", hook.URL, "batch", "on", "batch_max_events", "ten"), nil, "SeCrEt-NoEcHo-0815", "Events per batch must be a whole number."},
		} {
			n := s.groupDestinationCount("org")
			f := cloneForm(c.fields)
			f.Set("category", c.category)
			f.Set("name", "refused")
			f.Set("secret_token", c.secret)
			p := owner.submit("/groups/org/-/streams", f)
			require.Equal(t, http.StatusUnprocessableEntity, p.status, "%s: %s", c.name, p.text())
			require.Contains(t, p.text(), "Add a stream", c.name)
			require.Contains(t, p.body, `name="category" value="`+c.category+`"`, c.name)
			for _, v := range c.fields {
				if v[0] != "on" {
					require.Contains(t, p.text(), `value="`+v[0]+`"`, "%s: the value typed", c.name)
				}
			}
			msgs := []string{c.text}
			if c.config != nil {
				r := s.gqlOK(adminToken, `mutation($c: String!, $cfg: JSON!, $s: String) { groupAuditEventStreamingDestinationsCreate(input: {groupPath: "other", category: $c, config: $cfg, name: "refused", secretToken: $s}) { errors } }`,
					map[string]any{"c": c.category, "cfg": c.config, "s": c.secret})
				errs, _ := dig(r, "groupAuditEventStreamingDestinationsCreate", "errors").([]any)
				require.NotEmpty(t, errs, "%s: the API refuses it too", c.name)
				msgs = nil
				for _, e := range errs {
					msgs = append(msgs, e.(string))
				}
			}
			for _, m := range msgs {
				require.Contains(t, p.text(), m, "%s: the message", c.name)
			}
			require.NotContains(t, p.text(), c.secret, "%s: the secret is not sent back", c.name)
			require.NotContains(t, p.body, html.EscapeString(c.secret), "%s: the secret is not sent back", c.name)
			require.Equal(t, n, s.groupDestinationCount("org"), "%s: nothing created", c.name)
		}

		// Saving the settings keeps the custom headers and the token.
		httpURL := "/groups/org/-/streams/" + strconv.FormatInt(httpDest, 10)
		p := owner.submit(httpURL, form("action", "header_add", "header_name", "X-Team", "header_value", "security", "header_active", "on"))
		require.Equal(t, http.StatusSeeOther, p.status, p.text())
		headers := map[string]any{"X-Team": map[string]any{"value": "security", "active": true}}
		require.Equal(t, headers, dig(s.groupDestination("org", httpDest), "config", "headers"))
		p = owner.submit(httpURL, form("action", "update", "name", "ui-http-renamed", "config_url", hook.URL+"/v2", "active", "on", "secret_token", ""))
		require.Equal(t, http.StatusSeeOther, p.status, p.text())
		got := s.groupDestination("org", httpDest)
		require.Equal(t, "ui-http-renamed", got["name"])
		require.Equal(t, hook.URL+"/v2", dig(got, "config", "url"))
		require.Equal(t, headers, dig(got, "config", "headers"), "saving the settings keeps the custom headers")
		require.Equal(t, "uiVerificationToken01", got["secretToken"], "an empty token field keeps the token")
		// A refused update changes nothing and does not send the token back.
		before := s.streamsState()
		p = owner.submit(httpURL, form("action", "update", "name", "ui-http-renamed", "config_url", "not a url", "active", "on", "secret_token", "NoEcHoNewToken0001"))
		require.Equal(t, http.StatusUnprocessableEntity, p.status)
		require.NotContains(t, p.text(), "NoEcHoNewToken0001")
		require.JSONEq(t, before, s.streamsState())

		// Filters: include a whole category and single types of others.
		p = owner.submit(httpURL, form("action", "filters", "mode", "include",
			"filter", "category:compliance_management", "filter", "user_created", "filter", "protected_branch_created"))
		require.Equal(t, http.StatusSeeOther, p.status, p.text())
		got = s.groupDestination("org", httpDest)
		require.Equal(t, []any{"compliance_management"}, got["categoryFilters"])
		require.ElementsMatch(t, []any{"user_created", "protected_branch_created"}, got["eventTypeFilters"])
		require.Empty(t, got["denyEventTypeFilters"])
		require.Empty(t, got["denyCategoryFilters"])
		page := owner.get(httpURL).body
		require.Regexp(t, `id="mode-include" name="mode" value="include" checked`, page)
		require.Regexp(t, `value="category:compliance_management" data-whole checked`, page)
		require.Regexp(t, `id="t-user_created" name="filter" value="user_created" checked`, page)
		// And back to all events.
		require.Equal(t, http.StatusSeeOther, owner.submit(httpURL, form("action", "filters", "mode", "all")).status)
		got = s.groupDestination("org", httpDest)
		for _, k := range []string{"eventTypeFilters", "categoryFilters", "denyEventTypeFilters", "denyCategoryFilters"} {
			require.Empty(t, got[k], k)
		}
	})
}

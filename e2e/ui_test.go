package e2e

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/poll"
)

// browser drives headless Chromium against the real binary and writes a screenshot of every
// page it looks at (AUDITSTREAM_SCREENSHOT_DIR, default .screenshots at the repository's root).
type browser struct {
	t     *testing.T
	ctx   context.Context
	base  string
	shots string
	n     int
}

func findChromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	chromium := findChromium()
	if chromium == "" {
		if os.Getenv("CI") == "" {
			t.Skip("chromium not found (apt-get install -y chromium); the test fails instead when CI is set")
		}
		t.Fatal("chromium not found: CI must install it (apt-get install -y chromium)")
	}
	shots := os.Getenv("AUDITSTREAM_SCREENSHOT_DIR")
	if shots == "" {
		shots = filepath.Join("..", ".screenshots")
	}
	shots = filepath.Join(shots, t.Name())
	require.NoError(t, os.MkdirAll(shots, 0o755))
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	t.Cleanup(cancel)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless, chromedp.NoSandbox, chromedp.WindowSize(1280, 900))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	tabCtx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelTab)
	require.NoError(t, chromedp.Do(tabCtx)) // starts the browser
	abs, _ := filepath.Abs(shots)
	t.Logf("screenshots: %s", abs)
	return &browser{t: t, ctx: tabCtx, base: base, shots: shots}
}

func (b *browser) run(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	require.NoError(b.t, chromedp.Do(b.ctx, actions...))
}

func get[T any](b *browser, a chromedp.Action[T]) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, a)
	require.NoError(b.t, err)
	return v
}

func (b *browser) open(path string) {
	b.t.Helper()
	b.run(chromedp.Navigate(b.base+path), chromedp.WaitReady(chromedp.CSS("body")))
}

// shot writes a full-page screenshot named after what it shows.
func (b *browser) shot(name string) {
	b.t.Helper()
	png := get(b, chromedp.FullScreenshot(100))
	b.n++
	require.NoError(b.t, os.WriteFile(filepath.Join(b.shots, fmt.Sprintf("%02d-%s.png", b.n, name)), png, 0o644))
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	return get(b, chromedp.Text(chromedp.CSS(sel)))
}

func eval[T any](b *browser, js string) T {
	b.t.Helper()
	return get(b, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
}

func (b *browser) location() string {
	b.t.Helper()
	return get(b, chromedp.Location())
}

func (b *browser) signIn(token string) {
	b.t.Helper()
	b.open("/")
	require.Contains(b.t, b.location(), "/users/sign_in", "a page without a session goes to the sign-in page")
	b.run(chromedp.SendKeys(chromedp.ID("token"), token))
	b.navigate(chromedp.Submit(chromedp.ID("token")))
}

func (b *browser) signOut() {
	b.t.Helper()
	b.navigate(chromedp.Click(chromedp.CSS(`form[action="/users/sign_out"] button`)))
}

// navigate runs actions that load another page (a click, a submit) and waits until it has.
func (b *browser) navigate(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	eval[bool](b, `window.__before = true`)
	b.run(actions...)
	poll.Until(b.t, 10*time.Second, func() error {
		loaded, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`!window.__before && document.readyState === 'complete'`))
		if err == nil && !loaded {
			err = fmt.Errorf("the next page has not loaded")
		}
		return err
	})
}

// submit clicks the button of the stream page's form for action and waits for the next page.
func (b *browser) submit(action string) {
	b.t.Helper()
	b.navigate(chromedp.Click(chromedp.CSS(`form:has(input[name="action"][value="` + action + `"]) button[type="submit"]`)))
}

// labelProblems lists the page's visible form controls that have no label.
func (b *browser) labelProblems() []string {
	return eval[[]string](b, `Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea')).filter(e =>
		!(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby')).map(e => e.outerHTML)`)
}

type apiUser struct {
	ID    int64  `json:"id"`
	Token string `json:"token"`
}

func apiCall(t *testing.T, base, method, path, token string, body any, out any) int {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, base+path, r)
	req.Header.Set("PRIVATE-TOKEN", token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		require.NoError(t, json.Unmarshal(b, out), "%s %s: %s", method, path, b)
	}
	return resp.StatusCode
}

// newUser creates a user with an api token through the REST API.
func newUser(t *testing.T, base, name string) apiUser {
	t.Helper()
	var u apiUser
	require.Equal(t, http.StatusCreated, apiCall(t, base, http.MethodPost, "/api/v4/users", adminToken,
		map[string]any{"username": name, "name": name, "email": name + "@example.com"}, &u))
	require.Equal(t, http.StatusCreated, apiCall(t, base, http.MethodPost, fmt.Sprintf("/api/v4/users/%d/personal_access_tokens", u.ID), adminToken,
		map[string]any{"name": "ui", "scopes": []string{"api"}}, &u))
	return u
}

// apiEventIDs lists the ids the REST API returns for path (all pages), newest first; with a
// type, only the events of that type.
func apiEventIDs(t *testing.T, base, path string, typ ...string) []string {
	t.Helper()
	var ids []string
	for page := 1; ; page++ {
		var evs []struct {
			ID        int64  `json:"id"`
			EventType string `json:"event_type"`
		}
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		require.Equal(t, http.StatusOK, apiCall(t, base, http.MethodGet, fmt.Sprintf("%s%sper_page=100&page=%d", path, sep, page), adminToken, nil, &evs))
		for _, e := range evs {
			if len(typ) == 0 || slices.Contains(typ, e.EventType) {
				ids = append(ids, strconv.FormatInt(e.ID, 10))
			}
		}
		if len(evs) < 100 {
			return ids
		}
	}
}

func groupEvent(typ string, i int) map[string]any {
	return map[string]any{"event_type": typ, "entity_type": "Group", "entity_id": 22, "entity_path": "acme", "author_id": 1,
		"author_name": "Administrator", "target_type": "User", "target_id": 100 + i, "target_details": fmt.Sprintf("user%d", i),
		"ip_address": "192.0.2.7", "details": map[string]any{"custom_message": fmt.Sprintf("ui test %d", i)}}
}

func ingestGroupEvents(t *testing.T, base string, types ...string) []int64 {
	t.Helper()
	var evs []map[string]any
	for i, typ := range types {
		evs = append(evs, groupEvent(typ, i))
	}
	var res struct {
		IDs []int64 `json:"ids"`
	}
	require.Equal(t, http.StatusCreated, apiCall(t, base, http.MethodPost, "/api/v4/audit_events", adminToken, evs, &res))
	return res.IDs
}

// TestUIInABrowser walks the UI in headless Chromium against the real binary: sign in, the
// events table with filters, an event's detail, the CSV export against the API, creating an
// HTTP stream with a header and a category filter, a test event that reaches the receiver,
// the status turning to failing and back, and a user without rights who sees nothing.
func TestUIInABrowser(t *testing.T) {
	p := serve(t, t.TempDir(), "AUDITSTREAM_ALLOW_PRIVATE_DESTINATIONS=true")
	b := newBrowser(t, p.base)
	rc := newReceiver(t, "127.0.0.1:0")

	types := []string{"user_created", "member_created", "project_created", "user_created", "user_blocked", "member_created"}
	ids := ingestGroupEvents(t, p.base, types...)
	poll.Until(t, 10*time.Second, func() error {
		if n := len(apiEventIDs(t, p.base, "/api/v4/groups/acme/audit_events")); n != len(types) {
			return fmt.Errorf("%d events stored, want %d", n, len(types))
		}
		return nil
	})

	b.signIn(adminToken)
	require.Contains(t, b.text("header .who"), "admin")
	b.shot("home")

	// Audit events: the table, then filtered by type.
	b.open("/groups/acme/-/audit_events")
	require.Equal(t, len(types), eval[int](b, `document.querySelectorAll('table.events tbody tr').length`))
	b.shot("group-events")
	b.run(chromedp.SetValue(chromedp.ID("event_type"), "member_created"))
	b.navigate(chromedp.Submit(chromedp.ID("event_type")))
	shown := eval[[]string](b, `Array.from(document.querySelectorAll('table.events tbody tr td:nth-child(4)')).map(td => td.textContent)`)
	require.Equal(t, []string{"member_created", "member_created"}, shown)
	b.shot("group-events-filtered")

	// The detail of the newest member_created event.
	b.navigate(chromedp.Click(chromedp.CSS(`table.events tbody tr:first-child a`)))
	var detail map[string]any
	require.NoError(t, json.Unmarshal([]byte(b.text("#event-json")), &detail))
	require.EqualValues(t, ids[5], detail["id"])
	require.Equal(t, "member_created", detail["event_type"])
	b.shot("event-detail")

	// CSV export of the filtered set, fetched by the page with its session, equals the API.
	b.open("/groups/acme/-/audit_events?event_type=user_created&created_after=2000-01-01")
	csvText := eval[string](b, `fetch(document.querySelector('a[download]').href).then(r => r.text())`)
	recs, err := csv.NewReader(strings.NewReader(csvText)).ReadAll()
	require.NoError(t, err)
	require.Equal(t, "ID", recs[0][0])
	var csvIDs []string
	for _, r := range recs[1:] {
		csvIDs = append(csvIDs, r[0])
		require.Equal(t, "user_created", r[2])
		require.Equal(t, "192.0.2.7", r[13])
	}
	require.Equal(t, apiEventIDs(t, p.base, "/api/v4/groups/acme/audit_events", "user_created"), csvIDs)

	// A stream: create an HTTP destination pointing at the receiver.
	b.open("/groups/acme/-/streams")
	b.shot("streams-empty")
	b.run(chromedp.SetValue(chromedp.ID("category"), "http"))
	b.navigate(chromedp.Submit(chromedp.ID("category")))
	require.Empty(t, b.labelProblems(), "every control of the form has a label")
	b.run(chromedp.SendKeys(chromedp.ID("name"), "siem"), chromedp.SendKeys(chromedp.ID("config_url"), rc.url()))
	b.shot("stream-new")
	b.navigate(chromedp.Click(chromedp.CSS(`form.card button[type="submit"]`)))
	require.Contains(t, b.text("main h1"), "siem")
	streamURL := b.location()

	// A custom header, then a filter: user_management as a whole category, plus member_created.
	b.run(chromedp.SendKeys(chromedp.ID("header_name"), "X-Team"), chromedp.SendKeys(chromedp.ID("header_value"), "security"))
	b.submit("header_add")
	require.Contains(t, b.text(".notice"), "Added the header")
	b.run(chromedp.Click(chromedp.ID("mode-include")), chromedp.SendKeys(chromedp.ID("type-search"), "member_cre"))
	visible := eval[map[string]bool](b, `({member: !document.getElementById('t-member_created').closest('.type-item').hidden, user: !document.getElementById('t-user_created').closest('.type-item').hidden})`)
	require.Equal(t, map[string]bool{"member": true, "user": false}, visible, "the search shows only matching types")
	b.run(chromedp.Click(chromedp.ID("t-member_created")))
	eval[bool](b, `(s => { s.value = ''; return s.dispatchEvent(new Event('input')) })(document.getElementById('type-search'))`)
	b.run(chromedp.Click(chromedp.CSS(`input[value="category:user_management"]`)))
	b.submit("filters")
	require.Contains(t, b.text(".notice"), "Saved the event filters")
	filters := eval[struct{ Types, Categories []string }](b, `({types: Array.from(document.querySelectorAll('.type-item input:checked:not(:disabled)')).map(e => e.value),
		categories: Array.from(document.querySelectorAll('input[data-whole]:checked')).map(e => e.value)})`)
	require.Equal(t, []string{"member_created"}, filters.Types)
	require.Equal(t, []string{"category:user_management"}, filters.Categories)
	b.shot("stream-configured")
	require.Equal(t, "gzip", eval[string](b, `fetch(location.href).then(r => r.headers.get('content-encoding'))`),
		"a stream's page (the whole catalog) is sent compressed")

	// A test event reaches the receiver, with the header.
	b.submit("test")
	require.Contains(t, b.text("#test-result"), "was delivered")
	b.shot("stream-test-event")
	tests := rc.testEvents()
	require.Len(t, tests, 1)
	require.Equal(t, "security", tests[0].Get("X-Team"))

	// Events flow through the filter: user_management types and member_created, not project_created.
	flowing := ingestGroupEvents(t, p.base, "user_created", "project_created", "member_created")
	poll.Until(t, 10*time.Second, func() error {
		if got := rc.countOf([]int64{flowing[0], flowing[2]}); got != 2 {
			return fmt.Errorf("%d of 2 filtered events delivered", got)
		}
		return nil
	})
	require.Zero(t, rc.times(flowing[1]), "project_created is filtered out")

	// The receiver stops: the status turns to failing; it comes back: healthy again.
	rc.down()
	ingestGroupEvents(t, p.base, "user_created")
	b.waitStatus(streamURL, "failing", "circuit_open")
	b.shot("stream-failing")
	b.open("/groups/acme/-/streams")
	require.Contains(t, []string{"Failing", "Circuit open"}, b.text("table.streams .badge"))
	b.shot("streams-failing")
	rc.up()
	b.waitStatus(streamURL, "healthy")
	b.open("/groups/acme/-/streams")
	require.Equal(t, "Healthy", b.text("table.streams .badge"))
	b.shot("streams-healthy")

	// Narrow screens: nothing wider than the viewport but the scrollable tables.
	b.run(chromedp.EmulateViewport(375, 800))
	for _, path := range []string{strings.TrimPrefix(streamURL, p.base), "/groups/acme/-/audit_events", "/groups/acme/-/streams"} {
		b.open(path)
		wide := eval[[]string](b, `Array.from(document.querySelectorAll('body *')).filter(e => !e.closest('.scroll') &&
			e.getBoundingClientRect().right > window.innerWidth + 1).slice(0, 10).map(e => e.tagName + '#' + e.id + '.' + e.className)`)
		require.Empty(t, wide, "%s: elements wider than a 375 px screen", path)
		require.Empty(t, b.labelProblems(), "%s: every control has a label", path)
		b.shot("narrow-" + strings.NewReplacer("/", "_", "-", "").Replace(strings.Trim(path, "/")))
	}
	b.run(chromedp.EmulateViewport(1280, 900))

	// Keyboard: the first Tab reaches the skip link, which moves focus to the content.
	b.open("/groups/acme/-/audit_events")
	b.run(chromedp.KeyEvent("\t"))
	require.Equal(t, "Skip to content", eval[string](b, `document.activeElement.textContent`))

	// Someone without rights on acme sees neither its events nor its streams.
	alice := newUser(t, p.base, "alice")
	b.signOut()
	b.signIn(alice.Token)
	require.Contains(t, b.text("main"), "not a member of any group")
	for _, path := range []string{"/groups/acme/-/audit_events", "/groups/acme/-/streams", strings.TrimPrefix(streamURL, p.base), "/admin/audit_events"} {
		b.open(path)
		body := b.text("main")
		require.NotContains(t, body, "siem", path)
		require.NotContains(t, body, "ui test", path)
		require.Regexp(t, "not found|does not exist|Only administrators", body, path)
	}
	b.open("/groups/acme/-/streams")
	b.shot("no-rights")
}

// waitStatus reloads the stream page until its status is one of want.
func (b *browser) waitStatus(url string, want ...string) {
	b.t.Helper()
	poll.Until(b.t, 30*time.Second, func() error {
		if err := chromedp.Do(b.ctx, chromedp.Navigate(url)); err != nil {
			return err
		}
		attr, err := chromedp.Run(b.ctx, chromedp.AttributeValue(chromedp.CSS("[data-status]"), "data-status"))
		if err != nil {
			return err
		}
		status := attr.Value
		if !slices.Contains(want, status) {
			return fmt.Errorf("status %q, want one of %v", status, want)
		}
		return nil
	})
}

// TestUIAtDesktopWidths checks every page a desktop user sees at 1,280 and 1,920 px: the events
// table fits its column (the IP address and action columns on screen, long target names wrapped
// or cut with a title, never hidden), authors known as users show their name, the streams list
// says where each stream goes (the URL's host, never its query), and every web_url the REST API
// returns leads to a page the UI serves.
func TestUIAtDesktopWidths(t *testing.T) {
	p := serve(t, t.TempDir(), "AUDITSTREAM_ALLOW_PRIVATE_DESTINATIONS=true")
	b := newBrowser(t, p.base)
	rc := newReceiver(t, "127.0.0.1:0")

	var alice apiUser
	require.Equal(t, http.StatusCreated, apiCall(t, p.base, http.MethodPost, "/api/v4/users", adminToken,
		map[string]any{"username": "alice", "name": "Alice Example", "email": "alice@example.com"}, &alice))
	var group struct {
		ID     int64  `json:"id"`
		WebURL string `json:"web_url"`
	}
	require.Equal(t, http.StatusCreated, apiCall(t, p.base, http.MethodPost, "/api/v4/groups", adminToken,
		map[string]any{"path": "acme"}, &group))
	var project struct {
		WebURL string `json:"web_url"`
	}
	require.Equal(t, http.StatusCreated, apiCall(t, p.base, http.MethodPost, "/api/v4/projects", adminToken,
		map[string]any{"path": "platform-engineering-and-operations-tooling", "namespace_id": group.ID}, &project))
	var user struct {
		WebURL string `json:"web_url"`
	}
	require.Equal(t, http.StatusOK, apiCall(t, p.base, http.MethodGet, fmt.Sprintf("/api/v4/users/%d", alice.ID), adminToken, nil, &user))

	// Events as GitLab writes them: long class names, paths and messages, and no author_name.
	long := strings.Repeat("very-long-target-name-", 6) + "end"
	var evs []map[string]any
	for i := range 5 {
		evs = append(evs, map[string]any{"event_type": "created_group_audit_event_streaming_destination", "entity_type": "Project",
			"entity_path": "acme/platform-engineering-and-operations-tooling", "author_id": alice.ID,
			"target_type": "AuditEvents::Group::ExternalStreamingDestination", "target_id": 100 + i, "target_details": long,
			"ip_address": "2001:db8:85a3::8a2e:370:7334", "details": map[string]any{"custom_message": "Created a streaming destination with a rather long descriptive message " + strconv.Itoa(i)}})
	}
	var res struct {
		IDs []int64 `json:"ids"`
	}
	require.Equal(t, http.StatusCreated, apiCall(t, p.base, http.MethodPost, "/api/v4/audit_events", adminToken, evs, &res))
	poll.Until(t, 10*time.Second, func() error {
		if n := len(apiEventIDs(t, p.base, "/api/v4/audit_events", "created_group_audit_event_streaming_destination")); n != len(evs) {
			return fmt.Errorf("%d events stored", n)
		}
		return nil
	})
	// A stream whose URL has a secret in its query.
	gql := map[string]any{"query": `mutation($cfg: JSON!) { instanceAuditEventStreamingDestinationsCreate(input: {name: "siem", category: "http", config: $cfg, secretToken: "verification-token-0123"}) { errors } }`,
		"variables": map[string]any{"cfg": map[string]any{"url": rc.url() + "ingest?api_key=query-secret-42"}}}
	var gres map[string]any
	require.Equal(t, http.StatusOK, apiCall(t, p.base, http.MethodPost, "/api/graphql", adminToken, gql, &gres))
	require.Nil(t, gres["errors"], "%v", gres)

	b.signIn(adminToken)
	for _, width := range []int{1280, 1920} {
		b.run(chromedp.EmulateViewport(int64(width), 900))
		b.open("/admin/audit_events")
		b.shot(fmt.Sprintf("events-%d", width)) // before the checks, to see what failed
		layout := eval[struct {
			PageOverflow  bool
			TableOverflow bool
			Offscreen     []string
			Cut           []string
		}](b, `(() => {
			const table = document.querySelector('table.events'), region = table.closest('.scroll');
			const offscreen = Array.from(table.querySelectorAll('th, td')).filter(c => c.getBoundingClientRect().right > window.innerWidth + 1).map(c => c.textContent.trim().slice(0, 40));
			const cut = Array.from(table.querySelectorAll('td')).filter(c => c.scrollWidth > c.clientWidth + 1 && !c.querySelector('[title]') && !c.title).map(c => c.textContent.trim().slice(0, 40));
			return {pageOverflow: document.documentElement.scrollWidth > window.innerWidth + 1,
				tableOverflow: table.getBoundingClientRect().width > region.clientWidth + 1,
				offscreen: offscreen.slice(0, 5), cut: cut.slice(0, 5)};
		})()`)
		require.False(t, layout.PageOverflow, "%d px: the page scrolls sideways", width)
		require.False(t, layout.TableOverflow, "%d px: the events table is wider than its column", width)
		require.Empty(t, layout.Offscreen, "%d px: cells off the screen", width)
		require.Empty(t, layout.Cut, "%d px: cells cut without a title", width)
		authors := eval[[]string](b, `Array.from(document.querySelectorAll('table.events tbody tr')).filter(tr =>
			tr.querySelector('td:nth-child(4)').textContent.trim() === 'created_group_audit_event_streaming_destination').map(tr => tr.querySelector('td:nth-child(2)').textContent.trim())`)
		require.Len(t, authors, len(evs))
		for _, a := range authors {
			require.Contains(t, a, "Alice Example", "%d px: a known author is shown by name", width)
		}

		b.open("/admin/streams")
		b.shot(fmt.Sprintf("streams-%d", width))
		where := b.text("table.streams tbody tr:first-child td:nth-child(2)")
		require.Contains(t, where, strings.TrimSuffix(strings.TrimPrefix(rc.url(), "http://"), "/"), "the list says where the stream goes")
		require.NotContains(t, b.text("main"), "query-secret-42")
		require.False(t, eval[bool](b, `document.documentElement.scrollWidth > window.innerWidth + 1`), "%d px: the streams page scrolls sideways", width)
	}

	// Every web_url leads to a page of the UI (followed with the browser's session).
	for _, u := range []string{group.WebURL, project.WebURL, user.WebURL} {
		require.True(t, strings.HasPrefix(u, p.base+"/"), u)
		b.open(strings.TrimPrefix(u, p.base))
		require.NotContains(t, b.text("main"), "Page not found", u)
		require.Equal(t, http.StatusOK, eval[int](b, `fetch(location.href).then(r => r.status)`), u)
	}
	b.shot("web-url-user")
}

package explorer

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

const (
	testPrefix   = "/-/graphql-explorer"
	testEndpoint = "/api/graphql"
)

func get(t *testing.T, h http.Handler, method, target string, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, vs := range header {
		req.Header[k] = vs
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// pageURLs returns the values of the src and href attributes of the page.
func pageURLs(html string) []string {
	var urls []string
	for _, m := range regexp.MustCompile(`\s(?:src|href)="([^"]*)"`).FindAllStringSubmatch(html, -1) {
		urls = append(urls, m[1])
	}
	return urls
}

func TestPage(t *testing.T) {
	h := Handler(testPrefix, testEndpoint)
	for _, target := range []string{testPrefix, testPrefix + "/"} {
		rec := get(t, h, http.MethodGet, target, nil)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: status %d, want 200", target, rec.Code)
		}
		hd := rec.Header()
		if ct := hd.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("Content-Type = %q, want text/html", ct)
		}
		csp := hd.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self';", "connect-src 'self';", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-eval") {
			t.Errorf("Content-Security-Policy %q allows eval", csp)
		}
		for k, want := range map[string]string{
			"X-Frame-Options":        "DENY",
			"X-Content-Type-Options": "nosniff",
			"Referrer-Policy":        "no-referrer",
		} {
			if got := hd.Get(k); got != want {
				t.Errorf("%s = %q, want %q", k, got, want)
			}
		}

		body := rec.Body.String()
		for _, bad := range []string{"http://", "https://", "//cdn"} {
			if strings.Contains(body, bad) {
				t.Errorf("page contains %q: it must only reference local URLs", bad)
			}
		}
		for _, want := range []string{
			"<title>auditstream GraphQL explorer</title>",
			`data-endpoint="/api/graphql"`,
			"Personal access token",
			`type="password"`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("page lacks %q", want)
			}
		}
		if strings.Contains(body, "<script>") || strings.Contains(body, "<style") {
			t.Error("page has an inline script or style, which the CSP would block")
		}
		urls := pageURLs(body)
		if len(urls) < 6 {
			t.Fatalf("page references %d URLs, want at least 6: %q", len(urls), urls)
		}
		for _, u := range urls {
			if u != "data:," && !strings.HasPrefix(u, testPrefix+"/assets/") {
				t.Errorf("page references %q, want a URL under %s/assets/", u, testPrefix)
			}
		}
	}
}

func TestPageAssetsServed(t *testing.T) {
	h := Handler(testPrefix, testEndpoint)
	body := get(t, h, http.MethodGet, testPrefix, nil).Body.String()
	var scripts, styles int
	for _, u := range pageURLs(body) {
		if u == "data:," {
			continue
		}
		rec := get(t, h, http.MethodGet, u, nil)
		if rec.Code != http.StatusOK {
			t.Errorf("GET %s: status %d, want 200", u, rec.Code)
			continue
		}
		var wantCT string
		switch path.Ext(u) {
		case ".js":
			wantCT = "text/javascript; charset=utf-8"
			scripts++
		case ".css":
			wantCT = "text/css; charset=utf-8"
			styles++
		default:
			t.Errorf("unexpected asset %s", u)
		}
		hd := rec.Header()
		if got := hd.Get("Content-Type"); got != wantCT {
			t.Errorf("GET %s: Content-Type %q, want %q", u, got, wantCT)
		}
		if got := hd.Get("Cache-Control"); got != "public, max-age=31536000, immutable" {
			t.Errorf("GET %s: Cache-Control %q", u, got)
		}
		if got := hd.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q", u, got)
		}
		if rec.Body.Len() == 0 {
			t.Errorf("GET %s: empty body", u)
		}
		// The URL must change when the content does: it has a version or a hash.
		if !regexp.MustCompile(`/assets/[a-z-]+-([0-9]+\.[0-9]+\.[0-9]+|[0-9a-f]{16})/[^/]+$`).MatchString(u) {
			t.Errorf("asset URL %s has no version or content hash", u)
		}

		// Compressed, the same bytes.
		gz := get(t, h, http.MethodGet, u, http.Header{"Accept-Encoding": {"gzip, deflate, br"}})
		if gz.Code != http.StatusOK || gz.Header().Get("Content-Encoding") != "gzip" {
			t.Errorf("GET %s with gzip: status %d, Content-Encoding %q", u, gz.Code, gz.Header().Get("Content-Encoding"))
			continue
		}
		zr, err := gzip.NewReader(gz.Body)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(plain, rec.Body.Bytes()) {
			t.Errorf("GET %s: gzip body differs from the plain one", u)
		}

		// Revalidation by ETag.
		etag := hd.Get("ETag")
		if nm := get(t, h, http.MethodGet, u, http.Header{"If-None-Match": {etag}}); nm.Code != http.StatusNotModified {
			t.Errorf("GET %s If-None-Match %s: status %d, want 304", u, etag, nm.Code)
		}
	}
	if scripts != 4 || styles != 2 {
		t.Errorf("page loads %d scripts and %d style sheets, want 4 and 2", scripts, styles)
	}
}

func TestHead(t *testing.T) {
	h := Handler(testPrefix, testEndpoint)
	get200 := get(t, h, http.MethodGet, testPrefix, nil)
	rec := get(t, h, http.MethodHead, testPrefix, nil)
	if rec.Code != http.StatusOK || rec.Body.Len() != 0 {
		t.Fatalf("HEAD page: status %d, %d bytes of body", rec.Code, rec.Body.Len())
	}
	if rec.Header().Get("Content-Security-Policy") == "" {
		t.Error("HEAD page: no Content-Security-Policy")
	}
	if got, want := rec.Header().Get("Content-Length"), get200.Header().Get("Content-Length"); got == "" || got != want {
		t.Errorf("HEAD Content-Length %q, GET %q", got, want)
	}
	asset := pageURLs(get200.Body.String())[1]
	if rec := get(t, h, http.MethodHead, asset, nil); rec.Code != http.StatusOK || rec.Body.Len() != 0 {
		t.Errorf("HEAD %s: status %d, %d bytes of body", asset, rec.Code, rec.Body.Len())
	}
}

func TestNotFound(t *testing.T) {
	h := Handler(testPrefix, testEndpoint)
	for _, target := range []string{
		testPrefix + "/assets/",
		testPrefix + "/assets/nope.js",
		testPrefix + "/assets/graphiql-4.1.2/nope.js",
		testPrefix + "/assets/graphiql-4.1.2/LICENSE",
		testPrefix + "/assets/README.md",
		testPrefix + "/assets/explorer/explorer.js", // only under its hashed directory
		testPrefix + "/assets/graphiql-4.1.2/../react-18.2.0/react.production.min.js",
		testPrefix + "/other",
		testPrefix + "x",
		"/",
	} {
		if rec := get(t, h, http.MethodGet, target, nil); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", target, rec.Code)
		}
	}
}

func TestMethodNotAllowed(t *testing.T) {
	h := Handler(testPrefix, testEndpoint)
	asset := pageURLs(get(t, h, http.MethodGet, testPrefix, nil).Body.String())[1]
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions} {
		for _, target := range []string{testPrefix, asset} {
			rec := get(t, h, method, target, nil)
			if rec.Code != http.StatusMethodNotAllowed {
				t.Errorf("%s %s: status %d, want 405", method, target, rec.Code)
			}
			if got := rec.Header().Get("Allow"); got != "GET, HEAD" {
				t.Errorf("%s %s: Allow %q", method, target, got)
			}
		}
	}
}

func TestRootPrefix(t *testing.T) {
	h := Handler("", testEndpoint)
	rec := get(t, h, http.MethodGet, "/", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /: status %d", rec.Code)
	}
	for _, u := range pageURLs(rec.Body.String()) {
		if u == "data:," {
			continue
		}
		if !strings.HasPrefix(u, "/assets/") {
			t.Errorf("asset URL %s, want it under /assets/", u)
		}
		if rec := get(t, h, http.MethodGet, u, nil); rec.Code != http.StatusOK {
			t.Errorf("GET %s: status %d", u, rec.Code)
		}
	}
}

func TestAbsoluteEndpointCSP(t *testing.T) {
	h := Handler(testPrefix, "https://audit.example.com:8443/api/graphql")
	csp := get(t, h, http.MethodGet, testPrefix, nil).Header().Get("Content-Security-Policy")
	if !strings.Contains(csp, "connect-src 'self' https://audit.example.com:8443;") {
		t.Errorf("Content-Security-Policy %q does not allow the endpoint's origin", csp)
	}
}

// TestVendoredHashes pins the vendored files to the hashes that gqlgen's playground
// (github.com/99designs/gqlgen@v0.17.98/graphql/playground/playground.go) uses as
// subresource integrity for the same files on the CDN. See assets/README.md.
func TestVendoredHashes(t *testing.T) {
	for file, want := range map[string]string{
		"graphiql-4.1.2/graphiql.min.js":               "sha256-hnImuor1znlJkD/FOTL3jayfS/xsyNoP04abi8bFJWs=",
		"graphiql-4.1.2/graphiql.min.css":              "sha256-MEh+B2NdMSpj9kexQNN3QKc8UzMrCXW/Sx/phcpuyIU=",
		"react-18.2.0/react.production.min.js":         "sha256-S0lp+k7zWUMk2ixteM6HZvu8L9Eh//OVrt+ZfbCpmgY=",
		"react-dom-18.2.0/react-dom.production.min.js": "sha256-IXWO0ITNDjfnNXIu5POVfqlgYoop36bDzhodR6LW5Pc=",
	} {
		data, err := assetFS.ReadFile("assets/" + file)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		if got := "sha256-" + base64.StdEncoding.EncodeToString(sum[:]); got != want {
			t.Errorf("%s: %s, want %s", file, got, want)
		}
		if _, err := assetFS.ReadFile("assets/" + path.Dir(file) + "/LICENSE"); err != nil {
			t.Errorf("%s: no LICENSE next to it: %v", file, err)
		}
	}
}

// --- The page in a real browser ---

// findChromium returns the path of a Chromium or Chrome binary, or "".
func findChromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// fakeGraphQL is a stand-in for /api/graphql: it answers GraphiQL's introspection query
// with a small schema, and any other query with fixed data. It records each request.
type fakeGraphQL struct {
	mu       sync.Mutex
	requests []fakeRequest
}

type fakeRequest struct {
	token         string
	introspection bool
	query         string
}

func (f *fakeGraphQL) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Query string `json:"query"`
	}
	if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&body) != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	req := fakeRequest{
		token:         r.Header.Get("PRIVATE-TOKEN"),
		introspection: strings.Contains(body.Query, "__schema"),
		query:         body.Query,
	}
	f.mu.Lock()
	f.requests = append(f.requests, req)
	f.mu.Unlock()

	w.Header().Set("Content-Type", "application/json")
	if req.introspection {
		_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{"__schema": fakeSchema()}})
		return
	}
	var user any
	if req.token != "" {
		user = map[string]any{"username": "explorer-user"}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{
		"currentUser": user,
		"auditEventDefinitions": map[string]any{"nodes": []any{
			map[string]any{"name": "user_created", "featureCategory": "user_management"},
		}},
	}})
}

func (f *fakeGraphQL) snapshot() []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeRequest(nil), f.requests...)
}

// fakeSchema is the introspection result of:
//
//	type Query { currentUser: User  auditEventDefinitions(first: Int, after: String): AuditEventDefinitionConnection! }
//	type User { username: String! }
//	type AuditEventDefinitionConnection { nodes: [AuditEventDefinition!]! }
//	type AuditEventDefinition { name: String!  featureCategory: String! }
func fakeSchema() map[string]any {
	named := func(kind, name string) map[string]any {
		return map[string]any{"kind": kind, "name": name, "ofType": nil}
	}
	wrap := func(kind string, t map[string]any) map[string]any {
		return map[string]any{"kind": kind, "name": nil, "ofType": t}
	}
	arg := func(name string, t map[string]any) map[string]any {
		return map[string]any{"name": name, "description": nil, "type": t, "defaultValue": nil,
			"isDeprecated": false, "deprecationReason": nil}
	}
	field := func(name string, t map[string]any, args ...map[string]any) map[string]any {
		if args == nil {
			args = []map[string]any{}
		}
		return map[string]any{"name": name, "description": nil, "args": args, "type": t,
			"isDeprecated": false, "deprecationReason": nil}
	}
	object := func(name string, fields ...map[string]any) map[string]any {
		return map[string]any{"kind": "OBJECT", "name": name, "description": nil, "fields": fields,
			"inputFields": nil, "interfaces": []any{}, "enumValues": nil, "possibleTypes": nil}
	}
	scalar := func(name string) map[string]any {
		return map[string]any{"kind": "SCALAR", "name": name, "description": nil, "specifiedByURL": nil,
			"fields": nil, "inputFields": nil, "interfaces": nil, "enumValues": nil, "possibleTypes": nil}
	}
	str := named("SCALAR", "String")
	return map[string]any{
		"description":      nil,
		"queryType":        map[string]any{"name": "Query"},
		"mutationType":     nil,
		"subscriptionType": nil,
		"types": []any{
			object("Query",
				field("currentUser", named("OBJECT", "User")),
				field("auditEventDefinitions", wrap("NON_NULL", named("OBJECT", "AuditEventDefinitionConnection")),
					arg("first", named("SCALAR", "Int")), arg("after", str)),
			),
			object("User", field("username", wrap("NON_NULL", str))),
			object("AuditEventDefinitionConnection",
				field("nodes", wrap("NON_NULL", wrap("LIST", wrap("NON_NULL", named("OBJECT", "AuditEventDefinition")))))),
			object("AuditEventDefinition",
				field("name", wrap("NON_NULL", str)),
				field("featureCategory", wrap("NON_NULL", str))),
			scalar("String"),
			scalar("Int"),
			scalar("Boolean"),
		},
		"directives": []any{},
	}
}

// TestBrowser loads the page in headless Chromium against a fake GraphQL endpoint: GraphiQL
// must render, load the schema, send the token and run a query, with no error in the
// console and no Content-Security-Policy violation.
func TestBrowser(t *testing.T) {
	chromium := findChromium()
	if chromium == "" {
		if os.Getenv("CI") == "" {
			t.Skip("chromium not found (apt-get install -y chromium); the test fails instead when CI is set")
		}
		t.Fatal("chromium not found: CI must install it (apt-get install -y chromium)")
	}

	fake := &fakeGraphQL{}
	mux := http.NewServeMux()
	explorer := Handler(testPrefix, testEndpoint)
	mux.Handle(testPrefix, explorer)
	mux.Handle(testPrefix+"/", explorer)
	mux.Handle(testEndpoint, fake)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests run as root
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	tabCtx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	defer cancelTab()

	start := time.Now()
	if err := chromedp.Do(tabCtx); err != nil { // starts the browser
		t.Fatalf("starting %s: %v", chromium, err)
	}
	t.Logf("browser started in %v", time.Since(start).Round(time.Millisecond))

	var (
		consoleMu sync.Mutex
		console   []chromedp.ConsoleMessage
	)
	messages := chromedp.Console(tabCtx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			consoleMu.Lock()
			console = append(console, m)
			consoleMu.Unlock()
		}
	}()

	waitFor := func(what string, cond func([]fakeRequest) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond(fake.snapshot()) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; requests: %+v", what, fake.snapshot())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	logConsole := func() {
		consoleMu.Lock()
		defer consoleMu.Unlock()
		for _, m := range console {
			t.Logf("console: %s (%s %s)", m, m.Source, m.URL)
		}
	}
	do := func(actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		stepCtx, cancel := context.WithTimeout(tabCtx, 10*time.Second)
		defer cancel()
		if err := chromedp.Do(stepCtx, actions...); err != nil {
			if shot, err := chromedp.Run(tabCtx, chromedp.CaptureScreenshot()); err == nil {
				// Not t.TempDir: the file must outlive the test to be looked at.
				file := filepath.Join(os.TempDir(), fmt.Sprintf("explorer-browser-test-%d.png", time.Now().UnixNano()))
				if os.WriteFile(file, shot, 0o644) == nil {
					t.Logf("screenshot: %s", file)
				}
			}
			logConsole()
			t.Fatalf("browser: %v", err)
		}
	}
	eval := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(tabCtx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("browser: evaluating %s: %v", expr, err)
		}
		return v
	}

	// Record CSP violations in the page as well as through the console.
	if _, err := chromedp.Call(tabCtx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + (e.sample || ''));
});`,
	}); err != nil {
		t.Fatal(err)
	}

	do(
		chromedp.Navigate(srv.URL+testPrefix),
		chromedp.WaitVisible(chromedp.CSS(".graphiql-container")),
		chromedp.WaitVisible(chromedp.CSS(".graphiql-query-editor .CodeMirror")),
	)
	if got := eval(`typeof window.GraphiQL`); got == "undefined" {
		t.Error("window.GraphiQL is undefined")
	}
	editorText := eval(`document.querySelector('.graphiql-query-editor').innerText`)
	for _, want := range []string{"Personal access token", "currentUser", "auditEventDefinitions(first: 5)", "featureCategory"} {
		if !strings.Contains(editorText, want) {
			t.Errorf("query editor lacks %q:\n%s", want, editorText)
		}
	}
	waitFor("the introspection query", func(rs []fakeRequest) bool {
		return len(rs) > 0 && rs[0].introspection && rs[0].token == ""
	})

	// A token typed into the field reloads the schema with it, and goes with each query.
	const token = "glpat-browser-test-token"
	do(
		chromedp.SendKeys(chromedp.ID("explorer-token-input"), token+"\r"), // Enter: must not submit the form
		chromedp.Blur(chromedp.ID("explorer-token-input")),
	)
	waitFor("an introspection query with the token", func(rs []fakeRequest) bool {
		for _, r := range rs {
			if r.introspection && r.token == token {
				return true
			}
		}
		return false
	})
	do(chromedp.Click(chromedp.CSS(".graphiql-execute-button")))
	resultText, err := chromedp.Run(tabCtx, chromedp.PollFunction[string](
		`function () { const t = (document.querySelector('.result-window') || {}).innerText || ''; return t.includes('explorer-user') && t; }`,
		chromedp.WithPollingTimeout(10*time.Second),
	))
	if err != nil {
		t.Fatalf("waiting for the result of the query: %v", err)
	}
	var sawQuery bool
	for _, r := range fake.snapshot() {
		if !r.introspection && strings.Contains(r.query, "currentUser") {
			sawQuery = true
			if r.token != token {
				t.Errorf("query sent with PRIVATE-TOKEN %q, want %q", r.token, token)
			}
		}
	}
	if !sawQuery {
		t.Errorf("the query never reached the endpoint; requests: %+v", fake.snapshot())
	}
	if !strings.Contains(resultText, "user_created") {
		t.Errorf("result pane: %q", resultText)
	}
	if stored := eval(`sessionStorage.getItem('auditstream.graphql-explorer.token') || ''`); stored != token {
		t.Errorf("sessionStorage has token %q, want %q", stored, token)
	}
	if local := eval(`JSON.stringify(localStorage)`); strings.Contains(local, token) {
		t.Error("the token leaked into localStorage")
	}

	// A dialog inserts styles at run time; the CSP must let it.
	do(
		chromedp.Click(chromedp.CSS(`button[aria-label="Open settings dialog"]`)),
		chromedp.WaitVisible(chromedp.CSS(".graphiql-dialog")),
		chromedp.Click(chromedp.CSS(".graphiql-dialog .graphiql-dialog-close")),
		chromedp.WaitNotPresent(chromedp.CSS(".graphiql-dialog")),
	)
	violations, err := chromedp.Run(tabCtx, chromedp.Evaluate[[]string](`window.__cspViolations`))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range violations {
		t.Errorf("Content-Security-Policy violation: %s", v)
	}

	// Give the last console events time to arrive; the deferred cancelTab stops the reader.
	time.Sleep(300 * time.Millisecond)
	logConsole()
	consoleMu.Lock()
	defer consoleMu.Unlock()
	for _, m := range console {
		if m.Type == chromedp.ConsoleError || m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
			t.Errorf("browser console: %s", m)
		}
	}
	t.Logf("browser test took %v", time.Since(start).Round(time.Millisecond))
}

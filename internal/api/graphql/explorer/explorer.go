// Package explorer serves GraphiQL, an in-browser IDE for the GraphQL API, from files
// embedded in the binary.
//
// Nothing is loaded from another host: React, ReactDOM and GraphiQL are vendored under
// assets/ (see assets/README.md for their versions, hashes and how to refresh them), so
// the page works on a machine without Internet access.
package explorer

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/auditstream/auditstream/internal/httpgzip"
)

//go:embed assets
var assetFS embed.FS

// Content-Security-Policy of the page. Every script is a file served from the binary, so
// script-src is 'self' alone: no inline script, and no eval (none of the bundles needs it).
// style-src needs 'unsafe-inline': GraphiQL's dialogs (Radix, through react-remove-scroll-bar)
// insert a <style> element whose text depends on the scrollbar width, so no hash fits it, and
// CodeMirror 5's search and jump-to-line dialogs are HTML with style attributes, which a
// nonce does not cover. CSS cannot run code. GraphiQL's stylesheet has its fonts and a few
// images as data: URLs. form-action 'none' makes sure that the token field is never sent as
// a form. connect-src is widened to the endpoint's origin when the endpoint is an absolute URL.
const cspTemplate = "default-src 'none'; " +
	"script-src 'self'; " +
	"style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; " +
	"font-src 'self' data:; " +
	"connect-src %s; " +
	"base-uri 'none'; " +
	"form-action 'none'; " +
	"frame-ancestors 'none'"

const title = "auditstream GraphQL explorer"

// asset is one embedded file that the handler serves.
type asset struct {
	file        string // path in assetFS, under "assets/"
	contentType string
	etag        string
	data        []byte

	gzipOnce sync.Once
	gzipped  []byte // nil when compressing does not make it smaller
}

func (a *asset) gzipData() []byte {
	a.gzipOnce.Do(func() {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		if _, err := zw.Write(a.data); err != nil {
			return
		}
		if err := zw.Close(); err != nil {
			return
		}
		if buf.Len() < len(a.data) {
			a.gzipped = buf.Bytes()
		}
	})
	return a.gzipped
}

// assetFile names an embedded file. Vendored files sit in a directory named after their
// package and version (react-18.2.0/), which is then part of their URL. Our own files
// change with the binary, so their URL directory gets a hash of the content instead.
type assetFile struct {
	file      string
	versioned bool
}

var (
	reactJS     = assetFile{"react-18.2.0/react.production.min.js", true}
	reactDOMJS  = assetFile{"react-dom-18.2.0/react-dom.production.min.js", true}
	graphiqlJS  = assetFile{"graphiql-4.1.2/graphiql.min.js", true}
	graphiqlCSS = assetFile{"graphiql-4.1.2/graphiql.min.css", true}
	explorerJS  = assetFile{"explorer/explorer.js", false}
	explorerCSS = assetFile{"explorer/explorer.css", false}
)

// assetTable maps the path of each served asset below prefix+"/assets/" to the asset.
type assetTable struct {
	byPath map[string]*asset
	pathOf map[assetFile]string
}

var loadAssets = sync.OnceValue(func() *assetTable {
	t := &assetTable{byPath: map[string]*asset{}, pathOf: map[assetFile]string{}}
	for _, f := range []assetFile{reactJS, reactDOMJS, graphiqlJS, graphiqlCSS, explorerJS, explorerCSS} {
		data, err := assetFS.ReadFile("assets/" + f.file)
		if err != nil {
			panic(fmt.Sprintf("explorer: embedded asset missing: %v", err))
		}
		sum := sha256.Sum256(data)
		hash := hex.EncodeToString(sum[:])
		urlPath := f.file
		if !f.versioned {
			dir, file := path.Split(f.file)
			urlPath = strings.TrimSuffix(dir, "/") + "-" + hash[:16] + "/" + file
		}
		ct := "application/octet-stream"
		switch path.Ext(f.file) {
		case ".js":
			ct = "text/javascript; charset=utf-8"
		case ".css":
			ct = "text/css; charset=utf-8"
		}
		t.byPath[urlPath] = &asset{file: f.file, contentType: ct, etag: `"` + hash + `"`, data: data}
		t.pathOf[f] = urlPath
	}
	return t
})

var pageTemplate = template.Must(template.New("explorer").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{{.GraphiQLCSS}}">
<link rel="stylesheet" href="{{.ExplorerCSS}}">
<script src="{{.ReactJS}}" defer></script>
<script src="{{.ReactDOMJS}}" defer></script>
<script src="{{.GraphiQLJS}}" defer></script>
<script src="{{.ExplorerJS}}" defer></script>
</head>
<body>
<div class="explorer-app">
<form class="explorer-token" id="explorer-token-form">
<label for="explorer-token-input">Personal access token</label>
<input id="explorer-token-input" type="password" autocomplete="off" spellcheck="false">
<span class="explorer-token-hint">Sent as the PRIVATE-TOKEN header. Kept in this tab's session storage only.</span>
</form>
<div id="graphiql" class="explorer-graphiql" data-endpoint="{{.Endpoint}}">
<div class="explorer-loading">Loading…</div>
<noscript>The GraphQL explorer needs JavaScript.</noscript>
</div>
</div>
</body>
</html>
`))

type pageData struct {
	Title                   string
	Endpoint                string
	ReactJS, ReactDOMJS     string
	GraphiQLJS, GraphiQLCSS string
	ExplorerJS, ExplorerCSS string
}

type handler struct {
	prefix    string // without a trailing slash; "" mounts at the root
	assetBase string // prefix + "/assets/"
	assets    *assetTable
	page      []byte
	csp       string
}

// Handler serves the page at prefix (e.g. "/-/graphql-explorer") and its assets under
// prefix+"/assets/". endpoint is the GraphQL URL path ("/api/graphql").
//
// The page is also served at prefix+"/". Only GET and HEAD are allowed. Asset URLs contain
// the version or a hash of the content, so they are cached for a year.
func Handler(prefix, endpoint string) http.Handler {
	prefix = strings.TrimRight(prefix, "/")
	h := &handler{
		prefix:    prefix,
		assetBase: prefix + "/assets/",
		assets:    loadAssets(),
	}
	u := func(f assetFile) string { return h.assetBase + h.assets.pathOf[f] }
	var buf bytes.Buffer
	err := pageTemplate.Execute(&buf, pageData{
		Title:       title,
		Endpoint:    endpoint,
		ReactJS:     u(reactJS),
		ReactDOMJS:  u(reactDOMJS),
		GraphiQLJS:  u(graphiqlJS),
		GraphiQLCSS: u(graphiqlCSS),
		ExplorerJS:  u(explorerJS),
		ExplorerCSS: u(explorerCSS),
	})
	if err != nil {
		panic(fmt.Sprintf("explorer: rendering the page: %v", err))
	}
	h.page = buf.Bytes()

	connect := "'self'"
	if e, err := url.Parse(endpoint); err == nil && e.Scheme != "" && e.Host != "" {
		connect += " " + e.Scheme + "://" + e.Host
	}
	h.csp = fmt.Sprintf(cspTemplate, connect)
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	switch {
	case p == h.prefix || p == h.prefix+"/":
		h.servePage(w, r)
	case strings.HasPrefix(p, h.assetBase):
		h.serveAsset(w, r, strings.TrimPrefix(p, h.assetBase))
	default:
		http.NotFound(w, r)
	}
}

func (h *handler) servePage(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Content-Security-Policy", h.csp)
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	// The page names the assets of this build: revalidate it so an upgrade is seen.
	hd.Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(h.page))
}

func (h *handler) serveAsset(w http.ResponseWriter, r *http.Request, name string) {
	a, ok := h.assets.byPath[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", a.contentType)
	hd.Set("Cache-Control", "public, max-age=31536000, immutable")
	hd.Set("Vary", "Accept-Encoding")
	data, etag := a.data, a.etag
	if httpgzip.Accepts(r) {
		if gz := a.gzipData(); gz != nil {
			data, etag = gz, `"`+strings.Trim(a.etag, `"`)+`-gzip"`
			hd.Set("Content-Encoding", "gzip")
		}
	}
	hd.Set("ETag", etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
}

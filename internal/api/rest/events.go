package rest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/namespace"
	"github.com/auditstream/auditstream/internal/store"
)

const (
	defaultPerPage = 20
	maxPerPage     = 100
	// maxOffset bounds (page-1)*per_page, the rows an offset page skips: past it a page
	// number is refused rather than wrapped around.
	maxOffset = math.MaxInt32
)

// listInstanceEvents is GET /api/v4/audit_events: admins only.
func (a *API) listInstanceEvents(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	if !p.User.Admin {
		writeError(w, http.StatusForbidden, "forbidden", "403 Forbidden")
		return
	}
	params, ok := a.listParams(w, r, true)
	if !ok {
		return
	}
	a.listEvents(w, r, params)
}

func (a *API) getInstanceEvent(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	if !p.User.Admin {
		writeError(w, http.StatusForbidden, "forbidden", "403 Forbidden")
		return
	}
	a.getEvent(w, r, func(store.EventRecord) bool { return true })
}

// namespaceScope resolves the group or project of the path and what p may see of its events.
// It writes the response and returns ok=false when p may see nothing: 404 for non-members (do
// not reveal that it exists), 403 for members whose role is too low.
func (a *API) namespaceScope(w http.ResponseWriter, r *http.Request, p *auth.Principal, kind store.NamespaceKind) (store.Namespace, auth.EventScope, bool) {
	ns, level, ok := a.namespaceAccess(w, r, p, kind, r.PathValue("id"))
	if !ok {
		return ns, auth.SeeNone, false
	}
	scope := auth.EventScopeFor(kind, level)
	if scope == auth.SeeNone {
		writeError(w, http.StatusForbidden, "forbidden", "403 Forbidden")
		return ns, scope, false
	}
	return ns, scope, true
}

// namespaceAccess resolves the group or project idOrPath (a route's {id}) and p's access level
// on it; non-members get a 404, as if it did not exist.
func (a *API) namespaceAccess(w http.ResponseWriter, r *http.Request, p *auth.Principal, kind store.NamespaceKind, idOrPath string) (store.Namespace, int, bool) {
	ns, err := a.opts.Namespaces.Find(r.Context(), kind, idOrPath)
	if errors.Is(err, namespace.ErrNotFound) {
		namespaceNotFound(w, kind)
		return ns, 0, false
	}
	if err != nil {
		a.writeErr(w, r, err)
		return ns, 0, false
	}
	chain, err := a.opts.Namespaces.Chain(r.Context(), ns)
	if err != nil {
		a.writeErr(w, r, err)
		return ns, 0, false
	}
	level, err := a.opts.Auth.AccessLevel(r.Context(), p, chain)
	if err != nil {
		a.writeErr(w, r, err)
		return ns, 0, false
	}
	if level == auth.NoAccess {
		namespaceNotFound(w, kind)
		return ns, 0, false
	}
	return ns, level, true
}

func namespaceNotFound(w http.ResponseWriter, kind store.NamespaceKind) {
	name := "Group"
	if kind == store.KindProject {
		name = "Project"
	}
	writeError(w, http.StatusNotFound, "not_found", "404 "+name+" Not Found")
}

func entityTypeOf(kind store.NamespaceKind) string {
	if kind == store.KindProject {
		return event.EntityProject
	}
	return event.EntityGroup
}

func (a *API) listNamespaceEvents(kind store.NamespaceKind) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
		ns, scope, ok := a.namespaceScope(w, r, p, kind)
		if !ok {
			return
		}
		params, ok := a.listParams(w, r, false)
		if !ok {
			return
		}
		// A namespace whose GitLab id is unknown (an ancestor seen only in paths) has no events
		// of its own: id 0 matches none, never every group's.
		params.EntityType, params.EntityID, params.HasEntityID = entityTypeOf(kind), ns.ID, true
		// Events it had before adopting GitLab's id carry the id assigned here.
		params.AlsoEntityID = store.LocalID(ns.Key)
		if scope == auth.SeeOwn {
			params.AuthorID, params.HasAuthorID = p.User.ID, true
		}
		a.listEvents(w, r, params)
	}
}

// getNamespaceEvent returns one event of the group or project. GitLab allows it to owners and
// admins (groups) and maintainers and above (projects): the SeeAll scope.
func (a *API) getNamespaceEvent(kind store.NamespaceKind) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
		ns, scope, ok := a.namespaceScope(w, r, p, kind)
		if !ok {
			return
		}
		if scope != auth.SeeAll {
			writeError(w, http.StatusForbidden, "forbidden", "403 Forbidden")
			return
		}
		a.getEvent(w, r, func(rec store.EventRecord) bool {
			return rec.EntityType == entityTypeOf(kind) && (rec.EntityID == ns.ID || rec.EntityID == store.LocalID(ns.Key))
		})
	}
}

func (a *API) getEvent(w http.ResponseWriter, r *http.Request, visible func(store.EventRecord) bool) {
	id, err := strconv.ParseInt(r.PathValue("event_id"), 10, 64)
	if err != nil || id <= 0 {
		writeError(w, http.StatusNotFound, "not_found", "404 Audit Event Not Found")
		return
	}
	rec, err := a.opts.Events.EventGet(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !visible(rec)) {
		writeError(w, http.StatusNotFound, "not_found", "404 Audit Event Not Found")
		return
	}
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(restJSON(rec.Data))
}

// listQuery is a parsed list request: filters, and one of the two pagination modes.
type listQuery struct {
	store.EventListParams
	keyset  bool
	page    int
	perPage int
}

// listParams parses GitLab's query parameters. entity filters only on the instance endpoint.
func (a *API) listParams(w http.ResponseWriter, r *http.Request, entityFilters bool) (listQuery, bool) {
	q := r.URL.Query()
	var lq listQuery
	bad := func(msg string) (listQuery, bool) {
		a.writeBad(w, "invalid_parameter", msg)
		return lq, false
	}
	for _, name := range []string{"created_after", "created_before"} {
		v := q.Get(name)
		if v == "" {
			continue
		}
		t, err := event.ParseTimeParam(v)
		if err != nil {
			return bad(name + " is invalid: use an ISO 8601 time such as 2025-01-31T12:00:00Z (no offset: UTC) or a date such as 2025-01-31")
		}
		if name == "created_after" {
			lq.CreatedAfter = t
		} else {
			lq.CreatedBefore = t
		}
	}
	if entityFilters {
		if et := q.Get("entity_type"); et != "" {
			switch et {
			case event.EntityGroup, event.EntityProject, event.EntityUser, event.EntityInstance:
				lq.EntityType = et
			case "Instance":
				lq.EntityType = event.EntityInstance
			default:
				return bad("entity_type does not have a valid value")
			}
		}
		if ei := q.Get("entity_id"); ei != "" {
			id, err := strconv.ParseInt(ei, 10, 64)
			if err != nil {
				return bad("entity_id is invalid")
			}
			if lq.EntityType == "" {
				return bad("entity_id requires entity_type")
			}
			lq.EntityID, lq.HasEntityID = id, true
		}
	}
	page, perPage, msg := parsePage(q)
	if msg != "" {
		return bad(msg)
	}
	lq.perPage = perPage
	switch q.Get("pagination") {
	case "", "offset":
		lq.page = page
	case "keyset":
		lq.keyset = true
		if ob := q.Get("order_by"); ob != "" && ob != "id" {
			return bad("order_by does not have a valid value: keyset pagination of audit events orders by id")
		}
		if v := q.Get("cursor"); v != "" {
			id, err := decodeCursor(v)
			if err != nil {
				return bad("cursor is invalid")
			}
			lq.AfterID = id
		}
	default:
		return bad("pagination does not have a valid value")
	}
	switch q.Get("sort") {
	case "", "desc":
	case "asc":
		lq.Ascending = true
	default:
		return bad("sort does not have a valid value")
	}
	return lq, true
}

func (a *API) listEvents(w http.ResponseWriter, r *http.Request, lq listQuery) {
	ctx := r.Context()
	p := lq.EventListParams
	var total int64
	if lq.keyset {
		p.Limit = lq.perPage + 1 // one more tells whether there is a next page
	} else {
		var err error
		if total, err = a.opts.Events.EventCount(ctx, p); err != nil {
			a.writeErr(w, r, err)
			return
		}
		p.Offset, p.Limit = (lq.page-1)*lq.perPage, lq.perPage
	}
	recs, err := a.opts.Events.EventList(ctx, p)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	h := w.Header()
	h.Set("X-Per-Page", strconv.Itoa(lq.perPage))
	if lq.keyset {
		if len(recs) > lq.perPage {
			recs = recs[:lq.perPage]
			cursor := encodeCursor(recs[len(recs)-1].ID)
			next := a.pageURL(r, func(q url.Values) { q.Set("cursor", cursor) })
			h.Set("Link", `<`+next+`>; rel="next"`)
			h.Set("X-Next-Cursor", cursor)
		}
	} else {
		a.setPageHeaders(h, r, lq.page, lq.perPage, total)
	}
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i, rec := range recs {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(restJSON(rec.Data))
	}
	buf.WriteString("]\n")
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

// parsePage reads GitLab's offset pagination parameters, page (default 1) and per_page
// (default 20, at most 100); msg says what is wrong with them.
func parsePage(q url.Values) (page, perPage int, msg string) {
	page, perPage = 1, defaultPerPage
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return 0, 0, "per_page is invalid"
		}
		perPage = min(n, maxPerPage)
	}
	if v := q.Get("page"); v != "" {
		// The offset the page stands for must fit: a huge page must not wrap around to another.
		n, err := strconv.ParseInt(v, 10, 64)
		if last := maxOffset/int64(perPage) + 1; err != nil || n < 1 || n > last {
			return 0, 0, fmt.Sprintf("page is invalid: a whole number from 1 to %d (with per_page=%d)", last, perPage)
		}
		page = int(n)
	}
	return page, perPage, ""
}

// writePage writes the page of items that the request's page and per_page ask for, with
// GitLab's offset pagination headers; 400 when they are invalid.
func writePage[T any](a *API, w http.ResponseWriter, r *http.Request, items []T) {
	page, perPage, msg := parsePage(r.URL.Query())
	if msg != "" {
		a.writeBad(w, "invalid_parameter", msg)
		return
	}
	a.setPageHeaders(w.Header(), r, page, perPage, int64(len(items)))
	from := min((page-1)*perPage, len(items))
	out := items[from:min(from+perPage, len(items))]
	if out == nil {
		out = []T{}
	}
	writeJSON(w, http.StatusOK, out)
}

// setPageHeaders writes GitLab's offset pagination headers for page of a list of total items:
// X-Total, X-Total-Pages, X-Page, X-Per-Page, X-Next-Page, X-Prev-Page and Link.
func (a *API) setPageHeaders(h http.Header, r *http.Request, page, perPage int, total int64) {
	pages := int((total + int64(perPage) - 1) / int64(perPage))
	h.Set("X-Per-Page", strconv.Itoa(perPage))
	h.Set("X-Total", strconv.FormatInt(total, 10))
	h.Set("X-Total-Pages", strconv.Itoa(pages))
	h.Set("X-Page", strconv.Itoa(page))
	next, prev := "", ""
	if page < pages {
		next = strconv.Itoa(page + 1)
	}
	if page > 1 {
		prev = strconv.Itoa(min(page-1, max(pages, 1)))
	}
	h.Set("X-Next-Page", next)
	h.Set("X-Prev-Page", prev)
	var links []string
	link := func(page int, rel string) {
		u := a.pageURL(r, func(q url.Values) { q.Set("page", strconv.Itoa(page)) })
		links = append(links, `<`+u+`>; rel="`+rel+`"`)
	}
	if prev != "" {
		link(page-1, "prev")
	}
	if next != "" {
		link(page+1, "next")
	}
	link(1, "first")
	link(max(pages, 1), "last")
	h.Set("Link", strings.Join(links, ", "))
}

func (a *API) pageURL(r *http.Request, set func(url.Values)) string {
	q := r.URL.Query()
	set(q)
	return a.baseURL(r) + r.URL.Path + "?" + q.Encode()
}

func encodeCursor(id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(`{"id":` + strconv.FormatInt(id, 10) + `}`))
}

func decodeCursor(s string) (int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return 0, err
	}
	var c struct {
		ID int64 `json:"id"`
	}
	if err := json.Unmarshal(b, &c); err != nil || c.ID <= 0 {
		return 0, fmt.Errorf("bad cursor")
	}
	return c.ID, nil
}

// stringDetails are the details keys GitLab's clients decode as strings (client-go's
// AuditEventDetails); a non-string value there is sent as its JSON text.
var stringDetails = map[string]bool{
	"with": true, "add": true, "as": true, "change": true, "from": true, "to": true, "remove": true,
	"custom_message": true, "author_name": true, "author_email": true, "author_class": true,
	"target_type": true, "target_details": true, "ip_address": true, "entity_path": true,
	"failed_login": true, "event_name": true,
}

// restJSON returns a stored event as GitLab's REST API shows it: the streamed event with the
// well-known details keys as strings (a non-string value becomes its compact JSON text). Only
// those values change; every other byte, key order and escaping included, is kept. Data that is
// not a JSON object is returned unchanged.
func restJSON(data []byte) []byte {
	ds, de, ok := memberSpan(data, "details")
	if !ok {
		return data
	}
	details := data[ds:de]
	type edit struct {
		start, end int
		repl       []byte
	}
	var edits []edit
	forEachMember(details, func(key string, vs, ve int) {
		v := details[vs:ve]
		if !stringDetails[key] || v[0] == '"' || string(v) == "null" {
			return
		}
		var compact bytes.Buffer
		if json.Compact(&compact, v) != nil {
			return
		}
		repl, _ := json.Marshal(compact.String())
		edits = append(edits, edit{ds + vs, ds + ve, repl})
	})
	if len(edits) == 0 {
		return data
	}
	out := make([]byte, 0, len(data)+64)
	last := 0
	for _, e := range edits {
		out = append(out, data[last:e.start]...)
		out = append(out, e.repl...)
		last = e.end
	}
	return append(out, data[last:]...)
}

// memberSpan returns the byte span of the value of the last top-level member named key.
func memberSpan(obj []byte, key string) (start, end int, ok bool) {
	forEachMember(obj, func(k string, vs, ve int) {
		if k == key {
			start, end, ok = vs, ve, true
		}
	})
	return start, end, ok
}

// forEachMember calls f with each top-level key of the JSON object obj and the byte span of its
// value. It calls f for nothing when obj is not a well-formed JSON object.
func forEachMember(obj []byte, f func(key string, vs, ve int)) {
	if !json.Valid(obj) {
		return
	}
	dec := json.NewDecoder(bytes.NewReader(obj))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return
		}
		key, _ := t.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return
		}
		end := int(dec.InputOffset())
		f(key, end-len(raw), end)
	}
}

package web

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/store"
)

// Page sizes of the events table.
var perPageChoices = []int{20, 50, 100}

const defaultPerPage = 50

// eventFilter is the events page's query: filters and the page.
type eventFilter struct {
	From, To   string // dates, YYYY-MM-DD, UTC, both inclusive
	EventType  string
	AuthorID   string
	EntityType string // instance only
	EntityID   string // instance only
	Before     int64  // keyset: events with lower ids (older)
	PerPage    int
}

// parseEventFilter reads the query. It returns the store's parameters and the problems, one
// sentence each; a query with problems lists nothing.
func (u *UI) parseEventFilter(r *http.Request, s scope) (eventFilter, store.EventListParams, []string) {
	q := r.URL.Query()
	f := eventFilter{From: q.Get("created_after"), To: q.Get("created_before"), EventType: q.Get("event_type"),
		AuthorID: strings.TrimSpace(q.Get("author_id")), PerPage: defaultPerPage}
	var p store.EventListParams
	var problems []string
	// The REST API's time parameters (event.ParseTimeParam): a date, or a time (UTC without an
	// offset), so that an API query pasted into the address bar means the same here.
	if f.From != "" {
		t, err := event.ParseTimeParam(f.From)
		if err != nil {
			problems = append(problems, "From must be a date such as 2025-01-31.")
		}
		p.CreatedAfter = t
	}
	if f.To != "" {
		t, err := event.ParseTimeParam(f.To)
		if err != nil {
			problems = append(problems, "To must be a date such as 2025-01-31.")
		}
		if len(strings.TrimSpace(f.To)) == len(time.DateOnly) {
			t = t.Add(24*time.Hour - time.Millisecond) // a date: the whole day
		}
		p.CreatedBefore = t
	}
	if f.From != "" && f.To != "" && p.CreatedBefore.Before(p.CreatedAfter) {
		problems = append(problems, "From must not be after To.")
	}
	if f.EventType != "" {
		if u.opts.Catalog.Lookup(f.EventType) == nil {
			problems = append(problems, fmt.Sprintf("%q is not an event type of the catalog.", f.EventType))
		}
		p.EventType = f.EventType
	}
	if f.AuthorID != "" {
		id, err := strconv.ParseInt(f.AuthorID, 10, 64)
		if err != nil || id < 0 {
			problems = append(problems, "Author ID must be a user's number.")
		}
		p.AuthorID, p.HasAuthorID = id, true
	}
	if s.Kind == "instance" {
		f.EntityType, f.EntityID = q.Get("entity_type"), strings.TrimSpace(q.Get("entity_id"))
		switch f.EntityType {
		case "", event.EntityGroup, event.EntityProject, event.EntityUser, event.EntityInstance:
			p.EntityType = f.EntityType
		default:
			problems = append(problems, "Entity type must be Group, Project, User or the instance.")
		}
		if f.EntityID != "" {
			id, err := strconv.ParseInt(f.EntityID, 10, 64)
			switch {
			case err != nil:
				problems = append(problems, "Entity ID must be a number.")
			case f.EntityType == "":
				problems = append(problems, "Choose an entity type for the entity ID.")
			}
			p.EntityID, p.HasEntityID = id, true
		}
	} else {
		// A namespace whose GitLab id is unknown has no events of its own: id 0 matches none.
		p.EntityType, p.EntityID, p.HasEntityID = s.eventEntityType(), s.NS.ID, true
		p.AlsoEntityID = store.LocalID(s.NS.Key) // its events from before it adopted GitLab's id
	}
	if s.Events == auth.SeeOwn {
		own := sessionOf(r).User().ID
		if p.HasAuthorID && p.AuthorID != own {
			own = -1 // asks for someone else's events, which this role does not show
		}
		p.AuthorID, p.HasAuthorID = own, true
	}
	if v := q.Get("per_page"); v != "" {
		n, _ := strconv.Atoi(v)
		if !slices.Contains(perPageChoices, n) {
			problems = append(problems, "Rows per page must be 20, 50 or 100.")
		}
		f.PerPage = n
	}
	if v := q.Get("before"); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
			problems = append(problems, "The page link is broken: start again from the first page.")
		}
		f.Before = id
	}
	return f, p, problems
}

func (s scope) eventEntityType() string {
	if s.Kind == "project" {
		return event.EntityProject
	}
	return event.EntityGroup
}

// Query is the filter as a query string, without the page; with sets more.
func (f eventFilter) Query(with ...string) string {
	q := url.Values{}
	for k, v := range map[string]string{"created_after": f.From, "created_before": f.To, "event_type": f.EventType,
		"author_id": f.AuthorID, "entity_type": f.EntityType, "entity_id": f.EntityID} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.PerPage != defaultPerPage {
		q.Set("per_page", strconv.Itoa(f.PerPage))
	}
	for i := 0; i+1 < len(with); i += 2 {
		q.Set(with[i], with[i+1])
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// row is one event as the table and the CSV show it.
type row struct {
	ID         int64
	CreatedAt  time.Time
	EventType  string
	AuthorID   int64
	AuthorName string
	// AuthorUsername is the author's username when the author is a user here.
	AuthorUsername string
	AuthorEmail    string
	EntityID       int64
	EntityType     string
	EntityPath     string
	TargetID       string
	TargetType     string
	TargetDetails  string
	IPAddress      string
	Message        string
}

// EntityLabel names the entity type as people say it.
func (r row) EntityLabel() string {
	if r.EntityType == event.EntityInstance {
		return "Instance"
	}
	return r.EntityType
}

func rowOf(rec store.EventRecord) row {
	d := event.DisplayOf(rec.Data) // stored events are valid; a broken one shows what decodes
	return row{ID: rec.ID, CreatedAt: rec.CreatedAt.UTC(), EventType: rec.EventType, AuthorID: rec.AuthorID, AuthorName: d.AuthorName,
		AuthorEmail: d.AuthorEmail, EntityID: rec.EntityID, EntityType: rec.EntityType, EntityPath: d.EntityPath, TargetID: d.TargetID,
		TargetType: d.TargetType, TargetDetails: d.TargetDetails, IPAddress: d.IPAddress, Message: d.Action}
}

// nameAuthors shows the authors of rows who are users here by their name and username, as
// GitLab's audit events page does, instead of an id: one lookup per author of the page. An
// event's own author_name is kept; an author who is not a user here (or a failed lookup)
// shows what the event says.
func (u *UI) nameAuthors(ctx context.Context, rows []row) {
	if u.opts.Users == nil {
		return
	}
	users := map[int64]*store.User{}
	for i := range rows {
		id := rows[i].AuthorID
		if id <= 0 {
			continue
		}
		usr, seen := users[id]
		if !seen {
			if found, err := u.opts.Users.UserGet(ctx, id); err == nil {
				usr = &found
			}
			users[id] = usr
		}
		if usr == nil {
			continue
		}
		rows[i].AuthorUsername = usr.Username
		if rows[i].AuthorName == "" {
			rows[i].AuthorName = usr.Name
		}
	}
}

type eventsData struct {
	Scope    scope
	Filter   eventFilter
	Problems []string
	Rows     []row
	Next     string // the older page's URL, "" on the last
	First    string // the first page's URL, "" on it
	CSV      string
	Types    []typeGroup
	PerPage  []int
	OwnOnly  bool
	Chart    *chart // the volume by type over the filter's range (plots.go)
}

// typeGroup is the catalog's types of one category (feature_category).
type typeGroup struct {
	Category string
	Types    []*event.Type
}

func typeGroups(c *event.Catalog) []typeGroup {
	var groups []typeGroup
	index := map[string]int{}
	for _, t := range c.Types() {
		i, ok := index[t.FeatureCategory]
		if !ok {
			i = len(groups)
			index[t.FeatureCategory] = i
			groups = append(groups, typeGroup{Category: t.FeatureCategory})
		}
		groups[i].Types = append(groups[i].Types, t)
	}
	slices.SortFunc(groups, func(a, b typeGroup) int { return strings.Compare(a.Category, b.Category) })
	return groups
}

// seesEvents refuses, with the REST API's 403, a member whose role shows none of the scope's
// events.
func (u *UI) seesEvents(w http.ResponseWriter, r *http.Request, s scope) bool {
	if s.Events == auth.SeeNone {
		u.errorPage(w, r, http.StatusForbidden, "Your role in "+s.Name()+" does not show its audit events: owners see all of them, developers and maintainers their own.")
		return false
	}
	return true
}

func (u *UI) eventsPage(w http.ResponseWriter, r *http.Request) {
	s := scopeOf(r)
	if !u.seesEvents(w, r, s) {
		return
	}
	f, p, problems := u.parseEventFilter(r, s)
	d := eventsData{Scope: s, Filter: f, Problems: problems, Types: u.types, PerPage: perPageChoices, OwnOnly: s.Events == auth.SeeOwn,
		CSV: s.Base + s.sep() + "audit_events.csv" + f.Query()}
	status := http.StatusOK
	if len(problems) > 0 {
		status = http.StatusBadRequest
	} else {
		p.AfterID, p.Limit = f.Before, f.PerPage+1
		recs, err := u.opts.Events.EventList(r.Context(), p)
		if err != nil {
			u.fail(w, r, err)
			return
		}
		if len(recs) > f.PerPage {
			recs = recs[:f.PerPage]
			d.Next = s.EventsURL() + f.Query("before", strconv.FormatInt(recs[len(recs)-1].ID, 10))
		}
		if f.Before != 0 {
			d.First = s.EventsURL() + f.Query()
		}
		for _, rec := range recs {
			d.Rows = append(d.Rows, rowOf(rec))
		}
		u.nameAuthors(r.Context(), d.Rows)
		if f.Before == 0 { // the first page only: the older pages have the same chart
			if d.Chart, err = u.volumeChart(r.Context(), p); err != nil {
				u.fail(w, r, err)
				return
			}
		}
	}
	u.render(w, r, status, "events", view{Title: "Audit events · " + s.Name(), Crumbs: s.crumbs(crumb{Name: "Audit events"}), Data: d})
}

type eventData struct {
	Scope scope
	Row   row
	JSON  string
}

// eventPage shows one event: to those who may see all of the scope's events, as the REST API.
func (u *UI) eventPage(w http.ResponseWriter, r *http.Request) {
	s := scopeOf(r)
	notFound := func() { u.errorPage(w, r, http.StatusNotFound, "Audit event not found.") }
	if s.Events != auth.SeeAll {
		u.errorPage(w, r, http.StatusForbidden, "Only owners (maintainers of a project) can open single audit events.")
		return
	}
	id, err := strconv.ParseInt(r.PathValue("rest"), 10, 64)
	if err != nil || id <= 0 {
		notFound()
		return
	}
	rec, err := u.opts.Events.EventGet(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || err == nil && s.Kind != "instance" && (rec.EntityType != s.eventEntityType() || rec.EntityID != s.NS.ID && rec.EntityID != store.LocalID(s.NS.Key)) {
		notFound()
		return
	}
	if err != nil {
		u.fail(w, r, err)
		return
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, rec.Data, "", "  ") != nil {
		pretty.Reset()
		pretty.Write(rec.Data)
	}
	one := []row{rowOf(rec)}
	u.nameAuthors(r.Context(), one)
	u.render(w, r, http.StatusOK, "event", view{Title: fmt.Sprintf("Audit event %d", id),
		Crumbs: s.crumbs(crumb{Name: "Audit events", URL: s.EventsURL()}, crumb{Name: strconv.FormatInt(id, 10)}),
		Data:   eventData{Scope: s, Row: one[0], JSON: pretty.String()}})
}

// csvPage is how many events the export reads at a time: memory stays flat however many match.
const csvPage = 1000

// eventsCSV streams the filtered events, newest first, as CSV.
func (u *UI) eventsCSV(w http.ResponseWriter, r *http.Request) {
	s := scopeOf(r)
	if !u.seesEvents(w, r, s) {
		return
	}
	_, p, problems := u.parseEventFilter(r, s)
	if len(problems) > 0 {
		u.errorPage(w, r, http.StatusBadRequest, strings.Join(problems, " "))
		return
	}
	p.Limit = csvPage
	ctx := r.Context()
	recs, err := u.opts.Events.EventList(ctx, p)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	name := "audit-events-" + strings.NewReplacer("/", "-", " ", "-").Replace(strings.ToLower(s.Name())) + "-" + u.now().UTC().Format("20060102T150405Z") + ".csv"
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	h.Set("Cache-Control", "no-store")
	cw := csv.NewWriter(w)
	_ = cw.Write(event.CSVHeader)
	cell := event.CSVCell
	for {
		for _, rec := range recs {
			if fields, err := event.CSVRecord(rec.Data); err == nil {
				_ = cw.Write(fields)
				continue
			}
			// A stored event that does not decode: what its row says, and its bytes.
			e := rowOf(rec)
			_ = cw.Write([]string{strconv.FormatInt(e.ID, 10), e.CreatedAt.Format(event.TimeLayout), e.EventType, strconv.FormatInt(e.AuthorID, 10),
				cell(e.AuthorName), cell(e.AuthorEmail), strconv.FormatInt(e.EntityID, 10), cell(e.EntityType), cell(e.EntityPath),
				cell(e.TargetID), cell(e.TargetType), cell(e.TargetDetails), cell(e.Message), cell(e.IPAddress), string(rec.Data)})
		}
		cw.Flush()
		if cw.Error() != nil || len(recs) < csvPage {
			return
		}
		p.AfterID = recs[len(recs)-1].ID
		if recs, err = u.opts.Events.EventList(ctx, p); err != nil {
			// The answer has started: end it short, and say so in the log.
			u.opts.Logger.Error("web: CSV export stopped early", "after_id", p.AfterID, "err", err)
			panic(http.ErrAbortHandler)
		}
	}
}

package destination

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/auditstream/auditstream/internal/event"
)

// Limits that Compile enforces on one destination's filters.
const (
	// MaxNamespaceFilters is GitLab's limit on namespace filters per destination
	// (MAXIMUM_NAMESPACE_FILTER_COUNT in EE externally_streamable.rb).
	MaxNamespaceFilters = 5
	// MaxEventTypeFilters limits EventTypes and DenyEventTypes, each. GitLab has no such cap,
	// but the catalog has only about 500 types, so a longer list cannot be valid anyway. The
	// cap stops a hostile list from making the error list huge.
	MaxEventTypeFilters = 1000
	// MaxCategoryFilters limits Categories and DenyCategories, each, for the same reason.
	MaxCategoryFilters = 1000
)

// Field names used in FilterError.Field. They match the FilterSpec fields, written as an API
// writes them.
const (
	FieldEventTypes     = "eventTypes"
	FieldDenyEventTypes = "denyEventTypes"
	FieldCategories     = "categories"
	FieldDenyCategories = "denyCategories"
	FieldNamespaces     = "namespaces"
)

// Codes used in FilterError.Code. They are stable, so an API can return them as data.
const (
	// CodeUnknownEventType: the value is not a type in the catalog.
	CodeUnknownEventType = "unknown_event_type"
	// CodeUnknownCategory: no type in the catalog has this feature_category.
	CodeUnknownCategory = "unknown_category"
	// CodeDuplicate: the value occurs more than once in its list. For namespaces, this means the
	// same key is given twice, even if once as a group and once as a project, because groups and
	// projects share one key space.
	CodeDuplicate = "duplicate"
	// CodeConflict: an event type or category is both allowed and denied. In GitLab an event
	// type filter is unique per destination (EE group/event_type_filter.rb); we read that as
	// covering both kinds.
	CodeConflict = "conflict"
	// CodeTooMany: the list is longer than its limit. Its entries are then not checked.
	CodeTooMany = "too_many"
	// CodeInvalidNamespace: the namespace key is not positive.
	CodeInvalidNamespace = "invalid_namespace"
)

// maxValueLen bounds FilterError.Value. GitLab limits an event type filter to 255 characters.
const maxValueLen = 255

// FilterSpec is what a destination's owner saved: the filters as they were entered. Compile
// checks it and turns it into a Filter.
type FilterSpec struct {
	// EventTypes allows these event types (GitLab's event type filters of kind allow).
	EventTypes []string
	// DenyEventTypes never streams these event types (kind deny).
	DenyEventTypes []string
	// Categories allows every event type whose feature_category is one of these, including
	// types added to the catalog later. This is our extension.
	Categories []string
	// DenyCategories never streams event types in these categories. This is our extension.
	DenyCategories []string
	// Namespaces limits the destination to these groups (each with all its descendants) and
	// projects. GitLab's namespace filters.
	Namespaces []NamespaceRef
	// Expression is a CEL expression over the event that must be true for the destination to
	// take it; "" (or only white space) means none. This is our extension. See Filter.Match.
	Expression string
}

// NamespaceRef names a group or a project in a namespace filter.
type NamespaceRef struct {
	// Key is auditstream's stable internal namespace key (store.Namespace.Key). Groups and
	// projects share one key space.
	Key int64
	// Project is true when Key is a project. A project matches exactly. A group matches itself
	// and all its descendants.
	Project bool
}

// String returns "group:<key>" or "project:<key>". FilterError.Value uses this form.
func (r NamespaceRef) String() string {
	if r.Project {
		return "project:" + strconv.FormatInt(r.Key, 10)
	}
	return "group:" + strconv.FormatInt(r.Key, 10)
}

// FilterError is one problem that Compile found. Field, Code, Value and Limit are stable data
// that an API can return as they are. Error is for people.
type FilterError struct {
	Field string // one of the Field constants
	Code  string // one of the Code constants
	// Value is the bad value: an event type, a category, or a NamespaceRef in its String form.
	// For CodeTooMany it is the number of entries given. Values longer than 255 bytes are
	// shortened and end in "…".
	Value string
	Limit int // the maximum for CodeTooMany, otherwise 0
}

func (e *FilterError) Error() string {
	switch e.Code {
	case CodeUnknownEventType:
		return fmt.Sprintf("%s: unknown event type %q", e.Field, e.Value)
	case CodeUnknownCategory:
		return fmt.Sprintf("%s: unknown category %q", e.Field, e.Value)
	case CodeDuplicate:
		return fmt.Sprintf("%s: %q is listed more than once", e.Field, e.Value)
	case CodeConflict:
		return fmt.Sprintf("%s: %q is both allowed and denied", e.Field, e.Value)
	case CodeTooMany:
		return fmt.Sprintf("%s: %s given, at most %d allowed", e.Field, e.Value, e.Limit)
	case CodeInvalidNamespace:
		return fmt.Sprintf("%s: %q is not a valid namespace key", e.Field, e.Value)
	case CodeInvalidExpression, CodeNotBool, CodeTooCostly:
		return e.Field + ": " + e.Value
	}
	return fmt.Sprintf("%s: %s %q", e.Field, e.Code, e.Value)
}

// FilterErrors returns every *FilterError in err's tree, in order. It looks through errors.Join
// and %w wrapping. An API uses it to list all the problems that Compile reported.
func FilterErrors(err error) []*FilterError { return errorsOf[*FilterError](err) }

// errorsOf returns every E in err's tree, in order, looking through errors.Join and %w.
func errorsOf[E error](err error) []E {
	var out []E
	var walk func(error)
	walk = func(err error) {
		if e, ok := err.(E); ok {
			out = append(out, e)
			return
		}
		switch e := err.(type) {
		case interface{ Unwrap() []error }:
			for _, c := range e.Unwrap() {
				walk(c)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return out
}

// Filter is a compiled FilterSpec. It decides which events a destination receives. It is
// immutable and safe for concurrent use.
//
// The zero Filter and a nil *Filter have no filters, so they match every event.
type Filter struct {
	spec       FilterSpec         // normalized
	types      map[string]verdict // event type → allowed or denied
	categories map[string]verdict // category → allowed or denied
	restricted bool               // some type or category is allowed, so the rest are not
	groups     []int64            // at most MaxNamespaceFilters, so a scan beats a map
	projects   []int64
	expr       *expr // nil: no expression
}

// verdict says whether a type or category is allowed or denied. Compile rejects a value that is
// both, so at most one bit is set per value.
type verdict uint8

const (
	allowed verdict = 1 << iota
	denied
)

// Compile checks spec against the catalog and builds a Filter. It is called when a destination
// is saved, and again whenever a saved spec is loaded. It never runs at event time.
//
// These are errors:
//   - an event type that is not in cat
//   - a category that is not the feature_category of any type in cat
//   - a value given twice in one list, or a namespace key given twice
//   - the same type or category both allowed and denied
//   - a namespace key that is not positive
//   - a list longer than its limit (MaxEventTypeFilters, MaxCategoryFilters, MaxNamespaceFilters)
//   - an Expression that does not parse or type-check (CodeInvalidExpression), whose result is
//     not a bool (CodeNotBool), or that is longer than MaxExpressionLength or may cost more
//     than MaxExpressionCost (CodeTooCostly); the FilterError's Value is then the compiler's
//     message
//
// Compile reports every problem at once, joined with errors.Join. Each one is a *FilterError
// (see FilterErrors). Only the values are checked here. Whether a namespace exists, and whether
// the destination's owner may filter on it, is for the caller to check.
//
// Compile treats a nil catalog as an empty one. Matching on categories uses the event's category
// at match time (see Match), so a compiled Filter does not keep a reference to cat.
//
// A spec saved earlier can fail to compile later if its types or categories have since been
// removed from the catalog (for example, an operator dropped a file from --event-types-dir).
// The caller decides what then happens to the destination.
func Compile(spec FilterSpec, cat *event.Catalog) (*Filter, error) {
	var errs []error
	report := func(e *FilterError) {
		e.Value = shorten(e.Value)
		errs = append(errs, e)
	}

	typeExists := func(name string) bool { return cat.Lookup(name) != nil }
	var categories map[string]struct{}
	categoryExists := func(c string) bool {
		if categories == nil {
			categories = map[string]struct{}{}
			if cat != nil {
				for _, t := range cat.Types() {
					categories[t.FeatureCategory] = struct{}{}
				}
			}
		}
		_, ok := categories[c]
		return ok
	}

	allowTypes, allowOK := compileSet(FieldEventTypes, spec.EventTypes, MaxEventTypeFilters, CodeUnknownEventType, typeExists, report)
	denyTypes, denyOK := compileSet(FieldDenyEventTypes, spec.DenyEventTypes, MaxEventTypeFilters, CodeUnknownEventType, typeExists, report)
	if allowOK && denyOK {
		conflicts(FieldDenyEventTypes, spec.DenyEventTypes, allowTypes, typeExists, report)
	}
	allowCategories, allowOK := compileSet(FieldCategories, spec.Categories, MaxCategoryFilters, CodeUnknownCategory, categoryExists, report)
	denyCategories, denyOK := compileSet(FieldDenyCategories, spec.DenyCategories, MaxCategoryFilters, CodeUnknownCategory, categoryExists, report)
	if allowOK && denyOK {
		conflicts(FieldDenyCategories, spec.DenyCategories, allowCategories, categoryExists, report)
	}

	f := &Filter{
		types:      verdicts(allowTypes, denyTypes),
		categories: verdicts(allowCategories, denyCategories),
		restricted: len(allowTypes) > 0 || len(allowCategories) > 0,
	}

	if n := len(spec.Namespaces); n > MaxNamespaceFilters {
		report(&FilterError{Field: FieldNamespaces, Code: CodeTooMany, Value: strconv.Itoa(n), Limit: MaxNamespaceFilters})
	} else {
		seen := make(map[int64]bool, n) // key → reported as duplicate
		for _, ref := range spec.Namespaces {
			if ref.Key <= 0 {
				report(&FilterError{Field: FieldNamespaces, Code: CodeInvalidNamespace, Value: ref.String()})
				continue
			}
			if dup, ok := seen[ref.Key]; ok {
				if !dup {
					report(&FilterError{Field: FieldNamespaces, Code: CodeDuplicate, Value: ref.String()})
					seen[ref.Key] = true
				}
				continue
			}
			seen[ref.Key] = false
			if ref.Project {
				f.projects = append(f.projects, ref.Key)
			} else {
				f.groups = append(f.groups, ref.Key)
			}
		}
	}

	src := strings.TrimSpace(spec.Expression)
	if src != "" {
		x, ferr := compileExpr(src)
		if ferr != nil {
			errs = append(errs, ferr) // the compiler's message is kept whole
		}
		f.expr = x
	}

	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	slices.Sort(f.groups)
	slices.Sort(f.projects)
	f.spec = FilterSpec{
		EventTypes:     sortedKeys(allowTypes),
		DenyEventTypes: sortedKeys(denyTypes),
		Categories:     sortedKeys(allowCategories),
		DenyCategories: sortedKeys(denyCategories),
		Expression:     src,
	}
	for _, k := range f.groups {
		f.spec.Namespaces = append(f.spec.Namespaces, NamespaceRef{Key: k})
	}
	for _, k := range f.projects {
		f.spec.Namespaces = append(f.spec.Namespaces, NamespaceRef{Key: k, Project: true})
	}
	return f, nil
}

// compileSet checks one list of names and returns it as a set, or nil when it is empty. ok is
// false when the list is too long; its entries are then not checked.
func compileSet(field string, values []string, limit int, unknownCode string, exists func(string) bool, report func(*FilterError)) (set map[string]struct{}, ok bool) {
	if len(values) > limit {
		report(&FilterError{Field: field, Code: CodeTooMany, Value: strconv.Itoa(len(values)), Limit: limit})
		return nil, false
	}
	if len(values) == 0 {
		return nil, true
	}
	set = make(map[string]struct{}, len(values))
	reported := map[string]bool{} // duplicates already reported
	for _, v := range values {
		if _, dup := set[v]; dup {
			if !reported[v] {
				report(&FilterError{Field: field, Code: CodeDuplicate, Value: v})
				reported[v] = true
			}
			continue
		}
		set[v] = struct{}{}
		if !exists(v) {
			report(&FilterError{Field: field, Code: unknownCode, Value: v})
		}
	}
	return set, true
}

// conflicts reports, once each, the known values of deny that allow also holds.
func conflicts(field string, deny []string, allow map[string]struct{}, exists func(string) bool, report func(*FilterError)) {
	if len(allow) == 0 {
		return
	}
	done := map[string]bool{}
	for _, v := range deny {
		if _, ok := allow[v]; ok && !done[v] && exists(v) {
			report(&FilterError{Field: field, Code: CodeConflict, Value: v})
			done[v] = true
		}
	}
}

// verdicts merges an allow set and a deny set into one map, or nil when both are empty.
func verdicts(allow, deny map[string]struct{}) map[string]verdict {
	if len(allow)+len(deny) == 0 {
		return nil
	}
	m := make(map[string]verdict, len(allow)+len(deny))
	for v := range allow {
		m[v] |= allowed
	}
	for v := range deny {
		m[v] |= denied
	}
	return m
}

func sortedKeys(set map[string]struct{}) []string {
	if len(set) == 0 {
		return nil
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// shorten cuts s to maxValueLen bytes on a rune boundary and adds "…" when it cut.
func shorten(s string) string {
	if len(s) <= maxValueLen {
		return s
	}
	i := maxValueLen
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// EventInfo is what Match needs to know about one event. The delivery engine fills it once per
// event and then matches it against every destination.
type EventInfo struct {
	// EventType is the event's event_type.
	EventType string
	// Category is the feature_category of EventType in the catalog in force when the event is
	// matched (event.Catalog.Lookup(EventType).FeatureCategory). It is "" when the type is not
	// in the catalog. Because the category is read at match time, a category filter also
	// selects types added to the catalog after the filter was compiled.
	Category string
	// NamespaceChain holds the keys of the event's group or project and all its ancestors,
	// nearest first. It is empty for instance and user events.
	NamespaceChain []int64
	// ProjectKey is the key of the event's project when the entity is a project, else 0.
	ProjectKey int64
	// Vars is the whole event, for an expression filter (see NeedsEvent). nil is an event
	// whose fields are all empty.
	Vars *Vars
}

// Match reports whether the destination receives the event. It does not allocate, so it is
// cheap to call for every event and every destination.
//
// The rules are GitLab's, extended with category and deny filters:
//
//  1. A denied event type or a denied category never matches. Deny wins over allow.
//  2. EventTypes and Categories together form the allow set. When both are empty, every type is
//     allowed (GitLab: no filter means all events). Otherwise the event must have an allowed
//     type or an allowed category. The category is the event's own (EventInfo.Category), so a
//     category filter also selects types added to the catalog later.
//  3. Namespace filters: a group matches an event whose NamespaceChain contains the group's key,
//     so the group itself and all its descendants. A project matches only an event whose
//     ProjectKey equals the project's key. Several namespace filters combine with OR. With no
//     namespace filter, every event passes.
//  4. An event without a namespace (instance and user events: empty NamespaceChain and
//     ProjectKey 0) always passes the namespace filters, as in GitLab ("events without a
//     streamable namespace always pass", EE externally_streamable.rb
//     namespace_allowed_to_stream?). Type and category filters still apply to it.
//  5. The type and category rules (1-2) and the namespace rule (3-4) combine with AND.
//  6. Last, and only for an event that rules 1-5 take, the Expression (our extension) must
//     evaluate to true on ev.Vars. An evaluation error (a key missing from details, a value of
//     an unexpected type there, a cost over MaxExpressionCost) counts as false: the event is
//     not taken. Evaluating allocates; the other rules do not.
//
// A nil *Filter matches every event.
func (f *Filter) Match(ev EventInfo) bool {
	if f == nil {
		return true
	}
	var v verdict
	if len(f.types) > 0 {
		v = f.types[ev.EventType]
	}
	if len(f.categories) > 0 {
		v |= f.categories[ev.Category]
	}
	if v&denied != 0 || f.restricted && v&allowed == 0 {
		return false
	}
	if !f.matchNamespace(ev) {
		return false
	}
	return f.expr == nil || f.expr.match(ev.Vars)
}

func (f *Filter) matchNamespace(ev EventInfo) bool {
	if len(f.groups) == 0 && len(f.projects) == 0 {
		return true
	}
	if len(ev.NamespaceChain) == 0 && ev.ProjectKey == 0 {
		return true // no streamable namespace
	}
	if ev.ProjectKey != 0 {
		for _, p := range f.projects {
			if p == ev.ProjectKey {
				return true
			}
		}
	}
	for _, g := range f.groups {
		for _, k := range ev.NamespaceChain {
			if k == g {
				return true
			}
		}
	}
	return false
}

// Spec returns the normalized spec, ready to display: each list sorted (namespaces with groups
// first, then projects, each by key), and empty lists nil. It returns a fresh copy each time.
// Compiling the result again gives an equal Filter.
func (f *Filter) Spec() FilterSpec {
	if f == nil {
		return FilterSpec{}
	}
	return FilterSpec{
		EventTypes:     slices.Clone(f.spec.EventTypes),
		DenyEventTypes: slices.Clone(f.spec.DenyEventTypes),
		Categories:     slices.Clone(f.spec.Categories),
		DenyCategories: slices.Clone(f.spec.DenyCategories),
		Namespaces:     slices.Clone(f.spec.Namespaces),
		Expression:     f.spec.Expression,
	}
}

// NeedsNamespace reports whether the filter has namespace filters, so that Match needs the
// event's NamespaceChain and ProjectKey.
func (f *Filter) NeedsNamespace() bool { return f != nil && (len(f.groups) > 0 || len(f.projects) > 0) }

// NeedsEvent reports whether the filter has an expression, so that Match needs the whole
// event in EventInfo.Vars.
func (f *Filter) NeedsEvent() bool { return f != nil && f.expr != nil }

// IsEmpty reports whether the filter has no filters of any kind, so it matches every event.
// GitLab's UI shows a "filtered" badge when it does not.
func (f *Filter) IsEmpty() bool {
	return f == nil || len(f.types) == 0 && len(f.categories) == 0 &&
		len(f.groups) == 0 && len(f.projects) == 0 && f.expr == nil
}

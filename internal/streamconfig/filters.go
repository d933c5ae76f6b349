package streamconfig

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/store"
)

// FilterKind says which filter list a change is about.
type FilterKind int

// The filter lists.
const (
	AllowTypes FilterKind = iota
	DenyTypes
	AllowCategories
	DenyCategories
)

func (k FilterKind) list(d *Destination) *[]string {
	switch k {
	case DenyTypes:
		return &d.DenyEventTypes
	case AllowCategories:
		return &d.Categories
	case DenyCategories:
		return &d.DenyCategories
	}
	return &d.EventTypes
}

// checkFilters compiles d's filters against the catalog and applies MaxFilters.
func (s *Service) checkFilters(d Destination) error {
	n := len(d.EventTypes) + len(d.DenyEventTypes) + len(d.Categories) + len(d.DenyCategories)
	if n > s.maxFilters() {
		return inputErr("Maximum number of event type and category filters (%d) exceeded: %d given", s.maxFilters(), n)
	}
	_, err := destination.Compile(filterSpec(d), s.Catalog)
	return inputErrs(err)
}

// filterSpec is d's filters as the destination package takes them.
func filterSpec(d Destination) destination.FilterSpec {
	spec := destination.FilterSpec{EventTypes: d.EventTypes, DenyEventTypes: d.DenyEventTypes, Categories: d.Categories, DenyCategories: d.DenyCategories, Expression: d.FilterExpression}
	for _, n := range d.Namespaces {
		spec.Namespaces = append(spec.Namespaces, destination.NamespaceRef{Key: n.Namespace.Key, Project: n.Namespace.Kind == store.KindProject})
	}
	return spec
}

// AddFilters adds values to one filter list (values already there are kept once) and returns
// the destination.
func (s *Service) AddFilters(ctx context.Context, a Actor, ref Ref, kind FilterKind, values []string) (Destination, error) {
	return s.mutate(ctx, a, ref, func(cur Destination) (change, error) {
		var ch change
		if len(values) == 0 { // checked once the actor is known to be allowed, as every input
			return ch, inputErr("eventTypeFilters must not be empty")
		}
		list := kind.list(&cur)
		var added []string
		for _, v := range values {
			if !slices.Contains(*list, v) && !slices.Contains(added, v) {
				added = append(added, v)
			}
		}
		*list = append(slices.Clone(*list), added...)
		if err := s.checkFilters(cur); err != nil {
			return ch, err
		}
		setList(&ch.up, kind, *list)
		if len(added) > 0 {
			ch.kind, ch.message = auditFiltersCreated, fmt.Sprintf("Created %s: %s", kind.noun(), strings.Join(added, ", "))
		}
		return ch, nil
	})
}

// RemoveFilters removes values from one filter list. Every value must be in it.
func (s *Service) RemoveFilters(ctx context.Context, a Actor, ref Ref, kind FilterKind, values []string) (Destination, error) {
	return s.mutate(ctx, a, ref, func(cur Destination) (change, error) {
		var ch change
		if len(values) == 0 {
			return ch, inputErr("eventTypeFilters must not be empty")
		}
		list := kind.list(&cur)
		var missing []string
		for _, v := range values {
			if !slices.Contains(*list, v) {
				missing = append(missing, v)
			}
		}
		if len(missing) > 0 {
			return ch, inputErr("Couldn't find event type filters where audit event type(s): %s", strings.Join(missing, ", "))
		}
		kept := slices.DeleteFunc(slices.Clone(*list), func(v string) bool { return slices.Contains(values, v) })
		setList(&ch.up, kind, kept)
		ch.kind, ch.message = auditFiltersDeleted, fmt.Sprintf("Deleted %s: %s", kind.noun(), strings.Join(values, ", "))
		return ch, nil
	})
}

// FilterLists replaces the lists that are not nil.
type FilterLists struct {
	EventTypes, DenyEventTypes, Categories, DenyCategories *[]string
}

// SetFilters replaces whole filter lists (the auditstream extension) and returns the
// destination.
func (s *Service) SetFilters(ctx context.Context, a Actor, ref Ref, fl FilterLists) (Destination, error) {
	return s.mutate(ctx, a, ref, func(cur Destination) (change, error) {
		var ch change
		var notes []string
		for kind, l := range map[FilterKind]*[]string{AllowTypes: fl.EventTypes, DenyTypes: fl.DenyEventTypes, AllowCategories: fl.Categories, DenyCategories: fl.DenyCategories} {
			if l == nil {
				continue
			}
			*kind.list(&cur) = *l
			setList(&ch.up, kind, *l)
			notes = append(notes, fmt.Sprintf("%s set to [%s]", kind.noun(), strings.Join(*l, ", ")))
		}
		if err := s.checkFilters(cur); err != nil {
			return ch, err
		}
		slices.Sort(notes)
		ch.kind, ch.message, ch.notes = auditUpdate, fmt.Sprintf("Updated the filters of streaming destination %q", cur.Name), notes
		return ch, nil
	})
}

// SetFilterExpression sets the destination's CEL expression filter (the auditstream extension;
// see destination.FilterSpec.Expression); "" or only white space clears it. The expression is
// trimmed, type-checked and cost-checked first: one that does not compile is refused with an
// *InputError whose Codes hold destination's stable code (CodeInvalidExpression, CodeNotBool,
// CodeTooCostly), and nothing changes. The change is recorded as an update of the destination.
func (s *Service) SetFilterExpression(ctx context.Context, a Actor, ref Ref, expr string) (Destination, error) {
	return s.mutate(ctx, a, ref, func(cur Destination) (change, error) {
		var ch change
		expr = strings.TrimSpace(expr)
		old := cur.FilterExpression
		cur.FilterExpression = expr
		if err := s.checkFilters(cur); err != nil {
			return ch, err
		}
		ch.up.FilterExpression = &expr
		if expr == old {
			return ch, nil // nothing to record
		}
		note := fmt.Sprintf("filter expression set to %q", expr)
		if expr == "" {
			note = "filter expression cleared"
		}
		ch.kind, ch.message, ch.notes = auditUpdate, fmt.Sprintf("Updated the filters of streaming destination %q", cur.Name), []string{note}
		return ch, nil
	})
}

// PreviewLimit is how many of the latest events PreviewExpression tries an expression on.
const PreviewLimit = 100

// Preview is what an expression makes of the latest events: which of them it takes.
type Preview struct {
	// Examined is how many events it was tried on: the latest PreviewLimit, or fewer.
	Examined int
	// Matched holds the ids of the events it takes, newest first.
	Matched []int64
}

// previewScan bounds how many stored events a group's preview reads to find its latest
// PreviewLimit: the store lists events by entity, not by group tree, so the group's are picked
// out of the latest events of every group.
const previewScan = 20 * PreviewLimit

// PreviewExpression tries an expression on the latest events of owner that the actor may read,
// changing nothing: for the instance (administrators) the latest PreviewLimit stored events;
// for a top-level group (its owners and administrators) the latest PreviewLimit events whose
// entity_path is the group or lies below it, among the latest previewScan events stored. An
// expression that does not compile is an *InputError with its code, as SetFilterExpression
// gives. An empty expression takes every event.
func (s *Service) PreviewExpression(ctx context.Context, a Actor, o Owner, expr string) (Preview, error) {
	if err := s.authorize(ctx, a, o, false); err != nil {
		return Preview{}, err
	}
	f, err := destination.Compile(destination.FilterSpec{Expression: expr}, s.Catalog)
	if err != nil {
		return Preview{}, inputErrs(err)
	}
	var p Preview
	if s.Events == nil {
		return p, nil
	}
	inScope := func(store.EventRecord) bool { return true }
	limit := PreviewLimit
	if o.Scope == store.ScopeGroup {
		var path struct {
			EntityPath string `json:"entity_path"`
		}
		prefix := o.Group.FullPath + "/"
		inScope = func(rec store.EventRecord) bool {
			path.EntityPath = ""
			if json.Unmarshal(rec.Data, &path) != nil {
				return false
			}
			return path.EntityPath == o.Group.FullPath || strings.HasPrefix(path.EntityPath, prefix)
		}
		limit = previewScan
	}
	var after int64
	for read := 0; read < limit && p.Examined < PreviewLimit; {
		recs, err := s.Events.EventList(ctx, store.EventListParams{AfterID: after, Limit: min(PreviewLimit, limit-read)})
		if err != nil {
			return Preview{}, storeErr(err)
		}
		for _, rec := range recs {
			if p.Examined == PreviewLimit {
				break
			}
			if !inScope(rec) {
				continue
			}
			p.Examined++
			if f.Match(destination.EventInfo{EventType: rec.EventType, Vars: destination.NewVars(rec.Data)}) {
				p.Matched = append(p.Matched, rec.ID)
			}
		}
		if len(recs) < PreviewLimit {
			break
		}
		read += len(recs)
		after = recs[len(recs)-1].ID
	}
	return p, nil
}

func (k FilterKind) noun() string {
	switch k {
	case DenyTypes:
		return "denied event type filters"
	case AllowCategories:
		return "event category filters"
	case DenyCategories:
		return "denied event category filters"
	}
	return "event type filters"
}

func setList(up *store.DestinationUpdateParams, kind FilterKind, l []string) {
	l = slices.Clone(l)
	switch kind {
	case AllowTypes:
		up.EventTypes = &l
	case DenyTypes:
		up.DenyEventTypes = &l
	case AllowCategories:
		up.Categories = &l
	case DenyCategories:
		up.DenyCategories = &l
	}
}

// NamespaceKindAny, with store's kinds, says what a namespace filter's path may name.
const NamespaceKindAny store.NamespaceKind = ""

// AddNamespaceFilter limits a destination to the group or project at path: for a group's
// destination a subgroup or project of that group, for the instance any. single is the legacy
// API's rule of one filter per destination.
func (s *Service) AddNamespaceFilter(ctx context.Context, a Actor, ref Ref, path string, kind store.NamespaceKind, single bool) (Destination, NamespaceFilter, error) {
	var ns store.Namespace
	d, err := s.mutate(ctx, a, ref, func(cur Destination) (change, error) {
		var ch change
		if path == "" {
			return ch, inputErr("namespacePath is required")
		}
		var err error
		ns, err = s.findNamespace(ctx, path, kind)
		if cur.Owner.Scope == store.ScopeGroup && (errors.Is(err, ErrNotFound) || err == nil && ns.TopKey != cur.Owner.Group.Key) {
			// The same answer whether the path exists elsewhere or not: an owner of one group
			// learns nothing about another.
			return ch, inputErr("no group or project %q in group %q", path, cur.Owner.Group.FullPath)
		}
		if errors.Is(err, ErrNotFound) {
			return ch, inputErr("no group or project %q", path)
		}
		if err != nil {
			return ch, err
		}
		if single && len(cur.Namespaces) > 0 {
			return ch, inputErr("This destination already has a namespace filter")
		}
		for _, n := range cur.Namespaces {
			if n.Namespace.Key == ns.Key {
				return ch, inputErr("Namespace filter for %q already exists", ns.FullPath)
			}
		}
		if len(cur.Namespaces) >= destination.MaxNamespaceFilters {
			return ch, inputErr("Maximum number of namespace filters (%d) exceeded", destination.MaxNamespaceFilters)
		}
		list := namespaceList(cur.Namespaces)
		list = append(list, store.DestinationNamespace{Key: ns.Key, Project: ns.Kind == store.KindProject})
		ch.up.Namespaces = &list
		ch.kind, ch.message = auditNamespaceCreated, fmt.Sprintf("Created namespace filter for %q", ns.FullPath)
		return ch, nil
	})
	if err != nil {
		return Destination{}, NamespaceFilter{}, err
	}
	for _, n := range d.Namespaces {
		if n.Namespace.Key == ns.Key {
			return d, n, nil
		}
	}
	return Destination{}, NamespaceFilter{}, fmt.Errorf("%w: the new namespace filter is missing", ErrUnavailable)
}

func (s *Service) findNamespace(ctx context.Context, path string, kind store.NamespaceKind) (store.Namespace, error) {
	kinds := []store.NamespaceKind{store.KindGroup, store.KindProject}
	if kind != NamespaceKindAny {
		kinds = []store.NamespaceKind{kind}
	}
	for _, k := range kinds {
		ns, err := s.Namespaces.Find(ctx, k, path)
		if err == nil {
			return ns, nil
		}
		if err = storeErr(err); !errors.Is(err, ErrNotFound) {
			return store.Namespace{}, err
		}
	}
	return store.Namespace{}, ErrNotFound
}

func namespaceList(ns []NamespaceFilter) []store.DestinationNamespace {
	out := make([]store.DestinationNamespace, 0, len(ns)+1)
	for _, n := range ns {
		out = append(out, store.DestinationNamespace{ID: n.ID, Key: n.Namespace.Key, Project: n.Namespace.Kind == store.KindProject})
	}
	return out
}

// DeleteNamespaceFilter removes the namespace filter with id filterID.
func (s *Service) DeleteNamespaceFilter(ctx context.Context, a Actor, ref Ref, filterID int64) error {
	d, err := s.Store.DestinationByNamespaceFilter(ctx, filterID)
	if err != nil {
		return storeErr(err)
	}
	ref.ID = d.ID
	_, err = s.mutate(ctx, a, ref, func(cur Destination) (change, error) {
		var ch change
		i := slices.IndexFunc(cur.Namespaces, func(n NamespaceFilter) bool { return n.ID == filterID })
		if i < 0 {
			return ch, ErrNotFound // deleted meanwhile
		}
		path := cur.Namespaces[i].Namespace.FullPath
		list := namespaceList(slices.Delete(slices.Clone(cur.Namespaces), i, i+1))
		ch.up.Namespaces = &list
		ch.kind, ch.message = auditNamespaceDeleted, fmt.Sprintf("Deleted namespace filter for %q", path)
		return ch, nil
	})
	return err
}

// AddHeader adds a custom header to an http destination (legacy API).
func (s *Service) AddHeader(ctx context.Context, a Actor, ref Ref, key, value string, active bool) (Header, error) {
	d, err := s.mutate(ctx, a, ref, func(cur Destination) (change, error) {
		hs := append(slices.Clone(cur.Headers), Header{Name: key, Value: value, Active: active})
		return s.headerChange(cur, hs, auditHeaderCreated, fmt.Sprintf("Created custom HTTP header with key %s", key))
	})
	if err != nil {
		return Header{}, err
	}
	return findHeader(d, func(h Header) bool { return h.Name == key })
}

// UpdateHeader changes a custom header (legacy API); nil fields stay.
func (s *Service) UpdateHeader(ctx context.Context, a Actor, ref Ref, headerID int64, key, value *string, active *bool) (Header, error) {
	d, err := s.Store.DestinationByHeader(ctx, headerID)
	if err != nil {
		return Header{}, storeErr(err)
	}
	ref.ID = d.ID
	out, err := s.mutate(ctx, a, ref, func(cur Destination) (change, error) {
		hs := slices.Clone(cur.Headers)
		i := slices.IndexFunc(hs, func(h Header) bool { return h.ID == headerID })
		if i < 0 {
			return change{}, ErrNotFound
		}
		var notes []string
		if key != nil && *key != hs[i].Name {
			notes = append(notes, fmt.Sprintf("key from %s to %s", hs[i].Name, *key))
			hs[i].Name = *key
		}
		if value != nil && *value != hs[i].Value {
			notes = append(notes, "value changed")
			hs[i].Value = *value
		}
		if active != nil && *active != hs[i].Active {
			notes = append(notes, fmt.Sprintf("active from %t to %t", hs[i].Active, *active))
			hs[i].Active = *active
		}
		ch, err := s.headerChange(cur, hs, auditHeaderUpdated, fmt.Sprintf("Updated custom HTTP header %s", cur.Headers[i].Name))
		ch.notes = notes
		return ch, err
	})
	if err != nil {
		return Header{}, err
	}
	return findHeader(out, func(h Header) bool { return h.ID == headerID })
}

// DeleteHeader removes a custom header (legacy API).
func (s *Service) DeleteHeader(ctx context.Context, a Actor, ref Ref, headerID int64) error {
	d, err := s.Store.DestinationByHeader(ctx, headerID)
	if err != nil {
		return storeErr(err)
	}
	ref.ID = d.ID
	_, err = s.mutate(ctx, a, ref, func(cur Destination) (change, error) {
		i := slices.IndexFunc(cur.Headers, func(h Header) bool { return h.ID == headerID })
		if i < 0 {
			return change{}, ErrNotFound
		}
		name := cur.Headers[i].Name
		return s.headerChange(cur, slices.Delete(slices.Clone(cur.Headers), i, i+1), auditHeaderDeleted, "Destroyed custom HTTP header with key "+name)
	})
	return err
}

// headerChange validates a new header list through the http config rules, so that a header
// added by the legacy API is one the unified API would accept too.
func (s *Service) headerChange(cur Destination, hs []Header, kind auditKind, msg string) (change, error) {
	var ch change
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(cur.Config, &obj); err != nil {
		return ch, fmt.Errorf("stored config: %w", err)
	}
	headers := map[string]any{}
	for _, h := range hs {
		if _, dup := headers[h.Name]; dup {
			return ch, inputErr("Key has already been taken")
		}
		headers[h.Name] = map[string]any{"value": h.Value, "active": h.Active}
	}
	delete(obj, "headers")
	if len(headers) > 0 {
		b, _ := json.Marshal(headers)
		obj["headers"] = b
	}
	raw, _ := json.Marshal(obj)
	cfg, err := s.Types.ParseConfig(cur.Category, raw)
	if err != nil {
		return ch, inputErrs(err)
	}
	// Keep the ids: by position in hs, which ParseConfig may have reordered by name.
	sealed := make([]store.DestinationHeader, 0, len(cfg.Headers))
	for _, h := range cfg.Headers {
		i := slices.IndexFunc(hs, func(x Header) bool { return x.Name == h.Name })
		v, err := s.seal(h.Value, aadHeaderValue)
		if err != nil {
			return ch, err
		}
		sealed = append(sealed, store.DestinationHeader{ID: hs[i].ID, Name: h.Name, Value: v, Active: h.Active})
	}
	ch.up.Config, ch.up.Headers = &cfg.JSON, &sealed
	ch.kind, ch.message = kind, msg
	return ch, nil
}

func findHeader(d Destination, match func(Header) bool) (Header, error) {
	for _, h := range d.Headers {
		if match(h) {
			return h, nil
		}
	}
	return Header{}, fmt.Errorf("%w: the header is missing after the change", ErrUnavailable)
}

// sameFields reports whether two config objects have equal values at every key.
func sameFields(a, b []byte, keys ...string) bool {
	var x, y map[string]json.RawMessage
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	for _, k := range keys {
		if string(x[k]) != string(y[k]) {
			return false
		}
	}
	return true
}

// patchConfig sets single string fields of a config object.
func patchConfig(cur []byte, patch map[string]*string) ([]byte, error) {
	var obj map[string]any
	if err := json.Unmarshal(cur, &obj); err != nil {
		return nil, fmt.Errorf("stored config: %w", err)
	}
	for k, v := range patch {
		if v != nil {
			obj[k] = *v
		}
	}
	return json.Marshal(obj)
}

package destination_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/event"
)

// Event types and categories from the embedded catalog used throughout.
const (
	tGit          = "repository_git_operation" // source_code_management
	tApproval     = "approval_rule_created"    // source_code_management
	tGroupCreated = "group_created"            // groups_and_projects
	tProjCreated  = "project_created"          // groups_and_projects
	tUserCreated  = "user_created"             // user_management
	tDestCreated  = "created_group_audit_event_streaming_destination"

	cSCM    = "source_code_management"
	cGP     = "groups_and_projects"
	cUsers  = "user_management"
	cAudit  = "audit_events"
	tNotCat = "no_such_event_type"
)

// The namespace tree used by the tests (keys):
//
//	1 top group
//	├── 2 subgroup
//	│   └── 3 sub-subgroup
//	│       └── 10 project
//	├── 4 sibling subgroup
//	│   └── 11 project
//	└── 12 project
//	9 other top group
//	└── 13 project
const (
	gTop, gSub, gSubSub, gSibling, gOther = 1, 2, 3, 4, 9
	pDeep, pSibling, pTop, pOther         = 10, 11, 12, 13
)

var chains = map[int64][]int64{
	gTop: {gTop}, gSub: {gSub, gTop}, gSubSub: {gSubSub, gSub, gTop}, gSibling: {gSibling, gTop},
	gOther: {gOther}, pDeep: {pDeep, gSubSub, gSub, gTop}, pSibling: {pSibling, gSibling, gTop},
	pTop: {pTop, gTop}, pOther: {pOther, gOther},
}

var defaultCatalog = sync.OnceValues(func() (*event.Catalog, error) { return event.Load("") })

func setup(t testing.TB) *event.Catalog {
	t.Helper()
	cat, err := defaultCatalog()
	require.NoError(t, err)
	for typ, want := range map[string]string{tGit: cSCM, tApproval: cSCM, tGroupCreated: cGP, tProjCreated: cGP, tUserCreated: cUsers, tDestCreated: cAudit} {
		require.NotNil(t, cat.Lookup(typ), typ)
		require.Equal(t, want, cat.Lookup(typ).FeatureCategory, typ)
	}
	require.Nil(t, cat.Lookup(tNotCat))
	return cat
}

func compile(t testing.TB, cat *event.Catalog, spec destination.FilterSpec) *destination.Filter {
	t.Helper()
	f, err := destination.Compile(spec, cat)
	require.NoError(t, err)
	require.NotNil(t, f)
	return f
}

// category is the event type's category in cat, "" when it is not there.
func category(cat *event.Catalog, typ string) string {
	if ty := cat.Lookup(typ); ty != nil {
		return ty.FeatureCategory
	}
	return ""
}

// at is an event of type typ on the namespace key (group or project); key 0 is an instance or
// user event.
func at(cat *event.Catalog, typ string, key int64) destination.EventInfo {
	ev := destination.EventInfo{EventType: typ, Category: category(cat, typ), NamespaceChain: chains[key]}
	if key >= 10 {
		ev.ProjectKey = key
	}
	return ev
}

func group(k int64) destination.NamespaceRef {
	return destination.NamespaceRef{Key: k}
}

func project(k int64) destination.NamespaceRef {
	return destination.NamespaceRef{Key: k, Project: true}
}

func TestMatch(t *testing.T) {
	t.Parallel()
	cat := setup(t)
	type spec = destination.FilterSpec
	ns := func(refs ...destination.NamespaceRef) []destination.NamespaceRef { return refs }
	tests := []struct {
		name string
		spec spec
		ev   destination.EventInfo
		want bool
	}{
		// No filters: everything.
		{"empty/project event", spec{}, at(cat, tGit, pDeep), true},
		{"empty/group event", spec{}, at(cat, tGroupCreated, gSub), true},
		{"empty/instance event", spec{}, at(cat, tDestCreated, 0), true},
		{"empty/user event", spec{}, at(cat, tUserCreated, 0), true},
		{"empty/type not in catalog", spec{}, at(cat, tNotCat, pDeep), true},
		{"empty/zero event", spec{}, destination.EventInfo{}, true},

		// Allow event types only.
		{"allow types/listed", spec{EventTypes: []string{tGit}}, at(cat, tGit, pDeep), true},
		{"allow types/second listed", spec{EventTypes: []string{tGit, tUserCreated}}, at(cat, tUserCreated, 0), true},
		{"allow types/not listed, same category", spec{EventTypes: []string{tGit}}, at(cat, tApproval, pDeep), false},
		{"allow types/not listed", spec{EventTypes: []string{tGit}}, at(cat, tGroupCreated, gSub), false},
		{"allow types/type not in catalog", spec{EventTypes: []string{tGit}}, at(cat, tNotCat, pDeep), false},

		// Allow categories only.
		{"allow categories/type in category", spec{Categories: []string{cSCM}}, at(cat, tGit, pDeep), true},
		{"allow categories/other type in category", spec{Categories: []string{cSCM}}, at(cat, tApproval, pDeep), true},
		{"allow categories/second category", spec{Categories: []string{cSCM, cUsers}}, at(cat, tUserCreated, 0), true},
		{"allow categories/other category", spec{Categories: []string{cSCM}}, at(cat, tGroupCreated, gSub), false},
		{"allow categories/no category", spec{Categories: []string{cSCM}}, destination.EventInfo{EventType: tNotCat}, false},

		// Both allow kinds: their union.
		{"allow both/by type", spec{EventTypes: []string{tUserCreated}, Categories: []string{cSCM}}, at(cat, tUserCreated, 0), true},
		{"allow both/by category", spec{EventTypes: []string{tUserCreated}, Categories: []string{cSCM}}, at(cat, tApproval, pDeep), true},
		{"allow both/by both", spec{EventTypes: []string{tGit}, Categories: []string{cSCM}}, at(cat, tGit, pDeep), true},
		{"allow both/neither", spec{EventTypes: []string{tUserCreated}, Categories: []string{cSCM}}, at(cat, tGroupCreated, gSub), false},

		// Deny event types.
		{"deny type/denied", spec{DenyEventTypes: []string{tGit}}, at(cat, tGit, pDeep), false},
		{"deny type/other type, same category", spec{DenyEventTypes: []string{tGit}}, at(cat, tApproval, pDeep), true},
		{"deny type/other type", spec{DenyEventTypes: []string{tGit}}, at(cat, tUserCreated, 0), true},
		{"deny type/instance event denied", spec{DenyEventTypes: []string{tDestCreated}}, at(cat, tDestCreated, 0), false},
		{"deny type/beside allowed types", spec{EventTypes: []string{tApproval}, DenyEventTypes: []string{tGit}}, at(cat, tApproval, pDeep), true},
		{"deny type/beside allowed types, denied", spec{EventTypes: []string{tApproval}, DenyEventTypes: []string{tGit}}, at(cat, tGit, pDeep), false},
		{"deny type/wins over allow category", spec{Categories: []string{cSCM}, DenyEventTypes: []string{tGit}}, at(cat, tGit, pDeep), false},
		{"deny type/rest of allowed category passes", spec{Categories: []string{cSCM}, DenyEventTypes: []string{tGit}}, at(cat, tApproval, pDeep), true},

		// Deny categories.
		{"deny category/denied", spec{DenyCategories: []string{cSCM}}, at(cat, tGit, pDeep), false},
		{"deny category/every type in it", spec{DenyCategories: []string{cSCM}}, at(cat, tApproval, pDeep), false},
		{"deny category/other category", spec{DenyCategories: []string{cSCM}}, at(cat, tGroupCreated, gSub), true},
		{"deny category/type not in catalog", spec{DenyCategories: []string{cSCM}}, at(cat, tNotCat, pDeep), true},
		{"deny category/wins over allow type", spec{EventTypes: []string{tGit}, DenyCategories: []string{cSCM}}, at(cat, tGit, pDeep), false},
		{"deny category/beside allowed category", spec{Categories: []string{cGP}, DenyCategories: []string{cSCM}}, at(cat, tGroupCreated, gSub), true},
		{"deny category/beside allowed category, denied", spec{Categories: []string{cGP}, DenyCategories: []string{cSCM}}, at(cat, tGit, pDeep), false},
		{"deny both kinds/type", spec{DenyEventTypes: []string{tUserCreated}, DenyCategories: []string{cSCM}}, at(cat, tUserCreated, 0), false},
		{"deny both kinds/category", spec{DenyEventTypes: []string{tUserCreated}, DenyCategories: []string{cSCM}}, at(cat, tApproval, pDeep), false},
		{"deny both kinds/neither", spec{DenyEventTypes: []string{tUserCreated}, DenyCategories: []string{cSCM}}, at(cat, tGroupCreated, gSub), true},

		// A group filter: the group and all its descendants.
		{"group/itself", spec{Namespaces: ns(group(gSub))}, at(cat, tGroupCreated, gSub), true},
		{"group/descendant group", spec{Namespaces: ns(group(gSub))}, at(cat, tGroupCreated, gSubSub), true},
		{"group/project in descendant", spec{Namespaces: ns(group(gSub))}, at(cat, tGit, pDeep), true},
		{"group/project directly in it", spec{Namespaces: ns(group(gTop))}, at(cat, tGit, pTop), true},
		{"group/top matches whole tree", spec{Namespaces: ns(group(gTop))}, at(cat, tGit, pSibling), true},
		{"group/parent", spec{Namespaces: ns(group(gSub))}, at(cat, tGroupCreated, gTop), false},
		{"group/sibling", spec{Namespaces: ns(group(gSub))}, at(cat, tGroupCreated, gSibling), false},
		{"group/project in sibling", spec{Namespaces: ns(group(gSub))}, at(cat, tGit, pSibling), false},
		{"group/project in parent", spec{Namespaces: ns(group(gSub))}, at(cat, tGit, pTop), false},
		{"group/other tree", spec{Namespaces: ns(group(gSub))}, at(cat, tGit, pOther), false},

		// A project filter: that project exactly.
		{"project/itself", spec{Namespaces: ns(project(pDeep))}, at(cat, tGit, pDeep), true},
		{"project/its group", spec{Namespaces: ns(project(pDeep))}, at(cat, tGroupCreated, gSubSub), false},
		{"project/its top group", spec{Namespaces: ns(project(pDeep))}, at(cat, tGroupCreated, gTop), false},
		{"project/another project in the tree", spec{Namespaces: ns(project(pDeep))}, at(cat, tGit, pTop), false},
		{"project/ref never matches through the chain", spec{Namespaces: ns(project(gSubSub))}, at(cat, tGit, pDeep), false},
		{"project/key without chain", spec{Namespaces: ns(project(pDeep))}, destination.EventInfo{EventType: tGit, Category: cSCM, ProjectKey: pDeep}, true},
		{"group/project key without chain", spec{Namespaces: ns(group(gSubSub))}, destination.EventInfo{EventType: tGit, Category: cSCM, ProjectKey: pDeep}, false},

		// Several namespace filters: OR.
		{"or/first", spec{Namespaces: ns(group(gSibling), project(pDeep))}, at(cat, tGit, pSibling), true},
		{"or/second", spec{Namespaces: ns(group(gSibling), project(pDeep))}, at(cat, tGit, pDeep), true},
		{"or/group itself", spec{Namespaces: ns(group(gSibling), project(pDeep))}, at(cat, tGroupCreated, gSibling), true},
		{"or/neither", spec{Namespaces: ns(group(gSibling), project(pDeep))}, at(cat, tGroupCreated, gSubSub), false},
		{"or/neither, project", spec{Namespaces: ns(group(gSibling), project(pDeep))}, at(cat, tGit, pTop), false},
		{"or/two groups, first", spec{Namespaces: ns(group(gSubSub), group(gOther))}, at(cat, tGit, pDeep), true},
		{"or/two groups, second", spec{Namespaces: ns(group(gSubSub), group(gOther))}, at(cat, tGit, pOther), true},
		{"or/two groups, neither", spec{Namespaces: ns(group(gSubSub), group(gOther))}, at(cat, tGit, pSibling), false},
		{"or/five filters, last", spec{Namespaces: ns(project(pTop), project(pSibling), group(gOther), group(gSubSub), project(pDeep))}, at(cat, tGit, pDeep), true},

		// Instance and user events pass namespace filters (GitLab: no streamable namespace).
		{"no namespace/instance, group filter", spec{Namespaces: ns(group(gSub))}, at(cat, tDestCreated, 0), true},
		{"no namespace/user, project filter", spec{Namespaces: ns(project(pDeep))}, at(cat, tUserCreated, 0), true},
		{"no namespace/instance, no namespace filter", spec{}, at(cat, tDestCreated, 0), true},
		{"no namespace/type filters still apply", spec{EventTypes: []string{tGit}, Namespaces: ns(group(gSub))}, at(cat, tUserCreated, 0), false},
		{"no namespace/type allowed", spec{EventTypes: []string{tUserCreated}, Namespaces: ns(group(gSub))}, at(cat, tUserCreated, 0), true},
		{"no namespace/deny still applies", spec{DenyEventTypes: []string{tUserCreated}, Namespaces: ns(group(gSub))}, at(cat, tUserCreated, 0), false},
		{"no namespace/deny category still applies", spec{DenyCategories: []string{cUsers}, Namespaces: ns(project(pDeep))}, at(cat, tUserCreated, 0), false},

		// Type or category AND namespace.
		{"and/type in, namespace in", spec{EventTypes: []string{tGit}, Namespaces: ns(group(gSub))}, at(cat, tGit, pDeep), true},
		{"and/type in, namespace out", spec{EventTypes: []string{tGit}, Namespaces: ns(group(gSub))}, at(cat, tGit, pSibling), false},
		{"and/type out, namespace in", spec{EventTypes: []string{tGit}, Namespaces: ns(group(gSub))}, at(cat, tApproval, pDeep), false},
		{"and/type out, namespace out", spec{EventTypes: []string{tGit}, Namespaces: ns(group(gSub))}, at(cat, tApproval, pSibling), false},
		{"and/category in, project in", spec{Categories: []string{cSCM}, Namespaces: ns(project(pTop))}, at(cat, tApproval, pTop), true},
		{"and/category in, project out", spec{Categories: []string{cSCM}, Namespaces: ns(project(pTop))}, at(cat, tApproval, pDeep), false},
		{"and/category out, project in", spec{Categories: []string{cSCM}, Namespaces: ns(project(pTop))}, at(cat, tProjCreated, pTop), false},
		{"and/denied type inside namespace", spec{DenyEventTypes: []string{tGit}, Namespaces: ns(group(gTop))}, at(cat, tGit, pDeep), false},
		{"and/denied category inside namespace", spec{DenyCategories: []string{cSCM}, Namespaces: ns(group(gTop))}, at(cat, tApproval, pDeep), false},
		{"and/not denied inside namespace", spec{DenyEventTypes: []string{tGit}, Namespaces: ns(group(gTop))}, at(cat, tApproval, pDeep), true},
		{"and/not denied outside namespace", spec{DenyEventTypes: []string{tGit}, Namespaces: ns(group(gTop))}, at(cat, tApproval, pOther), false},
		{"and/every kind, all pass", spec{
			EventTypes: []string{tGroupCreated}, Categories: []string{cSCM},
			DenyEventTypes: []string{tApproval}, DenyCategories: []string{cUsers},
			Namespaces: ns(group(gSubSub), project(pTop)),
		}, at(cat, tGit, pTop), true},
		{"and/every kind, denied", spec{
			EventTypes: []string{tGroupCreated}, Categories: []string{cSCM},
			DenyEventTypes: []string{tApproval}, DenyCategories: []string{cUsers},
			Namespaces: ns(group(gSubSub), project(pTop)),
		}, at(cat, tApproval, pTop), false},
		{"and/every kind, namespace out", spec{
			EventTypes: []string{tGroupCreated}, Categories: []string{cSCM},
			DenyEventTypes: []string{tApproval}, DenyCategories: []string{cUsers},
			Namespaces: ns(group(gSubSub), project(pTop)),
		}, at(cat, tGroupCreated, gSub), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := compile(t, cat, tt.spec)
			require.Equal(t, tt.want, f.Match(tt.ev))
			require.Equal(t, tt.want, reference(tt.spec, tt.ev), "the reference agrees with the table")
		})
	}
}

// reference is Match written as the rules read, with linear scans over the spec.
func reference(spec destination.FilterSpec, ev destination.EventInfo) bool {
	if slices.Contains(spec.DenyEventTypes, ev.EventType) || slices.Contains(spec.DenyCategories, ev.Category) {
		return false
	}
	if len(spec.EventTypes)+len(spec.Categories) > 0 &&
		!slices.Contains(spec.EventTypes, ev.EventType) && !slices.Contains(spec.Categories, ev.Category) {
		return false
	}
	if len(spec.Namespaces) == 0 || len(ev.NamespaceChain) == 0 && ev.ProjectKey == 0 {
		return true
	}
	for _, r := range spec.Namespaces {
		if r.Project && ev.ProjectKey == r.Key || !r.Project && slices.Contains(ev.NamespaceChain, r.Key) {
			return true
		}
	}
	return false
}

// TestMatchCombinations runs every combination of the filter kinds against events of every
// category and place, and checks Match against the reference.
func TestMatchCombinations(t *testing.T) {
	t.Parallel()
	cat := setup(t)
	ns := func(refs ...destination.NamespaceRef) []destination.NamespaceRef { return refs }
	allowTypes := [][]string{nil, {tGit}, {tGit, tGroupCreated}}
	allowCats := [][]string{nil, {cSCM}, {cAudit, cUsers}}
	denyTypes := [][]string{nil, {tApproval}, {tProjCreated, tUserCreated}}
	denyCats := [][]string{nil, {cUsers}, {cGP}}
	namespaces := [][]destination.NamespaceRef{nil, ns(group(gSub)), ns(project(pTop)), ns(group(gSibling), project(pDeep))}
	events := []string{tGit, tApproval, tGroupCreated, tProjCreated, tUserCreated, tDestCreated, tNotCat}
	places := []int64{0, gTop, gSub, gSubSub, gSibling, gOther, pDeep, pSibling, pTop, pOther}

	var checks, matched int
	for _, at1 := range allowTypes {
		for _, ac := range allowCats {
			for _, dt := range denyTypes {
				for _, dc := range denyCats {
					if slices.Equal(ac, []string{cAudit, cUsers}) && slices.Equal(dc, []string{cUsers}) {
						continue // a conflict; TestCompileErrors covers it
					}
					for _, n := range namespaces {
						spec := destination.FilterSpec{EventTypes: at1, Categories: ac, DenyEventTypes: dt, DenyCategories: dc, Namespaces: n}
						f := compile(t, cat, spec)
						for _, typ := range events {
							for _, place := range places {
								ev := at(cat, typ, place)
								got := f.Match(ev)
								if want := reference(spec, ev); got != want {
									t.Fatalf("Match(%+v) with %+v = %v, want %v", ev, spec, got, want)
								}
								checks++
								if got {
									matched++
								}
							}
						}
					}
				}
			}
		}
	}
	require.Greater(t, matched, checks/10, "the combinations match often enough to mean something")
	require.Less(t, matched, checks-checks/10)
}

// A category filter selects types added to the catalog after it was compiled.
func TestMatchCategoryIncludesTypesAddedLater(t *testing.T) {
	t.Parallel()
	old := setup(t)
	const newType = "push_rule_custom_check_failed"
	require.Nil(t, old.Lookup(newType))

	byCategory := compile(t, old, destination.FilterSpec{Categories: []string{cSCM}})
	byType := compile(t, old, destination.FilterSpec{EventTypes: []string{tGit, tApproval}})
	denyCategory := compile(t, old, destination.FilterSpec{DenyCategories: []string{cSCM}})
	otherCategory := compile(t, old, destination.FilterSpec{Categories: []string{cGP}})

	dir := t.TempDir()
	def := "name: " + newType + "\ndescription: A custom push check failed.\nfeature_category: " + cSCM +
		"\nsaved_to_database: true\nstreamed: true\nscope: [Project]\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, newType+".yml"), []byte(def), 0o600))
	updated, err := event.Load(dir)
	require.NoError(t, err)
	require.NotNil(t, updated.Lookup(newType))
	require.Equal(t, old.Len()+1, updated.Len())

	ev := at(updated, newType, pDeep)
	require.Equal(t, cSCM, ev.Category)
	require.True(t, byCategory.Match(ev), "the category filter selects the new type")
	require.False(t, byType.Match(ev), "a type filter lists names, so it does not")
	require.False(t, denyCategory.Match(ev), "a category deny filter also covers the new type")
	require.False(t, otherCategory.Match(ev))

	// Compiled against the new catalog, the type is known and can be listed itself.
	f := compile(t, updated, destination.FilterSpec{EventTypes: []string{newType}})
	require.True(t, f.Match(ev))
	_, err = destination.Compile(destination.FilterSpec{EventTypes: []string{newType}}, old)
	require.Error(t, err, "the old catalog does not know the type")
}

func TestCompileErrors(t *testing.T) {
	t.Parallel()
	cat := setup(t)
	type fe = destination.FilterError
	many := func(n int, f func(i int) string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	long := strings.Repeat("é", 300) // 600 bytes
	tests := []struct {
		name string
		spec destination.FilterSpec
		want []fe
	}{
		{"unknown event type", destination.FilterSpec{EventTypes: []string{tGit, "no_such_type"}},
			[]fe{{Field: "eventTypes", Code: "unknown_event_type", Value: "no_such_type"}}},
		{"unknown deny event type", destination.FilterSpec{DenyEventTypes: []string{"Repository_Git_Operation"}},
			[]fe{{Field: "denyEventTypes", Code: "unknown_event_type", Value: "Repository_Git_Operation"}}},
		{"empty event type", destination.FilterSpec{EventTypes: []string{""}},
			[]fe{{Field: "eventTypes", Code: "unknown_event_type", Value: ""}}},
		{"unknown category", destination.FilterSpec{Categories: []string{"no_such_category"}},
			[]fe{{Field: "categories", Code: "unknown_category", Value: "no_such_category"}}},
		{"a type is not a category", destination.FilterSpec{Categories: []string{tGit}},
			[]fe{{Field: "categories", Code: "unknown_category", Value: tGit}}},
		{"a category is not a type", destination.FilterSpec{EventTypes: []string{cSCM}},
			[]fe{{Field: "eventTypes", Code: "unknown_event_type", Value: cSCM}}},
		{"unknown deny category", destination.FilterSpec{DenyCategories: []string{" audit_events"}},
			[]fe{{Field: "denyCategories", Code: "unknown_category", Value: " audit_events"}}},
		{"duplicate type, reported once", destination.FilterSpec{EventTypes: []string{tGit, tApproval, tGit, tGit}},
			[]fe{{Field: "eventTypes", Code: "duplicate", Value: tGit}}},
		{"duplicate deny type", destination.FilterSpec{DenyEventTypes: []string{tGit, tGit}},
			[]fe{{Field: "denyEventTypes", Code: "duplicate", Value: tGit}}},
		{"duplicate category", destination.FilterSpec{Categories: []string{cSCM, cSCM}},
			[]fe{{Field: "categories", Code: "duplicate", Value: cSCM}}},
		{"duplicate deny category", destination.FilterSpec{DenyCategories: []string{cGP, cSCM, cGP}},
			[]fe{{Field: "denyCategories", Code: "duplicate", Value: cGP}}},
		{"duplicate unknown", destination.FilterSpec{EventTypes: []string{"nope", "nope"}}, []fe{
			{Field: "eventTypes", Code: "unknown_event_type", Value: "nope"},
			{Field: "eventTypes", Code: "duplicate", Value: "nope"},
		}},
		{"type allowed and denied", destination.FilterSpec{EventTypes: []string{tGit, tApproval}, DenyEventTypes: []string{tApproval}},
			[]fe{{Field: "denyEventTypes", Code: "conflict", Value: tApproval}}},
		{"category allowed and denied", destination.FilterSpec{Categories: []string{cSCM}, DenyCategories: []string{cUsers, cSCM}},
			[]fe{{Field: "denyCategories", Code: "conflict", Value: cSCM}}},
		{"too many event types", destination.FilterSpec{EventTypes: many(destination.MaxEventTypeFilters+1, func(i int) string { return fmt.Sprint("t", i) })},
			[]fe{{Field: "eventTypes", Code: "too_many", Value: "1001", Limit: 1000}}},
		{"too many deny event types", destination.FilterSpec{DenyEventTypes: many(2000, func(int) string { return tGit })},
			[]fe{{Field: "denyEventTypes", Code: "too_many", Value: "2000", Limit: 1000}}},
		{"too many categories", destination.FilterSpec{Categories: many(destination.MaxCategoryFilters+1, func(int) string { return cSCM })},
			[]fe{{Field: "categories", Code: "too_many", Value: "1001", Limit: 1000}}},
		{"too many deny categories", destination.FilterSpec{DenyCategories: many(destination.MaxCategoryFilters+1, func(int) string { return cSCM })},
			[]fe{{Field: "denyCategories", Code: "too_many", Value: "1001", Limit: 1000}}},
		{"too many namespaces", destination.FilterSpec{Namespaces: []destination.NamespaceRef{group(1), group(2), group(3), group(4), group(5), project(6)}},
			[]fe{{Field: "namespaces", Code: "too_many", Value: "6", Limit: 5}}},
		{"too many namespaces, with bad ones", destination.FilterSpec{Namespaces: []destination.NamespaceRef{group(0), group(0), group(0), group(0), group(0), group(0), group(0)}},
			[]fe{{Field: "namespaces", Code: "too_many", Value: "7", Limit: 5}}},
		{"at the type limit, not too many", destination.FilterSpec{EventTypes: append(many(destination.MaxEventTypeFilters-1, func(i int) string { return fmt.Sprint("t", i) }), tGit)},
			func() []fe {
				out := make([]fe, 0, destination.MaxEventTypeFilters-1)
				for i := range destination.MaxEventTypeFilters - 1 {
					out = append(out, fe{Field: "eventTypes", Code: "unknown_event_type", Value: fmt.Sprint("t", i)})
				}
				return out
			}()},
		{"zero namespace key", destination.FilterSpec{Namespaces: []destination.NamespaceRef{group(0)}},
			[]fe{{Field: "namespaces", Code: "invalid_namespace", Value: "group:0"}}},
		{"negative project key", destination.FilterSpec{Namespaces: []destination.NamespaceRef{project(-7)}},
			[]fe{{Field: "namespaces", Code: "invalid_namespace", Value: "project:-7"}}},
		{"duplicate group", destination.FilterSpec{Namespaces: []destination.NamespaceRef{group(2), project(10), group(2)}},
			[]fe{{Field: "namespaces", Code: "duplicate", Value: "group:2"}}},
		{"same key as group and project", destination.FilterSpec{Namespaces: []destination.NamespaceRef{group(2), project(2), group(2)}},
			[]fe{{Field: "namespaces", Code: "duplicate", Value: "project:2"}}},
		{"long value shortened", destination.FilterSpec{EventTypes: []string{long}},
			[]fe{{Field: "eventTypes", Code: "unknown_event_type", Value: long[:254] + "…"}}},
		{"every field at once", destination.FilterSpec{
			EventTypes:     []string{"bad_type", tGit, tGit, tApproval},
			DenyEventTypes: []string{tApproval, "bad_deny"},
			Categories:     []string{cSCM, "bad_category"},
			DenyCategories: []string{"bad_deny_category", cSCM},
			Namespaces:     []destination.NamespaceRef{group(0), project(10), project(10)},
		}, []fe{
			{Field: "eventTypes", Code: "unknown_event_type", Value: "bad_type"},
			{Field: "eventTypes", Code: "duplicate", Value: tGit},
			{Field: "denyEventTypes", Code: "unknown_event_type", Value: "bad_deny"},
			{Field: "denyEventTypes", Code: "conflict", Value: tApproval},
			{Field: "categories", Code: "unknown_category", Value: "bad_category"},
			{Field: "denyCategories", Code: "unknown_category", Value: "bad_deny_category"},
			{Field: "denyCategories", Code: "conflict", Value: cSCM},
			{Field: "namespaces", Code: "invalid_namespace", Value: "group:0"},
			{Field: "namespaces", Code: "duplicate", Value: "project:10"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := destination.Compile(tt.spec, cat)
			require.Error(t, err)
			require.Nil(t, f)

			got := destination.FilterErrors(err)
			require.Len(t, got, len(tt.want))
			for i, e := range got {
				require.Equal(t, tt.want[i], *e, "error %d", i)
				require.Contains(t, err.Error(), e.Error(), "the joined message has every problem")
				require.Contains(t, e.Error(), e.Field)
				if e.Code != destination.CodeTooMany {
					require.Contains(t, e.Error(), fmt.Sprintf("%q", e.Value), "the message names the value")
				}
				require.LessOrEqual(t, len(e.Value), 255+len("…"))
			}

			var first *destination.FilterError
			require.ErrorAs(t, err, &first)
			require.Equal(t, tt.want[0], *first)
			wrapped := fmt.Errorf("save destination: %w", err)
			require.Len(t, destination.FilterErrors(wrapped), len(tt.want), "FilterErrors looks through wrapping")
		})
	}
}

func TestFilterErrorMessages(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		err  destination.FilterError
		want string
	}{
		{destination.FilterError{Field: "eventTypes", Code: "unknown_event_type", Value: "x"}, `eventTypes: unknown event type "x"`},
		{destination.FilterError{Field: "categories", Code: "unknown_category", Value: "x"}, `categories: unknown category "x"`},
		{destination.FilterError{Field: "eventTypes", Code: "duplicate", Value: "x"}, `eventTypes: "x" is listed more than once`},
		{destination.FilterError{Field: "denyEventTypes", Code: "conflict", Value: "x"}, `denyEventTypes: "x" is both allowed and denied`},
		{destination.FilterError{Field: "namespaces", Code: "too_many", Value: "6", Limit: 5}, `namespaces: 6 given, at most 5 allowed`},
		{destination.FilterError{Field: "namespaces", Code: "invalid_namespace", Value: "group:0"}, `namespaces: "group:0" is not a valid namespace key`},
		{destination.FilterError{Field: "f", Code: "other", Value: "x"}, `f: other "x"`},
	} {
		require.Equal(t, tt.want, tt.err.Error())
	}
	require.Nil(t, destination.FilterErrors(nil))
	require.Nil(t, destination.FilterErrors(errors.New("not a filter error")))
}

func TestCompileNilCatalog(t *testing.T) {
	t.Parallel()
	f, err := destination.Compile(destination.FilterSpec{Namespaces: []destination.NamespaceRef{group(1)}}, nil)
	require.NoError(t, err, "a spec without types or categories needs no catalog")
	require.True(t, f.Match(destination.EventInfo{NamespaceChain: []int64{1}}))

	_, err = destination.Compile(destination.FilterSpec{EventTypes: []string{tGit}, Categories: []string{cSCM}}, nil)
	require.Equal(t, []*destination.FilterError{
		{Field: "eventTypes", Code: "unknown_event_type", Value: tGit},
		{Field: "categories", Code: "unknown_category", Value: cSCM},
	}, destination.FilterErrors(err))
}

func TestSpecAndIsEmpty(t *testing.T) {
	t.Parallel()
	cat := setup(t)

	empty := compile(t, cat, destination.FilterSpec{EventTypes: []string{}, Namespaces: []destination.NamespaceRef{}})
	require.True(t, empty.IsEmpty())
	require.Equal(t, destination.FilterSpec{}, empty.Spec(), "empty lists come back nil")
	var nilFilter *destination.Filter
	require.True(t, nilFilter.IsEmpty())
	require.Equal(t, destination.FilterSpec{}, nilFilter.Spec())
	require.True(t, nilFilter.Match(at(cat, tGit, pDeep)))
	require.True(t, new(destination.Filter).IsEmpty())
	require.True(t, new(destination.Filter).Match(at(cat, tGit, pDeep)))

	for _, spec := range []destination.FilterSpec{
		{EventTypes: []string{tGit}},
		{DenyEventTypes: []string{tGit}},
		{Categories: []string{cSCM}},
		{DenyCategories: []string{cSCM}},
		{Namespaces: []destination.NamespaceRef{group(gSub)}},
		{Namespaces: []destination.NamespaceRef{project(pDeep)}},
	} {
		require.False(t, compile(t, cat, spec).IsEmpty(), "%+v", spec)
	}

	f := compile(t, cat, destination.FilterSpec{
		EventTypes:     []string{tUserCreated, tGit, tDestCreated},
		DenyEventTypes: []string{tProjCreated, tApproval},
		Categories:     []string{cUsers, cAudit},
		DenyCategories: []string{cSCM, cGP},
		Namespaces:     []destination.NamespaceRef{project(pTop), group(gSibling), project(pDeep), group(gSub)},
	})
	want := destination.FilterSpec{
		EventTypes:     []string{tDestCreated, tGit, tUserCreated},
		DenyEventTypes: []string{tApproval, tProjCreated},
		Categories:     []string{cAudit, cUsers},
		DenyCategories: []string{cGP, cSCM},
		Namespaces:     []destination.NamespaceRef{group(gSub), group(gSibling), project(pDeep), project(pTop)},
	}
	require.Equal(t, want, f.Spec())

	// Spec is a copy: changing it changes neither the filter nor the next Spec.
	s := f.Spec()
	s.EventTypes[0] = "changed"
	s.Namespaces[0] = group(gOther)
	require.Equal(t, want, f.Spec())
	require.True(t, f.Match(at(cat, tDestCreated, pDeep)))

	// Compiling the normalized spec again gives the same spec and the same answers.
	again := compile(t, cat, f.Spec())
	require.Equal(t, want, again.Spec())
	for _, typ := range []string{tGit, tApproval, tUserCreated, tDestCreated, tGroupCreated} {
		for place := range chains {
			require.Equal(t, f.Match(at(cat, typ, place)), again.Match(at(cat, typ, place)))
		}
	}

	require.Equal(t, "group:3", group(3).String())
	require.Equal(t, "project:10", project(10).String())
}

// Compile keeps no reference to the caller's slices.
func TestCompileCopiesSpec(t *testing.T) {
	t.Parallel()
	cat := setup(t)
	spec := destination.FilterSpec{EventTypes: []string{tGit}, Namespaces: []destination.NamespaceRef{group(gSub)}}
	f := compile(t, cat, spec)
	spec.EventTypes[0] = tUserCreated
	spec.Namespaces[0] = group(gOther)
	require.True(t, f.Match(at(cat, tGit, pDeep)))
	require.False(t, f.Match(at(cat, tUserCreated, pDeep)))
	require.False(t, f.Match(at(cat, tGit, pOther)))
}

func TestMatchConcurrent(t *testing.T) {
	t.Parallel()
	cat := setup(t)
	f := compile(t, cat, destination.FilterSpec{
		EventTypes: []string{tGit}, Categories: []string{cUsers}, DenyEventTypes: []string{tApproval},
		Namespaces: []destination.NamespaceRef{group(gSub), project(pTop)},
	})
	events := []destination.EventInfo{at(cat, tGit, pDeep), at(cat, tGit, pSibling), at(cat, tUserCreated, 0), at(cat, tApproval, pDeep)}
	want := []bool{true, false, true, false}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				for i, ev := range events {
					if got := f.Match(ev); got != want[i] {
						t.Errorf("Match(%+v) = %v, want %v", ev, got, want[i])
						return
					}
				}
				_ = f.Spec()
				_ = f.IsEmpty()
			}
		})
	}
	wg.Wait()
}

func TestMatchDoesNotAllocate(t *testing.T) {
	cat := setup(t)
	f := compile(t, cat, benchSpec(cat))
	events := []destination.EventInfo{at(cat, tGit, pDeep), at(cat, tApproval, pDeep), at(cat, tUserCreated, 0), at(cat, tGit, pOther), at(cat, tNotCat, pTop)}
	var sink bool
	allocs := testing.AllocsPerRun(1000, func() {
		for _, ev := range events {
			sink = f.Match(ev) != sink
		}
	})
	require.Zero(t, allocs)
}

// FuzzMatch builds a valid spec and an event from the input and checks that Match does not
// panic, agrees with the reference, and that denying the event's type or category makes it
// false.
func FuzzMatch(f *testing.F) {
	cat := setup(f)
	types := []string{tGit, tApproval, tGroupCreated, tProjCreated, tUserCreated, tDestCreated}
	categories := []string{cSCM, cGP, cUsers, cAudit}

	f.Add([]byte{0x00, 0x21, 0x42, 0x80}, uint8(0), "", uint8(0), "", []byte{10, 3, 2, 1}, uint8(10))
	f.Add([]byte{0x41, 0x83, 0xa2}, uint8(1), "", uint8(0), "", []byte{11, 4, 1}, uint8(11))
	f.Add([]byte{0x60, 0x22}, uint8(4), "", uint8(0), "", []byte{}, uint8(0))
	f.Add([]byte{0x03, 0x85, 0x86, 0xa1, 0x87, 0x88}, uint8(200), "anything", uint8(1), "weird", []byte{0, 0, 255}, uint8(0))
	f.Add([]byte{}, uint8(7), "", uint8(2), "", []byte{1}, uint8(3))

	f.Fuzz(func(t *testing.T, specBytes []byte, typeSel uint8, rawType string, catSel uint8, rawCategory string, chain []byte, projectKey uint8) {
		// Build a valid spec: the top 3 bits of each byte pick the list, the rest the value.
		var spec destination.FilterSpec
		inAny := func(v string) bool {
			return slices.Contains(spec.EventTypes, v) || slices.Contains(spec.DenyEventTypes, v) ||
				slices.Contains(spec.Categories, v) || slices.Contains(spec.DenyCategories, v)
		}
		keys := map[int64]bool{}
		for _, b := range specBytes {
			i := int(b & 0x1f)
			switch b >> 5 {
			case 0, 1:
				if v := types[i%len(types)]; !inAny(v) {
					if b>>5 == 0 {
						spec.EventTypes = append(spec.EventTypes, v)
					} else {
						spec.DenyEventTypes = append(spec.DenyEventTypes, v)
					}
				}
			case 2, 3:
				if v := categories[i%len(categories)]; !inAny(v) {
					if b>>5 == 2 {
						spec.Categories = append(spec.Categories, v)
					} else {
						spec.DenyCategories = append(spec.DenyCategories, v)
					}
				}
			case 4, 5:
				k := int64(i%14) + 1
				if !keys[k] && len(spec.Namespaces) < destination.MaxNamespaceFilters {
					keys[k] = true
					spec.Namespaces = append(spec.Namespaces, destination.NamespaceRef{Key: k, Project: b>>5 == 5})
				}
			}
		}
		flt, err := destination.Compile(spec, cat)
		if err != nil {
			t.Fatalf("a valid spec %+v did not compile: %v", spec, err)
		}

		// Build an event: a known type or any string, its category or any string.
		ev := destination.EventInfo{EventType: rawType, ProjectKey: int64(projectKey % 16)}
		if int(typeSel) < len(types) {
			ev.EventType = types[typeSel]
		}
		switch catSel % 3 {
		case 0:
			ev.Category = category(cat, ev.EventType)
		case 1:
			ev.Category = rawCategory
		}
		for _, b := range chain {
			ev.NamespaceChain = append(ev.NamespaceChain, int64(b%16))
		}

		got := flt.Match(ev)
		if want := reference(flt.Spec(), ev); got != want {
			t.Fatalf("Match(%+v) with %+v = %v, reference says %v", ev, flt.Spec(), got, want)
		}

		// Denying the event's type (moving it out of the allow list if it is there) always
		// makes Match false. So does denying its category.
		if cat.Lookup(ev.EventType) != nil {
			denied := flt.Spec()
			denied.EventTypes = slices.DeleteFunc(denied.EventTypes, func(s string) bool { return s == ev.EventType })
			if !slices.Contains(denied.DenyEventTypes, ev.EventType) {
				denied.DenyEventTypes = append(denied.DenyEventTypes, ev.EventType)
			}
			if d, err := destination.Compile(denied, cat); err != nil {
				t.Fatalf("compile with deny: %v", err)
			} else if d.Match(ev) {
				t.Fatalf("Match(%+v) is true although %q is denied", ev, ev.EventType)
			}
		}
		if slices.Contains(categories, ev.Category) {
			denied := flt.Spec()
			denied.Categories = slices.DeleteFunc(denied.Categories, func(s string) bool { return s == ev.Category })
			if !slices.Contains(denied.DenyCategories, ev.Category) {
				denied.DenyCategories = append(denied.DenyCategories, ev.Category)
			}
			if d, err := destination.Compile(denied, cat); err != nil {
				t.Fatalf("compile with deny category: %v", err)
			} else if d.Match(ev) {
				t.Fatalf("Match(%+v) is true although category %q is denied", ev, ev.Category)
			}
		}
	})
}

// benchSpec is a busy but realistic filter: a few dozen allowed types, two categories, denies
// and three namespace filters.
func benchSpec(cat *event.Catalog) destination.FilterSpec {
	spec := destination.FilterSpec{
		Categories:     []string{cUsers, cAudit},
		DenyEventTypes: []string{tApproval},
		DenyCategories: []string{cGP},
		Namespaces:     []destination.NamespaceRef{group(gSub), group(gOther), project(pTop)},
	}
	for _, ty := range cat.Types() {
		if ty.FeatureCategory == "compliance_management" || ty.Name == tGit {
			spec.EventTypes = append(spec.EventTypes, ty.Name)
		}
	}
	return spec
}

func BenchmarkMatch(b *testing.B) {
	cat := setup(b)
	busy := compile(b, cat, benchSpec(cat))
	var allTypes destination.FilterSpec
	for _, ty := range cat.Types() {
		allTypes.EventTypes = append(allTypes.EventTypes, ty.Name)
	}
	everyType := compile(b, cat, allTypes)
	empty := compile(b, cat, destination.FilterSpec{})
	deep := at(cat, tGit, pDeep)
	deep.NamespaceChain = []int64{pDeep, 20, 19, 18, 17, 16, 15, 14, gSubSub, gSub, gTop} // 10 levels of groups

	for _, bb := range []struct {
		name string
		f    *destination.Filter
		ev   destination.EventInfo
		want bool
	}{
		{"empty", empty, at(cat, tGit, pDeep), true},
		{"busy/allowed type in group", busy, at(cat, tGit, pDeep), true},
		{"busy/allowed category, instance event", busy, at(cat, tDestCreated, 0), true},
		{"busy/denied type", busy, at(cat, tApproval, pDeep), false},
		{"busy/denied category", busy, at(cat, tProjCreated, pTop), false},
		{"busy/not allowed", busy, at(cat, "webhook_created", pTop), false},
		{"busy/namespace miss", busy, at(cat, tGit, pSibling), false},
		{"busy/deep chain", busy, deep, true},
		{"every type allowed", everyType, at(cat, tUserCreated, pTop), true},
	} {
		b.Run(bb.name, func(b *testing.B) {
			if bb.f.Match(bb.ev) != bb.want {
				b.Fatalf("Match = %v, want %v", !bb.want, bb.want)
			}
			b.ReportAllocs()
			for b.Loop() {
				bb.f.Match(bb.ev)
			}
		})
	}
}

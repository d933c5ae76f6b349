package event_test

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/event"
)

func TestCatalogEmbedded(t *testing.T) {
	t.Parallel()
	c, err := event.Load("")
	require.NoError(t, err)

	require.GreaterOrEqual(t, c.Len(), 150)
	types := c.Types()
	require.Len(t, types, c.Len())
	names := make([]string, 0, len(types))
	categories := map[string]int{}
	for _, typ := range types {
		names = append(names, typ.Name)
		categories[typ.FeatureCategory]++
		require.NoError(t, typ.Validate(), typ.Name)
		require.Equal(t, "embedded:"+typ.Name+".yml", typ.Source, "each embedded file is named after its type")
		require.Same(t, typ, c.Lookup(typ.Name))
	}
	require.True(t, sort.StringsAreSorted(names), "Types is sorted by name")
	require.GreaterOrEqual(t, len(categories), 15)

	git := c.Lookup("repository_git_operation")
	require.NotNil(t, git)
	require.False(t, git.SavedToDatabase, "git operations are stream-only")
	require.True(t, git.Streamed)
	require.Equal(t, []string{"Project"}, git.Scope)
	require.Equal(t, "source_code_management", git.FeatureCategory)

	dest := c.Lookup("created_group_audit_event_streaming_destination")
	require.NotNil(t, dest)
	require.True(t, dest.SavedToDatabase)
	require.True(t, dest.Streamed)
	require.Contains(t, dest.Scope, "Group")
	require.NotEmpty(t, dest.Description)

	require.Nil(t, c.Lookup("no_such_type"))
	require.Nil(t, c.Lookup(""))
	require.Nil(t, c.Lookup("README"), "the types README is not a type")

	// Loading twice gives equal, independent catalogs.
	c2, err := event.Load("")
	require.NoError(t, err)
	require.Equal(t, c.Len(), c2.Len())
	require.NotSame(t, c.Lookup("repository_git_operation"), c2.Lookup("repository_git_operation"))
}

func TestCatalogZeroAndNil(t *testing.T) {
	t.Parallel()
	var nilCat *event.Catalog
	require.Nil(t, nilCat.Lookup("repository_git_operation"))
	var zero event.Catalog
	require.Nil(t, zero.Lookup("repository_git_operation"))
	require.Equal(t, 0, zero.Len())
	require.Empty(t, zero.Types())
}

func TestCatalogConcurrentReads(t *testing.T) {
	t.Parallel()
	c := catalog(t)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for _, typ := range c.Types() {
				if c.Lookup(typ.Name) != typ {
					t.Errorf("Lookup(%q) is not the listed type", typ.Name)
				}
			}
		})
	}
	wg.Wait()
}

// writeTypes writes files (name -> content) into a new directory and returns it.
func writeTypes(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o700))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	}
	return dir
}

const customType = `---
name: custom_thing_happened
description: A custom thing happened.
feature_category: compliance_management
saved_to_database: true
streamed: true
scope: [Group, Project]
`

func TestCatalogLoadAddsTypes(t *testing.T) {
	t.Parallel()
	embedded := catalog(t)
	dir := writeTypes(t, map[string]string{
		"custom_thing_happened.yml": customType,
		"other.yaml": `name: other_thing_happened
description: Another thing happened.
introduced_by_issue: https://gitlab.com/gitlab-org/gitlab/-/issues/1
introduced_by_mr: https://gitlab.com/gitlab-org/gitlab/-/merge_requests/2
feature_category: my_category
milestone: '18.7'
saved_to_database: false
streamed: true
scope: [Instance, Group, Project, User]
`,
		"notes.txt":       "not a type",
		"config.json":     `{"name":"json_type"}`,
		"sub/nested.yml":  strings.ReplaceAll(customType, "custom_thing_happened", "nested_type"),
		"README.md":       "# my types",
		"not-a-type.yml~": "garbage: [",
		"backup.yml.orig": "garbage: [",
		"renamed.yml":     strings.ReplaceAll(customType, "custom_thing_happened", "file_name_differs"),
	})
	c, err := event.Load(dir)
	require.NoError(t, err)
	require.Equal(t, embedded.Len()+3, c.Len())

	custom := c.Lookup("custom_thing_happened")
	require.NotNil(t, custom)
	require.Equal(t, "A custom thing happened.", custom.Description)
	require.Equal(t, []string{"Group", "Project"}, custom.Scope)
	require.Equal(t, filepath.Join(dir, "custom_thing_happened.yml"), custom.Source)

	other := c.Lookup("other_thing_happened")
	require.NotNil(t, other, ".yaml files are read")
	require.False(t, other.SavedToDatabase)
	require.Equal(t, "18.7", other.Milestone)
	require.Equal(t, "my_category", other.FeatureCategory)

	require.NotNil(t, c.Lookup("file_name_differs"), "the name field counts, not the file name")
	require.Nil(t, c.Lookup("nested_type"), "subdirectories are not read")
	require.Nil(t, c.Lookup("json_type"))
	require.NotNil(t, c.Lookup("repository_git_operation"), "embedded types remain")
	require.True(t, sort.SliceIsSorted(c.Types(), func(i, j int) bool { return c.Types()[i].Name < c.Types()[j].Name }))

	// The embedded catalog is not changed by loading a directory.
	require.Nil(t, catalog(t).Lookup("custom_thing_happened"))
}

func TestCatalogLoadEmptyDir(t *testing.T) {
	t.Parallel()
	c, err := event.Load(t.TempDir())
	require.NoError(t, err)
	require.Equal(t, catalog(t).Len(), c.Len())
}

func TestCatalogLoadMissingDir(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "missing")
	_, err := event.Load(dir)
	require.Error(t, err)
	require.Contains(t, err.Error(), dir)
}

func TestCatalogLoadOverridesEmbedded(t *testing.T) {
	t.Parallel()
	embedded := catalog(t)
	orig := embedded.Lookup("repository_git_operation")
	require.NotNil(t, orig)
	dir := writeTypes(t, map[string]string{
		// The file name does not matter; the name does.
		"git-ops-stored.yml": `name: repository_git_operation
description: Git operations, stored by this operator.
feature_category: source_code_management
saved_to_database: true
streamed: true
scope: [Project, Group]
`,
	})
	c, err := event.Load(dir)
	require.NoError(t, err)
	require.Equal(t, embedded.Len(), c.Len(), "an override adds nothing")
	got := c.Lookup("repository_git_operation")
	require.NotNil(t, got)
	require.True(t, got.SavedToDatabase)
	require.Equal(t, "Git operations, stored by this operator.", got.Description)
	require.Equal(t, []string{"Project", "Group"}, got.Scope)
	require.Equal(t, filepath.Join(dir, "git-ops-stored.yml"), got.Source)
	require.Empty(t, got.Milestone, "the definition is replaced entirely, not merged")

	// The embedded definition is untouched.
	require.False(t, catalog(t).Lookup("repository_git_operation").SavedToDatabase)
}

func TestCatalogLoadInvalid(t *testing.T) {
	t.Parallel()
	valid := map[string]string{
		"name":              "bad_type",
		"description":       "A description.",
		"feature_category":  "compliance_management",
		"saved_to_database": "true",
		"streamed":          "true",
		"scope":             "[Group]",
	}
	render := func(change func(m map[string]string)) string {
		m := make(map[string]string, len(valid))
		for k, v := range valid {
			m[k] = v
		}
		change(m)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var b strings.Builder
		for _, k := range keys {
			b.WriteString(k + ": " + m[k] + "\n")
		}
		return b.String()
	}
	tests := []struct {
		name    string
		content string
		reason  string // part of the error message
	}{
		{"both booleans false", render(func(m map[string]string) { m["saved_to_database"], m["streamed"] = "false", "false" }),
			"saved_to_database and streamed cannot both be false"},
		{"booleans missing", render(func(m map[string]string) { delete(m, "saved_to_database"); delete(m, "streamed") }),
			"saved_to_database and streamed cannot both be false"},
		{"unknown key", render(func(m map[string]string) { m["severity"] = "high" }), "severity"},
		{"misspelled key", render(func(m map[string]string) { m["scopes"] = m["scope"]; delete(m, "scope") }), "scopes"},
		{"bad name with a hyphen", render(func(m map[string]string) { m["name"] = "bad-name" }), `name "bad-name"`},
		{"bad name upper case", render(func(m map[string]string) { m["name"] = "BadName" }), `name "BadName"`},
		{"bad name starting with a digit", render(func(m map[string]string) { m["name"] = "1_type" }), `name "1_type"`},
		{"name missing", render(func(m map[string]string) { delete(m, "name") }), `name ""`},
		{"name too long", render(func(m map[string]string) { m["name"] = "a" + strings.Repeat("b", 100) }), "name"},
		{"bad scope", render(func(m map[string]string) { m["scope"] = "[Group, Namespace]" }), `scope "Namespace"`},
		{"GitLab placeholder scope", render(func(m map[string]string) { m["scope"] = "['-']" }), `scope "-"`},
		{"lower-case scope", render(func(m map[string]string) { m["scope"] = "[group]" }), `scope "group"`},
		{"empty scope", render(func(m map[string]string) { m["scope"] = "[]" }), "scope must list"},
		{"scope not a list", render(func(m map[string]string) { m["scope"] = "Group" }), "invalid YAML"},
		{"description missing", render(func(m map[string]string) { delete(m, "description") }), "description is required"},
		{"description blank", render(func(m map[string]string) { m["description"] = "'   '" }), "description is required"},
		{"feature_category with a space", render(func(m map[string]string) { m["feature_category"] = "'self hosted'" }), "feature_category"},
		{"bad milestone", render(func(m map[string]string) { m["milestone"] = "'seventeen'" }), "milestone"},
		{"http link", render(func(m map[string]string) { m["introduced_by_mr"] = "http://example.com/mr/1" }), "https URL"},
		{"boolean not a boolean", render(func(m map[string]string) { m["streamed"] = "maybe" }), "invalid YAML"},
		{"YAML syntax error", "name: [unclosed\n", "invalid YAML"},
		{"empty file", "", "invalid YAML"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := writeTypes(t, map[string]string{
				"good.yml":    customType,
				"the_bad.yml": tt.content,
			})
			c, err := event.Load(dir)
			require.Error(t, err, "content:\n%s", tt.content)
			require.Nil(t, c)
			msg := err.Error()
			require.Contains(t, msg, filepath.Join(dir, "the_bad.yml"), "the error names the file")
			require.Contains(t, msg, tt.reason)
			require.NotContains(t, msg, "good.yml", "valid files are not blamed")
		})
	}
}

func TestCatalogLoadReportsEveryInvalidFileAndReason(t *testing.T) {
	t.Parallel()
	dir := writeTypes(t, map[string]string{
		"one.yml": "name: Bad-One\ndescription: x\nfeature_category: a\nsaved_to_database: false\nstreamed: false\nscope: [Nope]\n",
		"two.yml": "name: two\ndescription: x\nfeature_category: a\nstreamed: true\nscope: [Group]\ncolour: red\n",
	})
	_, err := event.Load(dir)
	require.Error(t, err)
	msg := err.Error()
	require.Contains(t, msg, filepath.Join(dir, "one.yml"))
	require.Contains(t, msg, filepath.Join(dir, "two.yml"))
	// Every problem of one.yml is reported, not only the first.
	require.Contains(t, msg, `name "Bad-One"`)
	require.Contains(t, msg, "cannot both be false")
	require.Contains(t, msg, `scope "Nope"`)
	require.Contains(t, msg, "colour")
}

func TestCatalogLoadDuplicateNamesInDir(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		typ  string
	}{
		{"new type", "custom_thing_happened"},
		{"override of an embedded type", "repository_git_operation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			def := strings.ReplaceAll(customType, "custom_thing_happened", tt.typ)
			dir := writeTypes(t, map[string]string{
				"a.yml":  def,
				"b.yaml": strings.ReplaceAll(def, "A custom thing happened.", "The same, again."),
			})
			c, err := event.Load(dir)
			require.Error(t, err)
			require.Nil(t, c)
			msg := err.Error()
			require.Contains(t, msg, "already defined")
			require.Contains(t, msg, tt.typ)
			require.Contains(t, msg, filepath.Join(dir, "a.yml"))
			require.Contains(t, msg, filepath.Join(dir, "b.yaml"))
		})
	}
}

func TestParseTypeGitLabFile(t *testing.T) {
	t.Parallel()
	// A file as GitLab ships it in config/audit_events/types/.
	typ, err := event.ParseType([]byte(`---
name: repository_git_operation
description: Triggered when authenticated users push, pull, or clone a project using SSH, HTTP(S), or the UI
introduced_by_issue: https://gitlab.com/gitlab-org/gitlab/-/issues/373950
introduced_by_mr: https://gitlab.com/gitlab-org/gitlab/-/merge_requests/76719
feature_category: source_code_management
milestone: '14.9'
saved_to_database: false
streamed: true
scope: [Project]
`))
	require.NoError(t, err)
	require.Equal(t, &event.Type{
		Name:              "repository_git_operation",
		Description:       "Triggered when authenticated users push, pull, or clone a project using SSH, HTTP(S), or the UI",
		IntroducedByIssue: "https://gitlab.com/gitlab-org/gitlab/-/issues/373950",
		IntroducedByMR:    "https://gitlab.com/gitlab-org/gitlab/-/merge_requests/76719",
		FeatureCategory:   "source_code_management",
		Milestone:         "14.9",
		SavedToDatabase:   false,
		Streamed:          true,
		Scope:             []string{"Project"},
	}, typ)
}

// GitLab's own definitions load unchanged, including its hyphenated category self-hosted_models.
func TestLoadAcceptsGitLabHyphenatedCategory(t *testing.T) {
	t.Parallel()
	c, err := event.Load("")
	require.NoError(t, err)
	require.Equal(t, "self-hosted_models", c.Lookup("self_hosted_model_created").FeatureCategory)
}

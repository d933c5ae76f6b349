package graphql

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
)

func loadSchema(t *testing.T) *ast.Schema {
	t.Helper()
	files, err := filepath.Glob("schema/*.graphqls")
	if err != nil || len(files) == 0 {
		t.Fatalf("schema files: %v", err)
	}
	var sources []*ast.Source
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sources = append(sources, &ast.Source{Name: f, Input: string(b)})
	}
	s, gerr := gqlparser.LoadSchema(sources...)
	if gerr != nil {
		t.Fatalf("schema: %v", gerr)
	}
	return s
}

// TestSchemaValidatesGitLabDocumentedOperations: every operation of GitLab's documentation
// pages for audit event streaming (copied verbatim into testdata/gitlab-docs) is a valid
// operation against our schema.
func TestSchemaValidatesGitLabDocumentedOperations(t *testing.T) {
	s := loadSchema(t)
	files, err := filepath.Glob("testdata/gitlab-docs/*.graphql")
	if err != nil || len(files) != 33 {
		t.Fatalf("want the 33 documented operations, got %d (%v)", len(files), err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, errs := gqlparser.LoadQuery(s, string(b)); errs != nil {
			t.Errorf("%s: %v", filepath.Base(f), errs)
		}
	}
}

// TestSchemaHasGitLabNames: every mutation, input field and object field of GitLab's audit
// event streaming API that the reference lists exists in our schema under GitLab's name.
func TestSchemaHasGitLabNames(t *testing.T) {
	s := loadSchema(t)
	ref, err := os.ReadFile("testdata/gitlab-graphql-reference.md") // collected from GitLab's GraphQL reference
	if err != nil {
		t.Fatal(err)
	}
	mutation := regexp.MustCompile(`(?m)^([a-z][A-Za-z0-9]+)(?:\([A-Za-z]+\))?(?: \([^)]*\))?: (.*)$`)
	arg := regexp.MustCompile(`([a-zA-Z]+) (?:ID|String|Boolean|JSON|\[String!\]|[A-Z][A-Za-z0-9]*ID)!?`)
	seen := 0
	for _, m := range mutation.FindAllStringSubmatch(string(ref), -1) {
		name := m[1]
		f := s.Mutation.Fields.ForName(name)
		if f == nil {
			t.Errorf("mutation %s is missing", name)
			continue
		}
		seen++
		input := s.Types[f.Arguments.ForName("input").Type.Name()]
		args := m[2]
		if i := strings.Index(args, "->"); i >= 0 {
			args = args[:i]
		}
		for _, a := range arg.FindAllStringSubmatch(args, -1) {
			if a[1] != "all" && input.Fields.ForName(a[1]) == nil { // "(all String optional)"
				t.Errorf("%s: input field %s is missing", name, a[1])
			}
		}
	}
	if seen < 40 {
		t.Fatalf("parsed only %d mutations from the reference", seen)
	}
	for _, q := range []string{"group", "auditEventsInstanceStreamingDestinations", "instanceExternalAuditEventDestinations",
		"instanceGoogleCloudLoggingConfigurations", "auditEventsInstanceAmazonS3Configurations", "auditEventDefinitions"} {
		if s.Query.Fields.ForName(q) == nil {
			t.Errorf("query field %s is missing", q)
		}
	}
	for _, g := range []string{"externalAuditEventStreamingDestinations", "externalAuditEventDestinations", "googleCloudLoggingConfigurations", "amazonS3Configurations"} {
		if s.Types["Group"].Fields.ForName(g) == nil {
			t.Errorf("Group.%s is missing", g)
		}
	}
}

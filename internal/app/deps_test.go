package app_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/auditstream/auditstream/internal/app"
)

// allowedImports lists, per package, the auditstream packages it may import. Arrows point one
// way: event ← store, eventlog ← namespace, auth, ingest, archive ← api ← app ← cmd. A package
// missing from the list fails the test, so a new package must declare its place.
var allowedImports = map[string][]string{
	"internal/event":                       {},
	"internal/store":                       {},
	"internal/store/sqlite":                {"internal/store"},
	"internal/store/postgres":              {"internal/store"},
	"internal/store/storetest":             {"internal/store"},
	"internal/eventlog":                    {},
	"internal/secret":                      {},
	"internal/destination":                 {"internal/destination/format", "internal/event", "internal/netguard"},
	"internal/namespace":                   {"internal/store"},
	"internal/auth":                        {"internal/event", "internal/store"},
	"internal/ingest":                      {"internal/event", "internal/eventlog", "internal/namespace", "internal/store"},
	"internal/archive":                     {"internal/event", "internal/eventlog", "internal/store"},
	"internal/streamconfig":                {"internal/auth", "internal/delivery", "internal/destination", "internal/event", "internal/namespace", "internal/store"},
	"internal/api/graphql":                 {"internal/api/graphql/exec", "internal/api/graphql/model", "internal/auth", "internal/delivery", "internal/event", "internal/store", "internal/streamconfig"},
	"internal/web":                         {"internal/auth", "internal/delivery", "internal/destination", "internal/event", "internal/httpgzip", "internal/namespace", "internal/plot", "internal/store", "internal/streamconfig"},
	"internal/api/graphql/exec":            {"internal/api/graphql/model"},
	"internal/api/graphql/model":           {"internal/event"},
	"internal/api/graphql/explorer":        {"internal/httpgzip"},
	"internal/httpgzip":                    {},
	"internal/npmtest":                     {},                // for tests: npm packages of real JavaScript clients
	"internal/poll":                        {},                // for tests: waiting for a condition
	"internal/natstest":                    {"internal/poll"}, // for tests: NATS servers and clusters
	"internal/delivery":                    {"internal/destination", "internal/event", "internal/eventlog", "internal/namespace", "internal/store"},
	"internal/destination/httpdest":        {"internal/destination", "internal/netguard"},
	"internal/destination/destinationtest": {"internal/destination", "internal/netguard"}, // for tests: the conformance suite every category runs
	"internal/destination/objectstore":     {"internal/destination", "internal/event"},
	"internal/destination/s3dest":          {"internal/destination", "internal/destination/objectstore", "internal/netguard"},
	"internal/destination/gcsdest":         {"internal/destination", "internal/destination/objectstore", "internal/netguard"},
	"internal/destination/cloudlogging":    {"internal/destination", "internal/netguard"},
	"internal/destination/splunkhec":       {"internal/destination", "internal/netguard"},
	"internal/destination/kafka":           {"internal/destination", "internal/netguard"},
	"internal/destination/datadog":         {"internal/destination", "internal/netguard"},
	"internal/destination/syslog":          {"internal/destination", "internal/netguard"},
	"internal/destination/format":          {"internal/event"},
	"internal/netguard":                    {},
	"internal/memlimit":                    {},
	"internal/plot":                        {},
	"internal/trail":                       {"internal/event", "internal/eventlog", "internal/store"},
	"internal/adminaudit":                  {"internal/event", "internal/store"},
	"internal/republish":                   {"internal/adminaudit", "internal/api/rest", "internal/delivery", "internal/store", "internal/trail"},
	"internal/api/rest":                    {"internal/adminaudit", "internal/auth", "internal/event", "internal/eventlog", "internal/ingest", "internal/namespace", "internal/store", "internal/trail"},
	"internal/app":                         {"*"},
	"cmd/auditstream":                      {"internal/app", "internal/event", "internal/memlimit", "internal/store", "internal/trail"},
	"cmd/loadgen":                          {},
	"e2e":                                  {},
}

func TestImportDirection(t *testing.T) {
	const module = "github.com/auditstream/auditstream/"
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || strings.Contains(path, "/testdata/") {
			return nil
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		allowed, ok := allowedImports[rel]
		if !ok {
			t.Errorf("%s: package %s has no entry in allowedImports", path, rel)
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			dep, ok := strings.CutPrefix(p, module)
			if !ok || slices.Contains(allowed, "*") {
				continue
			}
			if !slices.Contains(allowed, dep) {
				t.Errorf("%s imports %s: %s may import only %v", rel, dep, rel, allowed)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestEveryCategoryHasASender: every category the API accepts can be delivered to: the engine
// has a factory for it, and its type makes senders.
func TestEveryCategoryHasASender(t *testing.T) {
	types := app.Destinations()
	factories := types.Factories()
	for _, c := range types.Categories() {
		ty, _ := types.Type(c)
		if factories[c] == nil || ty.New == nil {
			t.Errorf("category %q has no sender in app.Destinations", c)
		}
	}
	if len(factories) != len(types.Categories()) {
		t.Errorf("the engine has %d factories for %d categories", len(factories), len(types.Categories()))
	}
}

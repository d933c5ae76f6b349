// Package npmtest installs npm packages for the tests that drive our servers with real
// JavaScript clients (GitLab's gitbeaker, Splunk's splunk-logging).
package npmtest

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Node returns the paths of node and npm. It skips the test when they are missing, unless CI
// is set: then it fails, saying what they are needed for (why).
func Node(t testing.TB, why string) (node, npm string) {
	t.Helper()
	node, errNode := exec.LookPath("node")
	npm, errNpm := exec.LookPath("npm")
	if errNode != nil || errNpm != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node and npm are needed %s (node: %v, npm: %v)", why, errNode, errNpm)
		}
		t.Skipf("node or npm missing (node: %v, npm: %v); CI is not set, so skipping", errNode, errNpm)
	}
	return node, npm
}

// installs serialises installs into one directory: tests that run in parallel share it.
var installs sync.Map // directory → *sync.Mutex

// Install installs pkg at version with npm into <user cache dir>/auditstream-test/<dir>, unless
// that version is there already, and returns the directory's node_modules.
func Install(t testing.TB, npm, dir, pkg, version string) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatalf("no user cache directory to install %s into: %v", pkg, err)
	}
	dir = filepath.Join(cache, "auditstream-test", dir)
	mu, _ := installs.LoadOrStore(dir, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	modules := filepath.Join(dir, "node_modules")
	if b, err := os.ReadFile(filepath.Join(modules, filepath.FromSlash(pkg), "package.json")); err == nil {
		var p struct{ Version string }
		if json.Unmarshal(b, &p) == nil && p.Version == version {
			return modules
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// A package.json of its own keeps npm from installing into a parent directory's project.
	if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"name":"auditstream-npm-test","private":true}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund", pkg+"@"+version)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm install %s@%s in %s: %v\n%s", pkg, version, dir, err, out)
	}
	return modules
}

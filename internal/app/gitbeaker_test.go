package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// gitbeakerVersion is the version of npm's @gitbeaker/rest, the JavaScript GitLab client, that
// the client tests drive the API with, unchanged.
const gitbeakerVersion = "43.8.0"

var gitbeakerInstall struct {
	once    sync.Once
	modules string
	err     string
}

// gitbeakerModules installs @gitbeaker/rest with npm into
// <user cache dir>/auditstream-test/gitbeaker, unless it is there already, and returns its
// node_modules directory and the node binary. Without node and npm the test is skipped, unless
// CI is set: then it fails.
func gitbeakerModules(t *testing.T) (node, modules string) {
	t.Helper()
	node, errNode := exec.LookPath("node")
	npm, errNpm := exec.LookPath("npm")
	if errNode != nil || errNpm != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node and npm are needed to run GitLab's JavaScript client (node: %v, npm: %v)", errNode, errNpm)
		}
		t.Skipf("node or npm missing (node: %v, npm: %v); CI is not set, so skipping", errNode, errNpm)
	}
	gitbeakerInstall.once.Do(func() {
		cache, err := os.UserCacheDir()
		if err != nil {
			gitbeakerInstall.err = "no user cache directory to install @gitbeaker/rest into: " + err.Error()
			return
		}
		dir := filepath.Join(cache, "auditstream-test", "gitbeaker")
		mods := filepath.Join(dir, "node_modules")
		if pkg, err := os.ReadFile(filepath.Join(mods, "@gitbeaker", "rest", "package.json")); err == nil {
			var p struct{ Version string }
			if json.Unmarshal(pkg, &p) == nil && p.Version == gitbeakerVersion {
				gitbeakerInstall.modules = mods
				return
			}
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			gitbeakerInstall.err = err.Error()
			return
		}
		// A package.json of its own keeps npm from installing into a parent directory's project.
		if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"name":"auditstream-gitbeaker-test","private":true}`+"\n"), 0o644); err != nil {
			gitbeakerInstall.err = err.Error()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund", "@gitbeaker/rest@"+gitbeakerVersion)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			gitbeakerInstall.err = "npm install @gitbeaker/rest@" + gitbeakerVersion + ": " + err.Error() + "\n" + string(out)
			return
		}
		gitbeakerInstall.modules = mods
	})
	if gitbeakerInstall.err != "" {
		t.Fatal(gitbeakerInstall.err)
	}
	return node, gitbeakerInstall.modules
}

// gitbeakerError is what the script reports when gitbeaker throws.
type gitbeakerError struct {
	Message     string `json:"message"`
	Status      int    `json:"status"`
	Description string `json:"description"`
}

// gitbeaker runs body, the inside of an async JavaScript function with `api` (a @gitbeaker/rest
// Gitlab client for token against s) in scope, and decodes what it returns into out. When
// gitbeaker throws, it returns the error instead.
func (s *server) gitbeaker(token, body string, out any) *gitbeakerError {
	t := s.t.(*testing.T)
	t.Helper()
	node, modules := gitbeakerModules(t)
	script := `const { Gitlab } = require('@gitbeaker/rest');
const api = new Gitlab({ host: process.env.GITLAB_URL, token: process.env.GITLAB_TOKEN });
(async () => {` + body + `})().then(
  (r) => process.stdout.write(JSON.stringify({ result: r === undefined ? null : r })),
  (e) => process.stdout.write(JSON.stringify({ error: { message: String(e && e.message),
    status: (e && e.cause && e.cause.response && e.cause.response.status) || 0,
    description: String((e && e.cause && e.cause.description) || '') } })));`
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "-e", script)
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules, "GITLAB_URL="+s.base, "GITLAB_TOKEN="+token)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\nstdout: %s\nstderr: %s", err, stdout, stderr.Bytes())
	}
	var res struct {
		Result json.RawMessage `json:"result"`
		Error  *gitbeakerError `json:"error"`
	}
	if err := json.Unmarshal(stdout, &res); err != nil {
		t.Fatalf("node printed %q: %v", stdout, err)
	}
	if res.Error != nil {
		return res.Error
	}
	if out != nil {
		if err := json.Unmarshal(res.Result, out); err != nil {
			t.Fatalf("gitbeaker returned %s: %v", res.Result, err)
		}
	}
	return nil
}

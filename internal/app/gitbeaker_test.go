package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/auditstream/auditstream/internal/npmtest"
)

// gitbeakerVersion is the version of npm's @gitbeaker/rest, the JavaScript GitLab client, that
// the client tests drive the API with, unchanged.
const gitbeakerVersion = "43.8.0"

// gitbeakerModules installs @gitbeaker/rest (npmtest.Install) and returns node and its
// node_modules directory. Without node and npm the test is skipped, unless CI is set: then it
// fails.
func gitbeakerModules(t *testing.T) (node, modules string) {
	t.Helper()
	node, npm := npmtest.Node(t, "to run GitLab's JavaScript client")
	return node, npmtest.Install(t, npm, "gitbeaker", "@gitbeaker/rest", gitbeakerVersion)
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

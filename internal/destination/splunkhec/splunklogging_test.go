package splunkhec

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/internal/npmtest"
)

// splunkLoggingVersion is the version of npm's splunk-logging, Splunk's JavaScript HEC
// client, that proves the test HEC server.
const splunkLoggingVersion = "0.11.1"

// clientResult is what the Node script reports for one send.
type clientResult struct {
	Err    *string `json:"err"`
	Status int     `json:"status"`
	Code   *int    `json:"code"`
	Text   string  `json:"text"`
}

// TestSplunkLoggingAgainstHECServer proves the test HEC server with a real HEC client before
// the Sender is tested against it: splunk-logging sends single and batched events, and the
// server must index them as HEC would and refuse what HEC refuses, in the way the client
// understands.
func TestSplunkLoggingAgainstHECServer(t *testing.T) {
	node, npm := npmtest.Node(t, "to prove the test HEC server with splunk-logging")
	modules := npmtest.Install(t, npm, "splunk-logging", "splunk-logging", splunkLoggingVersion)
	s := newTestHEC(t)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("testdata", "splunk-logging-client.js"))
	cmd.Env = append(os.Environ(),
		"NODE_PATH="+modules,
		"HEC_URL="+s.URL,
		"HEC_TOKEN="+testToken,
		"HEC_ACK_TOKEN="+ackToken,
		"HEC_BAD_TOKEN=00000000-0000-0000-0000-000000000000",
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\nstdout: %s\nstderr: %s", err, stdout, stderr.Bytes())
	}
	var out struct {
		Version           string
		Single            []clientResult
		Batch             clientResult
		BadToken          clientResult
		ForbiddenIndex    clientResult
		AckWithoutChannel clientResult
	}
	if err := json.Unmarshal(stdout, &out); err != nil {
		t.Fatalf("node printed %q: %v", stdout, err)
	}
	t.Logf("splunk-logging %s", out.Version)
	if out.Version != splunkLoggingVersion {
		t.Errorf("splunk-logging version %q, want %q", out.Version, splunkLoggingVersion)
	}

	want := func(name string, r clientResult, status, code int) {
		t.Helper()
		if r.Err != nil || r.Status != status || r.Code == nil || *r.Code != code || r.Text != hecStatuses[code].text {
			t.Errorf("%s: got %+v (err %v), want HTTP %d code %d %q", name, r, r.Err, status, code, hecStatuses[code].text)
		}
	}
	if len(out.Single) != 2 {
		t.Fatalf("single: %+v", out.Single)
	}
	want("single 1", out.Single[0], 200, 0)
	want("single 2", out.Single[1], 200, 0)
	want("batch", out.Batch, 200, 0)
	want("bad token", out.BadToken, 403, 4)
	want("forbidden index", out.ForbiddenIndex, 400, 7)
	want("ack without channel", out.AckWithoutChannel, 400, 10)

	// What the server indexed: the two single events with their metadata, then the batch.
	got := s.indexedEvents()
	if len(got) != 5 {
		t.Fatalf("indexed %d events, want 5: %+v", len(got), got)
	}
	for i, wantTime := range []string{"1732626001.123", "1732626002.123"} {
		e := got[i]
		if e.Endpoint != "event" || e.Time != wantTime || e.Host != "node-host" || e.Source != "splunk-logging" ||
			e.Sourcetype != "node:test" || e.Index != "audit" {
			t.Errorf("single event %d: %+v", i, e)
		}
		var ev struct {
			Message  struct{ N int }
			Severity string
		}
		if err := json.Unmarshal(e.Event, &ev); err != nil || ev.Message.N != i+1 || ev.Severity != "info" {
			t.Errorf("single event %d: event %s", i, e.Event)
		}
	}
	for i, e := range got[2:] {
		var ev struct {
			Message struct {
				N    int
				Kind string
			}
		}
		if err := json.Unmarshal(e.Event, &ev); err != nil || ev.Message.N != i+1 || ev.Message.Kind != "batch" || e.Time == "" {
			t.Errorf("batched event %d: %+v %s", i, e, e.Event)
		}
	}

	// The batch came in one request, its three objects concatenated, to the path
	// splunk-logging uses by default, with the token as HEC wants it.
	reqs := s.dataRequests()
	var batchReq *hecRequest
	for i, r := range reqs {
		if strings.Count(string(r.Body), `"kind":"batch"`) > 0 {
			if batchReq != nil {
				t.Fatalf("the batch came in more than one request")
			}
			batchReq = &reqs[i]
		}
	}
	if batchReq == nil || strings.Count(string(batchReq.Body), `"kind":"batch"`) != 3 {
		t.Fatalf("no request with the three batched events: %+v", reqs)
	}
	if batchReq.Path != "/services/collector/event/1.0" || batchReq.Header.Get("Authorization") != "Splunk "+testToken {
		t.Errorf("batch request: %s %v", batchReq.Path, batchReq.Header)
	}
}

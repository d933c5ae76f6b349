package app_test

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/poll"
)

// TestDatadogDestinationThroughTheService: an owner streams to Datadog's logs intake (a test
// server at its path, checking the API key and reading the gzip array) with one GraphQL call;
// each event arrives as an entry whose message is the event JSON; the test event too; the key
// is never shown.
func TestDatadogDestinationThroughTheService(t *testing.T) {
	const key = "0123456789abcdef0123456789abcdef"
	var mu sync.Mutex
	var messages []string
	intake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v2/logs" || r.Header.Get("DD-API-KEY") != key || r.Header.Get("Content-Encoding") != "gzip" {
			http.Error(w, `{"errors":["Forbidden"]}`, http.StatusForbidden)
			return
		}
		zr, err := gzip.NewReader(r.Body)
		require.NoError(t, err)
		var entries []struct{ Message, Service, Ddsource string }
		if json.NewDecoder(zr).Decode(&entries) != nil {
			http.Error(w, `{"errors":["Invalid JSON"]}`, http.StatusBadRequest)
			return
		}
		mu.Lock()
		for _, e := range entries {
			messages = append(messages, e.Service+" "+e.Ddsource+" "+e.Message)
		}
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(intake.Close)

	s := start(t, "sqlite", noLimits, allowPrivate)
	w := newWorld(t, s)
	owner := w.tokens["owner"]
	id := s.createGroupDestination(owner, "org", "datadog", map[string]any{"url": intake.URL + "/api/v2/logs", "service": "gitlab-prod",
		"batch": map[string]any{"maxEvents": 100, "maxWaitMs": 100}}, key)
	ids := s.ingest(w.tokens["ingest"], ev("member_created", "Group", "org", w.org.ID, w.owner.ID, "one"),
		ev("protected_branch_created", "Project", "org/sub/app", w.proj.ID, w.dev.ID, "two"))

	poll.Until(t, 30*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		found := 0
		for _, m := range messages {
			for _, want := range ids {
				if json.Valid([]byte(m[len("gitlab-prod gitlab "):])) && strings.Contains(m, fmt.Sprintf(`"id":%d,`, want)) {
					found++
				}
			}
		}
		if found < 2 {
			return fmt.Errorf("%d of the 2 events in %d entries", found, len(messages))
		}
		return nil
	})
	p := s.mutate(owner, "auditEventStreamingDestinationTestEventSend",
		`mutation($id: ID!) { auditEventStreamingDestinationTestEventSend(input: {destinationId: $id}) { errors success statusCode error } }`, map[string]any{"id": id})
	require.Equal(t, true, p["success"], p)
	require.EqualValues(t, 202, p["statusCode"])
	data := s.gqlOK(owner, `{ group(fullPath: "org") { externalAuditEventStreamingDestinations { nodes { category secretToken deliveryStatus { status } } } } }`, nil)
	require.NotContains(t, fmt.Sprint(data), key)
	require.Equal(t, "datadog", dig(data, "group", "externalAuditEventStreamingDestinations", "nodes").([]any)[0].(map[string]any)["category"])
}

package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/app"
	"github.com/auditstream/auditstream/internal/eventlog"
	"github.com/auditstream/auditstream/internal/natstest"
	"github.com/auditstream/auditstream/internal/poll"
)

// receivedIDs returns the ids of the events of type typ (all but the service's own
// auditstream_* events when typ is "") a hook received, in order.
func (h *hook) receivedIDs(t *testing.T) []int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []int64
	for i, b := range h.bodies {
		typ := h.headers[i].Get("X-Gitlab-Audit-Event-Type")
		if len(typ) > 12 && typ[:12] == "auditstream_" {
			continue
		}
		var e struct {
			ID int64 `json:"id"`
		}
		require.NoError(t, json.Unmarshal(b, &e))
		require.Equal(t, strconv.FormatInt(e.ID, 10), h.headers[i].Get("webhook-id"))
		out = append(out, e.ID)
	}
	return out
}

func (h *hook) reset() {
	h.mu.Lock()
	h.bodies, h.headers = nil, nil
	h.mu.Unlock()
}

type republishAnswer struct {
	Republished  int    `json:"republished"`
	IDs          string `json:"ids"`
	Destinations []struct {
		ID        int64  `json:"id"`
		Delivered int    `json:"delivered"`
		Failed    int    `json:"failed"`
		LastError string `json:"last_error"`
	} `json:"destinations"`
	AlreadyRepublished int `json:"already_republished"`
	SkippedLost        int `json:"skipped_lost"`
	StreamOnly         int `json:"stream_only"`
	Missing            int `json:"missing"`
	Remaining          int `json:"remaining"`
}

// TestTrailRepublishesWhatTheLogLost: events the log lost and the store kept (before the tree
// had them, recovered; after, a hole at a stored leaf) reach, after POST …/trail/republish,
// the HTTP receivers of the destinations whose filters take them, with their original ids; the
// one lost without a copy is counted; a second call sends nothing; the call is an audit event;
// only administrators may make it.
func TestTrailRepublishesWhatTheLogLost(t *testing.T) {
	forEachDriver(t, testTrailRepublishesWhatTheLogLost)
}

func testTrailRepublishesWhatTheLogLost(t *testing.T, driver string) {
	port := natstest.FreePort(t)
	cfg := serviceConfig(t, driver, noLimits, allowPrivate, trailConfig, func(c *app.Config) {
		c.Trail = false // the log loses events before the tree has any
		c.NATSListen = fmt.Sprintf("127.0.0.1:%d", port)
	})
	s := startCfg(t, cfg)
	w := newWorld(t, s)
	orgHook, otherHook, allHook := newHook(t), newHook(t), newHook(t)
	s.createGroupDestination(w.tokens["owner"], "org", "http", map[string]any{"url": orgHook.URL}, "")
	s.createGroupDestination(w.tokens["outside"], "other", "http", map[string]any{"url": otherHook.URL}, "")
	s.createInstanceDestination("http", map[string]any{"url": allHook.URL}, "")

	ids := s.ingest(w.tokens["ingest"],
		ev("member_created", "Group", "org", w.org.ID, w.owner.ID, "lost before the tree, kept"),                   // 0: recovered
		ev("protected_branch_created", "Project", "org/sub/app", w.proj.ID, w.dev.ID, "lost after the tree, kept"), // 1: a hole
		ev("member_created", "Group", "other", w.other.ID, w.outside.ID, "the other group's, lost, kept"),          // 2: recovered
		map[string]any{"event_type": "repository_git_operation", "entity_type": "Project", "entity_path": "org/sub/app", "entity_id": w.proj.ID,
			"author_id": 1, "details": map[string]any{"n": 1}}, // 3: stream-only, lost without a copy
		ev("member_updated", "Group", "org", w.org.ID, w.owner.ID, "never lost"), // 4
	)
	poll.Until(t, 20*time.Second, func() error {
		if got := allHook.receivedIDs(t); !slices.Contains(got, ids[4]) || len(orgHook.receivedIDs(t)) < 4 || len(otherHook.receivedIDs(t)) < 1 {
			return fmt.Errorf("received %v", got)
		}
		return nil
	})
	poll.Until(t, 20*time.Second, func() error { // the store has its copies before the log loses them
		for _, i := range []int{0, 1, 2, 4} {
			if status, body, _ := s.do(http.MethodGet, "/api/v4/audit_events/"+strconv.FormatInt(ids[i], 10), s.admin, "", nil); status != http.StatusOK {
				return fmt.Errorf("event %d: %d %s", ids[i], status, body)
			}
		}
		return nil
	})

	nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", port))
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	stream, err := js.Stream(t.Context(), eventlog.StreamName)
	require.NoError(t, err)
	for _, i := range []int{0, 2, 3} { // the log loses them before the tree has them
		require.NoError(t, stream.DeleteMsg(t.Context(), uint64(ids[i])))
	}
	s.shutdown()

	cfg.Trail = true
	s = startCfg(t, cfg)
	s.checkpoint(ids[4])
	require.NoError(t, stream.DeleteMsg(t.Context(), uint64(ids[1]))) // the log loses it after the tree has it
	orgHook.reset()
	otherHook.reset()
	allHook.reset()

	status, body, _ := s.do(http.MethodPost, "/api/v4/auditstream/trail/republish", w.tokens["owner"], "application/json", []byte(`{}`))
	require.Equal(t, http.StatusForbidden, status, "%s", body)
	status, body, _ = s.do(http.MethodPost, "/api/v4/auditstream/trail/republish", s.admin, "application/json", []byte(`{"ids":"`+strconv.FormatInt(ids[4], 10)+`"}`))
	require.Equal(t, http.StatusUnprocessableEntity, status, "%s", body)
	require.Contains(t, string(body), `"not_recovered"`)

	otherHook.setStatus(http.StatusUnprocessableEntity) // refuses: a dead letter
	status, body, _ = s.do(http.MethodPost, "/api/v4/auditstream/trail/republish", s.admin, "application/json", []byte(`{}`))
	require.Equal(t, http.StatusOK, status, "%s", body)
	var rep republishAnswer
	require.NoError(t, json.Unmarshal(body, &rep))
	require.Equal(t, 3, rep.Republished, "%s", body)
	require.Equal(t, 1, rep.SkippedLost, "%s", body)
	require.Equal(t, 0, rep.Remaining)
	require.Len(t, rep.Destinations, 3, "%s", body)
	var failed int
	for _, d := range rep.Destinations {
		failed += d.Failed
		if d.Failed > 0 {
			require.Equal(t, 0, d.Delivered)
			require.Contains(t, d.LastError, "422")
		}
	}
	require.Equal(t, 1, failed, "%s", body)
	require.Equal(t, []int64{ids[0], ids[1]}, orgHook.receivedIDs(t), "the group's two kept events, with their ids")
	require.Equal(t, []int64{ids[0], ids[1], ids[2]}, allHook.receivedIDs(t), "the instance's: every kept event")
	letters := s.gqlOK(w.tokens["outside"], `query { group(fullPath: "other") { externalAuditEventStreamingDestinations { nodes { deadLetters(first: 5) { count nodes { eventId } } } } } }`, nil)
	require.Equal(t, float64(1), dig(letters, "group", "externalAuditEventStreamingDestinations", "nodes", "0", "deadLetters", "count"), "%v", letters)
	require.Equal(t, strconv.FormatInt(ids[2], 10), dig(letters, "group", "externalAuditEventStreamingDestinations", "nodes", "0", "deadLetters", "nodes", "0", "eventId"))

	// A second call sends nothing.
	status, body, _ = s.do(http.MethodPost, "/api/v4/auditstream/trail/republish", s.admin, "application/json", nil)
	require.Equal(t, http.StatusOK, status, "%s", body)
	rep = republishAnswer{}
	require.NoError(t, json.Unmarshal(body, &rep))
	require.Equal(t, 0, rep.Republished, "%s", body)
	require.Equal(t, 3, rep.AlreadyRepublished, "%s", body)
	require.Len(t, orgHook.receivedIDs(t), 2)
	require.Len(t, allHook.receivedIDs(t), 3)

	// A kept id the store has no row of (deleted here) is missing: counted, sent to nobody,
	// and it takes no place in the batch.
	require.NoError(t, stream.DeleteMsg(t.Context(), uint64(ids[4])))
	tamper(t, cfg, `DELETE FROM events WHERE id = ?`, `DELETE FROM events WHERE id = $1`, ids[4])
	status, body, _ = s.do(http.MethodPost, "/api/v4/auditstream/trail/republish", s.admin, "application/json", nil)
	require.Equal(t, http.StatusOK, status, "%s", body)
	rep = republishAnswer{}
	require.NoError(t, json.Unmarshal(body, &rep))
	require.Equal(t, republishAnswer{IDs: "none", Destinations: rep.Destinations, AlreadyRepublished: 3, SkippedLost: 1, Missing: 1}, rep, "%s", body)
	require.Empty(t, rep.Destinations)

	// The action is an audit event, delivered like any other.
	poll.Until(t, 20*time.Second, func() error {
		if !slices.Contains(allHook.types(), "auditstream_trail_republished") {
			return fmt.Errorf("received %v", allHook.types())
		}
		return nil
	})
}

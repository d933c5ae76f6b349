package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/eventlog"
	"github.com/auditstream/auditstream/internal/ingest"
	"github.com/auditstream/auditstream/internal/namespace"
	"github.com/auditstream/auditstream/internal/store"
)

// publishFunc adapts a function to ingest.Publisher.
type publishFunc func(ctx context.Context, msgs []eventlog.Message) ([]int64, error)

func (f publishFunc) Publish(ctx context.Context, msgs []eventlog.Message) ([]int64, error) {
	return f(ctx, msgs)
}

// learnFunc adapts a function to ingest.Learner.
type learnFunc func(ctx context.Context, kind store.NamespaceKind, fullPath string, id int64) (store.Namespace, error)

func (f learnFunc) Learn(ctx context.Context, kind store.NamespaceKind, fullPath string, id int64) (store.Namespace, error) {
	return f(ctx, kind, fullPath, id)
}

// LearnBound is Learn: what a bound producer may change is namespace's to enforce (its tests).
func (f learnFunc) LearnBound(ctx context.Context, kind store.NamespaceKind, fullPath string, id int64) (store.Namespace, error) {
	return f(ctx, kind, fullPath, id)
}

// Chain returns the namespace alone: the fixture's namespaces have no ancestors.
func (f learnFunc) Chain(ctx context.Context, ns store.Namespace) ([]store.Namespace, error) {
	return []store.Namespace{ns}, nil
}

// Check lets Learn decide.
func (f learnFunc) Check(context.Context, store.NamespaceKind, string, int64) error { return nil }

type learnCall struct {
	Kind     store.NamespaceKind
	FullPath string
	ID       int64
}

// fixture is a Service with a recording publisher and learner.
type fixture struct {
	svc *ingest.Service

	mu         sync.Mutex
	published  [][]eventlog.Message // one entry per Publish call
	publishCtx []context.Context
	learned    []learnCall
	nextID     int64
	publishErr error                                  // returned by Publish when set
	learnErr   func(fullPath string) error            // returned by Learn when set and not nil
	topKeys    map[string]int64                       // top-level group path -> TopKey
	nsIDs      map[string]int64                       // full path -> the namespace's id
	onPublish  func(ctx context.Context)              // called in Publish when set
	onLearn    func(ctx context.Context, path string) // called in Learn when set
}

var (
	testNow        = time.Date(2025, 10, 14, 18, 0, 8, 677_000_000, time.UTC)
	defaultCatalog = sync.OnceValues(func() (*event.Catalog, error) { return event.Load("") })
)

func setup(tb testing.TB) *fixture {
	tb.Helper()
	cat, err := defaultCatalog()
	require.NoError(tb, err)
	fx := &fixture{
		nextID:  100,
		topKeys: map[string]int64{"acme": 7, "gitlab-duo": 42, "example-group": 3},
		nsIDs:   map[string]int64{"acme": 70, "acme/app": 71, "acme/sub/app": 72, "gitlab-duo": 24},
	}
	fx.svc = &ingest.Service{
		Catalog: cat,
		Learner: learnFunc(func(ctx context.Context, kind store.NamespaceKind, fullPath string, id int64) (store.Namespace, error) {
			fx.mu.Lock()
			defer fx.mu.Unlock()
			fx.learned = append(fx.learned, learnCall{kind, fullPath, id})
			if fx.onLearn != nil {
				fx.onLearn(ctx, fullPath)
			}
			if fx.learnErr != nil {
				if err := fx.learnErr(fullPath); err != nil {
					return store.Namespace{}, err
				}
			}
			top, _, _ := strings.Cut(fullPath, "/")
			key, ok := fx.topKeys[top]
			if !ok {
				key = 999
			}
			nsID, ok := fx.nsIDs[fullPath]
			if !ok {
				nsID = id
			}
			return store.Namespace{Key: key*100 + 1, Kind: kind, ID: nsID, FullPath: fullPath, TopKey: key}, nil
		}),
		Publisher: publishFunc(func(ctx context.Context, msgs []eventlog.Message) ([]int64, error) {
			fx.mu.Lock()
			defer fx.mu.Unlock()
			fx.published = append(fx.published, msgs)
			fx.publishCtx = append(fx.publishCtx, ctx)
			if fx.onPublish != nil {
				fx.onPublish(ctx)
			}
			if fx.publishErr != nil {
				return nil, fx.publishErr
			}
			ids := make([]int64, len(msgs))
			for i := range ids {
				ids[i] = fx.nextID
				fx.nextID++
			}
			return ids, nil
		}),
		NowFunc: func() time.Time { return testNow },
	}
	return fx
}

func (fx *fixture) ingest(tb testing.TB, body string, format ingest.Format, headerKey string, allow func(int) bool) (ingest.Result, error) {
	tb.Helper()
	return fx.svc.Ingest(tb.Context(), ingest.Request{Body: strings.NewReader(body), Format: format, IdempotencyKey: headerKey, Allow: allow})
}

// messages returns every published message, checking there was at most one Publish call.
func (fx *fixture) messages(tb testing.TB) []eventlog.Message {
	tb.Helper()
	fx.mu.Lock()
	defer fx.mu.Unlock()
	require.LessOrEqual(tb, len(fx.published), 1, "a request is published in one call")
	if len(fx.published) == 0 {
		return nil
	}
	return fx.published[0]
}

func (fx *fixture) publishCalls() int {
	fx.mu.Lock()
	defer fx.mu.Unlock()
	return len(fx.published)
}

func (fx *fixture) learnCalls() []learnCall {
	fx.mu.Lock()
	defer fx.mu.Unlock()
	return append([]learnCall(nil), fx.learned...)
}

// Events used in request bodies.
const (
	groupEvent    = `{"event_type":"group_share_with_group_link_created","entity_type":"Group","entity_id":24,"entity_path":"gitlab-duo","author_id":1,"author_name":"Administrator","target_id":24,"target_type":"Group","target_details":"Gitlab Org","ip_address":"172.16.123.1","details":{"custom_message":"Invited Gitlab Org to the group"},"created_at":"2025-10-14T18:00:08.677Z"}`
	projectEvent  = `{"event_type":"repository_git_operation","entity_type":"Project","entity_path":"acme/app","author_id":-3,"author_name":"deploy-key-name","details":{"custom_message":{"protocol":"ssh","action":"git-upload-pack"}}}`
	userEvent     = `{"event_type":"add_gpg_key","entity_type":"User","entity_id":51,"entity_path":"andreas","author_id":51}`
	instanceEvent = `{"event_type":"audit_events_streaming_instance_headers_create","entity_type":"Instance","author_id":43,"author_name":"Administrator"}`
	invalidEvent  = `{"event_type":"no_such_type","entity_type":"Group","entity_path":"acme"}`
)

func array(events ...string) string  { return "[" + strings.Join(events, ",") + "]" }
func ndjson(events ...string) string { return strings.Join(events, "\n") + "\n" }

// requestError returns err as a *ingest.RequestError, failing when it is not one.
func requestError(tb testing.TB, err error) *ingest.RequestError {
	tb.Helper()
	require.Error(tb, err)
	var re *ingest.RequestError
	require.ErrorAs(tb, err, &re, "error %v (%T)", err, err)
	require.Equal(tb, re.Code+": "+re.Message, re.Error())
	return re
}

func decodeData(tb testing.TB, m eventlog.Message) map[string]json.RawMessage {
	tb.Helper()
	require.True(tb, json.Valid(m.Data), "%s", m.Data)
	var out map[string]json.RawMessage
	require.NoError(tb, json.Unmarshal(m.Data, &out))
	var ev event.Event
	require.NoError(tb, json.Unmarshal(m.Data, &ev))
	return out
}

func TestIngestBodies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		body   string
		format ingest.Format
		types  []string // event types published, in order
	}{
		{"one object", groupEvent, ingest.FormatJSON, []string{"group_share_with_group_link_created"}},
		{"one object with surrounding whitespace", " \r\n\t" + groupEvent + "\r\n \t", ingest.FormatJSON, []string{"group_share_with_group_link_created"}},
		{"array of one", array(groupEvent), ingest.FormatJSON, []string{"group_share_with_group_link_created"}},
		{"array", array(groupEvent, projectEvent, userEvent, instanceEvent), ingest.FormatJSON,
			[]string{"group_share_with_group_link_created", "repository_git_operation", "add_gpg_key", "audit_events_streaming_instance_headers_create"}},
		{"pretty array", "[\n  " + groupEvent + " ,\n\n  " + userEvent + "\n]\n", ingest.FormatJSON,
			[]string{"group_share_with_group_link_created", "add_gpg_key"}},
		{"ndjson", ndjson(groupEvent, projectEvent, userEvent), ingest.FormatNDJSON,
			[]string{"group_share_with_group_link_created", "repository_git_operation", "add_gpg_key"}},
		{"ndjson one line without newline", userEvent, ingest.FormatNDJSON, []string{"add_gpg_key"}},
		{"ndjson blank lines and CRLF", "\r\n\r\n" + groupEvent + "\r\n\r\n\r\n" + userEvent + "\r\n   \r\n" + instanceEvent + "\r\n\r\n",
			ingest.FormatNDJSON, []string{"group_share_with_group_link_created", "add_gpg_key", "audit_events_streaming_instance_headers_create"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fx := setup(t)
			res, err := fx.ingest(t, tt.body, tt.format, "", nil)
			require.NoError(t, err)
			want := make([]int64, len(tt.types))
			for i := range want {
				want[i] = 100 + int64(i)
			}
			require.Equal(t, want, res.IDs, "the publisher's ids, in order")
			msgs := fx.messages(t)
			require.Len(t, msgs, len(tt.types))
			for i, m := range msgs {
				got := decodeData(t, m)
				require.JSONEq(t, `"`+tt.types[i]+`"`, string(got["event_type"]))
				require.NotContains(t, got, "id", "the log assigns the id")
				require.True(t, strings.HasSuffix(m.Subject, "."+tt.types[i]), m.Subject)
				require.Empty(t, m.MsgID)
			}
		})
	}
}

func TestIngestPublishedEvent(t *testing.T) {
	t.Parallel()
	fx := setup(t)
	_, err := fx.ingest(t, groupEvent, ingest.FormatJSON, "", nil)
	require.NoError(t, err)
	msgs := fx.messages(t)
	require.Len(t, msgs, 1)
	require.JSONEq(t, `{"author_id":1,"author_name":"Administrator","entity_id":24,"entity_type":"Group",
		"entity_path":"gitlab-duo","details":{"custom_message":"Invited Gitlab Org to the group",
		"event_name":"group_share_with_group_link_created","author_name":"Administrator","target_id":24,"target_type":"Group","target_details":"Gitlab Org",
		"ip_address":"172.16.123.1","entity_path":"gitlab-duo"},"ip_address":"172.16.123.1","target_id":24,
		"target_type":"Group","target_details":"Gitlab Org","created_at":"2025-10-14T18:00:08.677Z",
		"event_type":"group_share_with_group_link_created"}`, string(msgs[0].Data))
	require.Equal(t, "audit.g42.group_share_with_group_link_created", msgs[0].Subject)
	require.Equal(t, []learnCall{{store.KindGroup, "gitlab-duo", 24}}, fx.learnCalls())
}

func TestIngestCreatedAtDefaultsToNow(t *testing.T) {
	t.Parallel()
	fx := setup(t)
	fx.svc.NowFunc = func() time.Time { return time.Date(2030, 1, 2, 4, 4, 5, 6_789_000, time.FixedZone("", 3600)) }
	_, err := fx.ingest(t, userEvent, ingest.FormatJSON, "", nil)
	require.NoError(t, err)
	got := decodeData(t, fx.messages(t)[0])
	require.JSONEq(t, `"2030-01-02T03:04:05.006Z"`, string(got["created_at"]))
}

func TestIngestSubjects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		body         string
		subject      string
		learn        []learnCall
		wantEntityID int64
	}{
		{"group", `{"event_type":"group_created","entity_type":"Group","entity_path":"acme"}`,
			"audit.g7.group_created", []learnCall{{store.KindGroup, "acme", 0}}, 70},
		{"subgroup", `{"event_type":"group_created","entity_type":"Group","entity_path":"acme/sub","entity_id":5}`,
			"audit.g7.group_created", []learnCall{{store.KindGroup, "acme/sub", 5}}, 5},
		{"project", projectEvent,
			"audit.g7.repository_git_operation", []learnCall{{store.KindProject, "acme/app", 0}}, 71},
		{"project in a subgroup", `{"event_type":"repository_git_operation","entity_type":"Project","entity_path":"acme/sub/app","entity_id":9}`,
			"audit.g7.repository_git_operation", []learnCall{{store.KindProject, "acme/sub/app", 9}}, 72},
		{"other top-level group", groupEvent,
			"audit.g42.group_share_with_group_link_created", []learnCall{{store.KindGroup, "gitlab-duo", 24}}, 24},
		{"instance", instanceEvent, "audit.instance.audit_events_streaming_instance_headers_create", nil, 1},
		{"instance scope", `{"event_type":"application_setting_updated","entity_type":"Gitlab::Audit::InstanceScope"}`,
			"audit.instance.application_setting_updated", nil, 1},
		{"user", userEvent, "audit.user.add_gpg_key", nil, 51},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fx := setup(t)
			_, err := fx.ingest(t, tt.body, ingest.FormatJSON, "", nil)
			require.NoError(t, err)
			msgs := fx.messages(t)
			require.Len(t, msgs, 1)
			require.Equal(t, tt.subject, msgs[0].Subject)
			require.Equal(t, tt.learn, nilIfEmpty(fx.learnCalls()), "only groups and projects are learned")
			got := decodeData(t, msgs[0])
			require.Equal(t, fmt.Sprint(tt.wantEntityID), string(got["entity_id"]), "entity_id is the namespace's id")
		})
	}
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestIngestRejectsRequests(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		body    string
		format  ingest.Format
		limits  ingest.Limits
		header  string
		code    string
		events  []ingest.EventError // index and field only (code and message unchecked when empty)
		message string              // part of the message
	}{
		{name: "empty body", body: "", code: ingest.CodeEmpty},
		{name: "empty ndjson body", body: "", format: ingest.FormatNDJSON, code: ingest.CodeEmpty},
		{name: "whitespace only", body: " \r\n\t \n", code: ingest.CodeEmpty},
		{name: "ndjson whitespace only", body: "\r\n\r\n  \n", format: ingest.FormatNDJSON, code: ingest.CodeEmpty},
		{name: "empty array", body: " [ ] ", code: ingest.CodeEmpty},
		{name: "trailing garbage after one object", body: groupEvent + " garbage", code: ingest.CodeInvalidJSON, message: "trailing data"},
		{name: "two objects in JSON format", body: groupEvent + "\n" + userEvent, code: ingest.CodeInvalidJSON, message: "NDJSON"},
		{name: "trailing data after an array", body: array(groupEvent) + "]", code: ingest.CodeInvalidJSON, message: "trailing data"},
		{name: "unterminated object", body: `{"event_type":"add_gpg_key"`, code: ingest.CodeInvalidJSON,
			events: []ingest.EventError{{Index: 0}}},
		{name: "malformed event at index 2 of an array", body: "[" + groupEvent + "," + userEvent + `,{"event_type":}` + "," + userEvent + "]",
			code: ingest.CodeInvalidJSON, events: []ingest.EventError{{Index: 2}}, message: "event 2"},
		{name: "trailing comma in an array", body: "[" + groupEvent + "," + userEvent + ",]",
			code: ingest.CodeInvalidJSON, events: []ingest.EventError{{Index: 2}}},
		{name: "unterminated array", body: "[" + groupEvent + "," + userEvent,
			code: ingest.CodeInvalidJSON, events: []ingest.EventError{{Index: 2}}},
		{name: "malformed line 3 of ndjson", body: ndjson(groupEvent, userEvent, "\n", `{"event_type":"add_gpg_key",}`, userEvent),
			format: ingest.FormatNDJSON, code: ingest.CodeInvalidJSON, events: []ingest.EventError{{Index: 2}}, message: "event 2"},
		{name: "ndjson truncated last line", body: ndjson(groupEvent) + `{"event_type":"add`,
			format: ingest.FormatNDJSON, code: ingest.CodeInvalidJSON, events: []ingest.EventError{{Index: 1}}},
		{name: "unknown field", body: array(userEvent, `{"event_type":"add_gpg_key","entity_type":"User","entity_id":1,"severity":"high"}`),
			code: ingest.CodeInvalidJSON, events: []ingest.EventError{{Index: 1, Errors: []event.FieldError{{Field: "severity"}}}}, message: "severity"},
		{name: "unknown field in ndjson", body: ndjson(`{"event_type":"add_gpg_key","entity_type":"User","entity_id":1,"entityType":"User"}`),
			format: ingest.FormatNDJSON, code: ingest.CodeInvalidJSON, events: []ingest.EventError{{Index: 0, Errors: []event.FieldError{{Field: "entityType"}}}}},
		{name: "entity_id as a string", body: `{"event_type":"add_gpg_key","entity_type":"User","entity_id":"51"}`,
			code: ingest.CodeInvalidJSON, events: []ingest.EventError{{Index: 0, Errors: []event.FieldError{{Field: "entity_id"}}}}, message: "entity_id must be an integer"},
		{name: "author_id as a float", body: array(userEvent, `{"event_type":"add_gpg_key","entity_type":"User","entity_id":5,"author_id":1.5}`),
			code: ingest.CodeInvalidJSON, events: []ingest.EventError{{Index: 1, Errors: []event.FieldError{{Field: "author_id"}}}}},
		{name: "author_name as a number", body: `{"event_type":"add_gpg_key","entity_type":"User","entity_id":5,"author_name":7}`,
			code: ingest.CodeInvalidJSON, events: []ingest.EventError{{Index: 0, Errors: []event.FieldError{{Field: "author_name"}}}}, message: "author_name must be a string"},
		{name: "event not an object", body: `[` + userEvent + `,42]`,
			code: ingest.CodeInvalidJSON, events: []ingest.EventError{{Index: 1}}, message: "must be a JSON object"},
		{name: "body a string", body: `"hello"`,
			code: ingest.CodeInvalidJSON, events: []ingest.EventError{{Index: 0}}, message: "must be a JSON object"},
		{name: "ndjson line an array", body: ndjson(userEvent, array(userEvent)), format: ingest.FormatNDJSON,
			code: ingest.CodeInvalidJSON, events: []ingest.EventError{{Index: 1}}},
		{name: "too many events in an array", body: array(userEvent, userEvent, userEvent), limits: ingest.Limits{MaxEvents: 2},
			code: ingest.CodeTooManyEvents, message: "at most 2"},
		{name: "too many events in ndjson", body: ndjson(userEvent, userEvent, userEvent), format: ingest.FormatNDJSON, limits: ingest.Limits{MaxEvents: 2},
			code: ingest.CodeTooManyEvents, message: "at most 2"},
		{name: "event too large", body: array(userEvent, `{"event_type":"add_gpg_key","entity_type":"User","entity_id":5,"details":{"x":"`+strings.Repeat("x", 600)+`"}}`),
			limits: ingest.Limits{MaxEventBytes: 512},
			code:   ingest.CodeEventTooLarge, events: []ingest.EventError{{Index: 1}}, message: "limit is 512"},
		{name: "Idempotency-Key header with a batch", body: array(userEvent, userEvent), header: "key-1",
			code: ingest.CodeIdempotencyKey, message: "single event"},
		{name: "Idempotency-Key header with ndjson batch", body: ndjson(userEvent, userEvent), format: ingest.FormatNDJSON, header: "key-1",
			code: ingest.CodeIdempotencyKey},
		{name: "Idempotency-Key header too long", body: userEvent, header: strings.Repeat("k", 256),
			code: ingest.CodeIdempotencyKey, message: "255"},
		{name: "Idempotency-Key header not UTF-8", body: userEvent, header: "key-\xff",
			code: ingest.CodeValidation, events: []ingest.EventError{{Index: 0, Errors: []event.FieldError{{Field: "idempotency_key"}}}}},
		{name: "invalid event", body: invalidEvent,
			code: ingest.CodeValidation, events: []ingest.EventError{{Index: 0, Errors: []event.FieldError{{Field: "event_type"}}}}, message: "1 of 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fx := setup(t)
			fx.svc.Limits = tt.limits
			allowed := false
			res, err := fx.ingest(t, tt.body, tt.format, tt.header, func(int) bool { allowed = true; return true })
			re := requestError(t, err)
			require.Equal(t, tt.code, re.Code, "message: %s", re.Message)
			require.Contains(t, re.Message, tt.message)
			require.Empty(t, res.IDs)
			require.Equal(t, 0, fx.publishCalls(), "nothing of a rejected request is published")
			if tt.code != ingest.CodeEventTooLarge { // the size is known once the event is encoded
				require.False(t, allowed, "no rate-limit tokens are taken by a request rejected before publishing")
			}
			if tt.events != nil {
				require.Len(t, re.Events, len(tt.events), "%+v", re.Events)
				for i, want := range tt.events {
					require.Equal(t, want.Index, re.Events[i].Index)
					require.NotEmpty(t, re.Events[i].Errors)
					for j, fe := range want.Errors {
						require.Equal(t, fe.Field, re.Events[i].Errors[j].Field)
					}
					for _, fe := range re.Events[i].Errors {
						require.NotEmpty(t, fe.Code)
						require.NotEmpty(t, fe.Message)
					}
				}
			}
			// The error is a stable JSON body.
			b, err := json.Marshal(re)
			require.NoError(t, err)
			require.True(t, json.Valid(b))
		})
	}
}

func TestIngestAtTheLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		body   string
		format ingest.Format
		limits ingest.Limits
		n      int
	}{
		{"array of exactly MaxEvents", array(userEvent, userEvent), ingest.FormatJSON, ingest.Limits{MaxEvents: 2}, 2},
		{"ndjson of exactly MaxEvents", ndjson(userEvent, userEvent), ingest.FormatNDJSON, ingest.Limits{MaxEvents: 2}, 2},
		{"ndjson of exactly MaxEvents without final newline", userEvent + "\n" + userEvent, ingest.FormatNDJSON, ingest.Limits{MaxEvents: 2}, 2},
		{"ndjson of exactly MaxEvents with trailing blank lines", ndjson(userEvent, userEvent) + "\r\n\r\n", ingest.FormatNDJSON, ingest.Limits{MaxEvents: 2}, 2},
		{"single object with MaxEvents 1", userEvent, ingest.FormatJSON, ingest.Limits{MaxEvents: 1}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fx := setup(t)
			fx.svc.Limits = tt.limits
			res, err := fx.ingest(t, tt.body, tt.format, "", nil)
			require.NoError(t, err)
			require.Len(t, res.IDs, tt.n)
		})
	}
}

func TestIngestEventOfExactlyMaxEventBytes(t *testing.T) {
	t.Parallel()
	fx := setup(t)
	_, err := fx.ingest(t, userEvent, ingest.FormatJSON, "", nil)
	require.NoError(t, err)
	size := len(fx.messages(t)[0].Data)

	fx = setup(t)
	fx.svc.Limits.MaxEventBytes = size
	_, err = fx.ingest(t, userEvent, ingest.FormatJSON, "", nil)
	require.NoError(t, err, "an event of exactly the limit is accepted")

	fx = setup(t)
	fx.svc.Limits.MaxEventBytes = size - 1
	_, err = fx.ingest(t, userEvent, ingest.FormatJSON, "", nil)
	require.Equal(t, ingest.CodeEventTooLarge, requestError(t, err).Code)
	require.Equal(t, 0, fx.publishCalls())
}

func TestIngestDefaultLimits(t *testing.T) {
	t.Parallel()
	fx := setup(t)
	// 300 KB of details: over the default 256 KiB.
	big := `{"event_type":"add_gpg_key","entity_type":"User","entity_id":5,"details":{"x":"` + strings.Repeat("x", 300<<10) + `"}}`
	_, err := fx.ingest(t, big, ingest.FormatJSON, "", nil)
	require.Equal(t, ingest.CodeEventTooLarge, requestError(t, err).Code)

	// 10,001 events: over the default 10,000.
	body := strings.Repeat(userEvent+"\n", 10_001)
	_, err = fx.ingest(t, body, ingest.FormatNDJSON, "", nil)
	require.Equal(t, ingest.CodeTooManyEvents, requestError(t, err).Code)
	require.Equal(t, 0, fx.publishCalls())
}

func TestIngestValidationReportsEveryInvalidEvent(t *testing.T) {
	t.Parallel()
	for _, format := range []ingest.Format{ingest.FormatJSON, ingest.FormatNDJSON} {
		t.Run(fmt.Sprint(format), func(t *testing.T) {
			t.Parallel()
			fx := setup(t)
			events := []string{
				groupEvent,
				invalidEvent,
				userEvent,
				`{"event_type":"add_gpg_key","entity_type":"User","ip_address":"nope","created_at":"yesterday"}`,
				projectEvent,
			}
			body := array(events...)
			if format == ingest.FormatNDJSON {
				body = ndjson(events...)
			}
			allowCalls := 0
			_, err := fx.ingest(t, body, format, "", func(int) bool { allowCalls++; return true })
			re := requestError(t, err)
			require.Equal(t, ingest.CodeValidation, re.Code)
			require.Contains(t, re.Message, "2 of 5")
			require.Len(t, re.Events, 2)
			require.Equal(t, 1, re.Events[0].Index)
			require.Equal(t, []event.FieldError{{Field: "event_type", Code: event.CodeUnknownEventType,
				Message: `"no_such_type" is not in the event-type catalog`}}, re.Events[0].Errors)
			require.Equal(t, 3, re.Events[1].Index)
			var fields []string
			for _, fe := range re.Events[1].Errors {
				fields = append(fields, fe.Field)
			}
			require.Equal(t, []string{"entity_id", "ip_address", "created_at"}, fields, "every problem of the event")

			require.Equal(t, 0, fx.publishCalls(), "a batch with an invalid event publishes nothing")
			require.Empty(t, fx.learnCalls(), "nor learns namespaces")
			require.Equal(t, 0, allowCalls, "nor takes rate-limit tokens")
		})
	}
}

func TestIngestIdempotencyKeys(t *testing.T) {
	t.Parallel()
	withKey := func(ev, key string) string {
		return strings.TrimSuffix(ev, "}") + `,"idempotency_key":"` + key + `"}`
	}
	tests := []struct {
		name   string
		body   string
		format ingest.Format
		header string
		want   []string // MsgIDs
	}{
		{"no key", userEvent, ingest.FormatJSON, "", []string{""}},
		{"header for one event", userEvent, ingest.FormatJSON, "hdr-1", []string{"hdr-1"}},
		{"header for one event in an array", array(userEvent), ingest.FormatJSON, "hdr-1", []string{"hdr-1"}},
		{"header for one ndjson event", ndjson(userEvent), ingest.FormatNDJSON, "hdr-1", []string{"hdr-1"}},
		{"header of 255 bytes", userEvent, ingest.FormatJSON, strings.Repeat("k", 255), []string{strings.Repeat("k", 255)}},
		{"event field", withKey(userEvent, "ev-1"), ingest.FormatJSON, "", []string{"ev-1"}},
		{"event field wins over the header", withKey(userEvent, "ev-1"), ingest.FormatJSON, "hdr-1", []string{"ev-1"}},
		{"per-event keys in a batch", array(withKey(userEvent, "a"), userEvent, withKey(groupEvent, "c")), ingest.FormatJSON, "",
			[]string{"a", "", "c"}},
		{"per-event keys in ndjson", ndjson(withKey(userEvent, "a"), withKey(instanceEvent, "b")), ingest.FormatNDJSON, "",
			[]string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fx := setup(t)
			_, err := fx.ingest(t, tt.body, tt.format, tt.header, nil)
			require.NoError(t, err)
			var got []string
			for _, m := range fx.messages(t) {
				got = append(got, m.MsgID)
				require.NotContains(t, string(m.Data), "idempotency_key", "the key is not part of the event")
			}
			require.Equal(t, tt.want, got)
		})
	}
}

func TestIngestRateLimit(t *testing.T) {
	t.Parallel()
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		fx := setup(t)
		var asked []int
		_, err := fx.ingest(t, array(userEvent, groupEvent, instanceEvent), ingest.FormatJSON, "", func(n int) bool {
			asked = append(asked, n)
			return false
		})
		re := requestError(t, err)
		require.Equal(t, ingest.CodeRateLimited, re.Code)
		require.Equal(t, []int{3}, asked, "asked once, for every event of the request")
		require.Equal(t, 0, fx.publishCalls())
		require.Empty(t, fx.learnCalls())
	})
	t.Run("allowed", func(t *testing.T) {
		t.Parallel()
		fx := setup(t)
		var asked []int
		res, err := fx.ingest(t, ndjson(userEvent, groupEvent), ingest.FormatNDJSON, "", func(n int) bool {
			asked = append(asked, n)
			return true
		})
		require.NoError(t, err)
		require.Len(t, res.IDs, 2)
		require.Equal(t, []int{2}, asked)
	})
	t.Run("with a RateLimiter", func(t *testing.T) {
		t.Parallel()
		fx := setup(t)
		lim := &ingest.RateLimiter{Rate: 1e-9, Burst: 3}
		allow := func(n int) bool { return lim.Allow(1, n) }
		_, err := fx.ingest(t, array(userEvent, userEvent), ingest.FormatJSON, "", allow)
		require.NoError(t, err)
		_, err = fx.ingest(t, array(userEvent, userEvent), ingest.FormatJSON, "", allow)
		require.Equal(t, ingest.CodeRateLimited, requestError(t, err).Code, "2 more events exceed the burst of 3")
		_, err = fx.ingest(t, userEvent, ingest.FormatJSON, "", allow)
		require.NoError(t, err, "a refused request took no tokens")
		require.Equal(t, 2, fx.publishCalls())
	})
}

var errBoom = errors.New("boom")

func TestIngestPublisherError(t *testing.T) {
	t.Parallel()
	fx := setup(t)
	fx.publishErr = fmt.Errorf("%w: publish: %w", eventlog.ErrUnavailable, errBoom)
	res, err := fx.ingest(t, array(userEvent, groupEvent), ingest.FormatJSON, "", nil)
	require.Error(t, err)
	require.ErrorIs(t, err, eventlog.ErrUnavailable)
	require.ErrorIs(t, err, errBoom)
	var re *ingest.RequestError
	require.False(t, errors.As(err, &re), "a log failure is not the client's fault")
	require.Empty(t, res.IDs)
	require.Equal(t, 1, fx.publishCalls())
}

func TestIngestLearnerErrors(t *testing.T) {
	t.Parallel()
	t.Run("kind mismatch", func(t *testing.T) {
		t.Parallel()
		fx := setup(t)
		fx.learnErr = func(path string) error {
			if path == "acme/app" {
				return fmt.Errorf("%w: acme/app is a group", namespace.ErrKindMismatch)
			}
			return nil
		}
		_, err := fx.ingest(t, array(userEvent, groupEvent, projectEvent), ingest.FormatJSON, "", nil)
		re := requestError(t, err)
		require.Equal(t, ingest.CodeNamespace, re.Code)
		require.Len(t, re.Events, 1)
		require.Equal(t, 2, re.Events[0].Index)
		require.Equal(t, "entity_path", re.Events[0].Errors[0].Field)
		require.Equal(t, 0, fx.publishCalls())
	})
	t.Run("store failure", func(t *testing.T) {
		t.Parallel()
		fx := setup(t)
		fx.learnErr = func(string) error { return errBoom }
		_, err := fx.ingest(t, groupEvent, ingest.FormatJSON, "", nil)
		require.ErrorIs(t, err, errBoom)
		var re *ingest.RequestError
		require.False(t, errors.As(err, &re))
		require.Equal(t, 0, fx.publishCalls())
	})
}

func TestIngestPublishNotCancelledByClient(t *testing.T) {
	t.Parallel()
	fx := setup(t)
	fx.svc.PublishTimeout = time.Hour
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var learnCtxErr error
	fx.onLearn = func(ctx context.Context, _ string) { learnCtxErr = ctx.Err() }
	var (
		publishCtxErr error
		deadline      time.Time
		hasDeadline   bool
	)
	fx.onPublish = func(ctx context.Context) {
		publishCtxErr = ctx.Err()
		deadline, hasDeadline = ctx.Deadline()
	}
	start := time.Now()
	res, err := fx.svc.Ingest(ctx, ingest.Request{Body: strings.NewReader(array(groupEvent, userEvent)), Format: ingest.FormatJSON, Allow: func(int) bool {
		cancel() // the client hangs up once the request is validated
		return true
	}})
	require.NoError(t, err)
	require.Len(t, res.IDs, 2)
	require.Error(t, ctx.Err(), "the client's context is cancelled")
	require.NoError(t, learnCtxErr, "learning is not cancelled")
	require.NoError(t, publishCtxErr, "publishing is not cancelled")
	require.True(t, hasDeadline, "publishing is bounded by PublishTimeout")
	require.WithinDuration(t, start.Add(time.Hour), deadline, time.Minute)
}

func TestIngestDefaultPublishTimeout(t *testing.T) {
	t.Parallel()
	fx := setup(t)
	var deadline time.Time
	fx.onPublish = func(ctx context.Context) { deadline, _ = ctx.Deadline() }
	start := time.Now()
	_, err := fx.ingest(t, userEvent, ingest.FormatJSON, "", nil)
	require.NoError(t, err)
	require.WithinDuration(t, start.Add(10*time.Second), deadline, 5*time.Second)
}

func TestIngestReadError(t *testing.T) {
	t.Parallel()
	fx := setup(t)
	for _, r := range []*errReader{
		{data: "", err: errBoom},
		{data: `[` + userEvent + `,{"event_type":`, err: errBoom},
	} {
		_, err := fx.svc.Ingest(t.Context(), ingest.Request{Body: r, Format: ingest.FormatJSON})
		require.ErrorIs(t, err, errBoom, "a read error is returned, not blamed on the JSON")
	}
	require.Equal(t, 0, fx.publishCalls())
}

// errReader returns data, then err.
type errReader struct {
	data string
	err  error
}

func (r *errReader) Read(p []byte) (int, error) {
	if r.data == "" {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// Strings in target_id and details reach the log as the producer sent them; they must be valid
// UTF-8 by then (see event.TestNormalizeEncodedEventIsValidUTF8).
func TestIngestPublishesValidUTF8(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		`{"event_type":"add_gpg_key","entity_type":"User","entity_id":5,"target_id":"t` + "\xff" + `"}`,
		`{"event_type":"add_gpg_key","entity_type":"User","entity_id":5,"details":{"custom_message":"m` + "\xfe" + `"}}`,
	} {
		fx := setup(t)
		_, err := fx.ingest(t, body, ingest.FormatJSON, "", nil)
		if err != nil {
			require.Equal(t, ingest.CodeValidation, requestError(t, err).Code)
			continue
		}
		for _, m := range fx.messages(t) {
			require.True(t, utf8.Valid(m.Data), "published invalid UTF-8: %q", m.Data)
		}
	}
}

func TestIngestConcurrent(t *testing.T) {
	t.Parallel()
	fx := setup(t)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			body := ndjson(userEvent, groupEvent, projectEvent)
			if i%2 == 0 {
				body = array(instanceEvent, groupEvent)
			}
			format := ingest.Format(i % 2)
			if _, err := fx.svc.Ingest(t.Context(), ingest.Request{Body: strings.NewReader(body), Format: format}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	fx.mu.Lock()
	defer fx.mu.Unlock()
	require.Len(t, fx.published, 16)
	require.Equal(t, int64(100+8*3+8*2), fx.nextID)
}

func BenchmarkIngest(b *testing.B) {
	fx := setup(b)
	body := strings.Repeat(groupEvent+"\n"+projectEvent+"\n", 50) // 100 events
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := fx.svc.Ingest(b.Context(), ingest.Request{Body: strings.NewReader(body), Format: ingest.FormatNDJSON}); err != nil {
			b.Fatal(err)
		}
		fx.mu.Lock()
		fx.published, fx.publishCtx, fx.learned = fx.published[:0], fx.publishCtx[:0], fx.learned[:0]
		fx.mu.Unlock()
	}
}

// TestIngestRecordsProvenance: every event of a request records who wrote it — the token and
// its user the caller names — whatever the body says, also when the namespace's id is
// learned (and the event encoded again) and through Record.
func TestIngestRecordsProvenance(t *testing.T) {
	t.Parallel()
	fx := setup(t)
	by := event.Producer{TokenID: 12, UserID: 5, Username: "alice", Via: event.ViaIngest}
	_, err := fx.svc.Ingest(t.Context(), ingest.Request{Body: strings.NewReader(ndjson(groupEvent, projectEvent, userEvent)),
		Format: ingest.FormatNDJSON, Provenance: by})
	require.NoError(t, err)
	msgs := fx.messages(t)
	require.Len(t, msgs, 3)
	for i, m := range msgs {
		var ev event.Event
		require.NoError(t, json.Unmarshal(m.Data, &ev))
		require.Equal(t, by, ev.Producer, "event %d: %s", i, m.Data)
		require.JSONEq(t, `{"token_id":12,"user_id":5,"username":"alice","via":"ingest"}`, string(decodeData(t, m)[event.ProducerKey]))
	}

	rec := setup(t)
	require.NoError(t, rec.svc.Record(t.Context(), event.Input{EventType: "member_created", EntityType: "Instance"},
		event.Producer{TokenID: 3, UserID: 1, Username: "root", Via: event.ViaIngest}))
	var ev event.Event
	require.NoError(t, json.Unmarshal(rec.messages(t)[0].Data, &ev))
	require.Equal(t, event.Producer{TokenID: 3, UserID: 1, Username: "root", Via: event.ViaService}, ev.Producer,
		"a self-recorded event names the user whose change it records, and says auditstream wrote it")
}

// TestIngestRefusesProvenanceFromProducers: a producer cannot say who wrote an event. The
// key (and any other key auditstream reserves) is refused with reserved_field, in any event
// of a request, however it is spelled in JSON, and nothing is published.
func TestIngestRefusesProvenanceFromProducers(t *testing.T) {
	t.Parallel()
	forged := `{"event_type":"member_created","entity_type":"Instance","auditstream_producer":{"token_id":1,"user_id":1,"username":"root","via":"ingest"}}`
	escaped := `{"event_type":"member_created","entity_type":"Instance","auditstream\u005fproducer":null}`
	future := `{"event_type":"member_created","entity_type":"Instance","auditstream_signature":"x"}`
	for name, body := range map[string]string{"one event": forged, "second of a batch": array(instanceEvent, forged),
		"escaped key": escaped, "another reserved key": future} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fx := setup(t)
			_, err := fx.svc.Ingest(t.Context(), ingest.Request{Body: strings.NewReader(body), Format: ingest.FormatJSON,
				Provenance: event.Producer{TokenID: 9, UserID: 2, Username: "mallory", Via: event.ViaIngest}})
			re := requestError(t, err)
			require.Equal(t, ingest.CodeReservedField, re.Code)
			require.Len(t, re.Events, 1)
			require.Equal(t, ingest.CodeReservedField, re.Events[0].Errors[0].Code)
			require.True(t, strings.HasPrefix(re.Events[0].Errors[0].Field, "auditstream_"), re.Events[0].Errors[0].Field)
			require.Zero(t, fx.publishCalls())
		})
	}
}

// A namespace-bound producer: MayWrite is asked once per distinct path, before anything is
// learned or published; its refusal is the event's producer_scope error, with its reason.
func TestIngestMayWrite(t *testing.T) {
	t.Parallel()
	acmeApp := `{"event_type":"repository_git_operation","entity_type":"Project","entity_id":71,"entity_path":"acme/app"}`
	acme := `{"event_type":"member_created","entity_type":"Group","entity_id":70,"entity_path":"acme"}`
	other := `{"event_type":"member_created","entity_type":"Group","entity_id":24,"entity_path":"gitlab-duo"}`
	for _, c := range []struct {
		name   string
		body   string
		asked  []string
		refuse int // index of the refused event; -1: none
	}{
		{"inside", array(acmeApp, acmeApp, acme), []string{"acme/app", "acme"}, -1},
		{"outside", array(acmeApp, other, acme), []string{"acme/app", "gitlab-duo"}, 1},
		{"an instance event", array(acme, instanceEvent), []string{"acme"}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			fx := setup(t)
			var asked []string
			res, err := fx.svc.Ingest(t.Context(), ingest.Request{Body: strings.NewReader(c.body), Format: ingest.FormatJSON,
				MayWrite: func(_ context.Context, path string) (string, error) {
					asked = append(asked, path)
					if strings.HasPrefix(path+"/", "acme/") {
						return "", nil
					}
					return "only in acme", nil
				}})
			require.Equal(t, c.asked, asked)
			if c.refuse < 0 {
				require.NoError(t, err)
				require.Len(t, res.IDs, 3)
				return
			}
			re := requestError(t, err)
			require.Equal(t, ingest.CodeProducerScope, re.Code)
			require.Equal(t, c.refuse, re.Events[0].Index)
			if c.asked[len(c.asked)-1] == "gitlab-duo" {
				require.Contains(t, re.Message, `"gitlab-duo": only in acme`)
			}
			require.Empty(t, fx.learnCalls(), "nothing learned")
			require.Zero(t, fx.publishCalls(), "nothing published")
		})
	}
}

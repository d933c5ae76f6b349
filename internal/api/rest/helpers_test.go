package rest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/store"
)

// storedEvent is an event as the archive stores it: GitLab's streaming JSON with its id first.
const storedEvent = `{"id":42,"author_id":1,"author_name":"Alice","entity_id":7,"entity_type":"Group",` +
	`"entity_path":"acme","details":%s,"ip_address":"192.0.2.1","target_id":7,"target_type":"User",` +
	`"target_details":"bob","created_at":"2025-10-14T18:00:08.677Z","event_type":"member_updated"}`

func stored(details string) []byte { return []byte(strings.Replace(storedEvent, "%s", details, 1)) }

// rjKeys returns the keys of the JSON object b in the order they appear.
func rjKeys(t *testing.T, b []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	require.NoError(t, err)
	require.Equal(t, json.Delim('{'), tok)
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		require.NoError(t, err)
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		require.NoError(t, dec.Decode(&skip))
	}
	return keys
}

// rjDetails decodes the details object of an event.
func rjDetails(t *testing.T, b []byte) map[string]json.RawMessage {
	t.Helper()
	var ev struct {
		Details map[string]json.RawMessage `json:"details"`
	}
	require.NoError(t, json.Unmarshal(b, &ev), "%s", b)
	return ev.Details
}

// wellKnown are the details keys GitLab's client-go decodes as strings (AuditEventDetails).
var wellKnown = []string{
	"with", "add", "as", "change", "from", "to", "remove", "custom_message", "author_name",
	"author_email", "author_class", "target_type", "target_details", "ip_address", "entity_path",
	"failed_login", "event_name",
}

func TestRestJSONStringifiesWellKnownDetails(t *testing.T) {
	t.Parallel()
	for _, key := range wellKnown {
		for _, tc := range []struct{ value, want string }{
			{`1`, `"1"`},
			{`-12.5e3`, `"-12.5e3"`},
			{`true`, `"true"`},
			{`false`, `"false"`},
			{`{"a":[1,2]}`, `"{\"a\":[1,2]}"`},
			{`[1,"x"]`, `"[1,\"x\"]"`},
			{`"already"`, `"already"`}, // strings stay as they are
			{`null`, `null`},           // and so does null (client-go: empty string)
		} {
			in := stored(`{"` + key + `":` + tc.value + `,"count":3}`)
			out := restJSON(in)
			require.True(t, json.Valid(out), "%s", out)
			d := rjDetails(t, out)
			require.Equal(t, tc.want, string(d[key]), "%s: %s", key, tc.value)
			require.Equal(t, `3`, string(d["count"]), "%s: other keys keep their type", key)
			require.Len(t, d, 2)
		}
	}
}

func TestRestJSONLeavesOtherDetailsAlone(t *testing.T) {
	t.Parallel()
	in := stored(`{"target_id":7,"count":3,"ratio":0.5,"enabled":true,"nested":{"from":1},"list":[1,2],"From":1,"fromage":2,"none":null,"custom_message":"hi"}`)
	orig := bytes.Clone(in)
	out := restJSON(in)
	require.Equal(t, orig, in, "restJSON must not modify its input")
	require.Equal(t, string(in), string(out), "nothing to convert: the stored bytes are served unchanged")
}

func TestRestJSONChangesOnlyTheConvertedValues(t *testing.T) {
	t.Parallel()
	details := `{"add":"already a string","as":null,"author_name":"Alice","change":{"a":[1,2]},"count":3,` +
		`"custom_message":12.5,"from":1,"ip_address":"192.0.2.1","target_id":7,"to":true,"with":[1,"x"]}`
	in := stored(details)
	orig := bytes.Clone(in)
	out := restJSON(in)
	require.Equal(t, orig, in, "restJSON must not modify its input")
	require.True(t, json.Valid(out), "%s", out)

	want := stored(`{"add":"already a string","as":null,"author_name":"Alice","change":"{\"a\":[1,2]}","count":3,` +
		`"custom_message":"12.5","from":"1","ip_address":"192.0.2.1","target_id":7,"to":"true","with":"[1,\"x\"]"}`)
	require.Equal(t, string(want), string(out))

	// Every byte outside the details object is the stored one, and the top-level key order too.
	prefix := storedEvent[:strings.Index(storedEvent, "%s")]
	suffix := storedEvent[strings.Index(storedEvent, "%s")+2:]
	require.True(t, bytes.HasPrefix(out, []byte(prefix)))
	require.True(t, bytes.HasSuffix(out, []byte(suffix)))
	require.Equal(t, rjKeys(t, in), rjKeys(t, out))

	// The values of unknown keys keep their JSON type: numbers stay numbers.
	d := rjDetails(t, out)
	require.Equal(t, `7`, string(d["target_id"]))
	require.Equal(t, `3`, string(d["count"]))
}

// TestRestJSONKeepsDetailsKeyOrder: ingest keeps the producer's order of the details keys (and
// does not escape <, >, &); the REST view must change only the values it converts, like it does
// when it converts nothing, so that an event looks the same whichever way it is read.
func TestRestJSONKeepsDetailsKeyOrder(t *testing.T) {
	t.Parallel()
	in := stored(`{"zeta":1,"from":2,"message":"<b>&</b>","alpha":{"b":1,"a":2}}`)
	want := stored(`{"zeta":1,"from":"2","message":"<b>&</b>","alpha":{"b":1,"a":2}}`)
	require.Equal(t, string(want), string(restJSON(in)))
}

// TestRestJSONFindsTheTopLevelDetails: the stored JSON is any valid JSON object; the value that
// is replaced must be the top-level "details", wherever the bytes `"details":` first appear, and
// the output must stay valid JSON.
func TestRestJSONFindsTheTopLevelDetails(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, want string }{
		{"space after the colon", `{"id":1,"details": {"from":1}}`, `{"id":1,"details": {"from":"1"}}`},
		{"spaces everywhere", "{ \"id\" : 1 ,\n \"details\" : { \"from\" : 1 } }", "{ \"id\" : 1 ,\n \"details\" : {\"from\":\"1\"} }"},
		{"a nested details key first", `{"meta":{"details":{"x":1}},"details":{"from":1}}`, `{"meta":{"details":{"x":1}},"details":{"from":"1"}}`},
		{"an escaped quote before details in a key", `{"a\"details":1,"details":{"from":1}}`, `{"a\"details":1,"details":{"from":"1"}}`},
		{"an escaped key", `{"det\u0061ils":{"from":1}}`, `{"det\u0061ils":{"from":"1"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.True(t, json.Valid([]byte(tc.in)))
			out := restJSON([]byte(tc.in))
			require.True(t, json.Valid(out), "invalid JSON %s", out)
			require.JSONEq(t, tc.want, string(out))
		})
	}
}

func TestRestJSONReturnsUnusableInputUnchanged(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		``,
		`not json`,
		`{"details":{"from":1}`, // truncated
		`[{"details":{"from":1}}]`,
		`"details"`,
		`null`,
		`{}`,
		`{"id":1}`,
		`{"details":null}`,
		`{"details":"from"}`,
		`{"details":[{"from":1}]}`,
		`{"details":{}}`,
		"\xff\xfe",
	} {
		require.Equal(t, in, string(restJSON([]byte(in))), "%q", in)
	}
}

func TestCursorRoundTrip(t *testing.T) {
	t.Parallel()
	for _, id := range []int64{1, 2, 42, 1_000_000, math.MaxInt64} {
		c := encodeCursor(id)
		require.NotContains(t, c, "=", "a cursor goes into a query string as it is")
		require.NotContains(t, c, "+")
		require.NotContains(t, c, "/")
		got, err := decodeCursor(c)
		require.NoError(t, err, "id %d", id)
		require.Equal(t, id, got)
	}
}

func TestDecodeCursorRejectsGarbage(t *testing.T) {
	t.Parallel()
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, c := range []string{
		"", "!!!", "not a cursor", "eyJpZCI6MX0=", // standard encoding with padding
		b64(`{"id":0}`), b64(`{"id":-1}`), b64(`{"id":"5"}`), b64(`{"id":1.5}`),
		b64(`{}`), b64(`null`), b64(`[]`), b64(`5`), b64(`{"id":99999999999999999999}`), b64(`{"id":1`),
	} {
		id, err := decodeCursor(c)
		require.Error(t, err, "%q decoded to %d", c, id)
	}
}

// rjEquivalent checks out against in, both valid JSON: the same top-level keys and values,
// except details, where well-known keys whose value was neither a string nor null now hold that
// value's JSON text as a string, and every other key is unchanged.
func rjEquivalent(t *testing.T, in, out []byte) {
	var top map[string]json.RawMessage
	var details map[string]json.RawMessage
	if json.Unmarshal(in, &top) != nil || json.Unmarshal(top["details"], &details) != nil || len(details) == 0 {
		// Not an object, or no details object: nothing to convert, served as stored.
		require.Equal(t, string(in), string(out))
		return
	}
	var outTop map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(out, &outTop), "%s", out)
	require.Equal(t, len(top), len(outTop), "top-level keys: %s -> %s", in, out)
	for k, v := range top {
		ov, ok := outTop[k]
		require.True(t, ok, "key %q lost: %s -> %s", k, in, out)
		if k != "details" {
			require.True(t, rjSame(v, ov), "key %q changed: %s -> %s", k, in, out)
		}
	}
	var outDetails map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(outTop["details"], &outDetails), "%s -> %s", in, out)
	require.Equal(t, len(details), len(outDetails), "details keys: %s -> %s", in, out)
	for k, v := range details {
		ov, ok := outDetails[k]
		require.True(t, ok, "details key %q lost: %s -> %s", k, in, out)
		if !stringDetails[k] || v[0] == '"' || string(v) == "null" {
			require.True(t, rjSame(v, ov), "details key %q changed: %s -> %s", k, in, out)
			continue
		}
		var s string
		require.NoError(t, json.Unmarshal(ov, &s), "details key %q must be a string: %s -> %s", k, in, out)
		require.True(t, rjSame(v, []byte(s)), "details key %q: %s is not the text of %s", k, ov, v)
	}
}

// rjSame reports whether two JSON texts denote the same value (numbers compared as written).
func rjSame(a, b []byte) bool {
	decode := func(x []byte) (any, error) {
		dec := json.NewDecoder(bytes.NewReader(x))
		dec.UseNumber()
		var v any
		err := dec.Decode(&v)
		return v, err
	}
	va, errA := decode(a)
	vb, errB := decode(b)
	return errA == nil && errB == nil && reflect.DeepEqual(va, vb)
}

func FuzzRestJSON(f *testing.F) {
	for _, s := range []string{
		string(stored(`{"from":1,"to":true,"change":{"a":[1,2]},"count":3,"custom_message":"hi"}`)),
		string(stored(`{"zeta":1,"from":2,"message":"<b>&</b>","target_id":"7"}`)),
		string(stored(`{}`)),
		string(stored(`{"with":null,"as":[],"failed_login":-0.5e-3,"event_name":"x\u00e9\"y"}`)),
		`{"details":{"from":1}}`,
		"{ \"id\": 1,\n  \"details\":{\"from\": 1, \"to\" : [1, 2]} }",
		`{"details":{"from":{"from":{"from":1}}}}`,
		`{"meta":{"x":1},"details":{"from":1}}`,
		`{"meta":{"details":{}},"details":{"from":"x"}}`,
		`not json`,
		`[1,2]`,
		`{"details":"x"}`,
		`null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		orig := bytes.Clone(in)
		out := restJSON(in)
		require.Equal(t, orig, in, "restJSON must not modify its input")
		if !json.Valid(in) {
			return
		}
		require.True(t, json.Valid(out), "valid input %q gave invalid output %q", in, out)
		rjEquivalent(t, in, out)
	})
}

func FuzzDecodeCursor(f *testing.F) {
	for _, s := range []string{
		encodeCursor(1), encodeCursor(math.MaxInt64), "", "!!!", "eyJpZCI6MX0=",
		base64.RawURLEncoding.EncodeToString([]byte(`{"id":-1}`)),
		base64.RawURLEncoding.EncodeToString([]byte(`{"id":1e3}`)),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := decodeCursor(s)
		if err != nil {
			require.Zero(t, id)
			return
		}
		require.Positive(t, id, "a cursor names an event id")
		again, err := decodeCursor(encodeCursor(id))
		require.NoError(t, err)
		require.Equal(t, id, again)
	})
}

// Ingest sheds load past MaxInflightBytes with 503 busy, before reading the body.
func TestIngestShedsLoadPastInflightBytes(t *testing.T) {
	a := New(Options{MaxRequestBytes: 1 << 10, MaxInflightBytes: 1 << 10, Auth: allowAll{}, Logger: slog.New(slog.DiscardHandler)})
	held := a.inflight.Reader(99, strings.NewReader(strings.Repeat("x", 4<<10))) // another request holds all of it
	_, err := held.Read(make([]byte, 1<<10))
	require.NoError(t, err)
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "/api/v4/audit_events", strings.NewReader(`{}`))
	a.ServeHTTP(w, r)
	require.Equal(t, http.StatusServiceUnavailable, w.Code, w.Body.String())
	require.Contains(t, w.Body.String(), `"code":"busy"`)
	require.Equal(t, "1", w.Header().Get("Retry-After"))
}

// allowAll authenticates every request as an ingest-scoped user.
type allowAll struct{}

func (allowAll) Authenticate(context.Context, string) (*auth.Principal, error) {
	return &auth.Principal{User: store.User{ID: 1}, Token: store.Token{Scopes: []string{auth.ScopeIngest}}}, nil
}
func (allowAll) AccessLevel(context.Context, *auth.Principal, []store.Namespace) (int, error) {
	return auth.NoAccess, nil
}
func (allowAll) Forget() {}

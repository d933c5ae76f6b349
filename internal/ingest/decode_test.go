package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/event"
)

// referenceDecode is what encoding/json makes of body for FormatJSON with unknown fields
// disallowed: one event object or an array of them, and nothing after it.
func referenceDecode(body []byte) ([]event.Input, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var out []event.Input
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) > 0 && t[0] == '[' {
		if err := dec.Decode(&out); err != nil {
			return nil, err
		}
	} else {
		var in event.Input
		if err := dec.Decode(&in); err != nil {
			return nil, err
		}
		out = []event.Input{in}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data")
	}
	return out, nil
}

// caseVariantKey reports whether body has an object key that matches an Input field only
// case-insensitively: encoding/json accepts those, we refuse them as unknown fields on purpose.
func caseVariantKey(err error) bool {
	var fe *fieldError
	if !errors.As(err, &fe) || fe.field == "" {
		return false
	}
	for _, k := range []string{"event_type", "entity_type", "entity_id", "entity_path", "author_id", "author_name", "author_email",
		"target_id", "target_type", "target_details", "ip_address", "details", "created_at", "idempotency_key"} {
		if strings.EqualFold(fe.field, k) && fe.field != k {
			return true
		}
	}
	return false
}

// duplicateKey reports whether an object anywhere in body has a key twice, as encoding/json
// reads the keys (escapes decoded). body must be well-formed JSON.
func duplicateKey(body []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	type frame struct {
		object bool
		keys   map[string]bool
		key    bool // the next token of an object is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.key {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].object {
					stack[len(stack)-1].key = true
				}
				continue
			}
			k := tok.(string)
			if top.keys[k] {
				return true
			}
			top.keys[k] = true
			top.key = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, keys: map[string]bool{}, key: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// A value ended: the object holding it expects a key next.
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].key = true
		}
	}
}

func ourDecode(body []byte) ([]event.Input, error) {
	d := decoder{b: body}
	return d.events(FormatJSON, func(int) error { return nil })
}

var decodeSeeds = []string{
	`{"event_type":"user_created","entity_type":"Instance"}`,
	`[{"event_type":"a"},{"entity_id":7,"entity_path":"g/p","details":{"x":[1,2.5e3,-0.1,{"y":null}],"z":"\u00e9\ud83d\ude00"}}]`,
	` { "target_id" : "str" , "author_id" : -3 , "details" : null } `,
	`{"entity_id":null}`, `{"entity_id":1.5}`, `{"entity_id":1e3}`, `{"entity_id":"7"}`, `{"entity_id":99999999999999999999}`,
	`{"author_name":"a\"b\\c\/d\b\f\n\r\t\u0000"}`, `{"author_name":"\ud800"}`, `{"author_name":"\ud800\u0041"}`, `{"author_name":"\udc00\ud800"}`,
	`{"Event_Type":"x"}`, `{"colour":1}`, `{"event_type":"x","event_type":"y"}`, `{"author_id":null}`,
	`{"details":{"a":1,"b":{"a":2},"\u0061":3}}`, `{"details":[{"k":1},{"k":2}]}`, `{"target_id":{"x":1,"x":1}}`,
	`{"entity_id":1,"entity_id":null}`, `[{"event_type":"x"},{"event_type":"x","details":{"a":1,"a":1}}]`,
	`[]`, `[ ]`, `{}`, `[{}]`, `[1]`, `"str"`, `42`, `null`, `true`, `{"a"}`, `{"event_type":}`, `[{"event_type":"x"},]`,
	`{"details":{"a":1,}}`, `{"details":[1 2]}`, `{"details":01}`, `{"details":-}`, `{"details":1.}`, `{"details":.5}`,
	`{"details":"\x"}`, `{"details":"\u12"}`, "{\"details\":\"a\tb\"}", `{"details":tru}`, `{"details":nulll}`,
	`{"event_type":"x"} {"event_type":"y"}`, `{"event_type":"x"}]`, `[{"event_type":"x"}`, `[`, `{`, ``, `   `,
	"{\"author_name\":\"\xff\xfe\"}", `{"details":{"k":"` + strings.Repeat("a", 300) + `"}}`,
}

// FuzzDecodeMatchesEncodingJSON holds our decoder to encoding/json's behaviour for event.Input.
func FuzzDecodeMatchesEncodingJSON(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		want, werr := referenceDecode(body)
		got, gerr := ourDecode(body)
		var de *dupKeyError
		// We refuse a key given twice in one object, where encoding/json keeps the last: what
		// encoding/json accepts we refuse exactly when it has a duplicate key. (encoding/json
		// reads invalid UTF-8 in keys as U+FFFD, so two different invalid keys are one to it.)
		if werr == nil && utf8.Valid(body) {
			dup := duplicateKey(body)
			if dup && caseVariantKey(gerr) {
				return // two allowed differences in one body: we report the first we meet
			}
			require.Equal(t, dup, errors.As(gerr, &de), "duplicate key %v, our error %v: %q", dup, gerr, body)
			if dup {
				return
			}
		}
		if errors.As(gerr, &de) && werr == nil {
			return // invalid UTF-8 in keys: see above
		}
		switch {
		case werr != nil && gerr == nil:
			t.Fatalf("we accepted what encoding/json refuses (%v): %q → %+v", werr, body, got)
		case werr == nil && gerr != nil:
			// Allowed differences: keys that match a field only case-insensitively; nesting
			// deeper than our limit (1,000; encoding/json allows 10,000); and null in place of an
			// event, which encoding/json decodes as an empty event that validation then refuses.
			if !caseVariantKey(gerr) && !strings.Contains(gerr.Error(), "exceeded max depth") &&
				!strings.Contains(gerr.Error(), "must be a JSON object, not null") {
				t.Fatalf("we refused what encoding/json accepts: %q: %v", body, gerr)
			}
		case werr == nil && gerr == nil && utf8.Valid(body):
			if len(want) == 0 && len(got) == 0 {
				return
			}
			require.Equal(t, want, got, "body %q", body)
		}
	})
}

func TestDecodeErrorsNameTheEventAndField(t *testing.T) {
	cases := []struct {
		body, field, msg string
		index            int
	}{
		{`[{"event_type":"x"},{"entity_id":"seven"}]`, "entity_id", "entity_id must be an integer, not string", 1},
		{`[{"event_type":"x"},{"entity_id":1.5}]`, "entity_id", "entity_id must be an integer, not number 1.5", 1},
		{`{"colour":"red"}`, "colour", `unknown field "colour"`, 0},
		{`{"Event_Type":"x"}`, "Event_Type", `unknown field "Event_Type"`, 0},
		{`[{"event_type":"x"},{"details":{"a":1,}}]`, "", "expected an object key at offset 38", 1},
		{`[{"event_type":"x"}`, "", "unexpected end of JSON input at offset 19", 1},
		{`[1]`, "", "an event must be a JSON object, not number", 0},
	}
	s := &Service{}
	for _, c := range cases {
		_, err := s.decode([]byte(c.body), FormatJSON)
		var re *RequestError
		require.ErrorAs(t, err, &re, c.body)
		require.Equal(t, CodeInvalidJSON, re.Code, c.body)
		require.Equal(t, c.index, re.Events[0].Index, c.body)
		require.Equal(t, c.field, re.Events[0].Errors[0].Field, c.body)
		require.Equal(t, c.msg, re.Events[0].Errors[0].Message, c.body)
	}
}

func TestUnescapeMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{`a\"b`, `\u00e9`, `\ud83d\ude00`, `\ud800`, `\ud800\u0041`, `\udc00`, `\ud800\ud800\udc00`, `\/\b\f\n\r\t\\`, `\u0000`} {
		var want string
		require.NoError(t, json.Unmarshal([]byte(`"`+s+`"`), &want))
		require.Equal(t, want, unescape([]byte(s)), s)
	}
}

// A key given twice in one object, at any depth, is refused with the field it is in; the same
// key in two objects is not a duplicate.
func TestDecodeRefusesDuplicateKeys(t *testing.T) {
	many := `{"details":{`
	for i := range 40 {
		many += `"k` + strings.Repeat("x", i) + `":1,`
	}
	cases := []struct{ body, field, key string }{
		{`{"event_type":"nope","event_type":"member_created"}`, "event_type", "event_type"},
		{`{"entity_id":1,"entity_id":null}`, "entity_id", "entity_id"},
		{`{"details":null,"details":{}}`, "details", "details"},
		{`{"details":{"custom_message":"a","custom_message":"FORGED"}}`, "details", "custom_message"},
		{`{"details":{"a":"x","\u0061":"y"}}`, "details", "a"},
		{`{"details":{"n":{"deep":[{"k":1,"k":2}]}}}`, "details", "k"},
		{`{"target_id":{"x":1,"x":1}}`, "target_id", "x"},
		{many + `"kxxx":2}}`, "details", "kxxx"},
	}
	s := &Service{}
	for _, c := range cases {
		_, err := s.decode([]byte(c.body), FormatJSON)
		var re *RequestError
		require.ErrorAs(t, err, &re, c.body)
		require.Equal(t, CodeDuplicateKey, re.Code, c.body)
		require.Equal(t, c.field, re.Events[0].Errors[0].Field, c.body)
		require.Equal(t, CodeDuplicateKey, re.Events[0].Errors[0].Code, c.body)
		require.Contains(t, re.Events[0].Errors[0].Message, `"`+c.key+`"`, c.body)
	}
	for _, ok := range []string{
		`[{"event_type":"x","details":{"k":1}},{"event_type":"x","details":{"k":1}}]`,
		`{"details":{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]}}`,
		`{"details":{"a":1,"A":2,"a ":3}}`,
		many + `"other":2}}`,
	} {
		_, err := s.decode([]byte(ok), FormatJSON)
		require.NoError(t, err, ok)
	}
}

package format

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditstream/auditstream/internal/event"
)

// FuzzRead feeds arbitrary bytes to the encoders' hand-written reader: it must never panic,
// what it accepts must encode to one line (valid JSON for OCSF), and where encoding/json's
// decoder of the event (event.Event.UnmarshalJSON) reads the same input, both must agree.
func FuzzRead(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("testdata", "gitlab-audit-samples.ndjson"))
	if err != nil {
		f.Fatal(err)
	}
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var s struct {
			Event json.RawMessage `json:"event"`
		}
		if err := json.Unmarshal(line, &s); err != nil {
			f.Fatal(err)
		}
		f.Add([]byte(s.Event))
	}
	f.Add([]byte(`{"id":"7","author_id":-1,"created_at":"2025-01-01T00:00:00Z","event_type":"user_created","details":{ "custom_message" : {"a":[1,"}"]} }}`))
	f.Add([]byte(`{"event\u005ftype":"x","created_at":"2025-01-01T00:00:00Z","details":"\n"}`))
	cat, err := event.Load("")
	if err != nil {
		f.Fatal(err)
	}
	enc := New(cat, Options{})
	f.Fuzz(func(t *testing.T, in []byte) {
		var r record
		rerr := enc.read(in, &r)
		out, err := enc.AppendOCSF(nil, in)
		if (err == nil) != (rerr == nil) {
			t.Fatalf("read and AppendOCSF disagree: %v, %v", rerr, err)
		}
		if err == nil {
			if !json.Valid(out) || bytes.ContainsAny(out, "\r\n") {
				t.Fatalf("OCSF output is not one line of JSON: %q", out)
			}
			cef, err := enc.AppendCEF(nil, in)
			if err != nil || bytes.ContainsAny(cef, "\r\n") {
				t.Fatalf("CEF output is not one line: %q, %v", cef, err)
			}
		}
		var ev event.Event
		if ev.UnmarshalJSON(in) != nil || rerr != nil || foldedKey(in) {
			return
		}
		if r.id != ev.ID || r.authorID != ev.AuthorID || r.entityID != ev.EntityID || !r.createdAt.Equal(ev.CreatedAt) {
			t.Fatalf("numbers or time differ: %+v vs %+v", r, ev)
		}
		for _, c := range []struct {
			got  tok
			want string
		}{{r.evType, ev.EventType}, {r.entityType, ev.EntityType}} {
			if c.got.text() != c.want {
				t.Fatalf("%q read as %q", c.want, c.got.text())
			}
		}
		if ev.AuthorName != "" && r.authorName.text() != ev.AuthorName {
			t.Fatalf("author_name %q read as %q", ev.AuthorName, r.authorName.text())
		}
		if ev.Producer.Username != "" && !strings.Contains(string(out), `"username":`) {
			t.Fatalf("producer lost: %s", out)
		}
	})
}

// foldedKey reports whether a top-level key of in is not in lower case: encoding/json reads
// "Id" as "id", the reader (of the JSON ingest wrote, whose keys are lower case) does not.
func foldedKey(in []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(in, &m) != nil {
		return false
	}
	for k := range m {
		if k != strings.ToLower(k) {
			return true
		}
	}
	return false
}

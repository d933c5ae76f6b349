package objectstore

import (
	"bytes"
	"compress/gzip"
	"io"
	"testing"
	"time"

	"github.com/auditstream/auditstream/internal/destination"
)

func TestKeys(t *testing.T) {
	at := time.Date(2026, 3, 7, 9, 5, 1, 234e6, time.UTC)
	e := destination.Event{ID: 42, Type: "user_created", CreatedAt: at, JSON: []byte(`{"id":42,"entity_type":"Group"}`)}
	if got, want := EventKey("", e), "group/2026/03/user_created_42_1772874301234.json"; got != want {
		t.Errorf("EventKey = %q, want %q", got, want)
	}
	if got, want := EventKey("audit/", e), "audit/group/2026/03/user_created_42_1772874301234.json"; got != want {
		t.Errorf("EventKey with prefix = %q, want %q", got, want)
	}
	b := []destination.Event{e, {ID: 50, Type: "x", CreatedAt: at.Add(time.Hour), JSON: []byte(`{}`)}}
	if got, want := BatchKey("p/", b), "p/batches/2026/03/07/09/20260307T090501.234Z_42-50.ndjson.gz"; got != want {
		t.Errorf("BatchKey = %q, want %q", got, want)
	}
}

func TestGzipNDJSON(t *testing.T) {
	b := []destination.Event{{JSON: []byte(`{"id":1}`)}, {JSON: []byte(`{"id":2}`)}}
	zr, err := gzip.NewReader(bytes.NewReader(GzipNDJSON(b)))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(zr)
	if string(got) != "{\"id\":1}\n{\"id\":2}\n" {
		t.Errorf("got %q", got)
	}
}

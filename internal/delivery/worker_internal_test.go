package delivery

import (
	"testing"
	"time"

	"github.com/auditstream/auditstream/internal/event"
)

// TestCreatedAtFromIngestJSON: the scan finds created_at in the JSON ingest writes, without
// decoding it, including when a custom message mentions created_at.
func TestCreatedAtFromIngestJSON(t *testing.T) {
	cat, err := event.Load("")
	if err != nil {
		t.Fatal(err)
	}
	id := int64(5)
	in := event.Input{EventType: "user_created", EntityType: "User", EntityID: &id, EntityPath: "alice",
		Details: []byte(`{"custom_message":"\"created_at\":\"1999-01-01T00:00:00Z\""}`), CreatedAt: "2026-03-07T09:05:01.234Z"}
	ev, errs := event.Normalize(&in, cat, time.Now())
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	got := createdAt(ev.AppendJSON(nil))
	if want := time.Date(2026, 3, 7, 9, 5, 1, 234e6, time.UTC); !got.Equal(want) {
		t.Errorf("createdAt = %v, want %v", got, want)
	}
	if !createdAt([]byte(`{}`)).IsZero() {
		t.Error("no created_at: zero time")
	}
}

package event_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/event"
)

func referenceIndex(t *testing.T, b []byte) event.IndexFields {
	var w struct {
		AuthorID   int64     `json:"author_id"`
		EntityID   int64     `json:"entity_id"`
		EntityType string    `json:"entity_type"`
		CreatedAt  time.Time `json:"created_at"`
	}
	require.NoError(t, json.Unmarshal(b, &w), "%s", b)
	return event.IndexFields{AuthorID: w.AuthorID, EntityID: w.EntityID, EntityType: w.EntityType, CreatedAt: w.CreatedAt.UTC()}
}

// FuzzParseIndex: for every event AppendJSON can write, ParseIndex reads what a full decode
// reads; for other JSON it agrees with a full decode or fails.
func FuzzParseIndex(f *testing.F) {
	f.Add(int64(1), "Administrator", int64(24), "Group", "org/sub", `{"a":"b"}`, int64(1700000000123), "member_created")
	f.Add(int64(-3), `a"b\c,"entity_id":9`, int64(0), "Gitlab::Audit::InstanceScope", "", `{}`, int64(0), "x")
	f.Add(int64(0), `,"created_at":"2020-01-01T00:00:00.000Z","event_type":"`, int64(7), `we"ird`, "p", `{"created_at":"x"}`, int64(253402300799000), "y")
	f.Fuzz(func(t *testing.T, author int64, authorName string, entityID int64, entityType, path, details string, ms int64, eventType string) {
		if !json.Valid([]byte(details)) || len(details) == 0 || details[0] != '{' || ms < 0 || ms > 253402300799999 {
			return
		}
		ev := event.Event{AuthorID: author, AuthorName: authorName, EntityID: entityID, EntityType: entityType, EntityPath: path,
			Details: json.RawMessage(details), TargetID: json.RawMessage("null"), CreatedAt: time.UnixMilli(ms).UTC(), EventType: eventType}
		b := ev.AppendJSON(nil)
		got, err := event.ParseIndex(b)
		require.NoError(t, err)
		require.Equal(t, referenceIndex(t, b), got)
		require.Equal(t, event.IndexFields{AuthorID: author, EntityID: entityID, EntityType: referenceIndex(t, b).EntityType, CreatedAt: ev.CreatedAt}, got)
	})
}

func TestParseIndexFallsBackForOtherLayouts(t *testing.T) {
	b := []byte(`{"entity_type":"Project","created_at":"2025-10-14T20:00:08.677+02:00","entity_id":5,"author_id":2,"event_type":"x"}`)
	got, err := event.ParseIndex(b)
	require.NoError(t, err)
	require.Equal(t, event.IndexFields{AuthorID: 2, EntityID: 5, EntityType: "Project", CreatedAt: time.Date(2025, 10, 14, 18, 0, 8, 677e6, time.UTC)}, got)
	_, err = event.ParseIndex([]byte(`{"author_id":`))
	require.Error(t, err)
}

package event_test

import (
	"encoding/json"
	"strings"
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

// FuzzCreatedAt: CreatedAt reads every time AppendJSON writes, and what it reads is what
// time.Parse reads (which also takes some other forms, for ParseIndex's slower path).
func FuzzCreatedAt(f *testing.F) {
	for _, s := range []string{"2026-03-07T09:05:01.234Z", "0000-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z", "2024-02-29T12:00:00.000Z",
		"2023-02-29T12:00:00.000Z", "2026-13-01T00:00:00.000Z", "2026-01-01T24:00:00.000Z", "2026-01-01T00:60:00.000Z", "2026-01-01T00:00:60.000Z",
		"2026-01-01T00:00:00.00Z", "2026-01-01T00:00:00.000+", "2026-01-01 00:00:00.000Z", "+026-01-01T00:00:00.000Z", "2026-04-31T00:00:00.000Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.ContainsAny(s, `"\`) {
			return // another layout: the key would not end where the value starts
		}
		b := []byte(`{"author_id":1,"author_name":"a","entity_id":2,"entity_type":"User","entity_path":"p","details":{},"ip_address":"","target_id":null,"target_type":"","target_details":"","created_at":"` +
			s + `","event_type":"user_created"}`)
		got, ok := event.CreatedAt(b)
		want, err := time.Parse(event.TimeLayout, s)
		if ok {
			require.NoError(t, err, "%q: read, but time.Parse refuses it", s)
			require.True(t, want.Equal(got), "%q: %v, want %v", s, got, want)
		} else if err == nil && want.Format(event.TimeLayout) == s {
			t.Fatalf("%q: AppendJSON writes it, CreatedAt does not read it", s)
		}
	})
}

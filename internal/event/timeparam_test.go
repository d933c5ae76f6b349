package event_test

import (
	"regexp"
	"testing"
	"time"

	"github.com/auditstream/auditstream/internal/event"
)

// TestParseTimeParam: what GitLab's Grape DateTime parameters accept is accepted, as the same
// instant in UTC; what is not a time is refused.
func TestParseTimeParam(t *testing.T) {
	t.Parallel()
	utc := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v.UTC()
	}
	for _, tt := range []struct {
		in   string
		want time.Time
	}{
		{"2026-11-16T22:24:48.189000", utc("2026-11-16T22:24:48.189Z")}, // Python's naive isoformat()
		{"2026-11-16T22:24:48", utc("2026-11-16T22:24:48Z")},
		{"2026-11-16 22:24:48", utc("2026-11-16T22:24:48Z")},
		{"2026-11-16 22:24:48 +0000", utc("2026-11-16T22:24:48Z")}, // Ruby's Time#to_s
		{"2026-11-16T22:24:48+0000", utc("2026-11-16T22:24:48Z")},
		{"2026-11-16T22:24:48+01:00", utc("2026-11-16T21:24:48Z")},
		{"2026-11-16T22:24:48-0130", utc("2026-11-16T23:54:48Z")},
		{"2026-11-16T22:24:48+01", utc("2026-11-16T21:24:48Z")},
		{"2026-11-16T22:24:48 01:00", utc("2026-11-16T21:24:48Z")}, // "+01:00" unencoded in a query
		{"2026-11-16T22:24:48Z", utc("2026-11-16T22:24:48Z")},
		{"2026-11-16t22:24:48z", utc("2026-11-16T22:24:48Z")},
		{"2026-11-16 22:24:48 UTC", utc("2026-11-16T22:24:48Z")},
		{"2026-11-16T22:24:48,5Z", utc("2026-11-16T22:24:48.5Z")},
		{"2026-11-16T22:24:48.123456789123Z", utc("2026-11-16T22:24:48.123456789Z")},
		{"2026-11-16T22:24", utc("2026-11-16T22:24:00Z")},
		{"2026-11-16", utc("2026-11-16T00:00:00Z")},
		{" 2026-11-16 ", utc("2026-11-16T00:00:00Z")},
		{"2024-02-29", utc("2024-02-29T00:00:00Z")},
		{"2025-02-01T01:00:00+13:00", utc("2025-01-31T12:00:00Z")},
		{"2025-01-31T07:30:00-04:30", utc("2025-01-31T12:00:00Z")},
	} {
		got, err := event.ParseTimeParam(tt.in)
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if !got.Equal(tt.want) || got.Location() != time.UTC {
			t.Errorf("%q = %s, want %s", tt.in, got, tt.want)
		}
	}
	for _, in := range []string{
		"", "yesterday", "2026-11-16T", "2026-11-16T22", "2026-11-16T22:24:48.", "2026-13-01",
		"2026-02-29", "2026-11-31", "2026-11-16T24:00:00", "2026-11-16T22:60", "2026-11-16T22:24:61",
		"2026-11-16T22:24:48+24:00", "2026-11-16T22:24:48+01:60", "2026-11-16T22:24:48 junk",
		"2026-11-16Z", "26-11-16", "2026/11/16", "1700000000", "2023-02-29", "2025-1-31",
		"2025-01-31T25:00:00Z", "31/01/2025",
	} {
		if got, err := event.ParseTimeParam(in); err == nil {
			t.Errorf("%q = %s, want an error", in, got)
		}
	}
}

// badOffset matches a zone offset of 24 hours or more, or of 60 minutes or more.
var badOffset = regexp.MustCompile(`[+-](\d\d:[6-9]\d|(2[4-9]|[3-9]\d):\d\d)$`)

// FuzzParseTimeParam: every RFC 3339 time Go reads is read as the same instant; whatever is
// accepted comes back in UTC and is read again, written as RFC 3339, as the same instant.
func FuzzParseTimeParam(f *testing.F) {
	for _, s := range []string{"2026-11-16T22:24:48.189000", "2026-11-16 22:24:48 +0000", "2026-11-16",
		"2026-11-16T22:24:48+01:00", "2026-11-16T22:24:48 01:00", "2026-11-16T22:24Z", "2026-11-16t22:24:48,5 utc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := event.ParseTimeParam(s)
		// Go reads offsets of 24 hours or 60 minutes (+24:00, +01:60); RFC 3339 and ISO 8601
		// have none, and we refuse them (TestParseTimeParam).
		if std, stdErr := time.Parse(time.RFC3339Nano, s); stdErr == nil && std.Year() >= 0 && !badOffset.MatchString(s) {
			if err != nil {
				t.Fatalf("%q: Go reads %s, ParseTimeParam refuses: %v", s, std, err)
			}
			if !got.Equal(std) {
				t.Fatalf("%q = %s, Go reads %s", s, got, std)
			}
		}
		if err != nil {
			return
		}
		if got.Location() != time.UTC {
			t.Fatalf("%q: location %s, want UTC", s, got.Location())
		}
		again, err := event.ParseTimeParam(got.Format(time.RFC3339Nano))
		if err != nil || !again.Equal(got) {
			t.Fatalf("%q = %s, written as RFC 3339 reads back as %s, %v", s, got, again, err)
		}
	})
}

// TestParseDateParam: a date parameter takes a date, or a time of which the date as written
// is taken (not its UTC date).
func TestParseDateParam(t *testing.T) {
	t.Parallel()
	want := time.Date(2030, 1, 31, 0, 0, 0, 0, time.UTC)
	for _, in := range []string{"2030-01-31", " 2030-01-31", "2030-01-31T23:30:00-05:00", "2030-01-31T00:00:00Z", "2030-01-31 12:00"} {
		got, err := event.ParseDateParam(in)
		if err != nil || !got.Equal(want) {
			t.Errorf("%q = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", "2030-02-30", "31/01/2030", "2030-01-31T25:00"} {
		if got, err := event.ParseDateParam(in); err == nil {
			t.Errorf("%q = %s, want an error", in, got)
		}
	}
}

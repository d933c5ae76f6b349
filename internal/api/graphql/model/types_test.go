package model

import (
	"strconv"
	"strings"
	"testing"
)

func TestParseGID(t *testing.T) {
	for _, c := range []struct {
		in   any
		want int64
		ok   bool
	}{
		{"gid://gitlab/AuditEvents::Streaming::Header/7", 7, true},
		{"gid://gitlab/AuditEvents::Streaming::Header/9223372036854775807", 9223372036854775807, true},
		{"gid://gitlab/AuditEvents::Streaming::InstanceHeader/7", 0, false}, // another class
		{"gid://gitlab/AuditEvents::Streaming::Header/0", 0, false},
		{"gid://gitlab/AuditEvents::Streaming::Header/-1", 0, false},
		{"gid://gitlab/AuditEvents::Streaming::Header/07", 0, false},
		{"gid://gitlab/AuditEvents::Streaming::Header/<id>", 0, false},
		{"gid://gitlab/AuditEvents::Streaming::Header/1/2", 0, false},
		{"7", 0, false},
		{7, 0, false},
		{nil, 0, false},
	} {
		got, err := ParseGID(c.in, ClassHeader)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseGID(%v) = %d, %v", c.in, got, err)
		}
	}
}

// FuzzParseGID: never panics, and what it accepts formats back to the same string.
func FuzzParseGID(f *testing.F) {
	f.Add("gid://gitlab/AuditEvents::Streaming::Header/1")
	f.Add("gid://gitlab/AuditEvents::Streaming::Header/")
	f.Add("gid://gitlab/Group/99999999999999999999")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseGID(s, ClassHeader)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error: %q", err)
			}
			return
		}
		if GID(ClassHeader, id) != s || id <= 0 {
			t.Fatalf("%q parsed to %d, formats as %q", s, id, GID(ClassHeader, id))
		}
		_ = strconv.Quote(s)
	})
}

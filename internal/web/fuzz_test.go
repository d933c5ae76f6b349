package web

import (
	"net/url"
	"strings"
	"testing"
	"unicode"
)

// FuzzSafeReturn: whatever return_to a sign-in carries, the redirect stays on this site: a
// path that no browser reads as another host.
func FuzzSafeReturn(f *testing.F) {
	for _, s := range []string{"/", "/groups/a/-/audit_events?x=1", "//evil.example", "/\\evil.example", "/\t/evil.example",
		"https://evil.example", "/%2F%2Fevil", " /x", "/\r\nSet-Cookie: a=b", "\\\\evil", "/./../x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, to string) {
		got := safeReturn(to)
		if got != "/" && got != to {
			t.Fatalf("safeReturn(%q) = %q: neither the input nor /", to, got)
		}
		if strings.ContainsFunc(got, unicode.IsControl) || !strings.HasPrefix(got, "/") ||
			strings.HasPrefix(got, "//") || strings.HasPrefix(got, "/\\") {
			t.Fatalf("safeReturn(%q) = %q leaves the site", to, got)
		}
		// What a browser resolves it to against this site is on this site.
		base, _ := url.Parse("https://audit.example.com/users/sign_in")
		if u, err := base.Parse(got); err == nil && u.Host != base.Host {
			t.Fatalf("safeReturn(%q) = %q resolves to host %q", to, got, u.Host)
		}
	})
}

package web

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzSafeReturn: whatever return_to a sign-in carries, the redirect stays on this site: a
// path that no browser reads as another host.
func FuzzSafeReturn(f *testing.F) {
	for _, s := range []string{"/", "/groups/a/-/audit_events?x=1", "//evil.example", "/\\evil.example", "/\t/evil.example",
		"https://evil.example", "/%2F%2Fevil", " /x", "/\r\nSet-Cookie: a=b", "\\\\evil", "/./../x"} {
		f.Add(s)
	}
	base, _ := url.Parse("https://audit.example.com/users/sign_in")
	f.Fuzz(func(t *testing.T, to string) {
		got := safeReturn(to)
		if got != "/" && got != to {
			t.Fatalf("safeReturn(%q) = %q: neither the input nor /", to, got)
		}
		// Read it as a browser does (the URL standard): tabs and newlines removed, a backslash
		// is a slash in http(s) URLs; then it must resolve to this site.
		asBrowser := strings.ReplaceAll(strings.Map(func(r rune) rune {
			if r == '\t' || r == '\n' || r == '\r' {
				return -1
			}
			return r
		}, strings.TrimFunc(got, func(r rune) bool { return r <= ' ' })), "\\", "/")
		u, err := base.Parse(asBrowser)
		if err != nil {
			return // a browser would not follow it anywhere
		}
		if u.Host != base.Host || u.Scheme != base.Scheme {
			t.Fatalf("safeReturn(%q) = %q: a browser goes to %s://%s", to, got, u.Scheme, u.Host)
		}
	})
}

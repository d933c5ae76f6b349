package event

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// escapeSeeds are strings whose JSON encoding is easy to get wrong.
var escapeSeeds = []string{
	"",
	"plain ascii",
	`"quoted"`,
	`back\slash`,
	`\"`,
	`\u0041`,
	"\x00\x01\x02\x07\x08\x09\x0a\x0b\x0c\x0d\x1b\x1f",
	"\x7f del",
	"<script>alert('x') & </script>",
	"\u2028 line and \u2029 paragraph separators",
	"\u2027\u202a neighbours of the separators",
	"é ü 日本語 😀",
	"\ufffd a real replacement character",
	"\xff",
	"\xfe\xff",
	"a\xc3",            // truncated two-byte sequence
	"\xc3\x28",         // bad continuation
	"\xe2\x80",         // truncated U+2028
	"\xed\xa0\x80",     // UTF-16 surrogate encoded in UTF-8
	"\xf4\x90\x80\x80", // beyond U+10FFFF
	"\xc0\xaf",         // overlong '/'
	"\xf0\x9f\x98",     // truncated emoji
	"mixed \"<\xff>\" \\ \u2028\n",
	strings.Repeat("x", 4096) + "\x00",
}

// checkEscaping checks appendString against encoding/json for s.
func checkEscaping(t *testing.T, s string) {
	t.Helper()
	prefix := []byte(`{"k":`)
	got := appendString(bytes.Clone(prefix), s)
	require.Equal(t, string(prefix), string(got[:len(prefix)]), "appendString appends")
	enc := got[len(prefix):]

	require.True(t, json.Valid(enc), "invalid JSON %q for %q", enc, s)
	require.True(t, utf8.Valid(enc), "invalid UTF-8 %q for %q", enc, s)
	require.Equal(t, byte('"'), enc[0])
	require.Equal(t, byte('"'), enc[len(enc)-1])
	// Safe to embed in HTML and in JavaScript, as encoding/json's output is.
	require.False(t, bytes.ContainsAny(enc, "<>&\u2028\u2029"), "unescaped HTML or separator in %q", enc)
	for _, c := range enc {
		require.GreaterOrEqual(t, c, byte(0x20), "raw control character in %q", enc)
	}

	var dec string
	require.NoError(t, json.Unmarshal(enc, &dec))
	ref, err := json.Marshal(s)
	require.NoError(t, err)
	var want string
	require.NoError(t, json.Unmarshal(ref, &want))
	require.Equal(t, want, dec, "decodes as encoding/json's encoding of %q (%s) does", s, ref)
	// Each invalid byte becomes one U+FFFD, as in a []rune conversion; valid input is unchanged.
	require.Equal(t, string([]rune(s)), dec)

	// Inside an event, the string survives a round trip through AppendJSON and UnmarshalJSON.
	ev := Event{AuthorName: s, EntityPath: s, TargetType: s, TargetDetails: s, EventType: s, EntityType: s, IPAddress: s}
	b := ev.AppendJSON(nil)
	require.True(t, json.Valid(b), "%q", b)
	var back Event
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, want, back.AuthorName)
	require.Equal(t, want, back.EventType)
	require.Equal(t, want, back.IPAddress)
}

func TestAppendString(t *testing.T) {
	t.Parallel()
	for _, s := range escapeSeeds {
		t.Run("", func(t *testing.T) {
			t.Parallel()
			checkEscaping(t, s)
		})
	}
}

func TestAppendStringExactBytes(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", `""`},
		{"abc", `"abc"`},
		{`a"b`, `"a\"b"`},
		{`a\b`, `"a\\b"`},
		{"\n\r\t", `"\n\r\t"`},
		{"\x00\x1f", `"\u0000\u001f"`},
		{"<>&", `"\u003c\u003e\u0026"`},
		{"\u2028\u2029", `"\u2028\u2029"`},
		{"\xff", `"\ufffd"`},
		{"\xff\xfe", `"\ufffd\ufffd"`},
		{"é😀", `"é😀"`},
		{"\x7f", "\"\x7f\""},
	}
	for _, tt := range tests {
		got := string(appendString(nil, tt.in))
		require.Equal(t, tt.want, got, "appendString(%q)", tt.in)
		// The same bytes as encoding/json.
		ref, err := json.Marshal(tt.in)
		require.NoError(t, err)
		require.Equal(t, string(ref), got, "encoding/json's bytes for %q", tt.in)
	}
}

// FuzzAppendString checks that the hand-written JSON string encoder produces valid JSON, valid
// UTF-8 and HTML-safe output, which decodes to what encoding/json's encoding decodes to: the
// string itself when it is valid UTF-8, else with each invalid byte replaced by U+FFFD.
func FuzzAppendString(f *testing.F) {
	for _, s := range escapeSeeds {
		f.Add(s)
	}
	f.Fuzz(checkEscaping)
}

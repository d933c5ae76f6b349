package format_test

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/event"
)

// cefLine is a CEF line as parseCEF reads it.
type cefLine struct {
	Header []string // Version, Device Vendor, Device Product, Device Version, Device Event Class ID, Name, Severity
	Ext    map[string]string
	Keys   []string // extension keys in order
}

// parseCEF is a small CEF:0 parser written from the ArcSight spec, independent of the encoder:
// seven header fields split at unescaped pipes (\| and \\ unescaped), then the extension, whose
// keys are the words before unescaped '=' and whose values run to the space before the next key
// (\=, \\, \n and \r unescaped).
func parseCEF(line string) (*cefLine, error) {
	if strings.ContainsAny(line, "\r\n") {
		return nil, errors.New("more than one line")
	}
	if !strings.HasPrefix(line, "CEF:") {
		return nil, errors.New("no CEF: prefix")
	}
	l := &cefLine{Ext: map[string]string{}}
	var field strings.Builder
	i := len("CEF:")
	for len(l.Header) < 7 {
		if i >= len(line) {
			return nil, errors.New("fewer than 7 header fields")
		}
		c := line[i]
		switch {
		case c == '\\' && i+1 < len(line) && (line[i+1] == '\\' || line[i+1] == '|'):
			field.WriteByte(line[i+1])
			i += 2
		case c == '\\':
			return nil, errors.New("bad escape in header at " + strconv.Itoa(i))
		case c == '|':
			l.Header = append(l.Header, field.String())
			field.Reset()
			i++
		default:
			field.WriteByte(c)
			i++
		}
	}
	ext := line[i:]
	// Find each unescaped '=' and what precedes it.
	type eq struct{ pos int }
	var eqs []int
	for j := 0; j < len(ext); j++ {
		switch ext[j] {
		case '\\':
			j++
		case '=':
			eqs = append(eqs, j)
		}
	}
	start := 0 // where the current key begins
	for n, p := range eqs {
		key := ext[start:p]
		if key == "" || strings.ContainsAny(key, " \\") {
			return nil, errors.New("bad key " + strconv.Quote(key))
		}
		end := len(ext)
		next := len(ext)
		if n+1 < len(eqs) {
			sp := strings.LastIndexByte(ext[:eqs[n+1]], ' ')
			if sp < p {
				return nil, errors.New("no space before the key after " + key)
			}
			end, next = sp, sp+1
		}
		v, err := unescapeCEFValue(ext[p+1 : end])
		if err != nil {
			return nil, err
		}
		if _, dup := l.Ext[key]; dup {
			return nil, errors.New("duplicate key " + key)
		}
		l.Ext[key] = v
		l.Keys = append(l.Keys, key)
		start = next
	}
	return l, nil
}

func unescapeCEFValue(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return "", errors.New("trailing backslash")
		}
		i++
		switch s[i] {
		case '\\', '=':
			b.WriteByte(s[i])
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		default:
			return "", errors.New("bad escape \\" + string(s[i]))
		}
	}
	return b.String(), nil
}

func TestParseCEF(t *testing.T) {
	t.Parallel()
	l, err := parseCEF(`CEF:0|Ven\|dor|Prod\\uct|1.0|100|Name with = sign|3|src=10.0.0.1 msg=a b\=c\\ d\nline2 cs1Label=Entity Path cs1=x|y`)
	require.NoError(t, err)
	require.Equal(t, []string{"0", "Ven|dor", `Prod\uct`, "1.0", "100", "Name with = sign", "3"}, l.Header)
	require.Equal(t, map[string]string{"src": "10.0.0.1", "msg": "a b=c\\ d\nline2", "cs1Label": "Entity Path", "cs1": "x|y"}, l.Ext)
	for _, bad := range []string{"CEF:0|a|b", "CEF:0|a|b|c|d|e|f|k=v\nx=y", "CEF:0|a\\x|b|c|d|e|f|", "CEF:0|a|b|c|d|e|f|k=v\\"} {
		_, err := parseCEF(bad)
		require.Error(t, err, bad)
	}
}

// TestCEFSamples encodes every GitLab sample and parses it back.
func TestCEFSamples(t *testing.T) {
	t.Parallel()
	enc, cat := setup(t)
	for _, s := range samples(t) {
		t.Run(s.Section, func(t *testing.T) {
			out, err := enc.AppendCEF(nil, s.Event)
			require.NoError(t, err)
			l, err := parseCEF(string(out))
			require.NoError(t, err, "%s", out)

			var in event.Event
			require.NoError(t, in.UnmarshalJSON(s.Event))
			require.Len(t, l.Header, 7)
			require.Equal(t, []string{"0", "auditstream", "auditstream", "1.2.3"}, l.Header[:4])
			if in.EventType != "" {
				require.Equal(t, in.EventType, l.Header[4])
			} else {
				require.Equal(t, "audit_event", l.Header[4])
			}
			if typ := cat.Lookup(in.EventType); typ != nil {
				require.Equal(t, typ.Description, l.Header[5])
				require.Equal(t, typ.FeatureCategory, l.Ext["cat"])
			}
			require.Equal(t, "3", l.Header[6])
			require.Equal(t, strconv.FormatInt(in.CreatedAt.UnixMilli(), 10), l.Ext["rt"])
			if in.ID != 0 {
				require.Equal(t, strconv.FormatInt(in.ID, 10), l.Ext["externalId"])
			}
			require.Equal(t, strconv.FormatInt(in.AuthorID, 10), l.Ext["suid"])
			require.Equal(t, "success", l.Ext["outcome"])
			if ip := ipOf(t, s.Event); ip != "" {
				require.Equal(t, ip, l.Ext["src"])
			}
			// The details round-trip whole through cs6.
			require.Equal(t, "Details", l.Ext["cs6Label"])
			require.JSONEq(t, string(in.Details), l.Ext["cs6"])
			var details struct {
				CustomMessage json.RawMessage `json:"custom_message"`
				AuthorName    string          `json:"author_name"`
				EntityPath    string          `json:"entity_path"`
				Change        string          `json:"change"`
				From          string          `json:"from"`
				To            string          `json:"to"`
			}
			require.NoError(t, json.Unmarshal(in.Details, &details))
			if len(details.CustomMessage) > 0 && details.CustomMessage[0] == '"' {
				var m string
				require.NoError(t, json.Unmarshal(details.CustomMessage, &m))
				require.Equal(t, m, l.Ext["msg"])
			} else if len(details.CustomMessage) > 0 {
				require.JSONEq(t, string(details.CustomMessage), l.Ext["msg"], "an object custom_message is written as JSON")
			} else if details.Change != "" {
				require.Equal(t, "Changed "+details.Change+" from "+details.From+" to "+details.To, l.Ext["msg"])
			}
			wantAuthor := in.AuthorName
			if wantAuthor == "" {
				wantAuthor = details.AuthorName
			}
			require.Equal(t, wantAuthor, l.Ext["suser"])
			wantPath := in.EntityPath
			if wantPath == "" {
				wantPath = details.EntityPath
			}
			require.Equal(t, wantPath, l.Ext["cs1"])
			require.Equal(t, in.EntityType, l.Ext["cs2"])

			again, err := enc.AppendCEF(nil, s.Event)
			require.NoError(t, err)
			require.Equal(t, string(out), string(again), "deterministic")
		})
	}
}

func TestCEFEscaping(t *testing.T) {
	t.Parallel()
	enc, _ := setup(t)
	ev := event.Event{ID: 1, AuthorID: 2, AuthorName: `a=b\c|d`, EntityID: 3, EntityType: "Project",
		EntityPath: "g/p", Details: []byte(`{"custom_message":"line1\nline2\r\nk=v \\ end"}`),
		IPAddress: "::ffff:10.1.2.3", TargetID: []byte(`"x"`), TargetType: "User", TargetDetails: "bob",
		EventType: "user|created\nnow", CreatedAt: mustTime(t, "2025-01-02T03:04:05.678Z")}
	out, err := enc.AppendCEF(nil, ev.AppendJSON(nil))
	require.NoError(t, err)
	line := string(out)
	require.True(t, strings.HasPrefix(line, `CEF:0|auditstream|auditstream|1.2.3|user\|created now|user\|created now|3|rt=1735787045678 externalId=1 act=user|created\nnow outcome=success`), line)
	require.Contains(t, line, ` suser=a\=b\\c|d suid=2 src=10.1.2.3 duser=bob duid=x msg=line1\nline2\r\nk\=v \\ end `)
	l, err := parseCEF(line)
	require.NoError(t, err)
	require.Equal(t, "user|created now", l.Header[4], "CEF headers cannot hold newlines: they become spaces")
	require.Equal(t, "user|created\nnow", l.Ext["act"], "an unknown type's activity is its name, escaped as a value")
	require.Equal(t, `a=b\c|d`, l.Ext["suser"])
	require.Equal(t, "line1\nline2\r\nk=v \\ end", l.Ext["msg"])
	require.Equal(t, []string{"rt", "externalId", "act", "outcome", "suser", "suid", "src", "duser", "duid", "msg",
		"cs1Label", "cs1", "cs2Label", "cs2", "cn1Label", "cn1", "cs3Label", "cs3", "cs4Label", "cs4", "cs5Label", "cs5",
		"cs6Label", "cs6"}, l.Keys, "keys come in a fixed order")

	ev.IPAddress = "2001:db8::2"
	out, err = enc.AppendCEF(nil, ev.AppendJSON(nil))
	require.NoError(t, err)
	l, err = parseCEF(string(out))
	require.NoError(t, err)
	require.Equal(t, "2001:db8::2", l.Ext["c6a2"])
	require.Equal(t, "Source IPv6 Address", l.Ext["c6a2Label"])
	require.NotContains(t, l.Ext, "src")
}

func TestCEFFailedLogin(t *testing.T) {
	t.Parallel()
	enc, _ := setup(t)
	ev := event.Event{AuthorID: -1, AuthorName: "mallory", EntityID: 12, EntityType: "User", EntityPath: "mallory",
		Details: []byte(`{"failed_login":"STANDARD"}`), IPAddress: "203.0.113.9", EventType: "login_failed_with_standard_authentication",
		CreatedAt: mustTime(t, "2025-01-02T03:04:05Z")}
	out, err := enc.AppendCEF(nil, ev.AppendJSON(nil))
	require.NoError(t, err)
	l, err := parseCEF(string(out))
	require.NoError(t, err)
	require.Equal(t, "5", l.Header[6])
	require.Equal(t, "failure", l.Ext["outcome"])
	require.Equal(t, "Logon", l.Ext["act"])
	require.Equal(t, "203.0.113.9", l.Ext["src"])
}

// FuzzCEFEscaping writes events whose strings are arbitrary and checks that the CEF line is one
// line that parses back to the same values (header fields lose only CR and LF, as documented).
func FuzzCEFEscaping(f *testing.F) {
	f.Add("user_created", "Ada", "g/p", "msg", "bob")
	f.Add(`a|b\c`, `x=y\`, "\\", "line\nbreak\r\n", "= = =")
	f.Add("", "", "", "", "")
	f.Add("\\|", "  spaced  ", " k=v ", "a\\=b", "cs1=x")
	f.Add("no_such_type", "trailing\\", "ends with space ", "\\n literal", "|")
	enc, _ := setup(f)
	f.Fuzz(func(t *testing.T, eventType, author, path, msg, target string) {
		for _, s := range []string{eventType, author, path, msg, target} {
			if !utf8.ValidString(s) {
				t.Skip("JSON carries only UTF-8; invalid bytes are replaced before CEF sees them")
			}
		}
		ev := event.Event{ID: 9, AuthorID: 1, AuthorName: author, EntityID: 2, EntityType: "Group", EntityPath: path,
			Details: event.AppendJSONString([]byte(`{"custom_message":`), msg), TargetID: []byte("null"),
			TargetType: "User", TargetDetails: target, EventType: eventType, CreatedAt: time.UnixMilli(1700000000123).UTC()}
		ev.Details = append(ev.Details, '}')
		out, err := enc.AppendCEF(nil, ev.AppendJSON(nil))
		if err != nil {
			t.Fatal(err)
		}
		if strings.ContainsAny(string(out), "\r\n") {
			t.Fatalf("more than one line: %q", out)
		}
		l, err := parseCEF(string(out))
		if err != nil {
			t.Fatalf("%v: %q", err, out)
		}
		flat := strings.NewReplacer("\r", " ", "\n", " ")
		wantClass := flat.Replace(eventType)
		if eventType == "" {
			wantClass = "audit_event"
		}
		if len(l.Header) != 7 || l.Header[4] != wantClass {
			t.Fatalf("header %q, want class %q", l.Header, wantClass)
		}
		for key, want := range map[string]string{"suser": author, "cs1": path, "msg": msg, "cs5": target, "duser": target} {
			if got, ok := l.Ext[key]; want != "" && (!ok || got != want) {
				t.Fatalf("%s = %q, want %q in %q", key, got, want, out)
			} else if want == "" && ok {
				t.Fatalf("%s = %q, want it left out", key, got)
			}
		}
		var details struct {
			CustomMessage string `json:"custom_message"`
		}
		if err := json.Unmarshal([]byte(l.Ext["cs6"]), &details); err != nil || details.CustomMessage != msg {
			t.Fatalf("cs6 %q does not round-trip: %v", l.Ext["cs6"], err)
		}
	})
}

func mustTime(tb testing.TB, s string) time.Time {
	tb.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	require.NoError(tb, err)
	return tm.UTC()
}

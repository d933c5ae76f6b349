package format

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/auditstream/auditstream/internal/event"
)

// tok is one JSON value exactly as the event's JSON holds it (a string with its quotes, a
// number, an object...), or nil when the key is absent. The encoders copy string tokens into
// OCSF as they are and unescape them only when a value needs it, so a typical event is written
// without decoding (and allocating) its strings.
type tok []byte

// null reports whether t says nothing: absent, null or "".
func (t tok) null() bool {
	return len(t) == 0 || string(t) == "null" || string(t) == `""`
}

func (t tok) isString() bool { return len(t) >= 2 && t[0] == '"' }

// text returns t as text: a string unquoted, null as "", anything else as its JSON.
func (t tok) text() string {
	switch {
	case t.null():
		return ""
	case t.isString():
		if bytes.IndexByte(t, '\\') < 0 {
			return string(t[1 : len(t)-1])
		}
		var s string
		if json.Unmarshal(t, &s) == nil {
			return s
		}
	}
	return string(t)
}

// is reports whether t is the string s.
func (t tok) is(s string) bool {
	if t.isString() && bytes.IndexByte(t, '\\') < 0 {
		return string(t[1:len(t)-1]) == s
	}
	return t.isString() && t.text() == s
}

// appendJSONString appends t as a JSON string: a string token as it is, null as "", anything
// else (a number, an object) as the string of its JSON.
func (t tok) appendJSONString(b []byte) []byte {
	switch {
	case t.null():
		return append(b, `""`...)
	case t.isString():
		return append(b, t...)
	case t[0] == '-' || (t[0] >= '0' && t[0] <= '9'):
		b = append(b, '"')
		b = append(b, t...)
		return append(b, '"')
	}
	return event.AppendJSONString(b, string(t))
}

// appendCEF appends t's text as a CEF extension value.
func (t tok) appendCEF(b []byte) []byte {
	if t.isString() && bytes.IndexByte(t, '\\') < 0 {
		return appendCEFValue(b, t[1:len(t)-1])
	}
	return appendCEFValue(b, t.text())
}

// appendCEFHeader appends t's text as a CEF header field.
func (t tok) appendCEFHeader(b []byte) []byte {
	if t.isString() && bytes.IndexByte(t, '\\') < 0 {
		return appendCEFHeader(b, t[1:len(t)-1])
	}
	return appendCEFHeader(b, t.text())
}

var errNotObject = errors.New("format: event is not a JSON object")

// eachMember calls f with each key and value of the JSON object obj, which must be valid JSON
// (json.Valid): keys as their raw bytes between the quotes, values as tokens.
func eachMember(obj []byte, f func(key []byte, value tok)) error {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return errNotObject
	}
	i = skipSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return nil
	}
	for i < len(obj) {
		kEnd := skipString(obj, i)
		key := obj[i+1 : kEnd-1]
		i = skipSpace(obj, kEnd)
		i = skipSpace(obj, i+1) // the ':'
		vEnd := skipValue(obj, i)
		f(key, tok(obj[i:vEnd]))
		i = skipSpace(obj, vEnd)
		if i >= len(obj) || obj[i] == '}' {
			return nil
		}
		i = skipSpace(obj, i+1) // the ','
	}
	return nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i].
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(b)
}

// skipValue returns the index after the value starting at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = skipString(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\r' && b[j] != '\t' {
		j++
	}
	return j
}

// parseInt reads an integer token: a JSON number, or a string holding one (GitLab sends ids
// both ways). Absent and null are 0.
func parseInt(t tok) (int64, bool) {
	if t.null() {
		return 0, true
	}
	if t.isString() {
		t = t[1 : len(t)-1]
	}
	neg := len(t) > 0 && t[0] == '-'
	if neg {
		t = t[1:]
	}
	if len(t) == 0 || len(t) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range t {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// wellKnownDetails are the keys GitLab puts in details besides the producer's own; enrichDetails
// adds the ones the producer left out, in this order.
var wellKnownDetails = [...]string{"event_name", "author_name", "author_email", "target_id", "target_type", "target_details", "ip_address", "entity_path"}

var errDetailsNotObject = errors.New("must be a JSON object")

// enrichDetails returns the producer's details object, compacted, with GitLab's well-known keys
// (event_name, author_name, author_email, target_*, ip_address, entity_path) appended where the producer
// left them out, so that REST readers and SIEM rules find them where GitLab puts them. Producer
// values win. It does not decode the values: details of any size cost one scan.
func enrichDetails(in *Input, ev *Event) (json.RawMessage, error) {
	d := bytes.TrimSpace(in.Details)
	var compact []byte
	if len(d) > 0 && !bytes.Equal(d, []byte("null")) {
		if !utf8.Valid(d) {
			return json.RawMessage("{}"), errors.New("is not valid UTF-8")
		}
		if d[0] != '{' {
			return json.RawMessage("{}"), errDetailsNotObject
		}
		// Raw newlines, CRs and tabs can only be whitespace between tokens (JSON strings
		// cannot hold them): compact those away so an event is always one line (NDJSON-safe).
		// Spaces between tokens are harmless and left as the producer sent them.
		compact = make([]byte, 0, len(d)+256)
		if bytes.ContainsAny(d, "\n\r\t") {
			var buf bytes.Buffer
			_ = json.Compact(&buf, d) // valid, checked above
			compact = append(compact, buf.Bytes()...)
		} else {
			compact = append(compact, d...)
		}
	}
	var present [len(wellKnownDetails)]bool
	keys := 0
	if compact != nil {
		n, err := scanKeys(compact, func(k []byte) {
			for i, w := range wellKnownDetails {
				if string(k) == w {
					present[i] = true
				}
			}
		})
		if err != nil {
			return json.RawMessage("{}"), errDetailsNotObject
		}
		keys = n
		compact = compact[:len(compact)-1] // drop the closing brace; appended again below
	} else {
		compact = append(make([]byte, 0, 256), '{')
	}
	values := [len(wellKnownDetails)]string{ev.EventType, ev.AuthorName, in.AuthorEmail, "", ev.TargetType, ev.TargetDetails, ev.IPAddress, ev.EntityPath}
	for i, k := range wellKnownDetails {
		if present[i] {
			continue
		}
		isTarget := k == "target_id"
		if (isTarget && bytes.Equal(ev.TargetID, []byte("null"))) || (!isTarget && values[i] == "") {
			continue
		}
		if keys > 0 {
			compact = append(compact, ',')
		}
		compact = appendString(compact, k)
		compact = append(compact, ':')
		if isTarget {
			compact = append(compact, ev.TargetID...)
		} else {
			compact = appendString(compact, values[i])
		}
		keys++
	}
	return append(compact, '}'), nil
}

// scanKeys calls f with each top-level key of the JSON object b (unescaped when it has escapes)
// and returns how many there are. b must be valid JSON with no whitespace but spaces.
func scanKeys(b []byte, f func(key []byte)) (int, error) {
	var err error
	n, ferr := Fields(b, func(key, _ []byte) bool {
		if bytes.IndexByte(key, '\\') >= 0 {
			var s string
			if err = json.Unmarshal(append(append([]byte{'"'}, key...), '"'), &s); err != nil {
				return false
			}
			key = []byte(s)
		}
		f(key)
		return true
	})
	if err != nil {
		return n, err
	}
	return n, ferr
}

// Fields calls f with each top-level key of the JSON object b, as written (escapes kept, quotes
// removed), and the JSON of its value, until f returns false; it returns how many keys it saw.
// It reads values only as far as to skip them, so finding one field of a large object costs a
// scan, not a decoding. b must be valid JSON whose only whitespace is spaces, as stored events
// and their details are; other input gives an error, possibly after some calls of f.
func Fields(b []byte, f func(key, value []byte) bool) (int, error) {
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return 0, errDetailsNotObject
	}
	i, n := skipSpaces(b, 1), 0
	if b[i] == '}' {
		return 0, nil
	}
	for i < len(b) {
		i = skipSpaces(b, i)
		end, err := skipString(b, i)
		if err != nil {
			return n, err
		}
		key := b[i+1 : end-1]
		n++
		end = skipSpaces(b, end)
		if end >= len(b) || b[end] != ':' {
			return n, errDetailsNotObject
		}
		from := skipSpaces(b, end+1)
		if i, err = skipValue(b, from); err != nil {
			return n, err
		}
		if !f(key, b[from:i]) {
			return n, nil
		}
		i = skipSpaces(b, i)
		switch {
		case i < len(b) && b[i] == ',':
			i++
		case i == len(b)-1 && b[i] == '}':
			return n, nil
		default:
			return n, errDetailsNotObject
		}
	}
	return n, errDetailsNotObject
}

func skipSpaces(b []byte, i int) int {
	for i < len(b) && b[i] == ' ' {
		i++
	}
	return i
}

// skipString returns the index after the JSON string starting at b[i].
func skipString(b []byte, i int) (int, error) {
	if i >= len(b) || b[i] != '"' {
		return 0, errDetailsNotObject
	}
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, nil
		}
	}
	return 0, errDetailsNotObject
}

// skipValue returns the index after the JSON value starting at b[i].
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errDetailsNotObject
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, err := skipString(b, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, errDetailsNotObject
	default: // number, true, false, null
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' {
			j++
		}
		return j, nil
	}
}

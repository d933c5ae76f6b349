package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/auditstream/auditstream/internal/event"
)

// This file is a decoder for exactly one shape, event.Input, written for speed: encoding/json's
// reflection was a quarter of ingest's CPU. It accepts what encoding/json accepts for that
// struct with DisallowUnknownFields (FuzzDecodeMatchesEncodingJSON holds it to that), except
// that it keeps invalid UTF-8 in strings as it is (Normalize then rejects it) instead of
// replacing it with U+FFFD, and that it refuses an object, at any depth, that has a key twice
// (encoding/json keeps the last): receivers disagree on which one counts, so an event with a
// duplicate key could read differently to each of them. Raw values (details, target_id) are
// slices of the body.

// syntaxError is malformed JSON at a byte offset.
type syntaxError struct {
	off int
	msg string
}

func (e *syntaxError) Error() string { return fmt.Sprintf("%s at offset %d", e.msg, e.off) }

// fieldError is a well-formed value of the wrong kind, or a field Input does not have.
type fieldError struct {
	field, msg string
}

func (e *fieldError) Error() string { return e.msg }

// dupKeyError is an object that has a key twice. field is the event's field it is in (the key
// itself at the top level), key the repeated key.
type dupKeyError struct {
	field, key string
}

func (e *dupKeyError) Error() string {
	if e.field == e.key {
		return fmt.Sprintf("the key %q appears twice", e.key)
	}
	return fmt.Sprintf("%s has the key %q twice", e.field, e.key)
}

// reservedFieldError is a key auditstream sets itself (event.ProducerKey, and any other key
// starting with reservedPrefix): a producer may not send it.
type reservedFieldError struct {
	field string
}

func (e *reservedFieldError) Error() string {
	return fmt.Sprintf("%q is set by auditstream, not by producers: it records who wrote the event (the token it was sent with)", e.field)
}

// reservedPrefix starts the top-level keys auditstream adds to events (event.ProducerKey).
const reservedPrefix = "auditstream_"

// keySet finds a key seen twice in one object. Keys are spans of the body; a key with escapes
// is compared by what it decodes to. The zero value is ready.
type keySet struct {
	spans []keySpan
	big   map[string]struct{} // once there are many keys
}

type keySpan struct {
	start, end int // the body between the quotes
	escaped    bool
}

const keySetLinear = 16 // up to this many keys, compare each with each

// add records the key ks of b and reports whether it was there already. It returns the set
// with ks in it (a value, so that a set kept on the stack stays there).
func (k keySet) add(b []byte, ks keySpan) (keySet, bool) {
	if k.big != nil {
		key := keyString(b, ks)
		if _, dup := k.big[key]; dup {
			return k, true
		}
		k.big[key] = struct{}{}
		return k, false
	}
	for _, o := range k.spans {
		if !o.escaped && !ks.escaped {
			if string(b[o.start:o.end]) == string(b[ks.start:ks.end]) {
				return k, true
			}
		} else if keyString(b, o) == keyString(b, ks) {
			return k, true
		}
	}
	k.spans = append(k.spans, ks)
	if len(k.spans) > keySetLinear {
		k.big = make(map[string]struct{}, 2*len(k.spans))
		for _, o := range k.spans {
			k.big[keyString(b, o)] = struct{}{}
		}
		k.spans = nil
	}
	return k, false
}

func keyString(b []byte, ks keySpan) string {
	if ks.escaped {
		return unescape(b[ks.start:ks.end])
	}
	return string(b[ks.start:ks.end])
}

type decoder struct {
	b []byte
	i int
}

func (d *decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) syntax(msg string) error { return &syntaxError{off: d.i, msg: msg} }

func (d *decoder) eof() bool { d.ws(); return d.i >= len(d.b) }

// events decodes the whole body: one object or an array of objects (FormatJSON), or objects
// separated by whitespace (FormatNDJSON). onEvent is called before each event is decoded, with
// the count so far, and may stop decoding with an error (the request's event limit).
func (d *decoder) events(format Format, onEvent func(n int) error) ([]event.Input, error) {
	var out []event.Input
	next := func() error {
		if err := onEvent(len(out)); err != nil {
			return err
		}
		var in event.Input
		if err := d.object(&in); err != nil {
			return err
		}
		out = append(out, in)
		return nil
	}
	d.ws()
	switch {
	case format == FormatJSON && d.i < len(d.b) && d.b[d.i] == '[':
		d.i++
		d.ws()
		if d.i < len(d.b) && d.b[d.i] == ']' {
			d.i++
			break
		}
		for {
			if err := next(); err != nil {
				return out, err
			}
			d.ws()
			if d.i >= len(d.b) {
				return out, d.syntax("unexpected end of JSON input")
			}
			if d.b[d.i] == ']' {
				d.i++
				break
			}
			if d.b[d.i] != ',' {
				return out, d.syntax("expected ',' or ']' after an event")
			}
			d.i++
			d.ws()
		}
	case format == FormatJSON:
		if err := next(); err != nil {
			return out, err
		}
	default:
		for !d.eof() {
			if err := next(); err != nil {
				return out, err
			}
		}
	}
	if !d.eof() {
		return out, &syntaxError{off: d.i, msg: "trailing data after the JSON value (send several events as an array or as NDJSON)"}
	}
	return out, nil
}

// object decodes one event object into in.
func (d *decoder) object(in *event.Input) error {
	d.ws()
	if d.i >= len(d.b) {
		return d.syntax("unexpected end of JSON input")
	}
	if d.b[d.i] != '{' {
		start := d.i
		if _, err := d.value(); err != nil {
			return err
		}
		return &fieldError{msg: fmt.Sprintf("an event must be a JSON object, not %s", kindOf(d.b[start]))}
	}
	d.i++
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return nil
	}
	var seen uint32 // the fields of Input already set, by fieldBit
	for {
		d.ws()
		key, err := d.str()
		if err != nil {
			return err
		}
		d.ws()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return d.syntax("expected ':' after an object key")
		}
		d.i++
		d.ws()
		if err := d.field(in, key); err != nil {
			var de *dupKeyError
			if errors.As(err, &de) && de.field == "" {
				de.field = key
			}
			return err
		}
		if bit := fieldBit[key]; bit != 0 {
			if seen&bit != 0 {
				return &dupKeyError{field: key, key: key}
			}
			seen |= bit
		}
		d.ws()
		if d.i >= len(d.b) {
			return d.syntax("unexpected end of JSON input")
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			return nil
		default:
			return d.syntax("expected ',' or '}' after an object value")
		}
	}
}

// fieldBit numbers the fields of Input, to find one given twice.
var fieldBit = func() map[string]uint32 {
	m := map[string]uint32{}
	for i, k := range []string{"event_type", "entity_type", "entity_path", "author_name", "author_email", "target_type",
		"target_details", "ip_address", "created_at", "idempotency_key", "author_id", "entity_id", "target_id", "details"} {
		m[k] = 1 << i
	}
	return m
}()

func (d *decoder) field(in *event.Input, key string) error {
	switch key {
	case "event_type":
		return d.stringInto(&in.EventType, key)
	case "entity_type":
		return d.stringInto(&in.EntityType, key)
	case "entity_path":
		return d.stringInto(&in.EntityPath, key)
	case "author_name":
		return d.stringInto(&in.AuthorName, key)
	case "author_email":
		return d.stringInto(&in.AuthorEmail, key)
	case "target_type":
		return d.stringInto(&in.TargetType, key)
	case "target_details":
		return d.stringInto(&in.TargetDetails, key)
	case "ip_address":
		return d.stringInto(&in.IPAddress, key)
	case "created_at":
		return d.stringInto(&in.CreatedAt, key)
	case "idempotency_key":
		return d.stringInto(&in.IdempotencyKey, key)
	case "author_id":
		n, isNull, err := d.int(key)
		if err == nil && !isNull {
			in.AuthorID = n
		}
		return err
	case "entity_id":
		n, isNull, err := d.int(key)
		if err == nil {
			if isNull {
				in.EntityID = nil
			} else {
				in.EntityID = &n
			}
		}
		return err
	case "target_id":
		raw, err := d.value()
		in.TargetID = raw
		return err
	case "details":
		raw, err := d.value()
		in.Details = raw
		return err
	}
	if _, err := d.value(); err != nil {
		return err
	}
	if strings.HasPrefix(key, reservedPrefix) {
		return &reservedFieldError{field: key}
	}
	return &fieldError{field: key, msg: fmt.Sprintf("unknown field %q", key)}
}

// stringInto decodes a string (null leaves dst as it is, as encoding/json does).
func (d *decoder) stringInto(dst *string, field string) error {
	switch {
	case d.i < len(d.b) && d.b[d.i] == '"':
		s, err := d.str()
		if err == nil {
			*dst = s
		}
		return err
	case d.literal("null"):
		return nil
	}
	return d.wrongKind(field, "a string")
}

// int decodes an integer that fits int64, or null.
func (d *decoder) int(field string) (n int64, isNull bool, err error) {
	if d.literal("null") {
		return 0, true, nil
	}
	if d.i < len(d.b) && (d.b[d.i] == '-' || (d.b[d.i] >= '0' && d.b[d.i] <= '9')) {
		start := d.i
		if err := d.number(); err != nil {
			return 0, false, err
		}
		n, perr := strconv.ParseInt(string(d.b[start:d.i]), 10, 64)
		if perr != nil {
			return 0, false, &fieldError{field: field, msg: fmt.Sprintf("%s must be an integer, not number %s", field, d.b[start:d.i])}
		}
		return n, false, nil
	}
	return 0, false, d.wrongKind(field, "an integer")
}

func (d *decoder) wrongKind(field, want string) error {
	if d.i >= len(d.b) {
		return d.syntax("unexpected end of JSON input")
	}
	c := d.b[d.i]
	if _, err := d.value(); err != nil {
		return err
	}
	return &fieldError{field: field, msg: fmt.Sprintf("%s must be %s, not %s", field, want, kindOf(c))}
}

func kindOf(c byte) string {
	switch c {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	}
	return "number"
}

func (d *decoder) literal(lit string) bool {
	if len(d.b)-d.i >= len(lit) && string(d.b[d.i:d.i+len(lit)]) == lit {
		d.i += len(lit)
		return true
	}
	return false
}

// value skips one well-formed JSON value and returns its bytes.
func (d *decoder) value() (json.RawMessage, error) {
	start := d.i
	if err := d.skip(0); err != nil {
		return nil, err
	}
	return d.b[start:d.i:d.i], nil
}

const maxDepth = 1000 // encoding/json's nesting limit is 10000; ours is smaller and still generous

func (d *decoder) skip(depth int) error {
	if depth > maxDepth {
		return d.syntax("exceeded max depth")
	}
	if d.i >= len(d.b) {
		return d.syntax("unexpected end of JSON input")
	}
	switch c := d.b[d.i]; {
	case c == '"':
		_, err := d.strEnd()
		return err
	case c == '{' || c == '[':
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		d.i++
		d.ws()
		if d.i < len(d.b) && d.b[d.i] == closer {
			d.i++
			return nil
		}
		var small [8]keySpan
		keys := keySet{spans: small[:0]}
		for {
			d.ws()
			if c == '{' {
				if d.i >= len(d.b) || d.b[d.i] != '"' {
					return d.syntax("expected an object key")
				}
				start := d.i
				escaped, err := d.strEnd()
				if err != nil {
					return err
				}
				ks := keySpan{start + 1, d.i - 1, escaped}
				var dup bool
				if keys, dup = keys.add(d.b, ks); dup {
					return &dupKeyError{key: keyString(d.b, ks)}
				}
				d.ws()
				if d.i >= len(d.b) || d.b[d.i] != ':' {
					return d.syntax("expected ':' after an object key")
				}
				d.i++
				d.ws()
			}
			if err := d.skip(depth + 1); err != nil {
				return err
			}
			d.ws()
			if d.i >= len(d.b) {
				return d.syntax("unexpected end of JSON input")
			}
			if d.b[d.i] == closer {
				d.i++
				return nil
			}
			if d.b[d.i] != ',' {
				return d.syntax("expected ',' or '" + string(closer) + "'")
			}
			d.i++
		}
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	case d.literal("true"), d.literal("false"), d.literal("null"):
		return nil
	}
	return d.syntax(fmt.Sprintf("invalid character %q looking for beginning of value", d.b[d.i]))
}

// number skips a JSON number (RFC 8259 grammar).
func (d *decoder) number() error {
	digits := func() int {
		n := 0
		for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	if d.b[d.i] == '-' {
		d.i++
	}
	if d.i < len(d.b) && d.b[d.i] == '0' {
		d.i++
	} else if digits() == 0 {
		return d.syntax("invalid number")
	}
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		if digits() == 0 {
			return d.syntax("invalid number")
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if digits() == 0 {
			return d.syntax("invalid number")
		}
	}
	return nil
}

// strEnd skips a string starting at d.i, checking its escapes, and reports whether it had any.
func (d *decoder) strEnd() (escaped bool, err error) {
	d.i++ // opening quote
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return escaped, nil
		case c == '\\':
			escaped = true
			if d.i+1 >= len(d.b) {
				return escaped, d.syntax("unexpected end of JSON input")
			}
			switch d.b[d.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				d.i += 2
			case 'u':
				if d.i+6 > len(d.b) {
					return escaped, d.syntax("unexpected end of JSON input")
				}
				for _, h := range d.b[d.i+2 : d.i+6] {
					if !isHex(h) {
						return escaped, d.syntax("invalid \\u escape in string")
					}
				}
				d.i += 6
			default:
				return escaped, d.syntax("invalid escape in string")
			}
		case c < 0x20:
			return escaped, d.syntax("invalid control character in string")
		default:
			d.i++
		}
	}
	return escaped, d.syntax("unexpected end of JSON input")
}

// str decodes the string at d.i.
func (d *decoder) str() (string, error) {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return "", d.syntax("expected a string")
	}
	start := d.i
	escaped, err := d.strEnd()
	if err != nil {
		return "", err
	}
	body := d.b[start+1 : d.i-1]
	if !escaped {
		return string(body), nil
	}
	return unescape(body), nil
}

// unescape decodes the escapes of a string body already checked by strEnd.
func unescape(s []byte) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		switch s[i] {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := rune(hex4(s[i+1 : i+5]))
			i += 4
			if utf16.IsSurrogate(r) {
				// A surrogate pair escaped as two \u is one rune; a lone surrogate is U+FFFD
				// (and whatever follows it is decoded on its own), as in encoding/json.
				pair := utf8.RuneError
				if i+6 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
					pair = utf16.DecodeRune(r, rune(hex4(s[i+3:i+7])))
				}
				r = pair
				if pair != utf8.RuneError {
					i += 6
				}
			}
			out = utf8.AppendRune(out, r)
		default: // '"', '\\', '/'
			out = append(out, s[i])
		}
	}
	return string(out)
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func hex4(b []byte) uint16 {
	var v uint16
	for _, c := range b {
		v <<= 4
		switch {
		case c >= '0' && c <= '9':
			v |= uint16(c - '0')
		case c >= 'a' && c <= 'f':
			v |= uint16(c - 'a' + 10)
		default:
			v |= uint16(c - 'A' + 10)
		}
	}
	return v
}

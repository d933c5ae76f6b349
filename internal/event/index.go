package event

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
)

// IndexFields are the fields the store filters on.
type IndexFields struct {
	AuthorID   int64
	EntityID   int64
	EntityType string
	CreatedAt  time.Time
}

// ParseIndex reads the index fields of an event encoded by AppendJSON (without an id). It reads
// them where AppendJSON puts them, without decoding the rest, and falls back to a full decode
// for any other layout.
func ParseIndex(b []byte) (IndexFields, error) {
	if f, ok := parseIndexFast(b); ok {
		return f, nil
	}
	var w struct {
		AuthorID   int64     `json:"author_id"`
		EntityID   int64     `json:"entity_id"`
		EntityType string    `json:"entity_type"`
		CreatedAt  time.Time `json:"created_at"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return IndexFields{}, err
	}
	return IndexFields{AuthorID: w.AuthorID, EntityID: w.EntityID, EntityType: w.EntityType, CreatedAt: w.CreatedAt.UTC()}, nil
}

func parseIndexFast(b []byte) (f IndexFields, ok bool) {
	rest, ok := bytes.CutPrefix(b, []byte(`{"author_id":`))
	if !ok {
		return f, false
	}
	if f.AuthorID, rest, ok = cutInt(rest, `,"author_name":"`); !ok {
		return f, false
	}
	if rest, ok = skipStringBody(rest); !ok {
		return f, false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"entity_id":`)); !ok {
		return f, false
	}
	if f.EntityID, rest, ok = cutInt(rest, `,"entity_type":"`); !ok {
		return f, false
	}
	end := bytes.IndexByte(rest, '"')
	if end < 0 || bytes.IndexByte(rest[:end], '\\') >= 0 {
		return f, false
	}
	f.EntityType = string(rest[:end])
	if f.CreatedAt, ok = CreatedAt(b); !ok {
		return f, false
	}
	return f, true
}

// CreatedAt reads created_at from an event AppendJSON wrote (with or without its id), without
// decoding the rest; false for any other layout. created_at is followed only by the event type
// ([a-z0-9_]) and the producer object, whose strings cannot hold the key unescaped, so the
// last occurrence of the key is the field. It is found by searching forward, which is several
// times faster than bytes.LastIndex; details may hold the key as well.
func CreatedAt(b []byte) (time.Time, bool) {
	const key = `created_at":"` // preceded by `,"`; its first byte is rarer than a comma
	at := -1
	for from := 0; ; {
		i := bytes.Index(b[from:], []byte(key))
		if i < 0 {
			break
		}
		at, from = from+i, from+i+1
	}
	if at < 2 || b[at-2] != ',' || b[at-1] != '"' {
		return time.Time{}, false
	}
	v := b[at+len(key):]
	if len(v) < len(TimeLayout) || !bytes.HasPrefix(v[len(TimeLayout):], []byte(`","event_type":"`)) {
		return time.Time{}, false
	}
	return parseTimeLayout(v[:len(TimeLayout)])
}

// parseTimeLayout is time.Parse(TimeLayout, s), without its generality: it runs for every
// event a reader hands out.
func parseTimeLayout(s []byte) (time.Time, bool) {
	if len(s) != len(TimeLayout) || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != '.' || s[23] != 'Z' {
		return time.Time{}, false
	}
	bad := false
	num := func(from, to int) int {
		n := 0
		for _, c := range s[from:to] {
			if c < '0' || c > '9' {
				bad = true
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	year, month, day := num(0, 4), num(5, 7), num(8, 10)
	hour, minute, sec, ms := num(11, 13), num(14, 16), num(17, 19), num(20, 23)
	if bad || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, ms*1e6, time.UTC)
	if t.Day() != day { // February 30th, which time.Date would turn into March
		return time.Time{}, false
	}
	return t, true
}

// cutInt parses the integer at the start of b, which must be followed by sep.
func cutInt(b []byte, sep string) (int64, []byte, bool) {
	end := bytes.IndexByte(b, ',')
	if end < 0 || !bytes.HasPrefix(b[end:], []byte(sep)) {
		return 0, nil, false
	}
	n, err := strconv.ParseInt(string(b[:end]), 10, 64)
	if err != nil {
		return 0, nil, false
	}
	return n, b[end+len(sep):], true
}

// skipStringBody returns what follows the closing quote of the string body at the start of b.
func skipStringBody(b []byte) ([]byte, bool) {
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return b[i+1:], true
		}
	}
	return nil, false
}

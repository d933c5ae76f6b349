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
	// created_at is followed by the event type ([a-z0-9_]) and at most the producer object, whose
	// strings cannot hold the key unescaped: the last occurrence of the key is the field.
	const key = `,"created_at":"`
	i := bytes.LastIndex(b, []byte(key))
	if i < 0 || len(b) < i+len(key)+len(TimeLayout) || !bytes.HasPrefix(b[i+len(key)+len(TimeLayout):], []byte(`","event_type":"`)) {
		return f, false
	}
	t, err := time.Parse(TimeLayout, string(b[i+len(key):i+len(key)+len(TimeLayout)]))
	if err != nil {
		return f, false
	}
	f.CreatedAt = t
	return f, true
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

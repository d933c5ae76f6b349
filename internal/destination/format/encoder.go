package format

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/auditstream/auditstream/internal/event"
)

// Fallback returns the OCSF mapping of an event whose type is not in the catalog, or was added
// with --event-types-dir without an ocsf key: API Activity, Other. Every GitLab audit event
// records a request the application served, so that class always fits, if loosely; the event
// type then travels as activity_name and api.operation.
func Fallback() event.OCSFMapping {
	return event.OCSFMapping{Class: "api_activity", Activity: "other"}
}

// Options are what an Encoder writes about where events come from. Zero values get defaults.
type Options struct {
	// ProductVersion is auditstream's version, written as OCSF metadata.product.version and
	// as the CEF Device Version. Default "unknown".
	ProductVersion string
	// ServiceName is the application whose audit events these are, written as the OCSF
	// service and api.service names. Default "GitLab", whose event types the catalog holds.
	ServiceName string
}

// Encoder writes events in the OCSF and CEF formats. It is immutable and safe for concurrent
// use.
type Encoder struct {
	cat            *event.Catalog
	productVersion string
	serviceName    string
}

// New returns an Encoder that looks event types up in cat (nil: every type gets Fallback()).
func New(cat *event.Catalog, opts Options) *Encoder {
	e := &Encoder{cat: cat, productVersion: opts.ProductVersion, serviceName: opts.ServiceName}
	if e.productVersion == "" {
		e.productVersion = "unknown"
	}
	if e.serviceName == "" {
		e.serviceName = "GitLab"
	}
	return e
}

// Append appends the event whose streaming JSON is streamed to dst in format name ("" means
// GitLab, which appends streamed unchanged). It returns an error when name is unknown or the
// JSON cannot be read as an event; dst is then returned unchanged.
func (e *Encoder) Append(dst []byte, name string, streamed []byte) ([]byte, error) {
	switch name {
	case "", GitLab:
		return append(dst, streamed...), nil
	case OCSF:
		return e.AppendOCSF(dst, streamed)
	case CEF:
		return e.AppendCEF(dst, streamed)
	}
	return dst, fmt.Errorf("%w %q", ErrUnknown, name)
}

// errNoTime: OCSF requires a time, and inventing one would misdate the event.
var errNoTime = errors.New("format: event has no created_at")

// record is one event as both encoders read it from its streaming JSON: strings as tokens,
// the well-known keys of details that GitLab also puts there filled in where the top level
// lacks them (GitLab's REST events carry some only in details).
type record struct {
	id, authorID, entityID int64
	createdAt              time.Time

	authorName, entityType, entityPath, ip      tok
	targetID, targetType, targetDetails, evType tok
	producer                                    tok // the auditstream_producer object, or nil

	details       []byte // the details object, one line, never empty
	customMessage tok    // details.custom_message
	sentence      string // for events without custom_message: GitLab's "Changed x from a to b"
	authorEmail   tok

	typ     *event.Type // nil when the type is not in the catalog
	class   *event.OCSFClass
	mapping event.OCSFMapping
	failed  bool
}

// compact returns b without the newlines, returns and tabs that may sit between JSON tokens, so
// that an event stays one line.
func compact(b []byte) []byte {
	if !bytes.ContainsAny(b, "\n\r\t") {
		return b
	}
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return b
	}
	return buf.Bytes()
}

// read decodes the streaming JSON without encoding/json's reflection: one validity check,
// then one pass over the top level and one over details, keeping values as tokens.
func (e *Encoder) read(streamed []byte, r *record) error {
	if !json.Valid(streamed) {
		return errors.New("format: read event: not valid JSON")
	}
	if !utf8.Valid(streamed) {
		// Tokens are copied as they are: mend invalid UTF-8 first, as encoding/json reads it
		// (each bad byte U+FFFD). Our own event JSON never has any.
		streamed = mendUTF8(streamed)
	}
	var idTok, authorIDTok, entityIDTok, createdTok, detailsTok tok
	err := eachMember(streamed, func(key []byte, v tok) {
		if bytes.IndexByte(key, '\\') >= 0 {
			var k string
			if json.Unmarshal(append(append([]byte{'"'}, key...), '"'), &k) == nil {
				key = []byte(k)
			}
		}
		switch string(key) {
		case "id":
			idTok = v
		case "author_id":
			authorIDTok = v
		case "author_name":
			r.authorName = v
		case "entity_id":
			entityIDTok = v
		case "entity_type":
			r.entityType = v
		case "entity_path":
			r.entityPath = v
		case "details":
			detailsTok = v
		case "ip_address":
			r.ip = v
		case "target_id":
			r.targetID = v
		case "target_type":
			r.targetType = v
		case "target_details":
			r.targetDetails = v
		case "created_at":
			createdTok = v
		case "event_type":
			r.evType = v
		case event.ProducerKey:
			r.producer = v
		}
	})
	if err != nil {
		return err
	}
	var ok1, ok2, ok3 bool
	r.id, ok1 = parseInt(idTok)
	r.authorID, ok2 = parseInt(authorIDTok)
	r.entityID, ok3 = parseInt(entityIDTok)
	if !ok1 || !ok2 || !ok3 {
		return errors.New("format: read event: id, author_id and entity_id must be integers")
	}
	for _, t := range []tok{r.authorName, r.entityType, r.entityPath, r.ip, r.targetType, r.targetDetails, r.evType, createdTok} {
		if !t.null() && !t.isString() {
			return errors.New("format: read event: a string field holds another JSON type")
		}
	}
	if r.producer != nil && r.producer[0] != '{' {
		r.producer = nil
	}
	if createdTok.null() {
		return errNoTime
	}
	r.createdAt, err = time.Parse(time.RFC3339Nano, createdTok.text())
	if err != nil {
		return fmt.Errorf("format: read event: created_at: %w", err)
	}
	r.createdAt = r.createdAt.UTC()

	r.details = []byte("{}")
	if len(detailsTok) > 0 && detailsTok[0] == '{' {
		r.details = compact(detailsTok)
	}
	var change, from, to, add, remove tok
	// GitLab's REST events carry these only in details; ours carry them in both.
	fill := func(dst *tok, v tok) {
		if dst.null() && !v.null() {
			*dst = v
		}
	}
	_ = eachMember(r.details, func(key []byte, v tok) {
		switch string(key) {
		case "custom_message":
			r.customMessage = v
		case "author_email":
			r.authorEmail = v
		case "author_name":
			fill(&r.authorName, v)
		case "entity_path":
			fill(&r.entityPath, v)
		case "ip_address":
			fill(&r.ip, v)
		case "target_id":
			fill(&r.targetID, v)
		case "target_type":
			fill(&r.targetType, v)
		case "target_details":
			fill(&r.targetDetails, v)
		case "change":
			change = v
		case "from":
			from = v
		case "to":
			to = v
		case "add":
			add = v
		case "remove":
			remove = v
		}
	})
	if r.customMessage.null() {
		// The sentence GitLab's audit events page shows for events without a custom message.
		switch {
		case !change.null():
			r.sentence = "Changed " + change.text() + " from " + from.text() + " to " + to.text()
		case !add.null():
			r.sentence = "Added " + add.text()
		case !remove.null():
			r.sentence = "Removed " + remove.text()
		}
	}

	if r.evType.isString() {
		r.typ = e.cat.Lookup(string(r.evType[1 : len(r.evType)-1]))
	}
	r.mapping = Fallback()
	if r.typ != nil && !r.typ.OCSF.IsZero() {
		r.mapping = r.typ.OCSF
	}
	r.class = event.LookupOCSFClass(r.mapping.Class)
	r.failed = r.mapping.Status == "failure"
	return nil
}

// unknownType names the type of an event that has none (GitLab's older REST events).
const unknownType = "audit_event"

// typeName is the event's type, or unknownType.
func (r *record) typeName() string {
	if r.evType.null() {
		return unknownType
	}
	return r.evType.text()
}

// typeTok is the event's type as a JSON string token.
func (r *record) typeTok() tok {
	if r.evType.null() {
		return tok(`"` + unknownType + `"`)
	}
	return r.evType
}

// activityID returns the OCSF activity_id. For "other" the activity_name is the event type, as
// OCSF asks (the data source's own name for the activity); otherwise it is the caption.
func (r *record) activityID() int { return r.class.Activities[r.mapping.Activity] }

// name is the event's human-readable name: the type's description, or its name.
func (r *record) name() string {
	if r.typ != nil {
		return r.typ.Description
	}
	return r.typeName()
}

// appendInt64String appends n as a JSON string (OCSF uids are strings).
func appendInt64String(b []byte, n int64) []byte {
	b = append(b, '"')
	b = strconv.AppendInt(b, n, 10)
	return append(b, '"')
}

// targetIsUser reports whether the event's target is a user account.
func (r *record) targetIsUser() bool { return r.targetType.is(event.EntityUser) }

// appendMessageJSON appends OCSF's message: custom_message, else GitLab's sentence for
// change/from/to, add or remove, else the type's name; CEF's msg is the same but for the last.
func (r *record) appendMessageJSON(b []byte) []byte {
	switch {
	case !r.customMessage.null():
		return r.customMessage.appendJSONString(b)
	case r.sentence != "":
		return event.AppendJSONString(b, r.sentence)
	}
	return event.AppendJSONString(b, r.name())
}

// mendUTF8 returns b with each byte that is not part of valid UTF-8 replaced by U+FFFD.
func mendUTF8(b []byte) []byte {
	out := make([]byte, 0, len(b)+16)
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, b[i:i+size]...)
		}
		i += size
	}
	return out
}

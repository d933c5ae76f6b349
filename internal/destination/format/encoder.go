package format

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/auditstream/auditstream/internal/event"
)

// Fallback returns the OCSF mapping of an event whose type is not in the catalog, or was added with
// --event-types-dir without an ocsf key: API Activity, Other. Every GitLab audit event records
// a request the application served, so that class always fits, if loosely; the event type then
// travels as activity_name and api.operation.
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

// record is one event as both encoders read it: the streaming JSON decoded, the well-known
// keys of details that GitLab also puts there (REST events carry some only there) filled in.
type record struct {
	ev      event.Event
	typ     *event.Type // nil when the type is not in the catalog
	class   *event.OCSFClass
	mapping event.OCSFMapping
	failed  bool

	targetID      string // the target_id as text: a string unquoted, a number as written
	customMessage string // details.custom_message as text (JSON when it is an object), or change/from/to
	authorEmail   string
	details       []byte // details, compact, never empty
}

// detailsKnown are the keys of details the encoders use. Values are raw: producers may send
// any JSON there, and a key of an unexpected type must not make an event unreadable.
type detailsKnown struct {
	CustomMessage json.RawMessage `json:"custom_message"`
	AuthorEmail   json.RawMessage `json:"author_email"`
	AuthorName    json.RawMessage `json:"author_name"`
	EntityPath    json.RawMessage `json:"entity_path"`
	IPAddress     json.RawMessage `json:"ip_address"`
	TargetID      json.RawMessage `json:"target_id"`
	TargetType    json.RawMessage `json:"target_type"`
	TargetDetails json.RawMessage `json:"target_details"`
	// GitLab's older events say what happened with these instead of custom_message.
	Change json.RawMessage `json:"change"`
	From   json.RawMessage `json:"from"`
	To     json.RawMessage `json:"to"`
	Add    json.RawMessage `json:"add"`
	Remove json.RawMessage `json:"remove"`
}

// rawText returns a JSON value as text: a string unquoted, null or nothing as "", anything
// else as its JSON.
func rawText(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return ""
	case raw[0] == '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	}
	return string(compact(raw))
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

func (e *Encoder) read(streamed []byte) (*record, error) {
	r := &record{}
	if err := r.ev.UnmarshalJSON(streamed); err != nil {
		return nil, fmt.Errorf("format: read event: %w", err)
	}
	if r.ev.CreatedAt.IsZero() {
		return nil, errNoTime
	}
	r.details = compact(bytes.TrimSpace(r.ev.Details))
	if len(r.details) == 0 || r.details[0] != '{' {
		r.details = []byte("{}")
	}
	var d detailsKnown
	// A details key of another type than expected leaves that field empty; the rest is read.
	_ = json.Unmarshal(r.details, &d)
	r.customMessage = rawText(d.CustomMessage)
	if r.customMessage == "" {
		// The sentence GitLab's audit events page shows for events without a custom message.
		switch {
		case len(d.Change) > 0:
			r.customMessage = "Changed " + rawText(d.Change) + " from " + rawText(d.From) + " to " + rawText(d.To)
		case len(d.Add) > 0:
			r.customMessage = "Added " + rawText(d.Add)
		case len(d.Remove) > 0:
			r.customMessage = "Removed " + rawText(d.Remove)
		}
	}
	r.authorEmail = rawText(d.AuthorEmail)
	// GitLab's REST events carry these only in details; ours carry them in both.
	fill := func(dst *string, raw json.RawMessage) {
		if *dst == "" {
			*dst = rawText(raw)
		}
	}
	fill(&r.ev.AuthorName, d.AuthorName)
	fill(&r.ev.EntityPath, d.EntityPath)
	fill(&r.ev.IPAddress, d.IPAddress)
	fill(&r.ev.TargetType, d.TargetType)
	fill(&r.ev.TargetDetails, d.TargetDetails)
	r.targetID = rawText(r.ev.TargetID)
	if r.targetID == "" {
		r.targetID = rawText(d.TargetID)
	}

	r.typ = e.cat.Lookup(r.ev.EventType)
	r.mapping = Fallback()
	if r.typ != nil && !r.typ.OCSF.IsZero() {
		r.mapping = r.typ.OCSF
	}
	r.class = event.LookupOCSFClass(r.mapping.Class)
	r.failed = r.mapping.Status == "failure"
	return r, nil
}

// unknownType names the type of an event that has none (GitLab's older REST events).
const unknownType = "audit_event"

// typeName is the event's type, or unknownType.
func (r *record) typeName() string {
	if r.ev.EventType == "" {
		return unknownType
	}
	return r.ev.EventType
}

// activity returns the OCSF activity_id and activity_name: for "other", the event type, as OCSF
// asks (the data source's own name for the activity).
func (r *record) activity() (int, string) {
	id := r.class.Activities[r.mapping.Activity]
	if id == event.OCSFOther {
		return id, r.typeName()
	}
	return id, r.class.ActivityCaptions[id]
}

// name is the event's human-readable name: the type's description, or its name.
func (r *record) name() string {
	if r.typ != nil {
		return r.typ.Description
	}
	return r.typeName()
}

// targetIsUser reports whether the event's target is a user account.
func (r *record) targetIsUser() bool { return r.ev.TargetType == event.EntityUser }

// appendInt64String appends n as a JSON string (OCSF uids are strings).
func appendInt64String(b []byte, n int64) []byte {
	b = append(b, '"')
	b = strconv.AppendInt(b, n, 10)
	return append(b, '"')
}

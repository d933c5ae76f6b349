// Package event defines the audit event (GitLab's streaming schema, field for field), its
// validation, its JSON encoding, and the catalog of event types loaded from YAML. It imports
// nothing else of auditstream, so every other package can depend on it.
package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Entity types. InstanceScope is GitLab's wire name for instance-level events; "Instance" is
// accepted at ingest and written as InstanceScope.
const (
	EntityGroup    = "Group"
	EntityProject  = "Project"
	EntityUser     = "User"
	EntityInstance = "Gitlab::Audit::InstanceScope"
)

// TimeLayout is how created_at is written: UTC, milliseconds, "Z" (GitLab's format).
const TimeLayout = "2006-01-02T15:04:05.000Z"

// Event is one audit event. JSON field names are GitLab's streaming schema. ID is the position
// in the log; it is 0 until the log assigned it.
type Event struct {
	ID            int64
	AuthorID      int64
	AuthorName    string
	EntityID      int64
	EntityType    string
	EntityPath    string
	Details       json.RawMessage // a JSON object, never empty once validated
	IPAddress     string
	TargetID      json.RawMessage // a JSON number, string or null
	TargetType    string
	TargetDetails string
	CreatedAt     time.Time
	EventType     string
	// Producer is who wrote the event: set by auditstream from the credentials it arrived
	// with, never from what a producer sent. Zero (events written before it existed) is left
	// out of the JSON.
	Producer Producer
}

// ProducerKey is the top-level key of the event JSON that holds Producer. It is ours, not
// GitLab's: GitLab's clients and receivers ignore keys they do not know, and GitLab's own
// keys never start with "auditstream_", so it cannot clash with one GitLab adds later. A
// producer that sends it is refused at ingest.
const ProducerKey = "auditstream_producer"

// How an event reached the log (Producer.Via).
const (
	// ViaIngest: a producer published it (POST /api/v4/audit_events).
	ViaIngest = "ingest"
	// ViaService: auditstream recorded it about a change a user made through its API or UI
	// (a streaming destination created, a replay, ...).
	ViaService = "auditstream"
	// ViaCLI: auditstream's command line recorded it about a change an operator made on the
	// database directly; the server published it later, from the store's audit outbox.
	ViaCLI = "cli"
)

// Producer is who wrote an event: the token it was published with and that token's user.
type Producer struct {
	TokenID  int64
	UserID   int64
	Username string
	// Impersonation marks an impersonation token: an administrator's, acting as the user.
	Impersonation bool
	Via           string // ViaIngest, ViaService or ViaCLI
}

// IsZero reports whether p says nothing (an event written before provenance was recorded).
func (p Producer) IsZero() bool { return p == Producer{} }

// appendJSON appends p as the JSON object of ProducerKey.
func (p Producer) appendJSON(b []byte) []byte {
	b = append(b, `{"token_id":`...)
	b = strconv.AppendInt(b, p.TokenID, 10)
	b = append(b, `,"user_id":`...)
	b = strconv.AppendInt(b, p.UserID, 10)
	b = append(b, `,"username":`...)
	b = appendString(b, p.Username)
	if p.Impersonation {
		b = append(b, `,"impersonation":true`...)
	}
	b = append(b, `,"via":`...)
	b = appendString(b, p.Via)
	return append(b, '}')
}

// producerJSON is Producer as JSON, for decoding.
type producerJSON struct {
	TokenID       int64  `json:"token_id"`
	UserID        int64  `json:"user_id"`
	Username      string `json:"username"`
	Impersonation bool   `json:"impersonation"`
	Via           string `json:"via"`
}

// Input is an event as a producer sends it to POST /api/v4/audit_events. TargetID and Details,
// when set, must be well-formed JSON values, as any JSON decoder leaves them.
type Input struct {
	EventType      string          `json:"event_type"`
	EntityType     string          `json:"entity_type"`
	EntityID       *int64          `json:"entity_id"`
	EntityPath     string          `json:"entity_path"`
	AuthorID       int64           `json:"author_id"`
	AuthorName     string          `json:"author_name"`
	AuthorEmail    string          `json:"author_email"`
	TargetID       json.RawMessage `json:"target_id"`
	TargetType     string          `json:"target_type"`
	TargetDetails  string          `json:"target_details"`
	IPAddress      string          `json:"ip_address"`
	Details        json.RawMessage `json:"details"`
	CreatedAt      string          `json:"created_at"`
	IdempotencyKey string          `json:"idempotency_key"`
}

// FieldError is one problem with one field of one event. Code is stable and documented.
type FieldError struct {
	Field   string `json:"field"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e FieldError) Error() string { return e.Field + ": " + e.Message }

// Stable validation codes.
const (
	CodeRequired         = "required"
	CodeUnknownEventType = "unknown_event_type"
	CodeInvalid          = "invalid"
	CodeTooLong          = "too_long"
)

// Limits on single fields, in bytes.
const (
	maxShortField  = 255
	maxPathField   = 1024
	maxIdempotency = 255
	maxNesting     = 20 // GitLab's limit of subgroup levels; a project sits one below
)

// MaxSegment is the longest segment of a path (GitLab's Namespace::URL_MAX_LENGTH).
const MaxSegment = 255

// PathRules is what SegmentProblem checks, in GitLab's words.
const PathRules = "can contain only letters, digits, '_', '-' and '.'; cannot start with '-', " +
	"end in '.git' or '.atom', or be '.' or '..'; a group's cannot end in '.'"

// SegmentProblem says what is wrong with seg as one segment of a group's or (project) a
// project's path, or "" when nothing is. The rules are GitLab's (Gitlab::PathRegex: a group's
// segment is NAMESPACE_FORMAT_REGEX, a project's PROJECT_PATH_FORMAT_REGEX, at most 255
// characters), and '.' and '..' are refused for projects too, where GitLab's pattern alone
// would let them through: a path that means "here" or "up" must never name a namespace.
func SegmentProblem(seg string, project bool) string {
	switch {
	case seg == "":
		return "is empty"
	case len(seg) > MaxSegment:
		return fmt.Sprintf("is longer than %d characters", MaxSegment)
	case seg == "." || seg == "..":
		return "cannot be '.' or '..'"
	case seg[0] == '-':
		return "cannot start with '-'"
	case strings.HasSuffix(seg, ".git"), strings.HasSuffix(seg, ".atom"):
		return "cannot end in '.git' or '.atom'"
	case !project && seg[len(seg)-1] == '.':
		return "cannot end in '.' (a group's path)"
	}
	for i := 0; i < len(seg); i++ {
		if c := seg[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return "can contain only letters, digits, '_', '-' and '.'"
		}
	}
	return ""
}

// pathProblem says what is wrong with the full path of a group or (project) a project, or "".
func pathProblem(full string, project bool) string {
	if len(full) > maxPathField {
		return fmt.Sprintf("is longer than %d bytes", maxPathField)
	}
	segs := strings.Split(full, "/")
	for i, seg := range segs {
		if p := SegmentProblem(seg, project && i == len(segs)-1); p != "" {
			if len(segs) == 1 {
				return p + " (" + PathRules + ")"
			}
			return fmt.Sprintf("segment %d %s (%s)", i+1, p, PathRules)
		}
	}
	return ""
}

// Normalize validates in against the catalog and returns the event it describes (ID 0) and
// its idempotency key. now stamps created_at when the producer did not. Every problem is
// reported, not only the first.
func Normalize(in *Input, cat *Catalog, now time.Time) (Event, []FieldError) {
	var errs []FieldError
	add := func(field, code, msg string) { errs = append(errs, FieldError{field, code, msg}) }
	checkLen := func(field, v string, max int) {
		if len(v) > max {
			add(field, CodeTooLong, fmt.Sprintf("is longer than %d bytes", max))
		} else if !utf8.ValidString(v) {
			add(field, CodeInvalid, "is not valid UTF-8")
		}
	}

	ev := Event{
		AuthorID:      in.AuthorID,
		AuthorName:    in.AuthorName,
		EntityPath:    in.EntityPath,
		TargetType:    in.TargetType,
		TargetDetails: in.TargetDetails,
		EventType:     in.EventType,
	}

	switch {
	case in.EventType == "":
		add("event_type", CodeRequired, "is required")
	case cat.Lookup(in.EventType) == nil:
		add("event_type", CodeUnknownEventType, fmt.Sprintf("%q is not in the event-type catalog", truncate(in.EventType, 100)))
	}

	switch in.EntityType {
	case "":
		add("entity_type", CodeRequired, "is required")
	case EntityGroup, EntityProject:
		ev.EntityType = in.EntityType
		if in.EntityPath == "" {
			add("entity_path", CodeRequired, "is required for Group and Project events")
		} else if p := pathProblem(in.EntityPath, in.EntityType == EntityProject); p != "" {
			add("entity_path", CodeInvalid, p)
		} else if strings.Count(in.EntityPath, "/") > maxNesting {
			add("entity_path", CodeInvalid, fmt.Sprintf("nests deeper than GitLab's %d levels of subgroups", maxNesting))
		} else if in.EntityType == EntityProject && !bytes.ContainsRune([]byte(in.EntityPath), '/') {
			add("entity_path", CodeInvalid, "a project's full path includes its namespace (group/project)")
		}
	case EntityUser:
		ev.EntityType = in.EntityType
		checkLen("entity_path", in.EntityPath, maxShortField)
	case "Instance", EntityInstance:
		ev.EntityType = EntityInstance
		checkLen("entity_path", in.EntityPath, maxShortField)
		if ev.EntityPath == "" {
			ev.EntityPath = "gitlab_instance"
		}
	default:
		add("entity_type", CodeInvalid, "must be one of Group, Project, User, Instance")
	}
	if in.EntityID != nil {
		if *in.EntityID <= 0 {
			add("entity_id", CodeInvalid, "must be a positive integer")
		}
		ev.EntityID = *in.EntityID
	} else if ev.EntityType == EntityUser {
		add("entity_id", CodeRequired, "is required for User events")
	} else if ev.EntityType == EntityInstance {
		ev.EntityID = 1
	}

	checkLen("author_name", in.AuthorName, maxShortField)
	checkLen("author_email", in.AuthorEmail, maxShortField)
	checkLen("target_type", in.TargetType, maxShortField)
	checkLen("target_details", in.TargetDetails, maxPathField)
	checkLen("idempotency_key", in.IdempotencyKey, maxIdempotency)

	if in.IPAddress != "" {
		if a, err := netip.ParseAddr(in.IPAddress); err != nil {
			add("ip_address", CodeInvalid, "is not an IPv4 or IPv6 address")
		} else {
			ev.IPAddress = a.String()
		}
	}

	ev.TargetID = json.RawMessage("null")
	if t := bytes.TrimSpace(in.TargetID); len(t) > 0 {
		switch {
		case !strings.ContainsRune(`"n-0123456789`, rune(t[0])):
			add("target_id", CodeInvalid, "must be a number or a string")
		case !utf8.Valid(t):
			add("target_id", CodeInvalid, "is not valid UTF-8")
		case len(t) > maxShortField:
			add("target_id", CodeTooLong, fmt.Sprintf("is longer than %d bytes", maxShortField))
		default:
			ev.TargetID = t
		}
	}

	ev.CreatedAt = now.UTC().Truncate(time.Millisecond)
	if in.CreatedAt != "" {
		t, err := time.Parse(time.RFC3339Nano, in.CreatedAt)
		switch {
		case err != nil:
			add("created_at", CodeInvalid, "must be an RFC 3339 time such as 2025-10-14T18:00:08.677Z")
		case t.UTC().Year() < 1970 || t.UTC().Year() > 9999:
			add("created_at", CodeInvalid, "must be between 1970 and 9999")
		default:
			ev.CreatedAt = t.UTC().Truncate(time.Millisecond)
		}
	}

	details, derr := enrichDetails(in, &ev)
	if derr != nil {
		add("details", CodeInvalid, derr.Error())
	}
	ev.Details = details
	return ev, errs
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// AppendJSON appends the event in GitLab's streaming schema. When ID is 0 the "id" key is left
// out (the log assigns it; see AppendWithID). A Producer that is not zero is added as the last
// key, ProducerKey, after GitLab's.
func (e *Event) AppendJSON(b []byte) []byte {
	b = append(b, '{')
	if e.ID != 0 {
		b = append(b, `"id":`...)
		b = strconv.AppendInt(b, e.ID, 10)
		b = append(b, ',')
	}
	b = append(b, `"author_id":`...)
	b = strconv.AppendInt(b, e.AuthorID, 10)
	b = append(b, `,"author_name":`...)
	b = appendString(b, e.AuthorName)
	b = append(b, `,"entity_id":`...)
	b = strconv.AppendInt(b, e.EntityID, 10)
	b = append(b, `,"entity_type":`...)
	b = appendString(b, e.EntityType)
	b = append(b, `,"entity_path":`...)
	b = appendString(b, e.EntityPath)
	b = append(b, `,"details":`...)
	if len(e.Details) == 0 {
		b = append(b, "{}"...)
	} else {
		b = append(b, e.Details...)
	}
	b = append(b, `,"ip_address":`...)
	b = appendString(b, e.IPAddress) // always a string, as GitLab sends it
	b = append(b, `,"target_id":`...)
	if len(e.TargetID) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, e.TargetID...)
	}
	b = append(b, `,"target_type":`...)
	b = appendString(b, e.TargetType)
	b = append(b, `,"target_details":`...)
	b = appendString(b, e.TargetDetails)
	b = append(b, `,"created_at":`...)
	b = append(b, '"')
	b = e.CreatedAt.UTC().AppendFormat(b, TimeLayout)
	b = append(b, '"')
	b = append(b, `,"event_type":`...)
	b = appendString(b, e.EventType)
	if !e.Producer.IsZero() {
		b = append(b, `,"`+ProducerKey+`":`...)
		b = e.Producer.appendJSON(b)
	}
	return append(b, '}')
}

// MarshalJSON implements json.Marshaler with AppendJSON.
func (e Event) MarshalJSON() ([]byte, error) { return e.AppendJSON(nil), nil }

// UnmarshalJSON decodes GitLab's streaming schema (id as a number or a numeric string) and
// ProducerKey.
func (e *Event) UnmarshalJSON(b []byte) error {
	var w struct {
		ID            json.Number     `json:"id"`
		AuthorID      int64           `json:"author_id"`
		AuthorName    string          `json:"author_name"`
		EntityID      int64           `json:"entity_id"`
		EntityType    string          `json:"entity_type"`
		EntityPath    string          `json:"entity_path"`
		Details       json.RawMessage `json:"details"`
		IPAddress     *string         `json:"ip_address"`
		TargetID      json.RawMessage `json:"target_id"`
		TargetType    string          `json:"target_type"`
		TargetDetails string          `json:"target_details"`
		CreatedAt     time.Time       `json:"created_at"`
		EventType     string          `json:"event_type"`
		Producer      *producerJSON   `json:"auditstream_producer"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*e = Event{AuthorID: w.AuthorID, AuthorName: w.AuthorName, EntityID: w.EntityID,
		EntityType: w.EntityType, EntityPath: w.EntityPath, Details: w.Details, TargetID: w.TargetID,
		TargetType: w.TargetType, TargetDetails: w.TargetDetails, CreatedAt: w.CreatedAt.UTC(), EventType: w.EventType}
	if p := w.Producer; p != nil {
		e.Producer = Producer{TokenID: p.TokenID, UserID: p.UserID, Username: p.Username, Impersonation: p.Impersonation, Via: p.Via}
	}
	if w.IPAddress != nil {
		e.IPAddress = *w.IPAddress
	}
	if w.ID != "" {
		id, err := w.ID.Int64()
		if err != nil {
			return fmt.Errorf("event id %q: %w", w.ID, err)
		}
		e.ID = id
	}
	return nil
}

// AppendWithID appends to out the JSON of an event encoded by AppendJSON without an id (body),
// with "id":id added as its first key. It does not parse the body.
func AppendWithID(out, body []byte, id int64) []byte {
	out = append(out, `{"id":`...)
	out = strconv.AppendInt(out, id, 10)
	if len(body) > 2 {
		out = append(out, ',')
	}
	return append(out, body[1:]...)
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string, escaped as the event JSON is (see appendString),
// so that other encodings of an event (internal/destination/format) write strings the same way.
func AppendJSONString(b []byte, s string) []byte { return appendString(b, s) }

// appendString appends s as a JSON string, escaping what encoding/json escapes (including <, >,
// & and U+2028/U+2029, so the output is safe to embed in HTML; \b and \f are written as \u0008
// and \u000c, which decode the same). Invalid UTF-8 becomes U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

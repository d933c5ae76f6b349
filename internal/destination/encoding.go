package destination

import (
	"strconv"
	"sync"

	"github.com/auditstream/auditstream/internal/destination/format"
	"github.com/auditstream/auditstream/internal/event"
)

// Encoding writes the events of one destination in its output format, config.format (package
// format: gitlab, ocsf or cef). Type.Open gives each sender its destination's Encoding in
// Settings.Format; the zero Encoding is GitLab's, which passes Event.JSON through unchanged.
// An Encoding is immutable and safe for concurrent use.
type Encoding struct {
	name string          // "" means format.GitLab
	enc  *format.Encoder // nil for GitLab
}

// NewEncoding returns the Encoding of format name ("" means GitLab) writing with enc; a nil enc
// means an encoder of the embedded event-type catalog. name must have passed format.Check.
func NewEncoding(name string, enc *format.Encoder) Encoding {
	if name == "" || name == format.GitLab {
		return Encoding{}
	}
	if enc == nil {
		enc = defaultEncoder()
	}
	return Encoding{name: name, enc: enc}
}

// defaultEncoder writes with the embedded catalog, for an Env without an Encoder (tests).
var defaultEncoder = sync.OnceValue(func() *format.Encoder {
	cat, err := event.Load("")
	if err != nil {
		cat = nil // the embedded catalog always loads; without it, every type gets format.Fallback
	}
	return format.New(cat, format.Options{})
})

// Name returns the format's name: format.GitLab, format.OCSF or format.CEF.
func (e Encoding) Name() string {
	if e.name == "" {
		return format.GitLab
	}
	return e.name
}

// GitLab reports whether the format is GitLab's JSON, every event sent as it is streamed.
func (e Encoding) GitLab() bool { return e.name == "" }

// JSON reports whether each event is a JSON object in the format (GitLab's and OCSF).
func (e Encoding) JSON() bool { return e.name != format.CEF }

// ContentType is the media type of one event in the format (format.ContentType).
func (e Encoding) ContentType() string { return format.ContentType(e.Name()) }

// Append appends ev in the format to dst: ev.JSON unchanged for GitLab. An event that cannot
// be encoded (its JSON is not an event with a created_at) is a Permanent failure, since sending
// it again cannot help; dst is then returned unchanged.
func (e Encoding) Append(dst []byte, ev Event) ([]byte, error) {
	if e.enc == nil {
		return append(dst, ev.JSON...), nil
	}
	b, err := e.enc.Append(dst, e.name, ev.JSON)
	if err != nil {
		return dst, &Failure{Kind: Permanent, Message: "cannot write event " + strconv.FormatInt(ev.ID, 10) + " as " + e.name + ": " + err.Error(), Err: err}
	}
	return b, nil
}

// Payload returns ev in the format: ev.JSON itself for GitLab, a new encoding otherwise (see
// Append for the errors).
func (e Encoding) Payload(ev Event) ([]byte, error) {
	if e.enc == nil {
		return ev.JSON, nil
	}
	return e.Append(nil, ev)
}

// Payloads returns the Payload of each event of batch, in order. For GitLab they are the
// events' JSON, not copies.
func (e Encoding) Payloads(batch []Event) ([][]byte, error) {
	out := make([][]byte, len(batch))
	for i, ev := range batch {
		p, err := e.Payload(ev)
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

// Formats returns the output formats a destination of category may use as config.format, the
// default (GitLab's) first: format.ForCategory, for the packages that show them (the UI's form).
func Formats(category string) []string {
	if f := format.ForCategory(category); len(f) > 0 {
		return f
	}
	return []string{format.GitLab}
}

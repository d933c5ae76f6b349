package destination

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/auditstream/auditstream/internal/destination/format"
)

// Destination categories. GitLab has http, gcp (Google Cloud Logging) and aws (Amazon S3): the
// category enum in EE externally_streamable.rb. gcs (Google Cloud Storage) and splunk (Splunk
// HTTP Event Collector) are ours.
const (
	CategoryHTTP   = "http"
	CategoryAWS    = "aws"
	CategoryGCP    = "gcp"
	CategoryGCS    = "gcs"
	CategorySplunk = "splunk"
)

// Limits and defaults that ParseConfig and the Validate functions enforce. Lengths count
// characters (runes), as GitLab's validations do, except MaxConfigBytes.
const (
	// MaxConfigBytes bounds the raw config JSON. GitLab has no such cap; ours, so that a hostile
	// config cannot make parsing or the error list expensive. A valid config is far smaller.
	MaxConfigBytes = 64 << 10
	// MaxHeaders is GitLab's limit on custom HTTP headers per destination (JSON schema
	// maxProperties, MAXIMUM_HEADER_COUNT in EE custom_http_externally_destinationable.rb).
	MaxHeaders = 20
	// MaxURLLen bounds config.url (GitLab's JSON schema) and our own URLs.
	MaxURLLen = 255
	// MaxHeaderNameLen and MaxHeaderValueLen bound a custom header (GitLab's JSON schema).
	MaxHeaderNameLen  = 255
	MaxHeaderValueLen = 255
	// MaxNameLen bounds a destination's name (GitLab: validates :name, length: { maximum: 72 }).
	MaxNameLen = 72
	// MaxSecretTokenLen bounds the secret of a category whose Type sets no other limit (GitLab: validates :secret_token, length: { maximum: 4096 }).
	MaxSecretTokenLen = 4096
	// MinVerificationTokenLen and MaxVerificationTokenLen bound a token given to the legacy
	// API (GitLab: validates :verification_token, length: { in: 16..24 }).
	MinVerificationTokenLen = 16
	MaxVerificationTokenLen = 24
	// DefaultLogIDName is the gcp logIdName used when none is given (GitLab's unified model,
	// assign_default_log_id; the legacy model used audit_events).
	DefaultLogIDName = "audit-events"
)

// Batching limits and defaults (config.batch, ours). A config without batch is delivered one
// event per request, GitLab's format. A config with batch uses the batched formats of the
// design (a JSON array per HTTP request, one object per batch in S3 and GCS, several entries
// per Cloud Logging or HEC request), even when maxEvents is 1.
const (
	MinBatchMaxEvents     = 1
	MaxBatchMaxEvents     = 10000
	DefaultBatchMaxEvents = 100 // GitLab's NATS consumer pulls 100 messages (BATCH_SIZE)
	MinBatchMaxBytes      = 1024
	MaxBatchMaxBytes      = 25 << 20 // GitLab's REQUEST_BODY_SIZE_LIMIT, 25 MB
	// MaxCloudLoggingWriteBytes bounds a gcp batch: Cloud Logging refuses writes over 10 MB.
	MaxCloudLoggingWriteBytes = 10_000_000
	DefaultBatchMaxBytes      = 1 << 20 // 1 MiB: nginx's default client_max_body_size
	MinBatchMaxWaitMs         = 0
	MaxBatchMaxWaitMs         = 60000
	DefaultBatchMaxWaitMs     = 1000
)

// Delivery settings (config.delivery, ours): how the engine sends to a destination.
const (
	// DefaultConcurrency is how many requests a destination has in flight by default: enough to
	// drain a backlog of a minute at 2,000 events/s in under 10 s against a receiver on the
	// same machine (docs/benchmarks.md), few enough not to flood a small receiver.
	DefaultConcurrency = 8
	// MaxConcurrency bounds config.delivery.concurrency.
	MaxConcurrency = 64
)

// Delivery is how the engine sends to one destination.
type Delivery struct {
	// Batch is set when the destination takes several events per request.
	Batch *Batch
	// Concurrency is how many requests may be in flight at once (1 when Ordered).
	Concurrency int
	// Ordered sends strictly in log order, one request at a time.
	Ordered bool
	// BufferWhilePaused keeps the destination's position while it is inactive, so that it
	// receives what it missed when activated again (up to the log's max age). By default a
	// paused destination, as in GitLab, does not receive the events of its pause.
	BufferWhilePaused bool
}

// Batch bounds one batched request.
type Batch struct {
	MaxEvents int
	MaxBytes  int
	MaxWait   time.Duration
}

// DeliveryOf reads the delivery settings of a stored config (Config.JSON). A field the config
// lacks gets the default the API writes when it is left out, so that a config stored by hand,
// or by a version that did not write every field, is delivered as the API would have stored it.
func DeliveryOf(stored []byte) Delivery {
	var cfg struct {
		Batch *struct {
			MaxEvents, MaxBytes, MaxWaitMs *int
		} `json:"batch"`
		Delivery *struct {
			Concurrency                *int
			Ordered, BufferWhilePaused bool
		} `json:"delivery"`
	}
	_ = json.Unmarshal(stored, &cfg)  // stored configs were validated; a broken one gets defaults
	or := func(v *int, def int) int { // what the checker writes when the field is left out
		if v == nil || *v < 0 {
			return def
		}
		return *v
	}
	d := Delivery{Concurrency: DefaultConcurrency}
	if b := cfg.Batch; b != nil {
		d.Batch = &Batch{MaxEvents: max(or(b.MaxEvents, DefaultBatchMaxEvents), MinBatchMaxEvents), MaxBytes: max(or(b.MaxBytes, DefaultBatchMaxBytes), MinBatchMaxBytes),
			MaxWait: time.Duration(or(b.MaxWaitMs, DefaultBatchMaxWaitMs)) * time.Millisecond} // 0 is valid: no wait
	}
	if x := cfg.Delivery; x != nil {
		d.Concurrency, d.Ordered, d.BufferWhilePaused = max(or(x.Concurrency, DefaultConcurrency), 1), x.Ordered, x.BufferWhilePaused
	}
	if d.Ordered {
		d.Concurrency = 1
	}
	return d
}

// Field names used in ConfigError.Field, besides the JSON paths inside the config, which start
// with FieldConfig ("config.url", "config.headers.X-Foo.value"). They match the GraphQL input
// field names.
const (
	FieldConfig            = "config"
	FieldCategory          = "category"
	FieldName              = "name"
	FieldSecretToken       = "secretToken"
	FieldVerificationToken = "verificationToken"
)

// Codes used in ConfigError.Code. They are stable, so an API can return them as data.
// ConfigError also uses CodeTooMany (more custom headers than MaxHeaders, or more problems than
// are listed) and CodeUnknownCategory (a destination category that does not exist).
const (
	// CodeRequired: the field is missing, null, or empty.
	CodeRequired = "required"
	// CodeInvalid: the value has the right type but breaks a rule: a pattern, a range, a
	// duplicate JSON key or header name, a malformed URL, key or JSON document.
	CodeInvalid = "invalid"
	// CodeTooLong: the value is longer than Limit characters (bytes for the whole config).
	CodeTooLong = "too_long"
	// CodeTooShort: the value is shorter than Limit characters.
	CodeTooShort = "too_short"
	// CodeUnknownField: the object has a key its category does not define.
	CodeUnknownField = "unknown_field"
	// CodeReservedHeader: a custom header name that auditstream sets itself.
	CodeReservedHeader = "reserved_header"
	// CodeWrongType: the JSON value has the wrong type, such as a string where an integer or
	// an object is expected, or a number with a fraction where an integer is expected.
	CodeWrongType = "wrong_type"
	// CodeUnsupportedFormat: config.format is not an output format, or not one the category's
	// protocol can carry (format.Check).
	CodeUnsupportedFormat = "unsupported_format"
)

// StreamingTokenHeader carries an http destination's secret token (GitLab's
// STREAMING_TOKEN_HEADER_KEY). It cannot be a custom header.
const StreamingTokenHeader = "X-Gitlab-Event-Streaming-Token"

// reservedHeaders are the headers auditstream sets on every HTTP delivery (design 5.6) or that
// the HTTP client owns. A custom header may not override them. Compared ignoring case.
var reservedHeaders = []string{
	StreamingTokenHeader,
	"X-Gitlab-Audit-Event-Type",
	"webhook-id",
	"webhook-timestamp",
	"webhook-signature",
	"Content-Length",
	"Host",
	"Transfer-Encoding",
	"Connection",
}

// maxConfigErrors bounds the problems one call reports. The rest are summed up in one last
// ConfigError with CodeTooMany.
const maxConfigErrors = 50

// maxJSONDepth bounds the nesting of a config. Valid configs nest three deep
// (config.headers.<name>).
const maxJSONDepth = 16

// Patterns of the http rules, from GitLab's JSON schema (EE app/validators/json_schemas/
// audit_events_http_external_streaming_destination_config.json). Go's $ matches only at the
// end of the text. Each category's own patterns are in its package.
var (
	// GitLab: "^(https?://.+|\$[A-Za-z]+)", anchored at the start only.
	httpURLPattern     = regexp.MustCompile(`^https?://.+`)
	variableURLPattern = regexp.MustCompile(`^\$[A-Za-z]+`)
	headerNamePattern  = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,255}$")
)

// ConfigError is one problem in a destination's category, name, config or secret. Field, Code
// and Limit are stable data that an API can return as they are. Message and Error are for
// people.
//
// Neither Field nor Message ever holds a value from the input: a config holds custom header
// values, which are secrets, and a user may paste a secret into the wrong field. They may name
// a key or header name, quoted and shortened when it is not a plain token.
type ConfigError struct {
	// Field is where the problem is: FieldCategory, FieldName, FieldSecretToken,
	// FieldVerificationToken, FieldConfig for the config as a whole, or a path inside it such
	// as "config.url" or "config.headers.X-Foo.value". A key that is not a plain header-name
	// token is written quoted in brackets: config["a b"].
	Field string
	Code  string // one of the Code constants
	// Message says what is wrong, as the rest of a sentence that starts with Field: "must be
	// at most 255 characters long".
	Message string
	// Limit is the bound that was broken for CodeTooLong, CodeTooShort and CodeTooMany,
	// otherwise 0.
	Limit int
}

// Error returns Field and Message, as in "config.url: must start with http:// or https://".
func (e *ConfigError) Error() string {
	if e.Message == "" {
		return e.Field + ": " + e.Code
	}
	return e.Field + ": " + e.Message
}

// ConfigErrors returns every *ConfigError in err's tree, in order. It looks through
// errors.Join and %w wrapping. An API uses it to list all the problems that ParseConfig or a
// Validate function reported.
func ConfigErrors(err error) []*ConfigError { return errorsOf[*ConfigError](err) }

// Config is the validated, normalized config of one destination. ParseConfig makes it.
type Config struct {
	// Category is one of the Category constants.
	Category string
	// JSON is the config to store: a compact JSON object that holds no secret. Its keys are in
	// a fixed order at every level: "url" first when present, then the others in byte order.
	// Defaults are filled in: gcp logIdName, and every field of batch when batch is given.
	// Optional fields that were missing, null or "" are left out. An http config's custom
	// headers are not in it at all (see Headers and ConfigWithHeaders).
	JSON []byte
	// Headers holds an http destination's custom headers, values in clear, sorted by name
	// ignoring case, then byte order. It is nil for other categories and when there are none.
	// Header values are secrets: the caller stores them sealed, apart from JSON.
	Headers []Header
}

// Header is one custom HTTP header of an http destination.
type Header struct {
	Name  string
	Value string // a secret: String and GoString do not show it
	// Active headers are sent; inactive ones are kept but not sent. GitLab's default is true.
	Active bool
}

// String returns the name and state without the value, so that a Header or a Config can be
// logged or printed with %v without leaking it.
func (h Header) String() string {
	if h.Active {
		return h.Name + ": [redacted]"
	}
	return h.Name + ": [redacted] (inactive)"
}

// GoString is like String, for %#v.
func (h Header) GoString() string {
	return fmt.Sprintf("destination.Header{Name:%q, Value:\"[redacted]\", Active:%t}", h.Name, h.Active)
}

// headers checks an http config's headers value and returns the headers, sorted.
func (c *checker) headers(field string, v *jsonValue) []Header {
	if v == nil {
		return nil
	}
	if v.kind != kindObject {
		c.add(field, CodeWrongType, 0, "must be a JSON object, not "+v.kind.String())
		return nil
	}
	if len(v.members) == 0 {
		return nil // GitLab: "Empty headers are removed" (remove_empty_headers_from_config)
	}
	if n := len(v.members); n > MaxHeaders {
		c.add(field, CodeTooMany, MaxHeaders, fmt.Sprintf("has %d headers, at most %d are allowed", n, MaxHeaders))
		return nil
	}
	var out []Header
	seen := map[string]string{} // lower-cased name → name as first given
	for _, m := range v.members {
		name := m.key
		if !headerNamePattern.MatchString(name) {
			c.add(field, CodeInvalid, 0, fmt.Sprintf("%s is not a valid header name (1 to %d letters, digits and !#$%%&'*+.^_`|~-)", quoteKey(name), MaxHeaderNameLen))
			continue
		}
		f := joinField(field, name)
		if i := slices.IndexFunc(reservedHeaders, func(r string) bool { return strings.EqualFold(r, name) }); i >= 0 {
			if i == 0 {
				c.add(f, CodeReservedHeader, 0, "cannot be a custom header: it carries the destination's secret token")
			} else {
				c.add(f, CodeReservedHeader, 0, "cannot be a custom header: auditstream sets it")
			}
			continue
		}
		lower := strings.ToLower(name)
		if first, dup := seen[lower]; dup {
			c.add(f, CodeInvalid, 0, fmt.Sprintf("duplicates header %s (header names are case-insensitive)", first))
			continue
		}
		seen[lower] = name
		entry, ok := c.open(f, m.val, "value", "active")
		if !ok {
			continue
		}
		h := Header{Name: name, Active: true}
		valueOK := false
		switch ev := entry.get("value"); {
		case ev == nil:
			c.add(entry.field("value"), CodeRequired, 0, "is required")
		case ev.kind != kindString:
			c.add(entry.field("value"), CodeWrongType, 0, "must be a string, not "+ev.kind.String())
		default:
			h.Value = ev.str
			valueOK = c.headerValue(entry.field("value"), ev.str)
		}
		if b, ok := entry.boolean("active"); ok {
			h.Active = b
		}
		if valueOK {
			out = append(out, h)
		}
	}
	sortHeaders(out)
	return out
}

// headerValue checks a custom header value against GitLab's JSON schema:
// ^[!-~¡-ÿ]([!-~¡-ÿ]| |\t)*[!-~¡-ÿ]$|^[!-~¡-ÿ]$|^$ and at most 255 characters. So the value
// may be empty; otherwise it holds visible ASCII and U+00A1-U+00FF, with spaces and tabs only
// between them.
func (c *checker) headerValue(field, s string) bool {
	if !c.length(field, s, 0, MaxHeaderValueLen) {
		return false
	}
	if s == "" {
		return true
	}
	visible := func(r rune) bool { return r >= '!' && r <= '~' || r >= 0xA1 && r <= 0xFF }
	first, _ := utf8.DecodeRuneInString(s)
	last, _ := utf8.DecodeLastRuneInString(s)
	switch {
	case strings.ContainsAny(s, "\r\n"):
		c.add(field, CodeInvalid, 0, "must not contain line breaks")
	case strings.ContainsFunc(s, func(r rune) bool { return !visible(r) && r != ' ' && r != '\t' }):
		c.add(field, CodeInvalid, 0, "may only contain visible ASCII and Latin-1 characters, spaces and tabs")
	case !visible(first) || !visible(last):
		c.add(field, CodeInvalid, 0, "must not start or end with a space or tab")
	default:
		return true
	}
	return false
}

// sortHeaders sorts by name ignoring case, then by byte order.
func sortHeaders(hs []Header) {
	slices.SortStableFunc(hs, func(a, b Header) int {
		return cmp.Or(cmp.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)), cmp.Compare(a.Name, b.Name))
	})
}

// batch checks o's optional batch field and, when it is given, writes it to out with every
// default filled in.
func (c *checker) batch(o *object, out *objectWriter, maxEvents, maxBytes int64) {
	v := o.get("batch")
	if v == nil {
		return
	}
	b, ok := c.open(o.field("batch"), v, "maxEvents", "maxBytes", "maxWaitMs")
	if !ok {
		return
	}
	var w objectWriter
	w.setInt("maxEvents", b.integer("maxEvents", MinBatchMaxEvents, maxEvents, min(DefaultBatchMaxEvents, maxEvents)))
	w.setInt("maxBytes", b.integer("maxBytes", MinBatchMaxBytes, maxBytes, DefaultBatchMaxBytes))
	w.setInt("maxWaitMs", b.integer("maxWaitMs", MinBatchMaxWaitMs, MaxBatchMaxWaitMs, DefaultBatchMaxWaitMs))
	out.set("batch", w.bytes())
}

// format checks o's optional format field (ours, every category) with format.Check for
// category and, when it is given and allowed, writes it to out. It returns the format, "" for
// GitLab's (also when it is refused: then the problem is reported).
func (c *checker) format(o *object, out *objectWriter, category string) string {
	name, ok := o.str("format", false)
	if !ok {
		return ""
	}
	if err := format.Check(category, name); err != nil {
		msg := "must be one of " + strings.Join(format.Names(), ", ")
		if errors.Is(err, format.ErrNotForCategory) {
			msg = quoteKey(name) + " cannot be sent to a " + category + " destination (use one of " + strings.Join(Formats(category), ", ") + ")"
		}
		c.add(o.field("format"), CodeUnsupportedFormat, 0, msg)
		return ""
	}
	out.setString("format", name)
	if name == format.GitLab {
		return ""
	}
	return name
}

// delivery checks o's optional delivery field (ours, every category) and, when it is given,
// writes it to out with every default filled in.
func (c *checker) delivery(o *object, out *objectWriter) {
	v := o.get("delivery")
	if v == nil {
		return
	}
	d, ok := c.open(o.field("delivery"), v, "concurrency", "ordered", "bufferWhilePaused")
	if !ok {
		return
	}
	var w objectWriter
	w.setInt("concurrency", d.integer("concurrency", 1, MaxConcurrency, DefaultConcurrency))
	ordered, _ := d.boolean("ordered")
	buffer, _ := d.boolean("bufferWhilePaused")
	w.setBool("ordered", ordered)
	w.setBool("bufferWhilePaused", buffer)
	out.set("delivery", w.bytes())
}

// ConfigWithHeaders returns the config as the API shows it: for http, stored (Config.JSON)
// with "headers": {"<Name>": {"value": "...", "active": true}, ...} put back in, headers in
// Config.Headers' order (it sorts a copy, so the caller's order does not matter), keys in
// Config.JSON's order, and no headers key when there are none. ParseConfig of the result gives
// the same Config again. For other categories, and when stored is not a JSON object (it always
// is when it came from ParseConfig), it returns stored unchanged.
//
// The result holds the header values: it is for an authorized reader, never for logs.
func ConfigWithHeaders(category string, stored []byte, headers []Header) []byte {
	if category != CategoryHTTP {
		return stored
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(stored, &members); err != nil || members == nil {
		return stored
	}
	var out objectWriter
	for k, v := range members {
		if k == "headers" {
			continue
		}
		var buf bytes.Buffer
		if json.Compact(&buf, v) != nil {
			return stored
		}
		out.set(k, buf.Bytes())
	}
	if len(headers) > 0 {
		hs := slices.Clone(headers)
		sortHeaders(hs)
		b := []byte{'{'}
		for i, h := range hs {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendJSONString(b, h.Name)
			b = append(b, `:{"value":`...)
			b = AppendJSONString(b, h.Value)
			b = append(b, `,"active":`...)
			b = strconv.AppendBool(b, h.Active)
			b = append(b, '}')
		}
		out.set("headers", append(b, '}'))
	}
	return out.bytes()
}

// CheckPrivateKeyPEM returns why s is not an unencrypted RSA private key in PEM form, or "".
// The reason never quotes s.
func CheckPrivateKeyPEM(s string) string {
	const want = "must be the service account's private key in PEM form, starting with -----BEGIN PRIVATE KEY-----"
	s = strings.TrimSpace(s)
	switch {
	case strings.HasPrefix(s, "{"):
		return want + ", not the whole JSON key file: paste only the value of its private_key field"
	case !strings.HasPrefix(s, "-----BEGIN "):
		return want
	case !strings.Contains(s, "\n") && strings.Contains(s, `\n`):
		return want + `, with line breaks where the key file has \n`
	}
	block, rest := pem.Decode([]byte(s))
	if block == nil {
		return want
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return want + ", and nothing else"
	}
	if block.Type == "ENCRYPTED PRIVATE KEY" || block.Headers["Proc-Type"] != "" {
		return "must be an unencrypted private key"
	}
	switch _, err := ParseRSAKey(block); {
	case errors.Is(err, ErrKeyType):
		return want
	case errors.Is(err, ErrNotRSA):
		return "must be an RSA private key, as Google service-account keys are"
	case err != nil:
		return "is not a valid private key"
	}
	return ""
}

// Errors of ParseRSAKey.
var (
	ErrKeyType = errors.New("not a PRIVATE KEY or RSA PRIVATE KEY block")
	ErrNotRSA  = errors.New("not an RSA key")
)

// ParseRSAKey reads the RSA private key of a PEM block: PKCS#8 ("PRIVATE KEY", Google's key
// files) or PKCS#1 ("RSA PRIVATE KEY"). Its errors never quote the key.
func ParseRSAKey(block *pem.Block) (*rsa.PrivateKey, error) {
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, ErrKeyType
	}
	if err != nil {
		return nil, errors.New("the key does not parse")
	}
	k, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, ErrNotRSA
	}
	return k, nil
}

// ValidateVerificationToken checks a verification token given to the legacy API
// (verificationToken): 16 to 24 characters, no control characters. Like GitLab, it does not
// trim whitespace. The error is a *ConfigError with Field FieldVerificationToken and never
// holds the token.
func ValidateVerificationToken(tok string) error {
	fail := func(code string, limit int, msg string) error {
		return &ConfigError{Field: FieldVerificationToken, Code: code, Message: msg, Limit: limit}
	}
	n := utf8.RuneCountInString(tok)
	switch {
	case !utf8.ValidString(tok):
		return fail(CodeInvalid, 0, "must be valid UTF-8")
	case n < MinVerificationTokenLen:
		return fail(CodeTooShort, MinVerificationTokenLen, fmt.Sprintf("must be at least %d characters long", MinVerificationTokenLen))
	case n > MaxVerificationTokenLen:
		return fail(CodeTooLong, MaxVerificationTokenLen, fmt.Sprintf("must be at most %d characters long", MaxVerificationTokenLen))
	case strings.ContainsFunc(tok, unicode.IsControl):
		return fail(CodeInvalid, 0, "must not contain control characters")
	}
	return nil
}

// NewVerificationToken returns a new random verification token of 24 characters from the
// standard base64 alphabet (A-Z a-z 0-9 + /), like GitLab's SecureRandom.base64(18).
func NewVerificationToken() string {
	return base64.StdEncoding.EncodeToString(randomBytes(18))
}

// NewSigningSecret returns a new Standard Webhooks signing secret: "whsec_" and the standard
// base64 encoding (with padding) of 32 random bytes.
func NewSigningSecret() string {
	return "whsec_" + base64.StdEncoding.EncodeToString(randomBytes(32))
}

// ValidateName checks a destination's name: not empty, at most MaxNameLen characters, no
// control characters. Like GitLab, it does not trim whitespace. The caller applies
// DefaultName when no name is given. The error is a *ConfigError with Field FieldName.
func ValidateName(name string) error {
	fail := func(code string, limit int, msg string) error {
		return &ConfigError{Field: FieldName, Code: code, Message: msg, Limit: limit}
	}
	switch {
	case name == "":
		return fail(CodeRequired, 0, "must not be empty")
	case !utf8.ValidString(name):
		return fail(CodeInvalid, 0, "must be valid UTF-8")
	case utf8.RuneCountInString(name) > MaxNameLen:
		return fail(CodeTooLong, MaxNameLen, fmt.Sprintf("must be at most %d characters long", MaxNameLen))
	case strings.ContainsFunc(name, unicode.IsControl):
		return fail(CodeInvalid, 0, "must not contain control characters")
	}
	return nil
}

// DefaultName returns GitLab's default destination name, "Destination_" followed by a new
// random (version 4) UUID in lower-case hex, as in
// Destination_0b6f3a6e-2c1d-4e8f-9a7b-5c3d2e1f0a9b.
func DefaultName() string { return "Destination_" + NewUUID() }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails: crypto/rand.Read crashes the program rather than return an error
	return b
}

// ValidEmail is the check GitLab's idn-email format comes down to for a service account: one
// @ between a non-empty local part and a non-empty domain, without spaces or control characters.
func ValidEmail(s string) bool {
	local, domain, ok := strings.Cut(s, "@")
	return ok && local != "" && domain != "" && !strings.Contains(domain, "@") &&
		!strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) })
}

// checker collects the problems of one ParseConfig call.
type checker struct {
	errs    []error
	dropped int // problems past maxConfigErrors
}

func (c *checker) add(field, code string, limit int, msg string) {
	if len(c.errs) >= maxConfigErrors {
		c.dropped++
		return
	}
	c.errs = append(c.errs, &ConfigError{Field: field, Code: code, Message: msg, Limit: limit})
}

func (c *checker) err() error {
	errs := c.errs
	if c.dropped > 0 {
		errs = append(errs, &ConfigError{
			Field: FieldConfig, Code: CodeTooMany, Limit: maxConfigErrors,
			Message: fmt.Sprintf("has %d more problems than the %d listed", c.dropped, maxConfigErrors),
		})
	}
	return errors.Join(errs...)
}

// length reports whether s has min to max characters, and reports the problem if not.
func (c *checker) length(field, s string, min, max int) bool {
	switch n := utf8.RuneCountInString(s); {
	case n < min:
		c.add(field, CodeTooShort, min, fmt.Sprintf("must be at least %d characters long", min))
	case n > max:
		c.add(field, CodeTooLong, max, fmt.Sprintf("must be at most %d characters long", max))
	default:
		return true
	}
	return false
}

// match reports whether s matches re, and reports msg as CodeInvalid if not.
func (c *checker) match(field, s string, re *regexp.Regexp, msg string) bool {
	if re.MatchString(s) {
		return true
	}
	c.add(field, CodeInvalid, 0, msg)
	return false
}

// printable reports whether s has at most max printable characters.
func (c *checker) printable(field, s string, max int) bool {
	if !c.length(field, s, 1, max) {
		return false
	}
	if strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) {
		c.add(field, CodeInvalid, 0, "may only contain printable characters")
		return false
	}
	return true
}

// url checks a destination URL: at most MaxURLLen characters without whitespace or control
// characters, starting with http:// or https:// (lower case, as GitLab's pattern has it),
// parsing with net/url and naming a host. With allowVariable, GitLab's other form, "$" and
// letters at the start ($VARIABLE), is accepted too.
func (c *checker) url(field, s string, allowVariable bool) bool {
	if !c.length(field, s, 1, MaxURLLen) {
		return false
	}
	if strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		c.add(field, CodeInvalid, 0, "must not contain spaces or control characters")
		return false
	}
	if allowVariable && variableURLPattern.MatchString(s) {
		return true
	}
	if !httpURLPattern.MatchString(s) {
		c.add(field, CodeInvalid, 0, "must start with http:// or https://")
		return false
	}
	u, err := url.Parse(s)
	if err != nil {
		c.add(field, CodeInvalid, 0, "is not a valid URL")
		return false
	}
	if u.Hostname() == "" {
		c.add(field, CodeInvalid, 0, "must name a host")
		return false
	}
	return true
}

// jsonKind is the type of a JSON value.
type jsonKind uint8

const (
	kindNull jsonKind = iota
	kindBool
	kindNumber
	kindString
	kindArray
	kindObject
)

// String names the kind for messages: "must be a string, not a number".
func (k jsonKind) String() string {
	return [...]string{"null", "a boolean", "a number", "a string", "an array", "an object"}[k]
}

// jsonValue is a decoded JSON value that keeps an object's keys in order.
type jsonValue struct {
	kind    jsonKind
	boolean bool
	number  json.Number
	str     string
	members []jsonMember // kindObject: each key once, where it first appeared, with its last value
}

type jsonMember struct {
	key string
	val *jsonValue
}

// errTooDeep stops decoding a document nested deeper than maxJSONDepth.
var errTooDeep = errors.New("nested too deeply")

// document checks that raw is a JSON object fit to validate and decodes it. It reports
// duplicate keys and returns nil when raw cannot be validated further.
func (c *checker) document(raw []byte) *jsonValue {
	if len(raw) > MaxConfigBytes {
		c.add(FieldConfig, CodeTooLong, MaxConfigBytes, fmt.Sprintf("must be at most %d bytes of JSON", MaxConfigBytes))
		return nil
	}
	if t := bytes.TrimSpace(raw); len(t) == 0 || string(t) == "null" {
		c.add(FieldConfig, CodeRequired, 0, "is required")
		return nil
	}
	if !utf8.Valid(raw) {
		c.add(FieldConfig, CodeInvalid, 0, "must be valid UTF-8")
		return nil
	}
	raw = unquoteObject(raw)
	if err := json.Unmarshal(raw, new(json.RawMessage)); err != nil {
		msg := "is not valid JSON"
		if se := (*json.SyntaxError)(nil); errors.As(err, &se) {
			msg = fmt.Sprintf("is not valid JSON (error at byte %d)", se.Offset)
		}
		c.add(FieldConfig, CodeInvalid, 0, msg)
		return nil
	}
	d := treeDecoder{dec: json.NewDecoder(bytes.NewReader(raw)), c: c}
	d.dec.UseNumber()
	root, err := d.value(&fieldPath{key: FieldConfig}, 0)
	if err != nil {
		if !errors.Is(err, errTooDeep) {
			c.add(FieldConfig, CodeInvalid, 0, "is not valid JSON")
		}
		return nil
	}
	if root.kind != kindObject {
		c.add(FieldConfig, CodeWrongType, 0, "must be a JSON object, not "+root.kind.String())
		return nil
	}
	return root
}

// unquoteObject returns the JSON text a JSON string holds when that text is an object
// ("{\"url\":…}", as GitLab's own QA client sends config; GitLab keeps config in a jsonb
// attribute, which parses a string), and raw unchanged otherwise.
func unquoteObject(raw []byte) []byte {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || t[0] != '"' {
		return raw
	}
	var s string
	if json.Unmarshal(t, &s) != nil {
		return raw
	}
	if inner := bytes.TrimSpace([]byte(s)); len(inner) > 0 && inner[0] == '{' {
		return inner
	}
	return raw
}

// fieldPath is the path to a value while decoding, built into a Field string only when a
// problem is reported.
type fieldPath struct {
	parent *fieldPath
	key    string
	index  int // for an array element (key == "")
}

func (p *fieldPath) String() string {
	if p.parent == nil {
		return p.key
	}
	if p.key == "" {
		return p.parent.String() + "[" + strconv.Itoa(p.index) + "]"
	}
	return joinField(p.parent.String(), p.key)
}

// treeDecoder decodes a JSON document, already known to be valid, into jsonValues, walking
// its tokens so that it sees every key: encoding/json silently keeps the last of duplicate
// keys. It reports each duplicated key once.
type treeDecoder struct {
	dec *json.Decoder
	c   *checker
}

func (d *treeDecoder) value(path *fieldPath, depth int) (*jsonValue, error) {
	if depth >= maxJSONDepth {
		d.c.add(path.String(), CodeInvalid, 0, fmt.Sprintf("is nested more than %d levels deep", maxJSONDepth))
		return nil, errTooDeep
	}
	tok, err := d.dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case nil:
		return &jsonValue{kind: kindNull}, nil
	case bool:
		return &jsonValue{kind: kindBool, boolean: t}, nil
	case json.Number:
		return &jsonValue{kind: kindNumber, number: t}, nil
	case string:
		return &jsonValue{kind: kindString, str: t}, nil
	case json.Delim:
		v := &jsonValue{kind: kindObject}
		var index map[string]int     // key → position in v.members
		var reported map[string]bool // duplicated keys already reported
		for i := 0; d.dec.More(); i++ {
			child := &fieldPath{parent: path, index: i}
			if t == '{' {
				tok, err := d.dec.Token()
				if err != nil {
					return nil, err
				}
				key, ok := tok.(string)
				if !ok {
					return nil, fmt.Errorf("object key is %T", tok)
				}
				child.key = key
			}
			val, err := d.value(child, depth+1)
			if err != nil {
				return nil, err
			}
			if t != '{' {
				continue // array elements are never valid config values; only their keys are checked
			}
			if index == nil {
				index = map[string]int{}
			}
			if at, dup := index[child.key]; dup {
				if !reported[child.key] {
					d.c.add(child.String(), CodeInvalid, 0, "is given more than once")
					if reported == nil {
						reported = map[string]bool{}
					}
					reported[child.key] = true
				}
				v.members[at].val = val
				continue
			}
			index[child.key] = len(v.members)
			v.members = append(v.members, jsonMember{key: child.key, val: val})
		}
		if _, err := d.dec.Token(); err != nil { // the closing delimiter
			return nil, err
		}
		if t == '[' {
			v = &jsonValue{kind: kindArray}
		}
		return v, nil
	}
	return nil, io.ErrUnexpectedEOF
}

// object is a JSON object being validated, with its path.
type object struct {
	c       *checker
	path    string
	members []jsonMember
}

// open returns v as an object, reporting CodeWrongType when it is not one, and CodeUnknownField
// for each key not in allowed.
func (c *checker) open(path string, v *jsonValue, allowed ...string) (*object, bool) {
	if v.kind != kindObject {
		c.add(path, CodeWrongType, 0, "must be a JSON object, not "+v.kind.String())
		return nil, false
	}
	for _, m := range v.members {
		if !slices.Contains(allowed, m.key) {
			c.add(joinField(path, m.key), CodeUnknownField, 0, "is not a known field (known: "+strings.Join(allowed, ", ")+")")
		}
	}
	return &object{c: c, path: path, members: v.members}, true
}

func (o *object) field(key string) string { return joinField(o.path, key) }

// get returns the value of key, or nil when key is missing or null.
func (o *object) get(key string) *jsonValue {
	for _, m := range o.members {
		if m.key == key && m.val.kind != kindNull {
			return m.val
		}
	}
	return nil
}

// str returns the string at key. ok is false when the key is missing, null, "" or not a
// string; a missing key is reported if required, and a value of another type always is.
func (o *object) str(key string, required bool) (s string, ok bool) {
	v := o.get(key)
	switch {
	case v == nil || v.kind == kindString && v.str == "":
		if required {
			o.c.add(o.field(key), CodeRequired, 0, "is required")
		}
		return "", false
	case v.kind != kindString:
		o.c.add(o.field(key), CodeWrongType, 0, "must be a string, not "+v.kind.String())
		return "", false
	}
	return v.str, true
}

// boolean returns the boolean at key. ok is false when the key is missing, null or not a
// boolean; a value of another type is reported.
func (o *object) boolean(key string) (b, ok bool) {
	v := o.get(key)
	switch {
	case v == nil:
		return false, false
	case v.kind != kindBool:
		o.c.add(o.field(key), CodeWrongType, 0, "must be true or false, not "+v.kind.String())
		return false, false
	}
	return v.boolean, true
}

// integer returns the integer at key, or def when the key is missing, null or wrong. The value
// must be a JSON number written as an integer (no fraction or exponent) from lo to hi.
func (o *object) integer(key string, lo, hi, def int64) int64 {
	v := o.get(key)
	if v == nil {
		return def
	}
	field := o.field(key)
	if v.kind != kindNumber {
		o.c.add(field, CodeWrongType, 0, "must be an integer, not "+v.kind.String())
		return def
	}
	n, err := strconv.ParseInt(v.number.String(), 10, 64)
	switch {
	case errors.Is(err, strconv.ErrRange):
	case err != nil:
		o.c.add(field, CodeWrongType, 0, "must be an integer, without a fraction or exponent")
		return def
	case n >= lo && n <= hi:
		return n
	}
	o.c.add(field, CodeInvalid, 0, fmt.Sprintf("must be from %d to %d", lo, hi))
	return def
}

// joinField appends key to a field path: "config.url". A key that is not a header-name token
// is quoted in brackets, and shortened: config["a b"].
func joinField(path, key string) string {
	if headerNamePattern.MatchString(key) {
		return path + "." + key
	}
	return path + "[" + quoteKey(key) + "]"
}

// quoteKey quotes a key or name for a message, shortened to at most 64 bytes.
func quoteKey(s string) string {
	const max = 64
	if len(s) > max {
		i := max
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		s = s[:i] + "…"
	}
	return strconv.Quote(s)
}

// objectWriter builds a compact JSON object whose keys are in the order Config.JSON documents:
// "url" first, then byte order.
type objectWriter struct {
	members []outMember
}

type outMember struct {
	key string
	raw []byte
}

func (w *objectWriter) set(key string, raw []byte) {
	for i := range w.members {
		if w.members[i].key == key {
			w.members[i].raw = raw
			return
		}
	}
	w.members = append(w.members, outMember{key: key, raw: raw})
}

func (w *objectWriter) setString(key, s string)    { w.set(key, AppendJSONString(nil, s)) }
func (w *objectWriter) setBool(key string, b bool) { w.set(key, strconv.AppendBool(nil, b)) }
func (w *objectWriter) setInt(key string, n int64) { w.set(key, strconv.AppendInt(nil, n, 10)) }

func (w *objectWriter) bytes() []byte {
	slices.SortFunc(w.members, func(a, b outMember) int {
		switch {
		case a.key == b.key:
			return 0
		case a.key == "url":
			return -1
		case b.key == "url":
			return 1
		}
		return strings.Compare(a.key, b.key)
	})
	b := []byte{'{'}
	for i, m := range w.members {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendJSONString(b, m.key)
		b = append(b, ':')
		b = append(b, m.raw...)
	}
	return append(b, '}')
}

// AppendJSONString appends s as a JSON string, without escaping <, > and & (URLs have &).
func AppendJSONString(b []byte, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}

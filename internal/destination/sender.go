package destination

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/auditstream/auditstream/internal/destination/format"
)

// Event is one event handed to a destination: its id (the log's sequence), its type, and its
// JSON exactly as streamed (design 5.2, with "id").
type Event struct {
	ID        int64
	Type      string
	CreatedAt time.Time
	JSON      []byte
}

// Sender delivers events to one configured destination. A Sender does not retry, wait or
// track positions: the delivery engine does. It is safe for concurrent use.
type Sender interface {
	// Send delivers batch: one event, or several when the destination batches (Delivery.Batch),
	// all or nothing. nil means the destination accepted every event. Otherwise the error says
	// what happened; wrap it in a *Failure to classify it (anything else counts as retryable).
	Send(ctx context.Context, batch []Event) error
	// Close releases what the Sender holds (idle connections).
	Close() error
}

// Settings is one destination as a Sender needs it, secrets opened.
type Settings struct {
	ID       int64
	Category string
	// Config is the stored config (Config.JSON): no headers, defaults filled in.
	Config []byte
	// Headers are the custom HTTP headers (http only), values in clear.
	Headers     []Header
	SecretToken string
	// SigningSecret (whsec_...) signs HTTP deliveries; PreviousSigningSecret, until
	// PreviousValidUntil, signs them too, so receivers can rotate.
	SigningSecret         string
	PreviousSigningSecret string
	PreviousValidUntil    time.Time
	// Format writes the events in the destination's output format (config.format). Type.Open
	// sets it from the config; the zero Encoding is GitLab's JSON.
	Format Encoding
}

// Env is what the service gives every Sender.
type Env struct {
	// HTTPClient sends requests: connections reused, timeouts bounded, redirects not followed,
	// and dialling refuses addresses the operator has not allowed (internal/netguard).
	HTTPClient *http.Client
	// Dial connects for the categories that do not speak HTTP (kafka): it refuses the same
	// addresses as HTTPClient (netguard.Policy.DialContext). A sender without one dials through
	// the default netguard.Policy.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Encoder writes the OCSF and CEF formats with the service's event-type catalog and version
	// (an encoder of the embedded catalog when nil).
	Encoder *format.Encoder
}

// Factory makes a Sender for one category.
type Factory func(s Settings, env Env) (Sender, error)

// FailureKind says what the engine does after a failed Send.
type FailureKind int

// The kinds of failure.
const (
	// Retryable: try again after a backoff (network errors, 5xx, 408, 425).
	Retryable FailureKind = iota
	// Throttled: the destination asked us to wait (429, or 503 with Retry-After); wait
	// RetryAfter without counting an attempt.
	Throttled
	// Permanent: sending the same events again cannot succeed (most 4xx, a bad config); the
	// events go to the dead letters.
	Permanent
)

func (k FailureKind) String() string {
	switch k {
	case Throttled:
		return "throttled"
	case Permanent:
		return "permanent"
	}
	return "retryable"
}

// Failure is a classified failed Send. Message is for the destination's owners: it never
// holds a secret (no headers, no tokens, no URL query).
type Failure struct {
	Kind       FailureKind
	StatusCode int           // the HTTP status, 0 when there was none
	RetryAfter time.Duration // for Throttled (and Retryable when the server said so)
	Message    string
	Err        error // the cause, for logs
}

func (f *Failure) Error() string {
	if f.StatusCode != 0 {
		return fmt.Sprintf("%s: HTTP %d: %s", f.Kind, f.StatusCode, f.Message)
	}
	return fmt.Sprintf("%s: %s", f.Kind, f.Message)
}

func (f *Failure) Unwrap() error { return f.Err }

// Classify returns err as a *Failure: the one it wraps, or a retryable one.
func Classify(err error) *Failure {
	var f *Failure
	if errors.As(err, &f) {
		return f
	}
	return &Failure{Kind: Retryable, Message: err.Error(), Err: err}
}

// ClassifyStatus classifies an HTTP status as design 3.3 says: 2xx is success (nil); 408, 425,
// 429 and 5xx are retried (429, and 503 with Retry-After, as Throttled); other statuses are
// permanent. retryAfter is the parsed Retry-After header (0 when absent).
func ClassifyStatus(status int, retryAfter time.Duration, message string) *Failure {
	switch {
	case status >= 200 && status < 300:
		return nil
	case status == http.StatusTooManyRequests, status == http.StatusServiceUnavailable && retryAfter > 0:
		return &Failure{Kind: Throttled, StatusCode: status, RetryAfter: retryAfter, Message: message}
	case status == http.StatusRequestTimeout, status == http.StatusTooEarly, status >= 500:
		return &Failure{Kind: Retryable, StatusCode: status, RetryAfter: retryAfter, Message: message}
	}
	return &Failure{Kind: Permanent, StatusCode: status, Message: message}
}

// ParseRetryAfter reads a Retry-After header: seconds or an HTTP date. 0 when absent or
// unreadable; capped at an hour so that a hostile receiver cannot park a destination.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := time.ParseDuration(v + "s"); err == nil {
		d = secs
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), time.Hour)
}

// Redacted replaces a secret in a failure message.
const Redacted = "[redacted]"

// Scrub makes text fit for a Failure's Message: every secret in it is replaced by Redacted,
// runs of spaces and non-printable characters become one space, and the result is trimmed and
// cut to at most max bytes. Senders pass what a receiver answered, or an error, through it.
func Scrub(text string, max int, secrets ...string) string {
	for _, sec := range secrets {
		if sec != "" && strings.Contains(text, sec) {
			text = strings.ReplaceAll(text, sec, Redacted)
		}
	}
	var b strings.Builder
	space := false
	for _, r := range text {
		if r == utf8.RuneError || !unicode.IsPrint(r) || unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if space {
			if b.Len()+1 > max {
				break
			}
			b.WriteByte(' ')
			space = false
		}
		if b.Len()+utf8.RuneLen(r) > max {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// statusKey keys where a sender reports the status a receiver accepted a request with.
type statusKey struct{}

// WithStatusReport returns a context in which a sender reports, with ReportStatus, the HTTP
// status its receiver accepted the request with: the engine records it with the attempt.
func WithStatusReport(ctx context.Context, code *int) context.Context {
	return context.WithValue(ctx, statusKey{}, code)
}

// ReportStatus records the HTTP status a receiver accepted a request with, where the caller
// asked for it (WithStatusReport). Senders that speak HTTP call it on success; for the others
// the status stays unknown.
func ReportStatus(ctx context.Context, code int) {
	if p, ok := ctx.Value(statusKey{}).(*int); ok {
		*p = code
	}
}

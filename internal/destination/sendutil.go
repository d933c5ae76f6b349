package destination

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptrace"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/auditstream/auditstream/internal/netguard"
)

// What the senders share to build their failures and keep secrets out of them.

// SettingsFailure is the failure of a sender's New on settings it cannot use: permanent, with the
// message as its error.
func SettingsFailure(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	return &Failure{Kind: Permanent, Message: msg, Err: errors.New(msg)}
}

// RedactList returns what a sender blanks out of what it shows (Scrub): each value and its
// JSON-escaped form (a server that echoes a value in JSON escapes it), without those shorter
// than minLen (they would blank out ordinary words), longest first.
func RedactList(minLen int, values ...string) []string {
	out := slices.Clone(values)
	for _, v := range values {
		if j, err := json.Marshal(v); err == nil && string(j[1:len(j)-1]) != v {
			out = append(out, string(j[1:len(j)-1]))
		}
	}
	out = slices.DeleteFunc(out, func(v string) bool { return len(v) < minLen })
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return slices.Compact(out)
}

// NetworkFailure classifies an error of http.Client.Do: ctx's error when ctx ended; permanent
// when the SSRF guard refused the address; otherwise retryable, with message (what the sender
// makes of err). The error kept for logs shows safeURL instead of the request's URL, whose
// user info and query may hold secrets.
func NetworkFailure(ctx context.Context, err error, safeURL, message string) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	cause := ScrubURLError(err, safeURL)
	var be *netguard.BlockedError
	if errors.As(err, &be) {
		return &Failure{Kind: Permanent, Message: be.Error(), Err: cause}
	}
	return &Failure{Kind: Retryable, Message: message, Err: cause}
}

// ScrubURLError returns err with safeURL in place of the URL a *url.Error shows, whose user
// info and query may hold secrets.
func ScrubURLError(err error, safeURL string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return &url.Error{Op: ue.Op, URL: safeURL, Err: ue.Err}
	}
	return err
}

// How much of a response or an error a failure's message quotes, in bytes.
const (
	MessageStatusLen  = 100 // the status line
	MessageBodyLen    = 200 // an error's text
	MessageExcerptLen = 64  // a receiver's body (Excerpt)
)

// StatusMessage is a failure's message for a response: the status line and a short excerpt
// of the body (Excerpt), scrubbed of secrets. Pass a nil body for a response whose body must
// not be shown (Peer.Body).
func StatusMessage(status string, body []byte, secrets ...string) string {
	msg := Scrub(status, MessageStatusLen, secrets...)
	if b := Excerpt(body, secrets...); b != "" {
		msg += ": " + b
	}
	return msg
}

// Excerpt is what a destination's owners may see of a receiver's body: markup (anything
// between '<' and '>') and control characters removed, secrets redacted, spaces collapsed, at
// most MessageExcerptLen bytes, with "…" when it was cut. Enough to recognise an error, too
// little to read a page.
func Excerpt(body []byte, secrets ...string) string {
	var b strings.Builder
	inTag := false
	for _, c := range string(body) {
		switch {
		case c == '<':
			inTag = true
			b.WriteByte(' ')
		case c == '>' && inTag:
			inTag = false
		case !inTag:
			b.WriteRune(c)
		}
	}
	full := Scrub(b.String(), len(body)+1, secrets...)
	out := Scrub(full, MessageExcerptLen-len("…"))
	if len(out) < len(full) {
		out += "…"
	}
	return out
}

// Peer is what a request learned about the connection it went out on (TracePeer). A nil
// *Peer knows nothing: its body may be shown.
type Peer struct{ listed atomic.Bool }

// TracePeer returns ctx with a trace that records on the Peer, when the request gets a
// connection, whether the connection goes to an address that only the operator's
// --destination-allow-cidrs lets through (netguard.AllowedByList).
func TracePeer(ctx context.Context) (context.Context, *Peer) {
	p := &Peer{}
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		p.listed.Store(netguard.AllowedByList(info.Conn))
	}}), p
}

// Internal reports whether the response came from an address allowed only by the allow list:
// an internal service, whose answers its owners' destinations must never show.
func (p *Peer) Internal() bool { return p != nil && p.listed.Load() }

// Body returns body, or nil when the peer is Internal.
func (p *Peer) Body(body []byte) []byte {
	if p.Internal() {
		return nil
	}
	return body
}

// ValidHeaderValue reports whether s has no control character but tab (RFC 9110).
func ValidHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// NewUUID returns a random (version 4) UUID.
func NewUUID() string {
	b := randomBytes(16)
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // variant 10 (RFC 9562)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// HostOf returns the host (and port) of a URL, or "" when it does not parse: for lists that
// show where a destination delivers without its path, query or user info.
func HostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}

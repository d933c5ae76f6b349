// Package httpdest delivers events to an HTTP endpoint in GitLab's wire format (design 5.6),
// signed with Standard Webhooks (https://www.standardwebhooks.com).
//
// One request per Send: a POST to config.url whose body is the event JSON exactly as streamed
// (GitLab's format) or, when the destination batches (config.batch) or Send gets several
// events, a JSON array of the events (GitLab's batched format). With config.format, the events
// are written in that format instead: ocsf, one OCSF JSON object, or a JSON array of them; cef,
// one CEF line, or the lines joined by "\n" (no trailing newline). The request carries:
//
//   - every active custom header (inactive ones are not sent);
//   - X-Gitlab-Event-Streaming-Token: the destination's secret token;
//   - X-Gitlab-Audit-Event-Type: the event type; for an array, the type its events share, and
//     no header at all when they have different types;
//   - Content-Type: the format's (format.ContentType: application/json, or text/plain;
//     charset=utf-8 for cef), unless a custom header sets Content-Type;
//   - User-Agent: auditstream, unless a custom header sets User-Agent;
//   - webhook-id: the event id in decimal; for an array, "<first id>-<last id>", the same for
//     every attempt to deliver the same batch, so that a receiver can de-duplicate batches too;
//   - webhook-timestamp: the time of the attempt, in Unix seconds;
//   - webhook-signature: "v1,<signature>", the standard base64 of the HMAC-SHA256 of
//     "<webhook-id>.<webhook-timestamp>.<body>" (the bytes sent, in any format) keyed with the signing secret (the base64
//     after "whsec_"). While a rotated-out secret is still valid (PreviousSigningSecret until
//     PreviousValidUntil), a second signature made with it follows, separated by a space, as
//     Standard Webhooks allows, so that receivers verify with either secret.
//
// The custom headers cannot replace the token, event type and webhook-* headers: they are set
// after them (config validation refuses those names anyway).
//
// A 2xx response is success. Other responses are classified by destination.ClassifyStatus
// (with Retry-After); a redirect is permanent, since redirects are never followed. Network
// errors are retryable, except a dial the SSRF guard refused (netguard.ErrBlocked), which is
// permanent and says why. A failure's Message holds the status line and at most 200 bytes of
// the response body, printable characters only, with the secret token, custom header values and
// the URL's query and password blanked out should the receiver echo them.
package httpdest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"hash"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/netguard"
)

// Headers auditstream sets, besides destination.StreamingTokenHeader. The webhook-* names are
// Standard Webhooks'; net/http sends them in canonical form (Webhook-Id), which is the same
// header: header names ignore case.
const (
	EventTypeHeader        = "X-Gitlab-Audit-Event-Type"
	WebhookIDHeader        = "Webhook-Id"
	WebhookTimestampHeader = "Webhook-Timestamp"
	WebhookSignatureHeader = "Webhook-Signature"
	UserAgent              = "auditstream"
	ContentType            = "application/json"
)

// Limits on what is read of a response.
const (
	// maxResponseRead bounds what is read of a response body: the message is made from it, and
	// the rest of a small body is drained so that the connection can be reused.
	maxResponseRead = 64 << 10
	// minRedactLen is the shortest secret blanked out of messages: shorter values would blank
	// out ordinary words and say nothing worth hiding.
	minRedactLen = 4
)

// whsecPrefix starts a Standard Webhooks signing secret.
const whsecPrefix = "whsec_"

var _ destination.Factory = New

// sender is the Sender of one http destination. It is immutable after New, so safe for
// concurrent use.
type sender struct {
	client    *http.Client
	ownClient bool // made by New because env had none: Close closes its idle connections
	url       string
	safeURL   string // url without user info, query and fragment: for errors that may be logged
	batched   bool   // the config has batch: always send an array (JSON, or CEF lines)
	enc       destination.Encoding
	frame     frame // how the events of an array are put together
	header    http.Header
	signers   []*signer
	secrets   []string // blanked out of messages, longest first
	now       func() time.Time
}

// signer signs with one secret, until a time (zero: always).
type signer struct {
	until time.Time
	pool  sync.Pool // of hash.Hash: HMAC-SHA256 keyed with the secret
}

// New makes the Sender of an http destination. It is a destination.Factory. s.Config must hold
// an http(s) URL (GitLab's "$VARIABLE" URLs cannot be delivered to); the signing secrets must be
// "whsec_" and base64; custom header names must be HTTP tokens and their values free of
// control characters. The errors are *destination.Failure, Permanent, and name no secret.
// env.HTTPClient is shared and not closed; when it is nil, New makes a client with the default
// netguard.Policy, which Close releases.
func New(s destination.Settings, env destination.Env) (destination.Sender, error) {
	return Type.Open(s, env)
}

func newSender(cfg Config, s destination.Settings, env destination.Env) (destination.Sender, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, destination.SettingsFailure("config.url is not an http:// or https:// URL with a host; auditstream cannot deliver to it")
	}
	snd := &sender{
		client:  env.HTTPClient,
		url:     cfg.URL,
		safeURL: safeURL(u),
		batched: cfg.Batched,
		enc:     s.Format,
		frame:   jsonArray,
		now:     env.Now,
	}
	if !s.Format.JSON() {
		snd.frame = lines
	}
	if snd.client == nil {
		snd.client, snd.ownClient = netguard.Policy{}.HTTPClient(), true
	}
	if snd.now == nil {
		snd.now = time.Now
	}

	h := http.Header{}
	h.Set("Content-Type", s.Format.ContentType())
	h.Set("User-Agent", UserAgent)
	for _, ch := range s.Headers {
		snd.secrets = append(snd.secrets, ch.Value)
		if !ch.Active {
			continue
		}
		if !validHeaderName(ch.Name) {
			return nil, destination.SettingsFailure("custom header name %q is not a valid HTTP header name", ch.Name)
		}
		if !destination.ValidHeaderValue(ch.Value) {
			return nil, destination.SettingsFailure("custom header %q has a value with control characters", ch.Name)
		}
		h.Set(ch.Name, ch.Value)
	}
	if s.SecretToken != "" {
		if !destination.ValidHeaderValue(s.SecretToken) {
			return nil, destination.SettingsFailure("the secret token has control characters")
		}
		h.Set(destination.StreamingTokenHeader, s.SecretToken)
		snd.secrets = append(snd.secrets, s.SecretToken)
	}
	// Placeholders for the values of each request, so that Clone sizes the header once and
	// Send fills the values in place.
	h.Set(EventTypeHeader, "")
	h.Set(WebhookIDHeader, "")
	h.Set(WebhookTimestampHeader, "")

	if s.SigningSecret != "" {
		sg, err := newSigner(s.SigningSecret, time.Time{})
		if err != nil {
			return nil, destination.SettingsFailure("the signing secret %s", err)
		}
		snd.signers = append(snd.signers, sg)
	}
	if s.PreviousSigningSecret != "" && !s.PreviousValidUntil.IsZero() {
		sg, err := newSigner(s.PreviousSigningSecret, s.PreviousValidUntil)
		if err != nil {
			return nil, destination.SettingsFailure("the previous signing secret %s", err)
		}
		snd.signers = append(snd.signers, sg)
	}
	if len(snd.signers) > 0 {
		h.Set(WebhookSignatureHeader, "")
	}
	snd.header = h
	snd.secrets = append(snd.secrets, s.SigningSecret, s.PreviousSigningSecret)
	snd.secrets = append(snd.secrets, destination.URLSecrets(u)...)
	snd.secrets = destination.RedactList(minRedactLen, snd.secrets...)
	return snd, nil
}

func newSigner(secret string, until time.Time) (*signer, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, whsecPrefix))
	if err != nil || len(key) == 0 {
		return nil, errors.New(`is not "whsec_" followed by base64`)
	}
	sg := &signer{until: until}
	sg.pool.New = func() any { return hmac.New(sha256.New, key) }
	return sg, nil
}

// safeURL returns u without user info, query and fragment.
func safeURL(u *url.URL) string {
	c := *u
	c.User, c.RawQuery, c.ForceQuery, c.Fragment, c.RawFragment = nil, "", false, "", ""
	return c.String()
}

// validHeaderName reports whether s is an HTTP token (RFC 9110).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 || c <= ' ' || c == 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// scratch holds the buffers of one Send.
type scratch struct {
	id, ts, sig []byte
	prefix      []byte // "<id>.<ts>."
	sum         [sha256.Size]byte
}

var scratchPool = sync.Pool{New: func() any {
	return &scratch{id: make([]byte, 0, 48), ts: make([]byte, 0, 24), sig: make([]byte, 0, 128), prefix: make([]byte, 0, 96)}
}}

// Send delivers batch in one request. See the package documentation.
func (s *sender) Send(ctx context.Context, batch []destination.Event) error {
	if len(batch) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	array := s.batched || len(batch) > 1
	now := s.now()
	payloads, err := s.enc.Payloads(batch)
	if err != nil {
		return err
	}

	sc := scratchPool.Get().(*scratch)
	sc.id = strconv.AppendInt(sc.id[:0], batch[0].ID, 10)
	if array {
		sc.id = append(sc.id, '-')
		sc.id = strconv.AppendInt(sc.id, batch[len(batch)-1].ID, 10)
	}
	sc.ts = strconv.AppendInt(sc.ts[:0], now.Unix(), 10)
	sc.sig = sc.sig[:0]
	if len(s.signers) > 0 {
		sc.prefix = append(append(append(append(sc.prefix[:0], sc.id...), '.'), sc.ts...), '.')
		for _, sg := range s.signers {
			if !sg.until.IsZero() && !now.Before(sg.until) {
				continue
			}
			h := sg.pool.Get().(hash.Hash)
			h.Reset()
			h.Write(sc.prefix)
			s.frame.write(h, payloads, array)
			sum := h.Sum(sc.sum[:0])
			sg.pool.Put(h)
			if len(sc.sig) > 0 {
				sc.sig = append(sc.sig, ' ')
			}
			sc.sig = append(sc.sig, "v1,"...)
			sc.sig = base64.StdEncoding.AppendEncode(sc.sig, sum)
		}
	}

	// The peer says whether the receiver is an internal address (allowed only by
	// --destination-allow-cidrs), whose body a failure must not show.
	tctx, peer := destination.TracePeer(ctx)
	var req *http.Request
	if array {
		n := s.frame.len(payloads)
		req, err = http.NewRequestWithContext(tctx, http.MethodPost, s.url, &arrayReader{parts: payloads, frame: s.frame})
		if err == nil {
			req.ContentLength = int64(n)
			req.GetBody = func() (io.ReadCloser, error) {
				return io.NopCloser(&arrayReader{parts: payloads, frame: s.frame}), nil
			}
		}
	} else {
		req, err = http.NewRequestWithContext(tctx, http.MethodPost, s.url, bytes.NewReader(payloads[0]))
	}
	if err != nil {
		scratchPool.Put(sc)
		return &destination.Failure{Kind: destination.Permanent, Message: "cannot make the request: the URL is not valid", Err: destination.ScrubURLError(err, s.safeURL)}
	}

	hdr := s.header.Clone()
	hdr[WebhookIDHeader][0] = string(sc.id)
	hdr[WebhookTimestampHeader][0] = string(sc.ts)
	if len(s.signers) > 0 {
		if len(sc.sig) > 0 {
			hdr[WebhookSignatureHeader][0] = string(sc.sig)
		} else {
			delete(hdr, WebhookSignatureHeader) // no secret valid now: cannot happen with a current secret
		}
	}
	scratchPool.Put(sc)
	if t := eventType(batch); t != "" {
		hdr[EventTypeHeader][0] = t
	} else {
		delete(hdr, EventTypeHeader)
	}
	req.Header = hdr

	resp, err := s.client.Do(req)
	if err != nil {
		return destination.NetworkFailure(ctx, err, s.safeURL, s.describe(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if resp.ContentLength != 0 {
			drain(resp.Body)
		}
		destination.ReportStatus(ctx, resp.StatusCode)
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseRead))
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return &destination.Failure{
			Kind: destination.Permanent, StatusCode: resp.StatusCode,
			Message: destination.StatusMessage(resp.Status, nil, s.secrets...) + ": redirects are not followed; set the destination's URL to the address it redirects to",
		}
	}
	retryAfter := destination.ParseRetryAfter(resp.Header.Get("Retry-After"), s.now())
	return destination.ClassifyStatus(resp.StatusCode, retryAfter, destination.StatusMessage(resp.Status, peer.Body(body), s.secrets...))
}

// Close releases the idle connections of the client New made when env had none. A shared
// client is left alone.
func (s *sender) Close() error {
	if s.ownClient {
		s.client.CloseIdleConnections()
	}
	return nil
}

// eventType returns the type the events share, or "".
func eventType(batch []destination.Event) string {
	t := batch[0].Type
	for _, e := range batch[1:] {
		if e.Type != t {
			return ""
		}
	}
	return t
}

// drain reads what is left of a small response body, so that the connection can be reused.
func drain(r io.Reader) {
	_, _ = io.CopyN(io.Discard, r, maxResponseRead)
}

// frame is how the events of an array body are put together: open, the events separated by
// sep, close.
type frame struct{ open, sep, close []byte }

var (
	// jsonArray is GitLab's batched format, and OCSF's: a JSON array.
	jsonArray = frame{open: []byte{'['}, sep: []byte{','}, close: []byte{']'}}
	// lines is CEF's: one line per event, no trailing newline.
	lines = frame{sep: []byte{'\n'}}
)

// write writes the request body to w (a hash): the one payload, or the array of the payloads.
func (f frame) write(w io.Writer, payloads [][]byte, array bool) {
	if !array {
		_, _ = w.Write(payloads[0])
		return
	}
	_, _ = w.Write(f.open)
	for i, p := range payloads {
		if i > 0 {
			_, _ = w.Write(f.sep)
		}
		_, _ = w.Write(p)
	}
	_, _ = w.Write(f.close)
}

// len is the length of the array of payloads.
func (f frame) len(payloads [][]byte) int {
	n := len(f.open) + len(f.close) + (len(payloads)-1)*len(f.sep)
	for _, p := range payloads {
		n += len(p)
	}
	return n
}

// arrayReader reads the array of its parts, open p0 sep p1 ... close, straight from the parts
// without copying them into one buffer first. Its pieces are numbered: 0 is open, 2i+1 is part
// i, 2i+2 is the sep after it or, for the last part, close.
type arrayReader struct {
	parts [][]byte
	frame frame
	piece int
	off   int
}

func (r *arrayReader) pieceBytes(k int) []byte {
	switch {
	case k == 0:
		return r.frame.open
	case k == 2*len(r.parts):
		return r.frame.close
	case k%2 == 1:
		return r.parts[k/2]
	}
	return r.frame.sep
}

func (r *arrayReader) Read(p []byte) (int, error) {
	n := 0
	last := 2 * len(r.parts)
	for n < len(p) && r.piece <= last {
		b := r.pieceBytes(r.piece)
		c := copy(p[n:], b[r.off:])
		n += c
		r.off += c
		if r.off >= len(b) {
			r.piece, r.off = r.piece+1, 0
		}
	}
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n, nil
}

// describe says in a few words why a request got no response.
func (s *sender) describe(err error) string {
	inner := destination.Unwrapped(err)
	text := inner.Error()
	var (
		rhe tls.RecordHeaderError
		inv x509.CertificateInvalidError
		ae  tls.AlertError
	)
	switch {
	case strings.Contains(text, "Client.Timeout"):
		return "timeout after " + s.client.Timeout.String() + " without a complete response"
	case strings.Contains(text, "timeout awaiting response headers"):
		return "timeout after " + s.transportTimeout(func(t *http.Transport) time.Duration { return t.ResponseHeaderTimeout }) + " waiting for the response headers"
	case strings.Contains(text, "TLS handshake timeout"):
		return "TLS handshake timeout after " + s.transportTimeout(func(t *http.Transport) time.Duration { return t.TLSHandshakeTimeout })
	case errors.As(err, &rhe):
		return "TLS handshake failed: the server did not answer with TLS (should the URL start with http://?)"
	case errors.As(err, &inv):
		return s.clean("TLS certificate is not valid: "+inv.Error(), destination.MessageBodyLen)
	case errors.As(err, &ae):
		return "TLS handshake failed: the server sent the alert " + ae.Error()
	}
	if c := destination.NetCause(err, "the server"); c != "" {
		return c
	}
	return s.clean(text, destination.MessageBodyLen)
}

func (s *sender) transportTimeout(f func(*http.Transport) time.Duration) string {
	if t, ok := s.client.Transport.(*http.Transport); ok {
		return f(t).String()
	}
	return "the transport's limit"
}

// clean scrubs text of the sender's secrets (destination.Scrub).
func (s *sender) clean(text string, max int) string {
	return destination.Scrub(text, max, s.secrets...)
}

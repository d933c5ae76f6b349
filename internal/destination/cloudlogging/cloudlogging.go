// Package cloudlogging delivers events to Google Cloud Logging (the gcp category) as GitLab does
// (design 5.7): entries.write, authenticated as a service account.
//
// # Authentication
//
// The destination's config names the service account (clientEmail) and its secret is the
// account's private key in PEM form. The Sender signs a JWT with the key (RS256; iss =
// clientEmail, aud = the token URL, scope logging.write, one hour) and exchanges it at Google's
// token endpoint for an access token (RFC 7523, golang.org/x/oauth2/jwt). The token is cached
// (oauth2.ReuseTokenSource) and fetched again shortly before it expires; one fetch serves every
// concurrent Send. Token requests go through the same SSRF-guarded client as the writes. A write
// refused with 401 drops the cached token and is tried once more with a new one; a second 401
// is permanent ("credentials rejected").
//
// # Wire format
//
// One POST to https://logging.googleapis.com/v2/entries:write per Send, with one entry per
// event, in order:
//
//	{"entries":[{"logName":"projects/<googleProjectIdName>/logs/<logIdName, URL-escaped>",
//	  "resource":{"type":"global"},"severity":"INFO",
//	  "timestamp":"<created_at>","insertId":"<id, 19 digits>",
//	  "jsonPayload":<the event JSON exactly as streamed>}]}
//
// With config.format ocsf, jsonPayload is the event's OCSF JSON instead.
//
// logName, resource, severity and jsonPayload are GitLab's entry
// (google_cloud_logging_stream_destination.rb). GitLab sets no timestamp or insertId, so
// Logging stamps the time it received the entry and an id of its own. auditstream adds both,
// because it retries where GitLab does not: Logging treats entries of a project with the same
// timestamp and insertId as duplicates and removes them from query results, so an event
// delivered twice (a write that succeeded but whose response was lost) shows once. The
// insertId is the event id zero-padded to 19 digits, so that entries with equal timestamps sort
// in log order (Logging orders them by insertId, as strings). The timestamp is created_at
// only while Logging would keep the entry: Logging drops entries older than the logs retention
// period (30 days by default) without an error and refuses a whole write whose entry is more
// than a day in the future, and created_at is whatever the producer sent. An event created
// more than 29 days before, or more than an hour after, the time of the Send gets no timestamp
// (Logging uses the receive time; created_at stays in the payload).
//
// The write is all or nothing (partialSuccess is left false), as Send's contract requires.
// Logging accepts at most 10 MB per write and 256 KB per entry; a bigger write is refused (400,
// permanent).
//
// # Failures
//
// Write statuses are classified by destination.ClassifyStatus: 429, and 503 with Retry-After,
// are throttled (Google's RetryInfo delay counts as Retry-After); other 5xx are retryable;
// 400, 403 and 404 are permanent, with a hint (the service account needs the Logs Writer role;
// the project does not exist). Token endpoint refusals (invalid_grant: wrong key, deleted key,
// unknown account) are permanent; its 429 and 5xx are retried. A dial refused by the SSRF guard
// is permanent. A private key that does not parse fails New (GitLab accepts any text as the
// key, so this is where a bad key shows). Messages quote Google's error status and message, cut
// short; they never hold the key or a token.
package cloudlogging

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/jwt"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/netguard"
)

// Google's endpoints and the scope the service account asks for.
const (
	LoggingBaseURL = "https://logging.googleapis.com"
	TokenURL       = "https://oauth2.googleapis.com/token"
	Scope          = "https://www.googleapis.com/auth/logging.write"
	// WritePath is entries.write's path under the logging base URL.
	WritePath = "/v2/entries:write"
)

// Entry fields GitLab sets the same for every event.
const (
	ResourceType = "global"
	Severity     = "INFO"
)

// The window in which an event's created_at becomes its entry's timestamp (see the package
// documentation).
const (
	MaxTimestampAge   = 29 * 24 * time.Hour
	MaxTimestampAhead = time.Hour
)

const (
	userAgent   = "auditstream"
	contentType = "application/json"
	// maxResponseRead bounds what is read of a response body.
	maxResponseRead = 64 << 10
	// maxMessagePart bounds each quoted part of a failure message (Google's message, the token
	// endpoint's description), in bytes.
	maxMessagePart = 200
	// minRedactLen is the shortest piece of the key blanked out of messages.
	minRedactLen = 16
	// insertIDWidth is the number of digits of an insertId: a positive int64 has at most 19.
	insertIDWidth = 19
)

var _ destination.Factory = New

// sender is the Sender of one gcp destination. It is safe for concurrent use.
type sender struct {
	client    *http.Client
	ownClient bool // made by New because env had none: Close closes its idle connections
	writeURL  string
	project   string
	email     string
	entryHead []byte // `{"logName":"…","resource":{"type":"global"},"severity":"INFO"`
	now       func() time.Time
	keyParts  []string // pieces of the key text, blanked out of messages
	enc       destination.Encoding

	fetch  *fetcher
	cancel context.CancelFunc // cancels token requests in flight, on Close

	mu  sync.Mutex
	src oauth2.TokenSource // oauth2.ReuseTokenSource(nil, fetch); replaced to drop a rejected token
	// current is the token src last returned, so that a Send finds a valid token without
	// waiting on src. Set only after src returned it (src writes the token before).
	current atomic.Pointer[oauth2.Token]
}

// New makes the Sender of a gcp destination: entries.write on Google's endpoints. It is a
// destination.Factory. s.Config must name the project and the service account (logIdName
// defaults to audit-events); s.SecretToken must be the account's unencrypted RSA private key in
// PEM form (PKCS #8, as in Google's key files, or PKCS #1). The errors are
// *destination.Failure, Permanent, and name no secret. env.HTTPClient is shared and not closed;
// when it is nil, New makes a client with the default netguard.Policy, which Close releases.
func New(s destination.Settings, env destination.Env) (destination.Sender, error) {
	return Type.Open(s, env)
}

// NewWithEndpoints is New with other endpoints, for tests: loggingBaseURL replaces
// https://logging.googleapis.com (the write goes to loggingBaseURL + WritePath) and tokenURL
// replaces https://oauth2.googleapis.com/token, which is also the JWT's audience.
func NewWithEndpoints(s destination.Settings, env destination.Env, loggingBaseURL, tokenURL string) (destination.Sender, error) {
	cfg, s, err := Type.Decode(s, env)
	if err != nil {
		return nil, err
	}
	return newSender(cfg.(Config), s, env, loggingBaseURL, tokenURL)
}

func newSender(cfg Config, s destination.Settings, env destination.Env, loggingBaseURL, tokenURL string) (destination.Sender, error) {
	for _, u := range []string{loggingBaseURL, tokenURL} {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return nil, destination.SettingsFailure("the endpoint %q is not an http:// or https:// URL with a host", u)
		}
	}
	der, msg := parseKey(s.SecretToken)
	if msg != "" {
		return nil, destination.SettingsFailure("the private key (secretToken) %s", msg)
	}

	snd := &sender{
		client:   env.HTTPClient,
		writeURL: strings.TrimSuffix(loggingBaseURL, "/") + WritePath,
		project:  cfg.Project,
		email:    cfg.Email,
		now:      env.Now,
		enc:      s.Format,
	}
	if snd.client == nil {
		snd.client, snd.ownClient = netguard.Policy{}.HTTPClient(), true
	}
	if snd.now == nil {
		snd.now = time.Now
	}
	logName := "projects/" + url.PathEscape(cfg.Project) + "/logs/" + url.PathEscape(cfg.LogID)
	head := append([]byte(`{"logName":`), destination.AppendJSONString(nil, logName)...)
	head = append(head, `,"resource":{"type":"`+ResourceType+`"},"severity":"`+Severity+`"`...)
	snd.entryHead = head
	for _, f := range strings.Fields(s.SecretToken) {
		if len(f) >= minRedactLen {
			snd.keyParts = append(snd.keyParts, f)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	snd.cancel = cancel
	snd.fetch = &fetcher{
		conf: &jwt.Config{
			Email:      cfg.Email,
			PrivateKey: der,
			Scopes:     []string{Scope},
			TokenURL:   tokenURL,
		},
		client: snd.client,
		ctx:    ctx,
	}
	snd.src = oauth2.ReuseTokenSource(nil, snd.fetch)
	return snd, nil
}

// parseKey returns the DER of an unencrypted RSA private key in PEM form, or why s is not one.
// The reason completes "the private key ..." and never quotes s.
func parseKey(s string) (der []byte, reason string) {
	const want = "is not a service account private key in PEM form (-----BEGIN PRIVATE KEY-----)"
	t := strings.TrimSpace(s)
	switch {
	case t == "":
		return nil, "is required"
	case strings.HasPrefix(t, "{"):
		return nil, want + ": it looks like the whole JSON key file; use only the value of its private_key field"
	case !strings.HasPrefix(t, "-----BEGIN "):
		return nil, want
	case !strings.Contains(t, "\n") && strings.Contains(t, `\n`):
		return nil, want + `: it has \n where the key file's line breaks should be`
	}
	block, _ := pem.Decode([]byte(t))
	if block == nil {
		return nil, want
	}
	if block.Type == "ENCRYPTED PRIVATE KEY" || block.Headers["Proc-Type"] != "" {
		return nil, "is encrypted; Google service account keys are not"
	}
	switch _, err := destination.ParseRSAKey(block); {
	case errors.Is(err, destination.ErrKeyType):
		return nil, want
	case errors.Is(err, destination.ErrNotRSA):
		return nil, "is not an RSA key, as Google service account keys are"
	case err != nil:
		return nil, "does not parse as a private key"
	}
	return block.Bytes, ""
}

// Send writes batch as one entries.write request. See the package documentation.
func (s *sender) Send(ctx context.Context, batch []destination.Event) error {
	if len(batch) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	payloads, err := s.enc.Payloads(batch)
	if err != nil {
		return err
	}
	body := s.body(batch, payloads)
	for attempt := 0; ; attempt++ {
		tok, err := s.token(ctx)
		if err != nil {
			return err
		}
		err = s.write(ctx, tok, body)
		var f *destination.Failure
		if !errors.As(err, &f) || f.StatusCode != http.StatusUnauthorized {
			return err
		}
		if attempt == 0 {
			// The token may have been revoked or have expired early: once more with a new one.
			s.invalidate(tok)
			continue
		}
		f.Message = "credentials rejected: Cloud Logging refused a newly issued access token for " +
			s.email + " (" + f.Message + ")"
		f.Err = errors.New(f.Message)
		return f
	}
}

// Close cancels token requests in flight and releases the idle connections of the client New
// made when env had none. A shared client is left alone.
func (s *sender) Close() error {
	s.cancel()
	if s.ownClient {
		s.client.CloseIdleConnections()
	}
	return nil
}

// body makes the WriteLogEntriesRequest of batch, whose payloads (in the destination's format)
// are payloads.
func (s *sender) body(batch []destination.Event, payloads [][]byte) []byte {
	const (
		tsKey      = `,"timestamp":"`
		idKey      = `","insertId":"`
		idOnlyKey  = `,"insertId":"`
		payloadKey = `","jsonPayload":`
		perEntry   = len(tsKey) + len(time.RFC3339Nano) + len(idKey) + insertIDWidth + len(payloadKey) + 2
	)
	n := len(`{"entries":[]}`)
	for _, p := range payloads {
		n += len(s.entryHead) + perEntry + len(p)
	}
	now := s.now()
	b := make([]byte, 0, n)
	b = append(b, `{"entries":[`...)
	for i, e := range batch {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, s.entryHead...)
		if t := e.CreatedAt; !t.IsZero() && !t.Before(now.Add(-MaxTimestampAge)) && !t.After(now.Add(MaxTimestampAhead)) {
			b = append(b, tsKey...)
			b = t.UTC().AppendFormat(b, time.RFC3339Nano)
			b = append(b, idKey...)
		} else {
			b = append(b, idOnlyKey...)
		}
		b = appendInsertID(b, e.ID)
		b = append(b, payloadKey...)
		b = append(b, payloads[i]...)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// appendInsertID appends id in decimal, zero-padded to insertIDWidth digits.
func appendInsertID(b []byte, id int64) []byte {
	var digits [24]byte
	d := strconv.AppendInt(digits[:0], id, 10)
	for i := len(d); i < insertIDWidth; i++ {
		b = append(b, '0')
	}
	return append(b, d...)
}

// write POSTs body with tok.
func (s *sender) write(ctx context.Context, tok *oauth2.Token, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.writeURL, bytes.NewReader(body))
	if err != nil {
		return &destination.Failure{Kind: destination.Permanent, Message: "cannot make the request: the Cloud Logging URL is not valid", Err: err}
	}
	req.Header.Set("Authorization", tok.Type()+" "+tok.AccessToken)
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", userAgent)
	resp, err := s.client.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		return s.networkFailure(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		_, _ = io.CopyN(io.Discard, resp.Body, maxResponseRead)
		return nil
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseRead))
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return &destination.Failure{
			Kind: destination.Permanent, StatusCode: resp.StatusCode,
			Message: s.clean(resp.Status) + ": Cloud Logging answered with a redirect, which is not followed",
		}
	}
	ge := parseGoogleError(raw)
	retryAfter := destination.ParseRetryAfter(resp.Header.Get("Retry-After"), s.now())
	if retryAfter == 0 {
		retryAfter = ge.retryDelay()
	}
	msg := s.clean(resp.Status)
	if ge.Error.Status != "" {
		msg += ": " + s.clean(ge.Error.Status)
	}
	if m := s.clean(ge.Error.Message); m != "" {
		msg += ": " + m
	} else if ge.Error.Status == "" { // not a Google error document: a short excerpt of the body
		if m := destination.Excerpt(raw, s.keyParts...); m != "" {
			msg += ": " + m
		}
	}
	switch resp.StatusCode {
	case http.StatusForbidden:
		msg += "; the service account " + s.email + " needs the Logs Writer role (roles/logging.logWriter) on project " +
			s.project + ", and the Cloud Logging API must be enabled there"
	case http.StatusNotFound:
		msg += "; project " + s.project + " was not found"
	}
	f := destination.ClassifyStatus(resp.StatusCode, retryAfter, msg)
	if f == nil {
		return nil
	}
	f.Err = errors.New(msg)
	return f
}

// token returns a valid access token: the cached one, or one fetched now. It waits for a fetch
// no longer than ctx allows; the fetch goes on and its token is cached for later Sends.
func (s *sender) token(ctx context.Context) (*oauth2.Token, error) {
	if t := s.current.Load(); t.Valid() {
		return t, nil
	}
	s.mu.Lock()
	src := s.src
	s.mu.Unlock()
	type result struct {
		tok *oauth2.Token
		err error
	}
	done := make(chan result, 1)
	go func() {
		tok, err := src.Token()
		if err == nil {
			s.mu.Lock()
			if s.src == src { // not a token of a source that invalidate replaced
				s.current.Store(tok)
			}
			s.mu.Unlock()
		}
		done <- result{tok, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return nil, ctxErr
			}
			return nil, s.tokenFailure(r.err)
		}
		return r.tok, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// invalidate drops stale, a token Cloud Logging refused, so that the next Send fetches a new
// one, unless a newer token has replaced it already.
func (s *sender) invalidate(stale *oauth2.Token) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current.Load() == stale {
		s.src = oauth2.ReuseTokenSource(nil, s.fetch)
		s.current.Store(nil)
	}
}

// OAuth 2.0 error codes (RFC 6749 5.2) that say the credentials, not the moment, are wrong.
var credentialErrors = map[string]bool{
	"invalid_grant":       true,
	"invalid_client":      true,
	"unauthorized_client": true,
	"invalid_scope":       true,
	"access_denied":       true,
}

// tokenFailure classifies a failed token fetch.
func (s *sender) tokenFailure(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		var body struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		_ = json.Unmarshal(re.Body, &body)
		status := re.Response.StatusCode
		msg := "the token endpoint refused the service account " + s.email
		if body.Error != "" {
			msg += " (" + s.clean(body.Error)
			if d := s.clean(body.Description); d != "" {
				msg += ": " + d
			}
			msg += ")"
		} else {
			msg += " (" + s.clean(re.Response.Status) + ")"
		}
		if body.Error == "invalid_grant" {
			msg += "; check that clientEmail is the account the private key belongs to, and that the key has not been deleted or disabled"
		}
		retryAfter := destination.ParseRetryAfter(re.Response.Header.Get("Retry-After"), s.now())
		f := destination.ClassifyStatus(status, retryAfter, msg)
		if f == nil || credentialErrors[body.Error] {
			f = &destination.Failure{Kind: destination.Permanent, StatusCode: status, Message: msg}
		}
		f.Err = errors.New(msg)
		return f
	}
	var fe *fetchError
	if errors.As(err, &fe) && fe.transport != nil {
		var be *netguard.BlockedError
		if errors.As(fe.transport, &be) {
			return &destination.Failure{Kind: destination.Permanent, Message: "cannot get an access token: " + be.Error(), Err: fe.transport}
		}
	}
	text := s.clean(strings.TrimPrefix(err.Error(), "oauth2: cannot fetch token: "))
	return &destination.Failure{Kind: destination.Retryable, Message: "cannot get an access token: " + text, Err: errors.New(text)}
}

// networkFailure classifies an error of a write that got no response.
func (s *sender) networkFailure(err error) error {
	var be *netguard.BlockedError
	if errors.As(err, &be) {
		return &destination.Failure{Kind: destination.Permanent, Message: "cannot reach Cloud Logging: " + be.Error(), Err: err}
	}
	inner := err
	var ue *url.Error
	if errors.As(err, &ue) {
		inner = ue.Err
	}
	return &destination.Failure{Kind: destination.Retryable, Message: "cannot reach Cloud Logging: " + s.clean(inner.Error()), Err: err}
}

// clean scrubs text of every piece of the key (destination.Scrub).
func (s *sender) clean(text string) string {
	return destination.Scrub(text, maxMessagePart, s.keyParts...)
}

// googleError is the error body of Google APIs (google.rpc.Status in JSON).
type googleError struct {
	Error struct {
		Code    int               `json:"code"`
		Message string            `json:"message"`
		Status  string            `json:"status"`
		Details []json.RawMessage `json:"details"`
	} `json:"error"`
}

func parseGoogleError(raw []byte) googleError {
	var ge googleError
	_ = json.Unmarshal(raw, &ge)
	return ge
}

// retryDelay returns the delay of a google.rpc.RetryInfo detail, capped at an hour, or 0.
func (ge googleError) retryDelay() time.Duration {
	for _, d := range ge.Error.Details {
		var info struct {
			Type       string `json:"@type"`
			RetryDelay string `json:"retryDelay"`
		}
		if json.Unmarshal(d, &info) != nil || info.Type != "type.googleapis.com/google.rpc.RetryInfo" {
			continue
		}
		if v, err := time.ParseDuration(info.RetryDelay); err == nil && v > 0 {
			return min(v, time.Hour)
		}
	}
	return 0
}

// fetcher is the JWT flow: each Token call signs an assertion and exchanges it at the token
// endpoint. oauth2.ReuseTokenSource calls it when the cached token has expired, one call at a
// time.
type fetcher struct {
	conf   *jwt.Config
	client *http.Client
	ctx    context.Context // cancelled by Close
}

// fetchError is a failed fetch with the transport's error, which the jwt package flattens into
// text (and which says whether the SSRF guard refused the dial).
type fetchError struct {
	err       error
	transport error
}

func (e *fetchError) Error() string { return e.err.Error() }
func (e *fetchError) Unwrap() error { return e.err }

func (f *fetcher) Token() (*oauth2.Token, error) {
	base := f.client.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	rt := &fetchTransport{base: base, ctx: f.ctx}
	// A copy of the client, with its timeout and redirect policy, whose transport records errors
	// and gives up when the sender is closed.
	hc := &http.Client{Transport: rt, CheckRedirect: f.client.CheckRedirect, Timeout: f.client.Timeout}
	tok, err := f.conf.TokenSource(context.WithValue(f.ctx, oauth2.HTTPClient, hc)).Token()
	if err != nil {
		return nil, &fetchError{err: err, transport: rt.err}
	}
	if tok.AccessToken == "" {
		return nil, errors.New("the token endpoint answered without an access token")
	}
	return tok, nil
}

// fetchTransport sends one token request: it ends the request when ctx is done and keeps the
// error it got. Not for concurrent use.
type fetchTransport struct {
	base http.RoundTripper
	ctx  context.Context
	err  error
}

func (t *fetchTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	stop := context.AfterFunc(t.ctx, cancel)
	resp, err := t.base.RoundTrip(req.WithContext(ctx))
	if err != nil {
		stop()
		cancel()
		t.err = err
		return nil, err
	}
	resp.Body = &releaseBody{ReadCloser: resp.Body, release: func() { stop(); cancel() }}
	return resp, nil
}

// releaseBody calls release once, when closed.
type releaseBody struct {
	io.ReadCloser
	release func()
	once    sync.Once
}

func (b *releaseBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}

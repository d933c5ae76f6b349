// Package gcsdest delivers events to Google Cloud Storage (design 5.7), in the layouts of
// package objectstore.
//
// Each event is written in the destination's format (config.format): the event JSON exactly as
// streamed (GitLab's, the default) or its OCSF JSON. Without config.batch, each event is one
// object, GitLab's layout: the event's JSON at objectstore.EventKey(config.prefix, event), with Content-Type application/json. A
// Send with several events (the engine does not do that for such a destination) writes them one
// after the other and stops at the first failure, which it returns: the objects already written
// are harmless, since delivering the same event again names the same key.
//
// With config.batch, each Send is one object: objectstore.GzipNDJSON of the events at
// objectstore.BatchKey(config.prefix, batch), with Content-Type application/x-ndjson and
// Content-Encoding gzip (GCS then serves it decompressed to clients that do not accept gzip).
//
// config.prefix is put before every key as it is, as in the S3 destination: "audit/" gives
// "audit/group/2026/03/...", "audit" gives "auditgroup/2026/03/...".
//
// Every object is written in one request with the precondition that it does not exist yet
// (ifGenerationMatch=0). Delivering an event or batch again, after a response was lost, is
// answered 412 Precondition Failed, which Send takes for success: the object is there with the
// same content, since keys are unique (objectstore). So the service account needs only
// storage.objects.create (roles/storage.objectCreator), not the storage.objects.delete that an
// overwrite needs, and buckets with a retention policy, where objects cannot be overwritten,
// work too. The storage library does not retry (the delivery engine does).
//
// # Credentials
//
// The secret token is the service account's whole JSON key file. New checks it (a JSON object
// with "type": "service_account", a client_email, an RSA private_key in PEM form, and a
// token_uri, when given, that is an https:// URL) without any network access. Requests carry
// an OAuth 2.0 access token for the scope devstorage.read_write, which the service account
// gets from the key's token_uri (https://oauth2.googleapis.com/token in Google's key files)
// with a JWT signed by its key (RFC 7523), refreshed before it expires. Application Default
// Credentials, the metadata server and GOOGLE_APPLICATION_CREDENTIALS are never used.
//
// # Network
//
// Every request, the token requests included, is sent through env.HTTPClient's transport, so
// the SSRF guard of internal/netguard applies to the storage endpoint and to the key's
// token_uri alike, with env.HTTPClient's timeout and redirect policy.
//
// # Endpoint
//
// Requests go to Google's JSON API, https://storage.googleapis.com/storage/v1/, unless:
//
//   - NewWithEndpoint names an endpoint: a URL such as http://127.0.0.1:4443 (its JSON API
//     under /storage/v1/ when the URL has no path) or a host:port, taken as http://host:port.
//     Requests are authenticated with the key when one is given, and not at all otherwise.
//   - the environment variable STORAGE_EMULATOR_HOST is set (for an emulator such as
//     fake-gcs-server), as the storage library honours it: the same forms, and requests are not
//     authenticated, the key being checked but not used. It applies to every gcs destination.
//
// The guard applies to these endpoints too: an emulator on a private or loopback address needs
// --allow-private-destinations or --destination-allow-cidrs.
//
// # Failures
//
// A failed write is classified from GCS's HTTP status:
//
//   - 401, 403 and 404 are Permanent, with what to check: the key, the service account's
//     permission on the bucket, or the bucket's name;
//   - 429, and 503 with Retry-After, are Throttled; 408, 425 and other 5xx are Retryable;
//     other 4xx are Permanent (destination.ClassifyStatus);
//   - network errors are Retryable, except a dial the SSRF guard refused
//     (netguard.ErrBlocked), which is Permanent with the guard's message.
//
// A token request that fails is classified the same way from the token endpoint's status,
// except that 400, 401 and 403 (invalid_grant: a deleted key, a disabled account) are
// Permanent. A failure's Message names the problem in a few words, then at most 200 bytes of
// the server's message, printable characters only. It never holds the key, a token or a JWT:
// those are never part of an error.
package gcsdest

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
	"unicode"

	"cloud.google.com/go/storage"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/destination/objectstore"
	"github.com/auditstream/auditstream/internal/netguard"
)

// Scope is the OAuth 2.0 scope of the access tokens: reading and writing objects.
const Scope = storage.ScopeReadWrite // https://www.googleapis.com/auth/devstorage.read_write

// EmulatorHostEnv is the environment variable that sends every request to an emulator, without
// authentication (see the package documentation).
const EmulatorHostEnv = "STORAGE_EMULATOR_HOST"

// UserAgent is sent with every request, before the storage library's own.
const UserAgent = "auditstream"

// maxMessage bounds the server's message quoted in a Failure's Message, in bytes.
const maxMessage = 200

var _ destination.Factory = New

// sender is the Sender of one gcs destination.
type sender struct {
	// mu is held for reading by Send and for writing by Close: the storage client must not be
	// used after Close.
	mu        sync.RWMutex
	client    *storage.Client
	closed    bool
	ownClient *http.Client // made because env had none: Close closes its idle connections
	bucket    string
	prefix    string
	batched   bool
	enc       destination.Encoding
	now       func() time.Time
}

// New makes the Sender of a gcs destination: Google's endpoint, or STORAGE_EMULATOR_HOST's. It
// is a destination.Factory. s.Config must hold a bucketName; s.SecretToken must be a
// service-account JSON key file (it may be empty with STORAGE_EMULATOR_HOST). The errors are
// *destination.Failure, Permanent, and never quote the key. New makes no network request.
// env.HTTPClient is shared and not closed; when it is nil, New makes a client with the default
// netguard.Policy, which Close releases.
func New(s destination.Settings, env destination.Env) (destination.Sender, error) {
	return Type.Open(s, env)
}

// newDefault makes the Sender of a checked config: Google's endpoint, or STORAGE_EMULATOR_HOST's.
func newDefault(cfg Config, s destination.Settings, env destination.Env) (destination.Sender, error) {
	if host := os.Getenv(EmulatorHostEnv); host != "" {
		return newSender(cfg, s, env, host, false)
	}
	return newSender(cfg, s, env, "", true)
}

// NewWithEndpoint is New with the JSON API at endpoint instead of Google's: a URL such as
// http://127.0.0.1:4443 (the API under /storage/v1/ when it has no path) or a host:port (http).
// Requests are authenticated with the key when s.SecretToken holds one, and not at all when it
// is empty. An empty endpoint is New.
func NewWithEndpoint(s destination.Settings, env destination.Env, endpoint string) (destination.Sender, error) {
	if endpoint == "" {
		return New(s, env)
	}
	cfg, s, err := Type.Decode(s, env)
	if err != nil {
		return nil, err
	}
	return newSender(cfg.(Config), s, env, endpoint, true)
}

// newSender makes a Sender for endpoint ("" for Google's). With useKey false, requests are not
// authenticated even when there is a key.
func newSender(cfg Config, s destination.Settings, env destination.Env, endpoint string, useKey bool) (destination.Sender, error) {
	apiURL := ""
	if endpoint != "" {
		u, err := endpointURL(endpoint)
		if err != nil {
			return nil, err
		}
		apiURL = u
	}

	var conf oauthConfig
	switch {
	case s.SecretToken != "":
		c, err := parseKeyFile(s.SecretToken)
		if err != nil {
			return nil, err
		}
		conf = c
	case endpoint == "":
		return nil, destination.SettingsFailure("the secret token must be the service account's JSON key file, and it is empty")
	}

	snd := &sender{
		bucket:  cfg.BucketName,
		prefix:  cfg.Prefix,
		batched: cfg.Batched,
		enc:     s.Format,
		now:     env.Now,
	}
	if snd.now == nil {
		snd.now = time.Now
	}
	base := env.HTTPClient
	if base == nil {
		base = netguard.Policy{}.HTTPClient()
		snd.ownClient = base
	}
	transport := base.Transport
	if transport == nil {
		transport = http.DefaultTransport
	}
	// The storage client's Close closes the idle connections of its transport: those of a
	// shared client are left alone.
	var rt http.RoundTripper = keepIdle{transport}
	if conf != nil && useKey {
		ts := &tokenSource{}
		tokenClient := &http.Client{
			Transport:     &recordingTransport{base: rt, ts: ts},
			Timeout:       base.Timeout,
			CheckRedirect: base.CheckRedirect,
		}
		ts.src = conf.TokenSource(context.WithValue(context.Background(), oauth2.HTTPClient, tokenClient))
		rt = &oauth2.Transport{Source: ts, Base: rt}
	}
	hc := &http.Client{Transport: rt, Timeout: base.Timeout, CheckRedirect: base.CheckRedirect}

	opts := []option.ClientOption{
		// The client authenticates (hc does): no Application Default Credentials lookup.
		option.WithHTTPClient(hc),
		option.WithoutAuthentication(),
		option.WithUserAgent(UserAgent),
		storage.WithDisabledClientMetrics(),
	}
	if apiURL != "" {
		opts = append(opts, option.WithEndpoint(apiURL))
	}
	client, err := storage.NewClient(context.Background(), opts...)
	if err != nil {
		// Not expected: nothing above depends on the network or the key.
		return nil, &destination.Failure{Kind: destination.Permanent, Message: "cannot make the storage client", Err: err}
	}
	client.SetRetry(storage.WithPolicy(storage.RetryNever))
	snd.client = client
	return snd, nil
}

// oauthConfig makes the token source of a key file (a *jwt.Config).
type oauthConfig interface {
	TokenSource(ctx context.Context) oauth2.TokenSource
}

// endpointURL returns the JSON API base URL of an endpoint: a URL or a host:port.
func endpointURL(endpoint string) (string, error) {
	var u *url.URL
	if strings.Contains(endpoint, "://") {
		p, err := url.Parse(endpoint)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return "", destination.SettingsFailure("the storage endpoint is not an http:// or https:// URL with a host")
		}
		u = p
	} else {
		if strings.ContainsAny(endpoint, "/?#@ \\") || strings.ContainsFunc(endpoint, unicode.IsControl) {
			return "", destination.SettingsFailure("the storage endpoint is not a URL or a host:port")
		}
		u = &url.URL{Scheme: "http", Host: endpoint}
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	if u.Path == "" || u.Path == "/" {
		u.Path, u.RawPath = "/storage/v1/", ""
	} else if !strings.HasSuffix(u.Path, "/") {
		u.Path, u.RawPath = u.Path+"/", ""
	}
	return u.String(), nil
}

// keyFile is what is read of a service-account JSON key file.
type keyFile struct {
	Type         string `json:"type"`
	ClientEmail  string `json:"client_email"`
	PrivateKey   string `json:"private_key"`
	PrivateKeyID string `json:"private_key_id"`
	TokenURI     string `json:"token_uri"`
}

// parseKeyFile checks a service-account JSON key file and returns its JWT configuration. Its
// errors never quote the file, nor the errors of the parsers that read it.
func parseKeyFile(secret string) (oauthConfig, error) {
	const want = "the secret token must be the service account's whole JSON key file"
	if strings.HasPrefix(strings.TrimSpace(secret), "-----BEGIN") {
		return nil, destination.SettingsFailure("%s, not only its private key", want)
	}
	var kf keyFile
	if err := json.Unmarshal([]byte(secret), &kf); err != nil {
		return nil, destination.SettingsFailure("%s: it is not a JSON object with the key file's fields", want)
	}
	if kf.Type != "service_account" {
		return nil, destination.SettingsFailure(`%s: its "type" must be "service_account"`, want)
	}
	if kf.ClientEmail == "" {
		return nil, destination.SettingsFailure(`%s: its "client_email" is missing`, want)
	}
	if kf.PrivateKey == "" {
		return nil, destination.SettingsFailure(`%s: its "private_key" is missing`, want)
	}
	if !validRSAKey(kf.PrivateKey) {
		return nil, destination.SettingsFailure(`%s: its "private_key" is not an unencrypted RSA private key in PEM form`, want)
	}
	if kf.TokenURI != "" {
		u, err := url.Parse(kf.TokenURI)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
			return nil, destination.SettingsFailure(`%s: its "token_uri" must be an https:// URL`, want)
		}
	}
	conf, err := google.JWTConfigFromJSON([]byte(secret), Scope)
	if err != nil {
		return nil, destination.SettingsFailure("%s: it cannot be read", want)
	}
	return conf, nil
}

// validRSAKey reports whether s is an RSA private key in PEM form, PKCS#8 (Google's key files)
// or PKCS#1.
func validRSAKey(s string) bool {
	block, _ := pem.Decode([]byte(strings.TrimSpace(s)))
	if block == nil {
		return false
	}
	_, err := destination.ParseRSAKey(block)
	return err == nil
}

// keepIdle hides its transport's CloseIdleConnections from the storage client's Close.
type keepIdle struct{ http.RoundTripper }

// tokenSource fetches access tokens with src, keeping the cause of a failed token request:
// the JWT flow of golang.org/x/oauth2 reports it as text only, and the SSRF guard's refusal
// must be told from a network error.
type tokenSource struct {
	mu    sync.Mutex
	src   oauth2.TokenSource
	cause error // the transport error of the token request in progress
}

func (t *tokenSource) Token() (*oauth2.Token, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cause = nil
	tok, err := t.src.Token()
	if err != nil {
		return nil, &tokenError{err: err, cause: t.cause}
	}
	return tok, nil
}

// recordingTransport sends the token requests and records their transport errors in ts. It is
// only used within tokenSource.Token, which holds ts.mu.
type recordingTransport struct {
	base http.RoundTripper
	ts   *tokenSource
}

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.base.RoundTrip(req)
	if err != nil {
		r.ts.cause = err
	}
	return resp, err
}

// tokenError is a failed token request.
type tokenError struct {
	err   error // what the oauth2 package returned
	cause error // the transport error, if any
}

func (e *tokenError) Error() string { return e.err.Error() }

func (e *tokenError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.err}
	}
	return []error{e.err, e.cause}
}

// sendEvents writes batch: one object when the destination batches, else one object per event. See
// the package documentation.
func (s *sender) sendEvents(ctx context.Context, batch []destination.Event) error {
	if len(batch) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return &destination.Failure{Kind: destination.Retryable, Message: "the sender is closed", Err: errors.New("gcsdest: Send after Close")}
	}
	payloads, err := s.enc.Payloads(batch)
	if err != nil {
		return err
	}
	if s.batched {
		return s.put(ctx, objectstore.BatchKey(s.prefix, batch), objectstore.GzipLines(payloads), objectstore.BatchContentType, objectstore.BatchEncoding)
	}
	for i, e := range batch {
		if err := s.put(ctx, objectstore.EventKey(s.prefix, e), payloads[i], objectstore.EventContentType, ""); err != nil {
			return err
		}
	}
	return nil
}

// put writes one object, unless it exists.
func (s *sender) put(ctx context.Context, key string, data []byte, contentType, encoding string) error {
	obj := s.client.Bucket(s.bucket).Object(key).If(storage.Conditions{DoesNotExist: true})
	w := obj.NewWriter(ctx)
	w.ChunkSize = 0 // one request; no 16 MiB buffer per write
	w.ContentType = contentType
	w.ContentEncoding = encoding
	_, err := w.Write(data)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		return nil
	}
	return s.classify(ctx, key, err)
}

// Close closes the storage client, and the idle connections of the client New made when env
// had none. A shared client is left alone. Close waits for the Sends in progress.
func (s *sender) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.client.Close()
	if s.ownClient != nil {
		s.ownClient.CloseIdleConnections()
	}
	return err
}

// classify turns the error of a write into a *destination.Failure (or the context's error).
func (s *sender) classify(ctx context.Context, key string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	var te *tokenError
	if errors.As(err, &te) {
		return s.tokenFailure(te, err)
	}
	var be *netguard.BlockedError
	if errors.As(err, &be) {
		return &destination.Failure{Kind: destination.Permanent, Message: be.Error(), Err: err}
	}
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return s.apiFailure(ge, key, err)
	}
	if errors.Is(err, storage.ErrBucketNotExist) {
		return &destination.Failure{Kind: destination.Permanent, StatusCode: http.StatusNotFound,
			Message: fmt.Sprintf("bucket %q does not exist", s.bucket), Err: err}
	}
	return &destination.Failure{Kind: destination.Retryable, Message: "cannot reach Google Cloud Storage: " + describe(err), Err: err}
}

// apiFailure classifies an error response of the storage API.
func (s *sender) apiFailure(ge *googleapi.Error, key string, err error) error {
	code := ge.Code
	if code == http.StatusPreconditionFailed {
		return nil // the object exists: this event or batch was delivered before
	}
	detail := apiMessage(ge)
	var f *destination.Failure
	switch code {
	case http.StatusUnauthorized:
		f = &destination.Failure{Kind: destination.Permanent, StatusCode: code,
			Message: "Google Cloud Storage did not accept the credentials: check the service account's key" + detail}
	case http.StatusForbidden:
		f = &destination.Failure{Kind: destination.Permanent, StatusCode: code,
			Message: fmt.Sprintf("permission denied: the service account needs storage.objects.create on bucket %q (roles/storage.objectCreator)%s", s.bucket, detail)}
	case http.StatusNotFound:
		f = &destination.Failure{Kind: destination.Permanent, StatusCode: code,
			Message: fmt.Sprintf("bucket %q does not exist%s", s.bucket, detail)}
	default:
		var retryAfter time.Duration
		if ge.Header != nil {
			retryAfter = destination.ParseRetryAfter(ge.Header.Get("Retry-After"), s.now())
		}
		f = destination.ClassifyStatus(code, retryAfter, fmt.Sprintf("Google Cloud Storage refused object %q%s", clean(key, maxMessage), detail))
		if f == nil { // a 2xx that the library took for an error: not expected
			f = &destination.Failure{Kind: destination.Retryable, StatusCode: code, Message: "unexpected response from Google Cloud Storage" + detail}
		}
	}
	f.Err = err
	return f
}

// apiMessage returns ": " and GCS's message, or "".
func apiMessage(ge *googleapi.Error) string {
	msg := ge.Message
	if msg == "" && len(ge.Errors) > 0 {
		msg = ge.Errors[0].Message
	}
	if msg == "" { // not a GCS error document: a short excerpt of the body (destination.Excerpt)
		if msg = destination.Excerpt([]byte(ge.Body)); msg != "" {
			return ": " + msg
		}
		return ""
	}
	if msg = clean(msg, maxMessage); msg != "" {
		return ": " + msg
	}
	return ""
}

// tokenFailure classifies a failed token request.
func (s *sender) tokenFailure(te *tokenError, err error) error {
	var be *netguard.BlockedError
	if errors.As(te, &be) {
		return &destination.Failure{Kind: destination.Permanent, Message: "the key's token_uri: " + be.Error(), Err: err}
	}
	var re *oauth2.RetrieveError
	if !errors.As(te, &re) || re.Response == nil {
		cause := te.cause
		if cause == nil {
			cause = te.err
		}
		return &destination.Failure{Kind: destination.Retryable, Message: "cannot get an access token: " + describe(cause), Err: err}
	}
	code := re.Response.StatusCode
	detail := tokenMessage(re)
	switch code {
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden:
		return &destination.Failure{Kind: destination.Permanent, StatusCode: code,
			Message: "the token endpoint refused the service account's key (deleted key or disabled account?)" + detail, Err: err}
	}
	retryAfter := destination.ParseRetryAfter(re.Response.Header.Get("Retry-After"), s.now())
	f := destination.ClassifyStatus(code, retryAfter, "the token endpoint refused to issue an access token"+detail)
	if f == nil {
		f = &destination.Failure{Kind: destination.Retryable, StatusCode: code, Message: "unexpected response from the token endpoint" + detail}
	}
	f.Err = err
	return f
}

// tokenMessage returns ": " and the OAuth error and description of a token response, or "".
func tokenMessage(re *oauth2.RetrieveError) string {
	code, desc := re.ErrorCode, re.ErrorDescription
	if code == "" {
		var body struct {
			Error            string `json:"error"`
			ErrorDescription string `json:"error_description"`
		}
		if json.Unmarshal(re.Body, &body) == nil {
			code, desc = body.Error, body.ErrorDescription
		}
	}
	msg := code
	if desc != "" {
		if msg != "" {
			msg += ": "
		}
		msg += desc
	}
	if msg = clean(msg, maxMessage); msg != "" {
		return ": " + msg
	}
	return ""
}

// describe says in a few words why a request got no response.
func describe(err error) string {
	if c := destination.NetCause(err, "the server"); c != "" {
		return c
	}
	inner := destination.Unwrapped(err)
	if strings.Contains(inner.Error(), "Client.Timeout") {
		return "timeout"
	}
	return clean(inner.Error(), maxMessage)
}

// clean makes text fit for a failure message (destination.Scrub).
func clean(text string, max int) string { return destination.Scrub(text, max) }

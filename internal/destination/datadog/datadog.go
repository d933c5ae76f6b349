// Package datadog delivers events to Datadog's logs intake API (v2): one POST to
// https://http-intake.logs.<site>/api/v2/logs per Send, with the API key in DD-API-KEY, a gzip
// JSON array of log entries as the body.
//
// Each entry is {"ddsource": …, "ddtags": …, "hostname": …, "service": …, "message": "<the event
// JSON as streamed>"}: Datadog parses a JSON message into the log's attributes (@event_type,
// @entity_path, @created_at, …), so its facets and Cloud SIEM rules see GitLab's fields. With
// config.format ocsf, the message is the event's OCSF JSON instead (@class_uid, @actor.user, …). The
// entry has no timestamp of its own: Datadog drops entries dated more than 18 hours back, and a
// destination that catches up, a replay or a redelivery sends older events; so a log's date is
// when Datadog took it, and created_at says when the event happened.
//
// Datadog answers 202 when it accepted the request. Its documented codes are classified as
// destination.ClassifyStatus does: 400, 401, 403 and 413 permanent, 408 and 5xx retried, 429
// throttled (with Retry-After, or a second). A batch holds at most MaxEntries entries and
// MaxPayloadBytes uncompressed (the config's batch is bounded by both); an event larger than
// MaxEntryBytes, which Datadog would truncate, is refused, permanent. The API key never appears
// in a failure.
package datadog

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/netguard"
)

// Request headers.
const (
	APIKeyHeader = "DD-API-KEY"
	UserAgent    = "auditstream"
	// IntakePath is the logs intake's path.
	IntakePath = "/api/v2/logs"
)

// maxResponseRead bounds what is read of a response body.
const maxResponseRead = 64 << 10

var _ destination.Factory = New

// New makes the Sender of a datadog destination. It is a destination.Factory: s.Config is the
// stored config, read with Type's rules; s.SecretToken the API key. The errors are
// *destination.Failure, Permanent, and never show the key. env.HTTPClient is shared and not
// closed; when it is nil, New makes a client with the default netguard.Policy.
func New(s destination.Settings, env destination.Env) (destination.Sender, error) {
	return Type.Open(s, env)
}

// sender is the Sender of one datadog destination. It is immutable after New, so safe for
// concurrent use.
type sender struct {
	client    *http.Client
	ownClient bool
	url       string
	safeURL   string
	key       string
	head      []byte // `{"ddsource":…,…,"message":` : what every entry starts with
	secrets   []string
	now       func() time.Time
	enc       destination.Encoding
}

func newSender(cfg Config, s destination.Settings, env destination.Env) (destination.Sender, error) {
	if !apiKeyPattern.MatchString(s.SecretToken) {
		return nil, destination.SettingsFailure("the secret token must be a Datadog API key: 32 hexadecimal characters")
	}
	intake := cfg.URL
	if intake == "" {
		intake = "https://http-intake.logs." + cfg.Site + IntakePath
	}
	u, err := url.Parse(intake)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, destination.SettingsFailure("config.url is not an http:// or https:// URL with a host")
	}
	safe := *u
	safe.User, safe.RawQuery, safe.ForceQuery, safe.Fragment = nil, "", false, ""
	snd := &sender{client: env.HTTPClient, url: intake, safeURL: safe.String(), key: s.SecretToken, now: env.Now, enc: s.Format}
	if snd.client == nil {
		snd.client, snd.ownClient = netguard.Policy{}.HTTPClient(), true
	}
	if snd.now == nil {
		snd.now = time.Now
	}
	snd.secrets = destination.RedactList(4, append([]string{s.SecretToken}, destination.URLSecrets(u)...)...)
	head := []byte(`{"ddsource":`)
	head = destination.AppendJSONString(head, cfg.Source)
	if cfg.Tags != "" {
		head = append(head, `,"ddtags":`...)
		head = destination.AppendJSONString(head, cfg.Tags)
	}
	if cfg.Hostname != "" {
		head = append(head, `,"hostname":`...)
		head = destination.AppendJSONString(head, cfg.Hostname)
	}
	head = append(head, `,"service":`...)
	head = destination.AppendJSONString(head, cfg.Service)
	snd.head = append(head, `,"message":`...)
	return snd, nil
}

var gzipPool = sync.Pool{New: func() any { w, _ := gzip.NewWriterLevel(nil, gzip.DefaultCompression); return w }}

// body returns the gzip of the JSON array of the entries of batch.
func (s *sender) body(batch []destination.Event) ([]byte, error) {
	var raw []byte
	raw = append(raw, '[')
	for i, e := range batch {
		start := len(raw)
		if i > 0 {
			raw = append(raw, ',')
		}
		raw = append(raw, s.head...)
		msg, err := s.enc.Payload(e)
		if err != nil {
			return nil, err
		}
		raw = destination.AppendJSONString(raw, string(msg))
		raw = append(raw, '}')
		if len(raw)-start > MaxEntryBytes {
			return nil, &destination.Failure{Kind: destination.Permanent,
				Message: fmt.Sprintf("event %d is larger than Datadog's limit of %d bytes per log entry", e.ID, MaxEntryBytes)}
		}
	}
	raw = append(raw, ']')
	if len(raw) > MaxPayloadBytes {
		return nil, &destination.Failure{Kind: destination.Permanent,
			Message: fmt.Sprintf("%d events make %d bytes, more than Datadog's limit of %d per request: lower config.batch.maxBytes", len(batch), len(raw), MaxPayloadBytes)}
	}
	var buf bytes.Buffer
	zw := gzipPool.Get().(*gzip.Writer)
	zw.Reset(&buf)
	_, _ = zw.Write(raw)
	_ = zw.Close()
	gzipPool.Put(zw)
	return buf.Bytes(), nil
}

// Send posts batch as one request. See the package documentation.
func (s *sender) Send(ctx context.Context, batch []destination.Event) error {
	if len(batch) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(batch) > MaxEntries {
		return &destination.Failure{Kind: destination.Permanent, Message: fmt.Sprintf("%d events in one request, more than Datadog's %d", len(batch), MaxEntries)}
	}
	body, err := s.body(batch)
	if err != nil {
		return err
	}
	tctx, peer := destination.TracePeer(ctx)
	req, err := http.NewRequestWithContext(tctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return &destination.Failure{Kind: destination.Permanent, Message: "cannot make the request: the URL is not valid", Err: destination.ScrubURLError(err, s.safeURL)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set(APIKeyHeader, s.key)
	resp, err := s.client.Do(req)
	if err != nil {
		msg := destination.NetCause(err, "Datadog's intake")
		if msg == "" {
			msg = destination.Scrub(destination.Unwrapped(err).Error(), destination.MessageBodyLen, s.secrets...)
		}
		return destination.NetworkFailure(ctx, err, s.safeURL, msg)
	}
	defer resp.Body.Close()
	rbody, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseRead))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		destination.ReportStatus(ctx, resp.StatusCode)
		return nil
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return &destination.Failure{Kind: destination.Permanent, StatusCode: resp.StatusCode,
			Message: destination.StatusMessage(resp.Status, nil, s.secrets...) + ": redirects are not followed"}
	}
	retryAfter := destination.ParseRetryAfter(resp.Header.Get("Retry-After"), s.now())
	if resp.StatusCode == http.StatusTooManyRequests && retryAfter == 0 {
		retryAfter = time.Second
	}
	return destination.ClassifyStatus(resp.StatusCode, retryAfter, destination.StatusMessage(resp.Status, peer.Body(rbody), s.secrets...))
}

// Close releases the idle connections of the client New made when env had none.
func (s *sender) Close() error {
	if s.ownClient {
		s.client.CloseIdleConnections()
	}
	return nil
}

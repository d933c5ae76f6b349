// Package splunkhec delivers events to Splunk's HTTP Event Collector (HEC) (design 5.7).
//
// # Requests
//
// One request per Send, whatever the batch: a POST to <url>/services/collector/event whose body
// holds one HEC event object per event, in order, separated by newlines (HEC reads concatenated
// JSON objects, so a batch and a single event have the same format):
//
//	{"time":1732626000.123,"host":"gitlab.example.com","source":"gitlab","sourcetype":"gitlab:audit","index":"audit","event":{...}}
//
// Its members, in the order time, host, source, sourcetype, index, event:
//
//   - time: the event's created_at in Unix seconds with a millisecond fraction, so that Splunk
//     files the event at the time it happened, not when it arrived. When Event.CreatedAt is zero
//     (a dead letter sent again) it is read from the event JSON's created_at; when that fails
//     too, time is left out and Splunk uses the time of arrival.
//   - host, source, index: config.host, config.source, config.index, only when configured;
//     otherwise Splunk applies the HEC token's defaults.
//   - sourcetype: config.sourcetype, or DefaultSourcetype ("gitlab:audit") when none is
//     configured, so that GitLab audit events are searchable as one sourcetype whatever the
//     token's default. For search-time field extraction, give that sourcetype KV_MODE = json in
//     Splunk's props.conf, or configure sourcetype "_json".
//   - event: the event JSON exactly as streamed (GitLab's format, with "id"), or its OCSF JSON
//     with config.format ocsf.
//
// The request carries Authorization: Splunk <token> (Settings.SecretToken is the HEC token),
// Content-Type: application/json and User-Agent: auditstream; with indexer acknowledgement, also
// X-Splunk-Request-Channel (see below).
//
// config.url is the HEC base URL, such as https://splunk.example.com:8088. A URL that already
// ends with /services/collector, /services/collector/event or /services/collector/event/1.0
// is taken as its base URL, so pasting the endpoint works too. Its query, if any, is kept.
//
// # Responses
//
// HEC answers {"text":"...","code":N}. Code 0 is success, and so are the capacity warnings 24
// and 25 and any code HEC may add that comes with a 2xx status. The other codes, listed in codes.go with the HTTP status Splunk answers each with,
// are classified by what they mean rather than by their HTTP status alone:
//
//   - token problems (1 token disabled, 2 token required, 3 invalid authorization, 4 invalid
//     token, 16 query string authorization, 21/22 from the health endpoint), data problems (5
//     no data, 6 invalid data format, 7 incorrect index, 12 event field required, 13 event
//     field blank, 15 indexed fields) and channel problems (10 data channel missing, 11 invalid
//     data channel, 14 ACK disabled): Permanent, with a message that names the code, its meaning
//     and what to change. When HEC says which event was bad (invalid-event-number), the message
//     names that event's id. Splunk may have indexed the events before the bad one.
//   - 9 server busy, 18/19/20 unhealthy, 26/27 at capacity: Throttled, waiting Retry-After, or
//     BusyWait when HEC does not say.
//   - 8 internal server error, 23 shutting down: Retryable.
//
// A response without a HEC body (a proxy's or load balancer's) is classified by its HTTP status
// (destination.ClassifyStatus); a 2xx one is success. Redirects are not followed and are
// Permanent. Network errors are Retryable, except a dial the SSRF guard refused
// (netguard.ErrBlocked), which is Permanent and says why. Messages never hold the token, the
// Authorization header or the URL's query and password: anything of HEC's quoted in them is
// cut to 200 bytes and has those blanked out.
//
// # Indexer acknowledgement
//
// By default HEC answers 200 as soon as it has read a request, before the events are indexed;
// an outage between the two loses them. With config.ack, the Sender uses HEC's indexer
// acknowledgement, and the HEC token must have it turned on too (otherwise HEC answers code 10
// to requests without a channel, and auditstream sends none without config.ack):
//
//   - each Sender has its own channel, a random UUID made by New, sent as
//     X-Splunk-Request-Channel with every event request;
//   - HEC's answer carries an ackId; Send then asks POST <url>/services/collector/ack?channel=<channel>
//     with {"acks":[<ackId>]} until HEC answers {"acks":{"<ackId>":true}}, first after
//     AckPollInitial, then doubling the wait up to AckPollMax;
//   - only then does Send return nil, so that the engine acknowledges the events in its log only
//     once Splunk has indexed them (and replicated them, per the indexers' settings).
//
// The wait is bounded by AckTimeout (30 s) and by ctx. When the events are not acknowledged
// by then, Send returns a Retryable failure ("not acknowledged by the indexers within 30s"):
// the engine sends them again, and since they may have been indexed after all, Splunk may
// then hold them twice. Delivery is at least once; the event's "id" identifies duplicates
// in searches (dedup id).
//
// An ack query that gets a transient answer (5xx, busy, network error, or code 10/11, which an
// indexer not owning the channel gives when a load balancer has no sticky sessions) is asked
// again until the bound. Cookies the event response set (a load balancer's sticky-session
// cookie) are sent with the ack queries of the same Send. If HEC accepts the events without an
// ackId (the token does not have indexer acknowledgement), or answers an ack query with code 14
// (it was turned off meanwhile), there is nothing to wait for and Send returns nil.
//
// A Sender is safe for concurrent use: concurrent Sends share the channel and each waits for
// its own ackId.
package splunkhec

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/netguard"
)

// HEC's endpoints and headers, and what auditstream sends.
const (
	// EventPath is HEC's JSON event endpoint, below config.url.
	EventPath = "/services/collector/event"
	// AckPath is HEC's indexer acknowledgement endpoint, below config.url.
	AckPath = "/services/collector/ack"
	// ChannelHeader carries the request channel.
	ChannelHeader = "X-Splunk-Request-Channel"
	// DefaultSourcetype is the sourcetype of events when config.sourcetype is not set.
	DefaultSourcetype = "gitlab:audit"
	UserAgent         = "auditstream"
	ContentType       = "application/json"
)

// Waits.
const (
	// AckTimeout bounds the wait for indexer acknowledgement of one request.
	AckTimeout = 30 * time.Second
	// AckPollInitial is the wait before the first ack query; it doubles after each query up
	// to AckPollMax.
	AckPollInitial = 100 * time.Millisecond
	AckPollMax     = 2 * time.Second
	// BusyWait is how long to wait after HEC said it is busy without a Retry-After.
	BusyWait = 5 * time.Second
)

// Limits on what is read of a response and quoted in messages.
const (
	maxResponseRead = 64 << 10
	minRedactLen    = 4 // shorter secrets would blank out ordinary words
)

// basePaths are endpoint paths a config.url may end with; they are cut off to get the base URL.
var basePaths = []string{"/services/collector/event/1.0", "/services/collector/event", "/services/collector"}

var _ destination.Factory = New

// sender is the Sender of one splunk destination. It is immutable after New, so safe for
// concurrent use.
type sender struct {
	client    *http.Client
	ownClient bool // made by New because env had none: Close closes its idle connections
	eventURL  string
	ackURL    string
	safeURL   string      // the event URL without user info and query: for errors that may be logged
	header    http.Header // of event requests
	ackHeader http.Header // of ack queries
	meta      []byte      // the metadata members of every event object, each followed by a comma
	index     string
	ack       bool
	channel   string // with ack: the request channel, a UUID
	secrets   []string
	now       func() time.Time
	enc       destination.Encoding

	// The bounds of the wait for indexer acknowledgement (AckTimeout, AckPollInitial,
	// AckPollMax); tests shorten them.
	ackTimeout, pollInitial, pollMax time.Duration
}

// New makes the Sender of a splunk destination. It is a destination.Factory. s.Config is the
// stored splunk config: url (an http(s) URL, the HEC base URL), index, source, sourcetype, host,
// ack. s.SecretToken is the HEC token: required, without control characters. The errors are
// *destination.Failure, Permanent, and name no secret. env.HTTPClient is shared and not closed;
// when it is nil, New makes a client with the default netguard.Policy, which Close releases.
func New(s destination.Settings, env destination.Env) (destination.Sender, error) {
	return Type.Open(s, env)
}

func newHECSender(cfg Config, s destination.Settings, env destination.Env) (destination.Sender, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, destination.SettingsFailure("config.url is not an http:// or https:// URL with a host, such as https://splunk.example.com:8088")
	}
	if s.SecretToken == "" {
		return nil, destination.SettingsFailure("the destination has no HEC token")
	}
	if !destination.ValidHeaderValue(s.SecretToken) {
		return nil, destination.SettingsFailure("the HEC token has control characters")
	}

	base := *u
	base.Fragment, base.RawFragment, base.RawPath = "", "", ""
	base.Path = strings.TrimRight(base.Path, "/")
	for _, p := range basePaths {
		if strings.HasSuffix(base.Path, p) {
			base.Path = strings.TrimSuffix(base.Path, p)
			break
		}
	}
	eventURL, ackURL := base, base
	eventURL.Path += EventPath
	ackURL.Path += AckPath
	safe := eventURL
	safe.User, safe.RawQuery, safe.ForceQuery = nil, "", false

	snd := &sender{
		client:      env.HTTPClient,
		eventURL:    eventURL.String(),
		safeURL:     safe.String(),
		index:       cfg.Index,
		ack:         cfg.Ack,
		now:         env.Now,
		enc:         s.Format,
		ackTimeout:  AckTimeout,
		pollInitial: AckPollInitial,
		pollMax:     AckPollMax,
	}
	if snd.client == nil {
		snd.client, snd.ownClient = netguard.Policy{}.HTTPClient(), true
	}
	if snd.now == nil {
		snd.now = time.Now
	}

	member := func(key, value string) {
		snd.meta = destination.AppendJSONString(snd.meta, key)
		snd.meta = append(snd.meta, ':')
		snd.meta = destination.AppendJSONString(snd.meta, value)
		snd.meta = append(snd.meta, ',')
	}
	if cfg.Host != "" {
		member("host", cfg.Host)
	}
	if cfg.Source != "" {
		member("source", cfg.Source)
	}
	member("sourcetype", cmp.Or(cfg.Sourcetype, DefaultSourcetype))
	if cfg.Index != "" {
		member("index", cfg.Index)
	}

	auth := "Splunk " + s.SecretToken
	snd.header = http.Header{
		"Authorization": {auth},
		"Content-Type":  {ContentType},
		"User-Agent":    {UserAgent},
	}
	snd.ackHeader = snd.header.Clone()
	if cfg.Ack {
		snd.channel = destination.NewUUID()
		snd.header.Set(ChannelHeader, snd.channel)
		q := "channel=" + url.QueryEscape(snd.channel)
		if ackURL.RawQuery != "" {
			q = ackURL.RawQuery + "&" + q
		}
		ackURL.RawQuery = q
		snd.ackURL = ackURL.String()
	}

	snd.secrets = append(snd.secrets, s.SecretToken, auth)
	snd.secrets = append(snd.secrets, destination.URLSecrets(u)...)
	snd.secrets = destination.RedactList(minRedactLen, snd.secrets...)
	return snd, nil
}

// Send delivers batch in one request and, with indexer acknowledgement, waits until Splunk
// has indexed it. See the package documentation.
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
	tctx, peer := destination.TracePeer(ctx)
	req, err := http.NewRequestWithContext(tctx, http.MethodPost, s.eventURL, bytes.NewReader(s.body(batch, payloads)))
	if err != nil {
		return &destination.Failure{Kind: destination.Permanent, Message: "cannot make the request: the URL is not valid", Err: destination.ScrubURLError(err, s.safeURL)}
	}
	req.Header = s.header.Clone()
	resp, err := s.client.Do(req)
	if err != nil {
		return destination.NetworkFailure(ctx, err, s.safeURL, "cannot reach Splunk HEC: "+s.describe(err))
	}
	body := readBody(resp)
	r, f := s.check(resp, body, batch, peer)
	if f != nil {
		return f
	}
	if !s.ack || r.AckID == nil {
		destination.ReportStatus(ctx, resp.StatusCode)
		return nil
	}
	if err := s.waitForAck(ctx, *r.AckID, resp.Cookies()); err != nil {
		return err
	}
	destination.ReportStatus(ctx, resp.StatusCode)
	return nil
}

// Close releases the idle connections of the client New made when env had none. A shared
// client is left alone.
func (s *sender) Close() error {
	if s.ownClient {
		s.client.CloseIdleConnections()
	}
	return nil
}

// body returns the request body: one HEC event object per event, separated by newlines; the
// events' payloads (in the destination's format) are payloads.
func (s *sender) body(batch []destination.Event, payloads [][]byte) []byte {
	n := 0
	for _, p := range payloads {
		n += len(`{"time":1732626000.123,"event":}`+"\n") + len(s.meta) + len(p)
	}
	b := make([]byte, 0, n)
	for i, e := range batch {
		if i > 0 {
			b = append(b, '\n')
		}
		b = append(b, '{')
		if t := eventTime(e); !t.IsZero() {
			b = append(b, `"time":`...)
			b = appendEpoch(b, t)
			b = append(b, ',')
		}
		b = append(b, s.meta...)
		b = append(b, `"event":`...)
		if js := bytes.TrimSpace(payloads[i]); len(js) > 0 {
			b = append(b, js...)
		} else {
			b = append(b, "null"...) // HEC answers code 13, naming this event
		}
		b = append(b, '}')
	}
	return b
}

// eventTime returns when e happened: Event.CreatedAt, or the created_at of its JSON, or the
// zero time.
func eventTime(e destination.Event) time.Time {
	if !e.CreatedAt.IsZero() {
		return e.CreatedAt
	}
	var head struct {
		CreatedAt time.Time `json:"created_at"`
	}
	_ = json.Unmarshal(e.JSON, &head)
	return head.CreatedAt
}

// appendEpoch appends t as Unix seconds with a millisecond fraction: 1732626000.123.
func appendEpoch(b []byte, t time.Time) []byte {
	ms := t.UnixMilli()
	if ms < 0 {
		b = append(b, '-')
		ms = -ms
	}
	b = strconv.AppendInt(b, ms/1000, 10)
	f := ms % 1000
	return append(b, '.', byte('0'+f/100), byte('0'+f/10%10), byte('0'+f%10))
}

// readBody reads at most maxResponseRead bytes of resp's body and closes it.
func readBody(resp *http.Response) []byte {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseRead))
	return body
}

// reply is a HEC response body.
type reply struct {
	Text  string `json:"text"`
	Code  *int   `json:"code"`
	AckID *int64 `json:"ackId"`
	// InvalidEvent is the index, from 0, of the first event HEC could not take.
	InvalidEvent *int `json:"invalid-event-number"`
}

// check classifies a response to a request for batch (nil for an ack query). It returns the
// HEC reply, and a failure when the response is not a success. Nothing of the body of an
// internal peer (peer.Internal) goes into the failure's message.
func (s *sender) check(resp *http.Response, body []byte, batch []destination.Event, peer *destination.Peer) (reply, *destination.Failure) {
	var r reply
	isHEC := json.Unmarshal(body, &r) == nil && r.Code != nil
	if peer.Internal() {
		r.Text = ""
	}
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	retryAfter := destination.ParseRetryAfter(resp.Header.Get("Retry-After"), s.now())
	if !isHEC {
		switch {
		case ok:
			return r, nil
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			return r, &destination.Failure{
				Kind: destination.Permanent, StatusCode: resp.StatusCode,
				Message: s.clean(resp.Status, destination.MessageStatusLen) + ": redirects are not followed; set config.url to the HEC address it redirects to",
			}
		}
		return r, destination.ClassifyStatus(resp.StatusCode, retryAfter, destination.StatusMessage(resp.Status, peer.Body(body), s.secrets...))
	}
	code := *r.Code
	info, known := hecCodes[code]
	if !known || info.outcome == accepted {
		if ok {
			return r, nil
		}
		return r, destination.ClassifyStatus(resp.StatusCode, retryAfter, s.codeMessage(code, r, info, batch))
	}
	f := &destination.Failure{StatusCode: resp.StatusCode, Message: s.codeMessage(code, r, info, batch)}
	switch info.outcome {
	case throttled:
		f.Kind, f.RetryAfter = destination.Throttled, retryAfter
		if f.RetryAfter == 0 {
			f.RetryAfter = BusyWait
		}
	case retryable:
		f.Kind, f.RetryAfter = destination.Retryable, retryAfter
	default:
		f.Kind = destination.Permanent
	}
	return r, f
}

// codeMessage says what a HEC code means: "Splunk HEC code 4 (Invalid token): Splunk does not
// know this HEC token; check the destination's token".
func (s *sender) codeMessage(code int, r reply, info codeInfo, batch []destination.Event) string {
	// A known code is told in Splunk's documented words, not the receiver's; an unknown one
	// with a short excerpt of its text.
	text := cmp.Or(info.text, destination.Excerpt([]byte(r.Text), s.secrets...), "no text")
	msg := fmt.Sprintf("Splunk HEC code %d (%s)", code, text)
	if n := r.InvalidEvent; n != nil && *n >= 0 && *n < len(batch) {
		msg += fmt.Sprintf(" in event %d (number %d of %d in the request)", batch[*n].ID, *n+1, len(batch))
	}
	hint := info.hint
	if code == 7 {
		if s.index != "" {
			hint = fmt.Sprintf("the HEC token may not write to the index %s; add it to the token's allowed indexes in Splunk or change config.index", s.clean(strconv.Quote(s.index), destination.MessageStatusLen))
		} else {
			hint = "the HEC token's default index is not one it may write to; fix the token in Splunk or set config.index"
		}
	}
	if hint != "" {
		msg += ": " + hint
	}
	return msg
}

// waitForAck asks HEC whether the request with ackID has been indexed, until it has, the wait
// exceeds ackTimeout, or ctx ends. See the package documentation.
func (s *sender) waitForAck(ctx context.Context, ackID int64, cookies []*http.Cookie) error {
	start := time.Now()
	actx, cancel := context.WithTimeout(ctx, s.ackTimeout)
	defer cancel()
	id := strconv.FormatInt(ackID, 10)
	query := []byte(`{"acks":[` + id + `]}`)
	timer := time.NewTimer(s.pollInitial)
	defer timer.Stop()
	wait := s.pollInitial
	last := "" // what the last failed ack query said
	for {
		select {
		case <-actx.Done():
			return s.notAcknowledged(ctx, start, ackID, last)
		case <-timer.C:
		}
		done, f := s.queryAck(actx, query, id, cookies)
		switch {
		case done:
			return nil
		case f != nil && f.Kind == destination.Permanent:
			f.Message = fmt.Sprintf("Splunk accepted the events (ackId %d) but the ack query failed: %s", ackID, f.Message)
			return f
		case f != nil:
			last = f.Message
		}
		if actx.Err() != nil {
			return s.notAcknowledged(ctx, start, ackID, last)
		}
		wait = min(2*wait, s.pollMax)
		timer.Reset(wait)
	}
}

// notAcknowledged is the error of a wait for acknowledgement that ended: ctx's error when ctx
// was canceled, otherwise a Retryable failure.
func (s *sender) notAcknowledged(ctx context.Context, start time.Time, ackID int64, last string) error {
	err := ctx.Err()
	if errors.Is(err, context.Canceled) {
		return err
	}
	within := s.ackTimeout.String()
	if err == nil {
		err = context.DeadlineExceeded // the bound of the wait, not ctx's
	} else {
		within = time.Since(start).Round(time.Millisecond).String()
	}
	msg := fmt.Sprintf("Splunk accepted the events (ackId %d) but they were not acknowledged by the indexers within %s; "+
		"they will be sent again, so Splunk may hold them twice", ackID, within)
	if last != "" {
		msg += "; the last ack query failed: " + last
	}
	return &destination.Failure{Kind: destination.Retryable, Message: msg, Err: err}
}

// queryAck asks HEC once whether the request with ackID id has been indexed. A failure that is
// not Permanent is worth asking again.
func (s *sender) queryAck(ctx context.Context, query []byte, id string, cookies []*http.Cookie) (bool, *destination.Failure) {
	tctx, peer := destination.TracePeer(ctx)
	req, err := http.NewRequestWithContext(tctx, http.MethodPost, s.ackURL, bytes.NewReader(query))
	if err != nil {
		return false, &destination.Failure{Kind: destination.Permanent, Message: "cannot make the ack query: the URL is not valid", Err: destination.ScrubURLError(err, s.safeURL)}
	}
	req.Header = s.ackHeader.Clone()
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return false, nil // the wait is over; waitForAck says so
		}
		return false, destination.Classify(destination.NetworkFailure(ctx, err, s.safeURL, "cannot reach Splunk HEC: "+s.describe(err)))
	}
	body := readBody(resp)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		var a struct {
			Acks map[string]bool `json:"acks"`
		}
		if json.Unmarshal(body, &a) == nil && a.Acks != nil {
			return a.Acks[id], nil
		}
	}
	r, f := s.check(resp, body, nil, peer)
	if r.Code != nil {
		switch *r.Code {
		case 14: // ACK is disabled: the token no longer acknowledges; the events were accepted
			return true, nil
		case 10, 11:
			f.Kind = destination.Retryable
			f.Message += " (an indexer that does not know the channel answered the ack query: with several indexers behind a load balancer, it needs sticky sessions)"
		}
	}
	if f == nil {
		return false, &destination.Failure{Kind: destination.Retryable, StatusCode: resp.StatusCode, Message: destination.StatusMessage(resp.Status, peer.Body(body), s.secrets...) + " (not an ack query answer)"}
	}
	return false, f
}

// describe says in a few words why a request got no response.
func (s *sender) describe(err error) string {
	var (
		rhe tls.RecordHeaderError
		ua  x509.UnknownAuthorityError
	)
	switch {
	case errors.As(err, &ua):
		return "TLS certificate signed by an unknown authority (Splunk's default HEC certificate is self-signed: give HEC a certificate from a CA that auditstream's host trusts)"
	case errors.As(err, &rhe):
		return "TLS handshake failed: the server did not answer with TLS (does HEC have SSL turned off, so that config.url should start with http://?)"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused (is HEC turned on and listening on this port? Its default port is 8088)"
	}
	if c := destination.NetCause(err, "the server"); c != "" {
		return c
	}
	return s.clean(destination.Unwrapped(err).Error(), destination.MessageBodyLen)
}

// clean scrubs text of the sender's secrets (destination.Scrub).
func (s *sender) clean(text string, max int) string {
	return destination.Scrub(text, max, s.secrets...)
}

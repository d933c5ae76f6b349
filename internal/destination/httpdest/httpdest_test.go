package httpdest_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/destination/httpdest"
	"github.com/auditstream/auditstream/internal/netguard"
)

const (
	token        = "stream-token-0123456789abcdef"
	headerValue  = "custom-header-secret-value"
	inactiveVal  = "inactive-header-secret-value"
	querySecret  = "query-secret-token-value"
	batchConfig  = `"batch":{"maxBytes":1048576,"maxEvents":100,"maxWaitMs":1000}`
	eventTypeOne = "group_created"
	eventTypeTwo = "project_created"
)

var (
	signingSecret  = "whsec_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	previousSecret = "whsec_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))
	fixedNow       = time.Date(2025, 10, 14, 18, 0, 8, 0, time.UTC)
)

// client is the client tests use: the guard allows the httptest servers on 127.0.0.1.
var client = netguard.Policy{AllowPrivate: true}.HTTPClient()

// request is what a test server received.
type request struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
}

// recorder is a test server that records requests and answers with handler (200 when nil).
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []request
}

func newRecorder(t testing.TB, handler http.HandlerFunc) *recorder {
	rec := &recorder{}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, request{Method: r.Method, Path: r.URL.RequestURI(), Header: r.Header.Clone(), Body: body})
		rec.mu.Unlock()
		if handler != nil {
			handler(w, r)
		}
	}))
	t.Cleanup(rec.Close)
	return rec
}

func (rec *recorder) requests() []request {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]request(nil), rec.reqs...)
}

func (rec *recorder) last(t *testing.T) request {
	t.Helper()
	reqs := rec.requests()
	require.NotEmpty(t, reqs)
	return reqs[len(reqs)-1]
}

func event(id int64, typ string) destination.Event {
	created := fixedNow.Add(time.Duration(id) * time.Millisecond)
	js := fmt.Sprintf(`{"id":%d,"author_id":1,"author_name":"Administrator","entity_id":24,"entity_type":"Group",`+
		`"entity_path":"gitlab-duo","details":{"event_name":%q,"custom_message":"héllo <&>"},`+
		`"created_at":%q,"event_type":%q}`, id, typ, created.Format("2006-01-02T15:04:05.000Z"), typ)
	return destination.Event{ID: id, Type: typ, CreatedAt: created, JSON: []byte(js)}
}

func settings(url string, batch bool) destination.Settings {
	cfg := `{"url":` + strconv.Quote(url)
	if batch {
		cfg += "," + batchConfig
	}
	cfg += "}"
	return destination.Settings{
		ID:       7,
		Category: destination.CategoryHTTP,
		Config:   []byte(cfg),
		Headers: []destination.Header{
			{Name: "X-Custom", Value: headerValue, Active: true},
			{Name: "X-Inactive", Value: inactiveVal, Active: false},
		},
		SecretToken:   token,
		SigningSecret: signingSecret,
	}
}

func newSender(t testing.TB, s destination.Settings, env destination.Env) destination.Sender {
	t.Helper()
	if env.HTTPClient == nil {
		env.HTTPClient = client
	}
	if env.Now == nil {
		env.Now = func() time.Time { return fixedNow }
	}
	snd, err := httpdest.New(s, env)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, snd.Close()) })
	return snd
}

func sign(secret, id string, ts int64, body []byte) string {
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "%s.%d.", id, ts)
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func failure(t *testing.T, err error) *destination.Failure {
	t.Helper()
	require.Error(t, err)
	var f *destination.Failure
	require.ErrorAs(t, err, &f)
	return f
}

func TestRequest(t *testing.T) {
	rec := newRecorder(t, nil)
	snd := newSender(t, settings(rec.URL+"/hook?x=1", false), destination.Env{})
	e := event(42, eventTypeOne)
	require.NoError(t, snd.Send(context.Background(), []destination.Event{e}))

	r := rec.last(t)
	require.Equal(t, http.MethodPost, r.Method)
	require.Equal(t, "/hook?x=1", r.Path)
	require.Equal(t, e.JSON, r.Body, "the body is the event JSON exactly")

	want := http.Header{
		"X-Custom":                       {headerValue},
		"X-Gitlab-Event-Streaming-Token": {token},
		"X-Gitlab-Audit-Event-Type":      {eventTypeOne},
		"Content-Type":                   {"application/json"},
		"User-Agent":                     {"auditstream"},
		"Webhook-Id":                     {"42"},
		"Webhook-Timestamp":              {strconv.FormatInt(fixedNow.Unix(), 10)},
		"Webhook-Signature":              {sign(signingSecret, "42", fixedNow.Unix(), e.JSON)},
		"Content-Length":                 {strconv.Itoa(len(e.JSON))},
		"Accept-Encoding":                {"gzip"}, // net/http's own
	}
	require.Equal(t, want, r.Header)
	require.Empty(t, r.Header.Values("X-Inactive"))
}

func TestContentTypeOverride(t *testing.T) {
	rec := newRecorder(t, nil)
	s := settings(rec.URL, false)
	s.Headers = append(s.Headers,
		destination.Header{Name: "content-type", Value: "application/vnd.audit+json", Active: true},
		destination.Header{Name: "user-agent", Value: "my-agent", Active: true},
	)
	snd := newSender(t, s, destination.Env{})
	require.NoError(t, snd.Send(context.Background(), []destination.Event{event(1, eventTypeOne)}))
	h := rec.last(t).Header
	require.Equal(t, []string{"application/vnd.audit+json"}, h.Values("Content-Type"))
	require.Equal(t, []string{"my-agent"}, h.Values("User-Agent"))

	// An inactive Content-Type header does not replace the default.
	s = settings(rec.URL, false)
	s.Headers = append(s.Headers, destination.Header{Name: "Content-Type", Value: "text/plain", Active: false})
	snd = newSender(t, s, destination.Env{})
	require.NoError(t, snd.Send(context.Background(), []destination.Event{event(2, eventTypeOne)}))
	require.Equal(t, []string{"application/json"}, rec.last(t).Header.Values("Content-Type"))
}

func TestNoTokenNoSecret(t *testing.T) {
	rec := newRecorder(t, nil)
	s := settings(rec.URL, false)
	s.SecretToken, s.SigningSecret, s.Headers = "", "", nil
	snd := newSender(t, s, destination.Env{})
	require.NoError(t, snd.Send(context.Background(), []destination.Event{event(3, eventTypeOne)}))
	h := rec.last(t).Header
	require.Empty(t, h.Values(destination.StreamingTokenHeader))
	require.Empty(t, h.Values("Webhook-Signature"))
	require.Equal(t, "3", h.Get("Webhook-Id"))
}

func TestSignatureVerifies(t *testing.T) {
	rec := newRecorder(t, nil)
	current, err := standardwebhooks.NewWebhook(signingSecret)
	require.NoError(t, err)
	previous, err := standardwebhooks.NewWebhook(previousSecret)
	require.NoError(t, err)

	now := time.Now()
	clock := func() time.Time { return now }
	s := settings(rec.URL, false)
	s.PreviousSigningSecret = previousSecret
	s.PreviousValidUntil = now.Add(time.Minute)

	// During the grace period, both secrets verify.
	snd := newSender(t, s, destination.Env{Now: clock})
	require.NoError(t, snd.Send(context.Background(), []destination.Event{event(10, eventTypeOne)}))
	r := rec.last(t)
	require.Len(t, strings.Split(r.Header.Get("Webhook-Signature"), " "), 2)
	require.NoError(t, current.Verify(r.Body, r.Header))
	require.NoError(t, previous.Verify(r.Body, r.Header))

	// A batch verifies too.
	require.NoError(t, snd.Send(context.Background(), []destination.Event{event(11, eventTypeOne), event(12, eventTypeTwo)}))
	r = rec.last(t)
	require.NoError(t, current.Verify(r.Body, r.Header))
	require.NoError(t, previous.Verify(r.Body, r.Header))

	// Once the grace period is over, only the current secret signs.
	now = now.Add(time.Minute) // within Verify's 5 minutes of tolerance
	require.NoError(t, snd.Send(context.Background(), []destination.Event{event(13, eventTypeOne)}))
	r = rec.last(t)
	require.NotContains(t, r.Header.Get("Webhook-Signature"), " ")
	require.NoError(t, current.Verify(r.Body, r.Header))
	require.ErrorIs(t, previous.Verify(r.Body, r.Header), standardwebhooks.ErrNoMatchingSignature)

	// Without a previous secret, one signature.
	snd = newSender(t, settings(rec.URL, false), destination.Env{Now: clock})
	require.NoError(t, snd.Send(context.Background(), []destination.Event{event(14, eventTypeOne)}))
	r = rec.last(t)
	require.NotContains(t, r.Header.Get("Webhook-Signature"), " ")
	require.NoError(t, current.Verify(r.Body, r.Header))
	require.Error(t, previous.Verify(r.Body, r.Header))
}

func TestBatch(t *testing.T) {
	rec := newRecorder(t, nil)
	events := []destination.Event{event(5, eventTypeOne), event(6, eventTypeOne), event(9, eventTypeOne)}

	check := func(t *testing.T, r request, events []destination.Event) {
		t.Helper()
		var got []json.RawMessage
		require.NoError(t, json.Unmarshal(r.Body, &got))
		require.Len(t, got, len(events))
		for i, e := range events {
			require.JSONEq(t, string(e.JSON), string(got[i]))
		}
		parts := make([]string, len(events))
		for i, e := range events {
			parts[i] = string(e.JSON)
		}
		require.Equal(t, "["+strings.Join(parts, ",")+"]", string(r.Body))
		require.Equal(t, strconv.Itoa(len(r.Body)), r.Header.Get("Content-Length"))
		id := fmt.Sprintf("%d-%d", events[0].ID, events[len(events)-1].ID)
		require.Equal(t, id, r.Header.Get("Webhook-Id"))
		require.Equal(t, sign(signingSecret, id, fixedNow.Unix(), r.Body), r.Header.Get("Webhook-Signature"))
	}

	// Several events without a batch config: an array.
	snd := newSender(t, settings(rec.URL, false), destination.Env{})
	require.NoError(t, snd.Send(context.Background(), events))
	r := rec.last(t)
	check(t, r, events)
	require.Equal(t, eventTypeOne, r.Header.Get("X-Gitlab-Audit-Event-Type"))

	// Mixed types: no event type header.
	mixed := []destination.Event{event(20, eventTypeOne), event(21, eventTypeTwo)}
	require.NoError(t, snd.Send(context.Background(), mixed))
	r = rec.last(t)
	check(t, r, mixed)
	require.Empty(t, r.Header.Values("X-Gitlab-Audit-Event-Type"))

	// A batch config sends an array even for one event.
	snd = newSender(t, settings(rec.URL, true), destination.Env{})
	require.NoError(t, snd.Send(context.Background(), events[:1]))
	check(t, rec.last(t), events[:1])

	// A large batch, read in many pieces.
	var many []destination.Event
	for i := range 300 {
		many = append(many, event(int64(1000+i), eventTypeTwo))
	}
	require.NoError(t, snd.Send(context.Background(), many))
	check(t, rec.last(t), many)

	// Nothing to send: no request.
	n := len(rec.requests())
	require.NoError(t, snd.Send(context.Background(), nil))
	require.Len(t, rec.requests(), n)
}

func TestClassification(t *testing.T) {
	retryAt := fixedNow.Add(30 * time.Second)
	tests := []struct {
		status     int
		retryAfter string
		kind       destination.FailureKind // -1: success
		wait       time.Duration
	}{
		{200, "", -1, 0},
		{201, "", -1, 0},
		{202, "", -1, 0},
		{204, "", -1, 0},
		{400, "", destination.Permanent, 0},
		{401, "", destination.Permanent, 0},
		{403, "", destination.Permanent, 0},
		{404, "", destination.Permanent, 0},
		{410, "", destination.Permanent, 0},
		{413, "", destination.Permanent, 0},
		{422, "", destination.Permanent, 0},
		{408, "", destination.Retryable, 0},
		{425, "", destination.Retryable, 0},
		{500, "", destination.Retryable, 0},
		{502, "", destination.Retryable, 0},
		{504, "", destination.Retryable, 0},
		{429, "", destination.Throttled, 0},
		{429, "7", destination.Throttled, 7 * time.Second},
		{429, retryAt.Format(http.TimeFormat), destination.Throttled, 30 * time.Second},
		{503, "5", destination.Throttled, 5 * time.Second},
		{503, retryAt.Format(http.TimeFormat), destination.Throttled, 30 * time.Second},
		{503, "", destination.Retryable, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d %s", tt.status, tt.retryAfter), func(t *testing.T) {
			rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				w.WriteHeader(tt.status)
				if tt.status != http.StatusNoContent {
					_, _ = io.WriteString(w, "the body says why")
				}
			})
			snd := newSender(t, settings(rec.URL, false), destination.Env{})
			err := snd.Send(context.Background(), []destination.Event{event(1, eventTypeOne)})
			if tt.kind == -1 {
				require.NoError(t, err)
				return
			}
			f := failure(t, err)
			require.Equal(t, tt.kind, f.Kind)
			require.Equal(t, tt.status, f.StatusCode)
			require.Equal(t, tt.wait, f.RetryAfter)
			require.Equal(t, fmt.Sprintf("%d %s: the body says why", tt.status, http.StatusText(tt.status)), f.Message)
		})
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	target := newRecorder(t, nil)
	for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL+"/?token="+querySecret, status)
		})
		snd := newSender(t, settings(rec.URL, false), destination.Env{})
		f := failure(t, snd.Send(context.Background(), []destination.Event{event(1, eventTypeOne)}))
		require.Equal(t, destination.Permanent, f.Kind)
		require.Equal(t, status, f.StatusCode)
		require.Contains(t, f.Message, "redirects are not followed")
		require.NotContains(t, f.Message, querySecret)
		require.Len(t, rec.requests(), 1)
	}
	require.Empty(t, target.requests(), "the redirect target is never hit")
}

func TestConnectionRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL + "/?token=" + querySecret
	srv.Close()
	snd := newSender(t, settings(u, false), destination.Env{})
	err := snd.Send(context.Background(), []destination.Event{event(1, eventTypeOne)})
	f := failure(t, err)
	require.Equal(t, destination.Retryable, f.Kind)
	require.Zero(t, f.StatusCode)
	require.Equal(t, "connection refused", f.Message)
	require.NotContains(t, err.Error(), querySecret)
	require.NotContains(t, f.Err.Error(), querySecret, "the cause, for logs, has no query either")
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) }) // runs before the server closes

	c := netguard.Policy{AllowPrivate: true}.HTTPClient()
	c.Timeout = 200 * time.Millisecond
	snd := newSender(t, settings(rec.URL, false), destination.Env{HTTPClient: c})
	start := time.Now()
	f := failure(t, snd.Send(context.Background(), []destination.Event{event(1, eventTypeOne)}))
	require.Less(t, time.Since(start), 5*time.Second)
	require.Equal(t, destination.Retryable, f.Kind)
	require.Contains(t, f.Message, "timeout after 200ms")
}

func TestContextCanceled(t *testing.T) {
	release := make(chan struct{})
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) })
	snd := newSender(t, settings(rec.URL, false), destination.Env{})

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	err := snd.Send(ctx, []destination.Event{event(1, eventTypeOne)})
	require.Equal(t, context.Canceled, err, "returned unwrapped")

	// Already canceled: no request.
	n := len(rec.requests())
	require.Equal(t, context.Canceled, snd.Send(ctx, []destination.Event{event(2, eventTypeOne)}))
	require.Len(t, rec.requests(), n)

	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	require.Equal(t, context.DeadlineExceeded, snd.Send(ctx, []destination.Event{event(3, eventTypeOne)}))
}

func TestMessageHasNoSecrets(t *testing.T) {
	// A receiver that echoes everything it got, as httpbin's /anything does.
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s\n", r.Method, r.URL.String())
		for name, vs := range r.Header {
			fmt.Fprintf(&b, "%s: %s\n", name, strings.Join(vs, ","))
		}
		js, _ := json.Marshal(map[string]any{"headers": r.Header, "args": r.URL.Query()})
		b.Write(js)
		_, _ = io.WriteString(w, b.String())
	})
	u := strings.Replace(rec.URL, "http://", "http://user:pass-secret-word@", 1) + "/hook?token=" + querySecret + "&b=" + "second-query-secret"
	s := settings(u, false)
	s.Headers = append(s.Headers, destination.Header{Name: "X-Quoted", Value: `a"quoted\secret`, Active: true})

	// Short bodies first: the secrets are at the start of the echo.
	for _, order := range []string{"headers first", "again"} {
		snd := newSender(t, s, destination.Env{})
		err := snd.Send(context.Background(), []destination.Event{event(1, eventTypeOne)})
		f := failure(t, err)
		require.Equal(t, destination.Permanent, f.Kind, order)
		for _, text := range []string{f.Message, err.Error()} {
			for _, secret := range []string{token, headerValue, querySecret, "second-query-secret", "pass-secret-word", `quoted\secret`, `quoted\\secret`, signingSecret} {
				require.NotContains(t, text, secret)
			}
			require.NotContains(t, text, "token=")
		}
		require.True(t, strings.HasPrefix(f.Message, "400 Bad Request: "), f.Message)
		require.LessOrEqual(t, len(f.Message), len("400 Bad Request: ")+destination.MessageExcerptLen)
	}

	// Every header echoed alone, so that each lands within the excerpt.
	for _, name := range []string{"X-Custom", destination.StreamingTokenHeader, "X-Quoted"} {
		echo := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, "bad "+r.Header.Get(name)+" for "+r.URL.String())
		})
		s := settings(echo.URL+"/?token="+querySecret, false)
		s.Headers = append(s.Headers, destination.Header{Name: "X-Quoted", Value: `a"quoted\secret`, Active: true})
		f := failure(t, newSender(t, s, destination.Env{}).Send(context.Background(), []destination.Event{event(1, eventTypeOne)}))
		require.Contains(t, f.Message, "bad [redacted] for /?[redacted]", name)
	}
}

func TestMessageIsPrintableAndShort(t *testing.T) {
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, "bad\x00\x01\n\r\t  thing\u200b é"+strings.Repeat("x", 100<<10))
	})
	snd := newSender(t, settings(rec.URL, false), destination.Env{})
	f := failure(t, snd.Send(context.Background(), []destination.Event{event(1, eventTypeOne)}))
	require.Equal(t, destination.Retryable, f.Kind)
	prefix := "500 Internal Server Error: bad thing é"
	require.True(t, strings.HasPrefix(f.Message, prefix), f.Message)
	require.Len(t, f.Message, len("500 Internal Server Error: ")+destination.MessageExcerptLen)
	require.True(t, strings.HasSuffix(f.Message, "…"), f.Message)
}

// A receiver's body is shown as a short excerpt without markup; a receiver that only
// --destination-allow-cidrs lets us reach (an internal service) shows none (issue 13, item 5).
func TestMessageExcerptAndInternalReceivers(t *testing.T) {
	page := "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>\n<h1>internal-admin.corp</h1>" +
		"<p>db password=hunter2, users: alice bob carol dave erin frank grace heidi</p></body></html>"
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, page)
	})
	// Allowed because private addresses are (development): an excerpt, no markup.
	f := failure(t, newSender(t, settings(rec.URL, false), destination.Env{HTTPClient: netguard.Policy{AllowPrivate: true}.HTTPClient()}).
		Send(context.Background(), []destination.Event{event(1, eventTypeOne)}))
	require.True(t, strings.HasPrefix(f.Message, "502 Bad Gateway: 502 Bad Gateway internal-admin.corp db"), f.Message)
	require.NotContains(t, f.Message, "<")
	require.NotContains(t, f.Message, "frank")
	require.LessOrEqual(t, len(f.Message), len("502 Bad Gateway: ")+destination.MessageExcerptLen)

	// Allowed only through the operator's allow list (--destination-allow-cidrs): the status only.
	listed := netguard.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}}
	f = failure(t, newSender(t, settings(rec.URL, false), destination.Env{HTTPClient: listed.HTTPClient()}).
		Send(context.Background(), []destination.Event{event(1, eventTypeOne)}))
	require.Equal(t, "502 Bad Gateway", f.Message)
	require.Equal(t, http.StatusBadGateway, f.StatusCode)
}

func TestNewErrors(t *testing.T) {
	ok := settings("https://example.com/hook", false)
	tests := map[string]func(s *destination.Settings){
		"variable url":      func(s *destination.Settings) { s.Config = []byte(`{"url":"$AUDIT_URL"}`) },
		"ftp url":           func(s *destination.Settings) { s.Config = []byte(`{"url":"ftp://example.com/"}`) },
		"no host":           func(s *destination.Settings) { s.Config = []byte(`{"url":"https:///x"}`) },
		"not json":          func(s *destination.Settings) { s.Config = []byte(`nope`) },
		"bad secret":        func(s *destination.Settings) { s.SigningSecret = "whsec_!!!" },
		"bad previous":      func(s *destination.Settings) { s.PreviousSigningSecret, s.PreviousValidUntil = "whsec_%%", fixedNow },
		"header newline":    func(s *destination.Settings) { s.Headers[0].Value = "a\r\nX-Evil: 1" },
		"header name":       func(s *destination.Settings) { s.Headers[0].Name = "X Bad" },
		"token newline":     func(s *destination.Settings) { s.SecretToken = "a\nb" },
		"other category":    func(s *destination.Settings) { s.Category = destination.CategoryAWS },
		"empty secret body": func(s *destination.Settings) { s.SigningSecret = "whsec_" },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			s := ok
			s.Headers = append([]destination.Header(nil), ok.Headers...)
			mutate(&s)
			_, err := httpdest.New(s, destination.Env{HTTPClient: client})
			f := failure(t, err)
			require.Equal(t, destination.Permanent, f.Kind)
			require.NotContains(t, err.Error(), "X-Evil")
			require.NotContains(t, err.Error(), "!!!")
		})
	}
	// An inactive header is not sent, so it is not checked either.
	s := ok
	s.Headers = []destination.Header{{Name: "X-Off", Value: "a\nb", Active: false}}
	_, err := httpdest.New(s, destination.Env{HTTPClient: client})
	require.NoError(t, err)
}

func TestConcurrentSends(t *testing.T) {
	var bad atomic.Int32
	wh, err := standardwebhooks.NewWebhook(signingSecret)
	require.NoError(t, err)
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {})
	snd := newSender(t, settings(rec.URL, false), destination.Env{Now: time.Now})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 25 {
				id := int64(g*100 + i)
				batch := []destination.Event{event(id, eventTypeOne)}
				if i%3 == 0 {
					batch = append(batch, event(id+50, eventTypeTwo))
				}
				if err := snd.Send(context.Background(), batch); err != nil {
					bad.Add(1)
				}
			}
		})
	}
	wg.Wait()
	require.Zero(t, bad.Load())
	reqs := rec.requests()
	require.Len(t, reqs, 200)
	for _, r := range reqs {
		require.NoError(t, wh.Verify(r.Body, r.Header))
	}
}

func TestFailureUnwrap(t *testing.T) {
	// The cause kept for logs unwraps to the network error.
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	snd := newSender(t, settings(u, false), destination.Env{})
	err := snd.Send(context.Background(), []destination.Event{event(1, eventTypeOne)})
	var f *destination.Failure
	require.True(t, errors.As(err, &f))
	require.ErrorIs(t, err, syscall.ECONNREFUSED, "the failure unwraps to the network error")
}

func TestTLSFailures(t *testing.T) {
	tlsSrv := httptest.NewUnstartedServer(http.NotFoundHandler())
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake errors are expected
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	snd := newSender(t, settings(tlsSrv.URL, false), destination.Env{})
	f := failure(t, snd.Send(context.Background(), []destination.Event{event(1, eventTypeOne)}))
	require.Equal(t, destination.Retryable, f.Kind)
	require.Equal(t, "TLS certificate signed by an unknown authority", f.Message)

	plain := newRecorder(t, nil)
	snd = newSender(t, settings(strings.Replace(plain.URL, "http://", "https://", 1), false), destination.Env{})
	f = failure(t, snd.Send(context.Background(), []destination.Event{event(1, eventTypeOne)}))
	require.Equal(t, destination.Retryable, f.Kind)
	require.Equal(t, "http: server gave HTTP response to HTTPS client", f.Message)
}

func TestResponseHeaderTimeout(t *testing.T) {
	release := make(chan struct{})
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) })
	c := netguard.Policy{AllowPrivate: true}.HTTPClient()
	c.Transport.(*http.Transport).ResponseHeaderTimeout = 100 * time.Millisecond
	snd := newSender(t, settings(rec.URL, false), destination.Env{HTTPClient: c})
	f := failure(t, snd.Send(context.Background(), []destination.Event{event(1, eventTypeOne)}))
	require.Equal(t, destination.Retryable, f.Kind)
	require.Equal(t, "timeout after 100ms waiting for the response headers", f.Message)
}

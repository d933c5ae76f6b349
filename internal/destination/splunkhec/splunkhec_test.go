package splunkhec

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/netguard"
)

// client is the client tests use: the guard allows the httptest servers on 127.0.0.1.
var client = netguard.Policy{AllowPrivate: true}.HTTPClient()

var (
	fixedNow = time.Date(2025, 10, 14, 18, 0, 8, 0, time.UTC)
	// created is when the first test event happened: 1732626000.123 in Unix seconds.
	created = time.Date(2024, 11, 26, 13, 0, 0, 123_000_000, time.UTC)
)

const batchConfig = `"batch":{"maxBytes":1048576,"maxEvents":100,"maxWaitMs":1000}`

func event(id int64) destination.Event {
	at := created.Add(time.Duration(id-1) * time.Second)
	js := fmt.Sprintf(`{"id":%d,"author_id":1,"author_name":"Administrator","entity_id":24,"entity_type":"Group",`+
		`"entity_path":"gitlab-duo","details":{"event_name":"group_created","custom_message":"héllo <&>"},`+
		`"created_at":%q,"event_type":"group_created"}`, id, at.Format("2006-01-02T15:04:05.000Z"))
	return destination.Event{ID: id, Type: "group_created", CreatedAt: at, JSON: []byte(js)}
}

// settings makes the settings of a splunk destination: config holds the members after url.
func settings(url, token, config string) destination.Settings {
	cfg := `{"url":` + strconv.Quote(url)
	if config != "" {
		cfg += "," + config
	}
	return destination.Settings{ID: 9, Category: destination.CategorySplunk, Config: []byte(cfg + "}"), SecretToken: token}
}

func newSender(t testing.TB, s destination.Settings, env destination.Env) *sender {
	t.Helper()
	if env.HTTPClient == nil {
		env.HTTPClient = client
	}
	if env.Now == nil {
		env.Now = func() time.Time { return fixedNow }
	}
	snd, err := New(s, env)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, snd.Close()) })
	return snd.(*sender)
}

func failure(t *testing.T, err error) *destination.Failure {
	t.Helper()
	require.Error(t, err)
	var f *destination.Failure
	require.ErrorAs(t, err, &f)
	return f
}

// noSecrets checks that a failure shows neither the token nor the Authorization header.
func noSecrets(t *testing.T, f *destination.Failure, secrets ...string) {
	t.Helper()
	for _, text := range []string{f.Message, f.Error(), fmt.Sprint(f.Err)} {
		for _, sec := range secrets {
			require.NotContains(t, text, sec)
		}
		require.NotContains(t, text, "Splunk "+testToken)
	}
}

func TestSendSingleEvent(t *testing.T) {
	s := newTestHEC(t)
	snd := newSender(t, settings(s.URL, testToken,
		`"host":"gitlab.example.com","source":"gitlab","sourcetype":"gitlab:audit:v1","index":"audit"`), destination.Env{})
	e := event(1)
	require.NoError(t, snd.Send(context.Background(), []destination.Event{e}))

	reqs := s.dataRequests()
	require.Len(t, reqs, 1)
	r := reqs[0]
	require.Equal(t, "POST", r.Method)
	require.Equal(t, EventPath, r.Path)
	require.Equal(t, "Splunk "+testToken, r.Header.Get("Authorization"))
	require.Equal(t, "application/json", r.Header.Get("Content-Type"))
	require.Equal(t, "auditstream", r.Header.Get("User-Agent"))
	require.Empty(t, r.Header.Get(ChannelHeader), "no channel without ack")
	// The exact wire format: members in order, time with milliseconds, the event as streamed.
	require.Equal(t, `{"time":1732626000.123,"host":"gitlab.example.com","source":"gitlab","sourcetype":"gitlab:audit:v1",`+
		`"index":"audit","event":`+string(e.JSON)+`}`, string(r.Body))

	got := s.indexedEvents()
	require.Len(t, got, 1)
	ix := got[0]
	require.Equal(t, "1732626000.123", ix.Time)
	require.Equal(t, "gitlab.example.com", ix.Host)
	require.Equal(t, "gitlab", ix.Source)
	require.Equal(t, "gitlab:audit:v1", ix.Sourcetype)
	require.Equal(t, "audit", ix.Index)
	require.JSONEq(t, string(e.JSON), string(ix.Event))
}

func TestOnlyConfiguredMetadataIsSet(t *testing.T) {
	s := newTestHEC(t)
	snd := newSender(t, settings(s.URL, testToken, ""), destination.Env{})
	require.NoError(t, snd.Send(context.Background(), []destination.Event{event(1)}))
	got := s.indexedEvents()
	require.Len(t, got, 1)
	require.Equal(t, []string{"event", "sourcetype", "time"}, got[0].Keys)
	require.Equal(t, DefaultSourcetype, got[0].Sourcetype)

	snd = newSender(t, settings(s.URL, testToken, `"source":"gl","ack":false`), destination.Env{})
	require.NoError(t, snd.Send(context.Background(), []destination.Event{event(2)}))
	got = s.indexedEvents()
	require.Equal(t, []string{"event", "source", "sourcetype", "time"}, got[1].Keys)
}

func TestSendBatch(t *testing.T) {
	s := newTestHEC(t)
	snd := newSender(t, settings(s.URL, testToken, `"index":"main",`+batchConfig), destination.Env{})
	batch := []destination.Event{event(1), event(2), event(3)}
	require.NoError(t, snd.Send(context.Background(), batch))

	reqs := s.dataRequests()
	require.Len(t, reqs, 1, "one request for the batch")
	lines := strings.Split(string(reqs[0].Body), "\n")
	require.Len(t, lines, 3)
	got := s.indexedEvents()
	require.Len(t, got, 3)
	for i, e := range batch {
		require.Equal(t, fmt.Sprintf("173262600%d.123", i), got[i].Time)
		require.Equal(t, "main", got[i].Index)
		require.Equal(t, DefaultSourcetype, got[i].Sourcetype)
		require.JSONEq(t, string(e.JSON), string(got[i].Event))
		require.Equal(t, `{"time":173262600`+strconv.Itoa(i)+`.123,"sourcetype":"gitlab:audit","index":"main","event":`+string(e.JSON)+`}`, lines[i])
	}

	// Several events without config.batch go in one request too.
	snd = newSender(t, settings(s.URL, testToken, ""), destination.Env{})
	require.NoError(t, snd.Send(context.Background(), batch[:2]))
	require.Len(t, s.dataRequests(), 2)
	require.Len(t, s.indexedEvents(), 5)
}

func TestTimeFallsBackToCreatedAt(t *testing.T) {
	s := newTestHEC(t)
	snd := newSender(t, settings(s.URL, testToken, ""), destination.Env{})
	e := event(1)
	e.CreatedAt = time.Time{} // a dead letter sent again
	noTime := destination.Event{ID: 2, JSON: []byte(`{"id":2}`)}
	require.NoError(t, snd.Send(context.Background(), []destination.Event{e, noTime}))
	got := s.indexedEvents()
	require.Len(t, got, 2)
	require.Equal(t, "1732626000.123", got[0].Time)
	require.Equal(t, "", got[1].Time, "no time: Splunk uses the time of arrival")
	require.NotContains(t, got[1].Keys, "time")
}

func TestAppendEpoch(t *testing.T) {
	for _, c := range []struct {
		t    time.Time
		want string
	}{
		{created, "1732626000.123"},
		{time.Unix(5, 7_000_000), "5.007"},
		{time.Unix(0, 0), "0.000"},
		{time.Unix(1732626000, 999_999_999), "1732626000.999"},
		{time.Unix(-1, 500_000_000), "-0.500"},
	} {
		require.Equal(t, c.want, string(appendEpoch(nil, c.t)))
	}
}

func TestURLForms(t *testing.T) {
	s := newTestHEC(t)
	for _, u := range []string{s.URL, s.URL + "/", s.URL + "/services/collector", s.URL + "/services/collector/event",
		s.URL + "/services/collector/event/1.0"} {
		snd := newSender(t, settings(u, testToken, ""), destination.Env{})
		require.NoError(t, snd.Send(context.Background(), []destination.Event{event(1)}), u)
	}
	for _, r := range s.dataRequests() {
		require.Equal(t, EventPath, r.Path)
	}
}

func TestTokenErrorsArePermanent(t *testing.T) {
	s := newTestHEC(t)
	const unknown = "99999999-9999-9999-9999-999999999999"
	for _, c := range []struct {
		token        string
		status, code int
		text         string
	}{
		{unknown, 403, 4, "Invalid token"},
		{disabledToken, 403, 1, "Token disabled"},
	} {
		snd := newSender(t, settings(s.URL, c.token, ""), destination.Env{})
		f := failure(t, snd.Send(context.Background(), []destination.Event{event(1)}))
		require.Equal(t, destination.Permanent, f.Kind)
		require.Equal(t, c.status, f.StatusCode)
		require.Contains(t, f.Message, fmt.Sprintf("Splunk HEC code %d (%s)", c.code, c.text))
		noSecrets(t, f, c.token, "Splunk "+c.token)
	}
	require.Empty(t, s.indexedEvents())
}

// TestCodesAreClassified runs every code the Sender classifies through a server that answers
// it with its documented status.
func TestCodesAreClassified(t *testing.T) {
	for code, want := range map[int]destination.FailureKind{
		1: destination.Permanent, 2: destination.Permanent, 3: destination.Permanent, 4: destination.Permanent,
		5: destination.Permanent, 6: destination.Permanent, 7: destination.Permanent, 8: destination.Retryable,
		9: destination.Throttled, 10: destination.Permanent, 11: destination.Permanent, 12: destination.Permanent,
		13: destination.Permanent, 14: destination.Permanent, 15: destination.Permanent, 16: destination.Permanent,
		18: destination.Throttled, 19: destination.Throttled, 20: destination.Throttled, 21: destination.Permanent,
		22: destination.Permanent, 23: destination.Retryable, 26: destination.Throttled, 27: destination.Throttled,
	} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			s := newTestHEC(t)
			s.failWith(code)
			snd := newSender(t, settings(s.URL, testToken, ""), destination.Env{})
			f := failure(t, snd.Send(context.Background(), []destination.Event{event(1)}))
			require.Equal(t, want, f.Kind)
			require.Equal(t, hecStatuses[code].status, f.StatusCode)
			require.Contains(t, f.Message, fmt.Sprintf("Splunk HEC code %d (%s)", code, hecStatuses[code].text))
			require.Equal(t, hecCodes[code].status, hecStatuses[code].status, "the Sender's table agrees with the server's")
			require.Equal(t, hecCodes[code].text, hecStatuses[code].text)
			noSecrets(t, f, testToken)
		})
	}
	for _, code := range []int{0, 17, 24, 25} {
		s := newTestHEC(t)
		s.failWith(code) // a 200 answer with this code
		snd := newSender(t, settings(s.URL, testToken, ""), destination.Env{})
		require.NoError(t, snd.Send(context.Background(), []destination.Event{event(1)}), "code %d", code)
	}
}

func TestInvalidEventIsNamed(t *testing.T) {
	s := newTestHEC(t)
	snd := newSender(t, settings(s.URL, testToken, ""), destination.Env{})
	bad := destination.Event{ID: 42, CreatedAt: created, JSON: []byte(" ")}
	f := failure(t, snd.Send(context.Background(), []destination.Event{event(1), bad, event(3)}))
	require.Equal(t, destination.Permanent, f.Kind)
	require.Equal(t, 400, f.StatusCode)
	require.Contains(t, f.Message, "Splunk HEC code 13 (Event field cannot be blank) in event 42 (number 2 of 3 in the request)")
}

func TestIncorrectIndex(t *testing.T) {
	s := newTestHEC(t)
	snd := newSender(t, settings(s.URL, testToken, `"index":"secret_stuff"`), destination.Env{})
	f := failure(t, snd.Send(context.Background(), []destination.Event{event(1)}))
	require.Equal(t, destination.Permanent, f.Kind)
	require.Contains(t, f.Message, `Splunk HEC code 7 (Incorrect index) in event 1 (number 1 of 1 in the request)`)
	require.Contains(t, f.Message, `may not write to the index "secret_stuff"`)
}

func TestBusyIsThrottled(t *testing.T) {
	s := newTestHEC(t)
	snd := newSender(t, settings(s.URL, testToken, ""), destination.Env{})

	s.setBusy(true, "7")
	f := failure(t, snd.Send(context.Background(), []destination.Event{event(1)}))
	require.Equal(t, destination.Throttled, f.Kind)
	require.Equal(t, 503, f.StatusCode)
	require.Equal(t, 7*time.Second, f.RetryAfter)
	require.Contains(t, f.Message, "Splunk HEC code 9 (Server is busy)")

	s.setBusy(true, "")
	f = failure(t, snd.Send(context.Background(), []destination.Event{event(1)}))
	require.Equal(t, destination.Throttled, f.Kind)
	require.Equal(t, BusyWait, f.RetryAfter)

	s.setBusy(false, "")
	require.NoError(t, snd.Send(context.Background(), []destination.Event{event(1)}))
	require.Len(t, s.indexedEvents(), 1)
}

func TestResponsesWithoutHECBody(t *testing.T) {
	var status int
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if status == http.StatusFound {
			w.Header().Set("Location", "https://elsewhere.example/")
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	snd := newSender(t, settings(srv.URL, testToken, ""), destination.Env{})
	for _, c := range []struct {
		status int
		body   string
		kind   destination.FailureKind
		ok     bool
	}{
		{200, "", 0, true},
		{204, "", 0, true},
		{502, "<html>Bad Gateway</html>", destination.Retryable, false},
		{504, "", destination.Retryable, false},
		{404, "not here", destination.Permanent, false},
		{413, "Content-Length of 900 too large", destination.Permanent, false},
		{429, "", destination.Throttled, false},
		{http.StatusFound, "", destination.Permanent, false},
	} {
		status, body = c.status, c.body
		err := snd.Send(context.Background(), []destination.Event{event(1)})
		if c.ok {
			require.NoError(t, err, "%d", c.status)
			continue
		}
		f := failure(t, err)
		require.Equal(t, c.kind, f.Kind, "%d", c.status)
		require.Equal(t, c.status, f.StatusCode)
	}
}

func TestMessagesHaveNoSecrets(t *testing.T) {
	const querySecret = "query-secret-value"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A server that echoes what it got, in a HEC body with a code no one knows, and as
		// plain text.
		text := "bad " + r.Header.Get("Authorization") + " for " + r.URL.RawQuery
		if r.URL.Query().Get("plain") != "" {
			w.WriteHeader(500)
			_, _ = w.Write([]byte(text))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		_ = json.NewEncoder(w).Encode(map[string]any{"text": text, "code": 99})
	}))
	t.Cleanup(srv.Close)
	for _, q := range []string{"?k=" + querySecret, "?plain=1&k=" + querySecret} {
		snd := newSender(t, settings(srv.URL+q, testToken, ""), destination.Env{})
		f := failure(t, snd.Send(context.Background(), []destination.Event{event(1)}))
		require.Contains(t, f.Message, "[redacted]")
		noSecrets(t, f, testToken, querySecret)
	}
}

func TestChannelMissingWhenTheTokenAcks(t *testing.T) {
	s := newTestHEC(t)
	snd := newSender(t, settings(s.URL, ackToken, ""), destination.Env{})
	f := failure(t, snd.Send(context.Background(), []destination.Event{event(1)}))
	require.Equal(t, destination.Permanent, f.Kind)
	require.Equal(t, 400, f.StatusCode)
	require.Contains(t, f.Message, "Splunk HEC code 10 (Data channel is missing)")
	require.Contains(t, f.Message, "set ack to true")
}

// ackSender makes a Sender with indexer acknowledgement whose polls are quick.
func ackSender(t *testing.T, url string) *sender {
	snd := newSender(t, settings(url, ackToken, `"ack":true`), destination.Env{})
	snd.pollInitial, snd.pollMax = time.Millisecond, 4*time.Millisecond
	return snd
}

func TestAckWaitsForTheIndexers(t *testing.T) {
	s := newTestHEC(t)
	s.setAckAfter(3)
	snd := ackSender(t, s.URL)
	require.NoError(t, snd.Send(context.Background(), []destination.Event{event(1), event(2)}))
	require.Equal(t, 3, s.ackQueryCount(), "Send returns once the third poll says true")

	require.NoError(t, snd.Send(context.Background(), []destination.Event{event(3)}))
	require.Equal(t, 6, s.ackQueryCount())

	reqs := s.received()
	var channels []string
	for _, r := range reqs {
		switch r.Path {
		case EventPath:
			channels = append(channels, r.Header.Get(ChannelHeader))
		case AckPath:
			require.Equal(t, "channel="+snd.channel, r.RawQuery)
			require.Equal(t, "Splunk "+ackToken, r.Header.Get("Authorization"))
			require.Contains(t, []string{`{"acks":[0]}`, `{"acks":[1]}`}, string(r.Body))
		}
	}
	require.Len(t, channels, 2)
	require.Regexp(t, guidPattern, channels[0])
	require.Equal(t, channels[0], channels[1], "one channel per Sender")
	require.Len(t, s.indexedEvents(), 3)

	other := ackSender(t, s.URL)
	require.NotEqual(t, snd.channel, other.channel)
}

func TestAckWithDefaultPolling(t *testing.T) {
	s := newTestHEC(t)
	s.setAckAfter(2)
	snd := newSender(t, settings(s.URL, ackToken, `"ack":true`), destination.Env{})
	start := time.Now()
	require.NoError(t, snd.Send(context.Background(), []destination.Event{event(1)}))
	// 100 ms, then 200 ms more.
	require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)
	require.Equal(t, 2, s.ackQueryCount())
}

func TestAckTimesOutOnTheContextDeadline(t *testing.T) {
	s := newTestHEC(t)
	s.setAckAfter(-1)
	snd := ackSender(t, s.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	f := failure(t, snd.Send(ctx, []destination.Event{event(1)}))
	require.Equal(t, destination.Retryable, f.Kind)
	require.Contains(t, f.Message, "not acknowledged by the indexers within")
	require.Contains(t, f.Message, "ackId 0")
	require.ErrorIs(t, f, context.DeadlineExceeded)
	require.Greater(t, s.ackQueryCount(), 1)
	require.Len(t, s.indexedEvents(), 1, "accepted, but never acknowledged")
}

func TestAckTimesOutOnItsBound(t *testing.T) {
	s := newTestHEC(t)
	s.setAckAfter(-1)
	snd := ackSender(t, s.URL)
	snd.ackTimeout = 50 * time.Millisecond
	f := failure(t, snd.Send(context.Background(), []destination.Event{event(1)}))
	require.Equal(t, destination.Retryable, f.Kind)
	require.Contains(t, f.Message, "not acknowledged by the indexers within 50ms")

	// With the default bound the message says 30s.
	snd.ackTimeout = AckTimeout
	require.Contains(t, snd.notAcknowledged(context.Background(), time.Now(), 3, "").Error(),
		"not acknowledged by the indexers within 30s")
}

func TestAckCanceled(t *testing.T) {
	s := newTestHEC(t)
	s.setAckAfter(-1)
	snd := ackSender(t, s.URL)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- snd.Send(ctx, []destination.Event{event(1)}) }()
	require.Eventually(t, func() bool { return s.ackQueryCount() > 0 }, 5*time.Second, time.Millisecond)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
}

func TestAckWithoutAckID(t *testing.T) {
	// The token does not acknowledge: HEC accepts the channel and answers without ackId.
	s := newTestHEC(t)
	snd := newSender(t, settings(s.URL, testToken, `"ack":true`), destination.Env{})
	require.NoError(t, snd.Send(context.Background(), []destination.Event{event(1)}))
	require.Zero(t, s.ackQueryCount())
	reqs := s.dataRequests()
	require.Len(t, reqs, 1)
	require.Equal(t, snd.channel, reqs[0].Header.Get(ChannelHeader))
}

func TestAckQueryFailures(t *testing.T) {
	var mu sync.Mutex
	var ackStatus int
	var ackBody string
	var polls int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == EventPath {
			http.SetCookie(w, &http.Cookie{Name: "AWSALB", Value: "sticky"})
			_, _ = w.Write([]byte(`{"text":"Success","code":0,"ackId":5}`))
			return
		}
		mu.Lock()
		defer mu.Unlock()
		polls++
		if c, err := r.Cookie("AWSALB"); err != nil || c.Value != "sticky" {
			w.WriteHeader(400)
			_, _ = w.Write([]byte(`{"text":"no sticky cookie","code":99}`))
			return
		}
		if polls >= 3 {
			_, _ = w.Write([]byte(`{"acks":{"5":true}}`))
			return
		}
		w.WriteHeader(ackStatus)
		_, _ = w.Write([]byte(ackBody))
	}))
	t.Cleanup(srv.Close)
	snd := newSender(t, settings(srv.URL, ackToken, `"ack":true`), destination.Env{})
	snd.pollInitial, snd.pollMax = time.Millisecond, time.Millisecond

	set := func(status int, body string) {
		mu.Lock()
		defer mu.Unlock()
		ackStatus, ackBody, polls = status, body, 0
	}
	// Transient answers are asked again, and the sticky-session cookie goes with every poll.
	for _, c := range []struct {
		status int
		body   string
	}{
		{503, `{"text":"Server is busy","code":9}`},
		{500, `{"text":"Internal server error","code":8}`},
		{502, `<html>bad gateway</html>`},
		{400, `{"text":"Invalid data channel","code":11}`},
		{200, `{"acks":{"5":false}}`},
		{200, `not json`},
	} {
		set(c.status, c.body)
		require.NoError(t, snd.Send(context.Background(), []destination.Event{event(1)}), c.body)
	}

	// ACK is disabled: the token no longer acknowledges; the events were accepted.
	set(400, `{"text":"ACK is disabled","code":14}`)
	require.NoError(t, snd.Send(context.Background(), []destination.Event{event(1)}))

	// A token error stops the wait.
	set(403, `{"text":"Invalid token","code":4}`)
	f := failure(t, snd.Send(context.Background(), []destination.Event{event(1)}))
	require.Equal(t, destination.Permanent, f.Kind)
	require.Contains(t, f.Message, "Splunk accepted the events (ackId 5) but the ack query failed: Splunk HEC code 4 (Invalid token)")

	// The last transient failure is told when the wait times out.
	set(503, `{"text":"Server is busy","code":9}`)
	snd.ackTimeout = 100 * time.Millisecond
	mu.Lock()
	polls = -1000
	mu.Unlock()
	f = failure(t, snd.Send(context.Background(), []destination.Event{event(1)}))
	require.Equal(t, destination.Retryable, f.Kind)
	require.Contains(t, f.Message, "the last ack query failed: Splunk HEC code 9 (Server is busy)")
}

func TestConcurrentAckSends(t *testing.T) {
	s := newTestHEC(t)
	s.setAckAfter(2)
	snd := ackSender(t, s.URL)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() { errs <- snd.Send(context.Background(), []destination.Event{event(int64(i + 1))}) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, s.indexedEvents(), 16)
	require.Equal(t, 32, s.ackQueryCount())
}

func TestNetworkErrorsAreRetryable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	snd := newSender(t, settings(url+"/?k=query-secret", testToken, ""), destination.Env{})
	f := failure(t, snd.Send(context.Background(), []destination.Event{event(1)}))
	require.Equal(t, destination.Retryable, f.Kind)
	require.Contains(t, f.Message, "connection refused")
	noSecrets(t, f, testToken, "query-secret")
}

func TestContextCanceledBeforeSend(t *testing.T) {
	s := newTestHEC(t)
	snd := newSender(t, settings(s.URL, testToken, ""), destination.Env{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, snd.Send(ctx, []destination.Event{event(1)}), context.Canceled)
	require.NoError(t, snd.Send(context.Background(), nil))
	require.Empty(t, s.received())
}

func TestNewErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		s    destination.Settings
		want string
	}{
		{"category", destination.Settings{Category: "http", Config: []byte(`{"url":"https://s:8088"}`), SecretToken: testToken}, `cannot deliver to a "http" destination`},
		{"not json", destination.Settings{Config: []byte(`[`), SecretToken: testToken}, "config is not a valid splunk config"},
		{"no url", settings("", testToken, ""), "config.url: is required"},
		{"ftp", settings("ftp://s:8088", testToken, ""), "config.url: must start with http:// or https://"},
		{"variable", settings("$SPLUNK", testToken, ""), "config.url: must start with http:// or https://"},
		{"no token", settings("https://s:8088", "", ""), "no HEC token"},
		{"control", settings("https://s:8088", "abc\ndef-secret", ""), "control characters"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(c.s, destination.Env{HTTPClient: client})
			f := failure(t, err)
			require.Equal(t, destination.Permanent, f.Kind)
			require.Contains(t, f.Message, c.want)
			require.NotContains(t, f.Message, "def-secret")
		})
	}
}

func TestNewWithoutClient(t *testing.T) {
	snd, err := New(settings("https://splunk.example:8088", testToken, ""), destination.Env{})
	require.NoError(t, err)
	require.True(t, snd.(*sender).ownClient)
	require.NoError(t, snd.Close())
}

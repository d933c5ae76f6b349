package cloudlogging_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/destination/cloudlogging"
	"github.com/auditstream/auditstream/internal/destination/destinationtest"
	"github.com/auditstream/auditstream/internal/netguard"
)

const (
	testProject = "my-project"
	testEmail   = "streamer@my-project.iam.gserviceaccount.com"
)

type testKey struct {
	key *rsa.PrivateKey
	pem string
}

// testKeys are two service-account keys: the one the fake knows, and another.
var testKeys = sync.OnceValue(func() [2]testKey {
	var out [2]testKey
	for i := range out {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			panic(err)
		}
		out[i] = testKey{key: k, pem: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))}
	}
	return out
})

func goodKey() testKey  { return testKeys()[0] }
func otherKey() testKey { return testKeys()[1] }

func settings(t *testing.T, cfg map[string]any, key string) destination.Settings {
	t.Helper()
	raw, err := json.Marshal(cfg)
	require.NoError(t, err)
	return destination.Settings{ID: 7, Category: destination.CategoryGCP, Config: raw, SecretToken: key}
}

func defaultConfig() map[string]any {
	return map[string]any{"googleProjectIdName": testProject, "clientEmail": testEmail, "logIdName": "audit-events"}
}

// allowLoopback is the client of tests: the fake listens on loopback.
func allowLoopback() destination.Env {
	return destination.Env{HTTPClient: netguard.Policy{AllowPrivate: true}.HTTPClient()}
}

type setup struct {
	g   *fakeGoogle
	snd destination.Sender
}

func newSetup(t *testing.T, cfg map[string]any, key string) setup {
	t.Helper()
	g := newFakeGoogle(t, &goodKey().key.PublicKey, testEmail, testProject)
	snd, err := cloudlogging.NewWithEndpoints(settings(t, cfg, key), allowLoopback(), g.srv.URL, g.tokenURL())
	require.NoError(t, err)
	t.Cleanup(func() { _ = snd.Close() })
	return setup{g: g, snd: snd}
}

func event(id int64, createdAt time.Time) destination.Event {
	js := fmt.Sprintf(`{"id":"%d","author_id":1,"author_name":"Ada <admin>","entity_id":22,"entity_path":"grp/sub",`+
		`"entity_type":"Group","details":{"custom_message":"a & b","nested":{"n":[1,2.5,null,true]}},"ip_address":"203.0.113.9",`+
		`"target_id":3,"target_type":"User","target_details":"bob","created_at":%q,"event_type":"user_created"}`,
		id, createdAt.UTC().Format("2006-01-02T15:04:05.000Z"))
	return destination.Event{ID: id, Type: "user_created", CreatedAt: createdAt.UTC().Truncate(time.Millisecond), JSON: []byte(js)}
}

func failureOf(t *testing.T, err error) *destination.Failure {
	t.Helper()
	require.Error(t, err)
	var f *destination.Failure
	require.True(t, errors.As(err, &f), "not a *destination.Failure: %v", err)
	return f
}

// assertNoSecrets checks that nothing derived from the keys or an access token shows in err.
func assertNoSecrets(t *testing.T, err error, extra ...string) {
	t.Helper()
	texts := []string{err.Error(), fmt.Sprintf("%+v", err)}
	for e := errors.Unwrap(err); e != nil; e = errors.Unwrap(e) {
		texts = append(texts, e.Error())
	}
	var f *destination.Failure
	if errors.As(err, &f) {
		texts = append(texts, f.Message)
		if f.Err != nil {
			texts = append(texts, f.Err.Error())
		}
	}
	secrets := append([]string{"-----END", "ya29."}, extra...)
	for _, k := range testKeys() {
		for _, line := range strings.Fields(k.pem) {
			if len(line) >= 16 {
				secrets = append(secrets, line, line[:16])
			}
		}
	}
	for _, text := range texts {
		for _, s := range secrets {
			assert.NotContains(t, text, s)
		}
	}
}

func TestSingleEventEntry(t *testing.T) {
	t.Parallel()
	s := newSetup(t, defaultConfig(), goodKey().pem)
	created := time.Now().Add(-time.Minute).UTC().Truncate(time.Millisecond)
	ev := event(42, created)
	require.NoError(t, s.snd.Send(context.Background(), []destination.Event{ev}))

	st := s.g.stats()
	require.Len(t, st.bodies, 1)
	want := `{"entries":[{"logName":"projects/my-project/logs/audit-events","resource":{"type":"global"},"severity":"INFO",` +
		`"timestamp":"` + created.Format(time.RFC3339Nano) + `","insertId":"0000000000000000042","jsonPayload":` + string(ev.JSON) + `}]}`
	assert.Equal(t, want, string(st.bodies[0]))

	require.Len(t, st.entries, 1)
	e := st.entries[0]
	assert.Equal(t, "projects/my-project/logs/audit-events", e["logName"])
	assert.Equal(t, map[string]any{"type": "global"}, e["resource"])
	assert.Equal(t, "INFO", e["severity"])
	assert.Equal(t, "0000000000000000042", e["insertId"])
	assert.Equal(t, created.Format(time.RFC3339Nano), e["timestamp"])
	payload, err := json.Marshal(e["jsonPayload"])
	require.NoError(t, err)
	assert.JSONEq(t, string(ev.JSON), string(payload))
	assert.Len(t, e, 6, "no other fields")
	assert.Equal(t, 1, st.tokenRequests)
	assert.Empty(t, st.writeErrors)
	assert.Empty(t, st.tokenErrors)
}

func TestBatchEntriesInOrder(t *testing.T) {
	t.Parallel()
	cfg := defaultConfig()
	cfg["batch"] = map[string]any{"maxEvents": 100, "maxBytes": 1 << 20, "maxWaitMs": 1000}
	s := newSetup(t, cfg, goodKey().pem)
	now := time.Now()
	batch := []destination.Event{event(9, now), event(10, now), event(11, now.Add(time.Millisecond))}
	require.NoError(t, s.snd.Send(context.Background(), batch))

	st := s.g.stats()
	assert.Equal(t, 1, st.writeRequests)
	require.Len(t, st.entries, 3)
	for i, e := range st.entries {
		assert.Equal(t, "projects/my-project/logs/audit-events", e["logName"])
		assert.Equal(t, map[string]any{"type": "global"}, e["resource"])
		assert.Equal(t, "INFO", e["severity"])
		assert.Equal(t, fmt.Sprintf("%019d", batch[i].ID), e["insertId"])
		payload, err := json.Marshal(e["jsonPayload"])
		require.NoError(t, err)
		assert.JSONEq(t, string(batch[i].JSON), string(payload))
	}
	// Entries with equal timestamps sort by insertId as strings: zero-padding keeps 9 before 10.
	assert.Less(t, st.entries[0]["insertId"].(string), st.entries[1]["insertId"].(string))
}

func TestLogIDIsURLEscaped(t *testing.T) {
	t.Parallel()
	cfg := defaultConfig()
	cfg["logIdName"] = "gitlab/audit_events.v1"
	s := newSetup(t, cfg, goodKey().pem)
	require.NoError(t, s.snd.Send(context.Background(), []destination.Event{event(1, time.Now())}))
	st := s.g.stats()
	require.Len(t, st.entries, 1)
	assert.Equal(t, "projects/my-project/logs/gitlab%2Faudit_events.v1", st.entries[0]["logName"])
}

func TestDefaultLogID(t *testing.T) {
	t.Parallel()
	cfg := defaultConfig()
	delete(cfg, "logIdName")
	s := newSetup(t, cfg, goodKey().pem)
	require.NoError(t, s.snd.Send(context.Background(), []destination.Event{event(1, time.Now())}))
	st := s.g.stats()
	require.Len(t, st.entries, 1)
	assert.Equal(t, "projects/my-project/logs/"+destination.DefaultLogIDName, st.entries[0]["logName"])
}

func TestTimestampOnlyWhileLoggingKeepsIt(t *testing.T) {
	t.Parallel()
	s := newSetup(t, defaultConfig(), goodKey().pem)
	now := time.Now()
	batch := []destination.Event{
		event(1, now.Add(-48*time.Hour)),    // a day-long outage: still the event's time
		event(2, now.Add(-40*24*time.Hour)), // beyond the retention: Logging would drop it silently
		event(3, now.Add(2*time.Hour)),      // a producer's clock ahead
		{ID: 4, Type: "x", JSON: []byte(`{"id":"4"}`)},
	}
	require.NoError(t, s.snd.Send(context.Background(), batch))
	st := s.g.stats()
	require.Len(t, st.entries, 4, "every entry kept")
	assert.Zero(t, st.dropped)
	assert.Equal(t, batch[0].CreatedAt.Format(time.RFC3339Nano), st.entries[0]["timestamp"])
	for _, e := range st.entries[1:] {
		assert.NotContains(t, e, "timestamp")
		assert.Contains(t, e, "insertId")
	}
}

func TestTokenFetchedOnceAndReused(t *testing.T) {
	t.Parallel()
	s := newSetup(t, defaultConfig(), goodKey().pem)
	for i := range 3 {
		require.NoError(t, s.snd.Send(context.Background(), []destination.Event{event(int64(i+1), time.Now())}))
	}
	st := s.g.stats()
	assert.Equal(t, 1, st.tokenRequests)
	assert.Equal(t, 3, st.writeRequests)
	require.Len(t, st.auths, 3)
	assert.True(t, strings.HasPrefix(st.auths[0], "Bearer ya29.fake-1-"))
	assert.Equal(t, st.auths[0], st.auths[1])
	assert.Equal(t, st.auths[0], st.auths[2])
}

func TestTokenRefreshedAfterExpiry(t *testing.T) {
	t.Parallel()
	s := newSetup(t, defaultConfig(), goodKey().pem)
	// A token that expires within oauth2's 10-second margin counts as expired at once.
	s.g.setExpiresIn(1)
	require.NoError(t, s.snd.Send(context.Background(), []destination.Event{event(1, time.Now())}))
	require.NoError(t, s.snd.Send(context.Background(), []destination.Event{event(2, time.Now())}))
	st := s.g.stats()
	assert.Equal(t, 2, st.tokenRequests)
	assert.NotEqual(t, st.auths[0], st.auths[1])

	s.g.setExpiresIn(3600)
	require.NoError(t, s.snd.Send(context.Background(), []destination.Event{event(3, time.Now())}))
	require.NoError(t, s.snd.Send(context.Background(), []destination.Event{event(4, time.Now())}))
	st = s.g.stats()
	assert.Equal(t, 3, st.tokenRequests)
	assert.Equal(t, st.auths[2], st.auths[3])
	assert.Len(t, st.entries, 4)
}

func TestConcurrentSendsShareOneToken(t *testing.T) {
	t.Parallel()
	s := newSetup(t, defaultConfig(), goodKey().pem)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() { errs <- s.snd.Send(context.Background(), []destination.Event{event(int64(i+1), time.Now())}) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	st := s.g.stats()
	assert.Equal(t, 1, st.tokenRequests)
	assert.Len(t, st.entries, 20)
}

func TestRevokedTokenIsReplaced(t *testing.T) {
	t.Parallel()
	s := newSetup(t, defaultConfig(), goodKey().pem)
	require.NoError(t, s.snd.Send(context.Background(), []destination.Event{event(1, time.Now())}))
	s.g.revoke()
	require.NoError(t, s.snd.Send(context.Background(), []destination.Event{event(2, time.Now())}))
	st := s.g.stats()
	assert.Equal(t, 2, st.tokenRequests)
	assert.Equal(t, 3, st.writeRequests, "the refused write and its retry")
	assert.Len(t, st.entries, 2)
	// The new token is kept.
	require.NoError(t, s.snd.Send(context.Background(), []destination.Event{event(3, time.Now())}))
	assert.Equal(t, 2, s.g.stats().tokenRequests)
}

func TestCredentialsRejectedAfterFreshToken(t *testing.T) {
	t.Parallel()
	s := newSetup(t, defaultConfig(), goodKey().pem)
	s.g.setWriteHook(func(w http.ResponseWriter, _ *http.Request) bool {
		googleError(w, http.StatusUnauthorized, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
		return true
	})
	err := s.snd.Send(context.Background(), []destination.Event{event(1, time.Now())})
	f := failureOf(t, err)
	assert.Equal(t, destination.Permanent, f.Kind)
	assert.Equal(t, http.StatusUnauthorized, f.StatusCode)
	assert.Contains(t, f.Message, "credentials rejected")
	assert.Contains(t, f.Message, "UNAUTHENTICATED")
	assertNoSecrets(t, err)
	st := s.g.stats()
	assert.Equal(t, 2, st.tokenRequests, "a new token before giving up")
	assert.Equal(t, 2, st.writeRequests)
}

func TestWrongKeyIsPermanent(t *testing.T) {
	t.Parallel()
	s := newSetup(t, defaultConfig(), otherKey().pem)
	err := s.snd.Send(context.Background(), []destination.Event{event(1, time.Now())})
	f := failureOf(t, err)
	assert.Equal(t, destination.Permanent, f.Kind)
	assert.Equal(t, http.StatusBadRequest, f.StatusCode)
	assert.Contains(t, f.Message, "invalid_grant")
	assert.Contains(t, f.Message, "Invalid JWT Signature.")
	assert.Contains(t, f.Message, testEmail)
	assertNoSecrets(t, err)
	st := s.g.stats()
	assert.Equal(t, []string{"invalid_grant: Invalid JWT Signature."}, st.tokenErrors)
	assert.Zero(t, st.writeRequests)
}

func TestWrongEmailIsPermanent(t *testing.T) {
	t.Parallel()
	cfg := defaultConfig()
	cfg["clientEmail"] = "someone-else@my-project.iam.gserviceaccount.com"
	s := newSetup(t, cfg, goodKey().pem)
	err := s.snd.Send(context.Background(), []destination.Event{event(1, time.Now())})
	f := failureOf(t, err)
	assert.Equal(t, destination.Permanent, f.Kind)
	assert.Contains(t, f.Message, "account not found")
	assertNoSecrets(t, err)
}

func TestBadKeyFailsNew(t *testing.T) {
	t.Parallel()
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ecDER, err := x509.MarshalPKCS8PrivateKey(ecKey)
	require.NoError(t, err)
	ecPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}))
	good := goodKey().pem
	lines := strings.Split(strings.TrimSpace(good), "\n")
	garbled := strings.Join(append(append([]string{lines[0]}, "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="), lines[len(lines)-1]), "\n")
	keyFile, err := json.Marshal(map[string]string{"type": "service_account", "client_email": testEmail, "private_key": good})
	require.NoError(t, err)
	encrypted := strings.Replace(good, "PRIVATE KEY", "ENCRYPTED PRIVATE KEY", 2)

	for name, key := range map[string]string{
		"empty":             "",
		"GitLab's example":  "YOUR_PRIVATE_KEY",
		"JSON key file":     string(keyFile),
		"escaped newlines":  strings.ReplaceAll(good, "\n", `\n`),
		"encrypted":         encrypted,
		"EC key":            ecPEM,
		"garbled":           garbled,
		"certificate block": strings.ReplaceAll(good, "PRIVATE KEY", "CERTIFICATE"),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			snd, err := cloudlogging.NewWithEndpoints(settings(t, defaultConfig(), key), allowLoopback(), "http://127.0.0.1:1", "http://127.0.0.1:1/token")
			assert.Nil(t, snd)
			f := failureOf(t, err)
			assert.Equal(t, destination.Permanent, f.Kind)
			assert.Contains(t, f.Message, "private key")
			assertNoSecrets(t, err, "YOUR_PRIVATE_KEY", "QUJDREVGR0hJSktM")
		})
	}
}

func TestKeyForms(t *testing.T) {
	t.Parallel()
	k := goodKey()
	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k.key)}))
	for name, key := range map[string]string{
		"PKCS #8":             k.pem,
		"PKCS #1":             pkcs1,
		"surrounding spaces":  "\n  " + k.pem + "\n\n",
		"CRLF line endings":   strings.ReplaceAll(k.pem, "\n", "\r\n"),
		"no final line break": strings.TrimSpace(k.pem),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newSetup(t, defaultConfig(), key)
			require.NoError(t, s.snd.Send(context.Background(), []destination.Event{event(1, time.Now())}))
		})
	}
}

func TestNewConfigErrors(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		category string
		cfg      string
		want     string
	}{
		"wrong category":  {destination.CategoryHTTP, `{"googleProjectIdName":"my-project","clientEmail":"a@b.c"}`, "cannot deliver"},
		"not JSON":        {destination.CategoryGCP, `{`, "is not valid JSON"},
		"no project":      {destination.CategoryGCP, `{"clientEmail":"a@b.c"}`, "config.googleProjectIdName: is required"},
		"project w slash": {destination.CategoryGCP, `{"googleProjectIdName":"a/b","clientEmail":"a@b.c"}`, "config.googleProjectIdName: must be at least 6 characters long"},
		"no email":        {destination.CategoryGCP, `{"googleProjectIdName":"my-project"}`, "config.clientEmail: is required"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := destination.Settings{Category: tc.category, Config: []byte(tc.cfg), SecretToken: goodKey().pem}
			snd, err := cloudlogging.New(s, allowLoopback())
			assert.Nil(t, snd)
			f := failureOf(t, err)
			assert.Equal(t, destination.Permanent, f.Kind)
			assert.Contains(t, f.Message, tc.want)
			assertNoSecrets(t, err)
		})
	}
}

func TestWriteClassification(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		status     int
		code       string
		retryAfter string
		details    []any
		kind       destination.FailureKind
		wantAfter  time.Duration
		wantText   string
	}{
		{"429", 429, "RESOURCE_EXHAUSTED", "", nil, destination.Throttled, 0, "RESOURCE_EXHAUSTED"},
		{"429 RetryInfo", 429, "RESOURCE_EXHAUSTED", "", []any{retryInfo(30 * time.Second)}, destination.Throttled, 30 * time.Second, "Quota exceeded"},
		{"429 Retry-After", 429, "RESOURCE_EXHAUSTED", "12", nil, destination.Throttled, 12 * time.Second, "429 Too Many Requests"},
		{"503", 503, "UNAVAILABLE", "", nil, destination.Retryable, 0, "UNAVAILABLE"},
		{"503 Retry-After", 503, "UNAVAILABLE", "7", nil, destination.Throttled, 7 * time.Second, "UNAVAILABLE"},
		{"500", 500, "INTERNAL", "", nil, destination.Retryable, 0, "INTERNAL"},
		{"504", 504, "DEADLINE_EXCEEDED", "", nil, destination.Retryable, 0, "DEADLINE_EXCEEDED"},
		{"400", 400, "INVALID_ARGUMENT", "", nil, destination.Permanent, 0, "INVALID_ARGUMENT"},
		{"403", 403, "PERMISSION_DENIED", "", nil, destination.Permanent, 0, "roles/logging.logWriter"},
		{"404", 404, "NOT_FOUND", "", nil, destination.Permanent, 0, "project my-project was not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSetup(t, defaultConfig(), goodKey().pem)
			s.g.setWriteHook(func(w http.ResponseWriter, _ *http.Request) bool {
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				googleError(w, tc.status, tc.code, "Quota exceeded or whatever Google says.", tc.details...)
				return true
			})
			err := s.snd.Send(context.Background(), []destination.Event{event(1, time.Now())})
			f := failureOf(t, err)
			assert.Equal(t, tc.kind, f.Kind, f.Message)
			assert.Equal(t, tc.status, f.StatusCode)
			assert.Equal(t, tc.wantAfter, f.RetryAfter)
			assert.Contains(t, f.Message, tc.wantText)
			assertNoSecrets(t, err)
			assert.Equal(t, 1, s.g.stats().writeRequests, "no retry inside Send")
		})
	}
}

func TestProjectWithoutPermission(t *testing.T) {
	t.Parallel()
	cfg := defaultConfig()
	cfg["googleProjectIdName"] = "someone-elses"
	s := newSetup(t, cfg, goodKey().pem)
	err := s.snd.Send(context.Background(), []destination.Event{event(1, time.Now())})
	f := failureOf(t, err)
	assert.Equal(t, destination.Permanent, f.Kind)
	assert.Equal(t, http.StatusForbidden, f.StatusCode)
	assert.Contains(t, f.Message, "PERMISSION_DENIED")
	assert.Contains(t, f.Message, "logging.logEntries.create")
	assert.Contains(t, f.Message, testEmail)
}

func TestTokenEndpointClassification(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		status     int
		body       string
		retryAfter string
		kind       destination.FailureKind
		wantAfter  time.Duration
	}{
		{"503", 503, `{"error":"internal_failure"}`, "", destination.Retryable, 0},
		{"500 HTML", 500, `<html>oops</html>`, "", destination.Retryable, 0},
		{"429", 429, `{"error":"rate_limit_exceeded"}`, "5", destination.Throttled, 5 * time.Second},
		{"401 invalid_client", 401, `{"error":"invalid_client","error_description":"The OAuth client was not found."}`, "", destination.Permanent, 0},
		{"400 invalid_grant", 400, `{"error":"invalid_grant","error_description":"Invalid grant: account not found"}`, "", destination.Permanent, 0},
		{"200 not JSON", 200, `not json`, "", destination.Retryable, 0},
		{"200 no token", 200, `{"token_type":"Bearer","expires_in":3600}`, "", destination.Retryable, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSetup(t, defaultConfig(), goodKey().pem)
			s.g.setTokenHook(func(w http.ResponseWriter, _ *http.Request) bool {
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
				return true
			})
			err := s.snd.Send(context.Background(), []destination.Event{event(1, time.Now())})
			f := failureOf(t, err)
			assert.Equal(t, tc.kind, f.Kind, f.Message)
			assert.Equal(t, tc.wantAfter, f.RetryAfter)
			assert.Contains(t, f.Message, "token")
			assertNoSecrets(t, err)
			assert.Zero(t, s.g.stats().writeRequests)
		})
	}
}

func TestSSRFGuardOnWrite(t *testing.T) {
	t.Parallel()
	g := newFakeGoogle(t, &goodKey().key.PublicKey, testEmail, testProject)
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skip("cannot listen on 127.0.0.2:", err)
	}
	other := httptest.NewUnstartedServer(g.srv.Config.Handler)
	_ = other.Listener.Close()
	other.Listener = ln
	other.Start()
	defer other.Close()

	// The token endpoint is allowed; the logging endpoint is not.
	env := destination.Env{HTTPClient: netguard.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}.HTTPClient()}
	snd, err := cloudlogging.NewWithEndpoints(settings(t, defaultConfig(), goodKey().pem), env, other.URL, g.tokenURL())
	require.NoError(t, err)
	defer snd.Close()
	err = snd.Send(context.Background(), []destination.Event{event(1, time.Now())})
	f := failureOf(t, err)
	assert.Equal(t, destination.Permanent, f.Kind)
	assert.ErrorIs(t, err, netguard.ErrBlocked)
	assert.Contains(t, f.Message, "127.0.0.2")
	st := g.stats()
	assert.Equal(t, 1, st.tokenRequests)
	assert.Zero(t, st.writeRequests)
}

func TestConnectionRefusedIsRetryable(t *testing.T) {
	t.Parallel()
	g := newFakeGoogle(t, &goodKey().key.PublicKey, testEmail, testProject)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())
	snd, err := cloudlogging.NewWithEndpoints(settings(t, defaultConfig(), goodKey().pem), allowLoopback(), dead, g.tokenURL())
	require.NoError(t, err)
	defer snd.Close()
	f := failureOf(t, snd.Send(context.Background(), []destination.Event{event(1, time.Now())}))
	assert.Equal(t, destination.Retryable, f.Kind)
	assert.Contains(t, f.Message, "cannot reach Cloud Logging")
	assert.Contains(t, f.Message, "connection refused")

	snd2, err := cloudlogging.NewWithEndpoints(settings(t, defaultConfig(), goodKey().pem), allowLoopback(), g.srv.URL, dead+"/token")
	require.NoError(t, err)
	defer snd2.Close()
	f = failureOf(t, snd2.Send(context.Background(), []destination.Event{event(1, time.Now())}))
	assert.Equal(t, destination.Retryable, f.Kind)
	assert.Contains(t, f.Message, "cannot get an access token")
	assert.Contains(t, f.Message, "connection refused")
}

// blockTokens makes the fake's token endpoint wait until release is closed (or the request is
// abandoned); entered receives once per request.
func blockTokens(g *fakeGoogle) (entered chan struct{}, release func()) {
	entered = make(chan struct{}, 10)
	ch := make(chan struct{})
	g.setTokenHook(func(_ http.ResponseWriter, r *http.Request) bool {
		entered <- struct{}{}
		select {
		case <-ch:
			return false
		case <-r.Context().Done():
			return true
		}
	})
	var once sync.Once
	return entered, func() { once.Do(func() { close(ch) }) }
}

func TestContextCanceledWhileFetchingToken(t *testing.T) {
	t.Parallel()
	s := newSetup(t, defaultConfig(), goodKey().pem)
	entered, release := blockTokens(s.g)
	defer release()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.snd.Send(ctx, []destination.Event{event(1, time.Now())}) }()
	<-entered
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)

	// The fetch goes on; the next Send gets its token.
	release()
	require.NoError(t, s.snd.Send(context.Background(), []destination.Event{event(2, time.Now())}))
	st := s.g.stats()
	assert.Equal(t, 1, st.tokenRequests)
	assert.Len(t, st.entries, 1)
}

func TestCloseAbandonsTokenFetch(t *testing.T) {
	t.Parallel()
	s := newSetup(t, defaultConfig(), goodKey().pem)
	entered, release := blockTokens(s.g)
	defer release()
	done := make(chan error, 1)
	go func() { done <- s.snd.Send(context.Background(), []destination.Event{event(1, time.Now())}) }()
	<-entered
	require.NoError(t, s.snd.Close())
	f := failureOf(t, <-done)
	assert.Equal(t, destination.Retryable, f.Kind)
	assert.Contains(t, f.Message, "cannot get an access token")
}

func TestEmptyBatchSendsNothing(t *testing.T) {
	t.Parallel()
	s := newSetup(t, defaultConfig(), goodKey().pem)
	require.NoError(t, s.snd.Send(context.Background(), nil))
	st := s.g.stats()
	assert.Zero(t, st.tokenRequests)
	assert.Zero(t, st.writeRequests)
}

func TestCanceledContextSendsNothing(t *testing.T) {
	t.Parallel()
	s := newSetup(t, defaultConfig(), goodKey().pem)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, s.snd.Send(ctx, []destination.Event{event(1, time.Now())}), context.Canceled)
	assert.Zero(t, s.g.stats().tokenRequests)
}

// TestFakeIsStrict checks the fake refuses what Google refuses, so that the tests above mean
// something.
func TestFakeIsStrict(t *testing.T) {
	t.Parallel()
	s := newSetup(t, defaultConfig(), goodKey().pem)
	require.NoError(t, s.snd.Send(context.Background(), []destination.Event{event(1, time.Now())}))
	auth := s.g.stats().auths[0]
	ts := time.Now().UTC().Format(time.RFC3339Nano)

	post := func(auth, contentType, body string) (int, string) {
		req, err := http.NewRequest(http.MethodPost, s.g.srv.URL+"/v2/entries:write", strings.NewReader(body))
		require.NoError(t, err)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		req.Header.Set("Content-Type", contentType)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var ge struct {
			Error struct {
				Code   int    `json:"code"`
				Status string `json:"status"`
			} `json:"error"`
		}
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(resp.Body)
		_ = json.Unmarshal(buf.Bytes(), &ge)
		if resp.StatusCode != http.StatusOK {
			assert.Equal(t, resp.StatusCode, ge.Error.Code, buf.String())
		}
		return resp.StatusCode, ge.Error.Status
	}
	entry := func(fields string) string {
		return `{"entries":[{"logName":"projects/my-project/logs/x","resource":{"type":"global"}` + fields + `}]}`
	}

	for name, tc := range map[string]struct {
		body   string
		status int
	}{
		"ours":                     {entry(`,"severity":"INFO","timestamp":"` + ts + `","insertId":"1","jsonPayload":{"a":1}`), 200},
		"snake_case names":         {`{"entries":[{"log_name":"projects/my-project/logs/x","resource":{"type":"global"},"json_payload":{}}]}`, 200},
		"defaults from request":    {`{"logName":"projects/my-project/logs/x","resource":{"type":"global"},"entries":[{"textPayload":"t"}]}`, 200},
		"numeric severity":         {entry(`,"severity":200`), 200},
		"no payload":               {entry(``), 200},
		"unknown entry field":      {entry(`,"jsonPayload":{},"payload":{}`), 400},
		"unknown request field":    {`{"entries":[],"extra":1}`, 400},
		"field name case":          {`{"entries":[{"LogName":"projects/my-project/logs/x","resource":{"type":"global"}}]}`, 400},
		"no entries":               {`{"entries":[]}`, 400},
		"not JSON":                 {`{"entries":`, 400},
		"bad severity":             {entry(`,"severity":"information"`), 400},
		"two payloads":             {entry(`,"jsonPayload":{},"textPayload":"x"`), 400},
		"array jsonPayload":        {entry(`,"jsonPayload":[1]`), 400},
		"unescaped slash in logId": {`{"entries":[{"logName":"projects/my-project/logs/a/b","resource":{"type":"global"}}]}`, 400},
		"bad logId character":      {`{"entries":[{"logName":"projects/my-project/logs/a%20b","resource":{"type":"global"}}]}`, 400},
		"no resource":              {`{"entries":[{"logName":"projects/my-project/logs/x"}]}`, 400},
		"resource without type":    {`{"entries":[{"logName":"projects/my-project/logs/x","resource":{"labels":{}}}]}`, 400},
		"bad timestamp":            {entry(`,"timestamp":"yesterday"`), 400},
		"timestamp in 2 days":      {entry(`,"timestamp":"` + time.Now().Add(48*time.Hour).UTC().Format(time.RFC3339) + `"`), 400},
		"insertId number":          {entry(`,"insertId":1`), 400},
		"other project":            {`{"entries":[{"logName":"projects/not-mine/logs/x","resource":{"type":"global"}}]}`, 403},
	} {
		t.Run(name, func(t *testing.T) {
			code, status := post(auth, "application/json", tc.body)
			assert.Equal(t, tc.status, code)
			switch tc.status {
			case 400:
				assert.Equal(t, "INVALID_ARGUMENT", status)
			case 403:
				assert.Equal(t, "PERMISSION_DENIED", status)
			}
		})
	}
	t.Run("no token", func(t *testing.T) {
		code, status := post("", "application/json", entry(""))
		assert.Equal(t, 401, code)
		assert.Equal(t, "UNAUTHENTICATED", status)
	})
	t.Run("unknown token", func(t *testing.T) {
		code, _ := post("Bearer ya29.made-up", "application/json", entry(""))
		assert.Equal(t, 401, code)
	})
	t.Run("content type", func(t *testing.T) {
		code, _ := post(auth, "text/plain", entry(""))
		assert.Equal(t, 400, code)
	})
	t.Run("old timestamp is dropped", func(t *testing.T) {
		before := s.g.stats().dropped
		code, _ := post(auth, "application/json", entry(`,"timestamp":"`+time.Now().Add(-40*24*time.Hour).UTC().Format(time.RFC3339)+`"`))
		assert.Equal(t, 200, code)
		assert.Equal(t, before+1, s.g.stats().dropped)
	})
}

// An answer that is not a Google error document (a proxy's page) is shown only as its status
// and a short excerpt without markup (issue 13, item 5).
func TestForeignErrorBodyIsExcerpted(t *testing.T) {
	t.Parallel()
	g := newFakeGoogle(t, &goodKey().key.PublicKey, testEmail, testProject)
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("<html><head><title>502 Bad Gateway</title></head><body><h1>proxy.internal</h1>" + strings.Repeat("x", 500) + "</body></html>"))
	}))
	defer page.Close()
	snd, err := cloudlogging.NewWithEndpoints(settings(t, defaultConfig(), goodKey().pem), allowLoopback(), page.URL, g.tokenURL())
	require.NoError(t, err)
	defer snd.Close()
	f := failureOf(t, snd.Send(context.Background(), []destination.Event{event(1, time.Now())}))
	assert.True(t, strings.HasPrefix(f.Message, "502 Bad Gateway: 502 Bad Gateway proxy.internal"), f.Message)
	assert.NotContains(t, f.Message, "<")
	assert.LessOrEqual(t, len(f.Message), len("502 Bad Gateway: ")+destination.MessageExcerptLen)
}

// TestFormatOCSF: with format ocsf, each entry's jsonPayload is the event's OCSF JSON; the
// entry's other fields stay, and the test server checks the write against Google's schema.
func TestFormatOCSF(t *testing.T) {
	t.Parallel()
	cfg := defaultConfig()
	cfg["format"] = "ocsf"
	cfg["batch"] = map[string]any{"maxEvents": 100}
	s := newSetup(t, cfg, goodKey().pem)
	batch := []destination.Event{destinationtest.Event(1, "user_created"), destinationtest.Event(2, "group_created")}
	require.NoError(t, s.snd.Send(context.Background(), batch))

	st := s.g.stats()
	require.Empty(t, st.writeErrors)
	require.Len(t, st.entries, 2)
	for i, e := range st.entries {
		assert.Equal(t, fmt.Sprintf("%019d", batch[i].ID), e["insertId"])
		payload, err := json.Marshal(e["jsonPayload"])
		require.NoError(t, err)
		assert.JSONEq(t, string(destinationtest.Encoded(t, "ocsf", batch[i])), string(payload))
	}
	assert.Contains(t, string(st.bodies[0]), `"jsonPayload":`+string(destinationtest.Encoded(t, "ocsf", batch[0]))+`}`)
}

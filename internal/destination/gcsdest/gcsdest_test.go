package gcsdest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"google.golang.org/api/iterator"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/destination/objectstore"
	"github.com/auditstream/auditstream/internal/netguard"
)

const bucket = "audit-bucket"

// newFakeGCS starts fake-gcs-server on 127.0.0.1 over http, with bucket.
func newFakeGCS(t *testing.T) *fakestorage.Server {
	t.Helper()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	srv.CreateBucket(bucket)
	return srv
}

// localEnv is an Env whose client may reach loopback addresses (the test servers).
func localEnv() destination.Env {
	return destination.Env{HTTPClient: netguard.Policy{AllowPrivate: true}.HTTPClient()}
}

func settings(cfg string, key string) destination.Settings {
	return destination.Settings{ID: 1, Category: destination.CategoryGCS, Config: []byte(cfg), SecretToken: key}
}

func startSender(t *testing.T, s destination.Settings, env destination.Env, endpoint string) destination.Sender {
	t.Helper()
	snd, err := NewWithEndpoint(s, env, endpoint)
	if err != nil {
		t.Fatalf("NewWithEndpoint: %v", err)
	}
	t.Cleanup(func() { _ = snd.Close() })
	return snd
}

var baseTime = time.Date(2026, 3, 7, 9, 5, 1, 234e6, time.UTC)

func event(id int64) destination.Event {
	entity := []string{"Group", "Project", "User"}[id%3]
	return destination.Event{
		ID:        id,
		Type:      "event_type_" + fmt.Sprint(id%2),
		CreatedAt: baseTime.Add(time.Duration(id) * time.Second),
		JSON:      fmt.Appendf(nil, `{"id":%d,"entity_type":%q,"details":{"n":%d}}`, id, entity, id*7),
	}
}

func events(from, to int64) []destination.Event {
	var out []destination.Event
	for id := from; id <= to; id++ {
		out = append(out, event(id))
	}
	return out
}

// listObjects lists the objects of bucket with the storage client.
func listObjects(t *testing.T, c *storage.Client, prefix string) []*storage.ObjectAttrs {
	t.Helper()
	var out []*storage.ObjectAttrs
	it := c.Bucket(bucket).Objects(context.Background(), &storage.Query{Prefix: prefix})
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

// readObject reads an object as stored (not decompressed) with the storage client.
func readObject(t *testing.T, c *storage.Client, name string) []byte {
	t.Helper()
	r, err := c.Bucket(bucket).Object(name).ReadCompressed(true).NewReader(context.Background())
	if err != nil {
		t.Fatalf("reading %s: %v", name, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gunzipLines(t *testing.T, b []byte) []string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(plain))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if !bytes.HasSuffix(plain, []byte("\n")) {
		t.Errorf("NDJSON does not end with a newline")
	}
	return lines
}

func TestSingleEvents(t *testing.T) {
	for _, prefix := range []string{"", "audit/streams/"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			srv := newFakeGCS(t)
			cfg := fmt.Sprintf(`{"bucketName":%q}`, bucket)
			if prefix != "" {
				cfg = fmt.Sprintf(`{"bucketName":%q,"prefix":%q}`, bucket, prefix)
			}
			snd := startSender(t, settings(cfg, ""), localEnv(), srv.URL())
			ctx := context.Background()
			evs := events(1, 6)
			for _, e := range evs[:4] {
				if err := snd.Send(ctx, []destination.Event{e}); err != nil {
					t.Fatalf("Send(%d): %v", e.ID, err)
				}
			}
			// Several events in one Send: one object each.
			if err := snd.Send(ctx, evs[4:]); err != nil {
				t.Fatalf("Send(5, 6): %v", err)
			}

			c := srv.Client()
			objs := listObjects(t, c, "")
			if len(objs) != len(evs) {
				t.Fatalf("%d objects, want %d", len(objs), len(evs))
			}
			byName := map[string]*storage.ObjectAttrs{}
			for _, a := range objs {
				byName[a.Name] = a
			}
			for _, e := range evs {
				key := objectstore.EventKey(prefix, e)
				if !strings.HasPrefix(key, prefix) {
					t.Fatalf("key %q without prefix", key)
				}
				a, ok := byName[key]
				if !ok {
					t.Fatalf("no object %q; have %v", key, names(objs))
				}
				if a.ContentType != objectstore.EventContentType {
					t.Errorf("%s: Content-Type %q, want %q", key, a.ContentType, objectstore.EventContentType)
				}
				if a.ContentEncoding != "" {
					t.Errorf("%s: Content-Encoding %q, want none", key, a.ContentEncoding)
				}
				if got := readObject(t, c, key); !bytes.Equal(got, e.JSON) {
					t.Errorf("%s: content %q, want %q", key, got, e.JSON)
				}
			}
			if prefix == "" {
				if _, ok := byName["group/2026/03/event_type_1_3_1772874304234.json"]; !ok {
					t.Errorf("GitLab's key layout missing: %v", names(objs))
				}
			}
		})
	}
}

func names(objs []*storage.ObjectAttrs) []string {
	var out []string
	for _, a := range objs {
		out = append(out, a.Name)
	}
	return out
}

func TestBatches(t *testing.T) {
	for _, prefix := range []string{"", "p/"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			srv := newFakeGCS(t)
			cfg := fmt.Sprintf(`{"bucketName":%q,"batch":{"maxEvents":10,"maxBytes":1048576,"maxWaitMs":100}}`, bucket)
			if prefix != "" {
				cfg = fmt.Sprintf(`{"bucketName":%q,"prefix":%q,"batch":{"maxEvents":10}}`, bucket, prefix)
			}
			snd := startSender(t, settings(cfg, ""), localEnv(), srv.URL())
			batches := [][]destination.Event{events(1, 10), events(11, 20), events(21, 21), events(22, 25)}
			for _, b := range batches {
				if err := snd.Send(context.Background(), b); err != nil {
					t.Fatalf("Send(%d-%d): %v", b[0].ID, b[len(b)-1].ID, err)
				}
			}

			c := srv.Client()
			objs := listObjects(t, c, "")
			if len(objs) != len(batches) {
				t.Fatalf("%d objects (%v), want %d", len(objs), names(objs), len(batches))
			}
			seen := map[int64]int{}
			for _, b := range batches {
				key := objectstore.BatchKey(prefix, b)
				attrs, err := c.Bucket(bucket).Object(key).Attrs(context.Background())
				if err != nil {
					t.Fatalf("%s: %v (have %v)", key, err, names(objs))
				}
				if !strings.HasPrefix(key, prefix+"batches/") {
					t.Errorf("key %q", key)
				}
				if attrs.ContentType != objectstore.BatchContentType || attrs.ContentEncoding != objectstore.BatchEncoding {
					t.Errorf("%s: Content-Type %q, Content-Encoding %q", key, attrs.ContentType, attrs.ContentEncoding)
				}
				raw := readObject(t, c, key)
				if !bytes.Equal(raw, objectstore.GzipNDJSON(b)) {
					t.Errorf("%s: stored bytes differ from GzipNDJSON", key)
				}
				lines := gunzipLines(t, raw)
				if len(lines) != len(b) {
					t.Fatalf("%s: %d lines, want %d", key, len(lines), len(b))
				}
				for i, line := range lines {
					if line != string(b[i].JSON) {
						t.Errorf("%s line %d = %q, want %q", key, i, line, b[i].JSON)
					}
					var v struct{ ID int64 }
					if err := json.Unmarshal([]byte(line), &v); err != nil {
						t.Fatalf("line %d: %v", i, err)
					}
					seen[v.ID]++
				}
			}
			for id := int64(1); id <= 25; id++ {
				if seen[id] != 1 {
					t.Errorf("event %d seen %d times", id, seen[id])
				}
			}
			if len(seen) != 25 {
				t.Errorf("%d events, want 25", len(seen))
			}
		})
	}
}

// A batched object read without ReadCompressed is served decompressed: GCS's transcoding.
func TestBatchTranscoded(t *testing.T) {
	srv := newFakeGCS(t)
	snd := startSender(t, settings(`{"bucketName":"audit-bucket","batch":{}}`, ""), localEnv(), srv.URL())
	b := events(1, 3)
	if err := snd.Send(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	r, err := srv.Client().Bucket(bucket).Object(objectstore.BatchKey("", b)).NewReader(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, _ := io.ReadAll(r)
	want := string(b[0].JSON) + "\n" + string(b[1].JSON) + "\n" + string(b[2].JSON) + "\n"
	if string(got) != want {
		t.Errorf("decompressed = %q, want %q", got, want)
	}
}

func TestResendSameKey(t *testing.T) {
	for _, cfg := range []string{`{"bucketName":"audit-bucket"}`, `{"bucketName":"audit-bucket","batch":{"maxEvents":5}}`} {
		t.Run(cfg, func(t *testing.T) {
			srv := newFakeGCS(t)
			snd := startSender(t, settings(cfg, ""), localEnv(), srv.URL())
			batch := events(1, 1)
			if strings.Contains(cfg, "batch") {
				batch = events(1, 5)
			}
			ctx := context.Background()
			if err := snd.Send(ctx, batch); err != nil {
				t.Fatal(err)
			}
			c := srv.Client()
			before := listObjects(t, c, "")
			if len(before) != 1 {
				t.Fatalf("%d objects after the first Send", len(before))
			}
			for range 3 {
				if err := snd.Send(ctx, batch); err != nil {
					t.Fatalf("re-Send: %v", err)
				}
			}
			after := listObjects(t, c, "")
			if len(after) != 1 || after[0].Name != before[0].Name {
				t.Fatalf("objects after re-sending: %v, want %v", names(after), names(before))
			}
			if after[0].Generation != before[0].Generation {
				t.Errorf("the object was rewritten: generation %d, then %d", before[0].Generation, after[0].Generation)
			}
			// A second sender (another process after a restart) delivers the same again.
			snd2 := startSender(t, settings(cfg, ""), localEnv(), srv.URL())
			if err := snd2.Send(ctx, batch); err != nil {
				t.Fatalf("Send from a second sender: %v", err)
			}
			if n := len(listObjects(t, c, "")); n != 1 {
				t.Errorf("%d objects", n)
			}
		})
	}
}

func TestConcurrentSendsAndClose(t *testing.T) {
	srv := newFakeGCS(t)
	snd, err := NewWithEndpoint(settings(`{"bucketName":"audit-bucket","prefix":"c/"}`, ""), localEnv(), srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for g := range 8 {
		wg.Go(func() {
			for i := range 5 {
				id := int64(g*5 + i + 1)
				if err := snd.Send(context.Background(), []destination.Event{event(id)}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(listObjects(t, srv.Client(), "c/")); n != 40 {
		t.Errorf("%d objects, want 40", n)
	}
	if err := snd.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := snd.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := snd.Send(context.Background(), events(100, 100)); err == nil {
		t.Error("Send after Close succeeded")
	}
}

func TestEmptyAndCanceled(t *testing.T) {
	srv := newFakeGCS(t)
	snd := startSender(t, settings(`{"bucketName":"audit-bucket"}`, ""), localEnv(), srv.URL())
	if err := snd.Send(context.Background(), nil); err != nil {
		t.Errorf("Send(nil) = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := snd.Send(ctx, events(1, 1)); !errors.Is(err, context.Canceled) {
		t.Errorf("Send with a canceled context = %v", err)
	}
}

func failureOf(t *testing.T, err error) *destination.Failure {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	var f *destination.Failure
	if !errors.As(err, &f) {
		t.Fatalf("error %T %v is not a *destination.Failure", err, err)
	}
	return f
}

func TestMissingBucket(t *testing.T) {
	srv := newFakeGCS(t)
	for _, cfg := range []string{`{"bucketName":"no-such-bucket"}`, `{"bucketName":"no-such-bucket","batch":{}}`} {
		snd := startSender(t, settings(cfg, ""), localEnv(), srv.URL())
		f := failureOf(t, snd.Send(context.Background(), events(1, 2)))
		if f.Kind != destination.Permanent || f.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %v, want permanent 404", cfg, f)
		}
		if !strings.Contains(f.Message, `bucket "no-such-bucket" does not exist`) {
			t.Errorf("message %q", f.Message)
		}
	}
}

// gcsError answers like the JSON API does.
func gcsError(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"code": code, "message": msg,
		"errors": []any{map[string]any{"message": msg, "domain": "global", "reason": reason}},
	}})
}

func TestErrorResponses(t *testing.T) {
	cases := []struct {
		status     int
		retryAfter string
		reason     string
		msg        string
		kind       destination.FailureKind
		wantAfter  time.Duration
		wantMsg    string
	}{
		{503, "", "backendError", "Backend Error", destination.Retryable, 0, "Backend Error"},
		{503, "7", "backendError", "Backend Error", destination.Throttled, 7 * time.Second, "Backend Error"},
		{500, "", "internalError", "Internal Error", destination.Retryable, 0, "Internal Error"},
		{502, "", "", "Bad Gateway", destination.Retryable, 0, "Bad Gateway"},
		{429, "", "rateLimitExceeded", "The rate of change requests to the object is too high.", destination.Throttled, 0, "rate of change"},
		{429, "3", "rateLimitExceeded", "slow down", destination.Throttled, 3 * time.Second, "slow down"},
		{408, "", "requestTimeout", "Request Timeout", destination.Retryable, 0, "Request Timeout"},
		{401, "", "authError", "Invalid Credentials", destination.Permanent, 0, "check the service account's key: Invalid Credentials"},
		{403, "", "forbidden", "sa@p.iam.gserviceaccount.com does not have storage.objects.create access", destination.Permanent, 0, `storage.objects.create on bucket "audit-bucket"`},
		{404, "", "notFound", "The specified bucket does not exist.", destination.Permanent, 0, `bucket "audit-bucket" does not exist: The specified bucket does not exist.`},
		{400, "", "invalid", "Invalid object name", destination.Permanent, 0, "Invalid object name"},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%d_%s", tc.status, tc.retryAfter), func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				_, _ = io.Copy(io.Discard, r.Body)
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				gcsError(w, tc.status, tc.reason, tc.msg)
			}))
			defer srv.Close()
			snd := startSender(t, settings(`{"bucketName":"audit-bucket"}`, ""), localEnv(), srv.URL)
			f := failureOf(t, snd.Send(context.Background(), events(1, 1)))
			if f.Kind != tc.kind || f.StatusCode != tc.status || f.RetryAfter != tc.wantAfter {
				t.Errorf("failure %v (retry after %v), want %v HTTP %d after %v", f, f.RetryAfter, tc.kind, tc.status, tc.wantAfter)
			}
			if !strings.Contains(f.Message, tc.wantMsg) {
				t.Errorf("message %q does not contain %q", f.Message, tc.wantMsg)
			}
			if n := calls.Load(); n != 1 {
				t.Errorf("%d requests: the library retried", n)
			}
		})
	}
}

func TestPreconditionFailedIsSuccess(t *testing.T) {
	var query url.Values
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		query = r.URL.Query()
		_, _ = io.Copy(io.Discard, r.Body)
		gcsError(w, http.StatusPreconditionFailed, "conditionNotMet", "At least one of the pre-conditions you specified did not hold.")
	}))
	defer srv.Close()
	snd := startSender(t, settings(`{"bucketName":"audit-bucket"}`, ""), localEnv(), srv.URL)
	if err := snd.Send(context.Background(), events(1, 1)); err != nil {
		t.Errorf("Send = %v, want nil for an object that exists", err)
	}
	if query.Get("ifGenerationMatch") != "0" {
		t.Errorf("upload query %v: no ifGenerationMatch=0", query)
	}
}

func TestNetworkErrorRetryable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	snd := startSender(t, settings(`{"bucketName":"audit-bucket"}`, ""), localEnv(), addr) // host:port form
	f := failureOf(t, snd.Send(context.Background(), events(1, 1)))
	if f.Kind != destination.Retryable || !strings.Contains(f.Message, "connection refused") {
		t.Errorf("failure %v, want retryable connection refused", f)
	}
}

// A key whose token_uri is an address the guard refuses: the token request is refused.
func TestSSRFGuardTokenURI(t *testing.T) {
	key, _ := newServiceAccountKey(t, "https://127.0.0.1:1/token")
	srv := newFakeGCS(t)
	env := destination.Env{HTTPClient: netguard.Policy{}.HTTPClient()}
	snd := startSender(t, settings(`{"bucketName":"audit-bucket"}`, key), env, srv.URL())
	err := snd.Send(context.Background(), events(1, 1))
	f := failureOf(t, err)
	if f.Kind != destination.Permanent || !errors.Is(err, netguard.ErrBlocked) {
		t.Errorf("failure %v, want permanent, wrapping netguard.ErrBlocked", err)
	}
	if !strings.Contains(f.Message, "token_uri") || !strings.Contains(f.Message, "address 127.0.0.1 is loopback") {
		t.Errorf("message %q", f.Message)
	}
}

func TestBadSettings(t *testing.T) {
	const marker = "SUPERSECRETKEYMATERIAL"
	goodKey, _ := newServiceAccountKey(t, "")
	var kf map[string]any
	_ = json.Unmarshal([]byte(goodKey), &kf)
	withField := func(k string, v any) string {
		m := map[string]any{}
		for a, b := range kf {
			m[a] = b
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	badPEM := "-----BEGIN PRIVATE KEY-----\n" + base64.StdEncoding.EncodeToString([]byte(marker+marker)) + "\n-----END PRIVATE KEY-----\n"
	cases := []struct {
		name, cfg, key, want string
	}{
		{"no key", `{"bucketName":"b-1"}`, "", "is empty"},
		{"not JSON", `{"bucketName":"b-1"}`, `{"private_key": "` + marker, "not a JSON object"},
		{"PEM only", `{"bucketName":"b-1"}`, "-----BEGIN PRIVATE KEY-----\n" + marker, "not only its private key"},
		{"wrong type", `{"bucketName":"b-1"}`, withField("type", "authorized_user"), `"type" must be "service_account"`},
		{"no email", `{"bucketName":"b-1"}`, withField("client_email", nil), `"client_email" is missing`},
		{"no private key", `{"bucketName":"b-1"}`, withField("private_key", nil), `"private_key" is missing`},
		{"garbage private key", `{"bucketName":"b-1"}`, withField("private_key", badPEM), `"private_key" is not an unencrypted RSA private key`},
		{"private key not PEM", `{"bucketName":"b-1"}`, withField("private_key", marker), `"private_key" is not an unencrypted RSA private key`},
		{"http token_uri", `{"bucketName":"b-1"}`, withField("token_uri", "http://oauth2.example/token?"+marker), `"token_uri" must be an https:// URL`},
		{"bad config", `not json`, goodKey, "config: is not valid JSON"},
		{"no bucket", `{"prefix":"x/"}`, goodKey, "config.bucketName: is required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			snd, err := New(settings(tc.cfg, tc.key), destination.Env{HTTPClient: noNetwork(t)})
			if err == nil {
				_ = snd.Close()
				t.Fatal("New accepted it")
			}
			f := failureOf(t, err)
			if f.Kind != destination.Permanent {
				t.Errorf("kind %v", f.Kind)
			}
			if !strings.Contains(f.Message, tc.want) {
				t.Errorf("message %q does not contain %q", f.Message, tc.want)
			}
			for _, text := range []string{err.Error(), f.Message, fmt.Sprint(f.Err)} {
				if strings.Contains(text, marker) || strings.Contains(text, "PRIVATE KEY") ||
					strings.Contains(text, base64.StdEncoding.EncodeToString([]byte(marker + marker))[:20]) {
					t.Errorf("error quotes the key: %q", text)
				}
			}
		})
	}
	if _, err := New(destination.Settings{Category: destination.CategoryHTTP, Config: []byte(`{"bucketName":"b-1"}`), SecretToken: goodKey}, localEnv()); err == nil {
		t.Error("New accepted an http destination")
	}
	for _, ep := range []string{"ftp://x", "http://", "a/b", "h:1/x", "u@h:1", "h 1"} {
		if _, err := NewWithEndpoint(settings(`{"bucketName":"b-1"}`, ""), localEnv(), ep); err == nil {
			t.Errorf("endpoint %q accepted", ep)
		}
	}
}

func TestEndpointURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:4443":                    "http://127.0.0.1:4443/storage/v1/",
		"localhost":                         "http://localhost/storage/v1/",
		"http://127.0.0.1:4443":             "http://127.0.0.1:4443/storage/v1/",
		"https://gcs.example/":              "https://gcs.example/storage/v1/",
		"https://u:p@gcs.example/api?x=1#f": "https://gcs.example/api/",
		"https://gcs.example/storage/v1/":   "https://gcs.example/storage/v1/",
	} {
		got, err := endpointURL(in)
		if err != nil || got != want {
			t.Errorf("endpointURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// noNetwork is a client that fails the test on any request.
func noNetwork(t *testing.T) *http.Client {
	return &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		t.Errorf("unexpected request to %s", r.URL.Redacted())
		return nil, errors.New("no network in this test")
	})}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// newServiceAccountKey makes a service-account JSON key file with a new RSA 2048 key (PKCS#8
// PEM, as Google's key files have), and token_uri unless it is "".
func newServiceAccountKey(t *testing.T, tokenURI string) (string, *rsa.PublicKey) {
	t.Helper()
	pk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(pk)
	if err != nil {
		t.Fatal(err)
	}
	kf := map[string]string{
		"type":                        "service_account",
		"project_id":                  "auditstream-test",
		"private_key_id":              "0123456789abcdef",
		"private_key":                 string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":                "streamer@auditstream-test.iam.gserviceaccount.com",
		"client_id":                   "123456789012345678901",
		"auth_uri":                    "https://accounts.google.com/o/oauth2/auth",
		"auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
		"universe_domain":             "googleapis.com",
	}
	if tokenURI != "" {
		kf["token_uri"] = tokenURI
	}
	b, err := json.Marshal(kf)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), &pk.PublicKey
}

func TestNewAcceptsRealKeyWithoutNetwork(t *testing.T) {
	key, _ := newServiceAccountKey(t, "https://oauth2.googleapis.com/token")
	snd, err := New(settings(`{"bucketName":"audit-bucket","prefix":"a/"}`, key), destination.Env{HTTPClient: noNetwork(t)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := snd.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	// Without token_uri, and PKCS#1.
	key2, _ := newServiceAccountKey(t, "")
	snd, err = New(settings(`{"bucketName":"audit-bucket"}`, key2), destination.Env{HTTPClient: noNetwork(t)})
	if err != nil {
		t.Fatalf("New without token_uri: %v", err)
	}
	_ = snd.Close()
	pk, _ := rsa.GenerateKey(rand.Reader, 2048)
	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(pk)}))
	b, _ := json.Marshal(map[string]string{"type": "service_account", "client_email": "a@b.c", "private_key": pkcs1})
	snd, err = New(settings(`{"bucketName":"audit-bucket"}`, string(b)), destination.Env{HTTPClient: noNetwork(t)})
	if err != nil {
		t.Fatalf("New with PKCS#1: %v", err)
	}
	_ = snd.Close()
	// No env client: New makes its own.
	snd, err = New(settings(`{"bucketName":"audit-bucket"}`, key), destination.Env{})
	if err != nil {
		t.Fatalf("New without env client: %v", err)
	}
	_ = snd.Close()
}

// tokenServer is an OAuth 2.0 token endpoint (TLS) that checks the JWT grant of a service
// account and issues tokens.
type tokenServer struct {
	*httptest.Server
	t        *testing.T
	pub      *rsa.PublicKey
	email    string
	token    string
	status   int // answer this with an OAuth error instead, when not 0
	requests atomic.Int32
}

func newTokenServer(t *testing.T) *tokenServer {
	ts := &tokenServer{t: t, email: "streamer@auditstream-test.iam.gserviceaccount.com", token: "ya29.test-access-token-42"}
	ts.Server = httptest.NewTLSServer(http.HandlerFunc(ts.serve))
	t.Cleanup(ts.Close)
	return ts
}

func (ts *tokenServer) tokenURL() string { return ts.URL + "/token" }

func (ts *tokenServer) serve(w http.ResponseWriter, r *http.Request) {
	t := ts.t
	ts.requests.Add(1)
	if r.Method != http.MethodPost || r.URL.Path != "/token" {
		t.Errorf("token request %s %s", r.Method, r.URL.Path)
	}
	if err := r.ParseForm(); err != nil {
		t.Errorf("token request form: %v", err)
	}
	if g := r.PostForm.Get("grant_type"); g != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		t.Errorf("grant_type %q", g)
	}
	parts := strings.Split(r.PostForm.Get("assertion"), ".")
	if len(parts) != 3 {
		t.Errorf("assertion has %d parts", len(parts))
		http.Error(w, "bad assertion", http.StatusBadRequest)
		return
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Errorf("signature: %v", err)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(ts.pub, crypto.SHA256, sum[:], sig); err != nil {
		t.Errorf("the JWT's signature does not verify with the key's public key: %v", err)
	}
	var hdr struct{ Alg, Typ, Kid string }
	var claims struct {
		Iss, Scope, Aud, Sub string
		Iat, Exp             int64
	}
	decodeSegment(t, parts[0], &hdr)
	decodeSegment(t, parts[1], &claims)
	if hdr.Alg != "RS256" || hdr.Kid != "0123456789abcdef" {
		t.Errorf("JWT header %+v", hdr)
	}
	now := time.Now().Unix()
	if claims.Iss != ts.email || claims.Scope != Scope || claims.Aud != ts.tokenURL() ||
		claims.Iat > now+5 || claims.Iat < now-60 || claims.Exp <= claims.Iat || claims.Exp > claims.Iat+3600 {
		t.Errorf("JWT claims %+v", claims)
	}
	w.Header().Set("Content-Type", "application/json")
	if ts.status != 0 {
		w.WriteHeader(ts.status)
		_, _ = io.WriteString(w, `{"error":"invalid_grant","error_description":"Invalid JWT Signature."}`)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": ts.token, "token_type": "Bearer", "expires_in": 3600})
}

func decodeSegment(t *testing.T, seg string, v any) {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		t.Errorf("JWT segment: %v", err)
	}
}

// authRecorder records the Authorization header of the requests to host.
type authRecorder struct {
	base  http.RoundTripper
	host  string
	mu    sync.Mutex
	auths []string
}

func (a *authRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host == a.host {
		a.mu.Lock()
		a.auths = append(a.auths, r.Header.Get("Authorization"))
		a.mu.Unlock()
	}
	return a.base.RoundTrip(r)
}

func (a *authRecorder) headers() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.auths)
}

// recordingEnv is localEnv trusting the token server's certificate, with its transport
// wrapped to record the Authorization headers sent to the storage server.
func recordingEnv(t *testing.T, ts *tokenServer, storageURL string) (destination.Env, *authRecorder) {
	env := localEnv()
	tr := env.HTTPClient.Transport.(*http.Transport)
	if ts != nil {
		pool := x509.NewCertPool()
		pool.AddCert(ts.Certificate())
		tr.TLSClientConfig.RootCAs = pool
	}
	u, err := url.Parse(storageURL)
	if err != nil {
		t.Fatal(err)
	}
	rec := &authRecorder{base: tr, host: u.Host}
	env.HTTPClient.Transport = rec
	return env, rec
}

func TestServiceAccountAuth(t *testing.T) {
	ts := newTokenServer(t)
	key, pub := newServiceAccountKey(t, ts.tokenURL())
	ts.pub = pub
	srv := newFakeGCS(t)
	env, rec := recordingEnv(t, ts, srv.URL())
	snd := startSender(t, settings(`{"bucketName":"audit-bucket","prefix":"auth/"}`, key), env, srv.URL())
	for id := int64(1); id <= 3; id++ {
		if err := snd.Send(context.Background(), events(id, id)); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	if n := ts.requests.Load(); n != 1 {
		t.Errorf("%d token requests, want 1 (the token is reused until it expires)", n)
	}
	auths := rec.headers()
	if len(auths) != 3 {
		t.Fatalf("%d storage requests recorded, want 3", len(auths))
	}
	for _, a := range auths {
		if a != "Bearer "+ts.token {
			t.Errorf("Authorization %q, want Bearer %s", a, ts.token)
		}
	}
	if n := len(listObjects(t, srv.Client(), "auth/")); n != 3 {
		t.Errorf("%d objects", n)
	}
}

func TestTokenRefused(t *testing.T) {
	ts := newTokenServer(t)
	ts.status = http.StatusBadRequest
	key, pub := newServiceAccountKey(t, ts.tokenURL())
	ts.pub = pub
	srv := newFakeGCS(t)
	env, rec := recordingEnv(t, ts, srv.URL())
	snd := startSender(t, settings(`{"bucketName":"audit-bucket"}`, key), env, srv.URL())
	err := snd.Send(context.Background(), events(1, 1))
	f := failureOf(t, err)
	if f.Kind != destination.Permanent || f.StatusCode != http.StatusBadRequest {
		t.Errorf("failure %v, want permanent HTTP 400", f)
	}
	if !strings.Contains(f.Message, "invalid_grant: Invalid JWT Signature.") {
		t.Errorf("message %q", f.Message)
	}
	if len(rec.headers()) != 0 {
		t.Errorf("storage requests were sent without a token")
	}

	for _, tc := range []struct {
		status int
		kind   destination.FailureKind
	}{{http.StatusTooManyRequests, destination.Throttled}, {http.StatusServiceUnavailable, destination.Retryable}, {http.StatusInternalServerError, destination.Retryable}} {
		ts.status = tc.status
		f := failureOf(t, snd.Send(context.Background(), events(1, 1)))
		if f.Kind != tc.kind || f.StatusCode != tc.status {
			t.Errorf("token endpoint %d: failure %v, want %v", tc.status, f, tc.kind)
		}
	}
	// The token endpoint cannot be reached: retryable.
	ts.status = 0
	ts.Close()
	f = failureOf(t, snd.Send(context.Background(), events(1, 1)))
	if f.Kind != destination.Retryable || !strings.HasPrefix(f.Message, "cannot get an access token: ") {
		t.Errorf("token endpoint down: failure %v", f)
	}
}

func TestEmulatorHostEnv(t *testing.T) {
	srv := newFakeGCS(t)
	u, _ := url.Parse(srv.URL())
	for _, host := range []string{u.Host, srv.URL()} {
		t.Run(host, func(t *testing.T) {
			t.Setenv(EmulatorHostEnv, host)
			ts := newTokenServer(t)
			key, pub := newServiceAccountKey(t, ts.tokenURL())
			ts.pub = pub
			env, rec := recordingEnv(t, ts, srv.URL())
			for i, k := range []string{"", key} {
				snd, err := New(settings(`{"bucketName":"audit-bucket","prefix":"emu/"}`, k), env)
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if err := snd.Send(context.Background(), events(int64(i+1), int64(i+1))); err != nil {
					t.Fatalf("Send: %v", err)
				}
				_ = snd.Close()
			}
			if n := ts.requests.Load(); n != 0 {
				t.Errorf("%d token requests with %s", n, EmulatorHostEnv)
			}
			for _, a := range rec.headers() {
				if a != "" {
					t.Errorf("Authorization %q sent to the emulator", a)
				}
			}
			if len(rec.headers()) != 2 {
				t.Errorf("%d requests to the emulator, want 2", len(rec.headers()))
			}
			// A bad key is still refused.
			if _, err := New(settings(`{"bucketName":"audit-bucket"}`, `{"type":"x"}`), env); err == nil {
				t.Error("New accepted a bad key")
			}
		})
	}
}

// Close leaves a shared client's idle connections alone.
func TestCloseKeepsSharedClient(t *testing.T) {
	srv := newFakeGCS(t)
	var closed atomic.Bool
	env := localEnv()
	env.HTTPClient.Transport = &closeTracker{RoundTripper: env.HTTPClient.Transport, closed: &closed}
	snd, err := NewWithEndpoint(settings(`{"bucketName":"audit-bucket"}`, ""), env, srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	if err := snd.Send(context.Background(), events(1, 1)); err != nil {
		t.Fatal(err)
	}
	if err := snd.Close(); err != nil {
		t.Fatal(err)
	}
	if closed.Load() {
		t.Error("Close closed the shared transport's idle connections")
	}
}

type closeTracker struct {
	http.RoundTripper
	closed *atomic.Bool
}

func (c *closeTracker) CloseIdleConnections() { c.closed.Store(true) }

// An answer that is not a GCS error document (a proxy's page) is shown only as a short excerpt
// without markup (issue 13, item 5).
func TestForeignErrorBodyIsExcerpted(t *testing.T) {
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, "<html><head><title>502 Bad Gateway</title></head><body><h1>proxy.internal</h1>"+strings.Repeat("x", 500)+"</body></html>")
	}))
	defer page.Close()
	snd := startSender(t, settings(`{"bucketName":"audit-bucket"}`, ""), localEnv(), page.URL)
	f := failureOf(t, snd.Send(context.Background(), events(1, 1)))
	if strings.Contains(f.Message, "<") || !strings.Contains(f.Message, "502 Bad Gateway proxy.internal") || strings.Count(f.Message, "x") > destination.MessageExcerptLen {
		t.Errorf("message %q: want a short excerpt without markup", f.Message)
	}
}

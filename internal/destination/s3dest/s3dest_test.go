package s3dest_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/destination/destinationtest"
	"github.com/auditstream/auditstream/internal/destination/objectstore"
	"github.com/auditstream/auditstream/internal/destination/s3dest"
	"github.com/auditstream/auditstream/internal/netguard"
)

const (
	bucket      = "audit-logs"
	accessKey   = "AKIAAUDITSTREAMTEST1"
	secretKey   = "s3cr3t/AccessKey+0123456789abcdefghijklm"
	region      = "eu-west-1"
	batchConfig = `"batch":{"maxBytes":1048576,"maxEvents":100,"maxWaitMs":1000}`
)

// client is the HTTP client tests use: the guard allows the servers on 127.0.0.1.
var client = netguard.Policy{AllowPrivate: true}.HTTPClient()

// event returns an audit event in GitLab's streamed format.
func event(id int64, entityType, eventType string, at time.Time) destination.Event {
	doc := map[string]any{
		"id":          id,
		"author_id":   1,
		"entity_id":   22,
		"entity_type": entityType,
		"event_type":  eventType,
		"details": map[string]any{
			"author_name":    "Administrator",
			"custom_message": "Added " + eventType,
			"target_id":      id * 10,
		},
		"ip_address":  "203.0.113.7",
		"created_at":  at.UTC().Format(time.RFC3339Nano),
		"target_type": entityType,
	}
	b, err := json.Marshal(doc)
	if err != nil {
		panic(err)
	}
	return destination.Event{ID: id, Type: eventType, CreatedAt: at, JSON: b}
}

// settings returns the Settings of an aws destination writing to endpoint, with extra config
// members (such as batchConfig) when given.
func settings(endpoint, bucketName, secret string, extra ...string) destination.Settings {
	cfg := fmt.Sprintf(`{"accessKeyXid":%q,"awsRegion":%q,"bucketName":%q,"endpoint":%q,"pathStyle":true`,
		accessKey, region, bucketName, endpoint)
	for _, x := range extra {
		cfg += "," + x
	}
	cfg += "}"
	return destination.Settings{ID: 7, Category: destination.CategoryAWS, Config: []byte(cfg), SecretToken: secret}
}

func newSender(t testing.TB, s destination.Settings, c *http.Client) destination.Sender {
	t.Helper()
	snd, err := s3dest.New(s, destination.Env{HTTPClient: c})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, snd.Close()) })
	return snd
}

// fakeS3 starts gofakes3 with an in-memory backend, with bucket made through the SDK unless it
// is "". It returns the server's URL and an SDK client to read objects back.
func fakeS3(t testing.TB, buckets ...string) (string, *s3.Client) {
	t.Helper()
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(srv.Close)
	reader := sdkClient(srv.URL, "any-key", "any-secret")
	for _, b := range buckets {
		_, err := reader.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(b)})
		require.NoError(t, err)
	}
	return srv.URL, reader
}

// sdkClient is a plain SDK client, to make buckets and read objects back.
func sdkClient(endpoint, key, secret string) *s3.Client {
	return s3.New(s3.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider(key, secret, ""),
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		HTTPClient:   client,
	})
}

// object is an object read back.
type object struct {
	Key, ContentType, ContentEncoding string
	Body                              []byte
}

// listObjects reads back every object of the bucket, in key order.
func listObjects(t testing.TB, c *s3.Client, bucketName string) []object {
	t.Helper()
	ctx := context.Background()
	var out []object
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucketName)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		require.NoError(t, err)
		for _, o := range page.Contents {
			got, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucketName), Key: o.Key})
			require.NoError(t, err)
			body, err := io.ReadAll(got.Body)
			_ = got.Body.Close()
			require.NoError(t, err)
			out = append(out, object{Key: *o.Key, ContentType: aws.ToString(got.ContentType),
				ContentEncoding: aws.ToString(got.ContentEncoding), Body: body})
		}
	}
	slices.SortFunc(out, func(a, b object) int { return strings.Compare(a.Key, b.Key) })
	return out
}

func failure(t testing.TB, err error) *destination.Failure {
	t.Helper()
	require.Error(t, err)
	var f *destination.Failure
	require.True(t, errors.As(err, &f), "want a *destination.Failure, got %T: %v", err, err)
	require.NotContains(t, f.Message, secretKey)
	require.NotContains(t, f.Error(), secretKey)
	return f
}

func TestOneObjectPerEvent(t *testing.T) {
	url, reader := fakeS3(t, bucket)
	snd := newSender(t, settings(url, bucket, secretKey), client)
	ctx := context.Background()

	at := time.Date(2026, 1, 31, 23, 59, 59, 123e6, time.UTC)
	events := []destination.Event{
		event(101, "Group", "group_created", at),
		event(102, "Project", "project_created", at.Add(time.Second)), // February 1st
		event(103, "User", "user_blocked", time.Date(2025, 12, 1, 8, 0, 0, 5e6, time.FixedZone("CET", 3600))),
	}
	for _, e := range events {
		require.NoError(t, snd.Send(ctx, []destination.Event{e}))
	}
	// Several events in one Send, though the engine does not do that without batching: each is
	// put, and one already delivered is written again at the same key.
	more := []destination.Event{event(104, "Project", "project_deleted", at), events[0]}
	require.NoError(t, snd.Send(ctx, more))
	// The same event again: the same key, no second object.
	require.NoError(t, snd.Send(ctx, events[1:2]))
	require.NoError(t, snd.Send(ctx, nil))

	wantKeys := map[string]destination.Event{
		"group/2026/01/group_created_101_1769903999123.json":     events[0],
		"project/2026/02/project_created_102_1769904000123.json": events[1],
		"user/2025/12/user_blocked_103_1764572400005.json":       events[2],
		"project/2026/01/project_deleted_104_1769903999123.json": more[0],
	}
	objs := listObjects(t, reader, bucket)
	require.Len(t, objs, len(wantKeys))
	for _, o := range objs {
		e, ok := wantKeys[o.Key]
		require.True(t, ok, "unexpected key %s", o.Key)
		require.Equal(t, objectstore.EventKey("", e), o.Key)
		require.Equal(t, "application/json", o.ContentType, o.Key)
		require.Empty(t, o.ContentEncoding, o.Key)
		require.Equal(t, string(e.JSON), string(o.Body), o.Key)
	}
}

func TestBatchObjects(t *testing.T) {
	url, reader := fakeS3(t, bucket)
	snd := newSender(t, settings(url, bucket, secretKey, batchConfig), client)
	ctx := context.Background()

	at := time.Date(2026, 3, 7, 9, 5, 1, 234e6, time.UTC)
	var all []destination.Event
	for i := range 250 {
		typ, entity := "user_created", "User"
		if i%3 == 0 {
			typ, entity = "project_created", "Project"
		}
		all = append(all, event(int64(1000+i), entity, typ, at.Add(time.Duration(i)*time.Second)))
	}
	batches := [][]destination.Event{all[:100], all[100:200], all[200:]}
	for _, b := range batches {
		require.NoError(t, snd.Send(ctx, b))
	}
	require.NoError(t, snd.Send(ctx, batches[1])) // again: the same key
	// A batch of one event is a batch object too.
	one := []destination.Event{event(2000, "Group", "group_created", at)}
	require.NoError(t, snd.Send(ctx, one))
	batches = append(batches, one)

	objs := listObjects(t, reader, bucket)
	require.Len(t, objs, len(batches))
	want := map[string][]destination.Event{}
	for _, b := range batches {
		want[objectstore.BatchKey("", b)] = b
	}
	require.Contains(t, want, "batches/2026/03/07/09/20260307T090501.234Z_1000-1099.ndjson.gz")
	seen := map[int64]int{}
	for _, o := range objs {
		b, ok := want[o.Key]
		require.True(t, ok, "unexpected key %s", o.Key)
		require.True(t, strings.HasPrefix(o.Key, "batches/") && strings.HasSuffix(o.Key, ".ndjson.gz"), o.Key)
		require.Equal(t, "application/x-ndjson", o.ContentType, o.Key)
		require.Equal(t, "gzip", o.ContentEncoding, o.Key)
		zr, err := gzip.NewReader(bytes.NewReader(o.Body))
		require.NoError(t, err, o.Key)
		plain, err := io.ReadAll(zr)
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSuffix(string(plain), "\n"), "\n")
		require.Len(t, lines, len(b), o.Key)
		for i, line := range lines {
			require.Equal(t, string(b[i].JSON), line)
			var head struct{ ID int64 }
			require.NoError(t, json.Unmarshal([]byte(line), &head))
			seen[head.ID]++
		}
	}
	require.Len(t, seen, len(all)+1)
	for id, n := range seen {
		require.Equal(t, 1, n, "event %d", id)
	}
}

func TestConcurrentSends(t *testing.T) {
	url, reader := fakeS3(t, bucket)
	snd := newSender(t, settings(url, bucket, secretKey), client)
	at := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			errs <- snd.Send(context.Background(), []destination.Event{event(int64(i+1), "Group", "group_updated", at)})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, listObjects(t, reader, bucket), 40)
}

func TestMissingBucket(t *testing.T) {
	url, _ := fakeS3(t, bucket)
	for _, extra := range [][]string{nil, {batchConfig}} {
		snd := newSender(t, settings(url, "no-such-bucket", secretKey, extra...), client)
		err := snd.Send(context.Background(), []destination.Event{event(1, "Group", "group_created", time.Now())})
		f := failure(t, err)
		require.Equal(t, destination.Permanent, f.Kind, f.Error())
		require.Equal(t, http.StatusNotFound, f.StatusCode)
		require.Contains(t, f.Message, "bucket no-such-bucket does not exist (NoSuchBucket")
	}
}

// s3Error answers every request with status and, when code is set, an S3 error document.
func s3Error(status int, code, message string, header http.Header) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		for k, v := range header {
			w.Header()[k] = v
		}
		if code == "" {
			w.WriteHeader(status)
			return
		}
		w.Header().Set("Content-Type", "application/xml")
		w.Header().Set("x-amz-request-id", "4442587FB7D0A2F9")
		w.WriteHeader(status)
		_, _ = fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>%s</Code><Message>%s</Message><BucketName>%s</BucketName><RequestId>4442587FB7D0A2F9</RequestId><HostId>aGVsbG8=</HostId></Error>`,
			code, message, bucket)
	}
}

func TestClassification(t *testing.T) {
	retryAfter := http.Header{"Retry-After": {"7"}}
	cases := []struct {
		name       string
		handler    http.HandlerFunc
		kind       destination.FailureKind
		status     int
		retryAfter time.Duration
		message    string
	}{
		{"SlowDown with Retry-After", s3Error(503, "SlowDown", "Please reduce your request rate.", retryAfter),
			destination.Throttled, 503, 7 * time.Second, "the store asks to slow down (SlowDown: Please reduce your request rate.)"},
		{"SlowDown", s3Error(503, "SlowDown", "Please reduce your request rate.", nil),
			destination.Throttled, 503, 0, "SlowDown: Please reduce your request rate."},
		{"503 without body", s3Error(503, "", "", nil), destination.Throttled, 503, 0, "slow down"},
		{"429", s3Error(429, "", "", retryAfter), destination.Throttled, 429, 7 * time.Second, "slow down"},
		{"InternalError", s3Error(500, "InternalError", "We encountered an internal error. Please try again.", nil),
			destination.Retryable, 500, 0, "InternalError: We encountered an internal error. Please try again."},
		{"500 without body", s3Error(500, "", "", nil), destination.Retryable, 500, 0, "internal server error"},
		{"500 with HTML", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(500)
			_, _ = io.WriteString(w, "<html><body><h1>500 \x00 oops</h1>")
		}, destination.Retryable, 500, 0, "internal server error"},
		{"502", s3Error(502, "", "", nil), destination.Retryable, 502, 0, "bad gateway"},
		{"RequestTimeout", s3Error(400, "RequestTimeout", "Your socket connection to the server was not read from or written to within the timeout period.", nil),
			destination.Retryable, 400, 0, "RequestTimeout: Your socket connection"},
		{"RequestTimeTooSkewed", s3Error(403, "RequestTimeTooSkewed", "The difference between the request time and the current time is too large.", nil),
			destination.Retryable, 403, 0, "RequestTimeTooSkewed"},
		{"AccessDenied", s3Error(403, "AccessDenied", "Access Denied", nil),
			destination.Permanent, 403, 0, "access to bucket audit-logs is denied: the access key needs s3:PutObject on it (AccessDenied: Access Denied)"},
		{"InvalidAccessKeyId", s3Error(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.", nil),
			destination.Permanent, 403, 0, "the access key is not valid (InvalidAccessKeyId: The AWS Access Key Id you provided does not exist in our records.)"},
		{"SignatureDoesNotMatch echoing the secret", s3Error(403, "SignatureDoesNotMatch", "bad signature for "+secretKey, nil),
			destination.Permanent, 403, 0, "the secret access key does not match the access key id (SignatureDoesNotMatch: bad signature for [redacted])"},
		{"NoSuchBucket", s3Error(404, "NoSuchBucket", "The specified bucket does not exist", nil),
			destination.Permanent, 404, 0, "bucket audit-logs does not exist (NoSuchBucket: The specified bucket does not exist)"},
		{"InvalidBucketName", s3Error(400, "InvalidBucketName", "The specified bucket is not valid.", nil),
			destination.Permanent, 400, 0, "bucket name audit-logs is not valid (InvalidBucketName"},
		{"PermanentRedirect", s3Error(301, "PermanentRedirect", "The bucket you are attempting to access must be addressed using the specified endpoint.", nil),
			destination.Permanent, 301, 0, "is not in the configured region or must be reached at another endpoint (PermanentRedirect"},
		{"AuthorizationHeaderMalformed", s3Error(400, "AuthorizationHeaderMalformed", "The authorization header is malformed; the region 'eu-west-1' is wrong; expecting 'us-east-2'", nil),
			destination.Permanent, 400, 0, "expecting 'us-east-2'"},
		{"404 without body", s3Error(404, "", "", nil), destination.Permanent, 404, 0, "not found: check config.endpoint and the bucket name"},
		{"307 without body", s3Error(307, "", "", http.Header{"Location": {"http://elsewhere.example/"}}),
			destination.Permanent, 307, 0, "redirects are not followed"},
		{"unknown 4xx code", s3Error(400, "InvalidArgument", "Bad argument\n\t  here", nil),
			destination.Permanent, 400, 0, "InvalidArgument: Bad argument here"},
	}
	ev := []destination.Event{event(1, "Group", "group_created", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			t.Cleanup(srv.Close)
			for _, extra := range [][]string{nil, {batchConfig}} {
				snd := newSender(t, settings(srv.URL, bucket, secretKey, extra...), client)
				f := failure(t, snd.Send(context.Background(), ev))
				t.Log(f.Error())
				require.Equal(t, tc.kind, f.Kind, f.Error())
				require.Equal(t, tc.status, f.StatusCode, f.Error())
				require.Equal(t, tc.retryAfter, f.RetryAfter)
				require.Contains(t, f.Message, tc.message)
				require.NotContains(t, f.Message, "Signature=")
				require.NotNil(t, f.Err)
			}
		})
	}
}

func TestNetworkErrors(t *testing.T) {
	ev := []destination.Event{event(1, "Group", "group_created", time.Now())}

	// Nothing listens on the port: connection refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	snd := newSender(t, settings("http://"+addr, bucket, secretKey), client)
	f := failure(t, snd.Send(context.Background(), ev))
	require.Equal(t, destination.Retryable, f.Kind, f.Error())
	require.Equal(t, "connection refused", f.Message)

	// The server closes the connection without answering.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	}))
	t.Cleanup(srv.Close)
	snd = newSender(t, settings(srv.URL, bucket, secretKey), client)
	f = failure(t, snd.Send(context.Background(), ev))
	require.Equal(t, destination.Retryable, f.Kind, f.Error())
	require.Contains(t, f.Message, "closed the connection")

	// A TLS endpoint spoken to in plain HTTP is fine, but plain HTTP spoken to as TLS is not.
	plain := httptest.NewServer(s3Error(200, "", "", nil))
	t.Cleanup(plain.Close)
	snd = newSender(t, settings(strings.Replace(plain.URL, "http://", "https://", 1), bucket, secretKey), client)
	f = failure(t, snd.Send(context.Background(), ev))
	require.Equal(t, destination.Retryable, f.Kind, f.Error())
	require.Contains(t, f.Message, "did not answer with TLS")
}

func TestContextEnded(t *testing.T) {
	url, _ := fakeS3(t, bucket)
	snd := newSender(t, settings(url, bucket, secretKey), client)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := snd.Send(ctx, []destination.Event{event(1, "Group", "group_created", time.Now())})
	require.ErrorIs(t, err, context.Canceled)

	// A server that does not answer before the deadline.
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	snd = newSender(t, settings(srv.URL, bucket, secretKey), client)
	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = snd.Send(ctx, []destination.Event{event(1, "Group", "group_created", time.Now())})
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestRequestNotMade(t *testing.T) {
	// A region that is no DNS label, which the SDK could not make an endpoint of: the sender
	// reads its config with the type's rules, so New refuses it and nothing is sent.
	s := settings("", bucket, secretKey)
	s.Config = []byte(`{"accessKeyXid":"k","bucketName":"b","awsRegion":"eu west/1"}`)
	snd, err := s3dest.New(s, destination.Env{HTTPClient: netguard.Policy{}.HTTPClient()})
	require.Nil(t, snd)
	f := failure(t, err)
	require.Equal(t, destination.Permanent, f.Kind, f.Error())
	require.Contains(t, f.Message, "config.awsRegion: must be a valid region code")
}

func TestNewRefusesBadSettings(t *testing.T) {
	good := settings("https://s3.example.com", bucket, secretKey)
	cases := []struct {
		name string
		mod  func(*destination.Settings)
		msg  string
	}{
		{"wrong category", func(s *destination.Settings) { s.Category = destination.CategoryHTTP }, `cannot deliver to a "http" destination`},
		{"not JSON", func(s *destination.Settings) { s.Config = []byte(`[`) }, "config: is not valid JSON"},
		{"no access key", func(s *destination.Settings) { s.Config = []byte(`{"bucketName":"b","awsRegion":"us-east-1"}`) }, "accessKeyXid"},
		{"no bucket", func(s *destination.Settings) { s.Config = []byte(`{"accessKeyXid":"k","awsRegion":"us-east-1"}`) }, "bucketName"},
		{"no region", func(s *destination.Settings) {
			s.Config = []byte(`{"accessKeyXid":"k","bucketName":"b","awsRegion":"  "}`)
		}, "awsRegion"},
		{"no secret", func(s *destination.Settings) { s.SecretToken = "" }, "secret access key is missing"},
		{"ftp endpoint", func(s *destination.Settings) {
			s.Config = []byte(`{"accessKeyXid":"k","bucketName":"b","awsRegion":"us-east-1","endpoint":"ftp://x"}`)
		}, "config.endpoint"},
		{"endpoint without host", func(s *destination.Settings) {
			s.Config = []byte(`{"accessKeyXid":"k","bucketName":"b","awsRegion":"us-east-1","endpoint":"https://"}`)
		}, "config.endpoint"},
	}
	for _, tc := range cases {
		s := good
		tc.mod(&s)
		snd, err := s3dest.New(s, destination.Env{HTTPClient: client})
		require.Nil(t, snd, tc.name)
		f := failure(t, err)
		require.Equal(t, destination.Permanent, f.Kind, tc.name)
		require.Contains(t, f.Message, tc.msg, tc.name)
	}

	// AWS's own endpoint (no config.endpoint) and an empty category are fine.
	s := good
	s.Category = ""
	s.Config = []byte(`{"accessKeyXid":"AKIAAUDITSTREAMTEST1","bucketName":"bkt","awsRegion":"us-east-1"}`)
	snd, err := s3dest.New(s, destination.Env{HTTPClient: client})
	require.NoError(t, err)
	require.NoError(t, snd.Close())
}

// TestEndpointPath checks that the path of config.endpoint is kept as a prefix, and that its
// user info and query are not sent.
func TestEndpointPath(t *testing.T) {
	var mu sync.Mutex
	var paths, auths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		paths = append(paths, r.URL.RequestURI())
		auths = append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	endpoint := strings.Replace(srv.URL, "http://", "http://user:pw@", 1) + "/s3?token=abc"
	snd := newSender(t, settings(endpoint, bucket, secretKey), client)
	e := event(5, "Group", "group_created", time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC))
	require.NoError(t, snd.Send(context.Background(), []destination.Event{e}))
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, paths, 1)
	require.True(t, strings.HasPrefix(paths[0], "/s3/"+bucket+"/"+objectstore.EventKey("", e)), paths[0])
	require.NotContains(t, paths[0], "token")
	require.True(t, strings.HasPrefix(auths[0], "AWS4-HMAC-SHA256 Credential="+accessKey+"/"), auths[0])
	require.NotContains(t, auths[0], secretKey)
}

// TestFormatOCSF: with format ocsf, an event's object holds its OCSF JSON at GitLab's key, and a
// batch object OCSF NDJSON, against gofakes3.
func TestFormatOCSF(t *testing.T) {
	url, reader := fakeS3(t, bucket)
	ctx := context.Background()
	at := time.Date(2026, 1, 31, 23, 59, 59, 123e6, time.UTC)
	e := event(101, "Group", "group_created", at)
	snd := newSender(t, settings(url, bucket, secretKey, `"format":"ocsf"`), client)
	require.NoError(t, snd.Send(ctx, []destination.Event{e}))
	batch := []destination.Event{event(201, "User", "user_created", at), event(202, "Project", "project_created", at)}
	snd = newSender(t, settings(url, bucket, secretKey, `"format":"ocsf"`, batchConfig), client)
	require.NoError(t, snd.Send(ctx, batch))

	objs := listObjects(t, reader, bucket)
	require.Len(t, objs, 2)
	require.Equal(t, objectstore.BatchKey("", batch), objs[0].Key)
	zr, err := gzip.NewReader(bytes.NewReader(objs[0].Body))
	require.NoError(t, err)
	plain, err := io.ReadAll(zr)
	require.NoError(t, err)
	want := string(destinationtest.Encoded(t, "ocsf", batch[0])) + "\n" + string(destinationtest.Encoded(t, "ocsf", batch[1])) + "\n"
	require.Equal(t, want, string(plain))

	require.Equal(t, "group/2026/01/group_created_101_1769903999123.json", objs[1].Key)
	require.Equal(t, "application/json", objs[1].ContentType)
	require.Equal(t, string(destinationtest.Encoded(t, "ocsf", e)), string(objs[1].Body))
}

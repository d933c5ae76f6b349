package app_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/poll"
)

// TestCloudDestinationsThroughTheService: an owner streams to S3, Google Cloud Storage and
// Splunk HEC with one GraphQL call each, and the group's events land where and how each
// system expects them.
func TestCloudDestinationsThroughTheService(t *testing.T) {
	// Object storage protocol servers, in process.
	s3srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(s3srv.Close)
	s3c := s3.New(s3.Options{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIAIOSFODNN7EXAMPLE", "secret", ""),
		BaseEndpoint: aws.String(s3srv.URL), UsePathStyle: true})
	_, err := s3c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String("audit-logs")})
	require.NoError(t, err)
	gcs, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1"})
	require.NoError(t, err)
	t.Cleanup(gcs.Stop)
	gcs.CreateBucket("audit-archive")
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(gcs.URL(), "http://")) // the storage library's own switch

	// A HEC endpoint that checks the token and answers as Splunk does.
	var hecMu sync.Mutex
	var hecEvents []map[string]any
	hec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/services/collector/event" || r.Header.Get("Authorization") != "Splunk 5a8e6f2c-1d3b-4c7a-9e0f-2b6d8c4a1e3f" {
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"text":"Invalid token","code":4}`)
			return
		}
		dec := json.NewDecoder(r.Body)
		for dec.More() {
			var e map[string]any
			if dec.Decode(&e) != nil {
				w.WriteHeader(http.StatusBadRequest)
				_, _ = io.WriteString(w, `{"text":"Invalid data format","code":6}`)
				return
			}
			hecMu.Lock()
			hecEvents = append(hecEvents, e)
			hecMu.Unlock()
		}
		_, _ = io.WriteString(w, `{"text":"Success","code":0}`)
	}))
	t.Cleanup(hec.Close)

	s := start(t, "sqlite", noLimits, allowPrivate)
	w := newWorld(t, s)
	owner := w.tokens["owner"]
	s3ID := s.createGroupDestination(owner, "org", "aws", map[string]any{"accessKeyXid": "AKIAIOSFODNN7EXAMPLE", "bucketName": "audit-logs",
		"awsRegion": "us-east-1", "endpoint": s3srv.URL, "pathStyle": true}, "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY")
	s3BatchID := s.createGroupDestination(owner, "org", "aws", map[string]any{"accessKeyXid": "AKIAIOSFODNN7EXAMPLE", "bucketName": "audit-logs",
		"awsRegion": "us-east-1", "endpoint": s3srv.URL + "/", "pathStyle": true, "batch": map[string]any{"maxEvents": 10, "maxWaitMs": 100}}, "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY")
	gcsID := s.createGroupDestination(owner, "org", "gcs", map[string]any{"bucketName": "audit-archive", "prefix": "gitlab/"}, serviceAccountKey(t))
	hecID := s.createGroupDestination(owner, "org", "splunk", map[string]any{"url": hec.URL, "index": "gitlab"}, "5a8e6f2c-1d3b-4c7a-9e0f-2b6d8c4a1e3f")

	ids := s.ingest(w.tokens["ingest"], ev("member_created", "Group", "org", w.org.ID, w.owner.ID, "one"),
		ev("protected_branch_created", "Project", "org/sub/app", w.proj.ID, w.dev.ID, "two"))

	// S3: GitLab's key per event, and gzip NDJSON batches.
	poll.Until(t, 20*time.Second, func() error {
		out, err := s3c.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String("audit-logs")})
		if err != nil {
			return err
		}
		var perEvent, batches int
		for _, o := range out.Contents {
			k := *o.Key
			switch {
			case strings.HasPrefix(k, "batches/") && strings.HasSuffix(k, ".ndjson.gz"):
				batches++
			case strings.Contains(k, fmt.Sprintf("_%d_", ids[0])) && strings.HasPrefix(k, "group/"),
				strings.Contains(k, fmt.Sprintf("_%d_", ids[1])) && strings.HasPrefix(k, "project/"):
				perEvent++
			}
		}
		if perEvent < 2 || batches < 1 {
			return fmt.Errorf("objects %d per event, %d batches", perEvent, batches)
		}
		return nil
	})
	out, err := s3c.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String("audit-logs"), Prefix: aws.String("batches/")})
	require.NoError(t, err)
	obj, err := s3c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("audit-logs"), Key: out.Contents[0].Key})
	require.NoError(t, err)
	require.Equal(t, "gzip", aws.ToString(obj.ContentEncoding))
	raw, _ := io.ReadAll(obj.Body)
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	require.NoError(t, err)
	lines, _ := io.ReadAll(zr)
	require.Contains(t, string(lines), `"event_type":`)

	// GCS: the same layout under the prefix.
	poll.Until(t, 20*time.Second, func() error {
		objs, _, err := gcs.ListObjectsWithOptions("audit-archive", fakestorage.ListOptions{Prefix: "gitlab/"})
		if err != nil {
			return err
		}
		var n int
		for _, o := range objs {
			if strings.Contains(o.Name, fmt.Sprintf("_%d_", ids[0])) || strings.Contains(o.Name, fmt.Sprintf("_%d_", ids[1])) {
				n++
			}
		}
		if n < 2 {
			return fmt.Errorf("%d of the events in GCS (%d objects)", n, len(objs))
		}
		return nil
	})

	// Splunk: HEC's envelope around the event.
	poll.Until(t, 20*time.Second, func() error {
		hecMu.Lock()
		defer hecMu.Unlock()
		for _, e := range hecEvents {
			if dig(e, "event", "id") == float64(ids[1]) {
				if e["index"] != "gitlab" || e["time"] == nil {
					return fmt.Errorf("envelope %v", e)
				}
				return nil
			}
		}
		return fmt.Errorf("%d HEC events, not yet event %d", len(hecEvents), ids[1])
	})

	// Each destination is healthy, and its test event really reaches the service.
	for _, id := range []string{s3ID, s3BatchID, gcsID, hecID} {
		p := s.mutate(owner, "auditEventStreamingDestinationTestEventSend",
			`mutation($id: ID!) { auditEventStreamingDestinationTestEventSend(input: {destinationId: $id}) { errors success error } }`, map[string]any{"id": id})
		require.Equal(t, true, p["success"], "%s: %v", id, p)
	}
	data := s.gqlOK(owner, `{ group(fullPath: "org") { externalAuditEventStreamingDestinations { nodes { category secretToken deliveryStatus { status } } } } }`, nil)
	for _, n := range dig(data, "group", "externalAuditEventStreamingDestinations", "nodes").([]any) {
		require.Equal(t, "healthy", dig(n, "deliveryStatus", "status"), n)
		require.Equal(t, "", dig(n, "secretToken"), "cloud credentials are never shown")
	}

	// Wrong credentials fail for good and say why, without the secret.
	bad := s.createGroupDestination(owner, "org", "splunk", map[string]any{"url": hec.URL}, "00000000-0000-0000-0000-000000000000")
	p := s.mutate(owner, "auditEventStreamingDestinationTestEventSend",
		`mutation($id: ID!) { auditEventStreamingDestinationTestEventSend(input: {destinationId: $id}) { errors success statusCode error } }`, map[string]any{"id": bad})
	require.Equal(t, false, p["success"])
	require.Contains(t, p["error"], "Invalid token")
	require.NotContains(t, fmt.Sprint(p), "00000000-0000-0000-0000-000000000000")
}

// serviceAccountKey is a Google service-account JSON key with a fresh RSA key.
func serviceAccountKey(t *testing.T) string {
	t.Helper()
	b, err := json.Marshal(map[string]string{"type": "service_account", "project_id": "acme", "client_email": "sa@acme.iam.gserviceaccount.com",
		"private_key": secRSAKeys()[0], "token_uri": "https://oauth2.googleapis.com/token"})
	require.NoError(t, err)
	return string(b)
}

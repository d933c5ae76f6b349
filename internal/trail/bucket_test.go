package trail_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
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

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/destination/gcsdest"
	"github.com/auditstream/auditstream/internal/destination/s3dest"
	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/eventlog"
	"github.com/auditstream/auditstream/internal/netguard"
	"github.com/auditstream/auditstream/internal/poll"
	"github.com/auditstream/auditstream/internal/trail"
)

// checkpointedLog fills the log in rounds of events, each followed by a checkpoint of
// everything before it and that checkpoint's event (published to the log, as the service
// does), and returns the log's events as the delivery engine hands them to destinations.
func checkpointedLog(t *testing.T, f *fixture, rounds ...int) []destination.Event {
	t.Helper()
	var mu sync.Mutex
	w := f.writer(nil)
	w.Publish = func(ctx context.Context, in event.Input) error {
		mu.Lock()
		defer mu.Unlock()
		e := event.Event{EventType: in.EventType, EntityType: in.EntityType, AuthorName: in.AuthorName, Details: in.Details, CreatedAt: time.Now().UTC()}
		_, err := f.log.Publish(ctx, []eventlog.Message{{Subject: eventlog.Subject(eventlog.RootInstance, in.EventType), Data: e.AppendJSON(nil)}})
		return err
	}
	run(t, w)
	var last int64
	for _, n := range rounds {
		ids := f.publish(t, n)
		last = ids[len(ids)-1]
		// Settled: the checkpoint covers the round, and its event is the tree's last leaf.
		poll.Until(t, 20*time.Second, func() error {
			c, err := f.st.TrailCheckpointLatest(f.ctx)
			if err != nil {
				return err
			}
			size, err := f.st.TrailSize(f.ctx)
			if err != nil {
				return err
			}
			if c.Size < last || size != c.Size+1 {
				return fmt.Errorf("checkpoint of %d, tree of %d, last event %d", c.Size, size, last)
			}
			last = size
			return nil
		})
	}
	rd, err := f.log.NewReader(f.ctx, 0)
	require.NoError(t, err)
	defer rd.Close()
	var out []destination.Event
	for int64(len(out)) < last {
		r, err := rd.Next(f.ctx, 5*time.Second)
		require.NoError(t, err)
		var head struct {
			CreatedAt time.Time `json:"created_at"`
		}
		require.NoError(t, json.Unmarshal(r.Data, &head))
		out = append(out, destination.Event{ID: r.Seq, Type: r.Subject[strings.LastIndexByte(r.Subject, '.')+1:], CreatedAt: head.CreatedAt,
			JSON: event.AppendWithID(nil, r.Data, r.Seq)})
	}
	return out
}

// bucketCopy delivers events with the real S3 sender to gofakes3 (one Send per event, or
// batches of 7) and copies the bucket to a directory, as an auditor would with aws s3 sync.
func bucketCopy(t *testing.T, events []destination.Event, batched bool) string {
	t.Helper()
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(srv.Close)
	hc := netguard.Policy{AllowPrivate: true}.HTTPClient()
	c := s3.New(s3.Options{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("k", "s", ""),
		BaseEndpoint: aws.String(srv.URL), UsePathStyle: true, HTTPClient: hc})
	ctx := context.Background()
	_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("audit")})
	require.NoError(t, err)
	cfg := fmt.Sprintf(`{"accessKeyXid":"AKIAAUDITSTREAMTEST1","awsRegion":"us-east-1","bucketName":"audit","endpoint":%q,"pathStyle":true`, srv.URL)
	if batched {
		cfg += `,"batch":{"maxBytes":1048576,"maxEvents":7,"maxWaitMs":1000}`
	}
	snd, err := s3dest.New(destination.Settings{ID: 1, Category: destination.CategoryAWS, Config: []byte(cfg + "}"), SecretToken: "secret-access-key"}, destination.Env{HTTPClient: hc})
	require.NoError(t, err)
	defer snd.Close()
	step := 1
	if batched {
		step = 7
	}
	for i := 0; i < len(events); i += step {
		require.NoError(t, snd.Send(ctx, events[i:min(i+step, len(events))]))
	}
	dir := t.TempDir()
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String("audit")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		require.NoError(t, err)
		for _, o := range page.Contents {
			got, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("audit"), Key: o.Key})
			require.NoError(t, err)
			body, err := io.ReadAll(got.Body)
			_ = got.Body.Close()
			require.NoError(t, err)
			name := filepath.Join(dir, filepath.FromSlash(*o.Key))
			require.NoError(t, os.MkdirAll(filepath.Dir(name), 0o755))
			require.NoError(t, os.WriteFile(name, body, 0o644))
		}
	}
	return dir
}

// gcsBucketCopy delivers events in batches of 7 with the real GCS sender to fake-gcs-server,
// under a prefix, and copies the bucket to a directory.
func gcsBucketCopy(t *testing.T, events []destination.Event) string {
	t.Helper()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1"})
	require.NoError(t, err)
	t.Cleanup(srv.Stop)
	srv.CreateBucket("audit")
	snd, err := gcsdest.NewWithEndpoint(destination.Settings{ID: 1, Category: destination.CategoryGCS,
		Config: []byte(`{"bucketName":"audit","prefix":"gitlab/","batch":{"maxEvents":7}}`)},
		destination.Env{HTTPClient: netguard.Policy{AllowPrivate: true}.HTTPClient()}, srv.URL())
	require.NoError(t, err)
	defer snd.Close()
	for i := 0; i < len(events); i += 7 {
		require.NoError(t, snd.Send(context.Background(), events[i:min(i+7, len(events))]))
	}
	objs, _, err := srv.ListObjectsWithOptions("audit", fakestorage.ListOptions{})
	require.NoError(t, err)
	dir := t.TempDir()
	for _, o := range objs {
		obj, err := srv.GetObject("audit", o.Name)
		require.NoError(t, err)
		name := filepath.Join(dir, filepath.FromSlash(o.Name))
		require.NoError(t, os.MkdirAll(filepath.Dir(name), 0o755))
		require.NoError(t, os.WriteFile(name, obj.Content, 0o644))
	}
	return dir
}

// objectOf finds the one file under dir whose name contains part.
func objectOf(t *testing.T, dir, part string) string {
	t.Helper()
	var found []string
	require.NoError(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(filepath.ToSlash(p), part) {
			found = append(found, p)
		}
		return err
	}))
	require.Len(t, found, 1, "objects matching %q", part)
	return found[0]
}

// TestVerifyBucket: a bucket written by the real S3 sender, copied to a directory, verifies
// with the public key alone, per-event objects and batches; a dropped object, an altered one
// and a checkpoint with a replaced signature are each found and named.
func TestVerifyBucket(t *testing.T) {
	f := setup(t)
	events := checkpointedLog(t, f, 10, 12, 9)
	v := &trail.Verifier{Keys: []string{f.key.VerifierKey}}
	verify := func(dir string) (trail.BucketReport, error) { return v.VerifyBucket(f.ctx, os.DirFS(dir)) }

	for _, batched := range []bool{false, true} {
		dir := bucketCopy(t, events, batched)
		rep, err := verify(dir)
		require.NoError(t, err, "batched=%v", batched)
		require.Equal(t, int64(len(events)-1), rep.Size, "the last checkpoint covers all but its own event")
		require.Equal(t, int64(len(events)), rep.Events)
		require.GreaterOrEqual(t, rep.Checkpoints, 3, "one per round at least")
		require.Equal(t, int64(1), rep.Uncovered)
	}

	// A GCS bucket under a prefix, in batches.
	rep, err := verify(gcsBucketCopy(t, events))
	require.NoError(t, err)
	require.Equal(t, int64(len(events)-1), rep.Size)

	failure := func(err error) *trail.Failure {
		t.Helper()
		fail, ok := errors.AsType[*trail.Failure](err)
		require.True(t, ok, "want a *trail.Failure, got %v", err)
		return fail
	}
	t.Run("dropped object", func(t *testing.T) {
		dir := bucketCopy(t, events, false)
		require.NoError(t, os.Remove(objectOf(t, dir, "_5_")))
		_, err := verify(dir)
		fail := failure(err)
		require.Equal(t, int64(5), fail.ID, err.Error())
		require.Equal(t, trail.ReasonMissing, fail.Reason)
	})
	t.Run("dropped batch", func(t *testing.T) {
		dir := bucketCopy(t, events, true)
		require.NoError(t, os.Remove(objectOf(t, dir, "_8-14.ndjson.gz")))
		_, err := verify(dir)
		fail := failure(err)
		require.Equal(t, int64(8), fail.ID, err.Error())
		require.Equal(t, trail.ReasonMissing, fail.Reason)
	})
	t.Run("altered object", func(t *testing.T) {
		dir := bucketCopy(t, events, false)
		name := objectOf(t, dir, "_14_")
		b, err := os.ReadFile(name)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(name, bytes.Replace(b, []byte("Alice"), []byte("Mallory"), 1), 0o644))
		_, err = verify(dir)
		fail := failure(err)
		require.Equal(t, trail.ReasonInconsistent, fail.Reason, err.Error())
		// A checkpoint was signed at 10 (the first round) and the next one covers 14: the
		// failure names the first id after the one that still matched, and the range.
		require.Greater(t, fail.ID, int64(10), err.Error())
		require.LessOrEqual(t, fail.ID, int64(14), err.Error())
		require.Contains(t, fail.Detail, fmt.Sprintf("ids %d-", fail.ID))
	})
	t.Run("object under another id", func(t *testing.T) {
		dir := bucketCopy(t, events, false)
		a, b := objectOf(t, dir, "_3_"), objectOf(t, dir, "_4_")
		ba, err := os.ReadFile(a)
		require.NoError(t, err)
		bb, err := os.ReadFile(b)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(a, bb, 0o644))
		require.NoError(t, os.WriteFile(b, ba, 0o644))
		_, err = verify(dir)
		fail := failure(err)
		require.Equal(t, trail.ReasonReordered, fail.Reason, err.Error())
	})
	t.Run("copy of a destination created later", func(t *testing.T) {
		// The destination was created when the log held 12 events: its copy starts at id 13.
		dir := bucketCopy(t, events[12:], false)
		_, err := verify(dir)
		fail := failure(err)
		require.Equal(t, int64(1), fail.ID, err.Error())
		require.Equal(t, trail.ReasonMissing, fail.Reason)
		require.Contains(t, fail.Detail, "--partial")

		partial := &trail.Verifier{Keys: v.Keys, Partial: true}
		rep, err := partial.VerifyBucket(f.ctx, os.DirFS(dir))
		require.NoError(t, err)
		require.Greater(t, rep.From, int64(12), "it starts from the first checkpoint after the copy's first id")
		require.Equal(t, int64(len(events)-1), rep.Size)
		require.Equal(t, rep.From-12, rep.Before)

		// An event after the start altered: found.
		name := objectOf(t, dir, fmt.Sprintf("_%d_", rep.From+2))
		b, err := os.ReadFile(name)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(name, bytes.Replace(b, []byte("Alice"), []byte("Mallory"), 1), 0o644))
		_, err = partial.VerifyBucket(f.ctx, os.DirFS(dir))
		require.Equal(t, trail.ReasonInconsistent, failure(err).Reason, err.Error())
	})
	t.Run("replaced signature", func(t *testing.T) {
		dir := bucketCopy(t, events, false)
		cps, err := os.ReadDir(filepath.Join(dir, "checkpoints"))
		require.NoError(t, err)
		require.NotEmpty(t, cps)
		name := filepath.Join(dir, "checkpoints", cps[0].Name())
		b, err := os.ReadFile(name)
		require.NoError(t, err)
		_, sig, ok := bytes.Cut(b, []byte("\n\n"))
		require.True(t, ok)
		other, _ := bytes.CutSuffix(sig, []byte("\n"))
		// The signature line is "— <name> <base64>": flip a character of its base64.
		i := len(other) - 3
		other[i] ^= 1
		require.NoError(t, os.WriteFile(name, b, 0o644))
		_, err = verify(dir)
		fail := failure(err)
		require.Equal(t, trail.ReasonBadSignature, fail.Reason, err.Error())
		require.Contains(t, fail.Detail, "checkpoints/"+cps[0].Name())
	})
}

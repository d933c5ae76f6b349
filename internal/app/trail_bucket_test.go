package app_test

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/poll"
	"github.com/auditstream/auditstream/internal/trail"
)

// TestTrailCheckpointsTravelToABucket: through the service, an instance S3 destination receives
// the trail's checkpoints, writes each as checkpoints/… next to its batches, and a local copy
// of the bucket verifies with the public key alone.
func TestTrailCheckpointsTravelToABucket(t *testing.T) {
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(srv.Close)
	c := s3.New(s3.Options{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIAIOSFODNN7EXAMPLE", "secret", ""),
		BaseEndpoint: aws.String(srv.URL), UsePathStyle: true})
	ctx := context.Background()
	_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("audit-logs")})
	require.NoError(t, err)

	s := start(t, "sqlite", trailConfig, noLimits, allowPrivate)
	s.createInstanceDestination("aws", map[string]any{"accessKeyXid": "AKIAIOSFODNN7EXAMPLE", "bucketName": "audit-logs",
		"awsRegion": "us-east-1", "endpoint": srv.URL, "pathStyle": true, "batch": map[string]any{"maxEvents": 5, "maxWaitMs": 100}},
		"wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY")
	ids, _ := trailEvents(s, 12)
	last := ids[len(ids)-1]
	cp := s.checkpoint(last)

	// Wait for a checkpoint object that covers the events.
	dir := t.TempDir()
	poll.Until(t, 20*time.Second, func() error {
		out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("audit-logs")})
		if err != nil {
			return err
		}
		covered := false
		for _, o := range out.Contents {
			if size, ok := strings.CutPrefix(*o.Key, "checkpoints/"); ok {
				n, _, _ := strings.Cut(size, "-")
				if x, err := strconv.ParseInt(n, 10, 64); err == nil && x >= last {
					covered = true
				}
			}
		}
		if !covered {
			return fmt.Errorf("no checkpoint object covers id %d yet", last)
		}
		return nil
	})
	out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("audit-logs")})
	require.NoError(t, err)
	for _, o := range out.Contents {
		got, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("audit-logs"), Key: o.Key})
		require.NoError(t, err)
		b, err := io.ReadAll(got.Body)
		_ = got.Body.Close()
		require.NoError(t, err)
		name := filepath.Join(dir, filepath.FromSlash(*o.Key))
		require.NoError(t, os.MkdirAll(filepath.Dir(name), 0o755))
		require.NoError(t, os.WriteFile(name, b, 0o644))
	}
	// The destination was created after the service's first events (its own audit events):
	// the copy may start after id 1, which --partial allows.
	v := &trail.Verifier{Keys: []string{cp.VerifierKey}, Partial: true}
	rep, err := v.VerifyBucket(ctx, os.DirFS(dir))
	require.NoError(t, err)
	require.GreaterOrEqual(t, rep.Size, last)
	require.Positive(t, rep.Checkpoints)
	t.Logf("bucket verified: %+v", rep)
}

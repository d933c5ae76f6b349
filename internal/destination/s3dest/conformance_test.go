package s3dest_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/destination/destinationtest"
	"github.com/auditstream/auditstream/internal/destination/s3dest"
)

// TestConformance runs the suite every category runs against gofakes3. S3's failure codes are
// classified by TestClassification.
func TestConformance(t *testing.T) {
	destinationtest.Run(t, destinationtest.Harness{Batches: true, Idempotent: true, Start: func(t *testing.T) *destinationtest.Server {
		srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
		t.Cleanup(srv.Close)
		reader := sdkClient(srv.URL, "any-key", "any-secret")
		_, err := reader.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(bucket)})
		require.NoError(t, err)
		return &destinationtest.Server{
			Open: func(t *testing.T, env destination.Env, batched bool) destination.Sender {
				var extra []string
				if batched {
					extra = append(extra, batchConfig)
				}
				snd, err := s3dest.New(settings(srv.URL, bucket, secretKey, extra...), env)
				require.NoError(t, err)
				return snd
			},
			Delivered: func(t *testing.T) []int64 {
				var ids []int64
				for _, o := range listObjects(t, reader, bucket) {
					body := o.Body
					if bytes.HasPrefix(body, []byte{0x1f, 0x8b}) {
						zr, err := gzip.NewReader(bytes.NewReader(body))
						require.NoError(t, err)
						body, err = io.ReadAll(zr)
						require.NoError(t, err)
					}
					dec := json.NewDecoder(bytes.NewReader(body))
					for dec.More() {
						var ev struct{ ID int64 }
						require.NoError(t, dec.Decode(&ev))
						ids = append(ids, ev.ID)
					}
				}
				return ids
			},
			Secrets: []string{secretKey},
			Stop:    srv.Close,
		}
	}})
}

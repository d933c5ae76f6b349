package gcsdest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/destination/destinationtest"
)

// TestConformance runs the suite every category runs against fake-gcs-server. Its failure
// answers are classified by TestErrorResponses, a dead server by TestNetworkErrorRetryable.
func TestConformance(t *testing.T) {
	destinationtest.Run(t, destinationtest.Harness{Batches: true, Idempotent: true, Start: func(t *testing.T) *destinationtest.Server {
		srv := newFakeGCS(t)
		return &destinationtest.Server{
			Open: func(t *testing.T, env destination.Env, batched bool) destination.Sender {
				cfg := `{"bucketName":"` + bucket + `"`
				if batched {
					cfg += `,"batch":{"maxEvents":100,"maxBytes":1048576,"maxWaitMs":1000}`
				}
				snd, err := NewWithEndpoint(settings(cfg+"}", ""), env, srv.URL())
				require.NoError(t, err)
				return snd
			},
			Delivered: func(t *testing.T) []int64 {
				var ids []int64
				for _, a := range listObjects(t, srv.Client(), "") {
					o, err := srv.GetObject(bucket, a.Name)
					require.NoError(t, err)
					body := o.Content
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
		}
	}})
}

package splunkhec

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/destination/destinationtest"
)

// TestConformance runs the suite every category runs against the HEC server, which answers as
// Splunk documents.
func TestConformance(t *testing.T) {
	destinationtest.Run(t, destinationtest.Harness{Batches: true, Start: func(t *testing.T) *destinationtest.Server {
		s := newTestHEC(t)
		return &destinationtest.Server{
			Open: func(t *testing.T, env destination.Env, batched bool) destination.Sender {
				cfg := `"index":"audit"`
				if batched {
					cfg += "," + batchConfig
				}
				snd, err := New(settings(s.URL+"/?k=query-secret", testToken, cfg), env)
				require.NoError(t, err)
				return snd
			},
			Delivered: func(t *testing.T) []int64 {
				var ids []int64
				for _, e := range s.indexedEvents() {
					var ev struct{ ID int64 }
					require.NoError(t, json.Unmarshal(e.Event, &ev))
					ids = append(ids, ev.ID)
				}
				return ids
			},
			Secrets: []string{testToken, "query-secret"},
			Stop:    s.Close,
			Refuse: func(kind destination.FailureKind) bool {
				switch kind {
				case destination.Permanent:
					s.failWith(4) // invalid token
				case destination.Throttled:
					s.failWith(26) // queue at capacity
				case destination.Retryable:
					s.failWith(8) // internal server error
				}
				return true
			},
		}
	}})
}

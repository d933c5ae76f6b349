package httpdest_test

import (
	"encoding/json"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/destination/destinationtest"
	"github.com/auditstream/auditstream/internal/destination/httpdest"
)

// TestConformance runs the suite every category runs against the recorder, an HTTP server.
func TestConformance(t *testing.T) {
	destinationtest.Run(t, destinationtest.Harness{Batches: true, Start: func(t *testing.T) *destinationtest.Server {
		var refuse atomic.Int32 // an HTTP status to answer with, 0 for 200
		rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
			if code := int(refuse.Load()); code != 0 {
				if code == http.StatusTooManyRequests {
					w.Header().Set("Retry-After", "1")
				}
				http.Error(w, "refused "+token, code) // a receiver that echoes the token
			}
		})
		return &destinationtest.Server{
			Open: func(t *testing.T, env destination.Env, batched bool) destination.Sender {
				snd, err := httpdest.New(settings(rec.URL+"/?token="+querySecret, batched), env)
				require.NoError(t, err)
				return snd
			},
			Delivered: func(t *testing.T) []int64 {
				var ids []int64
				for _, r := range rec.requests() {
					if refuse.Load() != 0 {
						continue
					}
					var evs []struct{ ID int64 }
					if len(r.Body) > 0 && r.Body[0] == '[' {
						require.NoError(t, json.Unmarshal(r.Body, &evs))
					} else {
						var ev struct{ ID int64 }
						require.NoError(t, json.Unmarshal(r.Body, &ev))
						evs = append(evs, ev)
					}
					for _, ev := range evs {
						ids = append(ids, ev.ID)
					}
				}
				return ids
			},
			Secrets: []string{token, headerValue, inactiveVal, querySecret, signingSecret},
			Stop:    rec.Close,
			Refuse: func(kind destination.FailureKind) bool {
				refuse.Store(map[destination.FailureKind]int32{destination.Permanent: 403, destination.Throttled: 429, destination.Retryable: 502}[kind])
				return true
			},
		}
	}})
}

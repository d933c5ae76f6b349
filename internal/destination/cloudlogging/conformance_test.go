package cloudlogging_test

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/destination/cloudlogging"
	"github.com/auditstream/auditstream/internal/destination/destinationtest"
)

// TestConformance runs the suite every category runs against the fake of Google's token and
// logging endpoints.
func TestConformance(t *testing.T) {
	destinationtest.Run(t, destinationtest.Harness{Batches: true, Start: func(t *testing.T) *destinationtest.Server {
		g := newFakeGoogle(t, &goodKey().key.PublicKey, testEmail, testProject)
		return &destinationtest.Server{
			Open: func(t *testing.T, env destination.Env, batched bool) destination.Sender {
				cfg := defaultConfig()
				if batched {
					cfg["batch"] = map[string]any{"maxEvents": 100}
				}
				snd, err := cloudlogging.NewWithEndpoints(settings(t, cfg, goodKey().pem), env, g.srv.URL, g.tokenURL())
				require.NoError(t, err)
				return snd
			},
			Delivered: func(t *testing.T) []int64 {
				var ids []int64
				for _, e := range g.stats().entries {
					p, _ := e["jsonPayload"].(map[string]any)
					id, err := strconv.ParseInt(fmt.Sprint(p["id"]), 10, 64)
					require.NoError(t, err, "entry %v has no jsonPayload.id", e)
					ids = append(ids, id)
				}
				return ids
			},
			Secrets: secretParts(),
			Stop:    g.srv.Close,
			Refuse: func(kind destination.FailureKind) bool {
				status := map[destination.FailureKind]int{destination.Permanent: 400, destination.Throttled: 429, destination.Retryable: 500}[kind]
				g.setWriteHook(func(w http.ResponseWriter, _ *http.Request) bool {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(status)
					_, _ = fmt.Fprintf(w, `{"error":{"code":%d,"message":"refused","status":"REFUSED"}}`, status)
					return true
				})
				return true
			},
		}
	}})
}

// secretParts are what no error may show: the key's lines (and their starts) and the access
// tokens the fake issues (ya29.).
func secretParts() []string {
	out := []string{"-----END", "ya29."}
	for _, line := range strings.Fields(goodKey().pem) {
		if len(line) >= 16 {
			out = append(out, line, line[:16])
		}
	}
	return out
}

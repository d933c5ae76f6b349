package splunkhec

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/destination/destinationtest"
)

// TestFormatOCSF: with format ocsf, each HEC event's event member is the event's OCSF JSON;
// time and the metadata stay, and the test HEC indexes them.
func TestFormatOCSF(t *testing.T) {
	s := newTestHEC(t)
	snd := newSender(t, settings(s.URL, testToken, `"index":"main","format":"ocsf",`+batchConfig), destination.Env{})
	batch := []destination.Event{event(1), event(2)}
	require.NoError(t, snd.Send(context.Background(), batch))

	reqs := s.dataRequests()
	require.Len(t, reqs, 1)
	lines := strings.Split(string(reqs[0].Body), "\n")
	require.Len(t, lines, 2)
	got := s.indexedEvents()
	require.Len(t, got, 2)
	for i, e := range batch {
		ocsf := destinationtest.Encoded(t, "ocsf", e)
		require.Equal(t, `{"time":173262600`+strconv.Itoa(i)+`.123,"sourcetype":"gitlab:audit","index":"main","event":`+string(ocsf)+`}`, lines[i])
		require.JSONEq(t, string(ocsf), string(got[i].Event))
	}
}

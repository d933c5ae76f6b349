package gcsdest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/destination/destinationtest"
	"github.com/auditstream/auditstream/internal/destination/objectstore"
)

// TestFormatOCSF: with format ocsf, an event's object holds its OCSF JSON at GitLab's key, and
// a batch object OCSF NDJSON, against fake-gcs-server.
func TestFormatOCSF(t *testing.T) {
	srv := newFakeGCS(t)
	ctx := context.Background()
	e := destinationtest.Event(1, "group_created")
	snd := startSender(t, settings(fmt.Sprintf(`{"bucketName":%q,"format":"ocsf"}`, bucket), ""), localEnv(), srv.URL())
	require.NoError(t, snd.Send(ctx, []destination.Event{e}))
	batch := []destination.Event{destinationtest.Event(2, "user_created"), destinationtest.Event(3, "user_blocked")}
	snd = startSender(t, settings(fmt.Sprintf(`{"bucketName":%q,"format":"ocsf","batch":{"maxEvents":10}}`, bucket), ""), localEnv(), srv.URL())
	require.NoError(t, snd.Send(ctx, batch))

	c := srv.Client()
	require.Len(t, listObjects(t, c, ""), 2)
	key := objectstore.EventKey("", e)
	require.True(t, strings.HasSuffix(key, ".json"), key)
	require.Equal(t, string(destinationtest.Encoded(t, "ocsf", e)), string(readObject(t, c, key)))
	lines := gunzipLines(t, readObject(t, c, objectstore.BatchKey("", batch)))
	require.Equal(t, []string{string(destinationtest.Encoded(t, "ocsf", batch[0])), string(destinationtest.Encoded(t, "ocsf", batch[1]))}, lines)
}

package eventlog_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/eventlog"
)

// TestFindMsgIDs: the keys the log holds are found with their sequence, on the subjects asked
// and from the time asked only, however long ago the duplicate window forgot them.
func TestFindMsgIDs(t *testing.T) {
	ctx, l := setup(t)
	ids, err := l.Publish(ctx, []eventlog.Message{
		{Subject: "audit.g1.user_created", Data: []byte(`{}`), MsgID: "k1"},
		{Subject: "audit.instance.member_created", Data: []byte(`{}`), MsgID: "k2"},
		{Subject: "audit.g1.other", Data: []byte(`{}`), MsgID: "k3"},
		{Subject: "audit.g2.user_created", Data: []byte(`{}`)},
	})
	require.NoError(t, err)
	subjects := []string{"audit.*.user_created", "audit.*.member_created"}

	found, err := l.FindMsgIDs(ctx, time.Now().Add(-time.Minute), subjects, []string{"k1", "k2", "k3", "k4"})
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"k1": ids[0], "k2": ids[1]}, found, "k3 is on another subject, k4 was never published")

	found, err = l.FindMsgIDs(ctx, time.Now().Add(time.Minute), subjects, []string{"k1"})
	require.NoError(t, err)
	require.Empty(t, found, "published before since")

	found, err = l.FindMsgIDs(ctx, time.Now().Add(-time.Minute), subjects, nil)
	require.NoError(t, err)
	require.Empty(t, found)
}

package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/poll"
	"github.com/auditstream/auditstream/internal/store"
)

// TestOutboxPublishesOnceAfterACrash: an outbox row whose event the log already holds (it was
// published, and the process died before deleting the row) is deleted, not published again,
// also when the service restarts after the log's duplicate window forgot the key.
func TestOutboxPublishesOnceAfterACrash(t *testing.T) {
	cfg := Defaults()
	cfg.DataDir, cfg.Listen, cfg.LogLevel = t.TempDir(), "127.0.0.1:0", "error"
	cfg.AdminToken = "ast-outbox-test-admin-token-0123456789"
	cfg.DuplicateWindow = time.Second
	// No checkpoint during the test: its event is stream-only, and the test compares the
	// store's last id with the log's.
	cfg.TrailCheckpointInterval = time.Hour
	ctx := t.Context()

	adm, err := OpenAdmin(ctx, cfg)
	require.NoError(t, err)
	_, err = adm.CreateUser(ctx, 0, "alice", "Alice", "alice@example.com", false)
	require.NoError(t, err)
	require.NoError(t, adm.Close())

	a, err := New(ctx, cfg, NewLogger(io.Discard, cfg.LogLevel), io.Discard)
	require.NoError(t, err)
	rows, err := a.store.AuditOutboxList(ctx, store.AuditOutboxListParams{Limit: 10})
	require.NoError(t, err)
	require.Len(t, rows, 1)
	// The publish of a process that died before its delete.
	in, by, err := decodeOutbox(rows[0])
	require.NoError(t, err)
	require.NoError(t, a.outbox.rec.Record(ctx, in, by))
	published := time.Now()
	poll.Until(t, 10*time.Second, func() error {
		if time.Since(published) < 2*cfg.DuplicateWindow {
			return errors.New("the log's duplicate window still holds the key")
		}
		return nil
	})

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	t.Cleanup(func() { stop(); require.NoError(t, <-done) })
	poll.Until(t, 20*time.Second, func() error {
		left, err := a.store.AuditOutboxList(ctx, store.AuditOutboxListParams{Limit: 10})
		if err != nil {
			return err
		}
		if len(left) > 0 {
			return fmt.Errorf("%d rows left in the outbox", len(left))
		}
		// Everything the log holds is stored.
		info, err := a.log.Info(ctx)
		if err != nil {
			return err
		}
		if maxID, err := a.store.EventMaxID(ctx); err != nil || maxID != int64(info.LastSeq) {
			return fmt.Errorf("stored up to %d of %d (%v)", maxID, info.LastSeq, err)
		}
		return nil
	})
	n, err := a.store.EventCount(ctx, store.EventListParams{EventType: "user_created"})
	require.NoError(t, err)
	require.Equal(t, int64(1), n, "the event is stored once")
}

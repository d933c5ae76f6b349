package trail_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"

	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/eventlog"
	"github.com/auditstream/auditstream/internal/poll"
	"github.com/auditstream/auditstream/internal/trail"
)

// TestWriterPublishesCheckpoints: every signed checkpoint is published as an event of its own
// type whose details carry the size, the root, the origin and the signed note exactly; the
// event is a later leaf, covered by the next checkpoint; a tree that grew by checkpoint events
// alone is not signed again; a failed publish is tried again.
func TestWriterPublishesCheckpoints(t *testing.T) {
	f := setup(t)
	f.publish(t, 10)
	var mu sync.Mutex
	var got []event.Input
	own := map[int64][]byte{} // the checkpoint events' leaves, merged into f.data under mu
	leaves := func(n int64) [][]byte {
		mu.Lock()
		defer mu.Unlock()
		for id, b := range own {
			f.data[id] = b
		}
		return f.leaves(n)
	}
	fail := 1 // the first publish fails
	w := f.writer(nil)
	w.Publish = func(ctx context.Context, in event.Input) error {
		mu.Lock()
		defer mu.Unlock()
		if fail > 0 {
			fail--
			return errors.New("the log is away")
		}
		got = append(got, in)
		e := event.Event{EventType: in.EventType, EntityType: in.EntityType, AuthorName: in.AuthorName, Details: in.Details, CreatedAt: time.Now().UTC()}
		seqs, err := f.log.Publish(ctx, []eventlog.Message{{Subject: eventlog.Subject(eventlog.RootInstance, in.EventType), Data: e.AppendJSON(nil)}})
		if err == nil {
			own[seqs[0]] = event.AppendWithID(nil, e.AppendJSON(nil), seqs[0])
		}
		return err
	}
	stop := run(t, w)
	cp := f.checkpointed(t, 10)
	poll.Until(t, 20*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(got) == 0 {
			return errors.New("no checkpoint event yet")
		}
		return nil
	})
	mu.Lock()
	in := got[0]
	mu.Unlock()
	require.Equal(t, event.TypeTrailCheckpoint, in.EventType)
	require.Equal(t, event.EntityInstance, in.EntityType)
	var d trail.CheckpointDetails
	require.NoError(t, json.Unmarshal(in.Details, &d))
	require.Equal(t, int64(10), d.TreeSize)
	require.Equal(t, base64.StdEncoding.EncodeToString(cp.Root[:]), d.RootHash)
	require.Equal(t, "test.example/trail", d.Origin)
	require.Len(t, d.Frontier, 2, "a tree of 10 leaves (0b1010) is made of two complete subtrees")
	stored, err := f.st.TrailCheckpointLatest(f.ctx)
	require.NoError(t, err)
	require.Equal(t, string(stored.Note), d.Checkpoint, "the event carries the signed note exactly")
	v, err := note.NewVerifier(f.key.VerifierKey)
	require.NoError(t, err)
	_, err = note.Open([]byte(d.Checkpoint), note.VerifierList(v))
	require.NoError(t, err)

	// The checkpoint event is leaf 11; events after it make a checkpoint that covers it.
	f.publish(t, 3)
	cp = f.checkpointed(t, 14)
	require.Equal(t, rootOf(t, leaves(14)), cp.Root)
	// The event of checkpoint 14 is leaf 15: alone, it calls for no checkpoint of 15.
	poll.Until(t, 20*time.Second, func() error {
		n, err := f.st.TrailSize(f.ctx)
		if err != nil {
			return err
		}
		if n != 15 {
			return fmt.Errorf("tree of %d leaves, want 15", n)
		}
		return nil
	})
	// Two intervals after checkpoint 14 the writer has looked twice; one more event then
	// makes the next checkpoint of 16, the third.
	signed := time.Now()
	poll.Until(t, 20*time.Second, func() error {
		if time.Since(signed) < 2*w.CheckpointInterval {
			return errors.New("not two intervals yet")
		}
		return nil
	})
	f.publish(t, 1)
	cp = f.checkpointed(t, 16)
	require.Equal(t, rootOf(t, leaves(16)), cp.Root)
	// A writer that starts after the last checkpoint's event (leaf 17) does not sign for it
	// alone either.
	poll.Until(t, 20*time.Second, func() error {
		if n, err := f.st.TrailSize(f.ctx); err != nil || n != 17 {
			return fmt.Errorf("tree of %d leaves, want 17 (%v)", n, err)
		}
		return nil
	})
	stop()
	w2 := f.writer(nil)
	w2.Publish = w.Publish
	run(t, w2)
	started := time.Now()
	poll.Until(t, 20*time.Second, func() error {
		if time.Since(started) < 3*w2.CheckpointInterval {
			return errors.New("not three intervals yet")
		}
		return nil
	})
	f.publish(t, 1)
	cp = f.checkpointed(t, 18)
	require.Equal(t, rootOf(t, leaves(18)), cp.Root)
	// The event of checkpoint 18 is published after the checkpoint is stored.
	poll.Until(t, 20*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(got) < 4 {
			return fmt.Errorf("%d checkpoint events, want 4", len(got))
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, got, 4, "checkpoints of 10, 14, 16 and 18 only: a tree grown by its own checkpoint event alone is not signed again, also after a restart")
}

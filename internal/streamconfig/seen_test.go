package streamconfig_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/store/sqlite"
	"github.com/auditstream/auditstream/internal/streamconfig"
)

// countingStore counts the destinations read by id.
type countingStore struct {
	streamconfig.Store
	gets atomic.Int64
}

func (c *countingStore) DestinationGet(ctx context.Context, id int64) (store.Destination, error) {
	c.gets.Add(1)
	return c.Store.DestinationGet(ctx, id)
}

// TestARequestReadsADestinationOnce: within one request (one Seen), the fields of a destination
// the actor may read (its status, its attempts) do not read and authorize it again, so 500
// readers of a list of 50 do not cost 100 lookups each; a change reads it afresh, and so does
// whatever the request reads of it after the change.
func TestARequestReadsADestinationOnce(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "auditstream.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	require.NoError(t, st.Migrate(ctx))
	d, err := st.DestinationCreate(ctx, store.DestinationCreateParams{Scope: store.ScopeInstance, Name: "siem", Category: "http",
		Config: []byte(`{"url":"https://siem.example/audit"}`), Active: true})
	require.NoError(t, err)
	cs := &countingStore{Store: st}
	svc := &streamconfig.Service{Store: cs}
	admin := &auth.Principal{User: store.User{ID: 1, Admin: true}, Token: store.Token{Scopes: []string{auth.ScopeAPI}}}
	ref := streamconfig.Ref{Scope: store.ScopeInstance, ID: d.ID}

	a := streamconfig.Actor{Principal: admin, Seen: streamconfig.NewSeen()}
	for range 3 {
		got, err := svc.Authorized(ctx, a, ref, false)
		require.NoError(t, err)
		require.Equal(t, d.ID, got.ID)
	}
	require.EqualValues(t, 1, cs.gets.Load(), "read once for the request")
	_, err = svc.Authorized(ctx, a, streamconfig.Ref{Scope: store.ScopeGroup, ID: d.ID}, false)
	require.ErrorIs(t, err, streamconfig.ErrNotFound, "what the request remembers is still checked against the reference")
	_, err = svc.Authorized(ctx, a, ref, true)
	require.NoError(t, err)
	_, err = svc.Authorized(ctx, a, ref, false)
	require.NoError(t, err)
	require.EqualValues(t, 4, cs.gets.Load(), "a change reads it afresh, and what follows the change too")

}

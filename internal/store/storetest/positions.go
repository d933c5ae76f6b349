package storetest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/store"
)

func (s *suite) testDeliveryPositions(t *testing.T) {
	ctx, st := s.setup(t)
	got, err := st.DeliveryPositionList(ctx)
	require.NoError(t, err)
	require.Empty(t, got)

	base := store.DeliveryPosition{Partition: 3, Position: 100, KnownID: 7}
	own := store.DeliveryPosition{Partition: 3, DestinationID: 35, Position: 90}
	other := store.DeliveryPosition{Partition: 4, DestinationID: 36, Position: -1}
	require.NoError(t, st.DeliveryPositionSave(ctx, store.DeliveryPositionSaveParams{Put: []store.DeliveryPosition{own, base, other}}))
	got, err = st.DeliveryPositionList(ctx)
	require.NoError(t, err)
	require.Equal(t, []store.DeliveryPosition{base, own, other}, got, "ordered by partition and destination")

	// Put replaces; delete removes; both at once; unknown keys are ignored.
	base.Position, base.KnownID = 200, 9
	require.NoError(t, st.DeliveryPositionSave(ctx, store.DeliveryPositionSaveParams{Put: []store.DeliveryPosition{base},
		Delete: []store.DeliveryPositionKey{{Partition: 3, DestinationID: 35}, {Partition: 9, DestinationID: 1}}}))
	got, err = st.DeliveryPositionList(ctx)
	require.NoError(t, err)
	require.Equal(t, []store.DeliveryPosition{base, other}, got)
	require.NoError(t, st.DeliveryPositionSave(ctx, store.DeliveryPositionSaveParams{}))
}

func (s *suite) testDestinationStamp(t *testing.T) {
	ctx, st := s.setup(t)
	empty, err := st.DestinationStamp(ctx)
	require.NoError(t, err)
	require.Equal(t, store.DestinationStamp{}, empty)
	d, err := st.DestinationCreate(ctx, store.DestinationCreateParams{Scope: store.ScopeInstance, Name: "a", Category: "http", CreatedAt: base})
	require.NoError(t, err)
	created, err := st.DestinationStamp(ctx)
	require.NoError(t, err)
	require.NotEqual(t, empty, created)
	name := "b"
	_, err = st.DestinationUpdate(ctx, store.DestinationUpdateParams{ID: d.ID, Name: &name})
	require.NoError(t, err)
	updated, err := st.DestinationStamp(ctx)
	require.NoError(t, err)
	require.NotEqual(t, created, updated, "an update changes the stamp")
	require.NoError(t, st.DestinationDelete(ctx, d.ID))
	deleted, err := st.DestinationStamp(ctx)
	require.NoError(t, err)
	require.NotEqual(t, updated, deleted, "a delete changes the stamp")
}

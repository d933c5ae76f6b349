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

// testDestinationVersions: every destination's id and version, and a list of chosen ids.
func (s *suite) testDestinationVersions(t *testing.T) {
	ctx, st := s.setup(t)
	vs, err := st.DestinationVersions(ctx)
	require.NoError(t, err)
	require.Empty(t, vs)
	var ids []int64
	for _, n := range []string{"a", "b", "c"} {
		d, err := st.DestinationCreate(ctx, store.DestinationCreateParams{Scope: store.ScopeInstance, Name: n, Category: "http", CreatedAt: base,
			Headers: []store.DestinationHeader{{Name: "X-" + n, Value: n, Active: true}}, EventTypes: []string{"user_created"}})
		require.NoError(t, err)
		ids = append(ids, d.ID)
	}
	name := "b2"
	b, err := st.DestinationUpdate(ctx, store.DestinationUpdateParams{ID: ids[1], Name: &name})
	require.NoError(t, err)
	vs, err = st.DestinationVersions(ctx)
	require.NoError(t, err)
	require.Len(t, vs, 3)
	require.Equal(t, store.DestinationVersion{ID: ids[1], Version: b.Version}, vs[1])
	require.Less(t, vs[0].ID, vs[2].ID, "ordered by id")

	got, err := st.DestinationList(ctx, store.DestinationListParams{IDs: []int64{ids[2], ids[1], 987654}})
	require.NoError(t, err)
	require.Len(t, got, 2, "the ids that exist")
	require.Equal(t, "b2", got[0].Name)
	require.Equal(t, ids[2], got[1].ID)
	require.Len(t, got[1].Headers, 1, "with headers and filters")
	require.Equal(t, []string{"user_created"}, got[1].EventTypes)
	none, err := st.DestinationList(ctx, store.DestinationListParams{IDs: []int64{}})
	require.NoError(t, err)
	require.Empty(t, none, "an empty list of ids lists nothing")
	_, err = st.DestinationList(ctx, store.DestinationListParams{IDs: make([]int64, store.MaxListIDs+1)})
	require.Error(t, err)
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
	_, err = st.DestinationUpdate(ctx, store.DestinationUpdateParams{ID: d.ID, Name: &name, IfVersion: d.Version + 1})
	require.ErrorIs(t, err, store.ErrVersionConflict)
	same, err := st.DestinationStamp(ctx)
	require.NoError(t, err)
	require.Equal(t, created, same, "an update refused changes nothing")
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

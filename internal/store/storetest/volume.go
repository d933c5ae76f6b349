package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/store"
)

// testEventVolume: events are counted per bucket and type, in the database; the list's filters
// (scope, author, type, time) apply; events at a bucket's start count in it, at its end in the
// next; events before Start or from the end on are not counted; invalid parameters are refused.
func (s *suite) testEventVolume(t *testing.T) {
	ctx, st := s.setup(t)
	start := base.Add(-30 * time.Minute) // buckets of an hour: [11:30, 12:30), [12:30, 13:30), [13:30, 14:30)
	evs := []store.EventRecord{
		event(1, start.Add(-time.Millisecond), "user_created", "User", 1, 1), // before Start
		event(2, start, "user_created", "User", 1, 1),                        // bucket 0, at its start
		event(3, base, "user_created", "Group", 7, 2),
		event(4, base.Add(time.Minute), "group_created", "Group", 7, 1),
		event(5, start.Add(time.Hour-time.Millisecond), "group_created", "Group", 8, 1),  // bucket 0, its last millisecond
		event(6, start.Add(time.Hour), "user_created", "Group", 7, 1),                    // bucket 1
		event(7, start.Add(3*time.Hour-time.Millisecond), "user_created", "Group", 7, 2), // bucket 2
		event(8, start.Add(3*time.Hour), "user_created", "Group", 7, 1),                  // the end: not counted
	}
	require.NoError(t, st.EventInsertMany(ctx, evs))
	at := func(b int) time.Time { return start.Add(time.Duration(b) * time.Hour) }
	v := func(b int, typ string, n int64) store.EventVolume {
		return store.EventVolume{Bucket: b, Start: at(b), EventType: typ, Count: n}
	}
	tests := []struct {
		name string
		f    store.EventListParams
		want []store.EventVolume
	}{
		{"all", store.EventListParams{}, []store.EventVolume{v(0, "group_created", 2), v(0, "user_created", 2), v(1, "user_created", 1), v(2, "user_created", 1)}},
		{"one group, as the group's page scopes", store.EventListParams{EntityType: "Group", EntityID: 7, HasEntityID: true},
			[]store.EventVolume{v(0, "group_created", 1), v(0, "user_created", 1), v(1, "user_created", 1), v(2, "user_created", 1)}},
		{"own events only", store.EventListParams{AuthorID: 2, HasAuthorID: true}, []store.EventVolume{v(0, "user_created", 1), v(2, "user_created", 1)}},
		{"one type", store.EventListParams{EventType: "group_created"}, []store.EventVolume{v(0, "group_created", 2)}},
		{"a narrower time range", store.EventListParams{CreatedAfter: base, CreatedBefore: start.Add(time.Hour)}, []store.EventVolume{v(0, "group_created", 2), v(0, "user_created", 1), v(1, "user_created", 1)}},
		{"paging ignored", store.EventListParams{AfterID: 3, Limit: 1, Offset: 2}, []store.EventVolume{v(0, "group_created", 2), v(0, "user_created", 2), v(1, "user_created", 1), v(2, "user_created", 1)}},
		{"nothing", store.EventListParams{EventType: "project_created"}, nil},
	}
	for _, tt := range tests {
		got, err := st.EventVolume(ctx, store.EventVolumeParams{Filter: tt.f, Start: start, Step: time.Hour, Buckets: 3})
		require.NoError(t, err, tt.name)
		require.Equal(t, tt.want, got, tt.name)
	}
	for _, bad := range []store.EventVolumeParams{
		{Step: time.Hour, Buckets: 3},
		{Start: start, Step: time.Millisecond, Buckets: 3},
		{Start: start, Step: time.Hour, Buckets: 0},
		{Start: start, Step: time.Second, Buckets: store.MaxVolumeBuckets + 1},
	} {
		_, err := st.EventVolume(ctx, bad)
		require.Error(t, err, "%+v", bad)
	}
}

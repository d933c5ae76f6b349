package web

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/store"
)

// volumeStore answers EventVolume with rows, and records what it was asked.
type volumeStore struct {
	rows  []store.EventVolume
	asked []store.EventVolumeParams
}

func (v *volumeStore) EventList(context.Context, store.EventListParams) ([]store.EventRecord, error) {
	return nil, nil
}

func (v *volumeStore) EventGet(context.Context, int64) (store.EventRecord, error) {
	return store.EventRecord{}, store.ErrNotFound
}

func (v *volumeStore) EventVolume(_ context.Context, p store.EventVolumeParams) ([]store.EventVolume, error) {
	v.asked = append(v.asked, p)
	return v.rows, nil
}

// TestVolumeChart: the range is the filter's (the last 7 days without one), in at most 60 bars
// of a round length; the five most frequent types are stacked by name and the rest as one; the
// filter's scope goes to the store as it is.
func TestVolumeChart(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 7, 6, 10, 0, 0, time.UTC)
	rows := []store.EventVolume{{Bucket: 0, EventType: "a", Count: 9}, {Bucket: 1, EventType: "b", Count: 8}, {Bucket: 1, EventType: "c", Count: 7},
		{Bucket: 2, EventType: "d", Count: 6}, {Bucket: 2, EventType: "e", Count: 5}, {Bucket: 3, EventType: "f", Count: 1}, {Bucket: 3, EventType: "g", Count: 2}}
	for _, tt := range []struct {
		name        string
		from, to    time.Time
		start       time.Time
		step        time.Duration
		buckets     int
		wantInLabel string
	}{
		{"no range: the last 7 days in 3-hour bars", time.Time{}, time.Time{}, time.Date(2026, 11, 30, 6, 0, 0, 0, time.UTC), 3 * time.Hour, 57, "per 3 hours"},
		{"today: 15-minute bars", time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC), time.Time{}, time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC), 15 * time.Minute, 25, "per 15 minutes"},
		{"one hour: minutes", now.Add(-time.Hour), time.Time{}, now.Add(-time.Hour), time.Minute, 60, "per minute"},
		{"a year: weekly bars", now.AddDate(-1, 0, 0), now.Add(-time.Millisecond), time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC), 7 * 24 * time.Hour, 54, "per 7 days"},
		{"since 1970: 52-week bars", time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), time.Time{}, time.Date(1969, 4, 14, 0, 0, 0, 0, time.UTC), 364 * 24 * time.Hour, 58, "per 364 days"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			vs := &volumeStore{rows: rows}
			u := &UI{opts: Options{Events: vs, NowFunc: func() time.Time { return now }}}
			p := store.EventListParams{CreatedAfter: tt.from, CreatedBefore: tt.to, EntityType: "Group", EntityID: 22, HasEntityID: true, AuthorID: 3, HasAuthorID: true}
			c, err := u.volumeChart(t.Context(), p)
			require.NoError(t, err)
			require.Len(t, vs.asked, 1)
			got := vs.asked[0]
			require.Equal(t, p, got.Filter, "the table's filters and scope, unchanged")
			require.Equal(t, tt.start, got.Start)
			require.Equal(t, tt.step, got.Step)
			require.Equal(t, tt.buckets, got.Buckets)
			require.LessOrEqual(t, got.Buckets, maxBars+1)
			svg := string(c.SVG)
			require.Contains(t, svg, tt.wantInLabel)
			require.Contains(t, svg, "a: 9 in total")
			require.Contains(t, svg, "e: 5 in total")
			require.Contains(t, svg, "other event types: 3 in total", "f and g together")
			require.NotContains(t, svg, "g: 2")
			require.Less(t, strings.Index(svg, ">a</text>"), strings.Index(svg, ">other event types</text>"))
		})
	}
}

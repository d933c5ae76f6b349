package sqlite_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/store"
)

// BenchmarkEventVolume counts a week of 100,000 events of 20 types in 56 bars of 3 hours, as
// the events page does without a date filter, for the instance and for one group.
func BenchmarkEventVolume(b *testing.B) {
	s := open(b)
	require.NoError(b, s.Migrate(b.Context()))
	end := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	const n = 100_000
	batch := make([]store.EventRecord, 0, 1000)
	for i := range n {
		batch = append(batch, store.EventRecord{ID: int64(i + 1), CreatedAt: end.Add(-time.Duration(n-i) * 6 * time.Second),
			EventType: fmt.Sprintf("type_%d", i%20), EntityType: "Group", EntityID: int64(i % 50), AuthorID: 1, Data: []byte(`{}`)})
		if len(batch) == cap(batch) {
			require.NoError(b, s.EventInsertMany(b.Context(), batch))
			batch = batch[:0]
		}
	}
	for _, c := range []struct {
		name string
		f    store.EventListParams
	}{{"instance", store.EventListParams{}}, {"group", store.EventListParams{EntityType: "Group", EntityID: 7, HasEntityID: true}}} {
		b.Run(c.name, func(b *testing.B) {
			p := store.EventVolumeParams{Filter: c.f, Start: end.Add(-7 * 24 * time.Hour), Step: 3 * time.Hour, Buckets: 56}
			for b.Loop() {
				rows, err := s.EventVolume(b.Context(), p)
				require.NoError(b, err)
				require.NotEmpty(b, rows)
			}
		})
	}
}

// BenchmarkDestinationStamp reads the stamp of 10,000 destinations, as the delivery engine
// does every 2 s to learn of changes.
func BenchmarkDestinationStamp(b *testing.B) {
	s := open(b)
	require.NoError(b, s.Migrate(b.Context()))
	for i := range 10_000 {
		_, err := s.DestinationCreate(b.Context(), store.DestinationCreateParams{Scope: store.ScopeInstance,
			Name: fmt.Sprint("d", i), Category: "http", Config: []byte(`{"url":"https://siem.example/audit-events","batched":false}`), CreatedAt: time.Now()})
		require.NoError(b, err)
	}
	for b.Loop() {
		_, err := s.DestinationStamp(b.Context())
		require.NoError(b, err)
	}
}

package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/store"
)

// deliveryDestinations creates two destinations (a group's and the instance's) to hang dead
// letters and delivery attempts on, and returns their ids.
func deliveryDestinations(t *testing.T, ctx context.Context, st store.Store) (d1, d2 int64) {
	t.Helper()
	g, err := st.NamespaceCreate(ctx, store.NamespaceCreateParams{Kind: store.KindGroup, Name: "G", FullPath: "g", CreatedAt: base})
	require.NoError(t, err)
	a, err := st.DestinationCreate(ctx, store.DestinationCreateParams{Scope: store.ScopeGroup, NamespaceKey: g.Key, Name: "a", Category: "http", CreatedAt: base})
	require.NoError(t, err)
	b, err := st.DestinationCreate(ctx, store.DestinationCreateParams{Scope: store.ScopeInstance, Name: "b", Category: "http", CreatedAt: base})
	require.NoError(t, err)
	return a.ID, b.ID
}

// deadLetter returns params of a dead letter of event eventID for destination, failed at base
// plus eventID seconds.
func deadLetter(destination, eventID int64) store.DeadLetterAddParams {
	at := base.Add(time.Duration(eventID) * time.Second)
	return store.DeadLetterAddParams{
		DestinationID: destination,
		EventID:       eventID,
		EventType:     "user_created",
		Event:         fmt.Appendf(nil, `{"id":%d, "event_name":"user_created",  "details":{"z":1}}`, eventID),
		StatusCode:    400,
		Error:         "HTTP 400: bad request",
		Attempts:      3,
		FirstFailedAt: at.Add(-time.Minute),
		LastFailedAt:  at,
		CreatedAt:     at,
	}
}

// addDeadLetters adds dead letters for the events given to destination, in order, and returns
// them as stored.
func addDeadLetters(t *testing.T, ctx context.Context, st store.Store, destination int64, events ...int64) []store.DeadLetter {
	t.Helper()
	var out []store.DeadLetter
	for _, e := range events {
		d, err := st.DeadLetterAdd(ctx, deadLetter(destination, e))
		require.NoError(t, err)
		out = append(out, d)
	}
	return out
}

func deadLetterIDs(ds []store.DeadLetter) []int64 {
	out := make([]int64, 0, len(ds))
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

// reversed returns a reversed copy of ds: newest first, as DeadLetterList returns them.
func reversed[T any](ds []T) []T {
	out := make([]T, len(ds))
	for i, d := range ds {
		out[len(ds)-1-i] = d
	}
	return out
}

// listDeadLetters lists all dead letters of destination (at most MaxDeliveryListLimit).
func listDeadLetters(t *testing.T, ctx context.Context, st store.Store, destination int64) []store.DeadLetter {
	t.Helper()
	ds, err := st.DeadLetterList(ctx, store.DeadLetterListParams{DestinationID: destination, Limit: store.MaxDeliveryListLimit})
	require.NoError(t, err)
	return ds
}

func countDeadLetters(t *testing.T, ctx context.Context, st store.Store, destination int64) int64 {
	t.Helper()
	n, err := st.DeadLetterCount(ctx, destination)
	require.NoError(t, err)
	return n
}

func (s *suite) testDeadLetterRoundTrip(t *testing.T) {
	ctx, st := s.setup(t)
	d1, _ := deliveryDestinations(t, ctx, st)

	zone := time.FixedZone("CEST", 2*3600)
	p := store.DeadLetterAddParams{
		DestinationID: d1,
		EventID:       1 << 40,
		EventType:     "project_renamed",
		Event:         []byte(`{"b": 1,  "a":"\u00fc ü", "n": 1.50}` + "\n"),
		StatusCode:    0,
		Error:         "dial tcp: connection refused",
		Attempts:      17,
		FirstFailedAt: time.Date(2024, 3, 1, 14, 0, 0, 123456789, zone),
		LastFailedAt:  time.Date(2024, 3, 2, 14, 0, 0, 987654321, zone),
		CreatedAt:     time.Date(2024, 3, 2, 14, 0, 1, 5000001, zone),
	}
	got, err := st.DeadLetterAdd(ctx, p)
	require.NoError(t, err)
	require.Positive(t, got.ID)
	want := store.DeadLetter{
		ID: got.ID, DestinationID: d1, EventID: p.EventID, EventType: p.EventType, Event: p.Event,
		StatusCode: 0, Error: p.Error, Attempts: 17,
		FirstFailedAt: ms(p.FirstFailedAt), LastFailedAt: ms(p.LastFailedAt), CreatedAt: ms(p.CreatedAt),
	}
	require.Equal(t, want, got)
	require.Equal(t, time.UTC, got.CreatedAt.Location())
	require.Equal(t, string(p.Event), string(got.Event), "the event is returned byte for byte")

	again, err := st.DeadLetterGet(ctx, got.ID)
	require.NoError(t, err)
	require.Equal(t, want, again)
	require.Equal(t, []store.DeadLetter{want}, listDeadLetters(t, ctx, st, d1))
	require.EqualValues(t, 1, countDeadLetters(t, ctx, st, d1))

	_, err = st.DeadLetterGet(ctx, got.ID+1000)
	require.ErrorIs(t, err, store.ErrNotFound)

	// Defaults: no times (LastFailedAt and CreatedAt now, FirstFailedAt = LastFailedAt); an
	// empty event comes back nil.
	before := time.Now().Truncate(time.Millisecond)
	def, err := st.DeadLetterAdd(ctx, store.DeadLetterAddParams{DestinationID: d1, EventID: 2, EventType: "e", Event: []byte{}})
	require.NoError(t, err)
	after := time.Now()
	require.Nil(t, def.Event)
	for name, at := range map[string]time.Time{"last failed": def.LastFailedAt, "created": def.CreatedAt} {
		require.Equal(t, time.UTC, at.Location(), name)
		require.False(t, at.Before(before), "%s: %v before %v", name, at, before)
		require.False(t, at.After(after), "%s: %v after %v", name, at, after)
	}
	require.Equal(t, def.LastFailedAt, def.FirstFailedAt)
	require.Greater(t, def.ID, got.ID)
	gotDef, err := st.DeadLetterGet(ctx, def.ID)
	require.NoError(t, err)
	require.Equal(t, def, gotDef)

	// A destination that does not exist.
	_, err = st.DeadLetterAdd(ctx, deadLetter(d1+1000, 1))
	require.ErrorIs(t, err, store.ErrNotFound)
	require.EqualValues(t, 2, countDeadLetters(t, ctx, st, d1))
}

func (s *suite) testDeadLetterAddIdempotent(t *testing.T) {
	ctx, st := s.setup(t)
	d1, d2 := deliveryDestinations(t, ctx, st)

	first := addDeadLetters(t, ctx, st, d1, 7, 8)
	other := addDeadLetters(t, ctx, st, d2, 7)[0]
	require.NotEqual(t, first[0].ID, other.ID, "the same event is a dead letter of each destination")

	// Adding again (after a crash, say) updates the last failure and keeps the rest.
	p := store.DeadLetterAddParams{
		DestinationID: d1, EventID: 7, EventType: "changed", Event: []byte(`{"changed":true}`),
		StatusCode: 503, Error: "HTTP 503", Attempts: 9,
		FirstFailedAt: base.Add(time.Hour), LastFailedAt: base.Add(2 * time.Hour), CreatedAt: base.Add(3 * time.Hour),
	}
	got, err := st.DeadLetterAdd(ctx, p)
	require.NoError(t, err)
	want := first[0]
	want.StatusCode, want.Error, want.Attempts, want.LastFailedAt = 503, "HTTP 503", 9, base.Add(2*time.Hour)
	require.Equal(t, want, got)
	again, err := st.DeadLetterGet(ctx, want.ID)
	require.NoError(t, err)
	require.Equal(t, want, again)

	// Status 0 and an empty error are values too.
	p.StatusCode, p.Error, p.Attempts, p.LastFailedAt = 0, "", 10, base.Add(4*time.Hour)
	got, err = st.DeadLetterAdd(ctx, p)
	require.NoError(t, err)
	want.StatusCode, want.Error, want.Attempts, want.LastFailedAt = 0, "", 10, base.Add(4*time.Hour)
	require.Equal(t, want, got)

	require.Equal(t, []store.DeadLetter{first[1], want}, listDeadLetters(t, ctx, st, d1), "the order stays that of the first add")
	require.EqualValues(t, 2, countDeadLetters(t, ctx, st, d1))
	require.Equal(t, []store.DeadLetter{other}, listDeadLetters(t, ctx, st, d2), "the other destination's is untouched")

	// Concurrent adds of one event store one dead letter.
	const workers = 8
	var wg sync.WaitGroup
	got8 := make([]store.DeadLetter, workers)
	errs := make([]error, workers)
	for i := range workers {
		wg.Go(func() {
			p := deadLetter(d2, 100)
			p.Attempts = i + 1
			got8[i], errs[i] = st.DeadLetterAdd(ctx, p)
		})
	}
	wg.Wait()
	for i := range workers {
		require.NoError(t, errs[i])
		require.Equal(t, got8[0].ID, got8[i].ID)
	}
	require.EqualValues(t, 2, countDeadLetters(t, ctx, st, d2))
}

func (s *suite) testDeadLetterList(t *testing.T) {
	ctx, st := s.setup(t)
	d1, d2 := deliveryDestinations(t, ctx, st)

	// Interleaved, so that each destination's ids have gaps.
	var all1, all2 []store.DeadLetter
	for e := int64(1); e <= 7; e++ {
		all1 = append(all1, addDeadLetters(t, ctx, st, d1, e)...)
		if e <= 3 {
			all2 = append(all2, addDeadLetters(t, ctx, st, d2, e)...)
		}
	}
	require.Equal(t, reversed(all1), listDeadLetters(t, ctx, st, d1), "newest first")
	require.Equal(t, reversed(all2), listDeadLetters(t, ctx, st, d2))
	require.EqualValues(t, 7, countDeadLetters(t, ctx, st, d1))
	require.EqualValues(t, 3, countDeadLetters(t, ctx, st, d2))

	walk := func(p store.DeadLetterListParams) [][]int64 {
		var pages [][]int64
		for range 20 {
			page, err := st.DeadLetterList(ctx, p)
			require.NoError(t, err)
			pages = append(pages, deadLetterIDs(page))
			if len(page) < p.Limit {
				return pages
			}
			p.BeforeID = page[len(page)-1].ID
		}
		t.Fatal("keyset paging does not end")
		return nil
	}
	id := func(i int) int64 { return all1[i].ID }
	require.Equal(t, [][]int64{{id(6), id(5), id(4)}, {id(3), id(2), id(1)}, {id(0)}}, walk(store.DeadLetterListParams{DestinationID: d1, Limit: 3}))
	require.Equal(t, [][]int64{{id(6), id(5), id(4), id(3), id(2), id(1), id(0)}}, walk(store.DeadLetterListParams{DestinationID: d1, Limit: 10}))
	require.Equal(t, [][]int64{{id(6)}, {id(5)}, {id(4)}, {id(3)}, {id(2)}, {id(1)}, {id(0)}, {}}, walk(store.DeadLetterListParams{DestinationID: d1, Limit: 1}))
	require.Equal(t, [][]int64{{id(3), id(2)}, {id(1), id(0)}, {}}, walk(store.DeadLetterListParams{DestinationID: d1, BeforeID: id(4), Limit: 2}))
	page, err := st.DeadLetterList(ctx, store.DeadLetterListParams{DestinationID: d1, BeforeID: id(6) + 1000, Limit: 2})
	require.NoError(t, err)
	require.Equal(t, []int64{id(6), id(5)}, deadLetterIDs(page), "BeforeID above every id")
	page, err = st.DeadLetterList(ctx, store.DeadLetterListParams{DestinationID: d1, BeforeID: id(0), Limit: 2})
	require.NoError(t, err)
	require.Empty(t, page, "BeforeID the oldest")

	// A destination that does not exist: an empty list.
	page, err = st.DeadLetterList(ctx, store.DeadLetterListParams{DestinationID: d2 + 1000, Limit: 10})
	require.NoError(t, err)
	require.Empty(t, page)
	require.Zero(t, countDeadLetters(t, ctx, st, d2+1000))

	for _, p := range []store.DeadLetterListParams{
		{Limit: 10}, // no destination
		{DestinationID: d1},
		{DestinationID: d1, Limit: -1},
		{DestinationID: d1, Limit: store.MaxDeliveryListLimit + 1},
	} {
		_, err := st.DeadLetterList(ctx, p)
		require.Error(t, err, "%+v", p)
		require.NotErrorIs(t, err, store.ErrNotFound, "%+v", p)
	}
}

func (s *suite) testDeadLetterDelete(t *testing.T) {
	ctx, st := s.setup(t)
	d1, d2 := deliveryDestinations(t, ctx, st)
	a := addDeadLetters(t, ctx, st, d1, 1, 2, 3, 4, 5)
	b := addDeadLetters(t, ctx, st, d2, 1, 2)

	// Selected ones: another destination's ids, unknown ids and repeats are ignored.
	n, err := st.DeadLetterDelete(ctx, d1, []int64{a[1].ID, a[3].ID, b[0].ID, b[1].ID, a[1].ID, b[1].ID + 1000})
	require.NoError(t, err)
	require.EqualValues(t, 2, n)
	require.Equal(t, reversed([]store.DeadLetter{a[0], a[2], a[4]}), listDeadLetters(t, ctx, st, d1))
	require.Equal(t, reversed(b), listDeadLetters(t, ctx, st, d2), "the other destination's are never deleted")
	_, err = st.DeadLetterGet(ctx, a[1].ID)
	require.ErrorIs(t, err, store.ErrNotFound)

	n, err = st.DeadLetterDelete(ctx, d1, []int64{a[1].ID})
	require.NoError(t, err)
	require.Zero(t, n, "deleting twice")
	n, err = st.DeadLetterDelete(ctx, d2, []int64{a[0].ID})
	require.NoError(t, err)
	require.Zero(t, n)
	require.EqualValues(t, 3, countDeadLetters(t, ctx, st, d1))

	// Many ids at once.
	many := make([]int64, 0, 40000)
	for i := range int64(40000) {
		many = append(many, a[4].ID+1+i)
	}
	many = append(many, a[4].ID)
	n, err = st.DeadLetterDelete(ctx, d1, many)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)

	// All of a destination: nil or empty ids.
	n, err = st.DeadLetterDelete(ctx, d1, nil)
	require.NoError(t, err)
	require.EqualValues(t, 2, n)
	require.Zero(t, countDeadLetters(t, ctx, st, d1))
	require.Empty(t, listDeadLetters(t, ctx, st, d1))
	require.Equal(t, reversed(b), listDeadLetters(t, ctx, st, d2))
	n, err = st.DeadLetterDelete(ctx, d2, []int64{})
	require.NoError(t, err)
	require.EqualValues(t, 2, n)
	require.Zero(t, countDeadLetters(t, ctx, st, d2))
	n, err = st.DeadLetterDelete(ctx, d2, nil)
	require.NoError(t, err)
	require.Zero(t, n)

	// Ids are not reused, and a deleted event can become a dead letter again.
	c := addDeadLetters(t, ctx, st, d1, 5)
	require.Greater(t, c[0].ID, b[1].ID)
}

func (s *suite) testDeadLetterTrim(t *testing.T) {
	ctx, st := s.setup(t)
	d1, d2 := deliveryDestinations(t, ctx, st)
	// Event ids out of order: trimming goes by the order dead letters were added.
	a := addDeadLetters(t, ctx, st, d1, 50, 10, 40, 20, 30, 60)
	b := addDeadLetters(t, ctx, st, d2, 1, 2, 3)

	n, err := st.DeadLetterTrim(ctx, d1, 10)
	require.NoError(t, err)
	require.Zero(t, n, "fewer than keep")
	n, err = st.DeadLetterTrim(ctx, d1, 6)
	require.NoError(t, err)
	require.Zero(t, n, "exactly keep")

	n, err = st.DeadLetterTrim(ctx, d1, 4)
	require.NoError(t, err)
	require.EqualValues(t, 2, n)
	require.Equal(t, reversed(a[2:]), listDeadLetters(t, ctx, st, d1), "the newest are kept")
	require.Equal(t, reversed(b), listDeadLetters(t, ctx, st, d2), "the other destination's are untouched")

	// Re-adding a kept one does not make it newer.
	_, err = st.DeadLetterAdd(ctx, deadLetter(d1, 40))
	require.NoError(t, err)
	n, err = st.DeadLetterTrim(ctx, d1, 3)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	require.Equal(t, reversed(a[3:]), listDeadLetters(t, ctx, st, d1))

	_, err = st.DeadLetterTrim(ctx, d1, -1)
	require.Error(t, err)
	require.EqualValues(t, 3, countDeadLetters(t, ctx, st, d1))

	n, err = st.DeadLetterTrim(ctx, d1, 0)
	require.NoError(t, err)
	require.EqualValues(t, 3, n)
	require.Zero(t, countDeadLetters(t, ctx, st, d1))
	n, err = st.DeadLetterTrim(ctx, d1, 0)
	require.NoError(t, err)
	require.Zero(t, n)
	require.EqualValues(t, 3, countDeadLetters(t, ctx, st, d2))
}

// testDeliveryCascade deletes a destination: its dead letters and delivery attempts go with it,
// the other destination's stay, and ids are not reused.
func (s *suite) testDeliveryCascade(t *testing.T) {
	ctx, st := s.setup(t)
	d1, d2 := deliveryDestinations(t, ctx, st)
	a := addDeadLetters(t, ctx, st, d1, 1, 2, 3)
	b := addDeadLetters(t, ctx, st, d2, 1)
	require.NoError(t, st.DeliveryAttemptAdd(ctx, []store.DeliveryAttempt{
		{DestinationID: d1, At: base, Count: 1, Error: "x"},
		{DestinationID: d2, At: base, Success: true, Count: 5},
		{DestinationID: d1, At: base, Success: true, Count: 2},
	}))
	attempts1, err := st.DeliveryAttemptList(ctx, d1, 10)
	require.NoError(t, err)
	require.Len(t, attempts1, 2)
	attempts2, err := st.DeliveryAttemptList(ctx, d2, 10)
	require.NoError(t, err)
	require.Len(t, attempts2, 1)

	require.NoError(t, st.DestinationDelete(ctx, d1))
	require.Zero(t, countDeadLetters(t, ctx, st, d1))
	require.Empty(t, listDeadLetters(t, ctx, st, d1))
	for _, d := range a {
		_, err := st.DeadLetterGet(ctx, d.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
	}
	gone, err := st.DeliveryAttemptList(ctx, d1, 10)
	require.NoError(t, err)
	require.Empty(t, gone)

	require.Equal(t, b, listDeadLetters(t, ctx, st, d2))
	got, err := st.DeliveryAttemptList(ctx, d2, 10)
	require.NoError(t, err)
	require.Equal(t, attempts2, got)

	// Nothing can be added for the deleted destination.
	_, err = st.DeadLetterAdd(ctx, deadLetter(d1, 4))
	require.ErrorIs(t, err, store.ErrNotFound)
	require.ErrorIs(t, st.DeliveryAttemptAdd(ctx, []store.DeliveryAttempt{{DestinationID: d1, At: base}}), store.ErrNotFound)

	// A new destination inherits nothing, and new rows get new ids.
	d3, err := st.DestinationCreate(ctx, store.DestinationCreateParams{Scope: store.ScopeInstance, Name: "c", Category: "http"})
	require.NoError(t, err)
	require.Zero(t, countDeadLetters(t, ctx, st, d3.ID))
	c := addDeadLetters(t, ctx, st, d3.ID, 1)
	require.Greater(t, c[0].ID, a[2].ID)
	require.NoError(t, st.DeliveryAttemptAdd(ctx, []store.DeliveryAttempt{{DestinationID: d3.ID, At: base}}))
	attempts3, err := st.DeliveryAttemptList(ctx, d3.ID, 10)
	require.NoError(t, err)
	require.Len(t, attempts3, 1)
	require.Greater(t, attempts3[0].ID, attempts1[0].ID, "the deleted destination's newest attempt id is not reused")
}

func (s *suite) testDeliveryAttempts(t *testing.T) {
	ctx, st := s.setup(t)
	d1, d2 := deliveryDestinations(t, ctx, st)

	require.NoError(t, st.DeliveryAttemptAdd(ctx, nil))
	require.NoError(t, st.DeliveryAttemptAdd(ctx, []store.DeliveryAttempt{}))
	list, err := st.DeliveryAttemptList(ctx, d1, 10)
	require.NoError(t, err)
	require.Empty(t, list)

	zone := time.FixedZone("CEST", 2*3600)
	batch1 := []store.DeliveryAttempt{
		{DestinationID: d1, At: time.Date(2024, 3, 1, 14, 0, 0, 123456789, zone), Count: 1, FirstEventID: 10, LastEventID: 10,
			StatusCode: 500, Error: "HTTP 500: internal server error", DurationMs: 1234},
		{DestinationID: d2, At: base, Success: true, Count: 1, FirstEventID: 99, LastEventID: 99, StatusCode: 200, DurationMs: 5, Test: true},
		// An aggregate whose window ends before the failure above was written: the log's order
		// is the order of adding.
		{DestinationID: d1, At: base.Add(-time.Minute), Success: true, Count: 250, FirstEventID: 1, LastEventID: 300, StatusCode: 204, DurationMs: 42},
	}
	require.NoError(t, st.DeliveryAttemptAdd(ctx, batch1))
	before := time.Now().Truncate(time.Millisecond)
	batch2 := []store.DeliveryAttempt{
		{DestinationID: d1, Count: 100, FirstEventID: 301, LastEventID: 400, Error: "context deadline exceeded", DurationMs: 30000},
		{DestinationID: d1, At: base.Add(time.Hour), Count: 1, FirstEventID: 401, LastEventID: 401, StatusCode: 400, Error: "HTTP 400", DurationMs: 7},
	}
	require.NoError(t, st.DeliveryAttemptAdd(ctx, batch2))
	after := time.Now()

	got, err := st.DeliveryAttemptList(ctx, d1, store.MaxDeliveryListLimit)
	require.NoError(t, err)
	require.Len(t, got, 4)
	for i := 1; i < len(got); i++ {
		require.Greater(t, got[i-1].ID, got[i].ID, "newest first")
	}
	zeroAt := got[1].At
	require.Equal(t, time.UTC, zeroAt.Location())
	require.False(t, zeroAt.Before(before), "zero At: %v before %v", zeroAt, before)
	require.False(t, zeroAt.After(after), "zero At: %v after %v", zeroAt, after)
	want := []store.DeliveryAttempt{batch2[1], batch2[0], batch1[2], batch1[0]}
	for i := range want {
		want[i].ID = got[i].ID
		want[i].At = ms(want[i].At)
	}
	want[1].At = zeroAt
	require.Equal(t, want, got)
	require.Positive(t, got[3].ID)

	got2, err := st.DeliveryAttemptList(ctx, d2, 10)
	require.NoError(t, err)
	want2 := batch1[1]
	want2.ID = got2[0].ID
	require.Equal(t, []store.DeliveryAttempt{want2}, got2)

	// The limit takes the newest.
	top, err := st.DeliveryAttemptList(ctx, d1, 2)
	require.NoError(t, err)
	require.Equal(t, want[:2], top)
	for _, limit := range []int{0, -1, store.MaxDeliveryListLimit + 1} {
		_, err := st.DeliveryAttemptList(ctx, d1, limit)
		require.Error(t, err, "limit %d", limit)
	}
	none, err := st.DeliveryAttemptList(ctx, d2+1000, 10)
	require.NoError(t, err)
	require.Empty(t, none)

	// A batch is all or nothing: an ID given, or a destination that does not exist.
	err = st.DeliveryAttemptAdd(ctx, []store.DeliveryAttempt{{DestinationID: d1, At: base}, {ID: got[0].ID, DestinationID: d1, At: base}})
	require.Error(t, err)
	err = st.DeliveryAttemptAdd(ctx, []store.DeliveryAttempt{{DestinationID: d1, At: base}, {DestinationID: d2 + 1000, At: base}})
	require.ErrorIs(t, err, store.ErrNotFound)
	got, err = st.DeliveryAttemptList(ctx, d1, 10)
	require.NoError(t, err)
	require.Equal(t, want, got, "nothing of a failed batch is stored")

	// Trim keeps the newest.
	n, err := st.DeliveryAttemptTrim(ctx, d1, 4)
	require.NoError(t, err)
	require.Zero(t, n)
	n, err = st.DeliveryAttemptTrim(ctx, d1, 10)
	require.NoError(t, err)
	require.Zero(t, n)
	n, err = st.DeliveryAttemptTrim(ctx, d1, 3)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	got, err = st.DeliveryAttemptList(ctx, d1, 10)
	require.NoError(t, err)
	require.Equal(t, want[:3], got)
	n, err = st.DeliveryAttemptTrim(ctx, d1, 1)
	require.NoError(t, err)
	require.EqualValues(t, 2, n)
	got, err = st.DeliveryAttemptList(ctx, d1, 10)
	require.NoError(t, err)
	require.Equal(t, want[:1], got)
	_, err = st.DeliveryAttemptTrim(ctx, d1, -1)
	require.Error(t, err)

	// New attempts come after the kept ones.
	require.NoError(t, st.DeliveryAttemptAdd(ctx, []store.DeliveryAttempt{{DestinationID: d1, At: base, Success: true, Count: 3}}))
	got, err = st.DeliveryAttemptList(ctx, d1, 10)
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Greater(t, got[0].ID, want[0].ID)
	require.Equal(t, want[0], got[1])

	n, err = st.DeliveryAttemptTrim(ctx, d1, 0)
	require.NoError(t, err)
	require.EqualValues(t, 2, n)
	got, err = st.DeliveryAttemptList(ctx, d1, 10)
	require.NoError(t, err)
	require.Empty(t, got)
	got2, err = st.DeliveryAttemptList(ctx, d2, 10)
	require.NoError(t, err)
	require.Equal(t, []store.DeliveryAttempt{want2}, got2, "the other destination's log is untouched")
}

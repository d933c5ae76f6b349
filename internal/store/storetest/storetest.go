// Package storetest is the conformance suite of store.Store. Every driver runs Run against
// fresh, empty databases and must pass it unchanged, so that code written against one driver
// behaves the same on the other.
//
// Besides the contract written in store.go, the suite pins down behaviour both drivers share:
// times come back in UTC truncated to milliseconds; a zero CreatedAt in a create or upsert
// params struct means "now"; a membership replaced by MemberUpsert keeps its CreatedAt; a token
// or membership naming a user or namespace that does not exist is store.ErrNotFound. Destination
// lists (headers, filters) and Config come back nil when empty, never as empty slices. A new
// header or namespace filter gets an id above every id given before (numbering may have gaps).
package storetest

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/store"
)

// Run runs the conformance suite. open must return a new store on a fresh, empty database for
// every call, and close it (and drop the database) in t.Cleanup. It need not migrate: the suite
// calls Migrate itself. Subtests run in parallel, so open must be safe for concurrent use.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	s := &suite{open: open}
	t.Run("Migrate", s.testMigrate)
	t.Run("Ping", s.testPing)
	t.Run("Event", func(t *testing.T) {
		t.Run("RoundTrip", s.testEventRoundTrip)
		t.Run("InsertManyIdempotent", s.testEventInsertManyIdempotent)
		t.Run("InsertManyConcurrent", s.testEventInsertManyConcurrent)
		t.Run("List", s.testEventList)
		t.Run("ListKeyset", s.testEventListKeyset)
		t.Run("GetNotFound", s.testEventGetNotFound)
		t.Run("DeleteBefore", s.testEventDeleteBefore)
		t.Run("MaxID", s.testEventMaxID)
		t.Run("Volume", s.testEventVolume)
	})
	t.Run("Namespace", func(t *testing.T) {
		t.Run("Hierarchy", s.testNamespaceHierarchy)
		t.Run("Conflict", s.testNamespaceConflict)
		t.Run("IDUnknown", s.testNamespaceIDUnknown)
		t.Run("NotFound", s.testNamespaceNotFound)
		t.Run("MoveRename", s.testNamespaceMoveRename)
		t.Run("MoveAcrossTops", s.testNamespaceMoveAcrossTops)
		t.Run("MoveUnderscore", s.testNamespaceMoveUnderscore)
		t.Run("MoveErrors", s.testNamespaceMoveErrors)
	})
	t.Run("User", s.testUser)
	t.Run("ConcurrentAutoID", s.testConcurrentAutoID)
	t.Run("Token", s.testToken)
	t.Run("GroupToken", s.testGroupToken)
	t.Run("BotUserIDs", s.testBotUserIDs)
	t.Run("Member", s.testMember)
	t.Run("CreatedAtDefaultsToNow", s.testCreatedAtDefaultsToNow)
	t.Run("Destination", func(t *testing.T) {
		t.Run("RoundTrip", s.testDestinationRoundTrip)
		t.Run("Conflict", s.testDestinationConflict)
		t.Run("Invalid", s.testDestinationInvalid)
		t.Run("List", s.testDestinationList)
		t.Run("Update", s.testDestinationUpdate)
		t.Run("UpdateErrors", s.testDestinationUpdateErrors)
		t.Run("Delete", s.testDestinationDelete)
		t.Run("ConcurrentCreate", s.testDestinationConcurrentCreate)
		t.Run("EntryIDs", s.testDestinationEntryIDs)
		t.Run("Version", s.testDestinationVersion)
		t.Run("ConcurrentReadModifyWrite", s.testDestinationConcurrentReadModifyWrite)
		t.Run("ByEntry", s.testDestinationByEntry)
	})
	t.Run("Delivery", func(t *testing.T) {
		t.Run("DeadLetterRoundTrip", s.testDeadLetterRoundTrip)
		t.Run("DeadLetterAddIdempotent", s.testDeadLetterAddIdempotent)
		t.Run("DeadLetterList", s.testDeadLetterList)
		t.Run("DeadLetterDelete", s.testDeadLetterDelete)
		t.Run("DeadLetterTrim", s.testDeadLetterTrim)
		t.Run("Attempts", s.testDeliveryAttempts)
		t.Run("Cascade", s.testDeliveryCascade)
		t.Run("Positions", s.testDeliveryPositions)
		t.Run("DestinationStamp", s.testDestinationStamp)
		t.Run("DestinationVersions", s.testDestinationVersions)
	})
	t.Run("WebSession", func(t *testing.T) {
		t.Run("RoundTrip", s.testWebSessionRoundTrip)
		t.Run("Conflict", s.testWebSessionConflict)
		t.Run("NotFound", s.testWebSessionNotFound)
		t.Run("Delete", s.testWebSessionDelete)
		t.Run("DeleteExpired", s.testWebSessionDeleteExpired)
	})
	t.Run("Retention", func(t *testing.T) {
		t.Run("RoundTrip", s.testRetention)
		t.Run("EventAgeList", s.testEventAgeList)
	})
	t.Run("AuditOutbox", func(t *testing.T) {
		t.Run("RoundTrip", s.testAuditOutboxRoundTrip)
		t.Run("IDsNeverReused", s.testAuditOutboxIDsNeverReused)
		t.Run("Concurrent", s.testAuditOutboxConcurrent)
	})
	t.Run("Republished", s.testRepublished)
	t.Run("Trail", func(t *testing.T) {
		t.Run("Append", s.testTrailAppend)
		t.Run("AppendConcurrent", s.testTrailAppendConcurrent)
		t.Run("Checkpoints", s.testTrailCheckpoints)
	})
}

type suite struct {
	open func(t *testing.T) store.Store
}

// setup marks the test parallel and returns a fresh, migrated store.
func (s *suite) setup(t *testing.T) (context.Context, store.Store) {
	t.Helper()
	t.Parallel()
	st := s.open(t)
	require.NoError(t, st.Migrate(t.Context()))
	return t.Context(), st
}

// base is the time the fixtures are created around. It has no sub-millisecond part.
var base = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

// ms is t as the store returns it: UTC, truncated to the millisecond.
func ms(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.UnixMilli(t.UnixMilli()).UTC()
}

func ids(events []store.EventRecord) []int64 {
	out := make([]int64, 0, len(events))
	for _, e := range events {
		out = append(out, e.ID)
	}
	return out
}

func event(id int64, at time.Time, eventType, entityType string, entityID, authorID int64) store.EventRecord {
	return store.EventRecord{
		ID:         id,
		CreatedAt:  at,
		EventType:  eventType,
		EntityType: entityType,
		EntityID:   entityID,
		AuthorID:   authorID,
		Data:       fmt.Appendf(nil, `{"id":%d,"event_name":%q, "details" : {"z":1,"a":[true,null]}}`, id, eventType),
	}
}

func (s *suite) testMigrate(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := s.open(t)

	// Several callers migrate at once (a fresh database when open does not migrate), then once
	// more when everything is applied.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = st.Migrate(ctx) })
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, st.Migrate(ctx))

	require.NoError(t, st.EventInsertMany(ctx, []store.EventRecord{event(1, base, "user_created", "User", 1, 1)}))
	n, err := st.EventCount(ctx, store.EventListParams{})
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
}

func (s *suite) testPing(t *testing.T) {
	ctx, st := s.setup(t)
	require.NoError(t, st.Ping(ctx))
}

func (s *suite) testEventRoundTrip(t *testing.T) {
	ctx, st := s.setup(t)

	at := time.Date(2024, 3, 1, 14, 30, 15, 123456789, time.FixedZone("CEST", 2*3600))
	e := store.EventRecord{
		ID:         1 << 40,
		CreatedAt:  at,
		EventType:  "project_renamed",
		EntityType: "Project",
		EntityID:   1 << 35,
		AuthorID:   -1,
		Data:       []byte(`{"b": 1,  "a":"\u00fc ü", "n": 1.50}` + "\n"),
	}
	require.NoError(t, st.EventInsertMany(ctx, []store.EventRecord{e}))

	got, err := st.EventGet(ctx, e.ID)
	require.NoError(t, err)
	want := e
	want.CreatedAt = time.Date(2024, 3, 1, 12, 30, 15, 123000000, time.UTC)
	require.Equal(t, want, got)
	require.Equal(t, string(e.Data), string(got.Data), "data is returned byte for byte")

	list, err := st.EventList(ctx, store.EventListParams{})
	require.NoError(t, err)
	require.Equal(t, []store.EventRecord{want}, list)
}

func (s *suite) testEventInsertManyIdempotent(t *testing.T) {
	ctx, st := s.setup(t)

	require.NoError(t, st.EventInsertMany(ctx, nil))
	require.NoError(t, st.EventInsertMany(ctx, []store.EventRecord{}))

	first := []store.EventRecord{
		event(1, base, "a", "User", 1, 1),
		event(2, base, "b", "User", 1, 1),
		event(3, base, "c", "User", 1, 1),
	}
	require.NoError(t, st.EventInsertMany(ctx, first))
	require.NoError(t, st.EventInsertMany(ctx, first), "re-inserting a batch is not an error")

	changed := event(2, base.Add(time.Hour), "changed", "Group", 9, 9)
	require.NoError(t, st.EventInsertMany(ctx, []store.EventRecord{changed, event(4, base, "d", "User", 1, 1)}))

	// A batch holding one id twice is not an error either.
	require.NoError(t, st.EventInsertMany(ctx, []store.EventRecord{
		event(5, base, "e", "User", 1, 1),
		event(5, base, "e", "User", 1, 1),
	}))

	n, err := st.EventCount(ctx, store.EventListParams{})
	require.NoError(t, err)
	require.EqualValues(t, 5, n)

	got, err := st.EventGet(ctx, 2)
	require.NoError(t, err)
	require.Equal(t, first[1], got, "the first stored version of an id is kept")

	list, err := st.EventList(ctx, store.EventListParams{Ascending: true})
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2, 3, 4, 5}, ids(list))
}

func (s *suite) testEventInsertManyConcurrent(t *testing.T) {
	ctx, st := s.setup(t)

	const (
		writers = 6
		total   = 1200
		batch   = 100
	)
	// Every writer inserts all ids, starting at a different batch, so writers overlap.
	var wg sync.WaitGroup
	errs := make([]error, writers+1)
	for w := range writers {
		wg.Go(func() {
			for b := range total / batch {
				start := ((b+w)%(total/batch))*batch + 1
				events := make([]store.EventRecord, 0, batch)
				for id := start; id < start+batch; id++ {
					events = append(events, event(int64(id), base.Add(time.Duration(id)*time.Second), "e", "Project", int64(id%7), int64(w)))
				}
				if err := st.EventInsertMany(ctx, events); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	// Reads run alongside the writers.
	wg.Go(func() {
		for range 20 {
			if _, err := st.EventList(ctx, store.EventListParams{Limit: 50}); err != nil {
				errs[writers] = fmt.Errorf("concurrent read: %w", err)
				return
			}
		}
	})
	wg.Wait()
	for w, err := range errs {
		require.NoError(t, err, "goroutine %d", w)
	}

	n, err := st.EventCount(ctx, store.EventListParams{})
	require.NoError(t, err)
	require.EqualValues(t, total, n)
	maxID, err := st.EventMaxID(ctx)
	require.NoError(t, err)
	require.EqualValues(t, total, maxID)
}

// eventFixture is inserted by testEventList and testEventListKeyset. Events 1-10 are one minute
// apart; event 11 was created between 3 and 4, so ID order and time order differ.
func eventFixture() []store.EventRecord {
	at := func(d time.Duration) time.Time { return base.Add(d) }
	return []store.EventRecord{
		event(1, at(0*time.Minute), "user_created", "User", 10, 1),
		event(2, at(1*time.Minute), "project_created", "Project", 20, 1),
		event(3, at(2*time.Minute), "member_added", "Project", 20, 2),
		event(4, at(3*time.Minute), "member_added", "Group", 30, 2),
		event(5, at(4*time.Minute), "project_renamed", "Project", 21, 3),
		event(6, at(5*time.Minute), "member_removed", "Project", 20, 1),
		event(7, at(6*time.Minute), "user_blocked", "User", 10, 0),
		event(8, at(7*time.Minute), "member_added", "Project", 20, 1),
		event(9, at(8*time.Minute), "project_created", "Project", 21, 2),
		event(10, at(9*time.Minute), "group_created", "Group", 30, 0),
		event(11, at(2*time.Minute+30*time.Second), "member_added", "Group", 30, 3),
	}
}

func insertFixture(t *testing.T, ctx context.Context, st store.Store) []store.EventRecord {
	t.Helper()
	fx := eventFixture()
	// Insert out of id order, in two batches.
	require.NoError(t, st.EventInsertMany(ctx, []store.EventRecord{fx[9], fx[2], fx[10], fx[0], fx[5]}))
	require.NoError(t, st.EventInsertMany(ctx, []store.EventRecord{fx[4], fx[1], fx[8], fx[3], fx[7], fx[6]}))
	return fx
}

func (s *suite) testEventList(t *testing.T) {
	ctx, st := s.setup(t)
	fx := insertFixture(t, ctx, st)

	all, err := st.EventList(ctx, store.EventListParams{Ascending: true})
	require.NoError(t, err)
	require.Equal(t, fx, all, "every field comes back")
	data, err := st.EventList(ctx, store.EventListParams{AfterID: 2, Ascending: true, Limit: 3, DataOnly: true})
	require.NoError(t, err)
	require.Equal(t, []store.EventRecord{{ID: 3, Data: fx[2].Data}, {ID: 4, Data: fx[3].Data}, {ID: 5, Data: fx[4].Data}}, data,
		"DataOnly: the ids and the bytes")

	const half = 500 * time.Microsecond
	tests := []struct {
		name  string
		p     store.EventListParams
		want  []int64
		count int64 // EventCount of the same params, which ignores paging
	}{
		{"all descending", store.EventListParams{}, []int64{11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, 11},
		{"all ascending", store.EventListParams{Ascending: true}, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, 11},
		{"entity type", store.EventListParams{EntityType: "Project"}, []int64{9, 8, 6, 5, 3, 2}, 6},
		{"entity", store.EventListParams{EntityType: "Project", EntityID: 20, HasEntityID: true}, []int64{8, 6, 3, 2}, 4},
		{"entity and author", store.EventListParams{EntityType: "Project", EntityID: 20, HasEntityID: true, AuthorID: 1, HasAuthorID: true}, []int64{8, 6, 2}, 3},
		{"author", store.EventListParams{AuthorID: 2, HasAuthorID: true}, []int64{9, 4, 3}, 3},
		{"author zero", store.EventListParams{AuthorID: 0, HasAuthorID: true}, []int64{10, 7}, 2},
		{"author without HasAuthorID", store.EventListParams{AuthorID: 2}, []int64{11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, 11},
		{"event type", store.EventListParams{EventType: "member_added"}, []int64{11, 8, 4, 3}, 4},
		{"event type and entity", store.EventListParams{EventType: "member_added", EntityType: "Group", EntityID: 30, HasEntityID: true}, []int64{11, 4}, 2},
		{"entity or also", store.EventListParams{EntityType: "Project", EntityID: 999, HasEntityID: true, AlsoEntityID: 20}, []int64{8, 6, 3, 2}, 4},
		{"entity and also", store.EventListParams{EntityType: "Project", EntityID: 20, HasEntityID: true, AlsoEntityID: 20, AuthorID: 1, HasAuthorID: true}, []int64{8, 6, 2}, 3},
		// An entity id of 0 is a filter too: it matches nothing, never "every entity".
		{"entity id 0", store.EventListParams{EntityType: "Group", EntityID: 0, HasEntityID: true}, []int64{}, 0},
		{"no match", store.EventListParams{EventType: "nope"}, []int64{}, 0},
		{"created after inclusive", store.EventListParams{CreatedAfter: base.Add(3 * time.Minute)}, []int64{10, 9, 8, 7, 6, 5, 4}, 7},
		{"created before inclusive", store.EventListParams{CreatedBefore: base.Add(2*time.Minute + 30*time.Second)}, []int64{11, 3, 2, 1}, 4},
		{"created range", store.EventListParams{CreatedAfter: base.Add(2 * time.Minute), CreatedBefore: base.Add(3 * time.Minute)}, []int64{11, 4, 3}, 3},
		{"created range ascending", store.EventListParams{CreatedAfter: base.Add(2 * time.Minute), CreatedBefore: base.Add(3 * time.Minute), Ascending: true}, []int64{3, 4, 11}, 3},
		{"created after sub-millisecond", store.EventListParams{CreatedAfter: base.Add(3*time.Minute + half)}, []int64{10, 9, 8, 7, 6, 5}, 6},
		{"created after just before", store.EventListParams{CreatedAfter: base.Add(3*time.Minute - half)}, []int64{10, 9, 8, 7, 6, 5, 4}, 7},
		{"created before sub-millisecond", store.EventListParams{CreatedBefore: base.Add(3*time.Minute - half)}, []int64{11, 3, 2, 1}, 4},
		{"created before just after", store.EventListParams{CreatedBefore: base.Add(3*time.Minute + half)}, []int64{11, 4, 3, 2, 1}, 5},
		{"created in another zone", store.EventListParams{CreatedAfter: base.Add(9 * time.Minute).In(time.FixedZone("X", -7*3600))}, []int64{10}, 1},
		{"limit", store.EventListParams{Limit: 3}, []int64{11, 10, 9}, 11},
		{"limit ascending", store.EventListParams{Limit: 3, Ascending: true}, []int64{1, 2, 3}, 11},
		{"offset and limit", store.EventListParams{Offset: 2, Limit: 3}, []int64{9, 8, 7}, 11},
		{"offset without limit", store.EventListParams{Offset: 9}, []int64{2, 1}, 11},
		{"offset past the end", store.EventListParams{Offset: 20, Limit: 5}, []int64{}, 11},
		{"limit above total", store.EventListParams{Limit: 100}, []int64{11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, 11},
		{"keyset descending", store.EventListParams{AfterID: 5}, []int64{4, 3, 2, 1}, 11},
		{"keyset ascending", store.EventListParams{AfterID: 5, Ascending: true}, []int64{6, 7, 8, 9, 10, 11}, 11},
		{"keyset ascending limit", store.EventListParams{AfterID: 5, Ascending: true, Limit: 2}, []int64{6, 7}, 11},
		{"keyset with offset", store.EventListParams{AfterID: 9, Offset: 1, Limit: 3}, []int64{7, 6, 5}, 11},
		{"keyset past the end", store.EventListParams{AfterID: 1}, []int64{}, 11},
		{"filters keyset and limit", store.EventListParams{EntityType: "Project", AfterID: 3, Ascending: true, Limit: 2}, []int64{5, 6}, 6},
		{"everything", store.EventListParams{
			EntityType: "Project", EntityID: 20, HasEntityID: true, AuthorID: 1, HasAuthorID: true,
			CreatedAfter: base.Add(time.Minute), CreatedBefore: base.Add(7 * time.Minute),
			EventType: "member_added", AfterID: 9, Limit: 10,
		}, []int64{8}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := st.EventList(ctx, tt.p)
			require.NoError(t, err)
			require.Equal(t, tt.want, ids(got))
			n, err := st.EventCount(ctx, tt.p)
			require.NoError(t, err)
			require.Equal(t, tt.count, n)
		})
	}
}

func (s *suite) testEventListKeyset(t *testing.T) {
	ctx, st := s.setup(t)
	insertFixture(t, ctx, st)

	walk := func(p store.EventListParams) [][]int64 {
		var pages [][]int64
		for range 20 {
			page, err := st.EventList(ctx, p)
			require.NoError(t, err)
			pages = append(pages, ids(page))
			if len(page) < p.Limit {
				return pages
			}
			p.AfterID = page[len(page)-1].ID
		}
		t.Fatal("keyset paging does not end")
		return nil
	}
	require.Equal(t, [][]int64{{11, 10, 9, 8}, {7, 6, 5, 4}, {3, 2, 1}}, walk(store.EventListParams{Limit: 4}))
	require.Equal(t, [][]int64{{1, 2, 3, 4}, {5, 6, 7, 8}, {9, 10, 11}}, walk(store.EventListParams{Limit: 4, Ascending: true}))
	require.Equal(t, [][]int64{{9, 8, 6}, {5, 3, 2}, {}}, walk(store.EventListParams{Limit: 3, EntityType: "Project"}))
	require.Equal(t, [][]int64{{2, 3}, {6, 8}, {}}, walk(store.EventListParams{Limit: 2, Ascending: true, EntityType: "Project", EntityID: 20, HasEntityID: true}))
}

func (s *suite) testEventGetNotFound(t *testing.T) {
	ctx, st := s.setup(t)
	_, err := st.EventGet(ctx, 1)
	require.ErrorIs(t, err, store.ErrNotFound)

	require.NoError(t, st.EventInsertMany(ctx, []store.EventRecord{event(1, base, "a", "User", 1, 1)}))
	_, err = st.EventGet(ctx, 2)
	require.ErrorIs(t, err, store.ErrNotFound)
}

func (s *suite) testEventDeleteBefore(t *testing.T) {
	ctx, st := s.setup(t)

	var events []store.EventRecord
	for i := range 10 {
		events = append(events, event(int64(i+1), base.Add(time.Duration(i)*time.Minute), "e", "User", 1, 1))
	}
	require.NoError(t, st.EventInsertMany(ctx, events))

	n, err := st.EventDeleteBefore(ctx, base, 100)
	require.NoError(t, err)
	require.Zero(t, n, "nothing was created before the first event")

	cutoff := base.Add(5 * time.Minute) // events 1-5 are older, event 6 was created at it
	for _, want := range []int64{3, 2, 0} {
		n, err := st.EventDeleteBefore(ctx, cutoff, 3)
		require.NoError(t, err)
		require.Equal(t, want, n)
	}
	list, err := st.EventList(ctx, store.EventListParams{Ascending: true})
	require.NoError(t, err)
	require.Equal(t, []int64{6, 7, 8, 9, 10}, ids(list))

	// Sub-millisecond cutoffs compare against the stored milliseconds: 6 is before 5m+0.5ms.
	n, err = st.EventDeleteBefore(ctx, cutoff.Add(500*time.Microsecond), 10)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	_, err = st.EventGet(ctx, 6)
	require.ErrorIs(t, err, store.ErrNotFound)

	n, err = st.EventDeleteBefore(ctx, base.Add(time.Hour), 10)
	require.NoError(t, err)
	require.EqualValues(t, 4, n)
	count, err := st.EventCount(ctx, store.EventListParams{})
	require.NoError(t, err)
	require.Zero(t, count)

	// Deleted events stay deleted when the next batch comes.
	require.NoError(t, st.EventInsertMany(ctx, []store.EventRecord{event(11, base.Add(time.Hour), "e", "User", 1, 1)}))
	list, err = st.EventList(ctx, store.EventListParams{})
	require.NoError(t, err)
	require.Equal(t, []int64{11}, ids(list))
}

func (s *suite) testEventMaxID(t *testing.T) {
	ctx, st := s.setup(t)

	id, err := st.EventMaxID(ctx)
	require.NoError(t, err)
	require.Zero(t, id)

	require.NoError(t, st.EventInsertMany(ctx, []store.EventRecord{
		event(7, base, "a", "User", 1, 1),
		event(1<<50, base.Add(-time.Hour), "b", "User", 1, 1),
		event(3, base, "c", "User", 1, 1),
	}))
	id, err = st.EventMaxID(ctx)
	require.NoError(t, err)
	require.EqualValues(t, int64(1<<50), id)
}

func (s *suite) testNamespaceHierarchy(t *testing.T) {
	ctx, st := s.setup(t)

	create := func(p store.NamespaceCreateParams) store.Namespace {
		t.Helper()
		n, err := st.NamespaceCreate(ctx, p)
		require.NoError(t, err)
		return n
	}
	acme := create(store.NamespaceCreateParams{Kind: store.KindGroup, Name: "Acme", FullPath: "acme", CreatedAt: base.Add(time.Nanosecond)})
	require.Positive(t, acme.Key)
	require.Equal(t, store.Namespace{
		Key: acme.Key, Kind: store.KindGroup, ID: 1, Name: "Acme", Path: "acme", FullPath: "acme",
		ParentKey: 0, TopKey: acme.Key, CreatedAt: base,
	}, acme, "a top-level group is its own top and gets the first group id")

	platform := create(store.NamespaceCreateParams{Kind: store.KindGroup, Name: "Platform", FullPath: "acme/platform", ParentKey: acme.Key, CreatedAt: base})
	require.Equal(t, store.Namespace{
		Key: platform.Key, Kind: store.KindGroup, ID: 2, Name: "Platform", Path: "platform", FullPath: "acme/platform",
		ParentKey: acme.Key, TopKey: acme.Key, CreatedAt: base,
	}, platform)

	api := create(store.NamespaceCreateParams{Kind: store.KindProject, Name: "API", FullPath: "acme/platform/api", ParentKey: platform.Key, CreatedAt: base})
	require.Equal(t, store.Namespace{
		Key: api.Key, Kind: store.KindProject, ID: 1, Name: "API", Path: "api", FullPath: "acme/platform/api",
		ParentKey: platform.Key, TopKey: acme.Key, CreatedAt: base,
	}, api, "project ids are numbered apart from group ids")

	other := create(store.NamespaceCreateParams{Kind: store.KindGroup, ID: 42, Name: "Other", FullPath: "other", CreatedAt: base})
	require.EqualValues(t, 42, other.ID)
	require.Equal(t, other.Key, other.TopKey)

	third := create(store.NamespaceCreateParams{Kind: store.KindGroup, Name: "Third", FullPath: "third", CreatedAt: base})
	require.EqualValues(t, 43, third.ID, "the next group id follows the highest one")

	web := create(store.NamespaceCreateParams{Kind: store.KindProject, ID: 7, Name: "Web", FullPath: "other/web", ParentKey: other.Key, CreatedAt: base})
	require.Equal(t, other.Key, web.TopKey)
	require.Equal(t, other.Key, web.ParentKey)

	all := []store.Namespace{acme, platform, api, other, third, web}
	for i := 1; i < len(all); i++ {
		require.Greater(t, all[i].Key, all[i-1].Key, "keys increase")
	}
	list, err := st.NamespaceList(ctx)
	require.NoError(t, err)
	require.Equal(t, all, list)

	for _, n := range all {
		got, err := st.NamespaceGetByKey(ctx, n.Key)
		require.NoError(t, err)
		require.Equal(t, n, got)
		got, err = st.NamespaceGetByID(ctx, n.Kind, n.ID)
		require.NoError(t, err)
		require.Equal(t, n, got)
		got, err = st.NamespaceGetByPath(ctx, n.FullPath)
		require.NoError(t, err)
		require.Equal(t, n, got)
	}
}

func (s *suite) testNamespaceConflict(t *testing.T) {
	ctx, st := s.setup(t)

	g, err := st.NamespaceCreate(ctx, store.NamespaceCreateParams{Kind: store.KindGroup, ID: 5, Name: "G", FullPath: "g", CreatedAt: base})
	require.NoError(t, err)
	h, err := st.NamespaceCreate(ctx, store.NamespaceCreateParams{Kind: store.KindGroup, ID: 6, Name: "H", FullPath: "h", CreatedAt: base})
	require.NoError(t, err)

	tests := []struct {
		name string
		p    store.NamespaceCreateParams
		want error
	}{
		{"path taken", store.NamespaceCreateParams{Kind: store.KindGroup, ID: 9, Name: "G2", FullPath: "g"}, store.ErrConflict},
		{"path taken by another kind", store.NamespaceCreateParams{Kind: store.KindProject, ID: 9, Name: "G2", FullPath: "g", ParentKey: h.Key}, store.ErrConflict},
		{"group id taken", store.NamespaceCreateParams{Kind: store.KindGroup, ID: 5, Name: "X", FullPath: "x"}, store.ErrConflict},
		{"parent missing", store.NamespaceCreateParams{Kind: store.KindGroup, ID: 10, Name: "Y", FullPath: "nope/y", ParentKey: h.Key + 1000}, store.ErrNotFound},
		{"same id other kind", store.NamespaceCreateParams{Kind: store.KindProject, ID: 5, Name: "P", FullPath: "g/p", ParentKey: g.Key}, nil},
	}
	for _, tt := range tests {
		_, err := st.NamespaceCreate(ctx, tt.p)
		if tt.want == nil {
			require.NoError(t, err, tt.name)
		} else {
			require.ErrorIs(t, err, tt.want, tt.name)
		}
	}

	list, err := st.NamespaceList(ctx)
	require.NoError(t, err)
	require.Len(t, list, 3, "failed creates leave nothing behind")

	require.ErrorIs(t, st.NamespaceSetID(ctx, h.Key, 5), store.ErrConflict, "another group has id 5")
	got, err := st.NamespaceGetByKey(ctx, h.Key)
	require.NoError(t, err)
	require.Equal(t, h, got)
}

func (s *suite) testNamespaceIDUnknown(t *testing.T) {
	ctx, st := s.setup(t)

	// An event for acme/sub/app names ancestors nobody gave us ids for.
	acme, err := st.NamespaceCreate(ctx, store.NamespaceCreateParams{Kind: store.KindGroup, IDUnknown: true, Name: "acme", FullPath: "acme", CreatedAt: base})
	require.NoError(t, err)
	require.Zero(t, acme.ID)
	require.Equal(t, acme.Key, acme.TopKey)
	sub, err := st.NamespaceCreate(ctx, store.NamespaceCreateParams{Kind: store.KindGroup, IDUnknown: true, Name: "sub", FullPath: "acme/sub", ParentKey: acme.Key, CreatedAt: base})
	require.NoError(t, err, "several namespaces of one kind may have an unknown id")
	require.Zero(t, sub.ID)
	require.Equal(t, acme.Key, sub.TopKey)
	app, err := st.NamespaceCreate(ctx, store.NamespaceCreateParams{Kind: store.KindProject, ID: 300, Name: "app", FullPath: "acme/sub/app", ParentKey: sub.Key, CreatedAt: base})
	require.NoError(t, err)
	require.Equal(t, acme.Key, app.TopKey)

	_, err = st.NamespaceGetByID(ctx, store.KindGroup, 0)
	require.ErrorIs(t, err, store.ErrNotFound, "an unknown id is not id 0")

	got, err := st.NamespaceGetByPath(ctx, "acme/sub")
	require.NoError(t, err)
	require.Equal(t, sub, got)

	// Unknown ids do not count for the next assigned id.
	auto, err := st.NamespaceCreate(ctx, store.NamespaceCreateParams{Kind: store.KindGroup, Name: "auto", FullPath: "auto", CreatedAt: base})
	require.NoError(t, err)
	require.EqualValues(t, 1, auto.ID)

	// Later the ids become known.
	require.NoError(t, st.NamespaceSetID(ctx, sub.Key, 200))
	require.NoError(t, st.NamespaceSetID(ctx, acme.Key, 100))
	got, err = st.NamespaceGetByID(ctx, store.KindGroup, 200)
	require.NoError(t, err)
	sub.ID = 200
	require.Equal(t, sub, got)
	got, err = st.NamespaceGetByKey(ctx, acme.Key)
	require.NoError(t, err)
	require.EqualValues(t, 100, got.ID)

	require.ErrorIs(t, st.NamespaceSetID(ctx, sub.Key, 1), store.ErrConflict, "group 1 is auto")
	require.NoError(t, st.NamespaceSetID(ctx, app.Key, 1), "project 1 is free")
	require.ErrorIs(t, st.NamespaceSetID(ctx, app.Key+1000, 5), store.ErrNotFound)
	require.NoError(t, st.NamespaceSetID(ctx, sub.Key, 200), "setting the same id again is fine")

	// Created here before GitLab told its id: the id is LocalID(key), at once.
	local, err := st.NamespaceCreate(ctx, store.NamespaceCreateParams{Kind: store.KindGroup, LocalID: true, Name: "here", FullPath: "here", CreatedAt: base})
	require.NoError(t, err)
	require.Equal(t, store.LocalID(local.Key), local.ID)
	require.True(t, store.IsLocalID(local.ID))
	got, err = st.NamespaceGetByID(ctx, store.KindGroup, local.ID)
	require.NoError(t, err)
	require.Equal(t, local, got)
	localProject, err := st.NamespaceCreate(ctx, store.NamespaceCreateParams{Kind: store.KindProject, LocalID: true, Name: "p", FullPath: "here/p", ParentKey: local.Key, CreatedAt: base})
	require.NoError(t, err)
	require.Equal(t, store.LocalID(localProject.Key), localProject.ID)
	// Ids assigned here do not count for the next assigned GitLab-range id.
	auto2, err := st.NamespaceCreate(ctx, store.NamespaceCreateParams{Kind: store.KindGroup, Name: "auto2", FullPath: "auto2", CreatedAt: base})
	require.NoError(t, err)
	require.EqualValues(t, 201, auto2.ID)
	// GitLab's id is adopted later.
	require.NoError(t, st.NamespaceSetID(ctx, local.Key, 700))
	got, err = st.NamespaceGetByKey(ctx, local.Key)
	require.NoError(t, err)
	require.EqualValues(t, 700, got.ID)
}

func (s *suite) testNamespaceNotFound(t *testing.T) {
	ctx, st := s.setup(t)
	list, err := st.NamespaceList(ctx)
	require.NoError(t, err)
	require.Empty(t, list)
	_, err = st.NamespaceGetByKey(ctx, 1)
	require.ErrorIs(t, err, store.ErrNotFound)

	g, err := st.NamespaceCreate(ctx, store.NamespaceCreateParams{Kind: store.KindGroup, ID: 1, Name: "G", FullPath: "g", CreatedAt: base})
	require.NoError(t, err)

	_, err = st.NamespaceGetByKey(ctx, g.Key+1)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = st.NamespaceGetByID(ctx, store.KindGroup, 2)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = st.NamespaceGetByID(ctx, store.KindProject, 1)
	require.ErrorIs(t, err, store.ErrNotFound, "ids are per kind")
	_, err = st.NamespaceGetByPath(ctx, "g/h")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = st.NamespaceGetByPath(ctx, "")
	require.ErrorIs(t, err, store.ErrNotFound)
}

func (s *suite) testUser(t *testing.T) {
	ctx, st := s.setup(t)

	list, err := st.UserList(ctx)
	require.NoError(t, err)
	require.Empty(t, list)

	alice, err := st.UserCreate(ctx, store.UserCreateParams{Username: "alice", Name: "Alice A.", Email: "alice@example.com", Admin: true, CreatedAt: base.Add(999 * time.Microsecond)})
	require.NoError(t, err)
	require.Equal(t, store.User{ID: 1, Username: "alice", Name: "Alice A.", Email: "alice@example.com", Admin: true, CreatedAt: base}, alice)

	bob, err := st.UserCreate(ctx, store.UserCreateParams{ID: 10, Username: "bob", Name: "Bob", CreatedAt: base})
	require.NoError(t, err)
	require.Equal(t, store.User{ID: 10, Username: "bob", Name: "Bob", CreatedAt: base}, bob)

	carol, err := st.UserCreate(ctx, store.UserCreateParams{Username: "carol", Name: "Carol", CreatedAt: base})
	require.NoError(t, err)
	require.EqualValues(t, 11, carol.ID, "the next id follows the highest one")

	tests := []struct {
		name string
		p    store.UserCreateParams
	}{
		{"username taken", store.UserCreateParams{Username: "alice", Name: "Other Alice"}},
		{"username taken with id", store.UserCreateParams{ID: 50, Username: "bob"}},
		{"id taken", store.UserCreateParams{ID: 10, Username: "dave"}},
	}
	for _, tt := range tests {
		_, err := st.UserCreate(ctx, tt.p)
		require.ErrorIs(t, err, store.ErrConflict, tt.name)
	}

	got, err := st.UserGet(ctx, 10)
	require.NoError(t, err)
	require.Equal(t, bob, got)
	got, err = st.UserGetByUsername(ctx, "carol")
	require.NoError(t, err)
	require.Equal(t, carol, got)
	_, err = st.UserGet(ctx, 12)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = st.UserGetByUsername(ctx, "dave")
	require.ErrorIs(t, err, store.ErrNotFound)

	list, err = st.UserList(ctx)
	require.NoError(t, err)
	require.Equal(t, []store.User{alice, bob, carol}, list)
}

// testConcurrentAutoID creates users and namespaces with ID 0 from several goroutines: each
// gets a distinct id and none fails.
func (s *suite) testConcurrentAutoID(t *testing.T) {
	ctx, st := s.setup(t)

	const workers, each = 4, 5
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	userIDs := map[int64]bool{}
	groupIDs := map[int64]bool{}
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				u, err := st.UserCreate(ctx, store.UserCreateParams{Username: fmt.Sprintf("u%d-%d", w, i)})
				g, gerr := st.NamespaceCreate(ctx, store.NamespaceCreateParams{Kind: store.KindGroup, Name: "g", FullPath: fmt.Sprintf("g%d-%d", w, i)})
				mu.Lock()
				if err != nil || gerr != nil {
					errs = append(errs, err, gerr)
				} else {
					userIDs[u.ID] = true
					groupIDs[g.ID] = true
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	want := map[int64]bool{}
	for id := range int64(workers * each) {
		want[id+1] = true
	}
	require.Equal(t, want, userIDs)
	require.Equal(t, want, groupIDs)
}

func hash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func (s *suite) testToken(t *testing.T) {
	ctx, st := s.setup(t)

	n, err := st.TokenCount(ctx)
	require.NoError(t, err)
	require.Zero(t, n)

	u1, err := st.UserCreate(ctx, store.UserCreateParams{Username: "u1", CreatedAt: base})
	require.NoError(t, err)
	u2, err := st.UserCreate(ctx, store.UserCreateParams{Username: "u2", CreatedAt: base})
	require.NoError(t, err)

	expires := time.Date(2024, 4, 1, 0, 0, 0, 123456789, time.FixedZone("X", 3600))
	ci, err := st.TokenCreate(ctx, store.TokenCreateParams{
		UserID: u1.ID, Name: "ci", Hash: hash("one"), Scopes: []string{"api", "read_api", "with,comma"},
		ExpiresAt: expires, CreatedAt: base,
	})
	require.NoError(t, err)
	require.Positive(t, ci.ID)
	require.Equal(t, store.Token{
		ID: ci.ID, UserID: u1.ID, Name: "ci", Hash: hash("one"), Scopes: []string{"api", "read_api", "with,comma"},
		ExpiresAt: ms(expires), Revoked: false, CreatedAt: base,
	}, ci)

	forever, err := st.TokenCreate(ctx, store.TokenCreateParams{UserID: u1.ID, Name: "forever", Hash: hash("two"), CreatedAt: base})
	require.NoError(t, err)
	require.Empty(t, forever.Scopes)
	require.True(t, forever.ExpiresAt.IsZero(), "no expiry stays no expiry")
	require.Greater(t, forever.ID, ci.ID)

	other, err := st.TokenCreate(ctx, store.TokenCreateParams{UserID: u2.ID, Name: "other", Hash: hash("three"), Scopes: []string{"read_api"}, CreatedAt: base, Impersonation: true})
	require.NoError(t, err)
	require.Equal(t, store.Token{
		ID: other.ID, UserID: u2.ID, Name: "other", Hash: hash("three"), Scopes: []string{"read_api"}, CreatedAt: base, Impersonation: true,
	}, other, "an impersonation token says so")
	require.False(t, ci.Impersonation, "a personal access token is not one")

	_, err = st.TokenCreate(ctx, store.TokenCreateParams{UserID: u2.ID, Name: "dup", Hash: hash("one"), CreatedAt: base})
	require.ErrorIs(t, err, store.ErrConflict, "hash taken")
	_, err = st.TokenCreate(ctx, store.TokenCreateParams{UserID: u2.ID + 100, Name: "orphan", Hash: hash("four"), CreatedAt: base})
	require.ErrorIs(t, err, store.ErrNotFound, "user missing")

	n, err = st.TokenCount(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 3, n)

	got, err := st.TokenGetByHash(ctx, hash("one"))
	require.NoError(t, err)
	require.Equal(t, ci, got)
	got, err = st.TokenGetByHash(ctx, hash("two"))
	require.NoError(t, err)
	require.Equal(t, forever, got)
	_, err = st.TokenGetByHash(ctx, hash("four"))
	require.ErrorIs(t, err, store.ErrNotFound)

	list, err := st.TokenList(ctx, u1.ID)
	require.NoError(t, err)
	require.Equal(t, []store.Token{ci, forever}, list)
	list, err = st.TokenList(ctx, u2.ID)
	require.NoError(t, err)
	require.Equal(t, []store.Token{other}, list)
	list, err = st.TokenList(ctx, u2.ID+100)
	require.NoError(t, err)
	require.Empty(t, list)

	require.NoError(t, st.TokenRevoke(ctx, ci.ID))
	got, err = st.TokenGetByHash(ctx, hash("one"))
	require.NoError(t, err, "a revoked token is still found")
	ci.Revoked = true
	require.Equal(t, ci, got)
	require.NoError(t, st.TokenRevoke(ctx, ci.ID), "revoking twice is fine")
	require.ErrorIs(t, st.TokenRevoke(ctx, other.ID+100), store.ErrNotFound)

	got, err = st.TokenGetByHash(ctx, hash("three"))
	require.NoError(t, err)
	require.False(t, got.Revoked, "revoking one token leaves the others")
	require.True(t, got.Impersonation, "read back by hash, still an impersonation token")
	n, err = st.TokenCount(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 3, n, "revoked tokens count")
}

// testGroupToken: a group access token is bound to its group and keeps its access level;
// TokenListByNamespace finds a group's tokens, revoked ones included, and no others.
func (s *suite) testGroupToken(t *testing.T) {
	ctx, st := s.setup(t)

	g, err := st.NamespaceCreate(ctx, store.NamespaceCreateParams{Kind: store.KindGroup, Name: "G", FullPath: "g", CreatedAt: base})
	require.NoError(t, err)
	sub, err := st.NamespaceCreate(ctx, store.NamespaceCreateParams{Kind: store.KindGroup, Name: "S", FullPath: "g/s", ParentKey: g.Key, CreatedAt: base})
	require.NoError(t, err)
	human, err := st.UserCreate(ctx, store.UserCreateParams{Username: "human", CreatedAt: base})
	require.NoError(t, err)
	bot, err := st.UserCreate(ctx, store.UserCreateParams{Username: "group_1_bot_x", Bot: true, CreatedAt: base})
	require.NoError(t, err)
	require.True(t, bot.Bot)

	personal, err := st.TokenCreate(ctx, store.TokenCreateParams{UserID: human.ID, Name: "p", Hash: hash("p"), Scopes: []string{"api"}, CreatedAt: base})
	require.NoError(t, err)
	require.Zero(t, personal.NamespaceKey, "a personal token is bound to no group")
	require.Zero(t, personal.AccessLevel)
	gt, err := st.TokenCreate(ctx, store.TokenCreateParams{UserID: bot.ID, Name: "gt", Hash: hash("gt"), Scopes: []string{"ingest"},
		CreatedAt: base, NamespaceKey: g.Key, AccessLevel: 40})
	require.NoError(t, err)
	require.Equal(t, store.Token{ID: gt.ID, UserID: bot.ID, Name: "gt", Hash: hash("gt"), Scopes: []string{"ingest"},
		CreatedAt: base, NamespaceKey: g.Key, AccessLevel: 40}, gt)
	st2, err := st.TokenCreate(ctx, store.TokenCreateParams{UserID: bot.ID, Name: "st", Hash: hash("st"), Scopes: []string{"api"},
		CreatedAt: base, NamespaceKey: sub.Key, AccessLevel: 50})
	require.NoError(t, err)
	_, err = st.TokenCreate(ctx, store.TokenCreateParams{UserID: bot.ID, Name: "nowhere", Hash: hash("nowhere"), CreatedAt: base, NamespaceKey: sub.Key + 100})
	require.ErrorIs(t, err, store.ErrNotFound, "the group must exist")

	got, err := st.TokenGetByHash(ctx, hash("gt"))
	require.NoError(t, err)
	require.Equal(t, gt, got, "read back by hash, still bound")
	require.NoError(t, st.TokenRevoke(ctx, gt.ID))
	gt.Revoked = true
	list, err := st.TokenListByNamespace(ctx, g.Key)
	require.NoError(t, err)
	require.Equal(t, []store.Token{gt}, list, "a group's own tokens, revoked ones too, not its subgroup's")
	list, err = st.TokenListByNamespace(ctx, sub.Key)
	require.NoError(t, err)
	require.Equal(t, []store.Token{st2}, list)
	list, err = st.TokenListByNamespace(ctx, sub.Key+100)
	require.NoError(t, err)
	require.Empty(t, list)
	list, err = st.TokenList(ctx, bot.ID)
	require.NoError(t, err)
	require.Equal(t, []store.Token{gt, st2}, list, "a bot's tokens are its user's")
}

// testBotUserIDs: bots get ids from store.LocalIDBase on, so that they never take an id a
// GitLab user may be given later; people's ids go on below it.
func (s *suite) testBotUserIDs(t *testing.T) {
	ctx, st := s.setup(t)

	alice, err := st.UserCreate(ctx, store.UserCreateParams{Username: "alice", CreatedAt: base})
	require.NoError(t, err)
	require.EqualValues(t, 1, alice.ID)
	b1, err := st.UserCreate(ctx, store.UserCreateParams{Username: "bot1", Bot: true, CreatedAt: base})
	require.NoError(t, err)
	require.Equal(t, store.User{ID: store.LocalIDBase + 1, Username: "bot1", Bot: true, CreatedAt: base}, b1)
	bob, err := st.UserCreate(ctx, store.UserCreateParams{Username: "bob", CreatedAt: base})
	require.NoError(t, err)
	require.EqualValues(t, 2, bob.ID, "a person's id follows the highest below the bots'")
	b2, err := st.UserCreate(ctx, store.UserCreateParams{Username: "bot2", Bot: true, CreatedAt: base})
	require.NoError(t, err)
	require.Equal(t, store.LocalIDBase+2, b2.ID)
	got, err := st.UserGet(ctx, b2.ID)
	require.NoError(t, err)
	require.Equal(t, b2, got)
	require.False(t, bob.Bot)
}

func (s *suite) testMember(t *testing.T) {
	ctx, st := s.setup(t)

	g, err := st.NamespaceCreate(ctx, store.NamespaceCreateParams{Kind: store.KindGroup, Name: "G", FullPath: "g", CreatedAt: base})
	require.NoError(t, err)
	p, err := st.NamespaceCreate(ctx, store.NamespaceCreateParams{Kind: store.KindProject, Name: "P", FullPath: "g/p", ParentKey: g.Key, CreatedAt: base})
	require.NoError(t, err)
	var users []store.User
	for _, name := range []string{"u1", "u2", "u3"} {
		u, err := st.UserCreate(ctx, store.UserCreateParams{Username: name, CreatedAt: base})
		require.NoError(t, err)
		users = append(users, u)
	}
	u1, u2, u3 := users[0].ID, users[1].ID, users[2].ID

	upsert := func(p store.MemberUpsertParams) store.Member {
		t.Helper()
		m, err := st.MemberUpsert(ctx, p)
		require.NoError(t, err)
		return m
	}
	expires := base.Add(30*24*time.Hour + 7*time.Microsecond)
	gU2 := upsert(store.MemberUpsertParams{NamespaceKey: g.Key, UserID: u2, AccessLevel: 30, CreatedAt: base})
	require.Equal(t, store.Member{NamespaceKey: g.Key, UserID: u2, AccessLevel: 30, CreatedAt: base}, gU2)
	gU1 := upsert(store.MemberUpsertParams{NamespaceKey: g.Key, UserID: u1, AccessLevel: 50, ExpiresAt: expires, CreatedAt: base.Add(time.Minute)})
	require.Equal(t, store.Member{NamespaceKey: g.Key, UserID: u1, AccessLevel: 50, ExpiresAt: ms(expires), CreatedAt: base.Add(time.Minute)}, gU1)
	pU1 := upsert(store.MemberUpsertParams{NamespaceKey: p.Key, UserID: u1, AccessLevel: 20, CreatedAt: base})

	got, err := st.MemberGet(ctx, g.Key, u2)
	require.NoError(t, err)
	require.Equal(t, gU2, got)
	_, err = st.MemberGet(ctx, p.Key, u3)
	require.ErrorIs(t, err, store.ErrNotFound)

	list, err := st.MemberList(ctx, g.Key)
	require.NoError(t, err)
	require.Equal(t, []store.Member{gU1, gU2}, list, "ordered by user id")
	list, err = st.MemberListByUser(ctx, u1)
	require.NoError(t, err)
	require.Equal(t, []store.Member{gU1, pU1}, list)
	list, err = st.MemberListByUser(ctx, u3)
	require.NoError(t, err)
	require.Empty(t, list)

	// Upserting again replaces the level and the expiry; the membership keeps its creation time.
	replaced := upsert(store.MemberUpsertParams{NamespaceKey: g.Key, UserID: u2, AccessLevel: 40, ExpiresAt: expires, CreatedAt: base.Add(time.Hour)})
	want := store.Member{NamespaceKey: g.Key, UserID: u2, AccessLevel: 40, ExpiresAt: ms(expires), CreatedAt: base}
	require.Equal(t, want, replaced)
	got, err = st.MemberGet(ctx, g.Key, u2)
	require.NoError(t, err)
	require.Equal(t, want, got)
	replaced = upsert(store.MemberUpsertParams{NamespaceKey: g.Key, UserID: u2, AccessLevel: 10, CreatedAt: base.Add(time.Hour)})
	require.True(t, replaced.ExpiresAt.IsZero(), "an upsert without expiry clears it")
	require.Equal(t, 10, replaced.AccessLevel)
	list, err = st.MemberList(ctx, g.Key)
	require.NoError(t, err)
	require.Len(t, list, 2)

	require.NoError(t, st.MemberDelete(ctx, g.Key, u2))
	_, err = st.MemberGet(ctx, g.Key, u2)
	require.ErrorIs(t, err, store.ErrNotFound)
	require.ErrorIs(t, st.MemberDelete(ctx, g.Key, u2), store.ErrNotFound)
	require.ErrorIs(t, st.MemberDelete(ctx, p.Key, u3), store.ErrNotFound)
	list, err = st.MemberList(ctx, g.Key)
	require.NoError(t, err)
	require.Equal(t, []store.Member{gU1}, list)

	_, err = st.MemberUpsert(ctx, store.MemberUpsertParams{NamespaceKey: p.Key + 100, UserID: u1, AccessLevel: 10})
	require.ErrorIs(t, err, store.ErrNotFound, "namespace missing")
	_, err = st.MemberUpsert(ctx, store.MemberUpsertParams{NamespaceKey: p.Key, UserID: u3 + 100, AccessLevel: 10})
	require.ErrorIs(t, err, store.ErrNotFound, "user missing")
}

func (s *suite) testCreatedAtDefaultsToNow(t *testing.T) {
	ctx, st := s.setup(t)

	before := time.Now().Truncate(time.Millisecond)
	u, err := st.UserCreate(ctx, store.UserCreateParams{Username: "u"})
	require.NoError(t, err)
	n, err := st.NamespaceCreate(ctx, store.NamespaceCreateParams{Kind: store.KindGroup, Name: "g", FullPath: "g"})
	require.NoError(t, err)
	tok, err := st.TokenCreate(ctx, store.TokenCreateParams{UserID: u.ID, Name: "t", Hash: hash("t")})
	require.NoError(t, err)
	m, err := st.MemberUpsert(ctx, store.MemberUpsertParams{NamespaceKey: n.Key, UserID: u.ID, AccessLevel: 10})
	require.NoError(t, err)
	after := time.Now()

	for name, got := range map[string]time.Time{"user": u.CreatedAt, "namespace": n.CreatedAt, "token": tok.CreatedAt, "member": m.CreatedAt} {
		require.Equal(t, time.UTC, got.Location(), name)
		require.False(t, got.Before(before), "%s: %v before %v", name, got, before)
		require.False(t, got.After(after), "%s: %v after %v", name, got, after)
	}
}

// BenchEventInsertMany measures EventInsertMany on st with batches of 1000 new events of about
// 1 KB of data each, and reports events/s. Drivers call it from their BenchmarkEventInsertMany.
func BenchEventInsertMany(b *testing.B, st store.Store) {
	const batch = 1000
	ctx := b.Context()
	pad := strings.Repeat("x", 840)
	events := make([]store.EventRecord, batch)
	var size int64
	for i := range events {
		events[i].Data = fmt.Appendf(nil, `{"id":%d,"author_id":%d,"entity_id":%d,"entity_type":"Project","event_name":"project_feature_visibility_changed","details":{"change":"visibility","from":"private","to":"internal","pad":%q}}`,
			i, i%31, i%997, pad)
		size += int64(len(events[i].Data))
	}
	b.SetBytes(size)
	b.ReportAllocs()
	var next int64
	for b.Loop() {
		for i := range events {
			next++
			e := &events[i]
			e.ID = next
			e.CreatedAt = base.Add(time.Duration(next) * time.Millisecond)
			e.EventType = "project_feature_visibility_changed"
			e.EntityType = "Project"
			e.EntityID = next % 997
			e.AuthorID = next % 31
		}
		if err := st.EventInsertMany(ctx, events); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(next)/b.Elapsed().Seconds(), "events/s")
}

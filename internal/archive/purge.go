package archive

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"time"

	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/store"
)

// PurgeStore is the part of the store the retention purge uses.
type PurgeStore interface {
	RetentionList(ctx context.Context) (map[int64]time.Duration, error)
	EventAgeList(ctx context.Context, p store.EventAgeListParams) ([]store.EventAge, error)
	EventDeleteMany(ctx context.Context, ids []int64) (int64, error)
	NamespaceGetByKey(ctx context.Context, key int64) (store.Namespace, error)
}

// Recorder publishes the audit event of a purge through the same path as every other event
// the service records about itself (ingest.Service.Record).
type Recorder interface {
	Record(ctx context.Context, in event.Input, by event.Producer) error
}

// TypePurged is the event type of the audit event a purge records, once per top-level group
// that lost events (and once for the instance's and users' events).
const TypePurged = "audit_events_retention_purged"

// DefaultPurgeBatch is how many events one step of the purge examines.
const DefaultPurgeBatch = 1000

// Purger deletes stored events past their retention: a top-level group's own retention
// (store.RetentionSet) for the events of its tree, the instance default for every other event.
// It works in small steps (one short read and one short delete of at most Batch events), so
// the store consumer and readers wait for no long lock, and ingest, which only appends to the
// log, is not touched at all. Run it in one process of a cluster at a time (app holds the
// lease "retention-purge"); two at once would only delete the same rows twice.
type Purger struct {
	Store PurgeStore
	// Recorder, when set, records an audit event per group (and for the instance) that lost
	// events in a purge.
	Recorder Recorder
	Logger   *slog.Logger
	// Batch is how many events one step examines. Default DefaultPurgeBatch.
	Batch int
	// NowFunc is the clock. Default time.Now.
	NowFunc func() time.Time
	// Purged, when set, is told how many events each step deleted (a metric).
	Purged func(n int64)
	// BeforeDelete, when set, is told the ids of the events a step is about to delete, before
	// it deletes them (the trail marks their leaves purged, so that an audit tells retention
	// from a deleted row). An error stops the purge, having deleted nothing of that step.
	BeforeDelete func(ctx context.Context, ids []int64) error
}

// PurgeResult is what one purge deleted: in all, and per top-level group key (0: instance and
// user events, and events of entities not known as namespaces).
type PurgeResult struct {
	Deleted int64
	ByGroup map[int64]int64
}

// Purge deletes every stored event older than its retention and records what it deleted.
// defaultRetention applies to events of groups without a retention of their own, and to
// instance and user events; 0 keeps them. A failure stops the purge where it is: what was
// deleted stays deleted (and is recorded), the rest waits for the next purge.
func (p *Purger) Purge(ctx context.Context, defaultRetention time.Duration) (PurgeResult, error) {
	res := PurgeResult{ByGroup: map[int64]int64{}}
	own, err := p.Store.RetentionList(ctx)
	if err != nil {
		return res, fmt.Errorf("purge: read retentions: %w", err)
	}
	shortest := defaultRetention
	for _, r := range own {
		if shortest <= 0 || r < shortest {
			shortest = r
		}
	}
	if shortest <= 0 {
		return res, nil // everything is kept
	}
	now := p.now()
	batch := p.Batch
	if batch <= 0 {
		batch = DefaultPurgeBatch
	}
	err = p.scan(ctx, now, now.Add(-shortest), batch, defaultRetention, own, &res)
	p.record(context.WithoutCancel(ctx), now, defaultRetention, own, res)
	return res, err
}

// scan examines the events older than the shortest retention in force, oldest first, one
// step of batch at a time, deleting those older than their own retention.
func (p *Purger) scan(ctx context.Context, now, before time.Time, batch int, def time.Duration, own map[int64]time.Duration, res *PurgeResult) error {
	params := store.EventAgeListParams{Before: before, Limit: batch}
	ids := make([]int64, 0, batch)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		page, err := p.Store.EventAgeList(ctx, params)
		if err != nil {
			return fmt.Errorf("purge: list events before %s: %w", before.Format(time.RFC3339), err)
		}
		ids = ids[:0]
		counts := map[int64]int64{}
		for _, e := range page {
			r, ok := own[e.TopKey]
			if e.TopKey == 0 || !ok {
				r = def
			}
			if r > 0 && e.CreatedAt.Before(now.Add(-r)) {
				ids = append(ids, e.ID)
				counts[e.TopKey]++
			}
		}
		if len(ids) > 0 {
			if p.BeforeDelete != nil {
				if err := p.BeforeDelete(ctx, ids); err != nil {
					return fmt.Errorf("purge: %w", err)
				}
			}
			n, err := p.Store.EventDeleteMany(ctx, ids)
			if err != nil {
				return fmt.Errorf("purge: delete %d events: %w", len(ids), err)
			}
			res.Deleted += n
			if p.Purged != nil {
				p.Purged(n)
			}
			for k, c := range counts {
				res.ByGroup[k] += c
			}
		}
		if len(page) < batch {
			return nil
		}
		last := page[len(page)-1]
		params.AfterCreatedAt, params.AfterID = last.CreatedAt, last.ID
	}
}

// record publishes one audit event per top-level group that lost events, and one for the rest.
// A failure is logged: the events are deleted, and the log line says so.
func (p *Purger) record(ctx context.Context, now time.Time, def time.Duration, own map[int64]time.Duration, res PurgeResult) {
	if p.Recorder == nil {
		return
	}
	keys := make([]int64, 0, len(res.ByGroup))
	for k := range res.ByGroup {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	for _, key := range keys {
		n := res.ByGroup[key]
		r, whose := def, "the instance's default retention"
		in := event.Input{EventType: TypePurged, AuthorName: "auditstream", EntityType: event.EntityInstance}
		if key != 0 {
			ns, err := p.Store.NamespaceGetByKey(ctx, key)
			if err != nil {
				p.logger().Error("purge: audit event not recorded: group not found", "group_key", key, "deleted", n, "err", err)
				continue
			}
			in.EntityType, in.EntityPath = event.EntityGroup, ns.FullPath
			if ns.ID > 0 {
				id := ns.ID
				in.EntityID = &id
			}
			in.TargetType, in.TargetDetails = "Group", ns.FullPath
			if gr, ok := own[key]; ok {
				r, whose = gr, "the group's retention"
			}
		}
		before := now.Add(-r).UTC()
		in.Details, _ = json.Marshal(map[string]any{
			"custom_message": "Deleted " + strconv.FormatInt(n, 10) + " stored audit events created before " + before.Format(time.RFC3339) + " (" + whose + ": " + days(r) + ")",
			"deleted_count":  n,
			"retention_days": r.Hours() / 24,
			"created_before": before.Format(time.RFC3339),
		})
		if err := p.Recorder.Record(ctx, in, event.Producer{Via: event.ViaService}); err != nil {
			p.logger().Error("purge: audit event not recorded", "group_key", key, "deleted", n, "err", err)
		}
	}
}

// days says a retention in days, as owners set it.
func days(r time.Duration) string {
	d := r.Hours() / 24
	if d == float64(int64(d)) {
		if d == 1 {
			return "1 day"
		}
		return strconv.FormatInt(int64(d), 10) + " days"
	}
	return r.String()
}

func (p *Purger) now() time.Time {
	if p.NowFunc != nil {
		return p.NowFunc()
	}
	return time.Now()
}

func (p *Purger) logger() *slog.Logger {
	if p.Logger != nil {
		return p.Logger
	}
	return slog.New(slog.DiscardHandler)
}

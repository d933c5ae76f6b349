package streamconfig

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/store"
)

// RetentionStore keeps the retention of each top-level group's stored events.
type RetentionStore interface {
	RetentionSet(ctx context.Context, groupKey int64, retention time.Duration) error
	RetentionGet(ctx context.Context, groupKey int64) (time.Duration, error)
}

// RetentionBounds are the administrator's retention settings.
type RetentionBounds struct {
	// Default keeps the stored events of groups without a retention of their own (and the
	// instance's and users' events); 0 keeps them forever (--retention).
	Default time.Duration
	// Min is the shortest retention an owner may set (--retention-min). At least a day.
	Min time.Duration
	// Max is the longest (--retention-max); 0: no ceiling.
	Max time.Duration
}

// Day is the unit owners set retention in.
const Day = 24 * time.Hour

// MinDays is the least a group may set, in whole days (the floor, rounded up; at least 1).
func (b RetentionBounds) MinDays() int { return max(1, int((b.Min+Day-1)/Day)) }

// MaxDays is the most a group may set in whole days (rounded down); 0: no ceiling.
func (b RetentionBounds) MaxDays() int { return int(b.Max / Day) }

// TypeRetentionUpdated is the event type of a change to a group's retention.
const TypeRetentionUpdated = "audit_events_retention_updated"

// Retention is how long a top-level group's stored events are kept.
type Retention struct {
	Group  store.Namespace // the top-level group
	Own    time.Duration   // the group's own setting; 0: none, the default applies
	Bounds RetentionBounds
}

// Effective is the retention in force for the group's events; 0: kept forever.
func (r Retention) Effective() time.Duration {
	if r.Own > 0 {
		return r.Own
	}
	return r.Bounds.Default
}

// topGroup resolves groupPath to its top-level group.
func (s *Service) topGroup(ctx context.Context, groupPath string) (g, top store.Namespace, err error) {
	g, err = s.Namespaces.Find(ctx, store.KindGroup, groupPath)
	if err != nil {
		return g, top, storeErr(err)
	}
	if g.ParentKey == 0 {
		return g, g, nil
	}
	top, err = s.Namespaces.ByKey(ctx, g.TopKey)
	return g, top, storeErr(err)
}

// authorizeRetention lets administrators read and change a group's retention, owners of its
// top-level group change it, and maintainers of the group (or above, also through an
// ancestor) read it. Everyone else is told ErrNotFound, whether the group exists or not.
func (s *Service) authorizeRetention(ctx context.Context, a Actor, g store.Namespace, write bool) error {
	p := a.Principal
	if p == nil || !p.CanRead() || write && !p.CanWrite() {
		return ErrNotFound
	}
	if !p.User.Admin {
		chain, err := s.Namespaces.Chain(ctx, g)
		if err != nil {
			return storeErr(err)
		}
		level, err := s.Access.AccessLevel(ctx, p, chain)
		if err != nil {
			return storeErr(err)
		}
		if level < auth.Maintainer || write && level < auth.Owner {
			return ErrNotFound
		}
	}
	if write {
		return s.allowMutation(p)
	}
	return nil
}

// Retention tells how long the stored events of the group at groupPath (a subgroup tells its
// top-level group's) are kept.
func (s *Service) Retention(ctx context.Context, a Actor, groupPath string) (Retention, error) {
	g, top, err := s.topGroup(ctx, groupPath)
	if err != nil {
		return Retention{}, err
	}
	if err := s.authorizeRetention(ctx, a, g, false); err != nil {
		return Retention{}, err
	}
	own, err := s.Retentions.RetentionGet(ctx, top.Key)
	if err != nil {
		return Retention{}, storeErr(err)
	}
	return Retention{Group: top, Own: own, Bounds: s.RetentionBounds}, nil
}

// SetRetention sets how many days the stored events of the top-level group at groupPath are
// kept, within the administrator's bounds; nil removes the group's setting (the instance
// default applies again). Owners of the group and administrators only. An invalid value is an
// *InputError and changes nothing. The change is recorded as an audit event of the group.
func (s *Service) SetRetention(ctx context.Context, a Actor, groupPath string, days *int) (Retention, error) {
	g, top, err := s.topGroup(ctx, groupPath)
	if err != nil {
		return Retention{}, err
	}
	if err := s.authorizeRetention(ctx, a, g, true); err != nil {
		return Retention{}, err
	}
	if g.Key != top.Key {
		return Retention{}, inputErr("Retention is set on top-level groups only: %s belongs to %s", g.FullPath, top.FullPath)
	}
	b := s.RetentionBounds
	var want time.Duration
	if days != nil {
		switch {
		case *days < b.MinDays():
			return Retention{}, inputErr("Retention must be at least %d days (the instance's floor), not %d", b.MinDays(), *days)
		case b.MaxDays() > 0 && *days > b.MaxDays():
			return Retention{}, inputErr("Retention must be at most %d days (the instance's ceiling), not %d", b.MaxDays(), *days)
		case *days > 100*365:
			return Retention{}, inputErr("Retention must be at most %d days, not %d", 100*365, *days)
		}
		want = time.Duration(*days) * Day
	}
	old, err := s.Retentions.RetentionGet(ctx, top.Key)
	if err != nil {
		return Retention{}, storeErr(err)
	}
	if err := s.Retentions.RetentionSet(ctx, top.Key, want); err != nil {
		return Retention{}, storeErr(err)
	}
	r := Retention{Group: top, Own: want, Bounds: b}
	if old != want {
		s.recordRetention(ctx, a, top, Retention{Group: top, Own: old, Bounds: b}, r)
	}
	return r, nil
}

// describe says a retention for people.
func describe(r Retention) string {
	switch {
	case r.Own > 0:
		return days(r.Own)
	case r.Bounds.Default > 0:
		return "the instance default (" + days(r.Bounds.Default) + ")"
	}
	return "the instance default (kept forever)"
}

func days(d time.Duration) string {
	n := int64(d / Day)
	if n == 1 {
		return "1 day"
	}
	return strconv.FormatInt(n, 10) + " days"
}

// recordRetention publishes the audit event of a change of retention, through the same path
// as every other change the service records about itself.
func (s *Service) recordRetention(ctx context.Context, a Actor, g store.Namespace, old, cur Retention) {
	if s.Auditor == nil || a.Principal == nil {
		return
	}
	in := event.Input{EventType: TypeRetentionUpdated, EntityType: event.EntityGroup, EntityPath: g.FullPath,
		AuthorID: a.Principal.User.ID, AuthorName: a.Principal.User.Name, AuthorEmail: a.Principal.User.Email,
		TargetType: "Group", TargetDetails: g.FullPath, IPAddress: a.IP}
	if g.ID > 0 {
		id := g.ID
		in.EntityID = &id
		in.TargetID = json.RawMessage(strconv.FormatInt(id, 10))
	}
	in.Details, _ = json.Marshal(map[string]any{
		"custom_message": fmt.Sprintf("Changed the retention of stored audit events from %s to %s", describe(old), describe(cur)),
		"from":           dayCount(old.Own),
		"to":             dayCount(cur.Own),
	})
	if err := s.Auditor.Record(context.WithoutCancel(ctx), in, a.Principal.Producer(event.ViaService)); err != nil {
		s.logger().Error("self-audit event not recorded", "event_type", in.EventType, "group", g.FullPath, "err", err)
	}
}

// dayCount is a group's own retention in days for an event's details; nil: none.
func dayCount(d time.Duration) any {
	if d <= 0 {
		return nil
	}
	return int64(d / Day)
}

package streamconfig

import (
	"context"

	"github.com/auditstream/auditstream/internal/store"
)

// DeliveryStore is what the delivery views need of the store.
type DeliveryStore interface {
	DeadLetterList(ctx context.Context, p store.DeadLetterListParams) ([]store.DeadLetter, error)
	DeadLetterCount(ctx context.Context, destinationID int64) (int64, error)
	DeliveryAttemptList(ctx context.Context, destinationID int64, limit int) ([]store.DeliveryAttempt, error)
}

// Authorized returns the stored destination ref names (secrets still sealed) when the actor may
// see it, or change it with write, for operations on its deliveries.
func (s *Service) Authorized(ctx context.Context, a Actor, ref Ref, write bool) (store.Destination, error) {
	if d, ok := a.Seen.get(ref.ID); ok && !write && d.Scope == ref.Scope && (ref.Category == "" || d.Category == ref.Category) {
		return d, nil
	}
	d, err := s.Store.DestinationGet(ctx, ref.ID)
	if err != nil {
		return store.Destination{}, storeErr(err)
	}
	if _, err := s.authorizeOn(ctx, a, ref, d, write); err != nil {
		return store.Destination{}, err
	}
	if !write {
		a.Seen.add(d)
	}
	return d, nil
}

// DeadLetters pages a destination's dead letters, newest first (see store.DeadLetterListParams),
// with how many there are.
func (s *Service) DeadLetters(ctx context.Context, a Actor, ref Ref, beforeID int64, limit int) ([]store.DeadLetter, int64, error) {
	d, err := s.Authorized(ctx, a, ref, false)
	if err != nil {
		return nil, 0, err
	}
	dls, err := s.Deliveries.DeadLetterList(ctx, store.DeadLetterListParams{DestinationID: d.ID, BeforeID: beforeID, Limit: limit})
	if err != nil {
		return nil, 0, storeErr(err)
	}
	n, err := s.Deliveries.DeadLetterCount(ctx, d.ID)
	if err != nil {
		return nil, 0, storeErr(err)
	}
	return dls, n, nil
}

// Attempts returns a destination's newest delivery attempts.
func (s *Service) Attempts(ctx context.Context, a Actor, ref Ref, limit int) ([]store.DeliveryAttempt, error) {
	d, err := s.Authorized(ctx, a, ref, false)
	if err != nil {
		return nil, err
	}
	as, err := s.Deliveries.DeliveryAttemptList(ctx, d.ID, limit)
	return as, storeErr(err)
}

// RecordDeliveryChange records an owner's action on a destination's deliveries (a replay, a
// redelivery) as an update of the destination.
func (s *Service) RecordDeliveryChange(ctx context.Context, a Actor, ref Ref, d store.Destination, msg string) {
	o := Owner{Scope: d.Scope}
	if d.Scope == store.ScopeGroup {
		if g, err := s.Namespaces.ByKey(ctx, d.NamespaceKey); err == nil {
			o.Group = g
		}
	}
	s.record(ctx, a, Destination{ID: d.ID, Owner: o, Name: d.Name, Category: d.Category}, auditUpdate, ref.Flavor, msg)
}

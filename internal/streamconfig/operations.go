package streamconfig

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/auditstream/auditstream/internal/delivery"
	"github.com/auditstream/auditstream/internal/store"
)

// Engine is the delivery engine's side of the operations on a destination's deliveries
// (delivery.Engine).
type Engine interface {
	Status(ctx context.Context, d store.Destination) delivery.Status
	SendTest(ctx context.Context, d store.Destination, actor string) delivery.TestResult
	Replay(ctx context.Context, d store.Destination, since time.Time) error
	Redeliver(ctx context.Context, d store.Destination, ids []int64) (delivery.RedeliverResult, error)
}

// DeliveryStatus is what owners see of a destination's delivery, with how many dead letters
// it has.
type DeliveryStatus struct {
	delivery.Status
	DeadLetterCount int64
}

// State is the destination's state: healthy, failing, circuit_open, paused or error.
func (s DeliveryStatus) State() string { return s.Status.Status }

// DeliveryStatus returns the destination's delivery status. A paused destination shows as
// paused at once, before the engine has picked the change up.
func (s *Service) DeliveryStatus(ctx context.Context, a Actor, ref Ref) (DeliveryStatus, error) {
	d, err := s.Authorized(ctx, a, ref, false)
	if err != nil {
		return DeliveryStatus{}, err
	}
	return s.statusOf(ctx, d)
}

// statusOf is the status of a destination the actor was authorized for.
func (s *Service) statusOf(ctx context.Context, d store.Destination) (DeliveryStatus, error) {
	st := DeliveryStatus{Status: s.Engine.Status(ctx, d)}
	if !d.Active {
		st.Status.Status = delivery.StatusPaused
	}
	var err error
	if st.DeadLetterCount, err = s.Deliveries.DeadLetterCount(ctx, d.ID); err != nil {
		return DeliveryStatus{}, storeErr(err)
	}
	return st, nil
}

// Listed is a destination with its delivery status.
type Listed struct {
	Destination
	Status DeliveryStatus
}

// ListWithStatus is List with each destination's delivery status, authorized once.
func (s *Service) ListWithStatus(ctx context.Context, a Actor, o Owner) ([]Listed, error) {
	ds, vs, err := s.list(ctx, a, o)
	if err != nil {
		return nil, err
	}
	out := make([]Listed, len(ds))
	for i, d := range ds {
		st, err := s.statusOf(ctx, d)
		if err != nil {
			return nil, err
		}
		out[i] = Listed{Destination: vs[i], Status: st}
	}
	return out, nil
}

// Overview is what a destination's page shows: the destination, its status, its newest
// delivery attempts and a page of its dead letters (see store.DeadLetterListParams).
type Overview struct {
	Destination
	Status      DeliveryStatus
	Attempts    []store.DeliveryAttempt
	DeadLetters []store.DeadLetter
}

// Overview reads a destination's page, authorized once.
func (s *Service) Overview(ctx context.Context, a Actor, ref Ref, attempts int, deadLettersBefore int64, deadLetters int) (Overview, error) {
	d, v, err := s.load(ctx, a, ref, false)
	if err != nil {
		return Overview{}, err
	}
	o := Overview{Destination: v}
	if o.Status, err = s.statusOf(ctx, d); err != nil {
		return Overview{}, err
	}
	if o.Attempts, err = s.Deliveries.DeliveryAttemptList(ctx, d.ID, attempts); err != nil {
		return Overview{}, storeErr(err)
	}
	o.DeadLetters, err = s.Deliveries.DeadLetterList(ctx, store.DeadLetterListParams{DestinationID: d.ID, BeforeID: deadLettersBefore, Limit: deadLetters})
	return o, storeErr(err)
}

// SendTestEvent sends a synthetic event to the destination and reports what happened.
func (s *Service) SendTestEvent(ctx context.Context, a Actor, ref Ref) (delivery.TestResult, error) {
	d, err := s.Authorized(ctx, a, ref, true)
	if err != nil {
		return delivery.TestResult{}, err
	}
	return s.Engine.SendTest(ctx, d, a.Principal.User.Username), nil
}

// Replay delivers again every event since the given time that the destination's filters
// take, and records it. since must be within the log's max age (LogMaxAge) and the
// destination active; otherwise an InputError says why and nothing happens.
func (s *Service) Replay(ctx context.Context, a Actor, ref Ref, since time.Time) error {
	d, err := s.Authorized(ctx, a, ref, true)
	if err != nil {
		return err
	}
	now := s.now()
	switch {
	case since.After(now):
		return inputErr("since must not be in the future")
	case now.Sub(since) > s.LogMaxAge:
		return inputErr("since must be within the log's max age (%s): older events are no longer in the log", s.LogMaxAge)
	case !d.Active:
		return inputErr("The destination is paused: activate it first")
	}
	if err := s.Engine.Replay(ctx, d, since); err != nil {
		return fmt.Errorf("%w: replay: %w", ErrUnavailable, err)
	}
	s.RecordDeliveryChange(ctx, a, ref, d, fmt.Sprintf("Replayed the events since %s to streaming destination %q", since.UTC().Format("2006-01-02T15:04:05Z"), d.Name))
	return nil
}

// Redeliver sends dead letters again (ids nil: all, up to delivery.MaxRedeliver) and records
// it when any was sent. An id that is not one of the destination's dead letters is an
// InputError, returned with the result of the others.
func (s *Service) Redeliver(ctx context.Context, a Actor, ref Ref, ids []int64) (delivery.RedeliverResult, error) {
	d, err := s.Authorized(ctx, a, ref, true)
	if err != nil {
		return delivery.RedeliverResult{}, err
	}
	res, err := s.Engine.Redeliver(ctx, d, ids)
	if res.Delivered+res.Failed > 0 {
		s.RecordDeliveryChange(ctx, a, ref, d, fmt.Sprintf("Redelivered dead letters of streaming destination %q: %d delivered, %d failed", d.Name, res.Delivered, res.Failed))
	}
	switch {
	case err == nil:
		return res, nil
	case errors.Is(err, store.ErrNotFound):
		return res, inputErr("%s", err.Error())
	}
	return res, fmt.Errorf("%w: redeliver: %w", ErrUnavailable, err)
}

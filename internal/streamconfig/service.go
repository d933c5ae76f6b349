// Package streamconfig manages the configuration of streaming destinations: who may see and
// change them, what a valid destination is, how its secrets are sealed at rest, and the audit
// event each change publishes about itself; and the other setting owners give their group's
// stream, how long its stored events are kept (retention.go). The GraphQL API is a thin layer
// over it.
package streamconfig

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/namespace"
	"github.com/auditstream/auditstream/internal/store"
)

// Store is what the service needs of the store.
type Store interface {
	DestinationCreate(ctx context.Context, p store.DestinationCreateParams) (store.Destination, error)
	DestinationGet(ctx context.Context, id int64) (store.Destination, error)
	DestinationList(ctx context.Context, p store.DestinationListParams) ([]store.Destination, error)
	DestinationUpdate(ctx context.Context, p store.DestinationUpdateParams) (store.Destination, error)
	DestinationDelete(ctx context.Context, id int64) error
	DestinationCount(ctx context.Context, scope store.DestinationScope, namespaceKey int64) (int64, error)
	DestinationByHeader(ctx context.Context, headerID int64) (store.Destination, error)
	DestinationByNamespaceFilter(ctx context.Context, filterID int64) (store.Destination, error)
}

// EventLister reads stored events, newest first (store.Store's EventList).
type EventLister interface {
	EventList(ctx context.Context, p store.EventListParams) ([]store.EventRecord, error)
}

// Namespaces resolves groups and projects (namespace.Resolver).
type Namespaces interface {
	Find(ctx context.Context, kind store.NamespaceKind, idOrPath string) (store.Namespace, error)
	ByKey(ctx context.Context, key int64) (store.Namespace, error)
	Chain(ctx context.Context, ns store.Namespace) ([]store.Namespace, error)
}

// Access tells a principal's access level on a namespace chain (auth.Authenticator).
type Access interface {
	AccessLevel(ctx context.Context, p *auth.Principal, chain []store.Namespace) (int, error)
}

// Sealer encrypts secrets at rest (secret.Box).
type Sealer interface {
	Seal(plaintext, associatedData []byte) (string, error)
	Open(sealed string, associatedData []byte) ([]byte, error)
}

// Auditor publishes the audit events the service records about its own changes. by is the
// user (and token) who made the change: the event records it as its producer.
type Auditor interface {
	Record(ctx context.Context, in event.Input, by event.Producer) error
}

// Limits protect the service from abuse. Zero values take the defaults.
type Limits struct {
	// MaxDestinations caps the destinations, active or not, of one top-level group and of the
	// instance. Default 50 (GitLab's enforce_audit_streaming_destination_limits).
	MaxDestinations int
	// MaxFilters caps the event-type and category filters of one destination, allow and deny
	// together. Default 500.
	MaxFilters int
	// MutationsPerMinute is how many changes one user may make per minute, with bursts of
	// the same size. Default 60; negative disables the limit.
	MutationsPerMinute int
}

// Defaults of Limits.
const (
	DefaultMaxDestinations    = 50
	DefaultMaxFilters         = 500
	DefaultMutationsPerMinute = 60
)

// Service manages streaming destinations. Safe for concurrent use.
type Service struct {
	// Types is the destination categories offered: their config and secret rules.
	Types      *destination.Registry
	Store      Store
	Deliveries DeliveryStore
	// Engine runs the deliveries: status, test events, replays and redeliveries.
	Engine     Engine
	Namespaces Namespaces
	Access     Access
	Sealer     Sealer
	Catalog    *event.Catalog
	Auditor    Auditor
	Limits     Limits
	// LogMaxAge is how long the log keeps events: a replay starts no earlier.
	LogMaxAge time.Duration
	Logger    *slog.Logger
	NowFunc   func() time.Time
	// Changed, when set, is called after every change that was stored, before the API answers.
	// settle is true for a change that can stop or redirect deliveries (anything but a
	// creation): Changed should then return once the change has taken effect, so that no event
	// ingested after the answer is delivered by the old settings. A new destination starts at
	// its creation whenever it is picked up, so creating many waits for nothing.
	Changed func(ctx context.Context, settle bool)
	// Retentions keeps each top-level group's retention of stored events, which owners set
	// within RetentionBounds (retention.go).
	Retentions      RetentionStore
	RetentionBounds RetentionBounds
	// Events reads stored events for PreviewExpression. Without it a preview examines none.
	Events EventLister

	limitersMu sync.Mutex
	limiters   map[int64]*rate.Limiter
}

// Actor is who asks: the authenticated principal (nil for a request without a token) and the
// address the request came from, recorded in self-audit events.
type Actor struct {
	Principal *auth.Principal
	IP        string
	// Seen, when set, remembers for one request the destinations the actor was found allowed
	// to read, so that the fields of each destination of a list (its status, its attempts) do
	// not read and authorize it again: a list of 50 would otherwise cost 100 more lookups.
	Seen *Seen
}

// Seen is the destinations an actor was found allowed to read during one request. Safe for
// concurrent use (GraphQL resolves fields concurrently).
type Seen struct {
	mu sync.Mutex
	m  map[int64]store.Destination
}

// NewSeen returns an empty Seen for one request.
func NewSeen() *Seen { return &Seen{m: map[int64]store.Destination{}} }

func (s *Seen) add(ds ...store.Destination) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range ds {
		s.m[d.ID] = d
	}
}

func (s *Seen) forget(id int64) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

func (s *Seen) get(id int64) (store.Destination, bool) {
	if s == nil {
		return store.Destination{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.m[id]
	return d, ok
}

// ErrNotFound: the destination, header, filter or group does not exist, or the actor may not
// manage it. The two are never told apart, so that nobody learns what another group has.
var ErrNotFound = errors.New("The resource that you are attempting to access does not exist or you don't have permission to perform this action")

// ErrRateLimited: the actor made too many changes in the last minute.
var ErrRateLimited = errors.New("This endpoint has been requested too many times. Try again later.")

// ErrUnavailable wraps a failure of the store: nothing was changed, or nothing can be said.
var ErrUnavailable = errors.New("the database cannot be reached right now; retry")

// InputError lists everything wrong with a request, as sentences for people. The GraphQL layer
// returns them in the payload's errors list; nothing was changed.
type InputError struct {
	Messages []string
	// Codes holds the stable codes of the problems that have one (destination.FilterError's
	// Code), in order; it may be shorter than Messages.
	Codes []string
}

func (e *InputError) Error() string { return strings.Join(e.Messages, "; ") }

func inputErr(format string, args ...any) error {
	return &InputError{Messages: []string{fmt.Sprintf(format, args...)}}
}

// inputErrs turns validation errors (errors.Join trees of *destination.ConfigError and
// *destination.FilterError) into an InputError.
func inputErrs(err error) error {
	if err == nil {
		return nil
	}
	var msgs, codes []string
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, c := range j.Unwrap() {
				walk(c)
			}
			return
		}
		msg := err.Error()
		var fe *destination.FilterError
		if errors.As(err, &fe) { // name the field as the API does
			msg = apiFilterField[fe.Field] + strings.TrimPrefix(msg, fe.Field)
			codes = append(codes, fe.Code)
		}
		msgs = append(msgs, msg)
	}
	walk(err)
	return &InputError{Messages: msgs, Codes: codes}
}

// apiFilterField names the destination package's filter fields as the GraphQL API does.
var apiFilterField = map[string]string{
	destination.FieldEventTypes:     "eventTypeFilters",
	destination.FieldDenyEventTypes: "denyEventTypeFilters",
	destination.FieldCategories:     "categoryFilters",
	destination.FieldDenyCategories: "denyCategoryFilters",
	destination.FieldNamespaces:     "namespaceFilters",
	destination.FieldExpression:     "filterExpression",
}

func (s *Service) now() time.Time {
	if s.NowFunc != nil {
		return s.NowFunc()
	}
	return time.Now()
}

func (s *Service) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Service) maxDestinations() int {
	if s.Limits.MaxDestinations > 0 {
		return s.Limits.MaxDestinations
	}
	return DefaultMaxDestinations
}

func (s *Service) maxFilters() int {
	if s.Limits.MaxFilters > 0 {
		return s.Limits.MaxFilters
	}
	return DefaultMaxFilters
}

// allowMutation applies the per-user rate limit on changes.
func (s *Service) allowMutation(p *auth.Principal) error {
	perMin := s.Limits.MutationsPerMinute
	if perMin < 0 {
		return nil
	}
	if perMin == 0 {
		perMin = DefaultMutationsPerMinute
	}
	s.limitersMu.Lock()
	defer s.limitersMu.Unlock()
	if s.limiters == nil {
		s.limiters = map[int64]*rate.Limiter{}
	}
	l, ok := s.limiters[p.User.ID]
	if !ok {
		if len(s.limiters) >= 100_000 { // bounded memory: forget everyone, which only forgives
			clear(s.limiters)
		}
		l = rate.NewLimiter(rate.Limit(float64(perMin)/60), perMin)
		s.limiters[p.User.ID] = l
	}
	if !l.AllowN(s.now(), 1) {
		return ErrRateLimited
	}
	return nil
}

// storeErr maps a store or resolver failure: not found stays not found, the rest is
// unavailability (logged by the caller's layer).
func storeErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound), errors.Is(err, namespace.ErrNotFound):
		return ErrNotFound
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// Owner is who a destination belongs to: a top-level group, or the instance (Group zero).
type Owner struct {
	Scope store.DestinationScope
	Group store.Namespace
}

func (o Owner) key() int64 {
	if o.Scope == store.ScopeGroup {
		return o.Group.Key
	}
	return 0
}

// authorize checks that the actor may manage the destinations of owner: the owner of the
// top-level group or an administrator for a group, an administrator for the instance. write
// also needs a token that may change things (scope api) and applies the rate limit.
func (s *Service) authorize(ctx context.Context, a Actor, o Owner, write bool) error {
	p := a.Principal
	if p == nil || !p.CanRead() || write && !p.CanWrite() {
		return ErrNotFound
	}
	switch o.Scope {
	case store.ScopeInstance:
		if !p.User.Admin {
			return ErrNotFound
		}
	case store.ScopeGroup:
		if !p.User.Admin {
			chain, err := s.Namespaces.Chain(ctx, o.Group)
			if err != nil {
				return storeErr(err)
			}
			level, err := s.Access.AccessLevel(ctx, p, chain)
			if err != nil {
				return storeErr(err)
			}
			if level < auth.Owner {
				return ErrNotFound
			}
		}
	default:
		return ErrNotFound
	}
	if write {
		return s.allowMutation(p)
	}
	return nil
}

// GroupOwner resolves the top-level group fullPath names, for a group's destinations. A
// subgroup is refused with GitLab's message; a group the actor cannot see is ErrNotFound.
func (s *Service) GroupOwner(ctx context.Context, fullPath string) (Owner, error) {
	g, err := s.Namespaces.Find(ctx, store.KindGroup, fullPath)
	if err != nil {
		return Owner{}, storeErr(err)
	}
	return Owner{Scope: store.ScopeGroup, Group: g}, nil
}

// CanSeeGroup reports whether the actor may see that group exists: an administrator or a
// member of it or of an ancestor, with a token that may read.
func (s *Service) CanSeeGroup(ctx context.Context, a Actor, g store.Namespace) (bool, error) {
	p := a.Principal
	if p == nil || !p.CanRead() {
		return false, nil
	}
	if p.User.Admin {
		return true, nil
	}
	chain, err := s.Namespaces.Chain(ctx, g)
	if err != nil {
		return false, storeErr(err)
	}
	level, err := s.Access.AccessLevel(ctx, p, chain)
	if err != nil {
		return false, storeErr(err)
	}
	return level > auth.NoAccess, nil
}

// CheckRead reports whether the actor may list the destinations of owner (ErrNotFound if not).
func (s *Service) CheckRead(ctx context.Context, a Actor, o Owner) error {
	return s.authorize(ctx, a, o, false)
}

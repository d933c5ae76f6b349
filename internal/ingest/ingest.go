// Package ingest turns a producer's request body into events appended to the log: it decodes
// one JSON event, a JSON array or NDJSON, validates every event against the catalog, learns the
// namespaces they name, and publishes them, returning their ids once the log acknowledged all.
// A request with any invalid event publishes nothing.
package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/eventlog"
	"github.com/auditstream/auditstream/internal/namespace"
	"github.com/auditstream/auditstream/internal/store"
)

// Format of a request body.
type Format int

// Body formats.
const (
	FormatJSON   Format = iota // one event object or an array of them
	FormatNDJSON               // one event object per line
)

// Limits bound what one request may carry.
type Limits struct {
	// MaxEventBytes is the largest encoded event accepted. Default 256 KiB.
	MaxEventBytes int
	// MaxEvents is the most events in one request. Default 10,000.
	MaxEvents int
}

// Publisher appends messages to the log (eventlog.Log).
type Publisher interface {
	Publish(ctx context.Context, msgs []eventlog.Message) ([]int64, error)
}

// Learner resolves namespaces named by events (namespace.Resolver): Learn for an instance
// producer, LearnBound (which never moves, renames or re-ids a namespace, nor creates a
// top-level group) for a namespace-bound one.
type Learner interface {
	Learn(ctx context.Context, kind store.NamespaceKind, fullPath string, id int64) (store.Namespace, error)
	LearnBound(ctx context.Context, kind store.NamespaceKind, fullPath string, id int64) (store.Namespace, error)
	// Chain returns ns and its ancestors, nearest first.
	Chain(ctx context.Context, ns store.Namespace) ([]store.Namespace, error)
	// Check reports, learning nothing, whether Learn would refuse the event for want of an id
	// (namespace.ErrIDRequired, namespace.ErrUnknownLocalID); other errors are the store's.
	Check(ctx context.Context, kind store.NamespaceKind, fullPath string, id int64) error
}

// Service ingests events. Safe for concurrent use.
type Service struct {
	Catalog   *event.Catalog
	Learner   Learner
	Publisher Publisher
	Limits    Limits
	// PublishTimeout bounds a publish, detached from the client's context so that a client
	// that hangs up cannot leave a request half-written. Default 10s.
	PublishTimeout time.Duration
	NowFunc        func() time.Time

	bufs bufPool // request and encoding buffers; the zero value is ready
}

// EventError is everything wrong with one event of a request.
type EventError struct {
	Index  int                `json:"index"`
	Errors []event.FieldError `json:"errors"`
}

// Error codes of a rejected request (see docs/api.md).
const (
	CodeInvalidJSON     = "invalid_json"
	CodeEmpty           = "empty_request"
	CodeTooManyEvents   = "too_many_events"
	CodeEventTooLarge   = "event_too_large"
	CodeValidation      = "validation_failed"
	CodeNamespace       = "namespace_conflict"
	CodeLogUnavailable  = "log_unavailable"
	CodeIdempotencyKey  = "invalid_idempotency_key"
	CodeRateLimited     = "rate_limited"
	CodeDuplicateKey    = "duplicate_key"
	CodeProducerScope   = "producer_scope"
	CodeReservedField   = "reserved_field"
	maxIdempotencyBytes = 255
)

// RequestError rejects a whole request. Nothing of it was published.
type RequestError struct {
	Code    string       `json:"code"`
	Message string       `json:"message"`
	Events  []EventError `json:"events,omitempty"`
}

func (e *RequestError) Error() string { return e.Code + ": " + e.Message }

// Result is the outcome of a successful request.
type Result struct {
	IDs []int64
}

// Request is one call to Ingest.
type Request struct {
	Body   io.Reader
	Format Format
	// Producer scopes idempotency keys: the same key sent by two producers names two events.
	// Empty leaves keys unscoped.
	Producer string
	// Provenance is who writes the events (the token and its user), recorded in every event
	// (event.Event.Producer). Producers cannot set it: the key is refused in a body
	// (CodeReservedField).
	Provenance event.Producer
	// IdempotencyKey is the Idempotency-Key header; it applies to a single event.
	IdempotencyKey string
	// Allow, when not nil, is asked whether this many valid events may be published now (the
	// caller's rate limit).
	Allow func(n int) bool
	// MayWrite is nil for an instance producer (an administrator's token), which may write
	// any namespace. For a namespace-bound producer it is asked, once per distinct path and
	// one call at a time, whether the producer may write an event of the group or project at
	// entityPath: "" if so, otherwise why not, for the error. Such a producer writes only
	// Group and Project events, only where MayWrite allows, and never moves, renames or re-ids
	// a namespace or creates a top-level group (CodeProducerScope otherwise).
	MayWrite func(ctx context.Context, entityPath string) (refusal string, err error)
}

// ErrReadBody wraps a failure to read the request body (the client went away, a size limit).
var ErrReadBody = errors.New("ingest: reading the request body failed")

// ErrNamespaces wraps a failure to resolve namespaces in the store: nothing was published.
var ErrNamespaces = errors.New("ingest: namespaces are unavailable")

// Ingest decodes, validates and publishes req.Body. It returns a *RequestError for bad input,
// an error wrapping ErrReadBody, ErrNamespaces or eventlog.ErrUnavailable when the body, the store
// or the log failed, or the ids in order.
func (s *Service) Ingest(ctx context.Context, req Request) (Result, error) {
	bodyBuf := s.bufs.get()
	defer s.bufs.put(bodyBuf) // nothing refers to the body once the events are encoded
	if _, err := bodyBuf.ReadFrom(req.Body); err != nil {
		return Result{}, fmt.Errorf("%w: %w", ErrReadBody, err) // e.g. *http.MaxBytesError
	}
	inputs, err := s.decode(bodyBuf.Bytes(), req.Format)
	if err != nil {
		return Result{}, err
	}
	headerKey, allow := req.IdempotencyKey, req.Allow
	if headerKey != "" {
		if len(inputs) != 1 {
			return Result{}, &RequestError{Code: CodeIdempotencyKey, Message: "the Idempotency-Key header applies to a single event; put idempotency_key in each event of a batch"}
		}
		if len(headerKey) > maxIdempotencyBytes {
			return Result{}, &RequestError{Code: CodeIdempotencyKey, Message: fmt.Sprintf("Idempotency-Key is longer than %d bytes", maxIdempotencyBytes)}
		}
		if inputs[0].IdempotencyKey == "" {
			inputs[0].IdempotencyKey = headerKey
		}
	}

	now := s.now()
	events := make([]event.Event, len(inputs))
	msgs := make([]eventlog.Message, len(inputs))
	encBuf := s.bufs.get()
	encBuf.Grow(bodyBuf.Len() + 384*len(inputs))
	buf := encBuf.Bytes()[:0]
	reuse := true // false once a publish failed: a retry still under way in the background may read buf
	defer func() {
		if reuse {
			s.bufs.put(bytes.NewBuffer(buf[:0]))
		}
	}()
	var evErrs []EventError
	givenIDs := map[string]bool{} // kind and path of namespaces an event of this request gives an id
	for i := range inputs {
		ev, errs := event.Normalize(&inputs[i], s.Catalog, now)
		ev.Producer = req.Provenance
		// An event that names a group or project it cannot be filed under is invalid too: say so
		// now, with the request's other problems, not after they are fixed.
		if fe, err := s.checkNamespace(ctx, &ev, errs, givenIDs); err != nil {
			return Result{}, fmt.Errorf("%w: %w", ErrNamespaces, err)
		} else if fe != nil {
			errs = append(errs, *fe)
		}
		if len(errs) == 0 {
			start := len(buf)
			buf = ev.AppendJSON(buf)
			if n := len(buf) - start; n > s.Limits.maxEventBytes() {
				return Result{}, &RequestError{Code: CodeEventTooLarge, Message: fmt.Sprintf("event %d is %d bytes encoded; the limit is %d", i, n, s.Limits.maxEventBytes()),
					Events: []EventError{{Index: i, Errors: []event.FieldError{{Code: CodeEventTooLarge, Message: "event is too large"}}}}}
			}
			msgs[i].Data = buf[start:len(buf):len(buf)]
		} else {
			evErrs = append(evErrs, EventError{Index: i, Errors: errs})
		}
		events[i] = ev
	}
	seenKeys := map[string]int{}
	for i := range inputs {
		k := inputs[i].IdempotencyKey
		if k == "" {
			continue
		}
		if first, dup := seenKeys[k]; dup {
			evErrs = append(evErrs, EventError{Index: i, Errors: []event.FieldError{{Field: "idempotency_key", Code: event.CodeInvalid,
				Message: fmt.Sprintf("is the same as event %d's: one key names one event", first)}}})
			continue
		}
		seenKeys[k] = i
	}
	if len(evErrs) > 0 {
		return Result{}, &RequestError{Code: CodeValidation,
			Message: fmt.Sprintf("%d of %d events are invalid; nothing was accepted", len(evErrs), len(inputs)), Events: evErrs}
	}
	if allow != nil && !allow(len(events)) {
		return Result{}, &RequestError{Code: CodeRateLimited, Message: "429 Too Many Requests: this token is over its ingest rate limit; nothing was accepted"}
	}

	// From here on the work is the server's: do not let a client that hangs up cut it short.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.publishTimeout())
	defer cancel()

	if req.MayWrite != nil {
		if err := checkScope(pctx, events, req.MayWrite); err != nil {
			return Result{}, err
		}
	}
	for i := range events {
		givenID := events[i].EntityID
		root, nsHeader, err := s.root(pctx, &events[i], req.MayWrite != nil)
		switch {
		case errors.Is(err, namespace.ErrNotAllowed):
			return Result{}, scopeError(i, "entity_path", err.Error()+"; nothing was accepted")
		case errors.Is(err, namespace.ErrKindMismatch):
			return Result{}, &RequestError{Code: CodeNamespace, Message: "an event names a path that belongs to a namespace of another kind; nothing was accepted",
				Events: []EventError{{Index: i, Errors: []event.FieldError{{Field: "entity_path", Code: event.CodeInvalid, Message: err.Error()}}}}}
		case errors.Is(err, namespace.ErrUnknownLocalID):
			return Result{}, &RequestError{Code: CodeValidation, Message: "an event names a group or project by an id it does not have; nothing was accepted",
				Events: []EventError{{Index: i, Errors: []event.FieldError{unknownLocalID(&events[i])}}}}
		case errors.Is(err, namespace.ErrIDRequired):
			return Result{}, &RequestError{Code: CodeValidation, Message: "an event names a group or project without its id; nothing was accepted",
				Events: []EventError{{Index: i, Errors: []event.FieldError{idRequired}}}}
		case err != nil:
			return Result{}, fmt.Errorf("%w: %w", ErrNamespaces, err)
		}
		if events[i].EntityID != givenID { // learned from the namespace: encode again
			msgs[i].Data = events[i].AppendJSON(nil)
		}
		msgs[i].Subject = eventlog.Subject(root, events[i].EventType)
		msgs[i].Namespace = nsHeader
		if k := inputs[i].IdempotencyKey; k != "" && req.Producer != "" {
			msgs[i].MsgID = req.Producer + ":" + k
		} else {
			msgs[i].MsgID = k
		}
	}
	ids, err := s.Publisher.Publish(pctx, msgs)
	if err != nil {
		reuse = false
		return Result{}, err
	}
	return Result{IDs: ids}, nil
}

// bufPool holds request and encoding buffers, so that a steady stream of batches does not turn
// into a steady stream of garbage. The zero value is ready; it must not be copied after use.
type bufPool struct{ p sync.Pool }

const maxPooledBuf = 4 << 20

func (bp *bufPool) get() *bytes.Buffer {
	if b, ok := bp.p.Get().(*bytes.Buffer); ok {
		b.Reset()
		return b
	}
	return new(bytes.Buffer)
}

func (bp *bufPool) put(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBuf {
		bp.p.Put(b)
	}
}

// checkScope refuses, before any namespace is learned, the events a namespace-bound producer
// may not write: instance and user events, and events of groups and projects MayWrite refuses.
func checkScope(ctx context.Context, events []event.Event, mayWrite func(ctx context.Context, entityPath string) (string, error)) error {
	refusals := map[string]string{}
	for i, ev := range events {
		if _, ok := namespaceKind(ev.EntityType); !ok {
			return scopeError(i, "entity_type", "a namespace-bound producer writes only Group and Project events; "+
				"instance and user events need an instance producer (an administrator's token)")
		}
		refusal, seen := refusals[ev.EntityPath]
		if !seen {
			var err error
			if refusal, err = mayWrite(ctx, ev.EntityPath); err != nil {
				return fmt.Errorf("%w: %w", ErrNamespaces, err)
			}
			refusals[ev.EntityPath] = refusal
		}
		if refusal != "" {
			return scopeError(i, "entity_path", fmt.Sprintf("this producer may not write events of %q: %s", ev.EntityPath, refusal))
		}
	}
	return nil
}

func scopeError(i int, field, msg string) *RequestError {
	return &RequestError{Code: CodeProducerScope, Message: fmt.Sprintf("event %d: %s", i, msg),
		Events: []EventError{{Index: i, Errors: []event.FieldError{{Field: field, Code: CodeProducerScope, Message: msg}}}}}
}

// idRequired is the problem of an event that names a group or project by path alone before
// its id is known.
var idRequired = event.FieldError{Field: "entity_id", Code: event.CodeRequired,
	Message: "is required for a group or project auditstream does not know the id of yet"}

func unknownLocalID(ev *event.Event) event.FieldError {
	return event.FieldError{Field: "entity_id", Code: event.CodeInvalid,
		Message: fmt.Sprintf("is in the range of ids auditstream assigns (from %d) and names no %s here", store.LocalIDBase, strings.ToLower(ev.EntityType))}
}

// checkNamespace returns the problem with the group or project ev names, if Learn would refuse
// it for want of an id (Learner.Check), when ev has no other problem with its entity. given
// holds the namespaces earlier events of the request give an id: an event naming one of them by
// path alone is fine, since they are learned in order.
func (s *Service) checkNamespace(ctx context.Context, ev *event.Event, errs []event.FieldError, given map[string]bool) (*event.FieldError, error) {
	kind, ok := namespaceKind(ev.EntityType)
	if !ok {
		return nil, nil
	}
	for _, e := range errs {
		if strings.HasPrefix(e.Field, "entity_") {
			return nil, nil
		}
	}
	key := string(kind) + ":" + ev.EntityPath
	if ev.EntityID != 0 {
		given[key] = true
	} else if given[key] {
		return nil, nil
	}
	switch err := s.Learner.Check(ctx, kind, ev.EntityPath, ev.EntityID); {
	case errors.Is(err, namespace.ErrIDRequired):
		return &idRequired, nil
	case errors.Is(err, namespace.ErrUnknownLocalID):
		fe := unknownLocalID(ev)
		return &fe, nil
	default:
		return nil, err
	}
}

// namespaceKind is the kind of namespace an entity type names; false for users and the
// instance.
func namespaceKind(entityType string) (store.NamespaceKind, bool) {
	switch entityType {
	case event.EntityGroup:
		return store.KindGroup, true
	case event.EntityProject:
		return store.KindProject, true
	}
	return "", false
}

// root returns the subject root of ev and, for a group's or project's event, the namespace it
// is filed under (eventlog.NamespaceHeader), learning the namespace (as a namespace-bound
// producer's event when bound).
func (s *Service) root(ctx context.Context, ev *event.Event, bound bool) (root, namespace string, err error) {
	kind, ok := namespaceKind(ev.EntityType)
	switch {
	case !ok && ev.EntityType == event.EntityUser:
		return eventlog.RootUser, "", nil
	case !ok:
		return eventlog.RootInstance, "", nil
	}
	learn := s.Learner.Learn
	if bound {
		learn = s.Learner.LearnBound
	}
	ns, err := learn(ctx, kind, ev.EntityPath, ev.EntityID)
	if err != nil {
		return "", "", err
	}
	ev.EntityID = ns.ID
	chain, err := s.Learner.Chain(ctx, ns)
	if err != nil {
		return "", "", err
	}
	keys := make([]int64, len(chain))
	for i, n := range chain {
		keys[i] = n.Key
	}
	return eventlog.RootGroup(ns.TopKey), eventlog.FormatNamespace(keys, kind == store.KindProject), nil
}

func (s *Service) decode(body []byte, format Format) ([]event.Input, error) {
	d := decoder{b: body}
	if d.eof() {
		return nil, &RequestError{Code: CodeEmpty, Message: "the request has no events"}
	}
	inputs, err := d.events(format, func(n int) error {
		if n >= s.Limits.maxEvents() {
			return &RequestError{Code: CodeTooManyEvents, Message: fmt.Sprintf("a request may carry at most %d events", s.Limits.maxEvents())}
		}
		return nil
	})
	if err != nil {
		return nil, decodeErr(len(inputs), err)
	}
	if len(inputs) == 0 {
		return nil, &RequestError{Code: CodeEmpty, Message: "the request has no events"}
	}
	return inputs, nil
}

// decodeErr reports a decoding error of event i as invalid_json.
func decodeErr(i int, err error) error {
	var (
		re  *RequestError
		fe  *fieldError
		de  *dupKeyError
		rf  *reservedFieldError
		msg = err.Error()
		fld string
	)
	switch {
	case errors.As(err, &re):
		return re
	case errors.As(err, &fe):
		fld = fe.field
	case errors.As(err, &rf):
		return &RequestError{Code: CodeReservedField, Message: fmt.Sprintf("event %d: %s; nothing was accepted", i, msg),
			Events: []EventError{{Index: i, Errors: []event.FieldError{{Field: rf.field, Code: CodeReservedField, Message: msg}}}}}
	case errors.As(err, &de):
		return &RequestError{Code: CodeDuplicateKey, Message: fmt.Sprintf("event %d: %s; a key may appear once in an object", i, msg),
			Events: []EventError{{Index: i, Errors: []event.FieldError{{Field: de.field, Code: CodeDuplicateKey, Message: msg}}}}}
	}
	return &RequestError{Code: CodeInvalidJSON, Message: fmt.Sprintf("event %d: %s", i, msg),
		Events: []EventError{{Index: i, Errors: []event.FieldError{{Field: fld, Code: CodeInvalidJSON, Message: msg}}}}}
}

func (s *Service) now() time.Time {
	if s.NowFunc != nil {
		return s.NowFunc()
	}
	return time.Now()
}

func (s *Service) publishTimeout() time.Duration {
	if s.PublishTimeout > 0 {
		return s.PublishTimeout
	}
	return 10 * time.Second
}

func (l Limits) maxEventBytes() int {
	if l.MaxEventBytes > 0 {
		return l.MaxEventBytes
	}
	return 256 << 10
}

func (l Limits) maxEvents() int {
	if l.MaxEvents > 0 {
		return l.MaxEvents
	}
	return 10_000
}

// Record publishes one event the service produces about itself (for example a change to a
// streaming destination), through the same validation, namespace resolution and log as a
// producer's event. by is the user (and token) whose action it records; its Via is set to
// event.ViaService unless it is event.ViaCLI (a change the CLI made, published from the
// outbox). An in.IdempotencyKey makes a second Record of the same event within the log's
// duplicate window return without publishing it again. It satisfies streamconfig.Auditor.
func (s *Service) Record(ctx context.Context, in event.Input, by event.Producer) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encode audit event: %w", err)
	}
	if by.Via != event.ViaCLI {
		by.Via = event.ViaService
	}
	_, err = s.Ingest(ctx, Request{Body: bytes.NewReader(body), Format: FormatJSON, Provenance: by})
	return err
}

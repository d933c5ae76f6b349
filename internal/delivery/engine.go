// Package delivery streams events from the log to the destinations: one worker per active
// destination on its own durable consumer, the destination's filter deciding what is sent,
// acknowledgement only after the destination accepted, retries with backoff, a circuit per
// destination, dead letters, and the status owners see.
package delivery

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/eventlog"
	"github.com/auditstream/auditstream/internal/store"
)

// Log is what the engine needs of the log (eventlog.Log).
type Log interface {
	EnsureConsumer(ctx context.Context, spec eventlog.ConsumerSpec) (bool, error)
	DeleteConsumer(ctx context.Context, durable string) error
	Fetch(ctx context.Context, durable string, max int, maxWait time.Duration, available bool) ([]eventlog.Delivered, error)
	ConsumerBacklog(ctx context.Context, durable, subject string) (eventlog.ConsumerState, error)
	ConsumerNames(ctx context.Context, prefix string) ([]string, error)
	RewindToAckFloor(ctx context.Context, durable string) error
}

// Leases make one process of a cluster run a job at a time (eventlog.Leases).
type Leases interface {
	Run(ctx context.Context, name string, fn func(ctx context.Context))
}

// Store is what the engine needs of the store.
type Store interface {
	DestinationList(ctx context.Context, p store.DestinationListParams) ([]store.Destination, error)
	DestinationGet(ctx context.Context, id int64) (store.Destination, error)
	DeadLetterAdd(ctx context.Context, p store.DeadLetterAddParams) (store.DeadLetter, error)
	DeadLetterList(ctx context.Context, p store.DeadLetterListParams) ([]store.DeadLetter, error)
	DeadLetterGet(ctx context.Context, id int64) (store.DeadLetter, error)
	DeadLetterDelete(ctx context.Context, destinationID int64, ids []int64) (int64, error)
	DeadLetterTrim(ctx context.Context, destinationID int64, keep int) (int64, error)
	DeliveryAttemptAdd(ctx context.Context, a []store.DeliveryAttempt) error
	DeliveryAttemptTrim(ctx context.Context, destinationID int64, keep int) (int64, error)
}

// Namespaces resolves an event's group or project for namespace filters (namespace.Resolver).
type Namespaces interface {
	Find(ctx context.Context, kind store.NamespaceKind, idOrPath string) (store.Namespace, error)
	Chain(ctx context.Context, ns store.Namespace) ([]store.Namespace, error)
}

// Opener opens a stored destination's secrets (streamconfig.Service.Settings).
type Opener func(d store.Destination) (destination.Settings, error)

// Options tune the engine. Zero values take the defaults.
type Options struct {
	// Reconcile is how often the engine rereads the destinations (changes made through this
	// process are picked up at once through Notify). Default 2s.
	Reconcile time.Duration
	// RetryHorizon is how long an event is retried before it goes to the dead letters.
	// Default 72h; it must stay below the log's max age, or events leave the log first.
	RetryHorizon time.Duration
	// BackoffMin and BackoffMax bound the exponential backoff between retries. Defaults 250ms
	// and 60s.
	BackoffMin, BackoffMax time.Duration
	// CircuitAfter is how many failures in a row open a destination's circuit. Default 5.
	CircuitAfter int
	// ProbeMin and ProbeMax bound the wait between probes of an open circuit. Defaults 1s and
	// 5s: a dead destination costs one request every 5 s, and one that comes back is found
	// within 5 s.
	ProbeMin, ProbeMax time.Duration
	// AckWait is how long the log waits for an ack before handing an event out again: after a
	// crash, what was in flight is sent again this long after the restart. Default 10s (the
	// engine extends it every third of it while it works on an event).
	AckWait time.Duration
	// KeepAttempts and KeepDeadLetters bound what is kept per destination. Defaults 200 and
	// 100,000.
	KeepAttempts, KeepDeadLetters int
}

func (o *Options) defaults() {
	set := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	set(&o.Reconcile, 2*time.Second)
	set(&o.RetryHorizon, 72*time.Hour)
	set(&o.BackoffMin, 250*time.Millisecond)
	set(&o.BackoffMax, 60*time.Second)
	set(&o.ProbeMin, time.Second)
	set(&o.ProbeMax, 5*time.Second)
	set(&o.AckWait, 10*time.Second)
	if o.CircuitAfter <= 0 {
		o.CircuitAfter = 5
	}
	if o.KeepAttempts <= 0 {
		o.KeepAttempts = 200
	}
	if o.KeepDeadLetters <= 0 {
		o.KeepDeadLetters = 100_000
	}
}

// Engine runs the workers. Create it with New; it is safe for concurrent use.
type Engine struct {
	log        Log
	store      Store
	namespaces Namespaces
	open       Opener
	catalog    *event.Catalog
	factories  map[string]destination.Factory
	env        destination.Env
	logger     *slog.Logger
	opts       Options
	metrics    *Metrics
	leases     Leases
	board      Board

	notify chan struct{}

	mu      sync.Mutex
	workers map[int64]*worker
	states  map[int64]*state // outlive workers: a restarted worker keeps its counters
	paused  map[int64]bool   // consumers already removed for a paused destination

	attempts *attemptLog
}

// Config is what New needs.
type Config struct {
	Log        Log
	Store      Store
	Namespaces Namespaces
	Open       Opener
	Catalog    *event.Catalog
	Factories  map[string]destination.Factory // by category
	Env        destination.Env
	Logger     *slog.Logger
	Metrics    *Metrics // nil: not exported
	// Leases, when set, let one process at a time deliver to each ordered destination, so that
	// replicas sharing the log keep its order. nil: this process is the only one.
	Leases Leases
	// Board, when set, shares this process's view of each destination with the other
	// replicas, and Status shows the cluster's. nil: this process is the only one.
	Board   Board
	Options Options
}

// New returns an engine; Run starts it.
func New(c Config) *Engine {
	c.Options.defaults()
	if c.Env.Now == nil {
		c.Env.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics(prometheus.NewRegistry()) // counted, not exported
	}
	e := &Engine{log: c.Log, store: c.Store, namespaces: c.Namespaces, open: c.Open, catalog: c.Catalog, factories: c.Factories,
		env: c.Env, logger: c.Logger, opts: c.Options, metrics: c.Metrics, leases: c.Leases, board: c.Board, notify: make(chan struct{}, 1),
		workers: map[int64]*worker{}, states: map[int64]*state{}, paused: map[int64]bool{}}
	e.attempts = &attemptLog{store: c.Store, keep: c.Options.KeepAttempts, logger: c.Logger}
	return e
}

// Notify makes the engine reread the destinations now (after a change through this process).
func (e *Engine) Notify() {
	select {
	case e.notify <- struct{}{}:
	default:
	}
}

// Run keeps the workers in line with the destinations until ctx is done, then stops them:
// events they hold are not acknowledged and will be delivered again.
func (e *Engine) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	// The attempt log outlives the workers, so that it writes their last rows.
	attemptsCtx, stopAttempts := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAttempts()
	wg.Add(1)
	go func() { defer wg.Done(); e.attempts.run(attemptsCtx) }()
	if e.board != nil {
		wg.Add(1)
		go func() { defer wg.Done(); e.share(ctx) }()
	}
	t := time.NewTicker(e.opts.Reconcile)
	defer t.Stop()
	e.removeOrphans(ctx)
	for {
		if err := e.reconcile(ctx); err != nil && ctx.Err() == nil {
			e.logger.Warn("delivery: reading the destinations failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			e.mu.Lock()
			for id, w := range e.workers {
				w.stop()
				delete(e.workers, id)
			}
			e.mu.Unlock()
			stopAttempts()
			wg.Wait()
			return nil
		case <-t.C:
		case <-e.notify:
		}
	}
}

// durablePrefix starts the name of every destination's consumer.
const durablePrefix = "dest-"

// durable names a destination's consumer.
func durable(id int64) string { return durablePrefix + strconv.FormatInt(id, 10) }

// removeOrphans deletes the consumers of destinations deleted while no engine ran (their
// positions would otherwise stay in the log forever).
func (e *Engine) removeOrphans(ctx context.Context) {
	names, err := e.log.ConsumerNames(ctx, durablePrefix)
	if err != nil {
		e.logger.Warn("delivery: listing consumers failed", "err", err)
		return
	}
	ds, err := e.store.DestinationList(ctx, store.DestinationListParams{})
	if err != nil {
		e.logger.Warn("delivery: reading the destinations failed", "err", err)
		return
	}
	known := make(map[string]bool, len(ds))
	for _, d := range ds {
		known[durable(d.ID)] = true
	}
	for _, n := range names {
		if !known[n] {
			if err := e.log.DeleteConsumer(ctx, n); err != nil {
				e.logger.Warn("delivery: removing an orphaned consumer failed", "consumer", n, "err", err)
			}
		}
	}
}

// reconcile starts, restarts and stops workers to match the stored destinations.
func (e *Engine) reconcile(ctx context.Context) error {
	ds, err := e.store.DestinationList(ctx, store.DestinationListParams{})
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	seen := make(map[int64]bool, len(ds))
	for _, d := range ds {
		seen[d.ID] = true
		st := e.stateLocked(d.ID)
		w := e.workers[d.ID]
		delivery := destination.DeliveryOf(d.Config)
		if !d.Active {
			if w != nil {
				w.stop()
				delete(e.workers, d.ID)
			}
			st.setPaused(true)
			if !delivery.BufferWhilePaused && !e.paused[d.ID] {
				// GitLab: a paused destination does not receive the events of its pause.
				if err := e.log.DeleteConsumer(ctx, durable(d.ID)); err != nil {
					e.logger.Warn("delivery: removing a paused destination's consumer failed", "destination_id", d.ID, "err", err)
					continue
				}
				e.paused[d.ID] = true
			}
			continue
		}
		st.setPaused(false)
		delete(e.paused, d.ID)
		if w != nil && w.version == d.Version {
			continue
		}
		if w != nil {
			w.stop()
			delete(e.workers, d.ID)
		}
		nw, err := e.startWorker(ctx, d, st)
		if err != nil {
			st.setError(err)
			e.logger.Warn("delivery: cannot start a destination's worker", "destination_id", d.ID, "err", err)
			continue
		}
		e.workers[d.ID] = nw
	}
	for id, w := range e.workers {
		if !seen[id] {
			w.stop()
			delete(e.workers, id)
		}
	}
	for id := range e.states {
		if !seen[id] {
			if err := e.log.DeleteConsumer(ctx, durable(id)); err != nil {
				e.logger.Warn("delivery: removing a deleted destination's consumer failed", "destination_id", id, "err", err)
				continue
			}
			delete(e.states, id)
			delete(e.paused, id)
			e.metrics.forget(id)
		}
	}
	return nil
}

func (e *Engine) stateLocked(id int64) *state {
	st, ok := e.states[id]
	if !ok {
		st = &state{id: id, metrics: e.metrics.destination(id)}
		e.states[id] = st
	}
	return st
}

// prepared is a destination ready to send to: its sender, filter and delivery settings.
type prepared struct {
	d        store.Destination
	sender   destination.Sender
	filter   *destination.Filter
	delivery destination.Delivery
}

func (e *Engine) prepare(d store.Destination) (prepared, error) {
	factory, ok := e.factories[d.Category]
	if !ok {
		return prepared{}, fmt.Errorf("no sender for category %q yet", d.Category)
	}
	settings, err := e.open(d)
	if err != nil {
		return prepared{}, err
	}
	sender, err := factory(settings, e.env)
	if err != nil {
		return prepared{}, fmt.Errorf("%s destination: %w", d.Category, err)
	}
	spec := destination.FilterSpec{EventTypes: d.EventTypes, DenyEventTypes: d.DenyEventTypes, Categories: d.Categories, DenyCategories: d.DenyCategories}
	for _, n := range d.Namespaces {
		spec.Namespaces = append(spec.Namespaces, destination.NamespaceRef{Key: n.Key, Project: n.Project})
	}
	filter, err := destination.Compile(spec, e.catalog)
	if err != nil {
		// The catalog lost a type the filter names (an --event-types-dir change): send
		// nothing rather than everything.
		sender.Close()
		return prepared{}, fmt.Errorf("filters: %w", err)
	}
	return prepared{d: d, sender: sender, filter: filter, delivery: destination.DeliveryOf(d.Config)}, nil
}

// subjects returns the consumer's filter subjects and the widest subject it reads: a group's
// destination reads only its group's events, and a plain allow-list of event types is served
// by the log itself.
func subjects(d store.Destination) (filters []string, widest string) {
	root := "*"
	if d.Scope == store.ScopeGroup {
		root = eventlog.RootGroup(d.NamespaceKey)
	}
	widest = eventlog.SubjectPrefix + "." + root + ".>"
	if len(d.EventTypes) > 0 && len(d.Categories) == 0 && len(d.EventTypes) <= 100 {
		for _, t := range d.EventTypes {
			filters = append(filters, eventlog.SubjectPrefix+"."+root+"."+t)
		}
		return filters, widest
	}
	if d.Scope == store.ScopeGroup {
		return []string{widest}, widest
	}
	return nil, widest
}

func (e *Engine) startWorker(ctx context.Context, d store.Destination, st *state) (*worker, error) {
	p, err := e.prepare(d)
	if err != nil {
		return nil, err
	}
	filters, widest := subjects(d)
	w := &worker{e: e, prepared: p, version: d.Version, st: st, durable: durable(d.ID), widest: widest}
	spec := eventlog.ConsumerSpec{Durable: w.durable, FilterSubjects: filters, StartAt: d.UpdatedAt,
		AckWait: e.opts.AckWait, MaxAckPending: w.fetchSize() * 2}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := e.log.EnsureConsumer(cctx, spec); err != nil {
		p.sender.Close()
		return nil, err
	}
	st.setError(nil)
	w.start()
	return w, nil
}

// Package delivery streams events from the log to the destinations. Its cost follows the
// events delivered, not the destinations that exist: one reader follows the end of the log for
// every destination that keeps up and hands each event, once read, to the destinations whose
// filter takes it (an index by top-level group, plus the instance's destinations). A
// destination has no log consumer, goroutine or timer of its own while it has nothing to send.
// One that is slow, failing or starts behind falls behind on its own position and catches up
// with a few shared catch-up readers, then rejoins the head. Positions are the engine's data,
// written to the store in batches; with several replicas the destinations are shared out in
// partitions held with leases. The package also keeps retries, the circuit, dead letters and
// the status owners see.
package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/eventlog"
	"github.com/auditstream/auditstream/internal/store"
)

// Log is what the engine needs of the log (eventlog.Log).
type Log interface {
	NewReader(ctx context.Context, after int64) (*eventlog.Reader, error)
	Info(ctx context.Context) (eventlog.Info, error)
	SeqAt(ctx context.Context, t time.Time) (int64, error)
	Backlog(ctx context.Context, subjects []string, after int64) (eventlog.BacklogState, error)
	// For taking positions over from the consumers of earlier versions.
	ConsumerNames(ctx context.Context, prefix string) ([]string, error)
	ConsumerAckFloor(ctx context.Context, durable string) (int64, error)
	DeleteConsumer(ctx context.Context, durable string) error
}

// Leases make one process of a cluster deliver a partition of the destinations at a time
// (eventlog.Leases).
type Leases interface {
	Hold(ctx context.Context, name string, fn func(ctx context.Context)) bool
}

// Store is what the engine needs of the store.
type Store interface {
	DestinationList(ctx context.Context, p store.DestinationListParams) ([]store.Destination, error)
	DestinationStamp(ctx context.Context) (store.DestinationStamp, error)
	DestinationVersions(ctx context.Context) ([]store.DestinationVersion, error)
	DeadLetterAdd(ctx context.Context, p store.DeadLetterAddParams) (store.DeadLetter, error)
	DeadLetterList(ctx context.Context, p store.DeadLetterListParams) ([]store.DeadLetter, error)
	DeadLetterGet(ctx context.Context, id int64) (store.DeadLetter, error)
	DeadLetterDelete(ctx context.Context, destinationID int64, ids []int64) (int64, error)
	DeadLetterTrim(ctx context.Context, destinationID int64, keep int) (int64, error)
	DeliveryAttemptAdd(ctx context.Context, a []store.DeliveryAttempt) error
	DeliveryAttemptTrim(ctx context.Context, destinationID int64, keep int) (int64, error)
	DeliveryPositionList(ctx context.Context) ([]store.DeliveryPosition, error)
	DeliveryPositionSave(ctx context.Context, p store.DeliveryPositionSaveParams) error
}

// Namespaces resolves an event's group or project for namespace filters when the log has no
// namespace header for it (events written by earlier versions) (namespace.Resolver).
type Namespaces interface {
	Find(ctx context.Context, kind store.NamespaceKind, idOrPath string) (store.Namespace, error)
	Chain(ctx context.Context, ns store.Namespace) ([]store.Namespace, error)
}

// Opener opens a stored destination's secrets (streamconfig.Service.Settings).
type Opener func(d store.Destination) (destination.Settings, error)

// Options tune the engine. Zero values take the defaults.
type Options struct {
	// Reconcile is how often the engine looks for changed destinations (changes made through
	// this process are picked up at once through Notify). Default 2s.
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
	// KeepAttempts and KeepDeadLetters bound what is kept per destination. Defaults 200 and
	// 100,000.
	KeepAttempts, KeepDeadLetters int
	// PositionEvery is how often positions are written to the store: after a crash, what was
	// delivered in the last PositionEvery (and what was in flight) is sent again. Default 1s.
	PositionEvery time.Duration
	// CatchUpReaders is how many catch-up readers run at once. Default 4.
	CatchUpReaders int
	// CatchUpTurn is how long a catch-up reader reads before it lets waiting destinations
	// have its place. Default 10s.
	CatchUpTurn time.Duration
	// MaxQueuedBytes bounds the events held in memory for all destinations; past it,
	// destinations take no more from the readers and catch up later. Default 256 MiB.
	MaxQueuedBytes int64
	// ReadAheadBytes bounds how far the readers run ahead of the destinations that keep up:
	// past it in their queues, a reader waits for them to take their events (Engine.room).
	// Default 64 MiB.
	ReadAheadBytes int64
	// Senders is how many goroutines send to destinations at once, over all destinations
	// (places): the others wait in line, without a goroutine, and a sender that waits (a
	// backoff, an open circuit) gives its place up meanwhile. Default 256.
	Senders int
	// IdleSenders is how many senders stay open while their destinations have nothing to
	// send; past it, a destination closes its sender when its run ends and opens it again from
	// its stored record when it next sends (about 15 µs for an HTTP destination). Default
	// 16,384: about 20 MB of HTTP senders, and no re-opening at 10,000 destinations.
	IdleSenders int
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
	set(&o.PositionEvery, time.Second)
	set(&o.CatchUpTurn, 10*time.Second)
	if o.CircuitAfter <= 0 {
		o.CircuitAfter = 5
	}
	if o.KeepAttempts <= 0 {
		o.KeepAttempts = 200
	}
	if o.KeepDeadLetters <= 0 {
		o.KeepDeadLetters = 100_000
	}
	if o.CatchUpReaders <= 0 {
		o.CatchUpReaders = 4
	}
	if o.MaxQueuedBytes <= 0 {
		o.MaxQueuedBytes = 256 << 20
	}
	if o.ReadAheadBytes <= 0 {
		o.ReadAheadBytes = min(64<<20, o.MaxQueuedBytes/4*3)
	}
	if o.Senders <= 0 {
		o.Senders = 256
	}
	if o.IdleSenders <= 0 {
		o.IdleSenders = 16_384
	}
}

// Partitions is how many parts the destinations are shared out in between replicas: a
// destination belongs to partition id mod Partitions, and one replica at a time, the holder of
// the partition's lease, delivers it.
const Partitions = 32

// Engine runs the deliveries. Create it with New; it is safe for concurrent use.
type Engine struct {
	log               Log
	store             Store
	namespaces        Namespaces
	open              Opener
	catalog           *event.Catalog
	factories         map[string]destination.Factory
	checkpointKeepers map[string]bool
	env               destination.Env
	logger            *slog.Logger
	opts              Options
	metrics           *Metrics
	leases            Leases
	board             Board

	notify   chan struct{}
	waitMu   sync.Mutex
	waiters  chan struct{} // closed when a reread that began after Apply registered it ends
	head     *reader
	catchUps *catchUps
	places   *places
	senders  *senders
	queued   atomic.Int64 // bytes of events in the destinations' queues
	// readingQueued is the part of queued in the queues of destinations that are members of
	// a reader: those keeping up (Engine.room).
	readingQueued atomic.Int64
	end           struct { // the end of the log, as last read (logEnd)
		mu   sync.Mutex
		last int64
		at   time.Time
	}

	mu        sync.Mutex
	runCtx    context.Context // set by Run
	dests     map[int64]*dest
	states    map[int64]*state // the status of destinations not (yet) known to reconcile
	stamp     store.DestinationStamp
	owned     [Partitions]bool
	positions *positions
	// known is the largest destination ID of each partition (knownLocked); knownStale when
	// the largest of one was deleted.
	known      [Partitions]int64
	knownStale bool

	behind behindList // the destinations that may be behind the head (snapshotLocked)

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
	// CheckpointKeepers are the categories that receive every checkpoint event of the trail
	// (destination.Registry.CheckpointKeepers).
	CheckpointKeepers map[string]bool
	Env               destination.Env
	Logger            *slog.Logger
	Metrics           *Metrics // nil: not exported
	// Leases and Board, when set, share the destinations out between the replicas sharing the
	// log (each replica holds the leases of a fair share of the partitions), and Status shows
	// the cluster's view. nil: this process delivers every destination.
	Leases  Leases
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
	e := &Engine{log: c.Log, store: c.Store, namespaces: c.Namespaces, open: c.Open, catalog: c.Catalog, factories: c.Factories, checkpointKeepers: c.CheckpointKeepers,
		env: c.Env, logger: c.Logger, opts: c.Options, metrics: c.Metrics, notify: make(chan struct{}, 1),
		dests: map[int64]*dest{}, states: map[int64]*state{}}
	if c.Leases != nil && c.Board != nil {
		e.leases, e.board = c.Leases, c.Board
	}
	e.head = newReader(e, 0)
	e.catchUps = &catchUps{e: e, readers: map[*reader]bool{}, wake: make(chan struct{}, 1)}
	e.places = newPlaces(c.Options.Senders)
	e.senders = &senders{max: int64(c.Options.IdleSenders)}
	c.Metrics.setSource(e.destStates, func() (int64, int64) { return e.readingQueued.Load(), e.queued.Load() })
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

// Apply is Notify, and returns once the engine has reread the destinations, or ctx has ended,
// or as long as its poll takes (Options.Reconcile: an engine that is starting or busy rereads
// them then): a change made through this process takes effect in it before its API answers, so
// that, for one, an event ingested after a destination's deactivation is not sent to it.
func (e *Engine) Apply(ctx context.Context) {
	e.waitMu.Lock()
	if e.waiters == nil {
		e.waiters = make(chan struct{})
	}
	done := e.waiters
	e.waitMu.Unlock()
	e.Notify()
	t := time.NewTimer(e.opts.Reconcile)
	defer t.Stop()
	select {
	case <-done:
	case <-ctx.Done():
	case <-t.C:
	}
}

// reread is reconcile for Run's loop: it lets the callers of Apply that were waiting when it
// began go once it ends (it read the store after their change).
func (e *Engine) reread(ctx context.Context, force bool) error {
	e.waitMu.Lock()
	done := e.waiters
	e.waiters = nil
	e.waitMu.Unlock()
	if done != nil {
		defer close(done)
	}
	return e.reconcile(ctx, force)
}

// Run delivers until ctx is done, then stops: requests under way are abandoned (their events
// are sent again at the next start), and positions are written.
func (e *Engine) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	// The attempt log outlives the deliveries, so that it writes their last rows.
	attemptsCtx, stopAttempts := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAttempts()
	wg.Add(1)
	go func() { defer wg.Done(); e.attempts.run(attemptsCtx) }()

	for {
		err := e.begin(ctx)
		if err == nil {
			break
		}
		e.logger.Warn("delivery: cannot start yet; retrying", "err", err)
		if !sleep(ctx, time.Second) {
			stopAttempts()
			wg.Wait()
			return nil
		}
	}
	work, stopWork := context.WithCancel(ctx)
	defer stopWork()
	var readers sync.WaitGroup
	readers.Add(2)
	go func() { defer readers.Done(); e.runHead(work) }()
	go func() { defer readers.Done(); e.catchUps.run(work) }()
	if e.board != nil {
		wg.Add(2)
		go func() { defer wg.Done(); e.share(work) }()
		go func() { defer wg.Done(); e.sharePartitions(work) }()
	} else {
		e.mu.Lock()
		for k := range e.owned {
			e.acquireLocked(ctx, k)
		}
		e.mu.Unlock()
	}
	wg.Add(1)
	go func() { defer wg.Done(); e.savePositions(work) }()

	t := time.NewTicker(e.opts.Reconcile)
	defer t.Stop()
	for {
		if err := e.reread(ctx, false); err != nil && ctx.Err() == nil {
			e.logger.Warn("delivery: reading the destinations failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			e.shutdown(stopWork, &readers)
			stopAttempts()
			wg.Wait()
			return nil
		case <-t.C:
		case <-e.notify:
			if err := e.reread(ctx, true); err != nil && ctx.Err() == nil {
				e.logger.Warn("delivery: reading the destinations failed; retrying", "err", err)
			}
		}
	}
}

// begin reads where the log ends (the head starts there: every destination behind it catches
// up from its own position), takes positions over from earlier versions' consumers, and loads
// the destinations.
func (e *Engine) begin(ctx context.Context) error {
	info, err := e.log.Info(ctx)
	if err != nil {
		return err
	}
	e.head.mu.Lock()
	e.head.pos.Store(int64(info.LastSeq))
	// The head starts at the end of the log without reading it: a destination that starts at a
	// time must find its first event in the log, whatever was stored before now.
	e.head.lastTime = time.Now()
	e.head.mu.Unlock()
	if err := e.adoptConsumers(ctx); err != nil {
		return err
	}
	ps, err := loadPositions(ctx, e.store)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.runCtx, e.positions = ctx, ps
	e.mu.Unlock()
	return e.reconcile(ctx, true)
}

// shutdown stops the readers and every destination's requests, then writes the positions.
func (e *Engine) shutdown(stopWork context.CancelFunc, readers *sync.WaitGroup) {
	stopWork()
	readers.Wait()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, d := range e.dests {
		d.cancelRun()
	}
	for _, d := range e.dests {
		d.wg.Wait()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := e.positions.save(ctx, e.store, e.snapshotLocked()); err != nil {
		e.logger.Warn("delivery: writing positions at shutdown failed; what was delivered since the last write is sent again", "err", err)
	}
}

// destStates returns the states of the destinations the engine knows, for /metrics.
func (e *Engine) destStates() []*state {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]*state, 0, len(e.dests))
	for _, d := range e.dests {
		out = append(out, d.st)
	}
	return out
}

// cancelRun abandons the destination's requests under way, and its runner's place in line.
func (d *dest) cancelRun() {
	d.mu.Lock()
	cancel := d.cancel
	d.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if d.e.places.forget(d) {
		d.mu.Lock()
		d.running = false
		d.mu.Unlock()
		d.wg.Done()
	}
}

// reconcile brings the destinations in line with the store: when the store's stamp changed
// (or force), it compares every destination's version with what it has, reads only those that
// are new or changed, and starts, restarts and stops them. Reading them all on every change
// made creating 100,000 destinations quadratic in time and memory.
func (e *Engine) reconcile(ctx context.Context, force bool) error {
	stamp, err := e.store.DestinationStamp(ctx)
	if err != nil {
		return err
	}
	e.mu.Lock()
	same := stamp == e.stamp && e.runCtx != nil
	e.mu.Unlock()
	if same && !force {
		return nil
	}
	vs, err := e.store.DestinationVersions(ctx)
	if err != nil {
		return err
	}
	var changed []int64
	e.mu.Lock()
	for _, v := range vs {
		if x := e.dests[v.ID]; x == nil || x.version != v.Version {
			changed = append(changed, v.ID)
		}
	}
	e.mu.Unlock()
	var ds []store.Destination
	for len(changed) > 0 { // reads of at most store.MaxListIDs
		n := min(len(changed), store.MaxListIDs)
		got, err := e.store.DestinationList(ctx, store.DestinationListParams{IDs: changed[:n]})
		if err != nil {
			return err
		}
		ds, changed = append(ds, got...), changed[n:]
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stamp = stamp
	for _, d := range ds {
		x := e.dests[d.ID]
		if x == nil {
			x = &dest{e: e, id: d.ID, part: partition(d.ID), st: e.stateLocked(d.ID), version: -1}
			delete(e.states, d.ID)
			e.dests[d.ID] = x
			e.known[x.part] = max(e.known[x.part], x.id)
			x.mu.Lock()
			x.listLocked() // stopped, at position 0, until it starts
			x.mu.Unlock()
		}
		if x.version == d.Version {
			continue
		}
		e.changeLocked(x, d)
	}
	seen := make(map[int64]bool, len(vs))
	for _, v := range vs {
		seen[v.ID] = true
	}
	for id, x := range e.dests {
		if !seen[id] {
			x.stop()
			x.closeSender()
			delete(e.dests, id)
			e.knownStale = e.knownStale || id == e.known[x.part]
		}
	}
	for id := range e.states { // asked about (Status) but gone
		if !seen[id] {
			delete(e.states, id)
		}
	}
	return nil
}

// changeLocked applies a new version of a destination: it stops it, prepares the new one, and
// starts it again where it was when this process ran it (a paused one that drops the events of
// its pause starts at its activation).
func (e *Engine) changeLocked(x *dest, d store.Destination) {
	pos := x.stop()
	if !x.known {
		pos = e.positions.of(x.part, x.id)
	}
	x.closeSender()
	x.mu.Lock() // Status reads these under mu
	x.d, x.version, x.known = d, d.Version, true
	x.root = ""
	if d.Scope == store.ScopeGroup {
		x.root = eventlog.RootGroup(d.NamespaceKey)
	}
	x.subjects = subjects(d)
	x.mu.Unlock()
	x.st.setPaused(!d.Active)
	if !d.Active {
		if !destination.DeliveryOf(d.Config).BufferWhilePaused {
			pos = fromUpdatedAt // GitLab: a paused destination does not receive the events of its pause
		}
		x.setResume(pos)
		return
	}
	x.setResume(pos)
	p, err := e.prepare(d)
	if err != nil {
		x.st.setError(err)
		e.logger.Warn("delivery: a destination cannot be delivered to", "destination_id", d.ID, "err", err)
		return
	}
	x.st.setError(nil)
	// The sender opened to check the settings is let go: the destination opens its own when
	// it sends (senders), so that 100,000 destinations do not each keep one.
	p.sender.Close()
	p.sender = nil
	x.p = &p
	if e.owned[x.part] && e.runCtx != nil {
		x.start(e.runCtx, pos)
	}
}

func (d *dest) setResume(pos int64) {
	d.mu.Lock()
	d.resume = pos
	d.mu.Unlock()
}

// closeSender closes the destination's sender and forgets its settings. Called under e.mu,
// while it is stopped.
func (d *dest) closeSender() {
	d.mu.Lock()
	s := d.snd
	d.snd, d.p = nil, nil
	d.mu.Unlock()
	if s != nil {
		d.e.senders.open.Add(-1)
		s.Close()
	}
}

// partition is the partition of a destination.
func partition(id int64) int { return int(id % Partitions) }

// acquireLocked starts delivering the destinations of partition k, each from its position
// (as the partition's previous holder left it).
func (e *Engine) acquireLocked(ctx context.Context, k int) {
	if err := e.positions.reload(ctx, e.store, k); err != nil {
		e.logger.Warn("delivery: reading positions failed; using the last read", "partition", k, "err", err)
	}
	e.owned[k] = true
	for _, x := range e.dests {
		if x.part != k {
			continue
		}
		x.mu.Lock()
		x.listLocked() // snapshots let go of the destinations of partitions not owned
		x.mu.Unlock()
		if x.p == nil || !x.d.Active {
			continue
		}
		x.stop() // not running while another replica had the partition; to be sure
		x.start(e.runCtx, e.positions.of(k, x.id))
	}
}

// releaseLocked stops delivering the destinations of partition k and writes their positions,
// for the replica that takes the partition over.
func (e *Engine) releaseLocked(ctx context.Context, k int) {
	for _, x := range e.dests {
		if x.part == k {
			x.stop()
		}
	}
	if err := e.positions.save(ctx, e.store, e.snapshotLocked()); err != nil {
		e.logger.Warn("delivery: writing positions failed when handing a partition over", "partition", k, "err", err)
	}
	e.owned[k] = false
}

func (e *Engine) stateLocked(id int64) *state {
	if x, ok := e.dests[id]; ok {
		return x.st
	}
	st, ok := e.states[id]
	if !ok {
		st = &state{id: id}
		e.states[id] = st
	}
	return st
}

// prepared is a destination ready to send to: its category, filter and delivery settings,
// and (from prepare) a sender, which the engine's destinations let go (see senders).
type prepared struct {
	category    string
	checkpoints checkpointRule
	sender      destination.Sender
	filter      *destination.Filter
	delivery    destination.Delivery
}

// fetchSize is how many events the runner takes at once: enough to keep every request slot
// busy.
func (p *prepared) fetchSize() int {
	if b := p.delivery.Batch; b != nil {
		return min(b.MaxEvents*max(p.delivery.Concurrency, 1), 10_000)
	}
	return min(max(p.delivery.Concurrency, 1)*32, 1024)
}

func (e *Engine) prepare(d store.Destination) (prepared, error) {
	sender, err := e.openSender(d)
	if err != nil {
		return prepared{}, err
	}
	spec := destination.FilterSpec{EventTypes: d.EventTypes, DenyEventTypes: d.DenyEventTypes, Categories: d.Categories, DenyCategories: d.DenyCategories, Expression: d.FilterExpression}
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
	return prepared{category: d.Category, checkpoints: e.checkpointsOf(d), sender: sender, filter: filter, delivery: destination.DeliveryOf(d.Config)}, nil
}

// openSender makes d's sender: its settings opened (secrets unsealed) and given to its
// category's factory.
func (e *Engine) openSender(d store.Destination) (destination.Sender, error) {
	factory, ok := e.factories[d.Category]
	if !ok {
		return nil, fmt.Errorf("no sender for category %q yet", d.Category)
	}
	settings, err := e.open(d)
	if err != nil {
		return nil, err
	}
	sender, err := factory(settings, e.env)
	if err != nil {
		return nil, fmt.Errorf("%s destination: %w", d.Category, err)
	}
	return sender, nil
}

// subjects returns the subjects a destination's events are on: its group's, or every one.
func subjects(d store.Destination) []string {
	if d.Scope == store.ScopeGroup {
		return []string{eventlog.SubjectPrefix + "." + eventlog.RootGroup(d.NamespaceKey) + ".>"}
	}
	return nil
}

// eventHead is what namespace filters need of an event's JSON.
type eventHead struct {
	EntityType string `json:"entity_type"`
	EntityPath string `json:"entity_path"`
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// createdAt finds the event's created_at without decoding the event: JSON decoding once per
// event and destination was the engine's largest cost (docs/benchmarks.md). Events in another
// layout than ingest writes are searched for any RFC 3339 time.
func createdAt(data []byte) time.Time {
	if t, ok := event.CreatedAt(data); ok {
		return t
	}
	i := bytes.LastIndex(data, []byte(`"created_at":"`))
	if i < 0 {
		return time.Time{}
	}
	rest := data[i+len(`"created_at":"`):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339Nano, string(rest[:j]))
	return t
}

// durablePrefix starts the name of the consumer an earlier version kept per destination.
const durablePrefix = "dest-"

// adoptConsumers takes the positions of the consumers that earlier versions kept per
// destination (their ack floors), then removes the consumers.
func (e *Engine) adoptConsumers(ctx context.Context) error {
	names, err := e.log.ConsumerNames(ctx, durablePrefix)
	if err != nil || len(names) == 0 {
		return err
	}
	existing, err := e.store.DeliveryPositionList(ctx)
	if err != nil {
		return err
	}
	have := map[int64]bool{}
	for _, p := range existing {
		have[p.DestinationID] = true
	}
	var put []store.DeliveryPosition
	for _, n := range names {
		id, err := strconv.ParseInt(n[len(durablePrefix):], 10, 64)
		if err != nil || have[id] {
			continue
		}
		floor, err := e.log.ConsumerAckFloor(ctx, n)
		if err != nil {
			return err
		}
		put = append(put, store.DeliveryPosition{Partition: partition(id), DestinationID: id, Position: floor})
	}
	if err := e.store.DeliveryPositionSave(ctx, store.DeliveryPositionSaveParams{Put: put}); err != nil {
		return err
	}
	for _, n := range names {
		if err := e.log.DeleteConsumer(ctx, n); err != nil {
			return err
		}
	}
	e.logger.Info("delivery: took the positions of earlier versions' consumers over", "consumers", len(names))
	return nil
}

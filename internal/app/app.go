// Package app is the only package that wires concrete types together: it opens the store and
// the log, builds the catalog, resolver, authenticator, ingest service, archiver and HTTP API
// from a Config, and runs them until the context is cancelled, then drains them in order.
package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/auditstream/auditstream/internal/api/graphql"
	"github.com/auditstream/auditstream/internal/api/graphql/explorer"
	"github.com/auditstream/auditstream/internal/api/rest"
	"github.com/auditstream/auditstream/internal/archive"
	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/delivery"
	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/eventlog"
	"github.com/auditstream/auditstream/internal/ingest"
	"github.com/auditstream/auditstream/internal/namespace"
	"github.com/auditstream/auditstream/internal/netguard"
	"github.com/auditstream/auditstream/internal/republish"
	"github.com/auditstream/auditstream/internal/secret"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/store/postgres"
	"github.com/auditstream/auditstream/internal/store/sqlite"
	"github.com/auditstream/auditstream/internal/streamconfig"
	"github.com/auditstream/auditstream/internal/trail"
	"github.com/auditstream/auditstream/internal/web"
)

// App is a configured service, ready to Run.
type App struct {
	cfg    Config
	logger *slog.Logger
	out    io.Writer
	store  store.Store
	log    *eventlog.Log
	leases *eventlog.Leases
	// stopBoard stops following the board, before the log closes.
	stopBoard context.CancelFunc
	catalog   *event.Catalog
	resolver  *namespace.Resolver
	// treeNotices tells the other replicas that this one changed the tree of namespaces, and
	// this one that another did (eventlog.Notices on the log's NATS connection).
	treeNotices *eventlog.Notices
	auth        *auth.Authenticator
	archiver    *archive.Archiver
	purger      *archive.Purger
	engine      *delivery.Engine
	outbox      *outbox // publishes the CLI's audit events
	// trail builds the tamper-evident trail (nil when --trail=false); trailStatus holds the
	// losses it found, for /-/ready.
	trail       *trail.Writer
	trailAudit  *trail.Auditor
	trailStatus *trail.Status
	metrics     *metrics
	listener    net.Listener
	server      *http.Server
	fresh       freshConns // connections that have sent no request, closed at shutdown
	lock        *os.File   // the data dir's LOCK, held while the embedded log or SQLite use it
}

// NewLogger returns the JSON logger the service writes to w.
func NewLogger(w io.Writer, level string) *slog.Logger {
	l, _ := parseLevel(level)
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// OpenStore opens and migrates the store cfg names.
func OpenStore(ctx context.Context, cfg Config) (store.Store, error) {
	var st store.Store
	var err error
	switch {
	case strings.HasPrefix(cfg.DatabaseURL, "postgres://"), strings.HasPrefix(cfg.DatabaseURL, "postgresql://"):
		st, err = postgres.Open(ctx, cfg.DatabaseURL)
	default:
		path := strings.TrimPrefix(cfg.DatabaseURL, "sqlite://")
		if path == "" {
			if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
				return nil, fmt.Errorf("data dir: %w", err)
			}
			path = filepath.Join(cfg.DataDir, "auditstream.db")
		}
		st, err = sqlite.Open(ctx, path)
	}
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, fmt.Errorf("migrate store: %w", err)
	}
	return st, nil
}

// New opens everything cfg names. out receives the start-up banner (where the API is, and a
// first admin token); logger receives structured logs.
func New(ctx context.Context, cfg Config, logger *slog.Logger, out io.Writer) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	a := &App{cfg: cfg, logger: logger, out: out}
	var err error
	if a.catalog, err = event.Load(cfg.EventTypesDir); err != nil {
		return nil, fmt.Errorf("event types:\n%w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if cfg.NATSURL == "" || storeKind(cfg) == "sqlite" {
		// Two processes on one embedded log corrupt it and hand out the same ids.
		if a.lock, err = lockDataDir(cfg.DataDir); err != nil {
			return nil, err
		}
	}
	// Take the port first: a second start on a port in use must fail before touching the data.
	if a.listener, err = net.Listen("tcp", cfg.Listen); err != nil {
		a.close()
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	if a.store, err = OpenStore(ctx, cfg); err != nil {
		a.close()
		return nil, err
	}
	a.log, err = eventlog.Open(ctx, eventlog.Options{DataDir: cfg.DataDir, URL: cfg.NATSURL, Listen: cfg.NATSListen,
		MaxAge: cfg.LogMaxAge, MaxBytes: cfg.LogMaxBytes, DuplicateWindow: cfg.DuplicateWindow,
		Replicas: cfg.NATSReplicas, SyncAlways: cfg.LogSyncAlways, Logger: logger})
	if err != nil {
		a.store.Close()
		return nil, fmt.Errorf("open log: %w", err)
	}
	// The log must never hand out an id the store already has (a reset jetstream/ directory, or
	// another NATS, with the same database): the insert would silently keep the old event.
	// Nor an id the trail's tree has (a stream-only event the store never had).
	maxID, err := a.store.EventMaxID(ctx)
	var treeSize int64
	if err == nil {
		treeSize, err = a.store.TrailSize(ctx)
	}
	if err == nil {
		err = a.log.EnsureAfter(ctx, max(maxID, treeSize))
	}
	if err != nil {
		a.close()
		return nil, fmt.Errorf("log and store: %w", err)
	}
	if a.leases, err = a.log.Leases(ctx, 0); err != nil {
		a.close()
		return nil, err
	}
	var board delivery.Board // only replicas sharing an external NATS have views to share
	if cfg.NATSURL != "" {
		boardCtx, stopBoard := context.WithCancel(context.WithoutCancel(ctx))
		a.stopBoard = stopBoard
		b, err := a.log.Board(boardCtx, delivery.BoardTTL)
		if err != nil {
			a.close()
			return nil, err
		}
		board = b
	}
	a.resolver = namespace.NewResolver(a.store, nil)
	// Every replica caches the tree of namespaces, which decides where events are filed and
	// who reads them: a move, rename, park or new id learned by one replica reaches the others
	// in milliseconds, and one that may have missed a notice (its NATS connection came back)
	// forgets everything it cached.
	if a.treeNotices, err = a.log.Notices(treeTopic, func([]byte) { a.resolver.Forget() }); err != nil {
		a.close()
		return nil, fmt.Errorf("namespace notices: %w", err)
	}
	a.resolver.OnChange(func() {
		if err := a.treeNotices.Publish([]byte("changed")); err != nil {
			logger.Error("could not tell the other replicas that a namespace moved; they may file and authorize by the old tree until they hear of it (sent again when NATS is back)", "err", err)
		}
	})
	a.auth = auth.NewAuthenticator(a.store, nil, cfg.TokenCacheTTL)
	a.metrics = newMetrics(a.log)
	a.archiver = &archive.Archiver{Store: a.store, Log: a.log, Catalog: a.catalog, Logger: logger.With("component", "archive"),
		Metrics: a.metrics.archiveMetrics(), Workers: 1}
	if storeKind(cfg) == "postgres" {
		// SQLite has one writer: a second worker only takes CPU from ingest (46k against 50k
		// events/s batched). PostgreSQL writes while we prepare the next batch: 12s of lag at a
		// sustained 20,000 events/s with one worker, 0.5s with two (docs/benchmarks.md).
		a.archiver.Workers = 2
	}

	if err := a.bootstrapAdmin(ctx); err != nil {
		a.close()
		return nil, err
	}
	box, created, err := secret.LoadKey(cfg.SecretKey, cfg.DataDir)
	if err != nil {
		a.close()
		return nil, fmt.Errorf("secret key: %w", err)
	}
	if cfg.SecretKey == "" && storeKind(cfg) == "postgres" {
		logger.Warn("AUDITSTREAM_SECRET_KEY is not set: destination secrets are sealed with this process's key file; replicas sharing the database must share one key, so set AUDITSTREAM_SECRET_KEY on every replica",
			"path", filepath.Join(cfg.DataDir, "secret.key"))
	}
	if created {
		logger.Warn("created a secret key for destination secrets; back it up with the database: without it they cannot be read",
			"path", filepath.Join(cfg.DataDir, "secret.key"))
	}
	var prover rest.Trail
	var republishProver *trail.Prover
	var verifierKey string
	if cfg.Trail {
		key, created, err := trail.LoadKey(cfg.TrailKey, cfg.DataDir, cmp.Or(cfg.TrailOrigin, "auditstream"))
		if err != nil {
			a.close()
			return nil, fmt.Errorf("trail key: %w", err)
		}
		if created {
			logger.Warn("created the trail's signing key; back it up: checkpoints signed with another key need its public key to be checked",
				"path", filepath.Join(cfg.DataDir, trail.KeyFile), "verifier_key", key.VerifierKey)
		}
		if cfg.TrailKey == "" && storeKind(cfg) == "postgres" {
			logger.Warn("AUDITSTREAM_TRAIL_KEY is not set: replicas sharing the database sign checkpoints with their own key files; set the same AUDITSTREAM_TRAIL_KEY on every replica",
				"path", filepath.Join(cfg.DataDir, trail.KeyFile))
		}
		verifierKey = key.VerifierKey
		a.trailStatus = &trail.Status{}
		a.trail = &trail.Writer{Store: a.store, Log: a.log, Catalog: a.catalog, Signer: key.Signer, Origin: cmp.Or(cfg.TrailOrigin, "auditstream"),
			CheckpointEvents: cfg.TrailCheckpointEvents, CheckpointInterval: cfg.TrailCheckpointInterval,
			Logger: logger.With("component", "trail"), Metrics: a.metrics.trailMetrics(a.trailStatus), Status: a.trailStatus}
		p := &trail.Prover{Store: a.store, VerifierKey: key.VerifierKey}
		prover, republishProver = p, p
		a.trailAudit = &trail.Auditor{Prover: p, Keys: []string{key.VerifierKey}, Status: a.trailStatus, Logger: logger.With("component", "trail"),
			Failed: a.metrics.trailAuditFailed, Holes: a.log.Holes, Size: a.store.TrailSize, FullEvery: cfg.TrailAuditFullInterval,
			UpTo: func(ctx context.Context) (int64, error) {
				return a.log.ConsumerAckFloor(ctx, archive.ConsumerName)
			}}
	}
	ingester := &ingest.Service{Catalog: a.catalog, Learner: a.resolver, Publisher: a.log,
		Limits: ingest.Limits{MaxEventBytes: cfg.MaxEventBytes, MaxEvents: cfg.MaxEventsPerRequest}}
	if a.trail != nil {
		// Every checkpoint is also an event of the log (event.TypeTrailCheckpoint), so that it
		// travels with the events to the destinations.
		a.trail.Publish = func(ctx context.Context, in event.Input) error {
			return ingester.Record(ctx, in, event.Producer{Via: event.ViaService})
		}
	}
	a.outbox = newOutbox(a.store, ingester, a.log, logger.With("component", "outbox"))
	a.purger = &archive.Purger{Store: a.store, Recorder: ingester, Logger: logger.With("component", "retention"),
		Purged: func(n int64) { a.metrics.storePurged.Add(float64(n)) }}
	if a.trail != nil {
		// The trail marks the leaves of purged events, so that its audit tells retention from
		// a deleted row.
		a.purger.BeforeDelete = func(ctx context.Context, ids []int64) error { return trail.MarkPurged(ctx, a.store, ids) }
	}
	mutationsPerMinute := cfg.ConfigMutationsPerMinute
	if mutationsPerMinute == 0 {
		mutationsPerMinute = -1 // streamconfig: negative disables
	}
	types := Destinations()
	streams := &streamconfig.Service{Types: types, Store: a.store, Deliveries: a.store, Namespaces: a.resolver, Access: a.auth, Sealer: box, Catalog: a.catalog,
		Auditor: ingester, Logger: logger.With("component", "streamconfig"), Events: a.store,
		Retentions: a.store, RetentionBounds: streamconfig.RetentionBounds{Default: cfg.Retention, Min: cfg.RetentionMin, Max: cfg.RetentionMax},
		Limits: streamconfig.Limits{MaxDestinations: cfg.MaxDestinations, MaxFilters: cfg.MaxDestinationFilters, MutationsPerMinute: mutationsPerMinute}}
	allow, _ := netguard.ParsePrefixes(cfg.DestinationAllowCIDRs) // checked by Validate
	a.engine = delivery.New(delivery.Config{Log: a.log, Store: a.store, Namespaces: a.resolver, Open: streams.Settings, Catalog: a.catalog,
		Factories: types.Factories(), CheckpointKeepers: types.CheckpointKeepers(),
		Env:    destinationEnv(netguard.Policy{AllowPrivate: cfg.AllowPrivateDestinations, Allow: allow}, a.catalog),
		Logger: logger.With("component", "delivery"), Metrics: delivery.NewMetrics(a.metrics.reg), Leases: a.leases, Board: board,
		Options: delivery.Options{RetryHorizon: cfg.retryHorizon()}})
	streams.Changed = func(ctx context.Context, settle bool) {
		if settle {
			a.engine.Apply(ctx)
		} else {
			a.engine.Notify()
		}
	}
	streams.Engine, streams.LogMaxAge = a.engine, cfg.LogMaxAge
	if err := streams.CheckKey(ctx); err != nil {
		// Ingest and reading events do not need the key, so the service still starts.
		logger.Error("destination secrets cannot be read: streaming destinations cannot be shown or used until the right key is configured", "err", err)
	}
	var republisher rest.Republisher // no endpoint without a trail
	if republishProver != nil {
		republisher = &republish.Service{Prover: republishProver, Holes: a.log.Holes, Store: a.store, Engine: a.engine, Recorder: ingester,
			Logger: logger.With("component", "trail")}
	}
	api := rest.New(rest.Options{
		Events:           a.store,
		Users:            a.store,
		Members:          a.store,
		Namespaces:       a.resolver,
		Auth:             a.auth,
		Ingester:         ingester,
		Auditor:          ingester,
		RateLimiter:      &ingest.RateLimiter{Rate: cfg.IngestRate, Burst: cfg.IngestBurst},
		Logger:           logger.With("component", "api"),
		MaxRequestBytes:  cfg.MaxRequestBytes,
		MaxInflightBytes: cfg.MaxInflightBytes,
		ExternalURL:      cfg.ExternalURL,
		ObserveIngest:    a.metrics.observeIngest,
		Trail:            prover,
		TrailVerifierKey: verifierKey,
		Republisher:      republisher,
		StoredUpTo: func(ctx context.Context) (int64, error) {
			return a.log.ConsumerAckFloor(ctx, archive.ConsumerName)
		},

		MaxInflightBytesPerToken: cfg.MaxInflightBytesPerToken,
		MinBodyRate:              cmp.Or(cfg.IngestMinBodyRate, -1), // 0: no minimum
		BodyGrace:                cfg.IngestBodyGrace,
		BodyTimeout:              cfg.IngestBodyTimeout,
	})
	mux := http.NewServeMux()
	mux.Handle("/api/v4/", api)
	mux.Handle("/api/graphql", graphql.New(graphql.Options{Service: streams, Catalog: a.catalog, Auth: a.auth, Logger: logger.With("component", "graphql"),
		MaxComplexity: cfg.GraphQLMaxComplexity, MaxDestinations: cfg.MaxDestinations,
		MaxConcurrentPerUser: cmp.Or(cfg.GraphQLConcurrentPerUser, -1), MaxConcurrent: cfg.GraphQLConcurrentReads, RequestTimeout: cfg.GraphQLTimeout}))
	graphiql := explorer.Handler("/-/graphql-explorer", "/api/graphql")
	mux.Handle("/-/graphql-explorer", graphiql)
	mux.Handle("/-/graphql-explorer/", graphiql)
	mux.Handle("/", web.New(web.Options{Streams: streams, Events: a.store, Sessions: a.store, Members: a.store, Users: a.store, Namespaces: a.resolver,
		Auth: a.auth, Catalog: a.catalog, Logger: logger.With("component", "web"), SessionTTL: cfg.WebSessionTTL,
		SecureCookies: strings.HasPrefix(cfg.ExternalURL, "https://"), TrailProblems: a.trailStatus.Problems}))
	mux.Handle("GET /metrics", a.metrics.handler())
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "OK\n") })
	mux.HandleFunc("GET /-/ready", a.ready)
	a.server = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 2 * time.Minute, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn), ConnState: a.fresh.track}
	return a, nil
}

// Addr is the address the HTTP server listens on (useful with port 0).
func (a *App) Addr() string { return a.listener.Addr().String() }

func (a *App) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	var problems []string
	if !a.log.Ready() {
		problems = append(problems, "log: not connected")
	}
	if err := a.store.Ping(ctx); err != nil {
		a.logger.Warn("readiness: store does not answer", "err", err) // details stay in the log
		problems = append(problems, "store: not answering")
	}
	if len(problems) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, strings.Join(problems, "\n")+"\n")
		return
	}
	// What the trail found lost stays ready (the service works; taking it out of a load
	// balancer would lose more), but is said here until the process restarts.
	detail := ""
	for _, p := range a.trailStatus.Problems() {
		detail += "trail: " + p + "\n"
	}
	_, _ = io.WriteString(w, "OK\n"+detail)
}

// errShutdown is the cause given to components when the service stops on request.
var errShutdown = errors.New("shutting down")

// Run serves until ctx is done, then stops taking requests, lets in-flight requests finish,
// stops the archiver after its current batch, and closes the log and the store.
func (a *App) Run(ctx context.Context) error {
	fmt.Fprintf(a.out, "auditstream is serving the UI at http://%[1]s/ and the API at http://%[1]s/api/v4 (metrics at /metrics)\n", a.Addr())
	a.logger.Info("started", "listen", a.Addr(), "data_dir", a.cfg.DataDir, "store", storeKind(a.cfg), "log", logKind(a.cfg), "event_types", a.catalog.Len())

	workCtx, stopWork := context.WithCancelCause(context.WithoutCancel(ctx))
	g, gctx := errgroup.WithContext(workCtx)
	g.Go(func() error {
		err := a.archiver.Run(gctx)
		if errors.Is(err, errShutdown) || errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	})
	g.Go(func() error {
		// One replica at a time purges. It runs without --retention too: owners may give their
		// group a retention of its own.
		a.leases.Run(gctx, "retention-purge", a.purgeLoop)
		return nil
	})
	g.Go(func() error { return a.engine.Run(gctx) })
	g.Go(func() error {
		a.leases.Run(gctx, "audit-outbox", a.outbox.run) // one replica at a time drains
		return nil
	})
	if a.trail != nil {
		g.Go(func() error {
			a.leases.Run(gctx, "audit-trail", a.runTrail) // one writer of the tree
			return nil
		})
		if a.cfg.TrailAuditInterval > 0 {
			g.Go(func() error {
				a.leases.Run(gctx, "audit-trail-check", a.auditTrail) // one auditor
				return nil
			})
		}
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- a.server.Serve(a.listener) }()
	if a.cfg.DebugListen != "" {
		dbg := &http.Server{Addr: a.cfg.DebugListen, Handler: debugMux(), ReadHeaderTimeout: 10 * time.Second}
		dbgDone := make(chan struct{})
		go func() {
			defer close(dbgDone)
			if err := dbg.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.logger.Error("debug server", "err", err)
			}
		}()
		defer func() { dbg.Close(); <-dbgDone }()
	}

	var err error
	select {
	case <-ctx.Done():
		a.logger.Info("shutting down", "cause", context.Cause(ctx))
	case err = <-serveErr:
		err = fmt.Errorf("http server: %w", err)
	case <-gctx.Done():
		err = context.Cause(gctx)
	}
	sctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	t0 := time.Now()
	drained := make(chan struct{})
	go a.fresh.closeWhile(drained, 500*time.Millisecond)
	serr := a.server.Shutdown(sctx)
	close(drained)
	if serr != nil {
		a.logger.Warn("http shutdown did not finish in time; closing the remaining connections", "err", serr)
		_ = a.server.Close() // before the log and store close under the handlers still running
	}
	t1 := time.Now()
	stopWork(errShutdown)
	if gerr := g.Wait(); gerr != nil && !errors.Is(gerr, errShutdown) && err == nil {
		err = gerr
	}
	t2 := time.Now()
	a.close()
	// How long each step of the shutdown took, for a shutdown slower than an orchestrator waits.
	a.logger.Info("stopped", "http", t1.Sub(t0).Round(time.Millisecond), "work", t2.Sub(t1).Round(time.Millisecond),
		"close", time.Since(t2).Round(time.Millisecond))
	return err
}

// debugMux serves Go's profiles; it is only mounted on the separate --debug-listen address.
func debugMux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("/debug/pprof/", pprof.Index)
	m.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	m.HandleFunc("/debug/pprof/profile", pprof.Profile)
	m.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	m.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return m
}

// treeTopic is the topic of the notices of changes to the tree of namespaces.
const treeTopic = "namespaces"

func (a *App) close() {
	if a.stopBoard != nil {
		a.stopBoard()
	}
	if a.treeNotices != nil {
		a.treeNotices.Close()
	}
	if a.log != nil {
		a.log.Close()
	}
	if a.store != nil {
		a.store.Close()
	}
	if a.listener != nil {
		a.listener.Close() // after Serve returned this is a no-op error, ignored
	}
	if a.lock != nil {
		a.lock.Close() // releases the flock
	}
}

// lockDataDir takes an exclusive, non-blocking lock on dir/LOCK, held until the file is closed
// (or the process dies: the kernel releases it, so a crash leaves no stale lock).
func lockDataDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data dir lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("data dir %s is in use by another auditstream process (%v); give each process its own --data-dir", dir, err)
	}
	return f, nil
}

// purgeLoop deletes stored events past their retention (a group's own, else --retention) at
// start and every --retention-purge-interval, while ctx lasts.
func (a *App) purgeLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.RetentionPurgeInterval)
	defer t.Stop()
	for {
		res, err := a.purger.Purge(ctx, a.cfg.Retention)
		if err != nil && ctx.Err() == nil {
			a.logger.Error("retention purge failed", "err", err, "deleted", res.Deleted)
		} else if res.Deleted > 0 {
			a.logger.Info("retention purge", "deleted", res.Deleted, "groups", len(res.ByGroup))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func storeKind(cfg Config) string {
	if strings.HasPrefix(cfg.DatabaseURL, "postgres") {
		return "postgres"
	}
	return "sqlite"
}

func logKind(cfg Config) string {
	if cfg.NATSURL != "" {
		return "external"
	}
	return "embedded"
}

// runTrail runs the trail's writer while ctx lasts (this process holds the lease), starting it
// again a second after it failed (the log or the store went away, or another writer moved the
// tree while the lease changed hands).
func (a *App) runTrail(ctx context.Context) {
	for ctx.Err() == nil {
		err := a.trail.Run(ctx)
		if err == nil || ctx.Err() != nil {
			return
		}
		a.logger.Error("trail writer failed; starting again", "component", "trail", "err", err)
		t := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// auditTrail verifies the trail from the store now and every --trail-audit-interval while
// ctx lasts, all of it every --trail-audit-full-interval; what it finds goes to the log,
// /-/ready and the metrics (trail.Auditor).
func (a *App) auditTrail(ctx context.Context) {
	t := time.NewTicker(a.cfg.TrailAuditInterval)
	defer t.Stop()
	for {
		if err := a.trailAudit.Check(ctx); err != nil && ctx.Err() == nil {
			if _, ok := errors.AsType[*trail.Failure](err); !ok {
				a.logger.Warn("trail audit could not run", "component", "trail", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

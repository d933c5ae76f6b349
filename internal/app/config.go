package app

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"
	"unicode"

	"github.com/auditstream/auditstream/internal/netguard"
	"github.com/auditstream/auditstream/internal/web"
)

// Config is every setting of the service. Each field maps to one flag and one environment
// variable (see cmd/auditstream); its comment gives the default.
type Config struct {
	// DataDir holds the SQLite database and the embedded log. Default "./data".
	DataDir string
	// Listen is the HTTP address. Default "127.0.0.1:8080".
	Listen string
	// DatabaseURL selects the store: empty for SQLite in DataDir, "postgres://…" for PostgreSQL,
	// "sqlite:///path/file.db" for SQLite elsewhere.
	DatabaseURL string
	// NATSURL selects the log: empty for the embedded server, "nats://…" for an external one.
	NATSURL string
	// NATSListen makes the embedded NATS server listen for clients (host:port). Default: none.
	NATSListen string
	// NATSReplicas is the stream's replica count. Default 0: 3 on a NATS cluster, else 1.
	NATSReplicas int
	// LogMaxAge is how long the log keeps events (a stopped destination's buffer). Default 7 days.
	LogMaxAge time.Duration
	// LogMaxBytes caps the log's size; -1 or 0 means no cap. Default no cap.
	LogMaxBytes int64
	// LogSyncAlways fsyncs every log write before acknowledging it. Default false.
	LogSyncAlways bool
	// DuplicateWindow is how long idempotency keys are remembered. Default 2 minutes.
	DuplicateWindow time.Duration
	// Retention deletes stored events older than this; 0 keeps them. Default 0. It applies to
	// the events of top-level groups without a retention of their own, and to instance and
	// user events.
	Retention time.Duration
	// RetentionMin is the shortest retention an owner may give a top-level group's stored
	// events (rounded up to whole days, at least one). Default 1 day.
	RetentionMin time.Duration
	// RetentionMax is the longest; 0 means no ceiling. Default 0.
	RetentionMax time.Duration
	// RetentionPurgeInterval is how often the retention purge runs (in one replica at a
	// time). Default 1 hour.
	RetentionPurgeInterval time.Duration
	// EventTypesDir adds or overrides event types with YAML files. Default none.
	EventTypesDir string
	// MaxRequestBytes bounds an ingest request body. Default 32 MiB.
	MaxRequestBytes int64
	// MaxInflightBytes bounds the bytes of ingest bodies held at once, each charged what has
	// arrived of it; past it ingest answers 503 busy. Default 256 MiB.
	MaxInflightBytes int64
	// MaxInflightBytesPerToken bounds the same for one token's requests, so that one producer
	// cannot starve the others; at least MaxRequestBytes, at most MaxInflightBytes. Default
	// (0): a quarter of MaxInflightBytes (64 MiB), at least MaxRequestBytes.
	MaxInflightBytesPerToken int64
	// IngestMinBodyRate is the slowest, in bytes per second on average, an ingest body may
	// arrive once IngestBodyGrace has passed; slower bodies are cut (408 body_too_slow). 0: no
	// minimum. Default 16 KiB/s.
	IngestMinBodyRate int64
	// IngestBodyGrace is how long a body may take before IngestMinBodyRate applies. Default 5s.
	IngestBodyGrace time.Duration
	// IngestBodyTimeout is the longest an ingest body may take to arrive. Default 30s.
	IngestBodyTimeout time.Duration
	// GraphQLMaxComplexity bounds a GraphQL operation's complexity, pages multiplying what is
	// selected of each item. Default 10,000.
	GraphQLMaxComplexity int
	// GraphQLConcurrentPerUser bounds the GraphQL reads one user runs at once; more wait for
	// their turn. 0: no bound. Default 4.
	GraphQLConcurrentPerUser int
	// GraphQLConcurrentReads bounds the GraphQL reads of all users running at once, so that
	// reads leave CPU to ingest. 0: half the CPUs Go uses (GOMAXPROCS), at least 1; negative:
	// no bound.
	GraphQLConcurrentReads int
	// GraphQLTimeout bounds the time one GraphQL request runs. Default 10s.
	GraphQLTimeout time.Duration
	// MaxEventBytes bounds one encoded event. Default 256 KiB.
	MaxEventBytes int
	// MaxEventsPerRequest bounds the events of one request. Default 10,000.
	MaxEventsPerRequest int
	// IngestRate is the events per second each token may publish; 0 disables. Default 100,000.
	IngestRate float64
	// IngestBurst is the burst of IngestRate. Default 200,000.
	IngestBurst int
	// SecretKey is AUDITSTREAM_SECRET_KEY: the key (base64, 32 bytes; several separated by
	// commas for rotation, newest first) that seals destination secrets at rest. Empty: the key
	// file secret.key in DataDir, created on first start with mode 0600.
	SecretKey string
	// Trail keeps the tamper-evident trail: the tree of the log and its signed checkpoints.
	// Off, the proofs API answers 404 trail_disabled. Default true.
	Trail bool
	// TrailKey is AUDITSTREAM_TRAIL_KEY: the Ed25519 key checkpoints are signed with, in
	// note's private key form. Empty: the key file trail.key in DataDir, created on first
	// start with mode 0600.
	TrailKey string
	// TrailOrigin names the log in its checkpoints (their first line) and a key created for
	// it. Default "auditstream".
	TrailOrigin string
	// TrailCheckpointEvents signs a checkpoint once this many events were added since the
	// last. Default 100,000.
	TrailCheckpointEvents int64
	// TrailCheckpointInterval signs a checkpoint this long after the last one, when events
	// were added since. Default 10s.
	TrailCheckpointInterval time.Duration
	// TrailAuditInterval is how often the service verifies its own trail from the store (as
	// `auditstream verify` does); 0 turns the audit off. Default 10m.
	TrailAuditInterval time.Duration
	// TrailAuditFullInterval is how often an audit reads the whole trail again, to find a
	// stored event or checkpoint changed after it was checked; the audits in between check
	// what was added since the last. 0: every audit is full. Default 24h.
	TrailAuditFullInterval time.Duration
	// MaxDestinations caps the streaming destinations of one group and of the instance.
	// Default 50.
	MaxDestinations int
	// MaxDestinationFilters caps the event-type and category filters of one destination.
	// Default 500.
	MaxDestinationFilters int
	// ConfigMutationsPerMinute is how many destination changes one user may make per minute;
	// 0 disables the limit. Default 60.
	ConfigMutationsPerMinute int
	// AllowPrivateDestinations lets destinations reach loopback, private, link-local and other
	// internal addresses (design 6). Default false: only public addresses.
	AllowPrivateDestinations bool
	// DestinationAllowCIDRs are addresses destinations may reach even when internal, as a
	// comma-separated list of CIDRs or IPs (for a SIEM inside your network).
	DestinationAllowCIDRs string
	// DeliveryRetryHorizon is how long an event is retried before it goes to the dead letters.
	// Default (0): half the log's max age, at most 72h.
	DeliveryRetryHorizon time.Duration
	// AdminToken, when set, is made a valid admin token at start (AUDITSTREAM_ADMIN_TOKEN).
	AdminToken string
	// TokenCacheTTL is how long a checked token is trusted without asking the store. Default 5s.
	TokenCacheTTL time.Duration
	// ExternalURL is the base URL used in Link headers. Default: from each request's Host. An
	// https URL also marks the UI's cookies Secure (TLS ends at a proxy in front).
	ExternalURL string
	// WebSessionTTL is how long a sign-in to the UI lasts. Default 12h.
	WebSessionTTL time.Duration
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string
	// DebugListen, when set, serves Go's pprof profiles at /debug/pprof/ on this address.
	// Default: off.
	DebugListen string
	// ShutdownTimeout bounds the graceful drain on SIGINT/SIGTERM. Default 30s.
	ShutdownTimeout time.Duration
}

// Defaults returns the configuration with every default filled in.
func Defaults() Config {
	return Config{
		DataDir:                  "./data",
		Listen:                   "127.0.0.1:8080",
		LogMaxAge:                7 * 24 * time.Hour,
		DuplicateWindow:          2 * time.Minute,
		RetentionMin:             24 * time.Hour,
		RetentionPurgeInterval:   time.Hour,
		MaxRequestBytes:          32 << 20,
		MaxInflightBytes:         256 << 20,
		IngestMinBodyRate:        16 << 10,
		IngestBodyGrace:          5 * time.Second,
		IngestBodyTimeout:        30 * time.Second,
		GraphQLMaxComplexity:     10_000,
		GraphQLConcurrentPerUser: 4,
		GraphQLTimeout:           10 * time.Second,
		MaxEventBytes:            256 << 10,
		MaxEventsPerRequest:      10_000,
		IngestRate:               100_000,
		IngestBurst:              200_000,
		Trail:                    true,
		TrailOrigin:              "auditstream",
		TrailCheckpointEvents:    100_000,
		TrailCheckpointInterval:  10 * time.Second,
		TrailAuditInterval:       10 * time.Minute,
		TrailAuditFullInterval:   24 * time.Hour,
		MaxDestinations:          50,
		MaxDestinationFilters:    500,
		ConfigMutationsPerMinute: 60,
		TokenCacheTTL:            5 * time.Second,
		WebSessionTTL:            web.DefaultSessionTTL,
		LogLevel:                 "info",
		ShutdownTimeout:          30 * time.Second,
	}
}

// retryHorizon is DeliveryRetryHorizon with its default.
func (c *Config) retryHorizon() time.Duration {
	if c.DeliveryRetryHorizon > 0 {
		return c.DeliveryRetryHorizon
	}
	return min(c.LogMaxAge/2, 72*time.Hour)
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.DataDir == "" {
		bad("data dir must not be empty")
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen %q: %v", c.Listen, err)
	}
	if c.NATSListen != "" {
		if host, _, err := net.SplitHostPort(c.NATSListen); err != nil {
			bad("nats listen %q: %v", c.NATSListen, err)
		} else if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			bad("nats listen %q: the embedded NATS server has no authentication, so it listens on loopback only", c.NATSListen)
		}
	}
	if c.DebugListen != "" {
		if _, _, err := net.SplitHostPort(c.DebugListen); err != nil {
			bad("debug listen %q: %v", c.DebugListen, err)
		}
	}
	if c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") && !strings.HasPrefix(c.DatabaseURL, "sqlite://") {
		bad("database url must start with postgres://, postgresql:// or sqlite://")
	}
	if c.NATSURL != "" && !strings.HasPrefix(c.NATSURL, "nats://") && !strings.HasPrefix(c.NATSURL, "tls://") {
		bad("nats url must start with nats:// or tls://")
	}
	if c.NATSReplicas < 0 || c.NATSReplicas > 5 {
		bad("nats replicas must be 1 to 5 (or 0: 3 on a NATS cluster, 1 on a single server)")
	}
	if c.LogMaxAge < time.Minute {
		bad("log max age must be at least 1m")
	}
	if c.DuplicateWindow <= 0 || c.DuplicateWindow > c.LogMaxAge {
		bad("duplicate window must be positive and at most the log max age")
	}
	if c.Retention < 0 {
		bad("retention must not be negative")
	}
	if c.RetentionMin < 0 || c.RetentionMax < 0 {
		bad("retention min and max must not be negative")
	}
	if c.RetentionMax > 0 && (c.RetentionMax < 24*time.Hour || c.RetentionMax < c.RetentionMin) {
		bad("retention max must be at least a day and at least retention min (or 0: no ceiling)")
	}
	if c.RetentionPurgeInterval < time.Second {
		bad("retention purge interval must be at least 1s")
	}
	if c.MaxRequestBytes < 1024 || c.MaxEventBytes < 1024 || c.MaxEventsPerRequest < 1 {
		bad("request and event limits are too small")
	}
	if c.MaxInflightBytes < c.MaxRequestBytes {
		bad("max inflight bytes (%d) must be at least max request bytes (%d)", c.MaxInflightBytes, c.MaxRequestBytes)
	}
	if c.MaxInflightBytesPerToken != 0 && (c.MaxInflightBytesPerToken < c.MaxRequestBytes || c.MaxInflightBytesPerToken > c.MaxInflightBytes) {
		bad("max inflight bytes per token (%d) must be at least max request bytes (%d) and at most max inflight bytes (%d)",
			c.MaxInflightBytesPerToken, c.MaxRequestBytes, c.MaxInflightBytes)
	}
	if c.GraphQLMaxComplexity < 1 || c.GraphQLConcurrentPerUser < 0 || c.GraphQLTimeout <= 0 {
		bad("graphql max complexity must be at least 1, concurrent requests per user at least 0, the timeout positive")
	}
	if c.IngestMinBodyRate < 0 || c.IngestBodyGrace < 0 || c.IngestBodyTimeout <= 0 {
		bad("ingest min body rate and body grace must not be negative, the body timeout must be positive")
	}
	if c.IngestRate < 0 || (c.IngestRate > 0 && c.IngestBurst < c.MaxEventsPerRequest) {
		bad("ingest burst (%d) must be at least the events per request (%d)", c.IngestBurst, c.MaxEventsPerRequest)
	}
	if c.TrailCheckpointEvents < 0 || c.TrailCheckpointInterval < 0 || c.TrailAuditInterval < 0 || c.TrailAuditFullInterval < 0 {
		bad("trail checkpoint events, checkpoint interval, audit interval and full audit interval must not be negative")
	}
	if c.TrailOrigin != "" && (strings.ContainsAny(c.TrailOrigin, "+\n") || strings.ContainsFunc(c.TrailOrigin, unicode.IsSpace)) {
		bad("trail origin %q must not hold spaces or '+' (it names the signing key too)", c.TrailOrigin)
	}
	if c.MaxDestinations < 1 || c.MaxDestinationFilters < 1 || c.ConfigMutationsPerMinute < 0 {
		bad("max destinations and max destination filters must be at least 1, config mutations per minute at least 0")
	}
	if _, err := netguard.ParsePrefixes(c.DestinationAllowCIDRs); err != nil {
		bad("destination allow cidrs: %v", err)
	}
	if c.DeliveryRetryHorizon < 0 || c.DeliveryRetryHorizon >= c.LogMaxAge {
		bad("delivery retry horizon (%s) must be shorter than the log max age (%s): events leave the log at that age", c.DeliveryRetryHorizon, c.LogMaxAge)
	}
	if c.AdminToken != "" && len(c.AdminToken) < 20 {
		bad("the admin token must be at least 20 characters")
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		bad("%v", err)
	}
	return errors.Join(errs...)
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("log level %q must be debug, info, warn or error", s)
	}
	return l, nil
}

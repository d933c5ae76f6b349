// Package eventlog is the durable log every audit event is appended to: one JetStream stream,
// served by a NATS server embedded in the process (file storage in the data directory, no network
// listener) or by an external NATS deployment. Ingest appends with Publish; the store reads it
// through its durable consumer (Consume), the delivery engine and the trail through Readers,
// which share one read of the log's end per process whatever the number of destinations.
//
// Subjects are "audit.<root>.<event_type>" where root is "g<key>" for events of a group or
// project (key: the top-level group's stable internal key, never a path), "instance" for
// instance events, and "user" for user events. An event's public id is its stream sequence.
package eventlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StreamName is the one stream that holds every event.
const StreamName = "AUDIT_EVENTS"

// SubjectPrefix starts every event subject.
const SubjectPrefix = "audit"

// ErrUnavailable means the log cannot accept or serve messages right now.
var ErrUnavailable = errors.New("eventlog: unavailable")

// Options configures the log. The zero value (plus DataDir) is the embedded default.
type Options struct {
	// DataDir holds the embedded server's JetStream files (DataDir/jetstream). Unused with URL.
	DataDir string
	// URL of an external NATS server or cluster; empty runs the embedded server.
	URL string
	// Listen, when not empty, makes the embedded server also listen for NATS clients on this
	// host:port (for tools such as the nats CLI). Default: no listener.
	Listen string
	// MaxAge is how long events stay in the log: the buffer window of a stopped destination.
	// Default 7 days.
	MaxAge time.Duration
	// MaxBytes caps the stream's size; the oldest events go first. Default -1 (no cap).
	MaxBytes int64
	// DuplicateWindow is how long an idempotency key is remembered. Default 2 minutes.
	DuplicateWindow time.Duration
	// Replicas of the stream (and of the consumers and the lease bucket). Default (0): 3 on an
	// external server that is part of a cluster, 1 otherwise.
	Replicas int
	// SyncAlways makes the embedded server fsync every write before acknowledging it. Default
	// false: writes reach the OS before the ack (they survive a process crash) and are fsynced
	// every SyncInterval (they may be lost in a power failure within that interval).
	SyncAlways bool
	// SyncInterval is the embedded server's fsync interval when not SyncAlways. Default 2 minutes
	// (JetStream's own default).
	SyncInterval time.Duration
	// Logger receives the log's own messages. Required.
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.MaxAge == 0 {
		o.MaxAge = 7 * 24 * time.Hour
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = -1
	}
	if o.DuplicateWindow == 0 {
		o.DuplicateWindow = 2 * time.Minute
	}
}

// Log is an open connection to the stream. Safe for concurrent use.
type Log struct {
	opts   Options
	ns     *server.Server // nil with an external server
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	// replicas is the stream's replica count (Options.Replicas, resolved).
	replicas int
	closed   atomic.Bool
	tail     tail // the one reader of the log's end that Readers at it share
}

// Open starts the embedded server (or connects to the external one) and creates or updates the
// stream to match opts.
func Open(ctx context.Context, opts Options) (*Log, error) {
	opts.defaults()
	l := &Log{opts: opts}
	var err error
	if opts.URL == "" {
		if err := l.startEmbedded(); err != nil {
			return nil, err
		}
		l.nc, err = nats.Connect(l.ns.ClientURL(), nats.InProcessServer(l.ns), nats.Name("auditstream"),
			nats.MaxReconnects(-1))
	} else {
		l.nc, err = nats.Connect(opts.URL, nats.Name("auditstream"), nats.MaxReconnects(-1),
			nats.RetryOnFailedConnect(true), nats.ReconnectWait(500*time.Millisecond))
	}
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("connect to NATS: %w", err)
	}
	l.js, err = jetstream.New(l.nc, jetstream.WithPublishAsyncMaxPending(8192))
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if l.replicas, err = l.replicaCount(cctx); err != nil {
		l.Close()
		return nil, err
	}
	cfg := jetstream.StreamConfig{
		Name:        StreamName,
		Description: "auditstream audit events",
		Subjects:    []string{SubjectPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      opts.MaxAge,
		MaxBytes:    opts.MaxBytes,
		Duplicates:  opts.DuplicateWindow,
		Replicas:    l.replicas,
	}
	err = l.retry(cctx, "creating the stream", func(ctx context.Context) error {
		var err error
		l.stream, err = l.js.CreateOrUpdateStream(ctx, cfg)
		return err
	})
	if err != nil {
		l.Close()
		if tooFewServers(err) {
			return nil, fmt.Errorf("create stream %s with %d replicas: NATS has fewer JetStream servers than that; set --nats-replicas: %w", StreamName, l.replicas, err)
		}
		return nil, fmt.Errorf("create stream %s: %w", StreamName, err)
	}
	return l, nil
}

// retry runs a JetStream administration request until it succeeds, ctx ends, or the cluster says
// it lacks the servers for it. On a cluster that is still forming, or with replicas starting at
// once, a request may go unanswered for a while; each attempt is bounded.
func (l *Log) retry(ctx context.Context, what string, f func(ctx context.Context) error) error {
	for {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := f(actx)
		cancel()
		if err == nil || ctx.Err() != nil || tooFewServers(err) {
			return err
		}
		l.opts.Logger.Warn("eventlog: "+what+" failed; retrying", "err", err)
		if !waitCtx(ctx, time.Second) {
			return err
		}
	}
}

// tooFewServers reports whether JetStream refused a request for more replicas than it has
// servers: "insufficient resources" on a cluster, "replicas > 1 not supported" on one server.
func tooFewServers(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == 10023 || apiErr.ErrorCode == 10074)
}

// DefaultClusterReplicas is the stream's replica count on a NATS cluster when none is given:
// it survives the loss of one server of three.
const DefaultClusterReplicas = 3

// replicaCount resolves Options.Replicas: given, or 3 on a cluster, 1 on a single server.
func (l *Log) replicaCount(ctx context.Context) (int, error) {
	if l.opts.Replicas > 0 {
		return l.opts.Replicas, nil
	}
	if l.ns != nil {
		return 1, nil
	}
	// The cluster's name is known once connected: the account info waits for the connection.
	if _, err := l.js.AccountInfo(ctx); err != nil {
		return 0, fmt.Errorf("%w: connect to NATS at %s: %w", ErrUnavailable, l.opts.URL, err)
	}
	if l.nc.ConnectedClusterName() != "" {
		return DefaultClusterReplicas, nil
	}
	return 1, nil
}

// Replicas is the stream's replica count.
func (l *Log) Replicas() int { return l.replicas }

func (l *Log) startEmbedded() error {
	sopts := &server.Options{
		ServerName:   "auditstream",
		JetStream:    true,
		StoreDir:     filepath.Join(l.opts.DataDir, "jetstream"),
		NoSigs:       true,
		SyncAlways:   l.opts.SyncAlways,
		SyncInterval: l.opts.SyncInterval,
		MaxPayload:   8 << 20,
	}
	if l.opts.Listen == "" {
		sopts.DontListen = true
	} else {
		host, port, err := splitHostPort(l.opts.Listen)
		if err != nil {
			return fmt.Errorf("nats listen address %q: %w", l.opts.Listen, err)
		}
		sopts.Host, sopts.Port = host, port
	}
	ns, err := server.NewServer(sopts)
	if err != nil {
		return fmt.Errorf("embedded NATS server: %w", err)
	}
	ns.SetLoggerV2(slogAdapter{l.opts.Logger.With("component", "nats")}, false, false, false)
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return fmt.Errorf("embedded NATS server did not start within 30s")
	}
	l.ns = ns
	return nil
}

// Close drains the connection and stops the embedded server. Idempotent.
func (l *Log) Close() {
	if l.closed.Swap(true) {
		return
	}
	l.tail.stop()
	if l.nc != nil {
		_ = l.nc.Drain()
		l.nc.Close()
	}
	if l.ns != nil {
		l.ns.Shutdown()
		l.ns.WaitForShutdown()
	}
}

// Ready reports whether the log can take writes.
func (l *Log) Ready() bool {
	return !l.closed.Load() && l.nc != nil && l.nc.IsConnected()
}

// Message is one event to append.
type Message struct {
	Subject string
	Data    []byte
	// MsgID is the idempotency key (Nats-Msg-Id); empty means none.
	MsgID string
	// Namespace is the NamespaceHeader value (FormatNamespace); empty means none.
	Namespace string
}

// Publish appends msgs and returns their sequence numbers (the event ids) in order, once the
// log acknowledged every one. A message whose MsgID was seen within the duplicate window is not
// appended again; its original sequence is returned. On error some messages may have been
// appended; retrying with the same MsgIDs is safe.
func (l *Log) Publish(ctx context.Context, msgs []Message) ([]int64, error) {
	if !l.Ready() {
		// Fail fast rather than buffer into a reconnect and time out: the producer retries.
		return nil, fmt.Errorf("%w: not connected to NATS", ErrUnavailable)
	}
	seqs := make([]int64, len(msgs))
	if len(msgs) == 1 {
		ack, err := l.js.PublishMsg(ctx, toNats(&msgs[0]))
		if err != nil {
			return nil, l.pubErr(err)
		}
		seqs[0] = int64(ack.Sequence)
		return seqs, nil
	}
	futures := make([]jetstream.PubAckFuture, len(msgs))
	// When too many acks are outstanding, wait for room (back-pressure) instead of failing after
	// the client's default 200ms with part of the request already in the log.
	stall := jetstream.WithStallWait(stallWait(ctx))
	for i := range msgs {
		f, err := l.js.PublishMsgAsync(toNats(&msgs[i]), stall)
		if err != nil {
			return nil, l.pubErr(err)
		}
		futures[i] = f
	}
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			seqs[i] = int64(ack.Sequence)
		case err := <-f.Err():
			return nil, l.pubErr(err)
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, context.Cause(ctx))
		}
	}
	return seqs, nil
}

// stallWait is how long an async publish may wait for room: what is left of ctx's deadline.
func stallWait(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Millisecond)
	}
	return 10 * time.Second
}

func toNats(m *Message) *nats.Msg {
	nm := &nats.Msg{Subject: m.Subject, Data: m.Data}
	if m.MsgID != "" || m.Namespace != "" {
		nm.Header = nats.Header{}
	}
	if m.MsgID != "" {
		nm.Header[jetstream.MsgIDHeader] = []string{m.MsgID}
	}
	if m.Namespace != "" {
		nm.Header[NamespaceHeader] = []string{m.Namespace}
	}
	return nm
}

func (l *Log) pubErr(err error) error {
	return fmt.Errorf("%w: publish: %w", ErrUnavailable, err)
}

// Subject returns the subject of an event of eventType whose root is given by RootGroup,
// RootInstance or RootUser.
func Subject(root, eventType string) string {
	return SubjectPrefix + "." + root + "." + eventType
}

// Subject roots.
const (
	RootInstance = "instance"
	RootUser     = "user"
)

// RootGroup is the subject root of every event of a top-level group and its descendants.
func RootGroup(topKey int64) string { return "g" + strconv.FormatInt(topKey, 10) }

// ErrBehind means the stream ends before ids the store already holds: it was reset or replaced
// while the database was kept. Publishing would reuse those ids.
var ErrBehind = errors.New("eventlog: the log is behind the store")

// EnsureAfter makes sure the next event id is greater than lastID (the store's highest). An
// empty stream (new, or reset) is advanced so that its first id is lastID+1; a stream that holds
// events but ends before lastID returns ErrBehind.
func (l *Log) EnsureAfter(ctx context.Context, lastID int64) error {
	info, err := l.Info(ctx)
	if err != nil {
		return err
	}
	if lastID <= 0 || int64(info.LastSeq) >= lastID {
		return nil
	}
	if info.Messages > 0 {
		return fmt.Errorf("%w: the log's last id is %d but the store holds ids up to %d; was the data directory's jetstream/ (or --nats-url) changed while the database was kept?", ErrBehind, info.LastSeq, lastID)
	}
	if err := l.stream.Purge(ctx, jetstream.WithPurgeSequence(uint64(lastID)+1)); err != nil {
		return fmt.Errorf("advance the log past id %d: %w", lastID, err)
	}
	return nil
}

// Info reports the stream's state.
type Info struct {
	Messages uint64
	Bytes    uint64
	FirstSeq uint64
	LastSeq  uint64
}

// Info returns the stream's current state.
func (l *Log) Info(ctx context.Context) (Info, error) {
	si, err := l.stream.Info(ctx)
	if err != nil {
		return Info{}, fmt.Errorf("%w: stream info: %w", ErrUnavailable, err)
	}
	return Info{Messages: si.State.Msgs, Bytes: si.State.Bytes, FirstSeq: si.State.FirstSeq, LastSeq: si.State.LastSeq}, nil
}

func splitHostPort(s string) (string, int, error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", p, err)
	}
	return host, port, nil
}

// Holes returns the ids inside the log (after its first, up to its last) whose events it no
// longer holds, ascending. auditstream never deletes single events (age and size limits remove
// from the start), so each is an event the log lost: a block file cut or damaged while the
// server was down. n is how many there are; ids lists them (JetStream's deleted details).
func (l *Log) Holes(ctx context.Context) (ids []int64, err error) {
	si, err := l.stream.Info(ctx, jetstream.WithDeletedDetails(true))
	if err != nil {
		return nil, fmt.Errorf("%w: stream info: %w", ErrUnavailable, err)
	}
	if si.State.NumDeleted == 0 {
		return nil, nil
	}
	ids = make([]int64, 0, len(si.State.Deleted))
	for _, s := range si.State.Deleted {
		// Only ids inside the range: the server's list can hold 0 (seen after a store's tail
		// was rewritten), which is no event's id.
		if s > 0 && s >= si.State.FirstSeq && s <= si.State.LastSeq {
			ids = append(ids, int64(s))
		}
	}
	slices.Sort(ids)
	return ids, nil
}

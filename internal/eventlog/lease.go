package eventlog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Leases are named, expiring locks held in a NATS key-value bucket: the way replicas sharing a
// log agree that one of them runs a job (the retention purge, an ordered destination's
// deliveries) at a time, and that another takes over within the TTL when it dies. The embedded
// log has one process; its leases are always its own.
type Leases struct {
	kv     jetstream.KeyValue
	ttl    time.Duration
	owner  []byte
	logger *slog.Logger
}

// LeaseBucket is the key-value bucket leases are kept in.
const LeaseBucket = "auditstream_leases"

// DefaultLeaseTTL is how long a lease outlives its holder's last renewal: the fail-over time.
const DefaultLeaseTTL = 15 * time.Second

// Leases opens (creating it when needed) the lease bucket, replicated as the stream is. ttl 0
// takes DefaultLeaseTTL.
func (l *Log) Leases(ctx context.Context, ttl time.Duration) (*Leases, error) {
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	kv, err := l.keyValue(ctx, jetstream.KeyValueConfig{Bucket: LeaseBucket, Description: "auditstream leases: who runs a cluster-wide job",
		TTL: ttl, Storage: jetstream.FileStorage})
	if err != nil {
		return nil, err
	}
	return &Leases{kv: kv, ttl: ttl, owner: []byte(newOwnerID()), logger: l.opts.Logger}, nil
}

// Run calls fn whenever this process holds the lease called name, until ctx ends. fn's context
// ends when the lease is lost (it could not be renewed in time) or ctx ends; Run waits for fn
// to return before trying to take the lease again, and releases it when ctx ends so that
// another process takes over at once.
//
// The holder renews every TTL/3 and gives the lease up itself when it has not renewed for
// 2/3 of the TTL, before the bucket lets anyone else take it: two holders never overlap while
// the processes' clocks run at about the same rate.
func (ls *Leases) Run(ctx context.Context, name string, fn func(ctx context.Context)) {
	for ctx.Err() == nil {
		if !ls.Hold(ctx, name, fn) && !waitCtx(ctx, ls.ttl/3) {
			return
		}
	}
}

// Hold makes one attempt at the lease called name: when it is free, Hold takes it, runs fn
// while it holds it (as Run does), releases it and returns true; when another process holds
// it, Hold returns false at once.
func (ls *Leases) Hold(ctx context.Context, name string, fn func(ctx context.Context)) bool {
	sent := time.Now() // the bucket's TTL counts from no earlier than this
	rev, err := ls.kv.Create(ctx, name, ls.owner)
	if err != nil {
		if !errors.Is(err, jetstream.ErrKeyExists) && ctx.Err() == nil {
			ls.logger.Debug("eventlog: taking a lease failed; retrying", "lease", name, "err", err)
		}
		return false
	}
	ls.hold(ctx, name, rev, sent, fn)
	return true
}

// hold runs fn while renewing the lease taken at rev.
func (ls *Leases) hold(ctx context.Context, name string, rev uint64, renewed time.Time, fn func(ctx context.Context)) {
	ls.logger.Info("eventlog: took a lease", "lease", name)
	hctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); fn(hctx) }()
	t := time.NewTicker(ls.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-done:
			cancel()
			ls.release(name, rev)
			return
		case <-ctx.Done():
			cancel()
			<-done
			ls.release(name, rev)
			return
		case <-t.C:
			rctx, rcancel := context.WithTimeout(ctx, ls.ttl/3)
			sent := time.Now()
			next, err := ls.kv.Update(rctx, name, ls.owner, rev)
			rcancel()
			if err == nil {
				rev, renewed = next, sent
				continue
			}
			if time.Since(renewed) < 2*ls.ttl/3 && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
				continue // a slow or failed renewal: the next tick tries again
			}
			ls.logger.Warn("eventlog: lost a lease", "lease", name, "err", err)
			cancel()
			<-done
			return
		}
	}
}

// release deletes the lease if this process still holds it at rev.
func (ls *Leases) release(name string, rev uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = ls.kv.Delete(ctx, name, jetstream.LastRevision(rev))
	ls.logger.Info("eventlog: released a lease", "lease", name)
}

// keyValue opens (creating it when needed) a bucket of one value per key, replicated as the
// stream is, retrying while a cluster forms.
func (l *Log) keyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cfg.History, cfg.Replicas = 1, l.replicas
	var kv jetstream.KeyValue
	err := l.retry(ctx, "creating the bucket "+cfg.Bucket, func(ctx context.Context) error {
		var err error
		kv, err = l.js.CreateOrUpdateKeyValue(ctx, cfg)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%w: bucket %s: %w", ErrUnavailable, cfg.Bucket, err)
	}
	return kv, nil
}

// newOwnerID names this process in a bucket shared with others.
func newOwnerID() string {
	var id [8]byte
	_, _ = rand.Read(id[:])
	return hex.EncodeToString(id[:])
}

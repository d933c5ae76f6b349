package eventlog

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Board shares small records between the processes of a cluster through a NATS key-value
// bucket: each process puts its own record under a key, and reads what the others put. The
// delivery engine uses it so that every replica shows a destination's status as the whole
// cluster sees it. Records older than the TTL are ignored (their process stopped putting them).
type Board struct {
	kv    jetstream.KeyValue
	ttl   time.Duration
	owner string

	mu      sync.Mutex
	records map[string]map[string]boardRecord // key → owner → record
}

type boardRecord struct {
	value []byte
	at    time.Time
}

// BoardBucket is the key-value bucket of the board.
const BoardBucket = "auditstream_board"

// Board opens (creating it when needed) the board and follows the others' records until ctx
// ends. ttl is how long a record counts without being put again.
func (l *Log) Board(ctx context.Context, ttl time.Duration) (*Board, error) {
	kv, err := l.keyValue(ctx, jetstream.KeyValueConfig{Bucket: BoardBucket, Description: "auditstream: each replica's view, shared",
		TTL: ttl, Storage: jetstream.MemoryStorage})
	if err != nil {
		return nil, err
	}
	b := &Board{kv: kv, ttl: ttl, owner: newOwnerID(), records: map[string]map[string]boardRecord{}}
	go b.follow(ctx)
	return b, nil
}

// follow keeps records up to date from the bucket, watching again after an interruption.
func (b *Board) follow(ctx context.Context) {
	for ctx.Err() == nil {
		w, err := b.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
		if err != nil {
			if !waitCtx(ctx, time.Second) {
				return
			}
			continue
		}
		for e := range w.Updates() {
			if e == nil {
				continue // the end of the initial values
			}
			key, owner, ok := cutOwner(e.Key())
			if !ok || owner == b.owner {
				continue
			}
			b.mu.Lock()
			if b.records[key] == nil {
				b.records[key] = map[string]boardRecord{}
			}
			b.records[key][owner] = boardRecord{value: e.Value(), at: time.Now()} // this clock: Others compares with it
			b.mu.Unlock()
		}
		_ = w.Stop()
		if !waitCtx(ctx, time.Second) {
			return
		}
	}
}

func cutOwner(k string) (key, owner string, ok bool) {
	i := strings.LastIndexByte(k, '.')
	if i < 0 {
		return "", "", false
	}
	return k[:i], k[i+1:], true
}

// Put stores this process's record under key (letters, digits, '-', '_' and '.').
func (b *Board) Put(ctx context.Context, key string, value []byte) error {
	_, err := b.kv.Put(ctx, key+"."+b.owner, value)
	return err
}

// Others returns the records the other processes put under key within the TTL.
func (b *Board) Others(key string) [][]byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out [][]byte
	for owner, r := range b.records[key] {
		if time.Since(r.at) > b.ttl {
			delete(b.records[key], owner)
			continue
		}
		out = append(out, r.value)
	}
	return out
}

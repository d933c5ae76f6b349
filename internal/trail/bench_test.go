package trail

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/store/sqlite"
)

// benchEvents is how many events the verify and proof benchmarks build a trail of:
// AUDITSTREAM_BENCH_EVENTS, default 1,000,000 (docs/benchmarks.md).
func benchEvents(b *testing.B) int64 {
	if v := os.Getenv("AUDITSTREAM_BENCH_EVENTS"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		return n
	}
	return 1_000_000
}

// benchEvent is an event of GitLab's documented size and shape (design 5.2), with its id.
func benchEvent(id int64) []byte {
	return fmt.Appendf(nil, `{"id":%d,"author_id":1,"author_name":"Administrator","entity_id":24,"entity_type":"Group","entity_path":"gitlab-duo",`+
		`"details":{"event_name":"group_share_with_group_link_created","author_name":"Administrator","author_class":"User","target_id":24,`+
		`"target_type":"Group","target_details":"Gitlab Org","custom_message":"Invited Gitlab Org to the group","ip_address":"172.16.123.1",`+
		`"entity_path":"gitlab-duo"},"ip_address":"172.16.123.1","target_id":24,"target_type":"Group","target_details":"Gitlab Org",`+
		`"created_at":"2025-10-14T18:00:08.677Z","event_type":"group_share_with_group_link_created"}`, id)
}

// benchTrail builds a store of n events (every tenth stream-only, not stored) with their tree
// and one checkpoint over all of them, as the writer would.
func benchTrail(b *testing.B, n int64, withEvents bool) (st *sqlite.Store, vkey, path string) {
	st, vkey, path, _ = benchTrailCounted(b, n, withEvents)
	return st, vkey, path
}

// rowCounter counts the rows the Writer's appends write.
type rowCounter struct {
	*sqlite.Store
	rows int
}

func (c *rowCounter) TrailAppend(ctx context.Context, p store.TrailAppendParams) error {
	c.rows += len(p.Tiles)
	return c.Store.TrailAppend(ctx, p)
}

// benchTrailCounted is benchTrail, also returning the rows the appends wrote.
func benchTrailCounted(b *testing.B, n int64, withEvents bool) (st *sqlite.Store, vkey, path string, rows int) {
	b.Helper()
	ctx := context.Background()
	path = filepath.Join(b.TempDir(), "db")
	// AUDITSTREAM_BENCH_DATA_DIR keeps the store as a service's data dir (auditstream.db, and
	// the public key in bench.vkey), for `auditstream verify` over HTTP (docs/benchmarks.md).
	keep := os.Getenv("AUDITSTREAM_BENCH_DATA_DIR")
	if keep != "" && withEvents {
		path = filepath.Join(keep, "auditstream.db")
	}
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	skey, _, err := GenerateKey("bench")
	if err != nil {
		b.Fatal(err)
	}
	key, err := ParseKey(skey)
	if err != nil {
		b.Fatal(err)
	}
	counter := &rowCounter{Store: st}
	w := &Writer{Store: counter, Signer: key.Signer, Origin: "bench", Logger: slog.New(slog.DiscardHandler)}
	w.defaults()
	w.cache = newHashCache(ctx, st)
	var appending time.Duration
	for from := int64(1); from <= n; from += 1000 {
		var leaves []leaf
		var recs []store.EventRecord
		for id := from; id < from+1000 && id <= n; id++ {
			data := benchEvent(id)
			kind := store.TrailStored
			if id%10 == 0 {
				kind = store.TrailStreamOnly
			} else if withEvents {
				recs = append(recs, store.EventRecord{ID: id, CreatedAt: time.Now(), EventType: "group_share_with_group_link_created", EntityType: "Group", EntityID: 24, AuthorID: 1, Data: data})
			}
			leaves = append(leaves, leaf{LeafHash(data), kind})
		}
		if err := st.EventInsertMany(ctx, recs); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := w.store(ctx, leaves); err != nil {
			b.Fatal(err)
		}
		appending += time.Since(start)
	}
	if b.N > 0 && n > 0 && !withEvents {
		// The writer's own cost: computing the hashes and TrailAppend, per event.
		b.ReportMetric(float64(appending.Nanoseconds())/float64(n), "writer-ns/event")
		b.ReportMetric(float64(counter.rows)*1000/float64(n), "rows/1000-leaves")
	}
	if err := w.checkpoint(ctx); err != nil {
		b.Fatal(err)
	}
	if keep != "" && withEvents {
		if err := os.WriteFile(filepath.Join(keep, "bench.vkey"), []byte(key.VerifierKey+"\n"), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	return st, key.VerifierKey, path, counter.rows
}

// BenchmarkAppend appends b.N events to a tree in SQLite, 1,000 at a time (the writer's batch),
// and reports what the tree costs on disk per event (hashes and index; no events stored).
func BenchmarkAppend(b *testing.B) {
	n := int64(b.N)
	start := time.Now()
	st, _, path := benchTrail(b, n, false)
	d := time.Since(start)
	b.StopTimer()
	if err := st.Close(); err != nil { // checkpoints the WAL into the file
		b.Fatal(err)
	}
	var size int64
	for _, f := range []string{path, path + "-wal"} {
		if fi, err := os.Stat(f); err == nil {
			size += fi.Size()
		}
	}
	b.ReportMetric(float64(n)/d.Seconds(), "events/s")
	b.ReportMetric(float64(size)/float64(n), "B/event")
}

// BenchmarkVerify verifies a trail of AUDITSTREAM_BENCH_EVENTS stored events from the store
// (what the service's audit does; `auditstream verify` adds HTTP).
func BenchmarkVerify(b *testing.B) {
	n := benchEvents(b)
	st, vkey, _ := benchTrail(b, n, true)
	p := &Prover{Store: st}
	b.ResetTimer()
	var total time.Duration
	for b.Loop() {
		start := time.Now()
		rep, err := (&Verifier{Keys: []string{vkey}}).Verify(context.Background(), p)
		if err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		if rep.Size != n {
			b.Fatalf("verified %d, want %d", rep.Size, n)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/total.Seconds(), "events/s")
}

// BenchmarkInclusion proves random events of a tree of AUDITSTREAM_BENCH_EVENTS from the store
// and reports the 99th percentile.
func BenchmarkInclusion(b *testing.B) {
	n := benchEvents(b)
	st, _, _ := benchTrail(b, n, false)
	p := &Prover{Store: st}
	ctx := context.Background()
	var ds []time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if _, _, err := p.Inclusion(ctx, rand.Int64N(n)+1, n); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds()), "p99-µs")
}

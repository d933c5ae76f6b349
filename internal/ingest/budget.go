package ingest

import (
	"errors"
	"io"
	"sync"
)

// ErrBusy is returned by a Budget's reader when the bytes that arrived do not fit the budget:
// the server holds too many bytes of bodies, or this key does. Nothing was published.
var ErrBusy = errors.New("ingest: too many bytes of requests are being ingested at once")

// Budget bounds the bytes of request bodies held at once, overall and per key (a token), so
// that one producer cannot take the whole of it and starve the others. A body is charged what
// has arrived (plus at most one read ahead), not what it announces, and until it is Released.
// Safe for concurrent use. Total or PerKey 0 means no bound.
type Budget struct {
	Total  int64 // bytes held by every request together
	PerKey int64 // bytes held by the requests of one key

	mu    sync.Mutex
	used  int64
	byKey map[int64]int64
}

// take charges up to n bytes to key, as many as fit, and returns how many (0: none fit).
func (b *Budget) take(key, n int64) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := b.byKey[key]
	if b.Total > 0 {
		n = min(n, b.Total-b.used)
	}
	if b.PerKey > 0 {
		n = min(n, b.PerKey-k)
	}
	if n <= 0 {
		return 0
	}
	if b.byKey == nil {
		b.byKey = map[int64]int64{}
	}
	b.used += n
	b.byKey[key] = k + n
	return n
}

// give returns n bytes of key's charge.
func (b *Budget) give(key, n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	if k := b.byKey[key] - n; k > 0 {
		b.byKey[key] = k
	} else {
		delete(b.byKey, key)
	}
}

// Full reports whether not one more byte may be charged to key.
func (b *Budget) Full(key int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return (b.Total > 0 && b.used >= b.Total) || (b.PerKey > 0 && b.byKey[key] >= b.PerKey)
}

// Used returns the bytes charged overall and to key.
func (b *Budget) Used(key int64) (total, ofKey int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used, b.byKey[key]
}

// readAhead is how much a Reader charges before it reads: a read returns at most this much.
const readAhead = 32 << 10

// Reader returns r charged to key as it is read. A read that does not fit returns ErrBusy.
// Call Release when the body is no longer held.
func (b *Budget) Reader(key int64, r io.Reader) *BudgetReader {
	return &BudgetReader{b: b, key: key, r: r}
}

// BudgetReader is a body charged to a Budget as it arrives. Not safe for concurrent use.
type BudgetReader struct {
	b       *Budget
	key     int64
	r       io.Reader
	charged int64 // bytes taken from the budget
	n       int64 // bytes read
}

// Read reads at most what has been charged; when nothing charged is left it first charges up
// to readAhead bytes (as many as fit), and returns ErrBusy when not one byte fits.
func (br *BudgetReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if br.charged == br.n {
		got := br.b.take(br.key, min(readAhead, int64(len(p))))
		if got == 0 {
			return 0, ErrBusy
		}
		br.charged += got
	}
	p = p[:min(int64(len(p)), br.charged-br.n)]
	n, err := br.r.Read(p)
	br.n += int64(n)
	if err != nil { // the body is read: from now on it is charged what it is
		br.b.give(br.key, br.charged-br.n)
		br.charged = br.n
	}
	return n, err
}

// N returns the bytes read.
func (br *BudgetReader) N() int64 { return br.n }

// Release returns the whole charge. Call it once, when the body is no longer held.
func (br *BudgetReader) Release() {
	br.b.give(br.key, br.charged)
	br.charged, br.n = 0, 0
}

package trail

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditstream/auditstream/internal/store"
)

// The JSON the API serves (docs/api.md, "Tamper-evident trail"), written by api/rest and read
// by HTTPSource.

// CheckpointJSON is one signed checkpoint.
type CheckpointJSON struct {
	ID       int64  `json:"id"`
	TreeSize int64  `json:"tree_size"`
	RootHash string `json:"root_hash"`
	Origin   string `json:"origin"`
	// Checkpoint is the signed note: the tlog-checkpoint body, a blank line, signature lines.
	Checkpoint string    `json:"checkpoint"`
	CreatedAt  time.Time `json:"created_at"`
	// VerifierKey is the public key of the service's current signing key (latest only).
	VerifierKey string `json:"verifier_key,omitempty"`
	// StoredUpTo is the id up to which the store is complete (latest only): the store
	// consumer's acknowledged position in the log. Leaves after it may have events that are
	// still on their way to the store. Absent when the service could not read it.
	StoredUpTo *int64 `json:"stored_up_to,omitempty"`
}

// NewCheckpointJSON returns the JSON of a stored checkpoint.
func NewCheckpointJSON(c store.TrailCheckpoint) CheckpointJSON {
	out := CheckpointJSON{ID: c.ID, TreeSize: c.Size, Checkpoint: string(c.Note), CreatedAt: c.CreatedAt}
	if text, _, ok := strings.Cut(string(c.Note), "\n\n"); ok {
		if cp, err := ParseCheckpoint([]byte(text + "\n")); err == nil {
			out.Origin, out.RootHash = cp.Origin, base64.StdEncoding.EncodeToString(cp.Root[:])
		}
	}
	return out
}

// InclusionJSON proves an event is in a tree.
type InclusionJSON struct {
	ID        int64    `json:"id"`
	LeafIndex int64    `json:"leaf_index"`
	TreeSize  int64    `json:"tree_size"`
	LeafHash  string   `json:"leaf_hash"`
	Proof     []string `json:"proof"`
	// Checkpoint is the signed checkpoint of TreeSize, when the size was not given.
	Checkpoint *CheckpointJSON `json:"checkpoint,omitempty"`
}

// ConsistencyJSON proves a tree is a prefix of a larger one.
type ConsistencyJSON struct {
	OldSize int64    `json:"old_size"`
	NewSize int64    `json:"new_size"`
	Proof   []string `json:"proof"`
}

// Hashes encodes hashes in standard base64.
func Hashes(hs []tlog.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = base64.StdEncoding.EncodeToString(h[:])
	}
	return out
}

// ParseHashes decodes Hashes.
func ParseHashes(ss []string) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(ss))
	for i, s := range ss {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) != tlog.HashSize {
			return nil, fmt.Errorf("hash %d is not 32 bytes of base64", i)
		}
		copy(out[i][:], b)
	}
	return out, nil
}

// KindName is a leaf kind as the API writes it.
func KindName(k store.TrailLeafKind) string {
	switch k {
	case store.TrailStored:
		return "stored"
	case store.TrailStreamOnly:
		return "stream_only"
	case store.TrailLost:
		return "lost"
	case store.TrailRecovered:
		return "recovered"
	case store.TrailPurged:
		return "purged"
	}
	return "unknown"
}

func kindOf(name string) store.TrailLeafKind {
	for k := store.TrailStored; k <= store.TrailPurged; k++ {
		if KindName(k) == name {
			return k
		}
	}
	return store.TrailNode
}

// AppendLeafLine appends the NDJSON line of a leaf: {"id":N,"kind":"…","hash":"…"} with
// ,"event":<the event's bytes, unchanged> before the closing brace when l.Event is not nil.
func AppendLeafLine(b []byte, l SourceLeaf) []byte {
	event := l.Event
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, l.ID, 10)
	b = append(b, `,"kind":"`...)
	b = append(b, KindName(l.Kind)...)
	b = append(b, `","hash":"`...)
	b = base64.StdEncoding.AppendEncode(b, l.Hash[:])
	b = append(b, '"')
	if event != nil {
		b = append(b, `,"event":`...)
		b = append(b, event...)
	}
	return append(b, "}\n"...)
}

// parseLeafLine reads a line of AppendLeafLine. The event's bytes are taken as they are: the
// line's layout is fixed, so no JSON decoder rewrites or slows them.
func parseLeafLine(line []byte) (SourceLeaf, error) {
	var l SourceLeaf
	bad := fmt.Errorf("malformed leaf line %.60q", line)
	rest, ok := bytes.CutPrefix(line, []byte(`{"id":`))
	if !ok {
		return l, bad
	}
	i := bytes.IndexByte(rest, ',')
	if i <= 0 {
		return l, bad
	}
	id, err := strconv.ParseInt(string(rest[:i]), 10, 64)
	if err != nil {
		return l, bad
	}
	rest, ok = bytes.CutPrefix(rest[i:], []byte(`,"kind":"`))
	if !ok {
		return l, bad
	}
	i = bytes.IndexByte(rest, '"')
	if i < 0 {
		return l, bad
	}
	kind := string(rest[:i])
	rest, ok = bytes.CutPrefix(rest[i:], []byte(`","hash":"`))
	if !ok || len(rest) < 45 || rest[44] != '"' {
		return l, bad
	}
	n, err := base64.StdEncoding.Decode(l.Hash[:], rest[:44])
	if err != nil || n != tlog.HashSize {
		return l, bad
	}
	rest = rest[45:]
	if ev, ok := bytes.CutPrefix(rest, []byte(`,"event":`)); ok {
		if len(ev) < 2 || ev[len(ev)-1] != '}' {
			return l, bad
		}
		l.Event = ev[: len(ev)-1 : len(ev)-1]
	} else if string(rest) != "}" {
		return l, bad
	}
	l.ID, l.Kind = id, kindOf(kind)
	return l, nil
}

// HTTPSource reads a running service's trail through its API, with a token that may read the
// instance's audit events (an administrator's).
type HTTPSource struct {
	// BaseURL is the service's address, such as https://audit.example.com.
	BaseURL string
	Token   string
	Client  *http.Client
}

// ErrAPI is an error answer of the service.
var ErrAPI = errors.New("trail: the service answered with an error")

func (s *HTTPSource) get(ctx context.Context, path string, q url.Values) (*http.Response, error) {
	u := strings.TrimSuffix(s.BaseURL, "/") + path + "?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("PRIVATE-TOKEN", s.Token)
	c := s.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return nil, fmt.Errorf("%w: GET %s: %s: %s", ErrAPI, path, resp.Status, bytes.TrimSpace(body))
	}
	return resp, nil
}

// Checkpoints returns every checkpoint the service signed, oldest first.
func (s *HTTPSource) Checkpoints(ctx context.Context) ([][]byte, error) {
	var out [][]byte
	after := int64(0)
	for {
		resp, err := s.get(ctx, "/api/v4/auditstream/trail/checkpoints", url.Values{"after_id": {strconv.FormatInt(after, 10)}, "per_page": {"100"}})
		if err != nil {
			return nil, err
		}
		var page []CheckpointJSON
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("%w: checkpoints: %w", ErrAPI, err)
		}
		for _, c := range page {
			out = append(out, []byte(c.Checkpoint))
			after = c.ID
		}
		if len(page) < 100 {
			return out, nil
		}
	}
}

// Leaves returns the leaves of ids fromID.., with the stored events' bytes.
func (s *HTTPSource) Leaves(ctx context.Context, fromID int64, count int) ([]SourceLeaf, error) {
	resp, err := s.get(ctx, "/api/v4/auditstream/trail/leaves", url.Values{"from_id": {strconv.FormatInt(fromID, 10)}, "count": {strconv.Itoa(count)}})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := make([]SourceLeaf, 0, count)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 8<<20)
	for sc.Scan() {
		line := bytes.Clone(sc.Bytes())
		l, err := parseLeafLine(line)
		if err != nil {
			return nil, fmt.Errorf("%w: leaves: %w", ErrAPI, err)
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("leaves: %w", err)
	}
	return out, nil
}

// NDJSON yields the lines of an NDJSON file (an export, or a gunzipped object-store batch), one
// event per line, blank lines skipped.
func NDJSON(r io.Reader) func(yield func([]byte, error) bool) {
	return func(yield func([]byte, error) bool) {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 64<<10), 8<<20)
		for sc.Scan() {
			line := bytes.TrimSpace(sc.Bytes())
			if len(line) == 0 {
				continue
			}
			if !yield(bytes.Clone(line), nil) {
				return
			}
		}
		if err := sc.Err(); err != nil {
			yield(nil, err)
		}
	}
}

// Latest returns the service's latest checkpoint.
func (s *HTTPSource) Latest(ctx context.Context) (CheckpointJSON, error) {
	return getJSON[CheckpointJSON](ctx, s, "/api/v4/auditstream/trail/checkpoint", nil, "checkpoint")
}

// getJSON GETs path and decodes its JSON answer, what it is (for the error).
func getJSON[T any](ctx context.Context, s *HTTPSource, path string, q url.Values, what string) (T, error) {
	var v T
	resp, err := s.get(ctx, path, q)
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		var zero T
		return zero, fmt.Errorf("%w: %s: %w", ErrAPI, what, err)
	}
	return v, nil
}

package datadog

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"
)

// intake is a test server that enforces the contract Datadog documents for its logs intake
// API v2 (https://docs.datadoghq.com/api/latest/logs/#send-logs): POST /api/v2/logs, a valid
// DD-API-KEY (403 otherwise), Content-Type application/json, Content-Encoding gzip, deflate or
// none, at most 5 MB uncompressed (413), an array of at most 1,000 entries (400), each an object
// with a string message; an entry over 1 MB is truncated, one dated more than 18 hours back
// dropped (accepted, not kept). It answers 202 with {}.
type intake struct {
	*httptest.Server
	key string

	mu        sync.Mutex
	entries   []map[string]any
	truncated int
	dropped   int
	requests  int
	refuse    int // a status to answer with, 0 for none
}

func newIntake(t testing.TB, key string) *intake {
	in := &intake{key: key}
	in.Server = httptest.NewServer(http.HandlerFunc(in.serve))
	t.Cleanup(in.Close)
	return in
}

func (in *intake) fail(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `{"errors":[%q]}`, msg)
}

func (in *intake) serve(w http.ResponseWriter, r *http.Request) {
	in.mu.Lock()
	in.requests++
	refuse := in.refuse
	in.mu.Unlock()
	switch {
	case r.URL.Path != IntakePath:
		in.fail(w, http.StatusNotFound, "Not found")
		return
	case r.Method != http.MethodPost:
		in.fail(w, http.StatusMethodNotAllowed, "Method not allowed")
		return
	case r.Header.Get(APIKeyHeader) != in.key:
		in.fail(w, http.StatusForbidden, "Forbidden")
		return
	case r.Header.Get("Content-Type") != "application/json":
		in.fail(w, http.StatusBadRequest, "Unsupported content type")
		return
	case refuse == http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "2")
		in.fail(w, refuse, "Too many requests")
		return
	case refuse != 0:
		in.fail(w, refuse, http.StatusText(refuse))
		return
	}
	var body io.Reader = r.Body
	switch r.Header.Get("Content-Encoding") {
	case "gzip":
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			in.fail(w, http.StatusBadRequest, "Invalid gzip")
			return
		}
		body = zr
	case "deflate":
		zr, err := zlib.NewReader(r.Body)
		if err != nil {
			in.fail(w, http.StatusBadRequest, "Invalid deflate")
			return
		}
		body = zr
	case "", "identity":
	default:
		in.fail(w, http.StatusBadRequest, "Unsupported content encoding")
		return
	}
	raw, err := io.ReadAll(io.LimitReader(body, MaxPayloadBytes+1))
	if err != nil {
		in.fail(w, http.StatusBadRequest, "Invalid body")
		return
	}
	if len(raw) > MaxPayloadBytes {
		in.fail(w, http.StatusRequestEntityTooLarge, "Payload too large")
		return
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		var one json.RawMessage
		if json.Unmarshal(raw, &one) != nil || !bytes.HasPrefix(bytes.TrimSpace(one), []byte("{")) {
			in.fail(w, http.StatusBadRequest, "Invalid JSON")
			return
		}
		items = []json.RawMessage{one}
	}
	if len(items) > MaxEntries {
		in.fail(w, http.StatusBadRequest, "Too many entries in the array")
		return
	}
	var keep []map[string]any
	truncated, dropped := 0, 0
	for _, it := range items {
		if len(it) > MaxEntryBytes {
			truncated++
			continue
		}
		var e map[string]any
		if json.Unmarshal(it, &e) != nil {
			in.fail(w, http.StatusBadRequest, "Log entry is not an object")
			return
		}
		if _, ok := e["message"].(string); !ok {
			in.fail(w, http.StatusBadRequest, "message must be a string")
			return
		}
		if ts, ok := e["timestamp"].(float64); ok && time.Since(time.UnixMilli(int64(ts))) > 18*time.Hour {
			dropped++
			continue
		}
		keep = append(keep, e)
	}
	in.mu.Lock()
	in.entries = append(in.entries, keep...)
	in.truncated += truncated
	in.dropped += dropped
	in.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, "{}")
}

func (in *intake) kept() []map[string]any {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.entries)
}

func (in *intake) setRefuse(status int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.refuse = status
}

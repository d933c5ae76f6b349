package cloudlogging_test

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeGoogle stands in for Google's OAuth 2.0 token endpoint and Cloud Logging's entries.write,
// as Google documents them: the JWT bearer grant (RFC 7523, Google's "Using OAuth 2.0 for
// Server to Server Applications") and WriteLogEntriesRequest / LogEntry
// (https://cloud.google.com/logging/docs/reference/v2/rest/v2/entries/write). No emulator of
// Cloud Logging exists, so it checks what a client sends as strictly as Google does: a JWT
// signed with the service account's key, a known token, field names (proto3 JSON: lowerCamel
// or the proto's snake_case, exactly), field types, the log name, the severity, at most one
// payload. It answers with Google's error JSON.
type fakeGoogle struct {
	t     *testing.T
	srv   *httptest.Server
	pub   *rsa.PublicKey
	email string
	// projects the service account may write to; others get 403, as Google answers for a
	// project that does not exist or that the account has no role on.
	projects map[string]bool

	mu            sync.Mutex
	expiresIn     int             // of the tokens issued; 3600 unless set
	issued        map[string]bool // access tokens that are valid
	nextToken     int
	tokenRequests int
	writeRequests int
	tokenErrors   []string // why token requests were refused
	writeErrors   []string // why writes were refused
	entries       []map[string]any
	dropped       int      // entries accepted but not stored: timestamp older than the retention
	bodies        [][]byte // accepted write bodies, as sent
	auths         []string // the Authorization header of each write
	// writeHook, when set, answers a write after its token was checked; it returns false to
	// let the write go on.
	writeHook func(w http.ResponseWriter, r *http.Request) bool
	// tokenHook, when set, answers a token request before anything is checked; it returns
	// false to let the request go on.
	tokenHook func(w http.ResponseWriter, r *http.Request) bool
}

// Limits of entries.write (https://cloud.google.com/logging/quotas).
const (
	googleMaxRequestBytes = 10 << 20
	googleRetention       = 30 * 24 * time.Hour // the _Default bucket's
	jwtBearerGrant        = "urn:ietf:params:oauth:grant-type:jwt-bearer"
)

func newFakeGoogle(t *testing.T, pub *rsa.PublicKey, email string, projects ...string) *fakeGoogle {
	t.Helper()
	g := &fakeGoogle{t: t, pub: pub, email: email, projects: map[string]bool{}, expiresIn: 3600, issued: map[string]bool{}}
	for _, p := range projects {
		g.projects[p] = true
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/token", g.token)
	mux.HandleFunc("/v2/entries:write", g.write)
	g.srv = httptest.NewServer(mux)
	t.Cleanup(g.srv.Close)
	return g
}

func (g *fakeGoogle) tokenURL() string { return g.srv.URL + "/token" }

func (g *fakeGoogle) setExpiresIn(secs int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.expiresIn = secs
}

// revoke makes every token issued so far invalid.
func (g *fakeGoogle) revoke() {
	g.mu.Lock()
	defer g.mu.Unlock()
	clear(g.issued)
}

func (g *fakeGoogle) setWriteHook(h func(w http.ResponseWriter, r *http.Request) bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.writeHook = h
}

func (g *fakeGoogle) setTokenHook(h func(w http.ResponseWriter, r *http.Request) bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.tokenHook = h
}

type fakeStats struct {
	tokenRequests, writeRequests int
	tokenErrors, writeErrors     []string
	entries                      []map[string]any
	dropped                      int
	bodies                       [][]byte
	auths                        []string
}

func (g *fakeGoogle) stats() fakeStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return fakeStats{
		tokenRequests: g.tokenRequests, writeRequests: g.writeRequests,
		tokenErrors: slices.Clone(g.tokenErrors), writeErrors: slices.Clone(g.writeErrors),
		entries: slices.Clone(g.entries), dropped: g.dropped, bodies: slices.Clone(g.bodies), auths: slices.Clone(g.auths),
	}
}

// tokenError answers as Google's token endpoint does: {"error": ..., "error_description": ...}.
func (g *fakeGoogle) tokenError(w http.ResponseWriter, status int, code, desc string) {
	g.tokenErrors = append(g.tokenErrors, code+": "+desc)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

func (g *fakeGoogle) token(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	hook := g.tokenHook
	g.tokenRequests++
	g.mu.Unlock()
	if hook != nil && hook(w, r) {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if r.Method != http.MethodPost {
		g.tokenError(w, http.StatusMethodNotAllowed, "invalid_request", "POST only")
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		g.tokenError(w, http.StatusBadRequest, "invalid_request", "Content-Type must be application/x-www-form-urlencoded, not "+ct)
		return
	}
	if err := r.ParseForm(); err != nil {
		g.tokenError(w, http.StatusBadRequest, "invalid_request", "cannot parse the form")
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != jwtBearerGrant {
		g.tokenError(w, http.StatusBadRequest, "unsupported_grant_type", "Invalid grant_type: "+gt)
		return
	}
	claims, why := g.verifyJWT(r.PostForm.Get("assertion"))
	if why != "" {
		g.tokenError(w, http.StatusBadRequest, "invalid_grant", why)
		return
	}
	if claims.Iss != g.email {
		g.tokenError(w, http.StatusBadRequest, "invalid_grant", "Invalid grant: account not found")
		return
	}
	if claims.Aud != g.tokenURL() {
		g.tokenError(w, http.StatusBadRequest, "invalid_grant", "Invalid JWT: Failed audience check.")
		return
	}
	if !slices.Contains(strings.Fields(claims.Scope), "https://www.googleapis.com/auth/logging.write") {
		g.tokenError(w, http.StatusBadRequest, "invalid_scope", "Invalid OAuth scope or ID token audience provided.")
		return
	}
	now := time.Now().Unix()
	if claims.Iat == 0 || claims.Exp == 0 || claims.Iat > now+60 || claims.Exp <= now || claims.Exp-claims.Iat > 3600 || claims.Exp <= claims.Iat {
		g.tokenError(w, http.StatusBadRequest, "invalid_grant",
			"Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the assertion and use a clock with skew to account for clock differences between systems.")
		return
	}
	g.nextToken++
	tok := fmt.Sprintf("ya29.fake-%d-%s", g.nextToken, strings.Repeat("x", 40))
	g.issued[tok] = true
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": g.expiresIn})
}

type jwtClaims struct {
	Iss   string `json:"iss"`
	Scope string `json:"scope"`
	Aud   string `json:"aud"`
	Exp   int64  `json:"exp"`
	Iat   int64  `json:"iat"`
	Sub   string `json:"sub"`
}

// verifyJWT checks an RS256 JWT against the public key and returns its claims, or why it is
// refused, in Google's words.
func (g *fakeGoogle) verifyJWT(assertion string) (jwtClaims, string) {
	var c jwtClaims
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return c, "Invalid JWT: not three dot-separated parts"
	}
	hdrJSON, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	claimsJSON, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return c, "Invalid JWT: not base64url"
	}
	var hdr struct {
		Alg string `json:"alg"`
		Typ string `json:"typ"`
	}
	if json.Unmarshal(hdrJSON, &hdr) != nil || hdr.Alg != "RS256" {
		return c, "Invalid JWT: the algorithm must be RS256"
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(g.pub, crypto.SHA256, sum[:], sig) != nil {
		return c, "Invalid JWT Signature."
	}
	if json.Unmarshal(claimsJSON, &c) != nil {
		return c, "Invalid JWT: the claim set is not JSON"
	}
	return c, ""
}

// googleError answers as Google APIs do: {"error":{"code":...,"message":...,"status":...}}.
func googleError(w http.ResponseWriter, code int, status, message string, details ...any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(code)
	e := map[string]any{"code": code, "message": message, "status": status}
	if len(details) > 0 {
		e["details"] = details
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"error": e})
}

func (g *fakeGoogle) write(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	g.writeRequests++
	g.auths = append(g.auths, r.Header.Get("Authorization"))
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	valid := ok && g.issued[tok]
	hook := g.writeHook
	g.mu.Unlock()
	fail := func(code int, status, msg string) {
		g.mu.Lock()
		g.writeErrors = append(g.writeErrors, status+": "+msg)
		g.mu.Unlock()
		googleError(w, code, status, msg)
	}
	if r.Method != http.MethodPost {
		fail(http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "POST only")
		return
	}
	if !valid {
		fail(http.StatusUnauthorized, "UNAUTHENTICATED",
			"Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.")
		return
	}
	if hook != nil && hook(w, r) {
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		fail(http.StatusBadRequest, "INVALID_ARGUMENT", "Invalid JSON payload received. Content-Type must be application/json, not "+ct)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, googleMaxRequestBytes+1))
	if err != nil {
		fail(http.StatusBadRequest, "INVALID_ARGUMENT", "cannot read the body")
		return
	}
	if len(body) > googleMaxRequestBytes {
		fail(http.StatusBadRequest, "INVALID_ARGUMENT", "Request payload size exceeds the limit: 10485760 bytes.")
		return
	}
	entries, code, status, msg := g.validate(body)
	if status != "" {
		fail(code, status, msg)
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, e := range entries {
		if ts, ok := e["timestamp"].(string); ok {
			if t, _ := time.Parse(time.RFC3339Nano, ts); time.Since(t) > googleRetention {
				g.dropped++ // Google accepts it but does not keep it
				continue
			}
		}
		g.entries = append(g.entries, e)
	}
	g.bodies = append(g.bodies, body)
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_, _ = w.Write([]byte("{}\n"))
}

// Fields of WriteLogEntriesRequest and LogEntry, by their lowerCamel JSON names, with the
// proto names proto3 JSON also accepts.
var (
	writeRequestFields = fieldNames("logName", "resource", "labels", "entries", "partialSuccess", "dryRun")
	logEntryFields     = fieldNames("logName", "resource", "protoPayload", "textPayload", "jsonPayload",
		"timestamp", "receiveTimestamp", "severity", "insertId", "httpRequest", "labels", "operation",
		"trace", "spanId", "traceSampled", "sourceLocation", "split", "errorGroups", "apphub",
		"apphubDestination", "apphubSource", "otel")
	resourceFields = fieldNames("type", "labels")
	severities     = map[string]bool{"DEFAULT": true, "DEBUG": true, "INFO": true, "NOTICE": true, "WARNING": true,
		"ERROR": true, "CRITICAL": true, "ALERT": true, "EMERGENCY": true}
	severityNumbers = map[float64]bool{0: true, 100: true, 200: true, 300: true, 400: true, 500: true, 600: true, 700: true, 800: true}
	logNamePattern  = regexp.MustCompile(`^(projects|organizations|folders|billingAccounts)/([^/]+)/logs/([^/]+)$`)
	logIDChars      = regexp.MustCompile(`^[A-Za-z0-9/_.\-]+$`)
)

// fieldNames maps each accepted JSON name to the lowerCamel name.
func fieldNames(camel ...string) map[string]string {
	m := map[string]string{}
	for _, c := range camel {
		m[c] = c
		var snake strings.Builder
		for _, r := range c {
			if r >= 'A' && r <= 'Z' {
				snake.WriteByte('_')
				r += 'a' - 'A'
			}
			snake.WriteRune(r)
		}
		m[snake.String()] = c
	}
	return m
}

// object decodes raw as a JSON object whose keys are all in fields, keyed by lowerCamel names.
func object(raw json.RawMessage, at string, fields map[string]string) (map[string]json.RawMessage, string) {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil || m == nil {
		return nil, fmt.Sprintf("Invalid value at '%s', expected an object", at)
	}
	out := map[string]json.RawMessage{}
	for k, v := range m {
		camel, ok := fields[k]
		if !ok {
			return nil, fmt.Sprintf("Invalid JSON payload received. Unknown name %q at '%s': Cannot find field.", k, at)
		}
		if string(v) != "null" {
			out[camel] = v
		}
	}
	return out, ""
}

// validate checks a WriteLogEntriesRequest and returns its entries, with the request's
// defaults applied, or the error to answer.
func (g *fakeGoogle) validate(body []byte) (entries []map[string]any, code int, status, msg string) {
	bad := func(format string, args ...any) ([]map[string]any, int, string, string) {
		return nil, http.StatusBadRequest, "INVALID_ARGUMENT", fmt.Sprintf(format, args...)
	}
	if !json.Valid(body) {
		return bad("Invalid JSON payload received. Unexpected token.")
	}
	req, why := object(body, "", writeRequestFields)
	if why != "" {
		return bad("%s", why)
	}
	var defaultLogName string
	if raw, ok := req["logName"]; ok && json.Unmarshal(raw, &defaultLogName) != nil {
		return bad("Invalid value at 'log_name' (TYPE_STRING)")
	}
	var defaultResource map[string]json.RawMessage
	if raw, ok := req["resource"]; ok {
		if defaultResource, why = object(raw, "resource", resourceFields); why != "" {
			return bad("%s", why)
		}
	}
	for _, k := range []string{"partialSuccess", "dryRun"} {
		var b bool
		if raw, ok := req[k]; ok && json.Unmarshal(raw, &b) != nil {
			return bad("Invalid value at '%s' (TYPE_BOOL)", k)
		}
	}
	var rawEntries []json.RawMessage
	if json.Unmarshal(req["entries"], &rawEntries) != nil || len(rawEntries) == 0 {
		return bad("Log entries must be provided: entries is required")
	}
	for i, raw := range rawEntries {
		at := fmt.Sprintf("entries[%d]", i)
		e, why := object(raw, at, logEntryFields)
		if why != "" {
			return bad("%s", why)
		}
		var logName string
		if raw, ok := e["logName"]; ok {
			if json.Unmarshal(raw, &logName) != nil {
				return bad("Invalid value at '%s.log_name' (TYPE_STRING)", at)
			}
		} else {
			logName = defaultLogName
		}
		m := logNamePattern.FindStringSubmatch(logName)
		if m == nil {
			return bad("%s.log_name: the log name must be projects/[PROJECT_ID]/logs/[LOG_ID] with [LOG_ID] URL-encoded: %q", at, logName)
		}
		logID, err := url.PathUnescape(m[3])
		if err != nil || len(logID) >= 512 || !logIDChars.MatchString(logID) {
			return bad("%s.log_name: [LOG_ID] must be less than 512 characters of letters, digits, /, _, - and . (URL-encoded)", at)
		}
		resource := defaultResource
		if raw, ok := e["resource"]; ok {
			if resource, why = object(raw, at+".resource", resourceFields); why != "" {
				return bad("%s", why)
			}
		}
		var rtype string
		if resource == nil || json.Unmarshal(resource["type"], &rtype) != nil || rtype == "" {
			return bad("%s.resource.type: a monitored resource type is required", at)
		}
		payloads := 0
		for _, p := range []string{"jsonPayload", "textPayload", "protoPayload"} {
			if _, ok := e[p]; ok {
				payloads++
			}
		}
		if payloads > 1 {
			return bad("Invalid JSON payload received. Multiple values for oneof 'payload' at '%s'", at)
		}
		if raw, ok := e["jsonPayload"]; ok {
			var obj map[string]any
			if json.Unmarshal(raw, &obj) != nil || obj == nil {
				return bad("Invalid value at '%s.json_payload' (type.googleapis.com/google.protobuf.Struct), expected an object", at)
			}
		}
		if raw, ok := e["textPayload"]; ok {
			var s string
			if json.Unmarshal(raw, &s) != nil {
				return bad("Invalid value at '%s.text_payload' (TYPE_STRING)", at)
			}
		}
		if raw, ok := e["severity"]; ok {
			var v any
			_ = json.Unmarshal(raw, &v)
			switch v := v.(type) {
			case string:
				if !severities[v] {
					return bad("Invalid value at '%s.severity' (type.googleapis.com/google.logging.type.LogSeverity), %q", at, v)
				}
			case float64:
				if !severityNumbers[v] {
					return bad("Invalid value at '%s.severity' (type.googleapis.com/google.logging.type.LogSeverity), %v", at, v)
				}
			default:
				return bad("Invalid value at '%s.severity' (type.googleapis.com/google.logging.type.LogSeverity)", at)
			}
		}
		if raw, ok := e["timestamp"]; ok {
			var s string
			if json.Unmarshal(raw, &s) != nil {
				return bad("Invalid value at '%s.timestamp' (type.googleapis.com/google.protobuf.Timestamp)", at)
			}
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return bad("Invalid value at '%s.timestamp' (type.googleapis.com/google.protobuf.Timestamp), Field 'timestamp', Invalid time format: %q", at, s)
			}
			if time.Until(t) > 24*time.Hour {
				return bad("Timestamp is over a day in the future")
			}
		}
		for _, k := range []string{"insertId", "trace", "spanId"} {
			var s string
			if raw, ok := e[k]; ok && json.Unmarshal(raw, &s) != nil {
				return bad("Invalid value at '%s.%s' (TYPE_STRING)", at, k)
			}
		}
		for _, k := range []string{"labels"} {
			var l map[string]string
			if raw, ok := e[k]; ok && json.Unmarshal(raw, &l) != nil {
				return bad("Invalid value at '%s.labels', expected a map of strings", at)
			}
		}
		if m[1] == "projects" && !g.projects[m[2]] {
			return nil, http.StatusForbidden, "PERMISSION_DENIED",
				fmt.Sprintf("Permission 'logging.logEntries.create' denied on resource (or it may not exist). (project %s)", m[2])
		}
		// The entry as stored: the request's defaults filled in, the log name as given.
		stored := map[string]any{}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&stored); err != nil {
			return bad("%s: %v", at, err)
		}
		for k := range stored {
			if camel := logEntryFields[k]; camel != k {
				stored[camel] = stored[k]
				delete(stored, k)
			}
		}
		stored["logName"] = logName
		if _, ok := stored["resource"]; !ok {
			r := map[string]any{}
			for k, v := range resource {
				r[k] = json.RawMessage(v)
			}
			stored["resource"] = r
		}
		entries = append(entries, stored)
	}
	return entries, 0, "", ""
}

// retryInfo is a google.rpc.RetryInfo detail.
func retryInfo(d time.Duration) map[string]any {
	return map[string]any{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": strconv.Itoa(int(d.Seconds())) + "s"}
}

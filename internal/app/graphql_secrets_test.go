package app_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite" // the raw read of the SQLite file ("sqlite" driver)

	"github.com/auditstream/auditstream/internal/app"
	"github.com/auditstream/auditstream/internal/poll"
)

// Tests of what the service keeps secret: destination secrets sealed at rest (the raw database,
// the data dir, the logs), and the audit events it records about its own configuration changes.

// secRandHex returns n random bytes in hex.
func secRandHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// secRSAKeys are PKCS#8 PEM RSA keys, generated once for the whole package run (2048-bit key
// generation is slow under -race).
var secRSAKeys = sync.OnceValue(func() []string {
	var out []string
	for range 4 {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			panic(err)
		}
		out = append(out, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
	}
	return out
})

// secPEMSlice is 40 characters of a PEM key's base64 body: a value that only a stored copy of
// the key (in clear, in PEM or JSON-escaped form) would contain.
func secPEMSlice(t *testing.T, p string) string {
	lines := strings.Split(p, "\n")
	require.Greater(t, len(lines), 5)
	require.GreaterOrEqual(t, len(lines[4]), 40)
	return lines[4][:40]
}

// secStart runs the service like startCfg, with its logs written to logs rather than the test
// log, so that the test can search them for secrets.
func secStart(t *testing.T, cfg app.Config, logs *lockedBuffer) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	banner := &lockedBuffer{}
	a, err := app.New(ctx, cfg, app.NewLogger(logs, cfg.LogLevel), banner)
	if err != nil {
		cancel()
		require.NoError(t, err)
	}
	s := &server{t: t, base: "http://" + a.Addr(), admin: cfg.AdminToken, cfg: cfg, banner: banner, stop: cancel, stopped: make(chan error, 1)}
	go func() { s.stopped <- a.Run(ctx) }()
	t.Cleanup(s.shutdown)
	return s
}

// secConfig is start's configuration, at debug log level and without the mutation rate limit.
func secConfig(t *testing.T, driver string) app.Config {
	cfg := app.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.AdminToken = adminToken
	cfg.LogLevel = "debug"
	if driver == "postgres" {
		cfg.DatabaseURL = freshPostgres(t)
	}
	noLimits(&cfg)
	return cfg
}

// secTotalEvents is the number of stored events (the instance API's X-Total).
func (s *server) secTotalEvents() int {
	s.t.Helper()
	status, body, h := s.do(http.MethodGet, "/api/v4/audit_events?per_page=1", s.admin, "", nil)
	require.Equal(s.t, http.StatusOK, status, string(body))
	n, err := strconv.Atoi(h.Get("X-Total"))
	require.NoError(s.t, err)
	return n
}

// secWaitEvents polls until at least want events are stored.
func (s *server) secWaitEvents(want int) {
	s.t.Helper()
	poll.Until(s.t, 30*time.Second, func() error {
		status, body, h := s.do(http.MethodGet, "/api/v4/audit_events?per_page=1", s.admin, "", nil)
		if status != http.StatusOK {
			return errors.New(string(body))
		}
		n, _ := strconv.Atoi(h.Get("X-Total"))
		if n < want {
			return fmt.Errorf("stored %d events, want %d", n, want)
		}
		return nil
	})
}

// secListEvents reads every event of an audit events list endpoint, page by page (newest first).
func (s *server) secListEvents(path, token string) []json.RawMessage {
	s.t.Helper()
	var out []json.RawMessage
	page := "1"
	for page != "" {
		status, body, h := s.do(http.MethodGet, path+"?per_page=100&page="+page, token, "", nil)
		require.Equal(s.t, http.StatusOK, status, string(body))
		var events []json.RawMessage
		require.NoError(s.t, json.Unmarshal(body, &events))
		out = append(out, events...)
		page = h.Get("X-Next-Page")
	}
	return out
}

// secGIDNumber is the number at the end of a global id.
func secGIDNumber(t *testing.T, gid string) int64 {
	i := strings.LastIndex(gid, "/")
	require.Positive(t, i, gid)
	n, err := strconv.ParseInt(gid[i+1:], 10, 64)
	require.NoError(t, err, gid)
	return n
}

// secDumpSQLite returns every column of every row of every table of the SQLite file, as text.
func secDumpSQLite(t *testing.T, path string) string {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	require.NoError(t, err)
	defer db.Close()
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
	require.NoError(t, err)
	var tables []string
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		tables = append(tables, n)
	}
	require.NoError(t, rows.Err())
	rows.Close()
	require.Contains(t, tables, "destinations")
	require.Contains(t, tables, "destination_headers")

	var b strings.Builder
	for _, table := range tables {
		rows, err := db.Query(`SELECT * FROM "` + strings.ReplaceAll(table, `"`, `""`) + `"`)
		require.NoError(t, err, table)
		cols, err := rows.Columns()
		require.NoError(t, err)
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			require.NoError(t, rows.Scan(ptrs...))
			b.WriteString(table)
			for i, v := range vals {
				b.WriteString(" | " + cols[i] + "=")
				switch v := v.(type) {
				case nil:
					b.WriteString("NULL")
				case []byte:
					b.Write(v)
				case string:
					b.WriteString(v)
				default:
					fmt.Fprint(&b, v)
				}
			}
			b.WriteByte('\n')
		}
		require.NoError(t, rows.Err(), table)
		rows.Close()
	}
	return b.String()
}

// secDumpPostgres returns every row of every table of the public schema as text: the row's
// text form, and each bytea column decoded (the text form shows bytea as hex, which would hide a
// secret stored in clear there).
func secDumpPostgres(t *testing.T, url string) string {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename`)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Contains(t, tables, "destinations")
	require.Contains(t, tables, "destination_headers")

	var b strings.Builder
	for _, table := range tables {
		ident := pgx.Identifier{"public", table}.Sanitize()
		rows, err := conn.Query(ctx, `SELECT t::text FROM `+ident+` t`)
		require.NoError(t, err, table)
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err, table)
		for _, l := range lines {
			b.WriteString(table + " | " + l + "\n")
		}
		rows, err = conn.Query(ctx, `SELECT column_name FROM information_schema.columns
			WHERE table_schema = 'public' AND table_name = $1 AND data_type = 'bytea' ORDER BY ordinal_position`, table)
		require.NoError(t, err)
		byteaCols, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		for _, c := range byteaCols {
			rows, err := conn.Query(ctx, `SELECT `+pgx.Identifier{c}.Sanitize()+` FROM `+ident)
			require.NoError(t, err)
			vals, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
			require.NoError(t, err)
			for _, v := range vals {
				b.WriteString(table + "." + c + " | ")
				b.Write(v)
				b.WriteByte('\n')
			}
		}
	}
	return b.String()
}

// secDataDirFiles returns the content of every file of the data dir but the key file: the
// embedded log, and for SQLite the database with its WAL.
func secDataDirFiles(t *testing.T, dir string) map[string][]byte {
	out := map[string][]byte{}
	require.NoError(t, filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) { // removed while walking (a temporary file)
			return nil
		}
		if err != nil || d.IsDir() || d.Name() == "secret.key" {
			return err
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) { // a temporary file that went away
			return nil
		}
		out[path] = b
		return err
	}))
	return out
}

// secNotIn fails when any secret occurs in text; what names the text.
func secNotIn(t *testing.T, what, text string, secrets map[string]string) {
	t.Helper()
	for name, v := range secrets {
		require.NotEmpty(t, v, name)
		if i := strings.Index(text, v); i >= 0 {
			lo, hi := max(0, i-200), min(len(text), i+len(v)+200)
			t.Errorf("%s holds the secret %s in clear, near: %q", what, name, text[lo:hi])
		}
	}
}

const secGroupDestinationsQuery = `query { group(fullPath: "org") {
  externalAuditEventStreamingDestinations { nodes { id name category config secretToken signingSecret } }
  externalAuditEventDestinations { nodes { id verificationToken headers { nodes { id key value active } } } }
} }`

// secReadBack reads the org's destinations as owner: by category, and the legacy http view.
func (s *server) secReadBack(owner string) (map[string]map[string]any, map[string]any) {
	s.t.Helper()
	data := s.gqlOK(owner, secGroupDestinationsQuery, nil)
	byCategory := map[string]map[string]any{}
	nodes, _ := dig(data, "group", "externalAuditEventStreamingDestinations", "nodes").([]any)
	for _, n := range nodes {
		m := n.(map[string]any)
		byCategory[m["category"].(string)] = m
	}
	legacy, _ := dig(data, "group", "externalAuditEventDestinations", "nodes", "0").(map[string]any)
	return byCategory, legacy
}

func TestDestinationSecretsEncryptedAtRest(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		logs := &lockedBuffer{}
		s := secStart(t, secConfig(t, driver), logs)
		w := newWorld(t, s)
		owner := w.tokens["owner"]
		base := s.secTotalEvents()

		keys := secRSAKeys()
		gcpPEM, gcsPEM := keys[0], keys[1]
		httpToken := "tok-" + secRandHex(8)
		headerValue := "hdr-" + secRandHex(12)
		legacyHeaderValue := "legacy-hdr-" + secRandHex(12)
		awsSecret := "aws" + secRandHex(18) + "x" // 40 characters
		require.Len(t, awsSecret, 40)
		u := secRandHex(16)
		hecToken := u[:8] + "-" + u[8:12] + "-" + u[12:16] + "-" + u[16:20] + "-" + u[20:]
		keyFileBytes, err := json.Marshal(map[string]string{"type": "service_account", "project_id": "p",
			"private_key_id": secRandHex(20), "private_key": gcsPEM, "client_email": "sa@p.iam.gserviceaccount.com"})
		require.NoError(t, err)
		keyFile := string(keyFileBytes)

		create := func(category string, config map[string]any, secret string) map[string]any {
			t.Helper()
			q := `mutation($c: String!, $cfg: JSON!, $s: String) { groupAuditEventStreamingDestinationsCreate(input: {groupPath: "org", category: $c, config: $cfg, secretToken: $s}) {
				errors externalAuditEventDestination { id category config secretToken signingSecret } } }`
			p := s.mutate(owner, "groupAuditEventStreamingDestinationsCreate", q, map[string]any{"c": category, "cfg": config, "s": secret})
			d, ok := p["externalAuditEventDestination"].(map[string]any)
			require.True(t, ok, "%v", p)
			require.Equal(t, category, d["category"])
			if category == "http" {
				require.Equal(t, secret, d["secretToken"], "the owner sees the verification token")
			} else {
				require.Equal(t, "", d["secretToken"], "%s: the credential is never shown", category)
				require.Nil(t, d["signingSecret"], category)
			}
			return d
		}
		httpDest := create("http", map[string]any{"url": "https://receiver.example/h",
			"headers": map[string]any{"Authorization": map[string]any{"value": "Bearer " + headerValue, "active": true}}}, httpToken)
		signingSecret, _ := httpDest["signingSecret"].(string)
		require.True(t, strings.HasPrefix(signingSecret, "whsec_"), signingSecret)
		create("aws", map[string]any{"accessKeyXid": "AKIAIOSFODNN7EXAMPLE", "bucketName": "audit-bucket", "awsRegion": "us-east-1"}, awsSecret)
		create("gcp", map[string]any{"googleProjectIdName": "audit-project", "clientEmail": "sa@audit-project.iam.gserviceaccount.com", "logIdName": "audit-log"}, gcpPEM)
		create("gcs", map[string]any{"bucketName": "audit-bucket-gcs"}, keyFile)
		create("splunk", map[string]any{"url": "https://splunk.example:8088"}, hecToken)
		httpID := secGIDNumber(t, httpDest["id"].(string))
		s.mutate(owner, "auditEventsStreamingHeadersCreate",
			`mutation($d: AuditEventsExternalAuditEventDestinationID!, $v: String!) { auditEventsStreamingHeadersCreate(input: {destinationId: $d, key: "X-Legacy-Secret", value: $v}) { errors header { id key value } } }`,
			map[string]any{"d": fmt.Sprintf("gid://gitlab/AuditEvents::ExternalAuditEventDestination/%d", httpID), "v": legacyHeaderValue})

		// The API still gives the owner the http secrets: sealed, not lost.
		checkReadBack := func(s *server) {
			t.Helper()
			byCategory, legacy := s.secReadBack(owner)
			require.Len(t, byCategory, 5)
			h := byCategory["http"]
			require.Equal(t, httpToken, h["secretToken"])
			require.Equal(t, signingSecret, h["signingSecret"])
			require.Equal(t, "Bearer "+headerValue, dig(h, "config", "headers", "Authorization", "value"))
			require.Equal(t, legacyHeaderValue, dig(h, "config", "headers", "X-Legacy-Secret", "value"))
			for _, c := range []string{"aws", "gcp", "gcs", "splunk"} {
				require.Equal(t, "", byCategory[c]["secretToken"], c)
				require.Nil(t, byCategory[c]["signingSecret"], c)
			}
			require.Equal(t, httpToken, legacy["verificationToken"])
			values := map[string]any{}
			for _, n := range dig(legacy, "headers", "nodes").([]any) {
				values[n.(map[string]any)["key"].(string)] = n.(map[string]any)["value"]
			}
			require.Equal(t, map[string]any{"Authorization": "Bearer " + headerValue, "X-Legacy-Secret": legacyHeaderValue}, values)
		}
		checkReadBack(s)

		secrets := map[string]string{
			"http secretToken (verification token)": httpToken,
			"custom header value":                   headerValue,
			"legacy header value":                   legacyHeaderValue,
			"aws secret access key":                 awsSecret,
			"gcp private key (PEM body)":            secPEMSlice(t, gcpPEM),
			"gcs key file private key (PEM body)":   secPEMSlice(t, gcsPEM),
			"splunk HEC token":                      hecToken,
			"signing secret":                        signingSecret,
			"signing secret (base64 part)":          strings.TrimPrefix(signingSecret, "whsec_"),
		}
		nonSecrets := []string{"https://receiver.example/h", "audit-bucket", "audit-bucket-gcs", "https://splunk.example:8088", "audit-project", "X-Legacy-Secret", "Authorization"}

		// The six self-audit events are archived, so the dump covers the events table too.
		s.secWaitEvents(base + 6)

		var dump string
		if driver == "sqlite" {
			dump = secDumpSQLite(t, filepath.Join(s.cfg.DataDir, "auditstream.db"))
			info, err := os.Stat(filepath.Join(s.cfg.DataDir, "secret.key"))
			require.NoError(t, err, "the key file is created in the data dir")
			require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
			require.EqualValues(t, 32, info.Size())
		} else {
			dump = secDumpPostgres(t, s.cfg.DatabaseURL)
			_, err := os.Stat(filepath.Join(s.cfg.DataDir, "secret.key"))
			require.NoError(t, err, "with PostgreSQL too the key file is in the data dir")
		}
		for _, v := range nonSecrets {
			require.Contains(t, dump, v, "the dump shows the non-secret config (so it would show a secret stored in clear)")
		}
		require.Contains(t, dump, "created_group_audit_event_streaming_destination", "the dump covers the self-audit events")
		secNotIn(t, driver+" database", dump, secrets)
		require.Contains(t, dump, "v1:", "sealed values are in the dump")

		// Nor does any file of the data dir hold them: the embedded log, SQLite's file and WAL.
		files := secDataDirFiles(t, s.cfg.DataDir)
		var all strings.Builder
		for path, b := range files {
			secNotIn(t, path, string(b), secrets)
			all.Write(b)
		}
		require.Contains(t, all.String(), "created_group_audit_event_streaming_destination", "the embedded log is among the files read")

		// A restart on the same data dir and database reads the secrets back unchanged.
		s.shutdown()
		s2 := secStart(t, s.cfg, logs)
		checkReadBack(s2)
		secNotIn(t, "the service's logs", logs.String(), secrets)
		s2.shutdown()

		if driver != "sqlite" {
			t.Log("a different key is tried on a copy of a SQLite data dir only")
			return
		}
		// A different key, on a copy of the data dir: the service starts, and reading the
		// destinations fails with an error, no crash, no secret.
		keyFile32, err := os.ReadFile(filepath.Join(s.cfg.DataDir, "secret.key"))
		require.NoError(t, err)
		copyDir := filepath.Join(t.TempDir(), "copy")
		require.NoError(t, os.CopyFS(copyDir, os.DirFS(s.cfg.DataDir)))
		// CopyFS writes 0644 files, and the trail's key file is refused when others may read it.
		require.NoError(t, os.Chmod(filepath.Join(copyDir, "trail.key"), 0o600))
		otherKey := make([]byte, 32)
		_, _ = rand.Read(otherKey)
		cfg := s.cfg
		cfg.DataDir = copyDir
		cfg.SecretKey = base64.StdEncoding.EncodeToString(otherKey)
		s3 := secStart(t, cfg, logs)

		r := s3.gql(owner, secGroupDestinationsQuery, nil)
		t.Logf("listing with another key: HTTP %d, %s", r.Status, r.Raw)
		require.Equal(t, http.StatusOK, r.Status)
		require.NotEmpty(t, r.Errors, "listing fails: %s", r.Raw)
		require.Nil(t, dig(r.Data, "group", "externalAuditEventStreamingDestinations"))
		require.Equal(t, "secret_key_mismatch", r.Errors[0].Extensions["code"], "the error names the cause: %s", r.Raw)
		secNotIn(t, "the response with another key", r.Raw, secrets)
		// The service keeps serving: other requests work.
		me := s3.gqlOK(owner, `{ currentUser { username } }`, nil)
		require.Equal(t, "owner", dig(me, "currentUser", "username"))
		status, _, _ := s3.do(http.MethodGet, "/-/healthy", "", "", nil)
		require.Equal(t, http.StatusOK, status)
		// A destination whose secrets cannot be opened can still be deleted.
		del := s3.gql(owner, `mutation($id: AuditEventsGroupExternalStreamingDestinationID!) { groupAuditEventStreamingDestinationsDelete(input: {id: $id}) { errors } }`,
			map[string]any{"id": httpDest["id"]})
		t.Logf("deleting with another key: HTTP %d, %s", del.Status, del.Raw)
		secNotIn(t, "the delete response with another key", del.Raw, secrets)
		s3.shutdown()

		// The documented rotation: the new key first, the old one after it, opens everything.
		cfg.SecretKey = base64.StdEncoding.EncodeToString(otherKey) + "," + base64.StdEncoding.EncodeToString(keyFile32)
		s4 := secStart(t, cfg, logs)
		require.Empty(t, del.Errors, del.Raw)
		require.Equal(t, []any{}, dig(del.Data, "groupAuditEventStreamingDestinationsDelete", "errors"), del.Raw)
		left := s4.gqlOK(owner, `{ group(fullPath: "org") { externalAuditEventStreamingDestinations { nodes { id } } } }`, nil)
		require.NotContains(t, fmt.Sprint(left), httpDest["id"], "the http destination is gone")
		secNotIn(t, "the service's logs", logs.String(), secrets)
	})
}

// secWant is one self-audit event the test expects.
type secWant struct {
	eventType  string
	author     int64
	instance   bool   // instance scope, else group org
	targetType string // GitLab's class
	targetID   int64
	name       string   // target_details: the destination's name
	message    []string // parts of details.custom_message
}

func TestSelfAuditEventsForDestinationChanges(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := start(t, driver, noLimits)
		w := newWorld(t, s)
		owner, maint, dev := w.tokens["owner"], w.tokens["maint"], w.tokens["dev"]
		me := s.gqlOK(s.admin, `{ currentUser { id } }`, nil)
		adminID := secGIDNumber(t, dig(me, "currentUser", "id").(string))
		base := s.secTotalEvents()

		keys := secRSAKeys()
		secrets := map[string]string{
			"token A":                 "tokA-" + secRandHex(10),
			"token B":                 "tokB-" + secRandHex(10),
			"header value A":          "hdrA-" + secRandHex(10),
			"header value B":          "hdrB-" + secRandHex(10),
			"instance token":          "tokI-" + secRandHex(10),
			"instance token 2":        "tokJ-" + secRandHex(10),
			"instance header value":   "hdrI-" + secRandHex(10),
			"legacy token":            "vt-" + secRandHex(8),
			"legacy header value A":   "lhA-" + secRandHex(10),
			"legacy header value B":   "lhB-" + secRandHex(10),
			"aws secret A":            "awsA" + secRandHex(18),
			"aws secret B":            "awsB" + secRandHex(18),
			"refused maintainer tok":  "tokM-" + secRandHex(10),
			"refused short token":     "vs-" + secRandHex(4),
			"refused legacy header":   "lhM-" + secRandHex(10),
			"refused aws secret part": "refusedaws" + secRandHex(8),
		}
		sec := func(name string) string { v, ok := secrets[name]; require.True(t, ok, name); return v }
		gcpA, gcpB := keys[2], keys[3]
		pemSecrets := map[string]string{"gcp key A": secPEMSlice(t, gcpA), "gcp key B": secPEMSlice(t, gcpB)}

		var want []secWant
		expect := func(e secWant) { want = append(want, e) }
		// refused runs a change that must be refused (payload errors or a top-level error).
		refused := func(token, field, query string, vars map[string]any) {
			t.Helper()
			r := s.gql(token, query, vars)
			require.Equal(t, http.StatusOK, r.Status, r.Raw)
			payloadErrs, _ := dig(r.Data, field, "errors").([]any)
			require.True(t, len(r.Errors) > 0 || len(payloadErrs) > 0, "refused: %s", r.Raw)
			secNotIn(t, "a refusal", r.Raw, secrets)
		}
		const (
			groupDest    = "AuditEvents::Group::ExternalStreamingDestination"
			instanceDest = "AuditEvents::Instance::ExternalStreamingDestination"
			legacyHTTP   = "AuditEvents::ExternalAuditEventDestination"
			legacyGCP    = "AuditEvents::GoogleCloudLoggingConfiguration"
			legacyAWS    = "AuditEvents::AmazonS3Configuration"
		)
		org := w.owner.ID

		// --- Unified API, group org, as owner ---------------------------------------------------
		createQ := `mutation($c: String!, $cfg: JSON!, $s: String, $n: String) { groupAuditEventStreamingDestinationsCreate(input: {groupPath: "org", category: $c, config: $cfg, secretToken: $s, name: $n}) {
			errors externalAuditEventDestination { id signingSecret } } }`
		hdrCfg := func(url, value string) map[string]any {
			return map[string]any{"url": url, "headers": map[string]any{"X-Secret": map[string]any{"value": value, "active": true}}}
		}
		p := s.mutate(owner, "groupAuditEventStreamingDestinationsCreate", createQ,
			map[string]any{"c": "http", "cfg": hdrCfg("https://receiver.example/a", sec("header value A")), "s": sec("token A"), "n": "self-audit-http"})
		gid := dig(p, "externalAuditEventDestination", "id").(string)
		gnum := secGIDNumber(t, gid)
		signing1 := dig(p, "externalAuditEventDestination", "signingSecret").(string)
		secrets["signing secret 1"] = signing1
		expect(secWant{"created_group_audit_event_streaming_destination", org, false, groupDest, gnum, "self-audit-http", []string{`Created http streaming destination "self-audit-http"`}})

		refused(owner, "groupAuditEventStreamingDestinationsCreate", createQ, map[string]any{"c": "http", "cfg": map[string]any{"url": "ftp://receiver.example/"}, "s": sec("token A"), "n": "refused-invalid"})
		refused(owner, "groupAuditEventStreamingDestinationsCreate", createQ, map[string]any{"c": "http", "cfg": httpConfig("https://receiver.example/dup"), "n": "self-audit-http"})
		refused(maint, "groupAuditEventStreamingDestinationsCreate", createQ, map[string]any{"c": "http", "cfg": httpConfig("https://receiver.example/m"), "s": sec("refused maintainer tok"), "n": "refused-maintainer"})

		s.mutate(owner, "groupAuditEventStreamingDestinationsUpdate",
			`mutation($id: AuditEventsGroupExternalStreamingDestinationID!, $cfg: JSON, $s: String, $n: String) { groupAuditEventStreamingDestinationsUpdate(input: {id: $id, config: $cfg, secretToken: $s, name: $n}) { errors externalAuditEventDestination { id } } }`,
			map[string]any{"id": gid, "cfg": hdrCfg("https://receiver.example/b", sec("header value B")), "s": sec("token B"), "n": "self-audit-http-2"})
		expect(secWant{"updated_group_audit_event_streaming_destination", org, false, groupDest, gnum, "self-audit-http-2", []string{
			`Updated streaming destination "self-audit-http"`, "https://receiver.example/b", "headers changed", `name from "self-audit-http" to "self-audit-http-2"`, "secret token changed"}})

		refused(maint, "groupAuditEventStreamingDestinationsDelete", `mutation($id: AuditEventsGroupExternalStreamingDestinationID!) { groupAuditEventStreamingDestinationsDelete(input: {id: $id}) { errors } }`, map[string]any{"id": gid})

		eventsAddQ := `mutation($id: AuditEventsGroupExternalStreamingDestinationID!, $f: [String!]!) { auditEventsGroupDestinationEventsAdd(input: {destinationId: $id, eventTypeFilters: $f}) { errors eventTypeFilters } }`
		s.mutate(owner, "auditEventsGroupDestinationEventsAdd", eventsAddQ, map[string]any{"id": gid, "f": []string{"add_gpg_key", "add_ssh_key"}})
		expect(secWant{"event_type_filters_created", org, false, groupDest, gnum, "self-audit-http-2", []string{"Created event type filters: add_gpg_key, add_ssh_key"}})
		refused(owner, "auditEventsGroupDestinationEventsAdd", eventsAddQ, map[string]any{"id": gid, "f": []string{"no_such_event_type"}})

		eventsDelQ := `mutation($id: AuditEventsGroupExternalStreamingDestinationID!, $f: [String!]!) { auditEventsGroupDestinationEventsDelete(input: {destinationId: $id, eventTypeFilters: $f}) { errors } }`
		s.mutate(owner, "auditEventsGroupDestinationEventsDelete", eventsDelQ, map[string]any{"id": gid, "f": []string{"add_gpg_key"}})
		expect(secWant{"event_type_filters_deleted", org, false, groupDest, gnum, "self-audit-http-2", []string{"Deleted event type filters: add_gpg_key"}})
		refused(owner, "auditEventsGroupDestinationEventsDelete", eventsDelQ, map[string]any{"id": gid, "f": []string{"add_gpg_key"}})

		p = s.mutate(owner, "auditEventsGroupDestinationNamespaceFilterCreate",
			`mutation($id: AuditEventsGroupExternalStreamingDestinationID!) { auditEventsGroupDestinationNamespaceFilterCreate(input: {destinationId: $id, namespacePath: "org/sub"}) { errors namespaceFilter { id } } }`,
			map[string]any{"id": gid})
		nsFilter := dig(p, "namespaceFilter", "id").(string)
		expect(secWant{"created_group_namespace_filter", org, false, groupDest, gnum, "self-audit-http-2", []string{`Created namespace filter for "org/sub"`}})
		refused(owner, "auditEventsGroupDestinationNamespaceFilterCreate",
			`mutation($id: AuditEventsGroupExternalStreamingDestinationID!) { auditEventsGroupDestinationNamespaceFilterCreate(input: {destinationId: $id, namespacePath: "other"}) { errors namespaceFilter { id } } }`,
			map[string]any{"id": gid}) // another top-level group
		s.mutate(owner, "auditEventsGroupDestinationNamespaceFilterDelete",
			`mutation($f: AuditEventsGroupNamespaceFilterID!) { auditEventsGroupDestinationNamespaceFilterDelete(input: {namespaceFilterId: $f}) { errors } }`, map[string]any{"f": nsFilter})
		expect(secWant{"deleted_group_namespace_filter", org, false, groupDest, gnum, "self-audit-http-2", []string{`Deleted namespace filter for "org/sub"`}})

		s.mutate(owner, "auditEventStreamingDestinationFiltersSet",
			`mutation($id: ID!) { auditEventStreamingDestinationFiltersSet(input: {destinationId: $id, eventTypeFilters: ["add_ssh_key", "add_gpg_key"], denyEventTypeFilters: []}) { errors eventTypeFilters } }`,
			map[string]any{"id": gid})
		expect(secWant{"updated_group_audit_event_streaming_destination", org, false, groupDest, gnum, "self-audit-http-2", []string{
			`Updated the filters of streaming destination "self-audit-http-2"`, "event type filters set to [add_ssh_key, add_gpg_key]"}})

		p = s.mutate(owner, "auditEventStreamingDestinationSigningSecretRotate",
			`mutation($id: ID!) { auditEventStreamingDestinationSigningSecretRotate(input: {destinationId: $id, gracePeriodSeconds: 60}) { errors signingSecret previousSigningSecretExpiresAt } }`,
			map[string]any{"id": gid})
		signing2, _ := p["signingSecret"].(string)
		require.True(t, strings.HasPrefix(signing2, "whsec_") && signing2 != signing1, signing2)
		require.NotNil(t, p["previousSigningSecretExpiresAt"])
		secrets["signing secret 2"] = signing2
		expect(secWant{"updated_group_audit_event_streaming_destination", org, false, groupDest, gnum, "self-audit-http-2", []string{`Rotated the signing secret of streaming destination "self-audit-http-2"`}})

		s.mutate(owner, "groupAuditEventStreamingDestinationsDelete",
			`mutation($id: AuditEventsGroupExternalStreamingDestinationID!) { groupAuditEventStreamingDestinationsDelete(input: {id: $id}) { errors } }`, map[string]any{"id": gid})
		expect(secWant{"deleted_group_audit_event_streaming_destination", org, false, groupDest, gnum, "self-audit-http-2", []string{`Deleted http streaming destination "self-audit-http-2"`}})

		// --- Unified API, instance, as admin ------------------------------------------------
		p = s.mutate(s.admin, "instanceAuditEventStreamingDestinationsCreate",
			`mutation($cfg: JSON!, $s: String) { instanceAuditEventStreamingDestinationsCreate(input: {category: "http", config: $cfg, secretToken: $s, name: "self-audit-instance"}) { errors externalAuditEventDestination { id signingSecret } } }`,
			map[string]any{"cfg": hdrCfg("https://receiver.example/i", sec("instance header value")), "s": sec("instance token")})
		iid := dig(p, "externalAuditEventDestination", "id").(string)
		inum := secGIDNumber(t, iid)
		secrets["instance signing secret"] = dig(p, "externalAuditEventDestination", "signingSecret").(string)
		expect(secWant{"created_instance_audit_event_streaming_destination", adminID, true, instanceDest, inum, "self-audit-instance", []string{`Created http streaming destination "self-audit-instance"`}})
		refused(owner, "instanceAuditEventStreamingDestinationsCreate",
			`mutation($cfg: JSON!, $s: String) { instanceAuditEventStreamingDestinationsCreate(input: {category: "http", config: $cfg, secretToken: $s}) { errors } }`,
			map[string]any{"cfg": httpConfig("https://receiver.example/o"), "s": sec("refused maintainer tok")}) // a group owner is no admin

		s.mutate(s.admin, "instanceAuditEventStreamingDestinationsUpdate",
			`mutation($id: AuditEventsInstanceExternalStreamingDestinationID!, $s: String) { instanceAuditEventStreamingDestinationsUpdate(input: {id: $id, secretToken: $s, name: "self-audit-instance-2"}) { errors externalAuditEventDestination { id } } }`,
			map[string]any{"id": iid, "s": sec("instance token 2")})
		expect(secWant{"updated_instance_audit_event_streaming_destination", adminID, true, instanceDest, inum, "self-audit-instance-2", []string{
			`Updated streaming destination "self-audit-instance"`, `name from "self-audit-instance" to "self-audit-instance-2"`, "secret token changed"}})

		p = s.mutate(s.admin, "auditEventsInstanceDestinationNamespaceFilterCreate",
			`mutation($id: AuditEventsInstanceExternalStreamingDestinationID!) { auditEventsInstanceDestinationNamespaceFilterCreate(input: {destinationId: $id, namespacePath: "other"}) { errors namespaceFilter { id } } }`,
			map[string]any{"id": iid})
		insFilter := dig(p, "namespaceFilter", "id").(string)
		expect(secWant{"created_instance_namespace_filter", adminID, true, instanceDest, inum, "self-audit-instance-2", []string{`Created namespace filter for "other"`}})
		s.mutate(s.admin, "auditEventsInstanceDestinationNamespaceFilterDelete",
			`mutation($f: AuditEventsInstanceNamespaceFilterID!) { auditEventsInstanceDestinationNamespaceFilterDelete(input: {namespaceFilterId: $f}) { errors } }`, map[string]any{"f": insFilter})
		expect(secWant{"deleted_instance_namespace_filter", adminID, true, instanceDest, inum, "self-audit-instance-2", []string{`Deleted namespace filter for "other"`}})

		s.mutate(s.admin, "instanceAuditEventStreamingDestinationsDelete",
			`mutation($id: AuditEventsInstanceExternalStreamingDestinationID!) { instanceAuditEventStreamingDestinationsDelete(input: {id: $id}) { errors } }`, map[string]any{"id": iid})
		expect(secWant{"deleted_instance_audit_event_streaming_destination", adminID, true, instanceDest, inum, "self-audit-instance-2", []string{`Deleted http streaming destination "self-audit-instance-2"`}})

		// --- Legacy HTTP API, group org, as owner -------------------------------------------
		legacyCreateQ := `mutation($v: String) { externalAuditEventDestinationCreate(input: {destinationUrl: "https://legacy.example/h", groupPath: "org", name: "legacy-http", verificationToken: $v}) {
			errors externalAuditEventDestination { id verificationToken } } }`
		p = s.mutate(owner, "externalAuditEventDestinationCreate", legacyCreateQ, map[string]any{"v": sec("legacy token")})
		lid := dig(p, "externalAuditEventDestination", "id").(string)
		require.Equal(t, sec("legacy token"), dig(p, "externalAuditEventDestination", "verificationToken"))
		lnum := secGIDNumber(t, lid)
		expect(secWant{"create_event_streaming_destination", org, false, legacyHTTP, lnum, "legacy-http", []string{`Created http streaming destination "legacy-http"`}})
		refused(owner, "externalAuditEventDestinationCreate",
			`mutation($v: String) { externalAuditEventDestinationCreate(input: {destinationUrl: "https://legacy.example/short", groupPath: "org", name: "refused-short", verificationToken: $v}) { errors } }`,
			map[string]any{"v": sec("refused short token")})
		refused(owner, "externalAuditEventDestinationCreate", legacyCreateQ, map[string]any{"v": sec("legacy token")}) // the same URL and name again

		s.mutate(owner, "externalAuditEventDestinationUpdate",
			`mutation($id: AuditEventsExternalAuditEventDestinationID!) { externalAuditEventDestinationUpdate(input: {id: $id, destinationUrl: "https://legacy.example/h2", name: "legacy-http-2"}) { errors externalAuditEventDestination { id destinationUrl } } }`,
			map[string]any{"id": lid})
		expect(secWant{"update_event_streaming_destination", org, false, legacyHTTP, lnum, "legacy-http-2", []string{
			`Updated streaming destination "legacy-http"`, "https://legacy.example/h2", `name from "legacy-http" to "legacy-http-2"`}})

		headerCreateQ := `mutation($id: AuditEventsExternalAuditEventDestinationID!, $v: String!) { auditEventsStreamingHeadersCreate(input: {destinationId: $id, key: "X-Legacy", value: $v}) { errors header { id key value } } }`
		p = s.mutate(owner, "auditEventsStreamingHeadersCreate", headerCreateQ, map[string]any{"id": lid, "v": sec("legacy header value A")})
		hid := dig(p, "header", "id").(string)
		require.Equal(t, sec("legacy header value A"), dig(p, "header", "value"))
		expect(secWant{"audit_events_streaming_headers_create", org, false, legacyHTTP, lnum, "legacy-http-2", []string{"Created custom HTTP header with key X-Legacy"}})
		refused(dev, "auditEventsStreamingHeadersCreate", headerCreateQ, map[string]any{"id": lid, "v": sec("refused legacy header")})
		refused(owner, "auditEventsStreamingHeadersCreate", headerCreateQ, map[string]any{"id": lid, "v": sec("refused legacy header")}) // the key is taken

		s.mutate(owner, "auditEventsStreamingHeadersUpdate",
			`mutation($h: AuditEventsStreamingHeaderID!, $v: String) { auditEventsStreamingHeadersUpdate(input: {headerId: $h, value: $v}) { errors header { id value } } }`,
			map[string]any{"h": hid, "v": sec("legacy header value B")})
		expect(secWant{"audit_events_streaming_headers_update", org, false, legacyHTTP, lnum, "legacy-http-2", []string{"Updated custom HTTP header X-Legacy", "value changed"}})
		s.mutate(owner, "auditEventsStreamingHeadersDestroy",
			`mutation($h: AuditEventsStreamingHeaderID!) { auditEventsStreamingHeadersDestroy(input: {headerId: $h}) { errors } }`, map[string]any{"h": hid})
		expect(secWant{"audit_events_streaming_headers_destroy", org, false, legacyHTTP, lnum, "legacy-http-2", []string{"Destroyed custom HTTP header with key X-Legacy"}})

		p = s.mutate(owner, "auditEventsStreamingHttpNamespaceFiltersAdd",
			`mutation($id: AuditEventsExternalAuditEventDestinationID!) { auditEventsStreamingHttpNamespaceFiltersAdd(input: {destinationId: $id, groupPath: "org/sub"}) { errors namespaceFilter { id } } }`,
			map[string]any{"id": lid})
		hnf := dig(p, "namespaceFilter", "id").(string)
		expect(secWant{"create_http_namespace_filter", org, false, legacyHTTP, lnum, "legacy-http-2", []string{`Created namespace filter for "org/sub"`}})
		refused(owner, "auditEventsStreamingHttpNamespaceFiltersAdd",
			`mutation($id: AuditEventsExternalAuditEventDestinationID!) { auditEventsStreamingHttpNamespaceFiltersAdd(input: {destinationId: $id, projectPath: "org/sub/app"}) { errors namespaceFilter { id } } }`,
			map[string]any{"id": lid}) // one filter per legacy destination
		s.mutate(owner, "auditEventsStreamingHttpNamespaceFiltersDelete",
			`mutation($f: AuditEventsStreamingHTTPNamespaceFilterID!) { auditEventsStreamingHttpNamespaceFiltersDelete(input: {namespaceFilterId: $f}) { errors } }`, map[string]any{"f": hnf})
		expect(secWant{"delete_http_namespace_filter", org, false, legacyHTTP, lnum, "legacy-http-2", []string{`Deleted namespace filter for "org/sub"`}})

		s.mutate(owner, "externalAuditEventDestinationDestroy",
			`mutation($id: AuditEventsExternalAuditEventDestinationID!) { externalAuditEventDestinationDestroy(input: {id: $id}) { errors } }`, map[string]any{"id": lid})
		expect(secWant{"destroy_event_streaming_destination", org, false, legacyHTTP, lnum, "legacy-http-2", []string{`Deleted http streaming destination "legacy-http-2"`}})

		// --- Legacy Google Cloud Logging, group org, as owner -------------------------------
		p = s.mutate(owner, "googleCloudLoggingConfigurationCreate",
			`mutation($k: String!) { googleCloudLoggingConfigurationCreate(input: {groupPath: "org", googleProjectIdName: "audit-project", clientEmail: "sa@audit-project.iam.gserviceaccount.com", privateKey: $k, name: "legacy-gcp"}) { errors googleCloudLoggingConfiguration { id } } }`,
			map[string]any{"k": gcpA})
		gcpID := dig(p, "googleCloudLoggingConfiguration", "id").(string)
		gcpNum := secGIDNumber(t, gcpID)
		expect(secWant{"google_cloud_logging_configuration_created", org, false, legacyGCP, gcpNum, "legacy-gcp", []string{`Created gcp streaming destination "legacy-gcp"`}})
		refused(owner, "googleCloudLoggingConfigurationCreate",
			`mutation($k: String!) { googleCloudLoggingConfigurationCreate(input: {groupPath: "org", googleProjectIdName: "audit-project", clientEmail: "sa@audit-project.iam.gserviceaccount.com", privateKey: $k, name: "refused-gcp"}) { errors } }`,
			map[string]any{"k": "-----BEGIN PRIVATE KEY-----\n" + sec("refused aws secret part") + "\n-----END PRIVATE KEY-----\n"}) // not a key
		s.mutate(owner, "googleCloudLoggingConfigurationUpdate",
			`mutation($id: AuditEventsGoogleCloudLoggingConfigurationID!, $k: String) { googleCloudLoggingConfigurationUpdate(input: {id: $id, privateKey: $k, logIdName: "audit-log-2"}) { errors googleCloudLoggingConfiguration { id logIdName } } }`,
			map[string]any{"id": gcpID, "k": gcpB})
		expect(secWant{"google_cloud_logging_configuration_updated", org, false, legacyGCP, gcpNum, "legacy-gcp", []string{
			`Updated streaming destination "legacy-gcp"`, "audit-log-2", "secret token changed"}})
		s.mutate(owner, "googleCloudLoggingConfigurationDestroy",
			`mutation($id: AuditEventsGoogleCloudLoggingConfigurationID!) { googleCloudLoggingConfigurationDestroy(input: {id: $id}) { errors } }`, map[string]any{"id": gcpID})
		expect(secWant{"google_cloud_logging_configuration_deleted", org, false, legacyGCP, gcpNum, "legacy-gcp", []string{`Deleted gcp streaming destination "legacy-gcp"`}})

		// --- Legacy Amazon S3, group org, as owner ------------------------------------------
		p = s.mutate(owner, "auditEventsAmazonS3ConfigurationCreate",
			`mutation($k: String!) { auditEventsAmazonS3ConfigurationCreate(input: {groupPath: "org", accessKeyXid: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: $k, bucketName: "legacy-bucket", awsRegion: "us-east-1", name: "legacy-aws"}) { errors amazonS3Configuration { id } } }`,
			map[string]any{"k": sec("aws secret A")})
		awsID := dig(p, "amazonS3Configuration", "id").(string)
		awsNum := secGIDNumber(t, awsID)
		expect(secWant{"amazon_s3_configuration_created", org, false, legacyAWS, awsNum, "legacy-aws", []string{`Created aws streaming destination "legacy-aws"`}})
		awsUpdateQ := `mutation($id: AuditEventsAmazonS3ConfigurationID!, $k: String, $b: String) { auditEventsAmazonS3ConfigurationUpdate(input: {id: $id, secretAccessKey: $k, bucketName: $b}) { errors amazonS3Configuration { id bucketName } } }`
		refused(owner, "auditEventsAmazonS3ConfigurationUpdate", awsUpdateQ, map[string]any{"id": awsID, "k": sec("refused aws secret part") + " with spaces"})
		refused(maint, "auditEventsAmazonS3ConfigurationUpdate", awsUpdateQ, map[string]any{"id": awsID, "k": sec("refused aws secret part")})
		s.mutate(owner, "auditEventsAmazonS3ConfigurationUpdate", awsUpdateQ, map[string]any{"id": awsID, "k": sec("aws secret B"), "b": "legacy-bucket-2"})
		expect(secWant{"amazon_s3_configuration_updated", org, false, legacyAWS, awsNum, "legacy-aws", []string{
			`Updated streaming destination "legacy-aws"`, "legacy-bucket-2", "secret token changed"}})
		s.mutate(owner, "auditEventsAmazonS3ConfigurationDelete",
			`mutation($id: AuditEventsAmazonS3ConfigurationID!) { auditEventsAmazonS3ConfigurationDelete(input: {id: $id}) { errors } }`, map[string]any{"id": awsID})
		expect(secWant{"amazon_s3_configuration_deleted", org, false, legacyAWS, awsNum, "legacy-aws", []string{`Deleted aws streaming destination "legacy-aws"`}})

		// --- The events -------------------------------------------------------------------
		s.secWaitEvents(base + len(want))
		raw := s.secListEvents("/api/v4/audit_events", s.admin)
		require.Len(t, raw, base+len(want), "one event per change, none for a refused one")
		// Newest first: the self-audit events are the first len(want), in reverse order.
		got := raw[:len(want)]
		var all strings.Builder
		for _, r := range got {
			all.Write(r)
			all.WriteByte('\n')
		}
		for i, wnt := range want {
			rawEvent := got[len(got)-1-i]
			var e map[string]any
			require.NoError(t, json.Unmarshal(rawEvent, &e))
			what := fmt.Sprintf("change %d (%s): %s", i+1, wnt.eventType, rawEvent)
			require.Equal(t, wnt.eventType, e["event_type"], what)
			require.EqualValues(t, wnt.author, e["author_id"], what)
			if wnt.instance {
				require.Equal(t, "Gitlab::Audit::InstanceScope", e["entity_type"], what)
				require.EqualValues(t, 1, e["entity_id"], what)
				require.Equal(t, "gitlab_instance", e["entity_path"], what)
			} else {
				require.Equal(t, "Group", e["entity_type"], what)
				require.EqualValues(t, w.org.ID, e["entity_id"], what)
				require.Equal(t, "org", e["entity_path"], what)
				require.Equal(t, "org", dig(e, "details", "entity_path"), what)
			}
			require.Equal(t, wnt.targetType, e["target_type"], what)
			require.EqualValues(t, wnt.targetID, e["target_id"], what)
			require.Equal(t, wnt.targetType, dig(e, "details", "target_type"), what)
			require.EqualValues(t, wnt.targetID, dig(e, "details", "target_id"), what)
			require.Equal(t, wnt.name, e["target_details"], what)
			require.Equal(t, "127.0.0.1", e["ip_address"], what)
			msg, _ := dig(e, "details", "custom_message").(string)
			for _, part := range wnt.message {
				require.Contains(t, msg, part, what)
			}
		}
		for k, v := range pemSecrets {
			secrets[k] = v
		}
		secNotIn(t, "the self-audit events", all.String(), secrets)

		// The group API shows the owner the group's events, and only those.
		grp := s.secListEvents("/api/v4/groups/101/audit_events", owner)
		var wantGroup, gotGroup []string
		for _, wnt := range want {
			if !wnt.instance {
				wantGroup = append(wantGroup, wnt.eventType)
			}
		}
		for i := len(grp) - 1; i >= 0; i-- {
			var e map[string]any
			require.NoError(t, json.Unmarshal(grp[i], &e))
			gotGroup = append(gotGroup, e["event_type"].(string))
			require.Equal(t, "Group", e["entity_type"])
		}
		require.Equal(t, wantGroup, gotGroup)
	})
}

package app_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditstream/auditstream/internal/app"
	"github.com/auditstream/auditstream/internal/poll"
	"github.com/auditstream/auditstream/internal/trail"
)

// trailConfig checkpoints and audits fast, for tests.
func trailConfig(c *app.Config) {
	c.TrailCheckpointInterval = 100 * time.Millisecond
	c.TrailAuditInterval = 100 * time.Millisecond
}

// trailEvents ingests n events, every fourth a stream-only git operation, and returns their ids
// and how many are stored.
func trailEvents(s *server, n int) (ids []int64, stored int) {
	events := make([]map[string]any, n)
	for i := range events {
		if i%4 == 3 {
			events[i] = map[string]any{"event_type": "repository_git_operation", "entity_type": "Project", "entity_path": "acme/api", "entity_id": 7,
				"author_id": 1, "details": map[string]any{"n": i}}
			continue
		}
		stored++
		events[i] = map[string]any{"event_type": "user_created", "entity_type": "Instance", "author_id": 1, "author_name": "Alice",
			"details": map[string]any{"n": i, "custom_message": "<made> & \u2028 kept"}}
	}
	return s.ingest(s.admin, events...), stored
}

// checkpoint waits for a checkpoint of at least size n and returns it.
func (s *server) checkpoint(n int64) trail.CheckpointJSON {
	s.t.Helper()
	var c trail.CheckpointJSON
	poll.Until(s.t, 20*time.Second, func() error {
		status, body, _ := s.do(http.MethodGet, "/api/v4/auditstream/trail/checkpoint", s.admin, "", nil)
		if status != http.StatusOK {
			return fmt.Errorf("%d %s", status, body)
		}
		if err := json.Unmarshal(body, &c); err != nil {
			return err
		}
		if c.TreeSize < n {
			return fmt.Errorf("checkpoint of size %d, want %d", c.TreeSize, n)
		}
		return nil
	})
	return c
}

// ready returns what /-/ready says.
func (s *server) ready() string {
	s.t.Helper()
	_, body, _ := s.do(http.MethodGet, "/-/ready", "", "", nil)
	return string(body)
}

func (s *server) verify(opts ...func(*trail.Verifier)) (trail.Report, error) {
	s.t.Helper()
	c := s.checkpoint(1)
	v := &trail.Verifier{Keys: []string{c.VerifierKey}, Page: 7}
	for _, o := range opts {
		o(v)
	}
	return v.Verify(context.Background(), &trail.HTTPSource{BaseURL: s.base, Token: s.admin})
}

// TestTrailOverTheAPI: the service builds the tree of every event (stored and stream-only),
// signs tlog-checkpoints that note and tlog read, proves inclusion and consistency over the API
// (an auditor checks the proofs with tlog alone), and verifies end to end with the public key.
func TestTrailOverTheAPI(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := start(t, driver, trailConfig)
		ids, stored := trailEvents(s, 30)
		s.waitStored(stored)
		first := s.checkpoint(int64(ids[len(ids)-1]))

		v, err := note.NewVerifier(first.VerifierKey)
		require.NoError(t, err)
		n, err := note.Open([]byte(first.Checkpoint), note.VerifierList(v))
		require.NoError(t, err, "a standard note reader verifies the checkpoint with the public key")
		cp, err := trail.ParseCheckpoint([]byte(n.Text))
		require.NoError(t, err)
		require.Equal(t, "auditstream", cp.Origin)
		require.Equal(t, first.TreeSize, cp.Size)
		require.Equal(t, base64.StdEncoding.EncodeToString(cp.Root[:]), first.RootHash)
		require.NotContains(t, first.Checkpoint, "PRIVATE")

		// The leaf is the event's bytes as stored and streamed: the raw leaves serve them.
		status, body, h := s.do(http.MethodGet, "/api/v4/auditstream/trail/leaves?from_id=1&count=4", s.admin, "", nil)
		require.Equal(t, http.StatusOK, status, "%s", body)
		require.Equal(t, "application/x-ndjson", h.Get("Content-Type"))
		lines := strings.Split(strings.TrimSpace(string(body)), "\n")
		require.Len(t, lines, 4)
		require.Contains(t, lines[3], `"kind":"stream_only"`)
		require.NotContains(t, lines[3], `"event"`)
		var line struct {
			ID    int64           `json:"id"`
			Kind  string          `json:"kind"`
			Hash  string          `json:"hash"`
			Event json.RawMessage `json:"event"`
		}
		require.NoError(t, json.Unmarshal([]byte(lines[0]), &line))
		require.Equal(t, "stored", line.Kind)
		leaf := tlog.RecordHash(line.Event)
		require.Equal(t, base64.StdEncoding.EncodeToString(leaf[:]), line.Hash)

		// Inclusion: of a stored event, and of a stream-only one (admins: the instance path).
		for _, id := range []int64{ids[0], ids[3], ids[len(ids)-1]} {
			status, body, _ := s.do(http.MethodGet, fmt.Sprintf("/api/v4/audit_events/%d/inclusion_proof", id), s.admin, "", nil)
			require.Equal(t, http.StatusOK, status, "%s", body)
			var p trail.InclusionJSON
			require.NoError(t, json.Unmarshal(body, &p))
			require.Equal(t, id-1, p.LeafIndex)
			require.NotNil(t, p.Checkpoint)
			proof, err := trail.ParseHashes(p.Proof)
			require.NoError(t, err)
			lh, err := trail.ParseHashes([]string{p.LeafHash})
			require.NoError(t, err)
			pn, err := note.Open([]byte(p.Checkpoint.Checkpoint), note.VerifierList(v))
			require.NoError(t, err)
			pc, err := trail.ParseCheckpoint([]byte(pn.Text))
			require.NoError(t, err)
			require.NoError(t, tlog.CheckRecord(proof, pc.Size, pc.Root, id-1, lh[0]), "id %d", id)
		}
		// The stored event's leaf hash is the hash of the bytes GET /audit_events/:id is made of.
		status, body, _ = s.do(http.MethodGet, fmt.Sprintf("/api/v4/audit_events/%d/inclusion_proof?tree_size=%d", ids[0], first.TreeSize), s.admin, "", nil)
		require.Equal(t, http.StatusOK, status, "%s", body)

		// Errors have stable codes.
		for path, code := range map[string]string{
			"/api/v4/audit_events/999999/inclusion_proof":                    "not_in_checkpoint",
			"/api/v4/audit_events/1/inclusion_proof?tree_size=999999":        "invalid_tree_size",
			"/api/v4/audit_events/1/inclusion_proof?tree_size=x":             "invalid_parameter",
			"/api/v4/auditstream/trail/consistency?old_size=1":               "invalid_parameter",
			"/api/v4/auditstream/trail/consistency?old_size=5&new_size=2":    "invalid_tree_size",
			"/api/v4/auditstream/trail/consistency?old_size=1&new_size=9999": "invalid_tree_size",
		} {
			_, body, _ := s.do(http.MethodGet, path, s.admin, "", nil)
			var e struct{ Code string }
			require.NoError(t, json.Unmarshal(body, &e), path)
			require.Equal(t, code, e.Code, path)
		}

		// More events: a later checkpoint is consistent with the first.
		more, stored2 := trailEvents(s, 9)
		s.waitStored(stored + stored2)
		last := s.checkpoint(more[len(more)-1])
		status, body, _ = s.do(http.MethodGet, fmt.Sprintf("/api/v4/auditstream/trail/consistency?old_size=%d&new_size=%d", first.TreeSize, last.TreeSize), s.admin, "", nil)
		require.Equal(t, http.StatusOK, status, "%s", body)
		var cons trail.ConsistencyJSON
		require.NoError(t, json.Unmarshal(body, &cons))
		proof, err := trail.ParseHashes(cons.Proof)
		require.NoError(t, err)
		lastRoot, err := trail.ParseHashes([]string{last.RootHash})
		require.NoError(t, err)
		require.NoError(t, tlog.CheckTree(proof, last.TreeSize, lastRoot[0], first.TreeSize, cp.Root))

		rep, err := s.verify()
		require.NoError(t, err)
		require.GreaterOrEqual(t, rep.Size, last.TreeSize)
		require.EqualValues(t, stored+stored2, rep.Events)
		require.GreaterOrEqual(t, rep.Checkpoints, 2)
		require.Equal(t, "OK\n", s.ready())
	})
}

// TestTrailInclusionIsAuthorizedLikeTheEvent: a group's owner gets proofs of the group's events
// through the group's path, not of others'; the instance path and the raw leaves are for
// administrators; the checkpoint is for anyone signed in.
func TestTrailInclusionIsAuthorizedLikeTheEvent(t *testing.T) {
	s := start(t, "sqlite", trailConfig)
	w := newWorld(t, s)
	ids := s.ingest(s.admin, ev("group_created", "Group", "org", 101, 1, "mine"), ev("group_created", "Group", "other", 103, 1, "theirs"))
	s.waitStored(2)
	s.checkpoint(ids[1])
	owner := w.tokens["owner"]
	status, body, _ := s.do(http.MethodGet, fmt.Sprintf("/api/v4/groups/101/audit_events/%d/inclusion_proof", ids[0]), owner, "", nil)
	require.Equal(t, http.StatusOK, status, "%s", body)
	status, _, _ = s.do(http.MethodGet, fmt.Sprintf("/api/v4/groups/101/audit_events/%d/inclusion_proof", ids[1]), owner, "", nil)
	require.Equal(t, http.StatusNotFound, status, "another group's event, through this group's path")
	status, _, _ = s.do(http.MethodGet, fmt.Sprintf("/api/v4/groups/103/audit_events/%d/inclusion_proof", ids[1]), owner, "", nil)
	require.Equal(t, http.StatusNotFound, status, "a group the user is not a member of")
	status, _, _ = s.do(http.MethodGet, fmt.Sprintf("/api/v4/groups/101/audit_events/%d/inclusion_proof", ids[0]), w.tokens["dev"], "", nil)
	require.Equal(t, http.StatusForbidden, status, "as GET of the event: owners only")
	status, _, _ = s.do(http.MethodGet, fmt.Sprintf("/api/v4/audit_events/%d/inclusion_proof", ids[0]), owner, "", nil)
	require.Equal(t, http.StatusForbidden, status)
	status, _, _ = s.do(http.MethodGet, "/api/v4/auditstream/trail/leaves", owner, "", nil)
	require.Equal(t, http.StatusForbidden, status, "the raw leaves carry every event")
	status, _, _ = s.do(http.MethodGet, "/api/v4/auditstream/trail/checkpoint", owner, "", nil)
	require.Equal(t, http.StatusOK, status, "a checkpoint is a size and a hash")
	status, _, _ = s.do(http.MethodGet, "/api/v4/auditstream/trail/checkpoint", "", "", nil)
	require.Equal(t, http.StatusUnauthorized, status)
}

// tamper runs one statement on the service's database, as someone with access to the
// database would: sqliteSQL (? parameters) or postgresSQL ($n).
func tamper(t *testing.T, cfg app.Config, sqliteSQL, postgresSQL string, args ...any) {
	t.Helper()
	if cfg.DatabaseURL == "" {
		db := openSQLite(t, cfg)
		defer db.Close()
		_, err := db.Exec(sqliteSQL, args...)
		require.NoError(t, err, sqliteSQL)
		return
	}
	conn, err := pgx.Connect(context.Background(), cfg.DatabaseURL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(context.Background(), postgresSQL, args...)
	require.NoError(t, err, postgresSQL)
}

// openSQLite opens the service's SQLite database beside it. The busy timeout waits for the
// running service's writes (without it a statement fails at once with SQLITE_BUSY).
func openSQLite(t *testing.T, cfg app.Config) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(cfg.DataDir, "auditstream.db")+"?_pragma=busy_timeout(10000)")
	require.NoError(t, err)
	return db
}

// storedData reads an event's stored bytes from the database.
func storedData(t *testing.T, cfg app.Config, id int64) []byte {
	t.Helper()
	var b []byte
	if cfg.DatabaseURL == "" {
		db := openSQLite(t, cfg)
		defer db.Close()
		require.NoError(t, db.QueryRow(`SELECT data FROM events WHERE id = ?`, id).Scan(&b))
		return b
	}
	conn, err := pgx.Connect(context.Background(), cfg.DatabaseURL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	require.NoError(t, conn.QueryRow(context.Background(), `SELECT data FROM events WHERE id = $1`, id).Scan(&b))
	return b
}

// TestTrailFindsTampering: each change made to the database behind the service's back is found
// by verify and by the service's own audit (an ERROR, /-/ready, a metric), naming the id.
func TestTrailFindsTampering(t *testing.T) {
	// The checkpoint note of the signing key in the data dir, for the fork.
	signWithServiceKey := func(t *testing.T, cfg app.Config, body string) string {
		skey, err := os.ReadFile(filepath.Join(cfg.DataDir, trail.KeyFile))
		require.NoError(t, err)
		k, err := trail.ParseKey(string(skey))
		require.NoError(t, err)
		msg, err := note.Sign(&note.Note{Text: body}, k.Signer)
		require.NoError(t, err)
		return string(msg)
	}
	otherKey := func(t *testing.T, body string) string {
		skey, _, err := trail.GenerateKey("auditstream")
		require.NoError(t, err)
		k, err := trail.ParseKey(skey)
		require.NoError(t, err)
		msg, err := note.Sign(&note.Note{Text: body}, k.Signer)
		require.NoError(t, err)
		return string(msg)
	}
	cases := []struct {
		name   string
		id     int64 // the id named; 0 for a checkpoint
		reason string
		do     func(t *testing.T, cfg app.Config, cp trail.CheckpointJSON)
	}{
		{"alter a row's details", 5, trail.ReasonAltered, func(t *testing.T, cfg app.Config, _ trail.CheckpointJSON) {
			data := []byte(strings.Replace(string(storedData(t, cfg, 5)), `"n":4`, `"n":44`, 1))
			tamper(t, cfg, `UPDATE events SET data = ? WHERE id = 5`, `UPDATE events SET data = $1 WHERE id = 5`, data)
		}},
		{"delete a row", 6, trail.ReasonMissing, func(t *testing.T, cfg app.Config, _ trail.CheckpointJSON) {
			tamper(t, cfg, `DELETE FROM events WHERE id = 6`, `DELETE FROM events WHERE id = 6`)
		}},
		{"swap two rows", 2, trail.ReasonReordered, func(t *testing.T, cfg app.Config, _ trail.CheckpointJSON) {
			d2, d3 := storedData(t, cfg, 2), storedData(t, cfg, 3)
			tamper(t, cfg, `UPDATE events SET data = ? WHERE id = 2`, `UPDATE events SET data = $1 WHERE id = 2`, d3)
			tamper(t, cfg, `UPDATE events SET data = ? WHERE id = 3`, `UPDATE events SET data = $1 WHERE id = 3`, d2)
		}},
		{"alter a row and rewrite its leaf", 1, trail.ReasonInconsistent, func(t *testing.T, cfg app.Config, _ trail.CheckpointJSON) {
			// Whoever rewrites the leaf too cannot sign a new checkpoint: the signed ones no
			// longer match, and the ids since the last one that does are named.
			data := []byte(strings.Replace(string(storedData(t, cfg, 2)), `"n":1`, `"n":11`, 1))
			tamper(t, cfg, `UPDATE events SET data = ? WHERE id = 2`, `UPDATE events SET data = $1 WHERE id = 2`, data)
			h := tlog.RecordHash(data)
			// Leaf 1 is the second hash of the first level-0 tile.
			tamper(t, cfg, `UPDATE trail_tiles SET hashes = CAST(substr(hashes, 1, 32) || ? || substr(hashes, 65) AS BLOB) WHERE level = 0 AND n = 0`,
				`UPDATE trail_tiles SET hashes = overlay(hashes placing $1 from 33 for 32) WHERE level = 0 AND n = 0`, h[:])
		}},
		{"replace a checkpoint's signature", 0, trail.ReasonBadSignature, func(t *testing.T, cfg app.Config, cp trail.CheckpointJSON) {
			body, _, _ := strings.Cut(cp.Checkpoint, "\n\n")
			forged := otherKey(t, body+"\n")
			tamper(t, cfg, `UPDATE trail_checkpoints SET note = ? WHERE id = ?`, `UPDATE trail_checkpoints SET note = $1 WHERE id = $2`, []byte(forged), cp.ID)
		}},
		{"fork the tree", 0, trail.ReasonInconsistent, func(t *testing.T, cfg app.Config, cp trail.CheckpointJSON) {
			forked := trail.Checkpoint{Origin: "auditstream", Size: cp.TreeSize, Root: tlog.RecordHash([]byte("another history"))}
			msg := signWithServiceKey(t, cfg, string(forked.Format()))
			tamper(t, cfg, `INSERT INTO trail_checkpoints (size, note, created_at) VALUES (?, ?, 0)`,
				`INSERT INTO trail_checkpoints (size, note, created_at) VALUES ($1, $2, now())`, cp.TreeSize, []byte(msg))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			forEachDriver(t, func(t *testing.T, driver string) {
				// Every audit full, so that the one at start reads what changed while the
				// service was stopped (TestAuditChecksWhatWasAdded in internal/trail covers
				// the audits in between).
				cfg := serviceConfig(t, driver, trailConfig, func(c *app.Config) { c.TrailAuditFullInterval = 0 })
				s := startCfg(t, cfg)
				ids, stored := trailEvents(s, 8) // 4 and 8 stream-only
				s.waitStored(stored)
				cp := s.checkpoint(ids[len(ids)-1])
				_, err := s.verify()
				require.NoError(t, err)
				s.shutdown()

				tc.do(t, cfg, cp)

				s = startCfg(t, cfg)
				_, err = s.verify()
				var fail *trail.Failure
				require.ErrorAs(t, err, &fail)
				require.Equal(t, tc.reason, fail.Reason, "%v", fail)
				require.Equal(t, tc.id, fail.ID, "%v", fail)

				// The service finds it too, at start, and says so on /-/ready.
				want := fmt.Sprintf("audit failed: id %d: %s", tc.id, tc.reason)
				if tc.id == 0 {
					want = "audit failed: " + tc.reason
				}
				poll.Until(t, 20*time.Second, func() error {
					if r := s.ready(); !strings.Contains(r, want) {
						return errors.New(r)
					}
					return nil
				})
				_, metrics, _ := s.do(http.MethodGet, "/metrics", "", "", nil)
				require.Contains(t, string(metrics), "auditstream_trail_audit_failed 1")
				home := signIn(s, adminToken).get("/")
				require.Contains(t, home.text(), "The tamper-evident trail found problems")
				require.Contains(t, home.text(), want, "the admin UI names it too")
			})
		})
	}
}

// TestTrailKeepsProofsThroughRetention: retention deletes the rows but not the leaves: the
// events stay provable, verify and the service's audit pass and count them purged.
func TestTrailKeepsProofsThroughRetention(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := start(t, driver, trailConfig)
		old := map[string]any{"event_type": "user_created", "entity_type": "Instance", "created_at": "2020-01-01T00:00:00Z"}
		fresh := map[string]any{"event_type": "user_created", "entity_type": "Instance"}
		ids := s.ingest(adminToken, old, fresh, old)
		s.waitStored(3)
		s.checkpoint(ids[2])
		s.shutdown()

		cfg := s.cfg
		cfg.Retention = 24 * time.Hour
		s2 := startCfg(t, cfg)
		// The fresh event and the purge's audit event: verify before the store has the latter
		// finds the tree ahead of the store (the leaf is there, the row not yet).
		s2.waitStored(2)
		rep, err := s2.verify()
		require.NoError(t, err)
		require.EqualValues(t, 2, rep.Purged)
		// The fresh event, and the purge's own audit event when a checkpoint covers it already
		// (the restarted writer signs one soon: the first checkpoint's event came after it).
		require.Contains(t, []int64{1, 2}, rep.Events)
		status, body, _ := s2.do(http.MethodGet, fmt.Sprintf("/api/v4/audit_events/%d/inclusion_proof", ids[0]), adminToken, "", nil)
		require.Equal(t, http.StatusOK, status, "a purged event is still proven: %s", body)
		require.Equal(t, "OK\n", s2.ready())
	})
}

// TestTrailCanBeTurnedOff: with --trail=false no key is made and the proofs API says so.
func TestTrailCanBeTurnedOff(t *testing.T) {
	s := start(t, "sqlite", func(c *app.Config) { c.Trail = false })
	s.ingest(s.admin, map[string]any{"event_type": "user_created", "entity_type": "Instance"})
	s.waitStored(1)
	for _, path := range []string{"/api/v4/auditstream/trail/checkpoint", "/api/v4/audit_events/1/inclusion_proof", "/api/v4/auditstream/trail/leaves"} {
		status, body, _ := s.do(http.MethodGet, path, s.admin, "", nil)
		require.Equal(t, http.StatusNotFound, status, path)
		require.Contains(t, string(body), `"code":"trail_disabled"`, path)
	}
	_, err := os.Stat(filepath.Join(s.cfg.DataDir, trail.KeyFile))
	require.ErrorIs(t, err, os.ErrNotExist)
	require.Equal(t, "OK\n", s.ready())
}

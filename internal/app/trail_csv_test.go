package app_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"

	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/trail"
)

// TestTrailVerifiesACSVExport: the UI's CSV export carries each event's JSON (the leaf's
// bytes) after GitLab's columns, and verifies row by row with the public key and the service's
// inclusion proofs; a changed cell, or a changed JSON (with its cell changed to match), is
// found and names the id.
func TestTrailVerifiesACSVExport(t *testing.T) {
	s := start(t, "sqlite", trailConfig)
	ids := s.ingest(s.admin,
		map[string]any{"event_type": "user_created", "entity_type": "Instance", "author_id": 1, "author_name": "=HYPERLINK(\"x\")",
			"details": map[string]any{"custom_message": "-formula, defused"}},
		map[string]any{"event_type": "user_created", "entity_type": "Instance", "author_id": 2, "author_name": "Alice",
			"details": map[string]any{"custom_message": "quotes \" and, commas\nand lines", "author_email": "alice@example.com"}},
		map[string]any{"event_type": "user_created", "entity_type": "Instance", "author_id": 3, "author_name": "Bob",
			"ip_address": "10.0.0.1", "details": map[string]any{"custom_message": "<made> & \u2028 kept"}},
	)
	s.waitStored(3)
	cp := s.checkpoint(ids[2])

	b := signIn(s, s.admin)
	p, recs := b.csvExport("/admin/audit_events.csv")
	require.Equal(t, event.CSVHeader, recs[0])
	require.Len(t, recs, 4)
	require.Equal(t, `'=HYPERLINK("x")`, recs[3][4], "formulas are still defused")
	require.Equal(t, "'-formula, defused", recs[3][12])
	require.True(t, strings.HasPrefix(recs[1][14], `{"id":`+strconv.FormatInt(ids[2], 10)+`,`), recs[1][14])

	src := &trail.HTTPSource{BaseURL: s.base, Token: s.admin}
	v := &trail.Verifier{Keys: []string{cp.VerifierKey}}
	rep, err := v.VerifyCSV(context.Background(), strings.NewReader(p.body), src)
	require.NoError(t, err)
	require.EqualValues(t, 3, rep.Rows)
	require.GreaterOrEqual(t, rep.TreeSize, ids[2])

	encode := func(rows [][]string) string {
		var buf bytes.Buffer
		w := csv.NewWriter(&buf)
		require.NoError(t, w.WriteAll(rows))
		return buf.String()
	}
	fails := func(rows [][]string, id int64, reason, detail string) {
		t.Helper()
		_, err := v.VerifyCSV(context.Background(), strings.NewReader(encode(rows)), src)
		var f *trail.Failure
		require.ErrorAs(t, err, &f)
		require.Equal(t, id, f.ID, f.Error())
		require.Equal(t, reason, f.Reason, f.Error())
		require.Contains(t, f.Detail, detail)
	}
	clone := func() [][]string {
		out := make([][]string, len(recs))
		for i, r := range recs {
			out[i] = append([]string(nil), r...)
		}
		return out
	}

	cell := clone()
	cell[2][4] = "Mallory" // ids[1]'s author name
	fails(cell, ids[1], trail.ReasonAltered, `"Author Name" column says "Mallory", its JSON says "Alice"`)

	both := clone()
	both[2][4] = "Mallory"
	both[2][14] = strings.Replace(both[2][14], `"author_name":"Alice"`, `"author_name":"Mallory"`, 1)
	fails(both, ids[1], trail.ReasonAltered, "its bytes were changed after export")

	// A checkpoint the auditor kept: the latest must extend it (the service's consistency proof);
	// a forged history of that size (signed with the service's key) is a fork.
	kept := []byte(cp.Checkpoint)
	rep, err = (&trail.Verifier{Keys: []string{cp.VerifierKey}, Trusted: [][]byte{kept}}).VerifyCSV(context.Background(), strings.NewReader(p.body), src)
	require.NoError(t, err)
	require.EqualValues(t, 3, rep.Rows)
	skey, err := os.ReadFile(filepath.Join(s.cfg.DataDir, trail.KeyFile))
	require.NoError(t, err)
	k, err := trail.ParseKey(string(skey))
	require.NoError(t, err)
	other := trail.Checkpoint{Origin: "auditstream", Size: cp.TreeSize - 1}
	other.Root[0] = 1
	forged, err := note.Sign(&note.Note{Text: string(other.Format())}, k.Signer)
	require.NoError(t, err)
	_, err = (&trail.Verifier{Keys: []string{cp.VerifierKey}, Trusted: [][]byte{forged}}).VerifyCSV(context.Background(), strings.NewReader(p.body), src)
	var f *trail.Failure
	require.ErrorAs(t, err, &f)
	require.Equal(t, trail.ReasonInconsistent, f.Reason, f.Error())

	_, err = (&trail.Verifier{Keys: []string{cp.VerifierKey}}).VerifyCSV(context.Background(), strings.NewReader("ID,Created At (UTC)\n1,x\n"), src)
	require.ErrorContains(t, err, "Event JSON")
}

package trail

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditstream/auditstream/internal/event"
)

// ReasonNotIncluded is a Failure's reason when an event's leaf is not in the signed tree: the
// service's inclusion proof does not lead to the checkpoint's root, or it has none.
const ReasonNotIncluded = "not_included"

// ProofSource serves what VerifyCSV needs of a service: its latest checkpoint and inclusion
// proofs (HTTPSource).
type ProofSource interface {
	Latest(ctx context.Context) (CheckpointJSON, error)
	Inclusion(ctx context.Context, id, treeSize int64) (InclusionJSON, error)
	Consistency(ctx context.Context, oldSize, newSize int64) (ConsistencyJSON, error)
}

// CSVReport is what VerifyCSV covered.
type CSVReport struct {
	Rows     int64 // rows checked: visible columns against the JSON, the JSON against its leaf
	TreeSize int64 // the size of the signed checkpoint the rows were proved against
}

// VerifyCSV checks a CSV export of the UI (event.CSVHeader: GitLab's columns, then the event's
// JSON): for each row, that its visible columns are what the JSON says (event.CSVRecord), and
// that the JSON is a leaf of the tree of the service's latest checkpoint, whose signature must
// verify with v.Keys: the proof comes from the service, but it cannot forge one that leads to
// a root it signed. It returns the first failure as a *Failure naming the id: altered (a cell
// or the JSON changed), not_included (no proof leads to the signed root: the JSON is not the
// leaf of its id), missing (an id newer than the checkpoint), inconsistent (the checkpoint does
// not extend one of v.Trusted, by the service's consistency proof). An export is a filtered subset,
// so this proves its rows, not that no event is missing from it.
func (v *Verifier) VerifyCSV(ctx context.Context, r io.Reader, src ProofSource) (CSVReport, error) {
	var rep CSVReport
	keys, err := v.keyList()
	if err != nil {
		return rep, err
	}
	latest, err := src.Latest(ctx)
	if err != nil {
		return rep, err
	}
	cps, err := openCheckpoints(keys, [][]byte{[]byte(latest.Checkpoint)}, func(int) string { return "the service's latest checkpoint" })
	if err != nil {
		return rep, err
	}
	cp := cps[0]
	rep.TreeSize = cp.Size
	if err := v.consistentWithTrusted(ctx, keys, cp, src); err != nil {
		return rep, err
	}

	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return rep, fmt.Errorf("the CSV: %w", err)
	}
	if !slices.Equal(header, event.CSVHeader) {
		return rep, fmt.Errorf("the CSV's columns are not those of the UI's export with the %q column: %q", event.CSVJSONColumn, header)
	}
	for {
		row, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return rep, nil
		}
		if err != nil {
			return rep, fmt.Errorf("the CSV: %w", err)
		}
		id, _ := strconv.ParseInt(row[0], 10, 64)
		if len(row) != len(event.CSVHeader) {
			return rep, &Failure{ID: id, Reason: ReasonAltered, Detail: fmt.Sprintf("the row has %d columns, not %d", len(row), len(event.CSVHeader))}
		}
		leaf := []byte(row[len(row)-1])
		want, err := event.CSVRecord(leaf)
		if err != nil {
			return rep, &Failure{ID: id, Reason: ReasonAltered, Detail: "its " + event.CSVJSONColumn + " column is not an event's JSON"}
		}
		if jid, ok := eventID(leaf); !ok || jid != id || id <= 0 {
			return rep, &Failure{ID: id, Reason: ReasonAltered, Detail: fmt.Sprintf("its ID column says %q, its JSON is event %d", row[0], jid)}
		}
		for i := range len(row) - 1 {
			if row[i] != want[i] {
				return rep, &Failure{ID: id, Reason: ReasonAltered, Detail: fmt.Sprintf("its %q column says %q, its JSON says %q", header[i], row[i], want[i])}
			}
		}
		if id > cp.Size {
			return rep, &Failure{ID: id, Reason: ReasonMissing, Detail: fmt.Sprintf("newer than the latest signed checkpoint (size %d): verify again after the next one", cp.Size)}
		}
		proof, err := src.Inclusion(ctx, id, cp.Size)
		if err != nil {
			return rep, &Failure{ID: id, Reason: ReasonNotIncluded, Detail: fmt.Sprintf("the service has no inclusion proof for it: %v", err)}
		}
		hs, err := ParseHashes(proof.Proof)
		if err != nil {
			return rep, &Failure{ID: id, Reason: ReasonNotIncluded, Detail: "the service's inclusion proof does not decode: " + err.Error()}
		}
		h := LeafHash(leaf)
		if err := tlog.CheckRecord(hs, cp.Size, cp.Root, id-1, h); err != nil {
			detail := fmt.Sprintf("its JSON is not the leaf of id %d in the checkpoint of size %d", id, cp.Size)
			if served, _ := ParseHashes([]string{proof.LeafHash}); len(served) == 1 && served[0] != h {
				return rep, &Failure{ID: id, Reason: ReasonAltered, Detail: detail + ": its bytes were changed after export"}
			}
			return rep, &Failure{ID: id, Reason: ReasonNotIncluded, Detail: detail}
		}
		rep.Rows++
		if v.Progress != nil && v.Every > 0 && rep.Rows%v.Every == 0 {
			v.Progress(rep.Rows, 0, 0)
		}
	}
}

// consistentWithTrusted checks that the tree of cp extends every checkpoint in v.Trusted, with
// the service's consistency proofs: a service that rewrote its history since cannot prove it.
func (v *Verifier) consistentWithTrusted(ctx context.Context, keys note.Verifiers, cp signedCheckpoint, src ProofSource) error {
	trusted, err := openCheckpoints(keys, v.Trusted, func(i int) string { return fmt.Sprintf("trusted checkpoint %d", i+1) })
	if err != nil {
		return err
	}
	for _, t := range trusted {
		fork := &Failure{Reason: ReasonInconsistent, Detail: fmt.Sprintf("the latest checkpoint (size %d) does not extend the trusted checkpoint of size %d: the history was rewritten (a fork)", cp.Size, t.Size)}
		switch {
		case t.Size > cp.Size:
			return &Failure{Reason: ReasonInconsistent, Detail: fmt.Sprintf("the service's latest checkpoint (size %d) is older than a trusted one (size %d)", cp.Size, t.Size)}
		case t.Size == cp.Size:
			if t.Root != cp.Root {
				return fork
			}
			continue
		}
		proof, err := src.Consistency(ctx, t.Size, cp.Size)
		if err != nil {
			return err
		}
		hs, err := ParseHashes(proof.Proof)
		if err != nil || tlog.CheckTree(hs, cp.Size, cp.Root, t.Size, t.Root) != nil {
			return fork
		}
	}
	return nil
}

// Consistency returns the service's proof that the tree of oldSize is a prefix of that of
// newSize.
func (s *HTTPSource) Consistency(ctx context.Context, oldSize, newSize int64) (ConsistencyJSON, error) {
	return getJSON[ConsistencyJSON](ctx, s, "/api/v4/auditstream/trail/consistency",
		url.Values{"old_size": {strconv.FormatInt(oldSize, 10)}, "new_size": {strconv.FormatInt(newSize, 10)}}, "consistency proof")
}

// Inclusion returns the service's proof that event id is in the tree of treeSize.
func (s *HTTPSource) Inclusion(ctx context.Context, id, treeSize int64) (InclusionJSON, error) {
	return getJSON[InclusionJSON](ctx, s, "/api/v4/audit_events/"+strconv.FormatInt(id, 10)+"/inclusion_proof",
		url.Values{"tree_size": {strconv.FormatInt(treeSize, 10)}}, "inclusion proof")
}

package trail

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditstream/auditstream/internal/event"
)

// BucketReport is what VerifyBucket covered.
type BucketReport struct {
	Objects     int64 // objects read
	Events      int64 // distinct events found
	Checkpoints int   // distinct checkpoints, from checkpoint objects and checkpoint events
	Size        int64 // the largest checkpoint's size: leaves rebuilt and checked
	Uncovered   int64 // events after the largest checkpoint, which no checkpoint covers yet
	// From is the size of the checkpoint the tree was rebuilt from: 0, or with Partial the
	// first checkpoint a copy that lacks the first ids could start from; Before counts the
	// events of the copy up to it, which were not checked.
	From, Before int64
}

// bucketEvent is one event found in a bucket: its leaf hash and the object it came from.
type bucketEvent struct {
	hash   tlog.Hash
	object string
}

// VerifyBucket checks a local copy of an object-store destination's bucket (package
// objectstore's layout, any prefix: per-event objects "*.json", gzip NDJSON batches
// "*.ndjson.gz" and the trail's "checkpoints/*.checkpoint") with nothing but the public keys
// (v.Keys; v.Trusted and v.Progress apply): every checkpoint, from its object or from a
// checkpoint event's details, must verify and no two may fork; the tree is rebuilt from the
// events' exact bytes, which are the leaves, and must have the root of every checkpoint the copy
// covers. It returns the first failure as a *Failure: an id no object holds (missing; a
// destination that filters events, or a group's, cannot be rebuilt alone), two objects with
// different bytes for one id (altered), an event under another id's key or out of order in its
// batch (reordered), a checkpoint that does not verify (bad_signature), or a checkpoint whose
// root the events do not make (inconsistent, naming the range of ids between the last
// checkpoint that matched and it: that is as close as checkpoints can tell).
func (v *Verifier) VerifyBucket(ctx context.Context, bucket fs.FS) (BucketReport, error) {
	var rep BucketReport
	keys, err := v.keyList()
	if err != nil {
		return rep, err
	}
	events := map[int64]bucketEvent{}
	frontiers := map[int64][]tlog.Hash{} // from the checkpoint events, by size
	var notes [][]byte
	var which []string
	add := func(id int64, b []byte, object string) error {
		h := LeafHash(b)
		if o, ok := events[id]; ok {
			if o.hash != h {
				return &Failure{ID: id, Reason: ReasonAltered, Detail: fmt.Sprintf("objects %s and %s hold different bytes for it", o.object, object)}
			}
			return nil
		}
		events[id] = bucketEvent{h, object}
		if bytes.Contains(b, []byte(`"`+event.TypeTrailCheckpoint+`"`)) {
			var e struct {
				EventType string            `json:"event_type"`
				Details   CheckpointDetails `json:"details"`
			}
			if json.Unmarshal(b, &e) == nil && e.EventType == event.TypeTrailCheckpoint && e.Details.Checkpoint != "" {
				if fr, ok := decodeHashes(e.Details.Frontier); ok {
					frontiers[e.Details.TreeSize] = fr
				}
				notes = append(notes, []byte(e.Details.Checkpoint))
				which = append(which, fmt.Sprintf("the checkpoint in event %d (%s)", id, object))
			}
		}
		return nil
	}
	err = fs.WalkDir(bucket, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		switch {
		case strings.HasSuffix(name, ".checkpoint") && path.Base(path.Dir(name)) == "checkpoints":
			b, err := fs.ReadFile(bucket, name)
			if err != nil {
				return err
			}
			notes = append(notes, b)
			which = append(which, "checkpoint object "+name)
		case strings.HasSuffix(name, ".ndjson.gz"):
			if err := readBatch(bucket, name, add); err != nil {
				return err
			}
		case strings.HasSuffix(name, ".json"):
			b, err := fs.ReadFile(bucket, name)
			if err != nil {
				return err
			}
			id, ok := eventID(b)
			if !ok {
				return &Failure{Reason: ReasonAltered, Detail: fmt.Sprintf("object %s does not start with its id ({\"id\":N,…})", name)}
			}
			// <type>_<id>_<created_at ms>.json (objectstore.EventKey)
			if parts := strings.Split(strings.TrimSuffix(path.Base(name), ".json"), "_"); len(parts) >= 3 && parts[len(parts)-2] != strconv.FormatInt(id, 10) {
				return &Failure{ID: id, Reason: ReasonReordered, Detail: fmt.Sprintf("it is in object %s, the key of event %s", name, parts[len(parts)-2])}
			}
			if err := add(id, b, name); err != nil {
				return err
			}
		default:
			return nil
		}
		rep.Objects++
		return nil
	})
	if err != nil {
		return rep, err
	}
	rep.Events = int64(len(events))
	cps, err := openCheckpoints(keys, append(notes, v.Trusted...), func(i int) string {
		if i < len(which) {
			return which[i]
		}
		return fmt.Sprintf("trusted checkpoint %d", i-len(which)+1)
	})
	if err != nil {
		return rep, err
	}
	// The same checkpoint comes as an object and as an event: count it once.
	cps = slices.CompactFunc(cps, func(a, b signedCheckpoint) bool { return a.Size == b.Size })
	rep.Checkpoints = len(cps)
	if len(cps) == 0 {
		return rep, &Failure{Reason: ReasonMissing, Detail: "the copy holds no checkpoint: none was signed while the destination received events, or checkpoints/ was not copied"}
	}
	size := cps[len(cps)-1].Size
	rep.Size = size
	every := cmpOr(v.Every, 100_000)
	var tree compactRange
	if _, ok := events[1]; !ok && v.Partial && len(events) > 0 {
		// A destination created after the first events: start from the first checkpoint whose
		// frontier the copy has and after which it has every event.
		first := int64(1 << 62)
		for id := range events {
			first = min(first, id)
		}
		for _, c := range cps {
			fr, ok := frontiers[c.Size]
			if c.Size < first-1 || !ok {
				continue
			}
			t, ok := compactFrom(c.Size, fr)
			if !ok || (c.Size > 0 && t.root() != c.Root) {
				return rep, &Failure{Reason: ReasonInconsistent, Detail: fmt.Sprintf("the frontier in the event of the checkpoint of size %d does not fold to its root", c.Size)}
			}
			tree, rep.From = t, c.Size
			break
		}
		for id := range events {
			if id <= rep.From {
				rep.Before++
			}
		}
	}
	ci := 0
	for ci < len(cps) && cps[ci].Size <= rep.From {
		ci++
	}
	good := rep.From
	start := time.Now()
	for id := rep.From + 1; id <= size; id++ {
		e, ok := events[id]
		if !ok && id == 1 && !v.Partial {
			return rep, &Failure{ID: id, Reason: ReasonMissing, Detail: "no object of the copy holds it: if the destination was created after the service's first events, verify with --partial from the first checkpoint the copy can start from (the ids before it are then not checked)"}
		}
		if !ok {
			return rep, &Failure{ID: id, Reason: ReasonMissing, Detail: fmt.Sprintf("no object of the copy holds it, though a checkpoint of size %d covers it (a destination that filters events, or a group's destination, does not receive every event: its bucket cannot be verified alone)", size)}
		}
		tree.push(e.hash)
		for ci < len(cps) && cps[ci].Size == tree.n {
			if tree.root() != cps[ci].Root {
				return rep, &Failure{ID: good + 1, Reason: ReasonInconsistent,
					Detail: fmt.Sprintf("the checkpoint of size %d does not match the tree the events make: an event in ids %d-%d was altered, removed or reordered after it was signed (or the checkpoints fork)",
						cps[ci].Size, good+1, cps[ci].Size)}
			}
			good = cps[ci].Size
			ci++
		}
		if v.Progress != nil && id%every == 0 {
			v.Progress(id, size, float64(id)/time.Since(start).Seconds())
		}
	}
	for id := range events {
		if id > size {
			rep.Uncovered++
		}
	}
	return rep, nil
}

// compactFrom is the tree of size leaves made of the roots of its complete subtrees, largest
// first (a checkpoint event's frontier); false when their number does not fit the size.
func compactFrom(size int64, hs []tlog.Hash) (compactRange, bool) {
	c := compactRange{n: size}
	for l := 62; l >= 0; l-- {
		if size>>l&1 == 1 {
			c.levels = append(c.levels, l)
		}
	}
	if len(c.levels) != len(hs) {
		return compactRange{}, false
	}
	c.hashes = slices.Clone(hs)
	return c, true
}

// decodeHashes decodes standard base64 hashes.
func decodeHashes(in []string) ([]tlog.Hash, bool) {
	out := make([]tlog.Hash, len(in))
	for i, s := range in {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) != tlog.HashSize {
			return nil, false
		}
		copy(out[i][:], b)
	}
	return out, true
}

// readBatch reads the events of a gzip NDJSON batch, <first id>-<last id>.ndjson.gz
// (objectstore.BatchKey), which must be in id order within those bounds.
func readBatch(bucket fs.FS, name string, add func(int64, []byte, string) error) error {
	f, err := bucket.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return &Failure{Reason: ReasonAltered, Detail: fmt.Sprintf("object %s is not gzip: %v", name, err)}
	}
	first, last := int64(1), int64(1<<62)
	base := strings.TrimSuffix(path.Base(name), ".ndjson.gz")
	if _, ids, ok := strings.Cut(base, "_"); ok {
		a, b, _ := strings.Cut(ids, "-")
		if x, err := strconv.ParseInt(a, 10, 64); err == nil {
			first = x
		}
		if y, err := strconv.ParseInt(b, 10, 64); err == nil {
			last = y
		}
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	prev := first - 1
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		id, ok := eventID(line)
		if !ok {
			return &Failure{ID: prev + 1, Reason: ReasonAltered, Detail: fmt.Sprintf("a line of object %s after id %d does not start with its id ({\"id\":N,…})", name, prev)}
		}
		if id <= prev || id > last {
			return &Failure{ID: id, Reason: ReasonReordered, Detail: fmt.Sprintf("it comes after id %d in object %s, which holds ids %d-%d in order", prev, name, first, last)}
		}
		if err := add(id, slices.Clone(line), name); err != nil {
			return err
		}
		prev = id
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		return &Failure{ID: prev + 1, Reason: ReasonAltered, Detail: fmt.Sprintf("object %s cannot be read after id %d: %v", name, prev, err)}
	}
	return nil
}

// keyList makes the verifiers of v.Keys.
func (v *Verifier) keyList() (note.Verifiers, error) {
	verifiers := make([]note.Verifier, 0, len(v.Keys))
	for _, k := range v.Keys {
		nv, err := note.NewVerifier(k)
		if err != nil {
			return nil, fmt.Errorf("verifier key %q: %w", k, err)
		}
		verifiers = append(verifiers, nv)
	}
	if len(verifiers) == 0 {
		return nil, errors.New("no verifier key given")
	}
	return note.VerifierList(verifiers...), nil
}

// openCheckpoints verifies the signed notes' signatures and parses them, refusing checkpoints
// of another origin than the first and two checkpoints of one size with different roots (a
// fork). which names the i-th note in failures. The result is sorted by size; a checkpoint
// given twice is there twice.
func openCheckpoints(keys note.Verifiers, notes [][]byte, which func(i int) string) ([]signedCheckpoint, error) {
	cps := make([]signedCheckpoint, 0, len(notes))
	roots := make(map[int64]tlog.Hash, len(notes)) // by size: one per size, or a fork
	for i, msg := range notes {
		n, err := note.Open(msg, keys)
		if err != nil {
			return nil, &Failure{Reason: ReasonBadSignature, Detail: fmt.Sprintf("%s does not verify with the keys given: %v", which(i), err)}
		}
		c, err := ParseCheckpoint([]byte(n.Text))
		if err != nil {
			return nil, &Failure{Reason: ReasonInconsistent, Detail: fmt.Sprintf("%s: %v", which(i), err)}
		}
		if len(cps) > 0 && c.Origin != cps[0].Origin {
			return nil, &Failure{Reason: ReasonInconsistent, Detail: fmt.Sprintf("%s is of log %q, not %q", which(i), c.Origin, cps[0].Origin)}
		}
		if r, ok := roots[c.Size]; ok && r != c.Root {
			return nil, &Failure{Reason: ReasonInconsistent, Detail: fmt.Sprintf("fork: two checkpoints of size %d with different roots (%s is one)", c.Size, which(i))}
		}
		roots[c.Size] = c.Root
		cps = append(cps, signedCheckpoint{c, msg})
	}
	slices.SortStableFunc(cps, func(a, b signedCheckpoint) int { return int(a.Size - b.Size) })
	return cps, nil
}

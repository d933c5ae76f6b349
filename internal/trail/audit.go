package trail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/auditstream/auditstream/internal/store"
)

// Auditor checks the service's own trail the way `auditstream verify` does, from the store:
// every checkpoint's signature, one tree under all of them, and every stored event its leaf.
// Most audits check what was added since the last one (the new checkpoints, and the new
// leaves on the tree the last verified); a full audit, every FullEvery, reads everything
// again to find what changed after it was checked. Reading the whole history every few
// minutes would cost more the longer the service runs, and would compete with the catch-up
// after a restart.
//
// What it finds is an ERROR naming the id, a Status problem and a metric, until an audit
// passes again. Holes in the log stay a Status problem for as long as they last, but are an
// ERROR line only when they change: they never heal, and an administrator who re-published
// what the store kept of them would otherwise read the same line every audit. Check is not
// safe for concurrent use.
type Auditor struct {
	Prover *Prover
	// Keys are the verifier keys: the service's own and any it rotated out.
	Keys []string
	// UpTo returns how far the store is complete (the store consumer's acknowledged position):
	// later events may not be stored yet, which is not a loss.
	UpTo   func(ctx context.Context) (int64, error)
	Status *Status
	Logger *slog.Logger
	// Failed, when set, is called with 1 when an audit failed and 0 when one passed.
	Failed func(v int)
	// Holes, when set, lists the ids the log no longer holds inside its range
	// (eventlog.Log.Holes); Size the tree's size.
	Holes func(ctx context.Context) ([]int64, error)
	Size  func(ctx context.Context) (int64, error)
	// FullEvery is how often an audit is full. The first after a start comes at a random
	// time within it, so that restarts neither put it off for ever nor all run it at once.
	// Until then, audits start from the latest checkpoint, whose stored tree must make its
	// signed root. 0: every audit is full.
	FullEvery time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time

	holes    string    // the holes the last audit found, as reported
	verified *Frontier // the tree the last audit that passed verified
	afterID  int64     // the next audit reads the checkpoints stored after this ID
	fullDue  time.Time
	lost     int64 // leaves of lost events found since the last full audit, and the first
	lostID   int64
}

// Check runs one audit. It returns the Failure it found (also recorded), or another error when
// it could not read what it checks.
func (a *Auditor) Check(ctx context.Context) error {
	if a.Holes != nil && a.Size != nil {
		size, err := a.Size(ctx)
		if err != nil {
			return err
		}
		msg, err := HoleReport(ctx, a.Holes, size)
		if err != nil {
			return err
		}
		if msg != "" && msg != a.holes {
			a.Logger.Error("trail: " + msg)
		}
		a.holes = msg
		a.Status.SetHoles(msg)
	}
	now := time.Now()
	if a.Now != nil {
		now = a.Now()
	}
	if a.fullDue.IsZero() && a.FullEvery > 0 {
		a.fullDue = now.Add(rand.N(a.FullEvery))
	}
	full := a.FullEvery <= 0 || !now.Before(a.fullDue)
	var err error
	if !full && a.verified == nil {
		err = a.startFromLatest(ctx)
		if _, ok := errors.AsType[*Failure](err); err != nil && !ok {
			// The stored tree could not be read: leaving the audits off until it can would
			// find nothing, so this one reads everything.
			a.Logger.Warn("trail: the audit reads everything: the latest checkpoint's tree could not be read", "err", err)
			full, err = true, nil
		}
	}
	var rep Report
	if err == nil {
		var upTo int64
		if upTo, err = a.UpTo(ctx); err != nil {
			return err
		}
		if upTo <= 0 {
			return nil // nothing stored yet
		}
		// One page ahead only: the audit shares the machine with ingest.
		v := &Verifier{Keys: a.Keys, UpTo: upTo, AllowLost: true, Parallel: 1}
		src := &sinceSource{Prover: a.Prover}
		if !full {
			v.Start, src.after = a.verified, a.afterID
		}
		if rep, err = v.Verify(ctx, src); err == nil && rep.End.Size > 0 {
			a.verified, a.afterID = &rep.End, src.resume(rep.End.Size)
		}
	}
	var fail *Failure
	switch {
	case errors.As(err, &fail) && fail.Reason == ReasonMissing && fail.ID == 0:
		return nil // no checkpoint yet
	case errors.As(err, &fail):
		msg := fmt.Sprintf("audit failed: %s", fail.Error())
		a.Logger.Error("trail: "+msg, "id", fail.ID, "reason", fail.Reason)
		a.Status.SetAudit(msg)
		if a.Failed != nil {
			a.Failed(1)
		}
		return fail
	case err != nil:
		return err
	}
	if full {
		a.fullDue = now.Add(a.FullEvery)
		a.lost, a.lostID = 0, 0
	}
	// Only up to the tree the next audit starts from: it reads the leaves after it again.
	if rep.EndLost > 0 {
		if a.lost == 0 {
			a.lostID = rep.FirstLost
		}
		a.lost += rep.EndLost
	}
	if a.lost > 0 {
		// Reported at the loss by the writer; said again here, and after a restart by the
		// first full audit.
		a.Status.SetAudit(fmt.Sprintf("the tree records %d event(s) the log lost without a copy in the store, the first id %d", a.lost, a.lostID))
	} else {
		a.Status.SetAudit("")
	}
	if a.Failed != nil {
		a.Failed(0)
	}
	a.Logger.Debug("trail: audit passed", "full", full, "events", rep.Events, "size", rep.Size)
	return nil
}

// startFromLatest takes the tree of the latest checkpoint as verified, once its stored
// subtrees make the root it signed (the empty tree when there is none yet): the audits until
// the first full one check what is added to it.
func (a *Auditor) startFromLatest(ctx context.Context) error {
	cp, err := a.Prover.Latest(ctx)
	if errors.Is(err, ErrNoCheckpoint) {
		a.verified, a.afterID = &Frontier{}, 0
		return nil
	}
	if err != nil {
		return err
	}
	keys, err := (&Verifier{Keys: a.Keys}).keyList()
	if err != nil {
		return err
	}
	cps, err := openCheckpoints(keys, [][]byte{cp.Note}, func(int) string { return "the latest checkpoint" })
	if err != nil {
		return err
	}
	f, err := a.Prover.Frontier(ctx, cps[0].Size)
	if err != nil {
		return err
	}
	if f.Root() != cps[0].Root {
		return &Failure{Reason: ReasonInconsistent, Detail: fmt.Sprintf("the stored tree does not make the root of the latest checkpoint (size %d)", cps[0].Size)}
	}
	a.verified, a.afterID = &f, cp.ID
	return nil
}

// sinceSource is the Prover as a Source of the checkpoints stored after an ID, which
// remembers the ID and size of those it served.
type sinceSource struct {
	*Prover
	after int64
	seen  []store.TrailCheckpoint // without their notes
}

func (c *sinceSource) Checkpoints(ctx context.Context) ([][]byte, error) {
	return c.checkpointsAfter(ctx, c.after, func(cp store.TrailCheckpoint) {
		c.seen = append(c.seen, store.TrailCheckpoint{ID: cp.ID, Size: cp.Size})
	})
}

// resume returns the ID the next audit reads the checkpoints after, when this one verified
// the tree up to size n: the last of those served, in the order stored, before the first
// larger than n (which no leaves matched yet).
func (c *sinceSource) resume(n int64) int64 {
	id := c.after
	for _, cp := range c.seen {
		if cp.Size > n {
			break
		}
		id = cp.ID
	}
	return id
}

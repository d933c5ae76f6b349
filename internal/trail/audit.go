package trail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// Auditor checks the service's own trail the way `auditstream verify` does, from the store:
// every checkpoint's signature, one tree under all of them, and every stored event its leaf.
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

	holes string // the holes the last audit found, as reported
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
	upTo, err := a.UpTo(ctx)
	if err != nil {
		return err
	}
	if upTo <= 0 {
		return nil // nothing stored yet
	}
	// One page ahead only: the audit shares the machine with ingest.
	v := &Verifier{Keys: a.Keys, UpTo: upTo, AllowLost: true, Parallel: 1}
	rep, err := v.Verify(ctx, a.Prover)
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
	if rep.Lost > 0 {
		// Reported at the loss by the writer; said again here so that it survives a restart.
		a.Status.SetAudit(fmt.Sprintf("the tree records %d event(s) the log lost without a copy in the store, the first id %d", rep.Lost, rep.FirstLost))
	} else {
		a.Status.SetAudit("")
	}
	if a.Failed != nil {
		a.Failed(0)
	}
	a.Logger.Debug("trail: audit passed", "events", rep.Events, "size", rep.Size)
	return nil
}

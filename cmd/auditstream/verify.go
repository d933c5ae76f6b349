package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/auditstream/auditstream/internal/app"
	"github.com/auditstream/auditstream/internal/trail"
)

// verifyCmd checks a running service's trail (and optionally an NDJSON copy of its events)
// with nothing but the public key: what an auditor runs.
func verifyCmd() *cobra.Command {
	var url, ndjson, save, bucket, csvFile string
	var partial bool
	var wait time.Duration
	var keys, trusted []string
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Verify a running service's tamper-evident trail with its public key (token from AUDITSTREAM_TOKEN: an administrator's read token)",
		Long: `Verify reads every checkpoint the service signed and every leaf of its tree with the stored
events, and checks that each checkpoint is signed by one of the --key public keys, that all of
them (and every --trusted-checkpoint you kept from earlier runs) are roots of one tree, and
that every stored event (or every event of --ndjson, one JSON event per line as destinations
receive them) is its leaf at its own id. It first waits (up to --wait) until the service
says its store holds every event of its latest checkpoint (stored_up_to): stored events after
that id may still be on their way, and verify fails as incomplete if they are still not
stored when --wait ends, rather than calling them missing or the trail OK. It stops at the first failure, names the id and why
(missing, altered, reordered, bad_signature, inconsistent, lost) and exits with status 1.

With --csv FILE it checks a CSV export of the UI (audit_events.csv, whose last column is each
event's JSON as stored): every row's visible columns must be what its JSON says, and the JSON
must be the leaf of its id in the tree of the service's latest checkpoint, proved with the
service's inclusion proofs against the checkpoint's signed root. It names the first id that
fails (altered: a cell or the JSON was changed; not_included: no proof leads to the signed
root). An export holds the events its filters chose, so it cannot show that none is missing.

With --bucket DIR it needs no service and no token: it verifies a local copy of an S3 or GCS
destination's bucket (aws s3 sync, gcloud storage rsync): each checkpoint of checkpoints/ and
of the checkpoint events is checked against the keys, the tree is rebuilt from the events of
the per-event objects and the gzip NDJSON batches (their exact bytes are the leaves), and
every checkpoint the copy covers must be its root. A bucket of a destination that filters
events (or a group's) does not hold every event: it fails, naming the first missing id.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if bucket != "" {
				return verifyBucket(cmd, bucket, keys, trusted, partial)
			}
			token := os.Getenv("AUDITSTREAM_TOKEN")
			if token == "" {
				return errors.New("set AUDITSTREAM_TOKEN to an administrator's token (read_api is enough)")
			}
			if len(keys) == 0 {
				return errors.New("give the service's public key with --key (GET /api/v4/auditstream/trail/checkpoint shows it; check it against one you got out of band)")
			}
			if csvFile != "" {
				return verifyCSV(cmd, &trail.HTTPSource{BaseURL: url, Token: token}, keys, trusted, csvFile)
			}
			v := &trail.Verifier{Keys: keys, Every: 100_000, Progress: func(done, total int64, rate float64) {
				fmt.Fprintf(cmd.ErrOrStderr(), "verified %d of %d events (%.0f/s)\n", done, total, rate)
			}}
			for _, path := range trusted {
				b, err := os.ReadFile(path)
				if err != nil {
					return fmt.Errorf("trusted checkpoint: %w", err)
				}
				v.Trusted = append(v.Trusted, b)
			}
			if ndjson != "" {
				var r io.Reader = os.Stdin
				if ndjson != "-" {
					f, err := os.Open(ndjson)
					if err != nil {
						return err
					}
					defer f.Close()
					r = f
				}
				v.Events = trail.NDJSON(r)
			}
			src := &trail.HTTPSource{BaseURL: url, Token: token}
			start := time.Now()
			deadline := start.Add(wait)
			var rep trail.Report
			for {
				if ndjson == "" {
					v.StoredUpTo = storedUpTo(cmd.Context(), src, deadline)
				}
				var err error
				rep, err = v.Verify(cmd.Context(), src)
				if fail, ok := errors.AsType[*trail.Failure](err); ok {
					fmt.Fprintf(cmd.OutOrStdout(), "FAIL %s\n", fail.Error())
					return fmt.Errorf("the trail does not verify")
				}
				if err != nil {
					return err
				}
				// A checkpoint signed after the wait may cover events the store has not yet:
				// wait for them and verify again, until the deadline.
				if rep.NotYetStored == 0 || !time.Now().Before(deadline) {
					break
				}
			}
			if rep.NotYetStored > 0 {
				// The service's word that they are on their way is not proof: a service that
				// deleted them could say the same. Not OK until they are checked.
				fmt.Fprintf(cmd.OutOrStdout(), "INCOMPLETE: %d stored events after id %d (how far the service says its store is complete) were still not stored after --wait %s: their leaves are in the tree, their bytes not checked\n",
					rep.NotYetStored, *v.StoredUpTo, wait)
				return fmt.Errorf("the trail is not fully verified: %d stored events not yet stored", rep.NotYetStored)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "OK: %d events in the tree, %d checkpoints, %d events checked byte for byte (%d from the store's copies after the log lost them), in %s\n",
				rep.Size, rep.Checkpoints, rep.Events, rep.Recovered, time.Since(start).Round(time.Millisecond))
			if save != "" {
				latest, err := src.Latest(cmd.Context())
				if err != nil {
					return err
				}
				if err := os.WriteFile(save, []byte(latest.Checkpoint), 0o644); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "saved the checkpoint of size %d to %s: pass it with --trusted-checkpoint next time\n", latest.TreeSize, save)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&url, "url", "http://127.0.0.1:8080", "the service's base URL")
	f.StringArrayVar(&keys, "key", nil, "a public (verifier) key checkpoints may be signed with; repeat for keys rotated out")
	f.StringArrayVar(&trusted, "trusted-checkpoint", nil, "a checkpoint file kept from an earlier run (--save-checkpoint); the trail must agree with it")
	f.StringVar(&ndjson, "ndjson", "", "check the events of this NDJSON file (- for stdin) instead of the store's: an export or a destination's copy")
	f.StringVar(&save, "save-checkpoint", "", "after a successful run, write the latest checkpoint to this file")
	f.StringVar(&bucket, "bucket", "", "verify this local copy of an S3/GCS destination's bucket instead of a service (no token needed)")
	f.BoolVar(&partial, "partial", false, "with --bucket: a copy that lacks the first ids (a destination created later) is checked from the first checkpoint it can start from")
	f.DurationVar(&wait, "wait", 30*time.Second, "how long to wait for the service's store to hold the events of its latest checkpoint (stored_up_to); events still not stored then make verify fail as incomplete")
	f.StringVar(&csvFile, "csv", "", "verify the rows of this CSV export of the UI (with its Event JSON column) against the service's signed checkpoint; a filtered export cannot prove that no event is missing")
	cmd.MarkFlagsMutuallyExclusive("bucket", "ndjson", "csv")
	cmd.MarkFlagsMutuallyExclusive("csv", "save-checkpoint")
	cmd.MarkFlagsMutuallyExclusive("bucket", "save-checkpoint")
	return cmd
}

// verifyCSV is verify --csv: the rows of a CSV export of the UI, each checked against its JSON
// and its JSON against the signed tree.
func verifyCSV(cmd *cobra.Command, src *trail.HTTPSource, keys, trusted []string, path string) error {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	v := &trail.Verifier{Keys: keys, Every: 10_000, Progress: func(done, _ int64, _ float64) {
		fmt.Fprintf(cmd.ErrOrStderr(), "verified %d rows\n", done)
	}}
	for _, p := range trusted {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("trusted checkpoint: %w", err)
		}
		v.Trusted = append(v.Trusted, b)
	}
	start := time.Now()
	rep, err := v.VerifyCSV(cmd.Context(), r, src)
	if fail, ok := errors.AsType[*trail.Failure](err); ok {
		fmt.Fprintf(cmd.OutOrStdout(), "FAIL %s\n", fail.Error())
		return fmt.Errorf("the CSV export does not verify")
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "OK: %d rows, each as its event's JSON says and that JSON a leaf of the tree of the signed checkpoint of size %d, in %s\n",
		rep.Rows, rep.TreeSize, time.Since(start).Round(time.Millisecond))
	fmt.Fprintln(cmd.OutOrStdout(), "an export holds the events its filters chose: this proves its rows, not that no event is missing from it (verify without --csv checks the whole trail)")
	return nil
}

// verifyBucket is verify --bucket: a local copy of an object-store destination's bucket,
// checked with the public keys alone.
func verifyBucket(cmd *cobra.Command, dir string, keys, trusted []string, partial bool) error {
	if len(keys) == 0 {
		return errors.New("give the service's public key with --key (auditstream trail public-key prints it)")
	}
	if st, err := os.Stat(dir); err != nil {
		return err
	} else if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	v := &trail.Verifier{Keys: keys, Partial: partial, Every: 100_000, Progress: func(done, total int64, rate float64) {
		fmt.Fprintf(cmd.ErrOrStderr(), "verified %d of %d events (%.0f/s)\n", done, total, rate)
	}}
	for _, path := range trusted {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("trusted checkpoint: %w", err)
		}
		v.Trusted = append(v.Trusted, b)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "reading %s\n", dir)
	start := time.Now()
	rep, err := v.VerifyBucket(cmd.Context(), os.DirFS(dir))
	if fail, ok := errors.AsType[*trail.Failure](err); ok {
		fmt.Fprintf(cmd.OutOrStdout(), "FAIL %s\n", fail.Error())
		return fmt.Errorf("the bucket does not verify")
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "OK: %d objects, %d events, %d checkpoints; the tree of %d events rebuilt and matched, %d later events not covered by a checkpoint yet, in %s\n",
		rep.Objects, rep.Events, rep.Checkpoints, rep.Size, rep.Uncovered, time.Since(start).Round(time.Millisecond))
	if rep.From > 0 {
		fmt.Fprintf(cmd.OutOrStdout(), "(--partial: rebuilt from the checkpoint of size %d on; the copy's %d events up to it were not checked)\n", rep.From, rep.Before)
	}
	return nil
}

// trailCmd manages the trail's signing key.
func trailCmd(cfg *app.Config) *cobra.Command {
	cmd := &cobra.Command{Use: "trail", Short: "The tamper-evident trail's signing key, and re-publishing what the log lost"}
	var name string
	newKey := &cobra.Command{Use: "new-key", Short: "Print a new signing key (for AUDITSTREAM_TRAIL_KEY) and its public key", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			skey, vkey, err := trail.GenerateKey(name)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "AUDITSTREAM_TRAIL_KEY=%s\npublic key: %s\n", skey, vkey)
			return nil
		}}
	newKey.Flags().StringVar(&name, "name", "auditstream", "the key's name (the log's origin)")
	publicKey := &cobra.Command{Use: "public-key", Short: "Print the public key of the configured signing key (AUDITSTREAM_TRAIL_KEY or trail.key in the data dir)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.TrailKey == "" {
				if _, err := os.Stat(cfg.DataDir + "/" + trail.KeyFile); err != nil {
					return fmt.Errorf("no signing key: AUDITSTREAM_TRAIL_KEY is not set and %w", err)
				}
			}
			k, _, err := trail.LoadKey(cfg.TrailKey, cfg.DataDir, "auditstream")
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), k.VerifierKey)
			return nil
		}}
	cmd.AddCommand(newKey, publicKey, republishCmd())
	return cmd
}

// storedUpTo waits until the service's store holds every event of its latest checkpoint, or
// until deadline, and returns how far the store is complete (nil when the service does not say,
// or could not be asked: Verify meets the error again).
func storedUpTo(ctx context.Context, src *trail.HTTPSource, deadline time.Time) *int64 {
	for {
		latest, err := src.Latest(ctx)
		if err != nil || latest.StoredUpTo == nil || *latest.StoredUpTo >= latest.TreeSize || !time.Now().Before(deadline) {
			return latest.StoredUpTo
		}
		select {
		case <-ctx.Done():
			return latest.StoredUpTo
		case <-time.After(250 * time.Millisecond):
		}
	}
}

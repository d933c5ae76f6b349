package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/auditstream/auditstream/internal/trail"
)

// republishReport is the answer of POST /api/v4/auditstream/trail/republish (docs/api.md).
type republishReport struct {
	Republished  int    `json:"republished"`
	IDs          string `json:"ids"`
	Destinations []struct {
		ID        int64  `json:"id"`
		Name      string `json:"name"`
		Delivered int    `json:"delivered"`
		Failed    int    `json:"failed"`
		LastError string `json:"last_error"`
	} `json:"destinations"`
	AlreadyRepublished int    `json:"already_republished"`
	SkippedLost        int    `json:"skipped_lost"`
	LostIDs            string `json:"lost_ids"`
	StreamOnly         int    `json:"stream_only"`
	Missing            int    `json:"missing"`
	Remaining          int    `json:"remaining"`
}

// republishCmd asks a running service to re-publish the events its log lost from the store's
// copies (trail republish).
func republishCmd() *cobra.Command {
	var url, token, ids string
	cmd := &cobra.Command{
		Use:   "republish",
		Short: "Deliver again, with their original ids, the events the log lost and the store kept (an administrator's api token)",
		Long: `Republish asks the service at --url to hand the events its log lost, and its store kept (the
trail's recovered leaves, and stored events the log lost after the tree had them), to every enabled destination whose filters take them, with their
original ids and bytes, as normal delivery would have (a destination created after an event
does not get it). Failures become the destination's dead letters, to redeliver later. Events
re-published before are skipped, so running it again sends nothing new; events the log lost
without a copy (lost) cannot be delivered and are counted. Without --ids it takes every
recovered id not yet re-published, 1,000 per request, until none is left.

Delivery is at least once: a destination that received an event before the log lost it
receives it again, with the same id (receivers de-duplicate on id).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if token == "" {
				token = os.Getenv("AUDITSTREAM_TOKEN")
			}
			if token == "" {
				return errors.New("give an administrator's api token with --token or AUDITSTREAM_TOKEN")
			}
			if ids != "" {
				if _, err := trail.ParseIDs(ids, 1000); err != nil {
					return fmt.Errorf("--ids: %w", err)
				}
			}
			out := cmd.OutOrStdout()
			total := 0
			for {
				rep, err := republishOnce(cmd, url, token, ids)
				if err != nil {
					return err
				}
				total += rep.Republished
				fmt.Fprintf(out, "re-published %d event(s) (ids %s)\n", rep.Republished, rep.IDs)
				for _, d := range rep.Destinations {
					fmt.Fprintf(out, "  destination %d %q: %d delivered, %d failed", d.ID, d.Name, d.Delivered, d.Failed)
					if d.Failed > 0 {
						fmt.Fprintf(out, " (now dead letters; last error: %s)", d.LastError)
					}
					fmt.Fprintln(out)
				}
				fmt.Fprintf(out, "skipped: %d already re-published, %d lost without a copy (ids %s), %d stream-only (never stored), %d no longer stored\n",
					rep.AlreadyRepublished, rep.SkippedLost, rep.LostIDs, rep.StreamOnly, rep.Missing)
				if ids != "" || rep.Remaining == 0 || rep.Republished == 0 {
					break
				}
				fmt.Fprintf(out, "%d left: next request\n", rep.Remaining)
			}
			if total > 0 {
				fmt.Fprintln(out, "delivery is at least once: a destination that had these events before the log lost them receives them again, with the same ids")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&url, "url", "http://127.0.0.1:8080", "the service's base URL")
	f.StringVar(&token, "token", "", "an administrator's token with the api scope (default $AUDITSTREAM_TOKEN)")
	f.StringVar(&ids, "ids", "", "only these recovered ids, ascending (5-9,12; at most 1,000); default every recovered id not yet re-published")
	return cmd
}

func republishOnce(cmd *cobra.Command, url, token, ids string) (republishReport, error) {
	var rep republishReport
	body, _ := json.Marshal(map[string]string{"ids": ids})
	req, err := http.NewRequestWithContext(cmd.Context(), http.MethodPost, strings.TrimSuffix(url, "/")+"/api/v4/auditstream/trail/republish", bytes.NewReader(body))
	if err != nil {
		return rep, err
	}
	req.Header.Set("PRIVATE-TOKEN", token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return rep, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return rep, err
	}
	if resp.StatusCode != http.StatusOK {
		return rep, fmt.Errorf("the service answered %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return rep, json.Unmarshal(b, &rep)
}

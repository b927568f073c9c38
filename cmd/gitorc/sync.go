package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/spf13/cobra"
)

// syncPollEvery is how often gitorc sync --wait looks at its request.
const syncPollEvery = 250 * time.Millisecond

func newSyncCmd() *cobra.Command {
	var wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Sync the cluster with its Git source now (also while suspended or outside sync windows)",
		Long: `Asks the leader to sync now: fetch the followed ref and apply it if it moved. The
request goes through the cluster's store, so any manager takes it. With --wait, waits
for the outcome and prints it; the exit code is 1 when the revision failed to load or
its rollout degraded.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			c := newAPIClient(cmd)
			req, err := c.Sync(cmd.Context())
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if !wait {
				if format == outJSON {
					return writeJSON(w, req)
				}
				fmt.Fprintf(w, "sync requested (request %s); gitorc sync --wait waits for its outcome\n", req.ID)
				return nil
			}
			if format == outText {
				fmt.Fprintf(w, "sync requested (request %s)\n", req.ID)
			}
			done, err := waitRequest(cmd.Context(), c, req.ID, timeout, w, format == outText)
			if err != nil {
				return err
			}
			if format == outJSON {
				if err := writeJSON(w, done); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(w, "%s: %s\n", done.Result, done.Message)
			}
			if done.Result == api.SyncFailed || done.Result == api.SyncDegraded {
				return &exitError{code: 1, err: errors.New("")}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the sync to end and print its outcome")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "with --wait, give up after this long (0: never)")
	addOutputFlag(cmd)
	return cmd
}

// waitRequest polls a sync request until its sync ended.
func waitRequest(ctx context.Context, c *client.Client, id string, timeout time.Duration, w io.Writer, progress bool) (api.SyncRequest, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	started := false
	var pulls pullWatch
	for {
		req, err := c.SyncRequest(ctx, id)
		if err != nil && ctx.Err() == nil {
			if client.StatusOf(err) == http.StatusNotFound {
				return req, err
			}
			// A manager restarting or an election: try again.
		}
		if err == nil && req.Done() {
			return req, nil
		}
		if err == nil && !started && !req.Pending() && progress {
			started = true
			fmt.Fprintf(w, "syncing (taken by manager %s)\n", shortID(req.Node))
		}
		if started {
			pulls.poll(ctx, c, w) // a line per node and image as it is pulled
		}
		select {
		case <-ctx.Done():
			if started {
				return req, fmt.Errorf("sync request %s still running after %s: see gitorc status", id, timeout)
			}
			return req, fmt.Errorf("sync request %s not taken by a leader after %s: see gitorc status (suspended leaders still take manual syncs; is there a leader?)", id, timeout)
		case <-time.After(syncPollEvery):
		}
	}
}

func newSuspendCmd() *cobra.Command {
	return newSuspensionCmd("suspend", "Stop automatic syncs (polls, webhooks, local changes); gitorc sync still syncs",
		"automatic syncs suspended: polls, webhooks and local changes no longer sync; gitorc sync still does; gitorc resume ends this")
}

func newResumeCmd() *cobra.Command {
	return newSuspensionCmd("resume", "Resume automatic syncs", "automatic syncs resumed")
}

// newSuspensionCmd is gitorc suspend or resume: it calls the client's
// Suspend or Resume and prints done, or the suspension as JSON.
func newSuspensionCmd(verb, short, done string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   verb,
		Short: short,
		Long: short + `.
With -o json: {"suspended": true|false}, the state after the change.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			c := newAPIClient(cmd)
			change := c.Resume
			if verb == "suspend" {
				change = c.Suspend
			}
			st, err := change(cmd.Context())
			if err != nil {
				return err
			}
			if format == outJSON {
				return writeJSON(cmd.OutOrStdout(), st)
			}
			fmt.Fprintln(cmd.OutOrStdout(), done)
			return nil
		},
	}
	addOutputFlag(cmd)
	return cmd
}

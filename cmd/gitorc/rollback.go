package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/gitorc/gitorc/reconcile"
	"github.com/spf13/cobra"
)

func newRollbackCmd() *cobra.Command {
	var to string
	var wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "rollback --to REV",
		Short: "Pin the cluster to an older revision until gitorc sync or the next commit",
		Long: `Rolls the cluster back to REV (a commit, full or abbreviated, as gitorc history
shows them) and holds it there: automatic syncs keep the cluster on REV, restoring drift
to it, until gitorc sync or a new commit on the followed ref releases the pin.
gitorc status says so while it holds. A revision that failed before is refused.

For one service only, gitorc service rollback returns it to its previous spec.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			if to == "" {
				return errors.New("which revision? give --to REV (gitorc history lists them)")
			}
			c := newAPIClient(cmd)
			ans, err := c.Rollback(cmd.Context(), to)
			if err != nil {
				return err
			}
			var req api.SyncRequest
			if wait {
				if req, err = waitRollback(cmd.Context(), c, ans.Request, timeout); err != nil {
					return err
				}
			}
			if format == outJSON {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"pin": ans.Pin, "request": ans.Request, "outcome": req})
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "pinned to %s by rollback (until the next commit or gitorc sync)\n", reconcile.ShortCommit(ans.Pin.Revision))
			if !wait {
				fmt.Fprintln(w, "the leader applies it now: gitorc status shows the rollout")
				return nil
			}
			fmt.Fprintf(w, "%s: %s\n", req.Result, req.Message)
			if req.Result != api.SyncSynced {
				return fmt.Errorf("rollback to %s: %s", reconcile.ShortCommit(ans.Pin.Revision), req.Result)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the revision to roll back to (a commit, full or abbreviated)")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the rollback's rollout ends, and fail if it does not sync")
	cmd.Flags().DurationVar(&timeout, "timeout", 15*time.Minute, "how long --wait waits")
	addOutputFlag(cmd)
	return cmd
}

// waitRollback polls the sync state until the request is done.
func waitRollback(ctx context.Context, c *client.Client, id string, timeout time.Duration) (api.SyncRequest, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		rep, err := c.SyncStatus(ctx)
		if err != nil {
			return api.SyncRequest{}, err
		}
		for _, r := range rep.State.Requests {
			if r.ID == id && r.Done() {
				return r, nil
			}
		}
		select {
		case <-ctx.Done():
			return api.SyncRequest{}, fmt.Errorf("request %s not served after %s (gitorc status)", id, timeout)
		case <-tick.C:
		}
	}
}

// printPin is gitorc status's word on a rollback pin and on self-heal.
func printPin(w io.Writer, st api.SyncState) {
	if p := st.Pin; p != nil {
		fmt.Fprintf(w, "pinned to %s by rollback (until the next commit or gitorc sync)", reconcile.ShortCommit(p.Revision))
		if p.Head == "" {
			fmt.Fprint(w, ": the leader has not applied it yet")
		}
		fmt.Fprintln(w)
	}
	if st.Source.URL != "" && st.Source.SelfHeal == reconcile.SelfHealOff {
		fmt.Fprintln(w, "self-heal:  off (gitorc diff shows drift; gitorc sync restores it)")
	}
}

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/gitorc/gitorc/reconcile"
	"github.com/gitorc/gitorc/reconcile/storecluster"
	"github.com/spf13/cobra"
)

var hexPrefix = regexp.MustCompile(`^[0-9a-f]{4,40}$`)

// resolvePin finds the commit a rollback names: a revision the history
// knows by a unique prefix, else whatever the source's clone resolves.
func resolvePin(ctx context.Context, df *differ, st api.SyncState, hist []api.SyncRecord, rev string) (string, error) {
	rev = strings.TrimSpace(rev)
	if hexPrefix.MatchString(rev) {
		known := map[string]bool{}
		for _, h := range hist {
			known[h.Revision] = true
		}
		known[st.Revision], known[st.LastGoodRevision] = true, true
		var found []string
		for c := range known {
			if c != "" && strings.HasPrefix(c, rev) {
				found = append(found, c)
			}
		}
		switch len(found) {
		case 1:
			return found[0], nil
		case 0:
		default:
			slices.Sort(found)
			return "", fmt.Errorf("revision %s is ambiguous: %s", rev, strings.Join(found, ", "))
		}
	}
	src, err := df.source(st.Source)
	if err != nil {
		return "", err
	}
	if _, err := src.Fetch(ctx); err != nil {
		return "", err
	}
	return src.ResolveRevision(rev)
}

// Rollback is POST /v1/sync/rollback: the cluster is pinned to an older
// revision (in the sync state, so any manager can take the request) and a
// sync is requested for the leader to apply it; the pin holds until
// gitorc sync or a new commit on the followed ref. Revisions the history
// does not know are resolved in the clone of gitorc diff (one per node).
func (df *differ) Rollback(ctx context.Context, req controlapi.RollbackRequest) (controlapi.RollbackAnswer, error) {
	fail := func(code int, err error) (controlapi.RollbackAnswer, error) {
		return controlapi.RollbackAnswer{}, controlapi.WithStatus(code, err)
	}
	cl := storecluster.New(df.d.store)
	st, err := cl.Sync(ctx)
	if err != nil {
		return fail(http.StatusServiceUnavailable, err)
	}
	if st.Source.URL == "" {
		return fail(http.StatusConflict, errors.New("the cluster follows no Git source: there is no revision to roll back to"))
	}
	hist, err := cl.History(ctx)
	if err != nil {
		return fail(http.StatusServiceUnavailable, err)
	}
	commit, err := resolvePin(ctx, df, st, hist, req.Revision)
	if err != nil {
		return fail(http.StatusBadRequest, err)
	}
	if slices.Contains(st.FailedRevisions, commit) {
		return fail(http.StatusConflict, fmt.Errorf("revision %s failed before (gitorc history says why): roll back to a good one", shortCommit(commit)))
	}
	ans := controlapi.RollbackAnswer{Pin: api.SyncPin{Revision: commit, RequestedAt: time.Now().UTC()}, Request: rollbackRequestID()}
	_, err = cl.UpdateSync(ctx, func(s *api.SyncState) error {
		pin := ans.Pin
		s.Pin = &pin
		// A manual sync request: served at once, suspended or not. A
		// pin not in effect yet is applied by it, not released.
		s.Requests = append(s.Requests, api.SyncRequest{ID: ans.Request, Trigger: api.TriggerManual, At: ans.Pin.RequestedAt})
		return nil
	})
	if err != nil {
		return fail(http.StatusServiceUnavailable, err)
	}
	df.d.log.Info("rollback requested", "revision", shortCommit(commit))
	return ans, nil
}

func rollbackRequestID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "rollback-" + hex.EncodeToString(b[:])
}

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
			fmt.Fprintf(w, "pinned to %s by rollback (until the next commit or gitorc sync)\n", shortCommit(ans.Pin.Revision))
			if !wait {
				fmt.Fprintln(w, "the leader applies it now: gitorc status shows the rollout")
				return nil
			}
			fmt.Fprintf(w, "%s: %s\n", req.Result, req.Message)
			if req.Result != api.SyncSynced {
				return fmt.Errorf("rollback to %s: %s", shortCommit(ans.Pin.Revision), req.Result)
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
		fmt.Fprintf(w, "pinned to %s by rollback (until the next commit or gitorc sync)", shortCommit(p.Revision))
		if p.Head == "" {
			fmt.Fprint(w, ": the leader has not applied it yet")
		}
		fmt.Fprintln(w)
	}
	if st.Source.URL != "" && st.Source.SelfHeal == reconcile.SelfHealOff {
		fmt.Fprintln(w, "self-heal:  off (gitorc diff shows drift; gitorc sync restores it)")
	}
}

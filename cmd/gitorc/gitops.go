package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/reconcile"
	"github.com/gitorc/gitorc/reconcile/gitsource"
	"github.com/gitorc/gitorc/reconcile/storecluster"
	"github.com/spf13/cobra"
)

func init() {
	controlMounts = append(controlMounts, mountSync)
	register(newStatusCmd)
}

// gitops runs the GitOps loop while this manager leads: it follows the
// source recorded in the cluster's sync state (bootstrap --repo sets it),
// so whichever manager leads follows the same repository.
func (d *daemon) gitops(ctx context.Context) error {
	cl := storecluster.New(d.store)
	st, err := cl.Sync(ctx)
	if err != nil {
		return err
	}
	if st.Source.URL == "" && d.state.Source != nil {
		st.Source = *d.state.Source
		if err := cl.Commit(ctx, reconcile.Commit{State: st}); err != nil {
			return fmt.Errorf("record the source: %w", err)
		}
	}
	if st.Source.URL == "" {
		d.log.Info("no Git source: stacks are deployed by hand (gitorc stack deploy)")
		<-ctx.Done()
		return nil
	}
	// A source that cannot be set up is a problem for the user: it goes
	// on the sync state (gitorc status), not only in this node's log.
	failed := func(err error) error {
		st.Phase, st.Message = api.SyncFailed, "the Git source cannot be used: "+err.Error()
		if cerr := cl.Commit(ctx, reconcile.Commit{State: st}); cerr != nil {
			return fmt.Errorf("%w (and recording it failed: %v)", err, cerr)
		}
		return err
	}
	src, err := gitsource.New(gitsource.Config{URL: st.Source.URL, Ref: st.Source.Ref, Path: st.Source.Path,
		DataDir: filepath.Join(d.dir, "gitops", "repo"), Logger: d.log.With("component", "gitsource")})
	if err != nil {
		return failed(err)
	}
	ident, err := d.identity(ctx)
	if err != nil {
		return err
	}
	ctrl, err := reconcile.NewController(reconcile.ControllerConfig{Source: src, Cluster: cl, Secrets: ident,
		Logger: d.log.With("component", "gitops"), Workdir: filepath.Join(d.dir, "gitops", "work"),
		PollInterval: st.Source.Interval.Std()})
	if err != nil {
		return failed(err)
	}
	d.log.Info("following Git", "url", gitsource.RedactURL(st.Source.URL), "ref", st.Source.Ref, "path", st.Source.Path)
	return ctrl.Run(ctx)
}

// syncReport is GET /v1/sync: the sync state and the latest history.
type syncReport struct {
	State   api.SyncState    `json:"state"`
	History []api.SyncRecord `json:"history,omitempty"`
}

func mountSync(d *daemon, mux *http.ServeMux) {
	cl := storecluster.New(d.store)
	mux.HandleFunc("GET /v1/sync", func(w http.ResponseWriter, r *http.Request) {
		st, err := cl.Sync(r.Context())
		if err != nil {
			writeJSONResponse(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
			return
		}
		hist, err := cl.History(r.Context())
		if err != nil {
			writeJSONResponse(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
			return
		}
		if len(hist) > 10 {
			hist = hist[len(hist)-10:]
		}
		writeJSONResponse(w, http.StatusOK, syncReport{State: st, History: hist})
	})
}

func newStatusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Sync state, revision, rollouts and what is wrong, at a glance",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			c := newAPIClient(cmd)
			var rep syncReport
			if err := c.call(cmd.Context(), http.MethodGet, "/v1/sync", nil, &rep); err != nil {
				return err
			}
			if format == outJSON {
				return writeJSON(cmd.OutOrStdout(), rep)
			}
			return printStatus(cmd, rep)
		},
	}
	cmd.Flags().StringP("output", "o", "", "output format: text or json")
	return cmd
}

func printStatus(cmd *cobra.Command, rep syncReport) error {
	w := cmd.OutOrStdout()
	st := rep.State
	short := func(s string) string {
		if len(s) > 12 {
			return s[:12]
		}
		if s == "" {
			return "-"
		}
		return s
	}
	if st.Source.URL == "" {
		fmt.Fprintln(w, "source:     none (stacks deployed by hand)")
	} else {
		ref := st.Source.Ref
		if ref == "" {
			ref = "HEAD"
		}
		fmt.Fprintf(w, "source:     %s (%s", gitsource.RedactURL(st.Source.URL), ref)
		if st.Source.Path != "" {
			fmt.Fprintf(w, ", path %s", st.Source.Path)
		}
		fmt.Fprintf(w, ", every %s)\n", st.Source.Interval)
	}
	fmt.Fprintf(w, "sync:       %s", st.Phase)
	if st.Suspended {
		fmt.Fprint(w, " (suspended)")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "revision:   %s   last good: %s\n", short(st.Revision), short(st.LastGoodRevision))
	if st.Message != "" {
		fmt.Fprintf(w, "message:    %s\n", strings.ReplaceAll(st.Message, "\n", "\n            "))
	}
	if !st.LastFetch.IsZero() {
		fmt.Fprintf(w, "last fetch: %s ago\n", time.Since(st.LastFetch).Round(time.Second))
	}
	if st.LastFetchError != "" {
		fmt.Fprintf(w, "fetch error: %s\n", st.LastFetchError)
	}
	if len(st.FailedRevisions) > 0 {
		fmt.Fprintf(w, "failed:     %s (not retried until the source moves)\n", strings.Join(st.FailedRevisions, ", "))
	}
	if n := len(rep.History); n > 0 {
		fmt.Fprintln(w, "history:")
		for i := n - 1; i >= 0 && i >= n-5; i-- {
			h := rep.History[i]
			fmt.Fprintf(w, "  %s  %-8s %-11s %s\n", short(h.Revision), h.Trigger, h.Result, firstLine(h.Message))
		}
	}
	return nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

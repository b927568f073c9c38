package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/reconcile"
	"github.com/gitorc/gitorc/reconcile/gitsource"
	"github.com/gitorc/gitorc/reconcile/storecluster"
	"github.com/spf13/cobra"
)

// gitops runs the GitOps loop while this manager leads: it follows the
// source recorded in the cluster's sync state (bootstrap --repo sets it,
// gitorc source set changes it), so whichever manager leads follows the
// same repository, and a new source restarts the loop on it.
func (d *daemon) gitops(ctx context.Context) error {
	cl := storecluster.New(d.store)
	if err := d.recordBootstrapSource(ctx, cl); err != nil {
		return err
	}
	for {
		st, err := cl.Sync(ctx)
		if err != nil {
			return err
		}
		err = d.follow(ctx, cl, st)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, reconcile.ErrSourceChanged):
			d.log.Info("the Git source changed: following the new one")
		case err != nil:
			return err
		}
	}
}

// trackInterval is how often the leader checks a rollout: a read of the
// local replica, so a revision is Synced soon after its tasks run.
const trackInterval = 250 * time.Millisecond

// recordBootstrapSource writes the source bootstrap was given into the
// cluster when this manager first leads (its webhook secret goes with the
// cluster's keys: openSecrets).
func (d *daemon) recordBootstrapSource(ctx context.Context, cl *storecluster.Cluster) error {
	if d.state.Source != nil {
		_, err := cl.UpdateSync(ctx, func(s *api.SyncState) error {
			if s.Source.URL != "" {
				return reconcile.ErrUnchanged
			}
			s.Source = *d.state.Source
			return nil
		})
		if err != nil {
			return fmt.Errorf("record the source: %w", err)
		}
	}
	return nil
}

// follow runs the sync controller on the state's source until ctx ends or
// the source changes (reconcile.ErrSourceChanged). Without a source, or
// with one that cannot be used, it waits for a change of the source.
func (d *daemon) follow(ctx context.Context, cl *storecluster.Cluster, st api.SyncState) error {
	if st.Source.URL == "" {
		d.log.Info("no Git source: stacks are deployed by hand (gitorc stack deploy), or set one with gitorc source set --repo")
		return waitSourceChange(ctx, cl, st.Source)
	}
	// A source that cannot be set up is a problem for the user: it goes
	// on the sync state (gitorc status), not only in this node's log;
	// the loop waits for the source to be fixed.
	failed := func(err error) error {
		d.log.Error("the Git source cannot be used", "err", err)
		st.Phase, st.Message = api.SyncFailed, "the Git source cannot be used: "+err.Error()
		if cerr := cl.Commit(ctx, reconcile.Commit{State: st}); cerr != nil {
			return fmt.Errorf("%w (and recording it failed: %v)", err, cerr)
		}
		return waitSourceChange(ctx, cl, st.Source)
	}
	auth, err := d.gitAuth(st.Source.URL)
	if err != nil {
		return err
	}
	cfg := gitsource.Config{URL: st.Source.URL, Ref: st.Source.Ref, Path: st.Source.Path, Auth: auth,
		DataDir: filepath.Join(d.dir, "gitops", "repo"), Logger: d.log.With("component", "gitsource")}
	src, err := gitsource.New(cfg)
	if err != nil {
		return failed(err)
	}
	ident, err := d.identity(ctx)
	if err != nil {
		return err
	}
	ctrl, err := reconcile.NewController(reconcile.ControllerConfig{Source: src, Cluster: cl, Secrets: ident,
		Logger: d.log.With("component", "gitops"), Workdir: filepath.Join(d.dir, "gitops", "work"),
		PollInterval: st.Source.Interval.Std(), TrackInterval: trackInterval, Metrics: d.metrics.syncMetrics()})
	if err != nil {
		return failed(err)
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tc := reconcile.TriggerConfig{Node: d.state.ID}
	if dir := cfg.LocalPath(); dir != "" {
		// A local repository: a commit in it syncs at once.
		if tc.Changes, err = reconcile.WatchRefs(fctx, dir, d.log.With("component", "gitops")); err != nil {
			d.log.Warn("local repository not watched: commits are seen at the next poll", "err", err)
		}
	}
	d.log.Info("following Git", "url", gitsource.RedactURL(st.Source.URL), "ref", st.Source.Ref, "path", st.Source.Path,
		"watched", tc.Changes != nil)
	// New credentials (gitorc source set --git-password-file) restart the
	// loop on them, as a new source does.
	var credsChanged atomic.Bool
	if w, err := d.store.Watch(store.KindSecret); err == nil {
		done := make(chan struct{})
		defer func() { cancel(); <-done }()
		go func() {
			defer close(done)
			defer w.Close()
			for {
				select {
				case <-fctx.Done():
					return
				case _, ok := <-w.Events():
					if !ok {
						return
					}
					if a, err := d.gitAuth(st.Source.URL); err == nil && (a.Username != auth.Username || a.Password != auth.Password || a.Token != auth.Token) {
						credsChanged.Store(true)
						cancel()
						return
					}
				}
			}
		}()
	}
	err = ctrl.RunTriggers(fctx, tc)
	if credsChanged.Load() && ctx.Err() == nil {
		return reconcile.ErrSourceChanged
	}
	return err
}

// waitSourceChange returns reconcile.ErrSourceChanged once the state
// names another repository, ref or path than cur, or nil when ctx ends.
func waitSourceChange(ctx context.Context, cl *storecluster.Cluster, cur api.SourceSpec) error {
	changes, err := cl.WatchSync(ctx)
	if err != nil {
		return err
	}
	for {
		st, err := cl.Sync(ctx)
		if err != nil {
			return err
		}
		if s := st.Source; s.URL != cur.URL || s.Ref != cur.Ref || s.Path != cur.Path {
			return reconcile.ErrSourceChanged
		}
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-changes:
			if !ok {
				return nil
			}
		}
	}
}

// syncAPI is the node's side of the control API's sync endpoints
// (controlapi.Syncer: gitops.go, sync.go, history.go, source.go), over
// the store through storecluster.
type syncAPI struct {
	d  *daemon
	cl *storecluster.Cluster
}

var _ controlapi.Syncer = syncAPI{}

// unavailable answers 503: the store could not be read or written.
func unavailable(err error) error { return controlapi.WithStatus(http.StatusServiceUnavailable, err) }

// Status is GET /v1/sync: the state, the last 10 syncs, the webhooks.
func (s syncAPI) Status(ctx context.Context) (controlapi.SyncReport, error) {
	st, err := s.cl.Sync(ctx)
	if err != nil {
		return controlapi.SyncReport{}, unavailable(err)
	}
	hist, err := s.cl.History(ctx)
	if err != nil {
		return controlapi.SyncReport{}, unavailable(err)
	}
	if len(hist) > 10 {
		hist = hist[len(hist)-10:]
	}
	_, kerr := s.d.clusterKey(keyWebhookSecret)
	st.Source = redactSource(st.Source) // a URL of an older version may hold credentials
	return controlapi.SyncReport{State: st, History: hist,
		Webhook: controlapi.WebhookReport{SecretSet: kerr == nil, Listen: s.d.state.WebhookListen}}, nil
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
			rep, err := c.SyncStatus(cmd.Context())
			if err != nil {
				return err
			}
			if format == outJSON {
				return writeJSON(cmd.OutOrStdout(), rep)
			}
			if err := printStatus(cmd, rep); err != nil {
				return err
			}
			if err := printRollouts(cmd, c); err != nil {
				return err
			}
			nodes, err := c.Nodes(cmd.Context())
			if err != nil {
				return err
			}
			if ws := nodeWarnings(nodes, now()); len(ws) > 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "nodes:")
				for _, w := range ws {
					fmt.Fprintf(cmd.OutOrStdout(), "  %s\n", w)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringP("output", "o", "", "output format: text or json")
	return cmd
}

func printStatus(cmd *cobra.Command, rep controlapi.SyncReport) error {
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
		fmt.Fprint(w, " (suspended: no automatic syncs; gitorc sync still syncs; gitorc resume)")
	}
	fmt.Fprintln(w)
	printTriggers(w, rep)
	fmt.Fprintf(w, "revision:   %s   last good: %s\n", short(st.Revision), short(st.LastGoodRevision))
	printPin(w, st) // rollback.go
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
	printWebhooks(w, rep)
	return nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// printTriggers prints what holds or starts syncs: windows and pending
// requests.
func printTriggers(w io.Writer, rep controlapi.SyncReport) {
	st := rep.State
	if len(st.Source.Windows) > 0 {
		var ws []string
		for _, win := range st.Source.Windows {
			ws = append(ws, reconcile.FormatWindow(win))
		}
		fmt.Fprintf(w, "windows:    %s\n", strings.Join(ws, "; "))
		if c, err := reconcile.CompileWindows(st.Source.Windows); err != nil {
			fmt.Fprintf(w, "            ignored: %v\n", err)
		} else if open, next := c.Open(now()); !open && next.IsZero() {
			fmt.Fprintln(w, "            sync window closed: no window opens (automatic syncs never run; gitorc sync does)")
		} else if !open {
			fmt.Fprintf(w, "            sync window closed until %s (automatic syncs wait; gitorc sync runs anyway)\n", next.UTC().Format("2006-01-02 15:04 MST"))
		}
	}
	for _, r := range st.Requests {
		if r.Done() {
			continue
		}
		state := "pending"
		if !r.Pending() {
			state = "syncing on " + shortID(r.Node)
		}
		fmt.Fprintf(w, "request:    %s %s %s since %s", r.Trigger, r.ID, state, age(r.At))
		if r.Count > 1 {
			fmt.Fprintf(w, " (%d deliveries)", r.Count)
		}
		if r.Pending() && r.Attempts > 0 {
			fmt.Fprintf(w, ": %s", r.Message)
		}
		fmt.Fprintln(w)
	}
}

// printNotifications prints where sync outcomes go and the last
// notifications sent, failures first in mind: they never block a sync,
// so this is where they show.
func printNotifications(w io.Writer, st api.SyncState) {
	n := st.Source.Notify
	if n == nil && len(st.Notifications) == 0 {
		return
	}
	if n != nil {
		var to []string
		if n.URL != "" {
			to = append(to, gitsource.RedactURL(n.URL))
		}
		if n.CommitStatus != "" {
			to = append(to, n.CommitStatus+" commit status of "+n.CommitStatusRepo)
		}
		fmt.Fprintf(w, "notify:     %s\n", strings.Join(to, ", "))
	}
	for i := len(st.Notifications) - 1; i >= 0 && i >= len(st.Notifications)-5; i-- {
		d := st.Notifications[i]
		outcome := "delivered"
		if d.Error != "" {
			outcome = "FAILED: " + d.Error
		}
		fmt.Fprintf(w, "  %-4s %-8s %-9s %s %s\n", age(d.Time), d.Target, d.Event, shortCommit(d.Revision), outcome)
	}
}

// printWebhooks prints whether webhooks work and their last deliveries.
func printWebhooks(w io.Writer, rep controlapi.SyncReport) {
	st := rep.State
	var hook string
	switch h := rep.Webhook; {
	case !h.SecretSet && h.Listen == "" && len(st.Deliveries) == 0:
		hook = "off (gitorc source set --webhook-secret-file FILE; gitorc daemon --webhook-listen ADDR)"
	case !h.SecretSet:
		hook = "no secret: deliveries are refused (gitorc source set --webhook-secret-file FILE)"
	default:
		hook = "secret set"
	}
	if l := rep.Webhook.Listen; l != "" {
		hook += "; this manager serves POST /hooks/{github,gitlab,gitea,generic} on " + l
	} else if rep.Webhook.SecretSet {
		hook += "; this manager serves no webhooks (gitorc daemon --webhook-listen ADDR)"
	}
	fmt.Fprintf(w, "webhook:    %s\n", hook)
	printNotifications(w, st)
	if n := len(st.Deliveries); n > 0 {
		fmt.Fprintln(w, "deliveries:")
		for i := n - 1; i >= 0 && i >= n-5; i-- {
			d := st.Deliveries[i]
			what := strings.TrimSpace(d.Provider + " " + d.Event)
			fmt.Fprintf(w, "  %-4s %-18s %d %s\n", age(d.At), what, d.Status, d.Outcome)
		}
	}
}

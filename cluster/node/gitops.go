package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/controlapi/server"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/reconcile"
	"github.com/gitorc/gitorc/reconcile/gitsource"
	"github.com/gitorc/gitorc/reconcile/storecluster"
)

// gitops runs the GitOps loop while this manager leads: it follows the
// source recorded in the cluster's sync state (bootstrap --repo sets it,
// gitorc source set changes it), so whichever manager leads follows the
// same repository, and a new source restarts the loop on it.
func (d *daemon) gitops(ctx context.Context) error {
	// The bootstrap's cluster keys (the repository's credentials among
	// them) are in the store first: a source set up without them would
	// fetch unauthenticated until the next poll.
	if ch := d.keysImported; ch != nil {
		select {
		case <-ch:
		case <-ctx.Done():
			return nil
		}
	}
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
// (server.Syncer: gitops.go, sync.go, source.go), over
// the store through storecluster.
type syncAPI struct {
	d  *daemon
	cl *storecluster.Cluster
}

var _ server.Syncer = syncAPI{}

// unavailable answers 503: the store could not be read or written.
func unavailable(err error) error { return server.WithStatus(http.StatusServiceUnavailable, err) }

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

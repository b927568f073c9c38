package reconcile

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/reconcile/gitsource"
)

// Source is the Git side of a sync: *gitsource.Source.
type Source interface {
	// Fetch resolves the followed ref and makes its commit present.
	Fetch(ctx context.Context) (gitsource.Revision, error)
	// Materialize writes a commit's tree (under the source's sub-path)
	// into an empty directory.
	Materialize(ctx context.Context, commit, dir string) error
}

var _ Source = (*gitsource.Source)(nil)

// SecretOpener decrypts sealed secret files: *secrets.Identity.
type SecretOpener interface {
	Open(sealed []byte) (api.SecretBytes, error)
	// Hash is the keyed content hash shown in plans instead of the data.
	Hash(plaintext api.SecretBytes) string
}

// Clock is the controller's time source; tests use a manual one.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

// RealClock is the wall clock.
type RealClock struct{}

func (RealClock) Now() time.Time                         { return time.Now() }
func (RealClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Defaults of ControllerConfig.
const (
	DefaultPollInterval  = 60 * time.Second
	DefaultTrackInterval = 2 * time.Second
	// maxFailedRevisions bounds SyncState.FailedRevisions.
	maxFailedRevisions = 20
	// RevertOff in SourceSpec.Revert disables the automatic revert.
	RevertOff = "off"
)

// Log keys.
const (
	logKeyCommit  = "commit"
	logKeyTrigger = "trigger"
	logKeyPhase   = "phase"
	logKeyErr     = "err"
)

// ControllerConfig configures a Controller.
type ControllerConfig struct {
	Source  Source  // required
	Cluster Cluster // required
	// Secrets opens sealed secret files; nil makes any stack that uses a
	// secret file fail to load.
	Secrets SecretOpener
	Clock   Clock        // nil: RealClock
	Logger  *slog.Logger // nil: discarded
	// Workdir holds the temporary trees of revisions being loaded; empty
	// means os.TempDir(). Each tree is removed when its sync ends.
	Workdir string
	// PollInterval is the period of Run's syncs (DefaultPollInterval).
	PollInterval time.Duration
	// TrackInterval is how often a rollout is checked (DefaultTrackInterval).
	TrackInterval time.Duration
	// ProgressDeadline bounds a rollout (DefaultProgressDeadline).
	ProgressDeadline time.Duration
}

// Validate reports what is missing or wrong.
func (c ControllerConfig) Validate() error {
	var errs []error
	if c.Source == nil {
		errs = append(errs, errors.New("a source is required"))
	}
	if c.Cluster == nil {
		errs = append(errs, errors.New("a cluster is required"))
	}
	if c.PollInterval < 0 || c.TrackInterval < 0 || c.ProgressDeadline < 0 {
		errs = append(errs, errors.New("intervals and deadlines must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sync controller: %w", err)
	}
	return nil
}

func (c ControllerConfig) withDefaults() ControllerConfig {
	if c.Clock == nil {
		c.Clock = RealClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Workdir == "" {
		c.Workdir = os.TempDir()
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.TrackInterval == 0 {
		c.TrackInterval = DefaultTrackInterval
	}
	if c.ProgressDeadline == 0 {
		c.ProgressDeadline = DefaultProgressDeadline
	}
	return c
}

// Controller makes the cluster follow its Git source, one sync at a time:
// fetch, load, plan, apply in one transaction, track the rollout, and on
// failure revert to the last good revision.
type Controller struct {
	cfg ControllerConfig
	mu  sync.Mutex // one sync at a time
	seq uint64     // records started by this controller; guarded by mu
}

// NewController validates cfg and returns a controller.
func NewController(cfg ControllerConfig) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Controller{cfg: cfg.withDefaults()}, nil
}

// Run syncs at once and then every PollInterval until ctx ends. Sync
// errors are logged, and are on the sync state for users.
func (c *Controller) Run(ctx context.Context) error {
	for {
		if _, err := c.Sync(ctx, api.TriggerPoll); err != nil && ctx.Err() == nil {
			c.cfg.Logger.WarnContext(ctx, "sync", logKeyErr, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.cfg.Clock.After(c.cfg.PollInterval):
		}
	}
}

// Sync brings the cluster to the source's current commit and returns the
// history record of what it did. A commit already applied and synced, and
// a commit that failed before, are not synced again: the record returned
// is then the zero record. The error is for the caller's logs; what a user
// must act on is on the sync state.
//
// Steps: fetch → materialize into a temporary tree → layout and stacks →
// open sealed secrets → plan against the cluster. A revision that does not
// load or plan is Failed with every problem and nothing of it is applied.
// Otherwise its changes, the Progressing state and the record are
// committed in one transaction and the rollout is tracked until Synced or
// Degraded; Degraded with revert on returns to the last good revision and
// marks the commit failed.
func (c *Controller) Sync(ctx context.Context, trigger api.SyncTrigger) (api.SyncRecord, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, err := c.cfg.Cluster.Sync(ctx)
	if err != nil {
		return api.SyncRecord{}, fmt.Errorf("read sync state: %w", err)
	}
	if st.Suspended && trigger != api.TriggerManual {
		return api.SyncRecord{}, nil
	}
	rev, err := c.cfg.Source.Fetch(ctx)
	st.LastFetch = c.cfg.Clock.Now()
	if err != nil {
		st.LastFetchError = err.Error()
		if cerr := c.cfg.Cluster.Commit(ctx, Commit{State: st}); cerr != nil {
			return api.SyncRecord{}, errors.Join(fmt.Errorf("fetch: %w", err), fmt.Errorf("write sync state: %w", cerr))
		}
		return api.SyncRecord{}, fmt.Errorf("fetch: %w", err)
	}
	st.LastFetchError = ""
	commit := rev.Commit
	if slices.Contains(st.FailedRevisions, commit) || (commit == st.Revision && st.Phase == api.SyncSynced) {
		// Nothing new: say that the source was looked at, and stop.
		if err := c.cfg.Cluster.Commit(ctx, Commit{State: st}); err != nil {
			return api.SyncRecord{}, fmt.Errorf("write sync state: %w", err)
		}
		return api.SyncRecord{}, nil
	}
	log := c.cfg.Logger.With(logKeyCommit, short(commit), logKeyTrigger, trigger.String())
	rec := c.newRecord(commit, trigger)

	desired, problems, err := c.load(ctx, commit)
	if err != nil {
		return rec, err // transient (I/O, context): nothing decided, retried by the next sync
	}
	actual, err := c.cfg.Cluster.Actual(ctx)
	if err != nil {
		return rec, fmt.Errorf("read cluster: %w", err)
	}
	cs := Plan(desired, actual)
	problems = append(problems, cs.Problems...)
	if len(problems) > 0 {
		msg := fmt.Sprintf("revision %s not applied: %s", short(commit), strings.Join(problems, "\n"))
		st.Phase, st.Message = api.SyncFailed, msg
		st.FailedRevisions = addFailed(st.FailedRevisions, commit)
		rec = c.finish(rec, api.SyncFailed, msg)
		if err := c.cfg.Cluster.Commit(ctx, Commit{State: st, Records: []api.SyncRecord{rec}}); err != nil {
			return rec, fmt.Errorf("write sync state: %w", err)
		}
		log.WarnContext(ctx, "revision failed to load", logKeyPhase, api.SyncFailed.String())
		return rec, nil
	}

	rollout, err := c.apply(ctx, &st, &rec, cs, desired, commit, fmt.Sprintf("revision %s applied", short(commit)))
	if err != nil {
		return rec, err
	}
	log.InfoContext(ctx, "revision applied", "changes", len(cs.Steps))
	t, err := c.track(ctx, &st, &rec, rollout)
	if err != nil {
		return rec, err
	}
	if t.Phase == api.SyncSynced {
		st.LastGoodRevision = commit
		return rec, c.done(ctx, &st, &rec, t.Phase, fmt.Sprintf("revision %s synced: %s", short(commit), t.Message))
	}

	// Degraded.
	msg := fmt.Sprintf("revision %s degraded: %s", short(commit), t.Message)
	st.FailedRevisions = addFailed(st.FailedRevisions, commit)
	good := st.LastGoodRevision
	if st.Source.Revert == RevertOff || good == "" || good == commit {
		if good == "" && st.Source.Revert != RevertOff {
			msg += "; no earlier good revision to revert to"
		}
		log.WarnContext(ctx, "revision degraded", logKeyPhase, t.Phase.String())
		return rec, c.done(ctx, &st, &rec, api.SyncDegraded, msg)
	}
	rec = c.finish(rec, api.SyncDegraded, msg)
	log.WarnContext(ctx, "revision degraded, reverting", "to", short(good))
	if err := c.revert(ctx, &st, rec, good, msg); err != nil {
		return rec, err
	}
	return rec, nil
}

// revert re-plans the cluster from the last good revision, committing the
// failed revision's final record with it, and tracks the result. The sync
// state stays Degraded, naming both revisions.
func (c *Controller) revert(ctx context.Context, st *api.SyncState, failed api.SyncRecord, good, why string) error {
	desired, problems, err := c.load(ctx, good)
	if err != nil {
		return fmt.Errorf("revert to %s: %w", short(good), err)
	}
	actual, err := c.cfg.Cluster.Actual(ctx)
	if err != nil {
		return fmt.Errorf("revert to %s: read cluster: %w", short(good), err)
	}
	cs := Plan(desired, actual)
	problems = append(problems, cs.Problems...)
	if len(problems) > 0 {
		// The last good revision no longer plans (say, a foreign object
		// took a name): stay degraded and say why.
		msg := fmt.Sprintf("%s; revert to %s not possible: %s", why, short(good), strings.Join(problems, "\n"))
		st.Phase, st.Message = api.SyncDegraded, msg
		failed.Message = msg
		return c.cfg.Cluster.Commit(ctx, Commit{State: *st, Records: []api.SyncRecord{failed}})
	}
	put, del := Changes(cs, desired)
	rec := c.newRecord(good, api.TriggerRevert)
	st.Phase, st.Revision = api.SyncDegraded, good
	st.Message = fmt.Sprintf("%s; reverting to %s", why, short(good))
	rec.Result, rec.Message = api.SyncProgressing, st.Message
	// One transaction: the last good specs, the failed revision's end and
	// the revert's start. A crash before it leaves the failed revision
	// Progressing, and the next sync tracks it again.
	if err := c.cfg.Cluster.Commit(ctx, Commit{Put: put, Delete: del, State: *st, Records: []api.SyncRecord{failed, rec}}); err != nil {
		return fmt.Errorf("revert to %s: apply: %w", short(good), err)
	}
	rollout := RolloutOf(cs, c.cfg.Clock.Now())
	if len(rollout.Changed) == 0 && len(rollout.Removed) == 0 {
		rollout.Changed = serviceNames(desired)
	}
	rollout.Deadline = c.cfg.ProgressDeadline
	t, err := c.track(ctx, st, &rec, rollout)
	if err != nil {
		return err
	}
	msg := fmt.Sprintf("%s; reverted to %s", why, short(good))
	if t.Phase != api.SyncSynced {
		msg = fmt.Sprintf("%s; revert to %s degraded too: %s", why, short(good), t.Message)
	}
	st.Phase = api.SyncDegraded
	rec = c.finish(rec, t.Phase, msg)
	st.Message = msg
	return c.cfg.Cluster.Commit(ctx, Commit{State: *st, Records: []api.SyncRecord{rec}})
}

// apply commits a revision's changes with the Progressing state and the
// record in one transaction, and returns what to track.
func (c *Controller) apply(ctx context.Context, st *api.SyncState, rec *api.SyncRecord, cs Changeset, desired State, commit, msg string) (Rollout, error) {
	put, del := Changes(cs, desired)
	st.Phase, st.Revision, st.Message = api.SyncProgressing, commit, msg
	rec.Result, rec.Message = api.SyncProgressing, msg
	if err := c.cfg.Cluster.Commit(ctx, Commit{Put: put, Delete: del, State: *st, Records: []api.SyncRecord{*rec}}); err != nil {
		return Rollout{}, fmt.Errorf("apply %s: %w", short(commit), err)
	}
	r := RolloutOf(cs, c.cfg.Clock.Now())
	if len(r.Changed) == 0 && len(r.Removed) == 0 {
		// Nothing to roll out, or a sync resumed after a restart: the
		// revision is synced when every service it declares is healthy.
		r.Changed = serviceNames(desired)
	}
	r.Deadline = c.cfg.ProgressDeadline
	return r, nil
}

// track checks the rollout every TrackInterval until it is Synced or
// Degraded, writing the sync state when its message changes.
func (c *Controller) track(ctx context.Context, st *api.SyncState, rec *api.SyncRecord, r Rollout) (Tracking, error) {
	names := append(append([]string(nil), r.Changed...), r.Removed...)
	for {
		obs, err := c.cfg.Cluster.Observe(ctx, names)
		if err != nil {
			return Tracking{}, fmt.Errorf("observe rollout: %w", err)
		}
		t := Track(r, obs, c.cfg.Clock.Now())
		if t.Phase != api.SyncProgressing {
			return t, nil
		}
		if st.Message != t.Message {
			st.Message = t.Message
			if err := c.cfg.Cluster.Commit(ctx, Commit{State: *st}); err != nil {
				return Tracking{}, fmt.Errorf("write sync state: %w", err)
			}
		}
		select {
		case <-ctx.Done():
			return Tracking{}, ctx.Err()
		case <-c.cfg.Clock.After(c.cfg.TrackInterval):
		}
	}
}

// done ends a sync: state and record with the result.
func (c *Controller) done(ctx context.Context, st *api.SyncState, rec *api.SyncRecord, phase api.SyncPhase, msg string) error {
	st.Phase, st.Message = phase, msg
	*rec = c.finish(*rec, phase, msg)
	if err := c.cfg.Cluster.Commit(ctx, Commit{State: *st, Records: []api.SyncRecord{*rec}}); err != nil {
		return fmt.Errorf("write sync state: %w", err)
	}
	return nil
}

func (c *Controller) newRecord(commit string, trigger api.SyncTrigger) api.SyncRecord {
	now := c.cfg.Clock.Now()
	var b [4]byte
	_, _ = rand.Read(b[:])
	// IDs sort by start time, then by this controller's sequence: the
	// store's ID order is history order.
	c.seq++
	id := fmt.Sprintf("%s-%08d-%s", now.UTC().Format("20060102T150405.000000000Z"), c.seq, hex.EncodeToString(b[:]))
	return api.SyncRecord{Meta: api.Meta{ID: id}, Revision: commit, Trigger: trigger, StartedAt: now}
}

func (c *Controller) finish(rec api.SyncRecord, phase api.SyncPhase, msg string) api.SyncRecord {
	rec.Result, rec.Message, rec.FinishedAt = phase, msg, c.cfg.Clock.Now()
	return rec
}

// load materializes a commit into a temporary tree and returns its desired
// state, or the problems that make it inapplicable (file:line where the
// loader knows it). The error is for failures that say nothing about the
// revision: I/O, a cancelled context.
func (c *Controller) load(ctx context.Context, commit string) (State, []string, error) {
	if err := os.MkdirAll(c.cfg.Workdir, 0o700); err != nil {
		return State{}, nil, fmt.Errorf("workdir: %w", err)
	}
	dir, err := os.MkdirTemp(c.cfg.Workdir, "rev-"+short(commit)+"-")
	if err != nil {
		return State{}, nil, fmt.Errorf("workdir: %w", err)
	}
	defer os.RemoveAll(dir)
	if err := c.cfg.Source.Materialize(ctx, commit, dir); err != nil {
		if ctx.Err() != nil {
			return State{}, nil, err
		}
		if errors.Is(err, gitsource.ErrUnsafeSymlink) {
			return State{}, []string{err.Error()}, nil
		}
		return State{}, nil, fmt.Errorf("materialize %s: %w", short(commit), err)
	}
	layout, err := ReadLayout(dir)
	if err != nil {
		return State{}, splitLines(relativize(err.Error(), dir)), nil
	}
	stacks, err := LoadAll(ctx, dir, dir, layout)
	if ctx.Err() != nil {
		return State{}, nil, ctx.Err()
	}
	var problems []string
	if err != nil {
		problems = splitLines(relativize(err.Error(), dir))
	}
	dirs := map[string]string{}
	for _, s := range layout.Stacks {
		dirs[s.Name] = s.Dir
	}
	var bundles []api.Bundle
	for _, s := range stacks {
		b := s.Bundle
		b.Secrets = slices.Clone(b.Secrets)
		for i := range b.Secrets {
			if p := c.openSecret(dir, dirs[b.Stack.Name], &b.Secrets[i]); p != "" {
				problems = append(problems, p)
			}
		}
		bundles = append(bundles, b)
	}
	if len(problems) > 0 {
		return State{}, problems, nil
	}
	return DesiredState(bundles), nil, nil
}

// openSecret fills a file secret's Data and DataHash from its sealed file,
// or returns the problem. The plaintext goes nowhere else.
func (c *Controller) openSecret(root, stackDir string, s *api.SecretSpec) string {
	if s.External || s.File == "" {
		return ""
	}
	shown := filepath.ToSlash(filepath.Join(stackDir, s.File))
	if filepath.IsAbs(s.File) || !filepath.IsLocal(filepath.Join(stackDir, s.File)) {
		return fmt.Sprintf("%s: secret %s: the file must be inside the repository", shown, s.Name)
	}
	if c.cfg.Secrets == nil {
		return fmt.Sprintf("%s: secret %s: this manager has no identity to open sealed files", shown, s.Name)
	}
	sealed, err := os.ReadFile(filepath.Join(root, stackDir, s.File))
	if err != nil {
		return fmt.Sprintf("%s: secret %s: %s", shown, s.Name, relativize(err.Error(), root))
	}
	plain, err := c.cfg.Secrets.Open(sealed)
	if err != nil {
		return fmt.Sprintf("%s: secret %s: %v", shown, s.Name, err)
	}
	s.Data, s.DataHash = plain, c.cfg.Secrets.Hash(plain)
	return ""
}

func serviceNames(s State) []string {
	var out []string
	for _, x := range s.Services {
		out = append(out, x.Name)
	}
	return out
}

func addFailed(list []string, commit string) []string {
	if slices.Contains(list, commit) {
		return list
	}
	list = append(list, commit)
	if len(list) > maxFailedRevisions {
		list = list[len(list)-maxFailedRevisions:]
	}
	return list
}

// relativize removes the temporary tree's path from a message.
func relativize(msg, dir string) string {
	return strings.ReplaceAll(msg, dir+string(filepath.Separator), "")
}

func splitLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func short(commit string) string {
	if len(commit) > 7 {
		return commit[:7]
	}
	return commit
}

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
	// SelfHealOff in SourceSpec.SelfHeal leaves drift to be reported
	// only; anything else restores it.
	SelfHealOff = "off"
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
	// Metrics counts the syncs and their durations (metrics.go); nil:
	// none. One Metrics serves every controller of a process.
	Metrics *Metrics
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
	// base is the sync state as this sync read or last wrote it, what
	// its writes merge from (Commit.Base); guarded by mu.
	base api.SyncState
	// caughtUp is set once a Barrier succeeded; guarded by mu.
	caughtUp bool

	lastMu sync.Mutex // Diff loads without mu
	last   loaded     // the last commit that loaded
}

// Barrier is an optional ability of a Cluster: waiting until every write
// committed before the call is visible to this manager's reads.
// reconcile/storecluster has it. A controller calls it before its first
// sync, for a new leader must see what the previous one wrote last.
type Barrier interface {
	Barrier(ctx context.Context) error
}

// NewController validates cfg and returns a controller.
func NewController(cfg ControllerConfig) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Controller{cfg: cfg.withDefaults()}, nil
}

// Run (trigger.go) decides when to Sync: polls, webhooks, requests.

// Sync brings the cluster to the revision it should run and returns the
// history record of what it did: the zero record when it did nothing.
//
// Which revision: an apply left in flight (by this controller, or by an
// earlier leader that lost its place) is finished first, its record
// completed in place. Then the rollback pin's revision (gitorc rollback
// --to) while the pin holds — a manual sync or a new commit on the
// followed ref releases it — and else the source's current commit. A
// commit that failed before is not retried until the source moves.
//
// A revision the cluster runs already, synced, is re-planned against the
// cluster: with self-heal on (the default) or on a manual sync, drift
// (objects changed behind Git's back) is restored in one transaction
// recorded with the self-heal trigger; nothing is rolled out anew.
//
// Another revision: materialize it into a temporary tree, find its
// stacks, load them, open their sealed secrets and plan against the
// cluster (the path Diff shares). A revision that does not load or plan is
// Failed with every problem and nothing of it is applied. Otherwise its
// changes, the Progressing state with the rollout in flight, and the
// record are committed in one transaction, and the rollout is tracked
// until Synced or Degraded; Degraded with revert on returns to the last
// good revision and marks the commit failed.
//
// The error is for the caller's logs; what a user must act on is on the
// sync state.
func (c *Controller) Sync(ctx context.Context, trigger api.SyncTrigger) (api.SyncRecord, error) {
	start := c.cfg.Clock.Now()
	rec, err := c.sync(ctx, trigger)
	c.cfg.Metrics.observe(ctx, trigger, rec, err, c.cfg.Clock.Now().Sub(start))
	return rec, err
}

// sync is Sync without its metrics. Its steps, each in a file of its own:
//  1. catch up with the store and read the sync state (here);
//  2. fetch the source (here);
//  3. finish an apply left in flight (sync_track.go: resume);
//  4. decide the target revision (sync_target.go: decide);
//  5. load and plan it (sync_load.go), apply it in one transaction
//     (sync_apply.go: deploy, apply; heal for drift);
//  6. track its rollout (sync_track.go: track);
//  7. finish: synced, degraded, or reverted to the last good revision
//     (sync_finish.go).
func (c *Controller) sync(ctx context.Context, trigger api.SyncTrigger) (api.SyncRecord, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.cfg.Cluster.(Barrier); ok && !c.caughtUp {
		// A new leader may not have applied the last writes of the one
		// before it yet: the rollout it left in flight must be seen.
		if err := b.Barrier(ctx); err != nil {
			return api.SyncRecord{}, fmt.Errorf("catch up with the store: %w", err)
		}
		c.caughtUp = true
	}
	st, err := c.cfg.Cluster.Sync(ctx)
	if err != nil {
		return api.SyncRecord{}, fmt.Errorf("read sync state: %w", err)
	}
	c.base = cloneSyncState(st)
	auto := trigger != api.TriggerManual
	if st.Suspended && auto && st.InFlight == nil {
		return api.SyncRecord{}, nil
	}
	rev, err := c.cfg.Source.Fetch(ctx)
	st.LastFetch = c.cfg.Clock.Now()
	if err != nil {
		st.LastFetchError = err.Error()
		if cerr := c.write(ctx, &st, Commit{}); cerr != nil {
			return api.SyncRecord{}, errors.Join(fmt.Errorf("fetch: %w", err), fmt.Errorf("write sync state: %w", cerr))
		}
		return api.SyncRecord{}, fmt.Errorf("fetch: %w", err)
	}
	st.LastFetchError = ""
	var rec api.SyncRecord
	if st.InFlight != nil {
		// Finished even while suspended: it is no new sync.
		if rec, err = c.resume(ctx, &st); err != nil || (st.Suspended && auto) {
			return rec, err
		}
	}
	t := decide(&st, rev.Commit, trigger)
	switch {
	case t.apply:
		return c.deploy(ctx, &st, t)
	case t.heal && (trigger == api.TriggerManual || st.Source.SelfHeal != SelfHealOff):
		healed, changed, err := c.heal(ctx, &st, t.commit)
		if err != nil || changed {
			return healed, err
		}
	}
	// Nothing new: say that the source was looked at, and stop.
	if t.note != "" {
		st.Message = t.note
		if t.commit == "" {
			st.Message += fmt.Sprintf("; %s failed before and is not retried until the source moves", short(rev.Commit))
		}
	}
	if err := c.write(ctx, &st, Commit{}); err != nil {
		return rec, fmt.Errorf("write sync state: %w", err)
	}
	return rec, nil
}

// write commits cm with st as the sync state, merged onto the stored state
// from what this sync read or last wrote (MergeSyncState): an operator's
// concurrent change, such as a rollback pin, is kept.
func (c *Controller) write(ctx context.Context, st *api.SyncState, cm Commit) error {
	cm.State = *st
	base := c.base
	cm.Base = &base
	if err := c.cfg.Cluster.Commit(ctx, cm); err != nil {
		return err
	}
	c.base = cloneSyncState(*st)
	return nil
}

// cloneSyncState copies what a sync changes in place.
func cloneSyncState(s api.SyncState) api.SyncState {
	s.FailedRevisions = slices.Clone(s.FailedRevisions)
	return s
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

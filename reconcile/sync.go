package reconcile

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
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

// sync is Sync without its metrics.
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

// target is what a sync does.
type target struct {
	commit  string // the revision the cluster should run; empty: none new
	trigger api.SyncTrigger
	apply   bool   // roll commit out
	heal    bool   // the cluster runs commit, synced: restore drift only
	note    string // a rollback pin released, for the messages
}

// decide picks the revision the cluster should run. It releases the
// rollback pin on st when a manual sync or a new commit ends it, and
// records the commit a pin took effect at. A pin not in effect yet is
// applied by whatever sync comes first, a manual one included (gitorc
// rollback asks for one).
func decide(st *api.SyncState, head string, trigger api.SyncTrigger) target {
	var note string
	if st.Pin != nil {
		pin := *st.Pin // st's pointer may be the store's: never write through it
		switch {
		case trigger == api.TriggerManual && pin.Head != "":
			note = fmt.Sprintf("rollback pin to %s released by gitorc sync", short(pin.Revision))
			st.Pin = nil
		case pin.Head != "" && pin.Head != head:
			note = fmt.Sprintf("rollback pin to %s released by the new commit %s", short(pin.Revision), short(head))
			st.Pin = nil
		default:
			if pin.Head == "" {
				pin.Head = head
				st.Pin = &pin
			}
			if st.Revision == pin.Revision && st.Phase == api.SyncSynced {
				return target{commit: pin.Revision, heal: true}
			}
			return target{commit: pin.Revision, trigger: api.TriggerRollback, apply: true}
		}
	}
	switch {
	case slices.Contains(st.FailedRevisions, head):
		return target{note: note}
	case head == st.Revision && st.Phase == api.SyncSynced:
		return target{commit: head, heal: true, note: note}
	}
	return target{commit: head, trigger: trigger, apply: true, note: note}
}

// deploy rolls a revision out: load and plan, apply in one transaction,
// track, and revert when the rollout fails.
func (c *Controller) deploy(ctx context.Context, st *api.SyncState, t target) (api.SyncRecord, error) {
	commit := t.commit
	log := c.cfg.Logger.With(logKeyCommit, short(commit), logKeyTrigger, t.trigger.String())
	rec := c.newRecord(commit, t.trigger)
	pinned := st.Pin != nil && st.Pin.Revision == commit
	desired, cs, err := c.planCommit(ctx, commit)
	if err != nil {
		return rec, err // transient (I/O, context): nothing decided, retried by the next sync
	}
	if len(cs.Problems) > 0 {
		msg := fmt.Sprintf("revision %s not applied: %s", short(commit), strings.Join(cs.Problems, "\n"))
		if pinned {
			st.Pin = nil
			msg = "rollback pin released: " + msg
		}
		msg = withNote(t.note, msg)
		st.Phase, st.Message = api.SyncFailed, msg
		st.FailedRevisions = addFailed(st.FailedRevisions, commit)
		rec = c.finish(rec, api.SyncFailed, msg)
		if err := c.write(ctx, st, Commit{Records: []api.SyncRecord{rec}}); err != nil {
			return rec, fmt.Errorf("write sync state: %w", err)
		}
		log.WarnContext(ctx, "revision failed to load", logKeyPhase, api.SyncFailed.String())
		return rec, nil
	}
	msg := fmt.Sprintf("revision %s applied", short(commit))
	if pinned {
		msg = fmt.Sprintf("revision %s applied: pinned by rollback", short(commit))
	}
	rollout, err := c.apply(ctx, st, &rec, cs, desired, withNote(t.note, msg))
	if err != nil {
		return rec, err
	}
	log.InfoContext(ctx, "revision applied", "changes", len(cs.Steps))
	return rec, c.finishApply(ctx, st, &rec, rollout, t.note)
}

func withNote(note, msg string) string {
	if note == "" {
		return msg
	}
	return note + "; " + msg
}

// resume finishes the apply in flight on st: an earlier leader's, or one
// this controller's sync could not finish. Its record is completed in
// place; the deadline still counts from the original apply.
func (c *Controller) resume(ctx context.Context, st *api.SyncState) (api.SyncRecord, error) {
	f := *st.InFlight
	rec := f.Record
	r := Rollout{Changed: slices.Clone(f.Changed), Removed: slices.Clone(f.Removed), AppliedAt: f.AppliedAt,
		Deadline: c.cfg.ProgressDeadline}
	c.cfg.Logger.InfoContext(ctx, "resuming the rollout in flight", logKeyCommit, short(rec.Revision),
		logKeyTrigger, rec.Trigger.String())
	if rec.Trigger == api.TriggerRevert {
		return rec, c.finishRevert(ctx, st, &rec, r, f.Reason)
	}
	return rec, c.finishApply(ctx, st, &rec, r, "")
}

// finishApply tracks an applied revision's rollout and ends it: Synced
// makes it the last good revision; Degraded marks it failed and, with
// revert on, returns to the last good revision. A note (a released pin)
// heads the final message.
func (c *Controller) finishApply(ctx context.Context, st *api.SyncState, rec *api.SyncRecord, r Rollout, note string) error {
	commit := rec.Revision
	t, err := c.track(ctx, st, rec, r)
	if err != nil {
		return err
	}
	if t.Phase == api.SyncSynced {
		st.LastGoodRevision = commit
		return c.done(ctx, st, rec, t.Phase, withNote(note, fmt.Sprintf("revision %s synced: %s", short(commit), t.Message)))
	}

	// Degraded.
	msg := withNote(note, fmt.Sprintf("revision %s degraded: %s", short(commit), t.Message))
	st.FailedRevisions = addFailed(st.FailedRevisions, commit)
	if st.Pin != nil && st.Pin.Revision == commit {
		st.Pin = nil
		msg += "; the rollback pin is released"
	}
	log := c.cfg.Logger.With(logKeyCommit, short(commit), logKeyTrigger, rec.Trigger.String())
	good := st.LastGoodRevision
	if st.Source.Revert == RevertOff || good == "" || good == commit {
		if good == "" && st.Source.Revert != RevertOff {
			msg += "; no earlier good revision to revert to"
		}
		log.WarnContext(ctx, "revision degraded", logKeyPhase, t.Phase.String())
		return c.done(ctx, st, rec, api.SyncDegraded, msg)
	}
	*rec = c.finish(*rec, api.SyncDegraded, msg)
	log.WarnContext(ctx, "revision degraded, reverting", "to", short(good))
	return c.revert(ctx, st, *rec, good, msg)
}

// revert re-plans the cluster from the last good revision, committing the
// failed revision's final record with it, and tracks the result. The sync
// state stays Degraded, naming both revisions.
func (c *Controller) revert(ctx context.Context, st *api.SyncState, failed api.SyncRecord, good, why string) error {
	desired, cs, err := c.planCommit(ctx, good)
	if err != nil {
		return fmt.Errorf("revert to %s: %w", short(good), err)
	}
	if len(cs.Problems) > 0 {
		// The last good revision no longer plans (say, a foreign object
		// took a name): stay degraded and say why.
		msg := fmt.Sprintf("%s; revert to %s not possible: %s", why, short(good), strings.Join(cs.Problems, "\n"))
		st.Phase, st.Message, st.InFlight = api.SyncDegraded, msg, nil
		failed.Message = msg
		return c.write(ctx, st, Commit{Records: []api.SyncRecord{failed}})
	}
	put, del := Changes(cs, desired)
	rec := c.newRecord(good, api.TriggerRevert)
	st.Phase, st.Revision = api.SyncDegraded, good
	st.Message = fmt.Sprintf("%s; reverting to %s", why, short(good))
	rec.Result, rec.Message = api.SyncProgressing, st.Message
	rollout := c.rolloutOf(cs, desired)
	st.InFlight = inFlight(rec, rollout, why)
	// One transaction: the last good specs, the failed revision's end and
	// the revert's start, in flight. A crash before it leaves the failed
	// revision in flight, and the next sync tracks it again.
	if err := c.write(ctx, st, Commit{Put: put, Delete: del, Records: []api.SyncRecord{failed, rec}}); err != nil {
		return fmt.Errorf("revert to %s: apply: %w", short(good), err)
	}
	return c.finishRevert(ctx, st, &rec, rollout, why)
}

// finishRevert tracks a revert's rollout and ends it; the state stays
// Degraded either way, for the revision it replaced failed.
func (c *Controller) finishRevert(ctx context.Context, st *api.SyncState, rec *api.SyncRecord, r Rollout, why string) error {
	good := rec.Revision
	t, err := c.track(ctx, st, rec, r)
	if err != nil {
		return err
	}
	msg := fmt.Sprintf("%s; reverted to %s", why, short(good))
	if t.Phase != api.SyncSynced {
		msg = fmt.Sprintf("%s; revert to %s degraded too: %s", why, short(good), t.Message)
	}
	st.Phase, st.Message, st.InFlight = api.SyncDegraded, msg, nil
	*rec = c.finish(*rec, t.Phase, msg)
	return c.write(ctx, st, Commit{Records: []api.SyncRecord{*rec}})
}

// apply commits a revision's changes with the Progressing state, the
// rollout in flight and the record in one transaction, and returns what
// to track.
func (c *Controller) apply(ctx context.Context, st *api.SyncState, rec *api.SyncRecord, cs Changeset, desired State, msg string) (Rollout, error) {
	put, del := Changes(cs, desired)
	st.Phase, st.Revision, st.Message = api.SyncProgressing, rec.Revision, msg
	rec.Result, rec.Message = api.SyncProgressing, msg
	touched := RolloutOf(cs, time.Time{})
	rec.Services = append(touched.Changed, touched.Removed...)
	st.LastDiff = lastDiff(*rec, cs, c.cfg.Clock.Now())
	r := c.rolloutOf(cs, desired)
	st.InFlight = inFlight(*rec, r, "")
	if err := c.write(ctx, st, Commit{Put: put, Delete: del, Records: []api.SyncRecord{*rec}}); err != nil {
		return Rollout{}, fmt.Errorf("apply %s: %w", short(rec.Revision), err)
	}
	return r, nil
}

// rolloutOf is what to track after applying cs.
func (c *Controller) rolloutOf(cs Changeset, desired State) Rollout {
	r := RolloutOf(cs, c.cfg.Clock.Now())
	if len(r.Changed) == 0 && len(r.Removed) == 0 {
		// Nothing to roll out: the revision is synced when every
		// service it declares is healthy.
		r.Changed = serviceNames(desired)
	}
	r.Deadline = c.cfg.ProgressDeadline
	return r
}

// lastDiffBytes bounds the plan kept on the sync state (it is replicated
// and read by every status).
const lastDiffBytes = 32 << 10

// lastDiff is an apply's plan as the sync state keeps it.
func lastDiff(rec api.SyncRecord, cs Changeset, at time.Time) *api.SyncDiff {
	var b strings.Builder
	_ = Format(&b, cs, false, false)
	d := &api.SyncDiff{Revision: rec.Revision, Record: rec.ID, At: at, Text: b.String()}
	if len(d.Text) > lastDiffBytes {
		cut := strings.LastIndexByte(d.Text[:lastDiffBytes], '\n')
		d.Text, d.Truncated = d.Text[:cut+1], true
	}
	return d
}

func inFlight(rec api.SyncRecord, r Rollout, reason string) *api.SyncInFlight {
	return &api.SyncInFlight{Record: rec, Changed: slices.Clone(r.Changed), Removed: slices.Clone(r.Removed),
		AppliedAt: r.AppliedAt, Reason: reason}
}

// heal restores drift: the cluster runs commit, synced, and what changed
// behind Git's back is put back in one transaction with its record. It
// reports whether it changed anything. A revision that no longer plans
// (say, an external network was removed) changes nothing; the state says
// why.
func (c *Controller) heal(ctx context.Context, st *api.SyncState, commit string) (api.SyncRecord, bool, error) {
	desired, cs, err := c.planCommit(ctx, commit)
	if err != nil {
		return api.SyncRecord{}, false, fmt.Errorf("self-heal of %s: %w", short(commit), err)
	}
	if len(cs.Problems) > 0 {
		st.Message = fmt.Sprintf("revision %s synced, but drift cannot be restored: %s", short(commit), strings.Join(cs.Problems, "\n"))
		return api.SyncRecord{}, false, nil
	}
	if !cs.HasChanges() {
		return api.SyncRecord{}, false, nil
	}
	put, del := Changes(cs, desired)
	rec := c.newRecord(commit, api.TriggerSelfHeal)
	msg := fmt.Sprintf("self-heal: %s restored to revision %s", describeDrift(cs), short(commit))
	rec = c.finish(rec, api.SyncSynced, msg)
	st.Message = msg
	if err := c.write(ctx, st, Commit{Put: put, Delete: del, Records: []api.SyncRecord{rec}}); err != nil {
		return rec, false, fmt.Errorf("self-heal of %s: %w", short(commit), err)
	}
	c.cfg.Logger.InfoContext(ctx, "drift restored", logKeyCommit, short(commit), "changes", describeDrift(cs))
	return rec, true, nil
}

// describeDrift names what a self-heal restores: "service web_app
// (replicas); service db_app (re-created)".
func describeDrift(cs Changeset) string {
	var parts []string
	for _, s := range cs.Steps {
		var what string
		switch s.Action {
		case Unchanged:
			continue
		case Create:
			what = "re-created"
		case Delete:
			what = "removed"
		default:
			var paths []string
			for _, ch := range s.Changes {
				if len(paths) == 3 {
					paths = append(paths, "…")
					break
				}
				paths = append(paths, ch.Path)
			}
			what = strings.Join(paths, ", ")
		}
		parts = append(parts, fmt.Sprintf("%s %s (%s)", s.Kind, s.Name, what))
	}
	return strings.Join(parts, "; ")
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
			if err := c.write(ctx, st, Commit{}); err != nil {
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

// done ends a sync: state and record with the result, nothing in flight.
func (c *Controller) done(ctx context.Context, st *api.SyncState, rec *api.SyncRecord, phase api.SyncPhase, msg string) error {
	st.Phase, st.Message, st.InFlight = phase, msg, nil
	*rec = c.finish(*rec, phase, msg)
	if err := c.write(ctx, st, Commit{Records: []api.SyncRecord{*rec}}); err != nil {
		return fmt.Errorf("write sync state: %w", err)
	}
	return nil
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

// planCommit loads a commit and plans it against the cluster: the one
// path that sync, revert, self-heal and Diff share. Problems (file:line
// where the loader knows it) are on the changeset, whose plan is then
// empty: a revision that does not load is not planned. The error is for
// failures that say nothing about the revision: I/O, a cancelled context.
func (c *Controller) planCommit(ctx context.Context, commit string) (State, Changeset, error) {
	desired, problems, err := c.load(ctx, commit)
	if err != nil {
		return State{}, Changeset{}, err
	}
	return c.plan(ctx, desired, problems)
}

// plan plans a loaded desired state against the cluster's.
func (c *Controller) plan(ctx context.Context, desired State, problems []string) (State, Changeset, error) {
	if len(problems) > 0 {
		return State{}, Changeset{Problems: problems}, nil
	}
	actual, err := c.cfg.Cluster.Actual(ctx)
	if err != nil {
		return State{}, Changeset{}, fmt.Errorf("read cluster: %w", err)
	}
	desired = Pin(desired)
	return desired, Plan(desired, actual), nil
}

// load materializes a commit into a temporary tree and loads it. The
// last commit that loaded is kept: a commit's content never changes, and
// self-heal re-plans the same commit at every poll.
func (c *Controller) load(ctx context.Context, commit string) (State, []string, error) {
	c.lastMu.Lock()
	last := c.last
	c.lastMu.Unlock()
	if last.commit == commit && commit != "" {
		return last.desired.clone(), nil, nil
	}
	desired, problems, err := c.loadCommit(ctx, commit)
	if err == nil && len(problems) == 0 {
		c.lastMu.Lock()
		c.last = loaded{commit: commit, desired: desired.clone()}
		c.lastMu.Unlock()
	}
	return desired, problems, err
}

// loaded is a commit's desired state.
type loaded struct {
	commit  string
	desired State
}

// clone copies the lists of a state, so that a caller cannot change the
// controller's copy.
func (s State) clone() State {
	return State{Networks: slices.Clone(s.Networks), Secrets: slices.Clone(s.Secrets), Configs: slices.Clone(s.Configs),
		Volumes: slices.Clone(s.Volumes), Services: slices.Clone(s.Services), Pools: s.Pools, Kept: slices.Clone(s.Kept),
		Reserved: slices.Clone(s.Reserved), Policies: slices.Clone(s.Policies)}
}

func (c *Controller) loadCommit(ctx context.Context, commit string) (State, []string, error) {
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
		if errors.Is(err, gitsource.ErrUnsafeSymlink) || errors.Is(err, gitsource.ErrCommitNotFound) ||
			errors.Is(err, gitsource.ErrPathNotFound) || errors.Is(err, gitsource.ErrTooLarge) {
			// The revision itself is wrong (a pin to a commit the clone
			// lacks, a sub-path it does not have, a tree over the size
			// limits): fail it, do not retry.
			return State{}, []string{err.Error()}, nil
		}
		return State{}, nil, fmt.Errorf("materialize %s: %w", short(commit), err)
	}
	return c.loadTree(ctx, dir)
}

// loadTree returns the desired state of the stacks under dir, or the
// problems that make it inapplicable, with paths relative to dir.
func (c *Controller) loadTree(ctx context.Context, dir string) (State, []string, error) {
	layout, err := ReadLayout(dir)
	if err != nil {
		return State{}, splitLines(relativize(err.Error(), dir)), nil
	}
	// The nodes' policies: a service none of them allows is refused at
	// its line (Plan refuses it again, for a commit loaded earlier).
	actual, err := c.cfg.Cluster.Actual(ctx)
	if err != nil {
		return State{}, nil, fmt.Errorf("read cluster: %w", err)
	}
	stacks, err := LoadAllFor(ctx, dir, dir, layout, true, actual.Policies)
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
		b.Configs = slices.Clone(b.Configs)
		for i := range b.Configs {
			if p := readConfig(dir, dirs[b.Stack.Name], &b.Configs[i]); p != "" {
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
	sealed, err := readDataFile(root, filepath.Join(stackDir, s.File))
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

// readConfig fills a file config's Data and DataHash from the commit's
// file, or returns the problem.
func readConfig(root, stackDir string, c *api.ConfigSpec) string {
	if c.External || c.File == "" {
		return ""
	}
	shown := filepath.ToSlash(filepath.Join(stackDir, c.File))
	if filepath.IsAbs(c.File) || !filepath.IsLocal(filepath.Join(stackDir, c.File)) {
		return fmt.Sprintf("%s: config %s: the file must be inside the repository", shown, c.Name)
	}
	data, err := readDataFile(root, filepath.Join(stackDir, c.File))
	if err != nil {
		return fmt.Sprintf("%s: config %s: %s", shown, c.Name, relativize(err.Error(), root))
	}
	sum := sha256.Sum256(data)
	c.Data, c.DataHash = data, "sha256:"+hex.EncodeToString(sum[:])
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

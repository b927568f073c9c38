package reconcile

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// Step 5 of a sync, second half: a planned revision applied in one
// transaction with its record and the rollout in flight; drift healed.

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
		r.Unchanged = true
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
		AppliedAt: r.AppliedAt, Unchanged: r.Unchanged, Reason: reason}
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

package reconcile

import (
	"context"
	"fmt"
	"strings"

	"github.com/gitorc/gitorc/cluster/api"
)

// Step 7 of a sync: the record and the state finished, synced or
// degraded, and a degraded revision reverted to the last good one.

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

// done ends a sync: state and record with the result, nothing in flight.
func (c *Controller) done(ctx context.Context, st *api.SyncState, rec *api.SyncRecord, phase api.SyncPhase, msg string) error {
	st.Phase, st.Message, st.InFlight = phase, msg, nil
	*rec = c.finish(*rec, phase, msg)
	if err := c.write(ctx, st, Commit{Records: []api.SyncRecord{*rec}}); err != nil {
		return fmt.Errorf("write sync state: %w", err)
	}
	return nil
}

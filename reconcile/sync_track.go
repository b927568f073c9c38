package reconcile

import (
	"context"
	"fmt"
	"slices"

	"github.com/gitorc/gitorc/cluster/api"
)

// Steps 3 and 6 of a sync: the rollout of an applied revision tracked
// until it is judged, also one a former leader left in flight.

// resume finishes the apply in flight on st: an earlier leader's, or one
// this controller's sync could not finish. Its record is completed in
// place; the deadline still counts from the original apply.
func (c *Controller) resume(ctx context.Context, st *api.SyncState) (api.SyncRecord, error) {
	f := *st.InFlight
	rec := f.Record
	r := Rollout{Changed: slices.Clone(f.Changed), Removed: slices.Clone(f.Removed), AppliedAt: f.AppliedAt,
		Unchanged: f.Unchanged, Deadline: c.cfg.ProgressDeadline}
	c.cfg.Logger.InfoContext(ctx, "resuming the rollout in flight", logKeyCommit, short(rec.Revision),
		logKeyTrigger, rec.Trigger.String())
	if rec.Trigger == api.TriggerRevert {
		return rec, c.finishRevert(ctx, st, &rec, r, f.Reason)
	}
	return rec, c.finishApply(ctx, st, &rec, r, "")
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

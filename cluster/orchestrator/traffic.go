package orchestrator

import (
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// DefaultDrainDelay is how long a task stays out of its service's
// load-balancing set (api.Task.InLoadBalancer) before its node is told to
// stop it, unless Config.DrainDelay says otherwise: time for every node's
// network plane to see the commit and stop sending it new connections, so
// that the stop signal reaches a task no traffic is routed to any more.
// It is a fixed default rather than the stop grace period, which bounds
// the shutdown that comes after it; half a second is ample for a watch
// notification and an nftables map swap. It delays a stop-first batch of
// an update (the new task starts after the old one stopped) but never a
// start-first one (the replacement already serves), nor the replacement
// of a task moved off a drained, down or removed node (it is created when
// the old one starts draining).
const DefaultDrainDelay = 500 * time.Millisecond

// retire is the one way a decision stops a live task, whatever the reason
// (an update replaces it, a scale-down, its node drained, down or removed,
// its service removed, its global service's node no longer eligible, a
// duplicate): a task in the load-balancing set leaves it first
// (Decision.Drain, committed as DrainingSince), and is stopped on the
// first pass at least drain after that; until then it is listed in
// Decision.Draining and the decision wakes when it falls due. A task not
// in the set (not running, unhealthy, not ready, a job's) is stopped at
// once, as is every task when drain is zero or less. It reports whether
// the decision stops the task now.
//
// A pass never commits a task's DrainingSince and its shutdown together:
// the first retire of a task in the set drains it and nothing more.
func (d *Decision) retire(t *api.Task, reason string, now time.Time, drain time.Duration) bool {
	switch {
	case !t.DrainingSince.IsZero():
		if due := t.DrainingSince.Add(drain); now.Before(due) {
			d.Draining = append(d.Draining, t.ID)
			d.wakeAt(due)
			return false
		}
	case drain > 0 && t.InLoadBalancer():
		d.Drain = append(d.Drain, t.ID)
		d.wakeAt(now.Add(drain))
		return false
	}
	d.Shutdown = append(d.Shutdown, Stop{TaskID: t.ID, Reason: reason})
	return true
}

// undrainRest puts back in the load-balancing set the draining tasks
// (among tasks) that the decision no longer stops: the update, scale-down
// or drain that was to stop them was undone (a new spec, a scale-up, a
// node back to active). The controller keeps out those another decision
// of the same pass still stops (decideAll).
func (d *Decision) undrainRest(tasks []api.Task) {
	out := make(map[string]bool, len(d.Draining)+len(d.Shutdown))
	for _, id := range d.Draining {
		out[id] = true
	}
	for _, s := range d.Shutdown {
		out[s.TaskID] = true
	}
	for i := range tasks {
		t := &tasks[i]
		if !t.DrainingSince.IsZero() && t.DesiredState == api.TaskRunning && !t.Status.State.Terminal() && !out[t.ID] {
			d.Undrain = append(d.Undrain, t.ID)
		}
	}
}

// scalingDown reports whether a live task drains with the service's own
// spec: an earlier pass chose it to go in a scale-down (the updater drains
// only tasks of another spec), so the next pass chooses it again.
func scalingDown(svc *api.Service, t *api.Task) bool {
	return !t.DrainingSince.IsZero() && specKey(t.Spec) == specKey(svc.Spec.Task)
}

// drainingIn reports whether a group has a task the update replaces that
// is draining: a stop-first batch in progress.
func (u *updater) drainingIn(k string) bool {
	old, _ := u.split(k)
	for _, t := range old {
		if !t.DrainingSince.IsZero() {
			return true
		}
	}
	return false
}

package orchestrator

import (
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// DrainDelay is how long a task the rolling updater replaces stays out of
// its service's load-balancing set (api.Task.InLoadBalancer) before its
// node is told to stop it: time for every node's network plane to see the
// commit and stop sending it new connections, so that the stop signal
// reaches a task no traffic is routed to any more. It is a fixed default
// rather than the stop grace period, which bounds the shutdown that comes
// after it; half a second is ample for a watch notification and an
// nftables map swap. It delays a stop-first batch (the new task starts
// after the old one stopped) but never a start-first one (the replacement
// already serves).
const DrainDelay = 500 * time.Millisecond

// retire takes a task the update replaces out of service: out of the
// load-balancing set first, and DrainDelay later stopped. A task that is
// not in the set (not running, not ready) is stopped at once. It reports
// whether the decision stops the task.
func (u *updater) retire(t *api.Task, reason string) bool {
	switch {
	case !t.DrainingSince.IsZero():
		if due := t.DrainingSince.Add(DrainDelay); u.now.Before(due) {
			u.draining[t.ID] = true
			u.d.wakeAt(due)
			return false
		}
	case t.InLoadBalancer():
		u.d.Drain = append(u.d.Drain, t.ID)
		u.draining[t.ID] = true
		u.d.wakeAt(u.now.Add(DrainDelay))
		return false
	}
	u.d.Shutdown = append(u.d.Shutdown, Stop{TaskID: t.ID, Reason: reason})
	return true
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

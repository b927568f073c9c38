package orchestrator

import (
	"fmt"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// restartVerdict says whether and when an ended task's slot is refilled.
type restartVerdict struct {
	restart  bool
	at       time.Time   // not before
	history  []time.Time // for the replacement
	finished bool        // the slot is done (a job completed, or condition says stop)
	reason   string
}

// decideRestart applies a restart policy to the newest task of a slot that
// has no live task. A task stopped because its node went away is replaced
// at once and does not count as an attempt: it did nothing wrong.
func decideRestart(p api.RestartPolicy, last *api.Task, mode api.ServiceMode, evicted bool) restartVerdict {
	ended := last.Status.Timestamp
	if evicted {
		return restartVerdict{restart: true, at: ended, history: last.Restarts}
	}
	if stoppedByUs(last) {
		// We stopped it (shutdown, scale down, update): not ours to restart.
		return restartVerdict{finished: true, reason: "stopped"}
	}
	failed := last.Status.State != api.TaskComplete
	switch {
	case mode.IsJob() && !failed:
		return restartVerdict{finished: true, reason: "completed"}
	case p.Condition == api.RestartNone:
		return restartVerdict{finished: true, reason: "restart condition none"}
	case p.Condition == api.RestartOnFailure && !failed:
		return restartVerdict{finished: true, reason: "exited 0 with restart condition on-failure"}
	}
	// Attempts so far: the replaced tasks' end times within the window.
	var history []time.Time
	for _, t := range append(append([]time.Time(nil), last.Restarts...), ended) {
		if p.Window == 0 || !t.Before(ended.Add(-p.Window.Std())) {
			history = append(history, t)
		}
	}
	if p.MaxAttempts > 0 && uint64(len(history)) > p.MaxAttempts {
		return restartVerdict{finished: true, reason: fmt.Sprintf("restart policy gave up after %d attempts", p.MaxAttempts)}
	}
	return restartVerdict{restart: true, at: ended.Add(p.Delay.Std()), history: history}
}

// stoppedByUs reports whether the orchestrator asked the task to stop
// (shutdown, scale down, update, node no longer eligible). A task that
// ended on its own and was then replaced (api.Task.Replaced) has desired
// state shutdown too, but was not stopped.
func stoppedByUs(t *api.Task) bool {
	return t.DesiredState > api.TaskRunning && t.DesiredState != api.TaskComplete && !t.Replaced
}

// endedOnItsOwn reports whether a task ended without being asked to stop:
// it failed, was rejected, or exited (a job's task completing included).
func endedOnItsOwn(t *api.Task) bool {
	return t.Status.State.Terminal() && !stoppedByUs(t)
}

package agent

import (
	"fmt"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// Action is the executor work a transition needs.
type Action uint8

const (
	ActNone    Action = iota // only the status changes
	ActPrepare               // Executor.Prepare
	ActStart                 // Executor.Start
	ActRemove                // Executor.Remove
)

var actionNames = []string{"none", "prepare", "start", "remove"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return "unknown"
}

// Transition is one step of a task's state machine: an action and the
// status it leads to.
type Transition struct {
	Action Action
	// To is the state once Action succeeded.
	To      api.TaskState
	Message string
	// Err is set when To is a failure state.
	Err      string
	ExitCode int
	Health   api.HealthState
	// Warning is the status's warning (running tasks only).
	Warning string
	// FailTo is the state when Action fails, with the action's error as
	// message; zero (TaskNew) keeps the status as it is and retries later.
	FailTo api.TaskState
}

// Step decides the next step of a task from its last status, its desired
// state and the container observed for it (nil when there is none). It is
// pure: no I/O, no clock. ok is false when there is nothing to do.
//
// States only move forward: To is never before cur.State.
func Step(cur api.TaskStatus, desired api.TaskState, obs *Observed) (tr Transition, ok bool) {
	s := cur.State
	keep := Transition{To: s, Message: cur.Message, Err: cur.Err, ExitCode: cur.ExitCode, Health: cur.Health, Warning: cur.Warning}
	switch {
	case s.Terminal():
		// A finished task holds nothing on the node: no process, no
		// secrets, no snapshot. Its status and log stay.
		if obs != nil {
			keep.Action = ActRemove
			return keep, true
		}
		return Transition{}, false

	case desired > api.TaskRunning && desired != api.TaskComplete:
		// No longer wanted: stop it, whatever stage it reached. (Complete
		// is a job's desired state: run it to completion.)
		tr := Transition{To: api.TaskShutdown, Message: "shutdown", Health: cur.Health}
		if obs != nil {
			tr.Action = ActRemove
			if obs.State == ContainerExited {
				tr.ExitCode = obs.ExitCode
			}
		}
		return tr, true

	case s < api.TaskAssigned:
		return Transition{To: api.TaskAssigned, Message: "assigned"}, true

	case s == api.TaskAssigned:
		if desired < api.TaskPreparing {
			return Transition{}, false
		}
		return Transition{To: api.TaskPreparing, Message: "preparing"}, true

	case s == api.TaskPreparing:
		if desired < api.TaskPreparing {
			return Transition{}, false
		}
		return Transition{Action: ActPrepare, To: api.TaskStarting, Message: "starting", FailTo: api.TaskRejected}, true

	case s == api.TaskStarting:
		if desired < api.TaskRunning {
			return Transition{}, false
		}
		tr := Transition{Action: ActStart, To: api.TaskRunning, Message: "started", FailTo: api.TaskFailed}
		if obs != nil {
			// A container with a healthcheck (the spec's or its image's)
			// is running with its health starting from its first report
			// on: the managers never take it for one without a check.
			tr.Health = obs.Health
		}
		return tr, true

	case s == api.TaskRunning:
		switch {
		case obs == nil:
			return Transition{To: api.TaskFailed, Message: "container not found", Err: "container not found", Health: cur.Health}, true
		case obs.State == ContainerExited:
			if obs.ExitCode == 0 {
				return Transition{To: api.TaskComplete, Message: "finished", Health: cur.Health}, true
			}
			msg := fmt.Sprintf("exit code %d", obs.ExitCode)
			return Transition{To: api.TaskFailed, Message: msg, Err: msg, ExitCode: obs.ExitCode, Health: cur.Health}, true
		case obs.State == ContainerCreated:
			msg := "process is not running"
			return Transition{Action: ActRemove, To: api.TaskFailed, Message: msg, Err: msg, Health: cur.Health}, true
		case obs.Health == api.HealthUnhealthy:
			msg := obs.HealthMessage
			if msg == "" {
				msg = "unhealthy"
			}
			return Transition{Action: ActRemove, To: api.TaskFailed, Message: msg, Err: msg, Health: api.HealthUnhealthy}, true
		case obs.Health != cur.Health || obs.Warning != cur.Warning:
			keep.Health, keep.Warning = obs.Health, obs.Warning
			return keep, true
		}
	}
	return Transition{}, false
}

// Apply returns the status after tr was carried out at now. actionErr is
// the error of tr.Action, exit what Remove reported.
func Apply(cur api.TaskStatus, tr Transition, exit Exit, actionErr error, now time.Time) api.TaskStatus {
	if actionErr != nil {
		if tr.FailTo == 0 {
			return cur
		}
		msg := actionErr.Error()
		return api.TaskStatus{State: tr.FailTo, Timestamp: now, Message: msg, Err: msg,
			Health: cur.Health, ContainerID: cur.ContainerID}
	}
	next := api.TaskStatus{State: tr.To, Timestamp: now, Message: tr.Message, Err: tr.Err,
		ExitCode: tr.ExitCode, Health: tr.Health, Warning: tr.Warning, ContainerID: cur.ContainerID}
	if tr.To == cur.State && tr.Health == cur.Health && tr.Message == cur.Message && tr.Err == cur.Err && tr.Warning == cur.Warning {
		// Nothing changed: keep the time of the last change. (A health
		// change is a change: it gets a new time, or the managers could not
		// tell it from a stale report.)
		next.Timestamp = cur.Timestamp
	}
	if tr.Action == ActRemove && tr.To == api.TaskShutdown && exit.Stopped {
		next.ExitCode = exit.ExitCode
		if exit.Killed {
			next.Message = fmt.Sprintf("killed after the grace period (exit code %d)", exit.ExitCode)
		} else {
			next.Message = fmt.Sprintf("stopped (exit code %d)", exit.ExitCode)
		}
	}
	if next.State < cur.State {
		panic(fmt.Sprintf("agent: transition %s → %s moves backwards", cur.State, next.State))
	}
	return next
}

package orchestrator

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// UpdateDecision is what the updater wants committed for one service.
type UpdateDecision struct {
	Decision
	// Status, when set, replaces the service's update status.
	Status *api.UpdateStatus
	// Rollback swaps the service's Spec and PreviousSpec: the rollback's
	// target is the spec before the failed update.
	Rollback bool
	// Ready are tasks to stamp with ReadyAt = now.
	Ready []string
}

// Empty reports whether the decision changes nothing.
func (d UpdateDecision) Empty() bool {
	return d.Decision.Empty() && d.Status == nil && !d.Rollback && len(d.Ready) == 0
}

// Quiet reports whether the decision moves no task: the orchestrator may
// then decide the service in the same pass without the two colliding.
func (d UpdateDecision) Quiet() bool {
	return len(d.Create) == 0 && len(d.Shutdown) == 0 && !d.Rollback
}

// specKey identifies a task spec by content.
func specKey(s api.TaskSpec) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// SpecTarget is the short hash an update status records for its target.
func SpecTarget(s api.TaskSpec) string {
	h := sha256.Sum256([]byte(specKey(s)))
	return hex.EncodeToString(h[:8])
}

// startTimeout is how long a new task of an update may take to become
// ready: the configured value, or enough for its healthcheck to pass and
// its image to be pulled.
func startTimeout(cfg api.UpdateConfig, spec api.TaskSpec) time.Duration {
	if cfg.StartTimeout > 0 {
		return cfg.StartTimeout.Std()
	}
	d := time.Minute + cfg.Monitor.Std()
	if h := spec.Container.Healthcheck; !h.Disabled() {
		d += h.StartPeriod.Std() + time.Duration(h.Retries+1)*(h.Interval.Std()+h.Timeout.Std())
	}
	return d
}

// isReady is a running task that passed its healthcheck, if it has one.
func isReady(t *api.Task) bool {
	if t.Status.State != api.TaskRunning {
		return false
	}
	return t.Spec.Container.Healthcheck.Disabled() || t.Status.Health == api.HealthHealthy
}

// DecideUpdate drives a service's rolling update or rollback, one step per
// call: it replaces out-of-date tasks `parallelism` slots at a time (0:
// all), start-first or stop-first, waits for each batch to be ready
// (running, and healthy when there is a healthcheck) and `delay` before
// the next, and counts as failed the tasks of the update that end or do
// not become ready in time, or that end within `monitor` of becoming
// ready. When failures/updated exceeds max_failure_ratio it pauses, rolls
// back, or continues, as failure_action says; a failing rollback pauses
// (a rollback is never rolled back). Everything it needs to continue is in
// the store, so a new leader carries on where the old one stopped.
func DecideUpdate(svc *api.Service, tasks []api.Task, now time.Time) UpdateDecision {
	var d UpdateDecision
	if svc.Spec.Mode.IsJob() {
		return d
	}
	target := specKey(svc.Spec.Task)
	targetID := SpecTarget(svc.Spec.Task)
	st := svc.Update
	rollback := st != nil && st.State.IsRollback() && st.Target == targetID
	cfg := svc.Spec.Update
	if rollback {
		cfg = svc.Spec.Rollback
	}
	key := func(t *api.Task) string { return strconv.FormatUint(t.Slot, 10) }
	if svc.Spec.Mode.IsGlobal() {
		key = func(t *api.Task) string { return t.NodeID }
	}
	groups := groupBy(tasks, key)
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return lessKey(keys[i], keys[j]) })

	var dirty []string // groups with a live task of another spec and no new one yet
	old := 0
	for _, k := range keys {
		var liveOld, liveNew []*api.Task
		for _, t := range groups[k].liveTasks() {
			if specKey(t.Spec) == target {
				liveNew = append(liveNew, t)
			} else {
				liveOld = append(liveOld, t)
			}
		}
		old += len(liveOld)
		switch {
		case len(liveOld) == 0:
		case len(liveNew) == 0:
			if slot, err := strconv.ParseUint(k, 10, 64); err == nil && !svc.Spec.Mode.IsGlobal() && slot > svc.Spec.Replicas {
				break // scaled away: the orchestrator stops it
			}
			dirty = append(dirty, k)
		case anyReady(liveNew):
			// start-first: the replacement is ready, the old task may go.
			for _, t := range liveOld {
				d.Shutdown = append(d.Shutdown, Stop{TaskID: t.ID, Reason: "replaced by update"})
			}
		}
	}

	// A new target starts a new update; the one in flight, if any, ends.
	if st == nil || st.Target != targetID {
		if old == 0 {
			markReady(&d, tasks, target)
			return d // nothing runs another spec: nothing to update
		}
		d.Status = &api.UpdateStatus{State: api.UpdateUpdating, StartedAt: now, Target: targetID, Message: "update started"}
		st = d.Status
	}
	markReady(&d, tasks, target)
	switch st.State {
	case api.UpdatePaused, api.UpdateRollbackPaused, api.UpdateCompleted, api.UpdateRollbackCompleted:
		d.Shutdown = nil // until a new spec, or an operator, moves it on
		return d
	}

	// This update's tasks: their readiness, failures and the last batch.
	var updated, failed uint64
	var inFlight int
	var lastReady time.Time
	var lastErr string
	timeout := startTimeout(cfg, svc.Spec.Task)
	for i := range tasks {
		t := &tasks[i]
		if specKey(t.Spec) != target || t.CreatedAt.Before(st.StartedAt) {
			continue
		}
		updated++
		readyAt := t.ReadyAt
		if readyAt.IsZero() && isReady(t) {
			readyAt = now
		}
		switch {
		case t.Status.State.Terminal() && t.DesiredState <= api.TaskRunning:
			if readyAt.IsZero() || t.Status.Timestamp.Sub(readyAt) < cfg.Monitor.Std() {
				failed++
				lastErr = taskError(t)
			}
		case !t.Status.State.Terminal() && readyAt.IsZero() && live(t):
			if now.Sub(t.CreatedAt) > timeout {
				failed++
				lastErr = fmt.Sprintf("not ready within %s (%s)", timeout, t.Status.State)
				d.Shutdown = append(d.Shutdown, Stop{TaskID: t.ID, Reason: lastErr})
			} else {
				inFlight++
				d.wakeAt(t.CreatedAt.Add(timeout + time.Millisecond))
			}
		}
		if !readyAt.IsZero() && readyAt.After(lastReady) {
			lastReady = readyAt
		}
	}
	status := *st
	status.Updated, status.Failed = updated, failed
	if updated > 0 && float64(failed)/float64(updated) > cfg.MaxFailureRatio && cfg.FailureAction != api.FailureContinue {
		msg := fmt.Sprintf("%d of %d updated tasks failed: %s", failed, updated, lastErr)
		d.Create, d.Shutdown = nil, nil
		switch {
		case rollback:
			status.State, status.Message = api.UpdateRollbackPaused, "rollback paused: "+msg
		case cfg.FailureAction == api.FailureRollback && svc.PreviousSpec != nil:
			d.Rollback = true
			status = api.UpdateStatus{State: api.UpdateRollbackStarted, StartedAt: now,
				Target: SpecTarget(svc.PreviousSpec.Task), Message: "rolling back: " + msg}
		default:
			status.State, status.Message = api.UpdatePaused, "update paused: "+msg
		}
		d.Status = &status
		return d
	}
	if status != *st || d.Status != nil {
		d.Status = &status
	}

	// Everything replaced and ready: complete once the last batch has been
	// watched for monitor.
	if old == 0 && inFlight == 0 {
		if until := lastReady.Add(cfg.Monitor.Std()); now.Before(until) {
			d.wakeAt(until)
			return d
		}
		done := status
		done.State, done.CompletedAt, done.Message = api.UpdateCompleted, now, "update completed"
		if failed > 0 {
			done.Message = fmt.Sprintf("update completed with %d failed task(s): %s", failed, lastErr)
		}
		if rollback {
			done.State, done.Message = api.UpdateRollbackCompleted, "rollback completed"
		}
		d.Status = &done
		return d
	}

	// The next batch, once the last one is ready and the delay is over.
	if inFlight > 0 || len(dirty) == 0 {
		return d
	}
	if !lastReady.IsZero() && now.Before(lastReady.Add(cfg.Delay.Std())) {
		d.wakeAt(lastReady.Add(cfg.Delay.Std()))
		return d
	}
	n := int(cfg.Parallelism)
	if n == 0 || n > len(dirty) {
		n = len(dirty)
	}
	for _, k := range dirty[:n] {
		g := groups[k]
		for _, t := range g.liveTasks() {
			if specKey(t.Spec) != target && cfg.Order == api.OrderStopFirst {
				d.Shutdown = append(d.Shutdown, Stop{TaskID: t.ID, Reason: "updating"})
			}
		}
		slot, node := g[0].Slot, ""
		if svc.Spec.Mode.IsGlobal() {
			slot, node = 0, g[0].NodeID
		}
		d.Create = append(d.Create, newTask(svc, slot, node, nil, now))
	}
	if d.Status == nil {
		s := status
		d.Status = &s
	}
	d.Status.Message = fmt.Sprintf("updating %d/%d", int(updated)+n, int(updated)+old)
	return d
}

// markReady stamps ReadyAt on tasks of the target spec that just became ready.
func markReady(d *UpdateDecision, tasks []api.Task, target string) {
	for i := range tasks {
		t := &tasks[i]
		if t.ReadyAt.IsZero() && isReady(t) && specKey(t.Spec) == target {
			d.Ready = append(d.Ready, t.ID)
		}
	}
}

func anyReady(ts []*api.Task) bool {
	for _, t := range ts {
		if isReady(t) {
			return true
		}
	}
	return false
}

func taskError(t *api.Task) string {
	switch {
	case t.Status.Err != "":
		return t.Status.Err
	case t.Status.Message != "":
		return t.Status.Message
	}
	return t.Status.State.String()
}

// lessKey orders slot numbers numerically and node IDs as strings.
func lessKey(a, b string) bool {
	x, errA := strconv.ParseUint(a, 10, 64)
	y, errB := strconv.ParseUint(b, 10, 64)
	if errA == nil && errB == nil {
		return x < y
	}
	return a < b
}

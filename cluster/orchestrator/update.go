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
	// ClearStatus removes the service's update status: a rollout that
	// waited for its dependencies has nothing left to do (a new service
	// now starts as any other does).
	ClearStatus bool
	// Rollback swaps the service's Spec and PreviousSpec: the rollback's
	// target is the spec before the failed update.
	Rollback bool
	// Ready are tasks to stamp with ReadyAt = now.
	Ready []string
	// Adopt are live tasks whose spec differs from the service's only in
	// placement, where the new placement still allows them: they take the
	// service's task spec in place, without a restart.
	Adopt []string
	// Hold keeps the orchestrator from creating the first tasks of a
	// service that waits for the services it comes after.
	Hold bool
}

// Empty reports whether the decision changes nothing.
func (d UpdateDecision) Empty() bool {
	return d.Decision.Empty() && d.Status == nil && !d.ClearStatus && !d.Rollback &&
		len(d.Ready)+len(d.Adopt) == 0
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
// its image to be pulled. A task whose spec has no healthcheck but whose
// node runs its image's (it reports a health: api.Task.HealthChecked) gets
// the time of a healthcheck with the default timing, as the managers do
// not know the image's.
func startTimeout(cfg api.UpdateConfig, spec api.TaskSpec, t *api.Task) time.Duration {
	if cfg.StartTimeout > 0 {
		return cfg.StartTimeout.Std()
	}
	d := time.Minute + cfg.Monitor.Std()
	switch h := spec.Container.Healthcheck; {
	case !h.Disabled():
		d += healthTime(*h)
	case t.HealthChecked():
		d += healthTime(api.DefaultHealthcheck())
	}
	return d
}

// healthTime is how long a healthcheck may take to pass: its start period
// and retries+1 probes that each wait their interval and time out.
func healthTime(h api.Healthcheck) time.Duration {
	return h.StartPeriod.Std() + time.Duration(h.Retries+1)*(h.Interval.Std()+h.Timeout.Std())
}

// isReady is a running task that passed its healthcheck, if it has one:
// its spec's or, when its node reports a health, its image's
// (api.Task.HealthChecked).
func isReady(t *api.Task) bool {
	if t.Status.State != api.TaskRunning {
		return false
	}
	return !t.HealthChecked() || t.Status.Health == api.HealthHealthy
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
//
// A task is out of date when its spec (placement aside) or endpoint
// differs from the service's, or when its node no longer satisfies the
// service's placement; tasks that differ only in placement and still fit
// are adopted in place (UpdateDecision.Adopt). A task leaves the
// load-balancing set (Decision.Drain) drain before it is stopped, in
// stop-first and start-first alike (retire), and new tasks join it by
// becoming ready (api.Task.InLoadBalancer). Draining tasks the update
// does not replace (it paused, rolled back, or a new spec cancelled it)
// are in Undrain, those the orchestrator drains (a scale-down, a drained
// node) too: the controller puts back only the tasks neither stops.
//
// gate says which services this one's rollout must wait for: while there
// are any, an update does not start and a service without tasks gets none
// (Hold); the status says "waiting for …". It is asked only when a
// rollout is about to start; nil waits for nothing.
func DecideUpdate(svc *api.Service, tasks []api.Task, nodes Nodes, gate Gate, now time.Time, drain time.Duration) UpdateDecision {
	if gate == nil {
		gate = func() []string { return nil }
	}
	if len(tasks) == 0 {
		return firstStart(svc, gate, now)
	}
	if svc.Spec.Mode.IsJob() {
		return UpdateDecision{}
	}
	u := newUpdater(svc, tasks, nodes, now, drain)
	u.decide(gate)
	return u.finish()
}

// Gate returns the services a rollout must still wait for, as
// WaitingFor does.
type Gate func() []string

// firstStart holds the first tasks of a service until the services it
// comes after are done.
func firstStart(svc *api.Service, gate Gate, now time.Time) UpdateDecision {
	var d UpdateDecision
	st := svc.Update
	waiting := st != nil && st.State == api.UpdateWaiting
	waitFor := gate()
	if len(waitFor) == 0 {
		d.ClearStatus = waiting
		return d
	}
	d.Hold = true
	s := api.UpdateStatus{State: api.UpdateWaiting, StartedAt: now, Target: SpecTarget(svc.Spec.Task), Message: waitingMessage(waitFor)}
	if waiting && st.Target == s.Target {
		s.StartedAt = st.StartedAt
	}
	if !sameStatus(st, s) {
		d.Status = &s
	}
	return d
}

// updater is one DecideUpdate call's working state.
type updater struct {
	svc      *api.Service
	tasks    []api.Task
	now      time.Time
	drain    time.Duration
	target   string // specKey of the service's task spec
	targetID string
	rollback bool
	cfg      api.UpdateConfig
	fits     map[string]fit
	nodes    Nodes
	groups   map[string]group
	keys     []string // of groups, slot (or node) order
	d        UpdateDecision
}

func newUpdater(svc *api.Service, tasks []api.Task, nodes Nodes, now time.Time, drain time.Duration) *updater {
	u := &updater{svc: svc, tasks: tasks, now: now, drain: drain, target: specKey(svc.Spec.Task), targetID: SpecTarget(svc.Spec.Task),
		fits: classify(svc, tasks, nodes), nodes: nodes}
	st := svc.Update
	u.rollback = st != nil && st.State.IsRollback() && st.Target == u.targetID
	u.cfg = svc.Spec.Update
	if u.rollback {
		u.cfg = svc.Spec.Rollback
	}
	key := func(t *api.Task) string { return strconv.FormatUint(t.Slot, 10) }
	if svc.Spec.Mode.IsGlobal() {
		key = func(t *api.Task) string { return t.NodeID }
	}
	u.groups = groupBy(tasks, key)
	for k := range u.groups {
		u.keys = append(u.keys, k)
	}
	sort.Slice(u.keys, func(i, j int) bool { return lessKey(u.keys[i], u.keys[j]) })
	return u
}

// split returns a group's live tasks that the update replaces and those
// that stay (current or adopted).
func (u *updater) split(k string) (old, cur []*api.Task) {
	for _, t := range u.groups[k].liveTasks() {
		switch u.fits[t.ID] {
		case fitDirty:
			old = append(old, t)
		case fitCurrent, fitAdopt:
			cur = append(cur, t)
		}
	}
	return old, cur
}

// scaledAway reports whether a replicated slot is above the count: the
// orchestrator stops its task, the update does not replace it.
func (u *updater) scaledAway(k string) bool {
	slot, err := strconv.ParseUint(k, 10, 64)
	return err == nil && !u.svc.Spec.Mode.IsGlobal() && slot > u.svc.Spec.Replicas
}

func (u *updater) decide(gate Gate) {
	svc, d, now := u.svc, &u.d, u.now
	st := svc.Update
	for i := range u.tasks {
		if t := &u.tasks[i]; u.fits[t.ID] == fitAdopt {
			d.Adopt = append(d.Adopt, t.ID)
		}
	}
	u.markReady()

	var dirty []string  // groups with a live task to replace and no new one yet
	var refill []string // groups whose last task, of another spec, ended on its own
	var done, total uint64
	old := 0
	// The rollout is complete only when every wanted slot (or node) runs a
	// ready task of the target spec: settled counts those, and the slots
	// the restart policy leaves ended; unsettled those still on their way.
	var settled, unsettled uint64
	for _, k := range u.keys {
		liveOld, liveNew := u.split(k)
		away := u.scaledAway(k)
		if !away && len(liveOld)+len(liveNew) > 0 {
			total++
			if anyReady(liveNew) {
				done++
			}
		}
		old += len(liveOld)
		switch {
		case len(liveOld) == 0:
		case len(liveNew) == 0:
			if !away {
				dirty = append(dirty, k)
			}
		case anyReady(liveNew):
			// start-first: the replacement serves, the old task may go.
			for _, t := range liveOld {
				u.d.retire(t, "replaced by update", u.now, u.drain)
			}
		}
		switch {
		case away:
		case anyReady(liveNew):
			settled++
		case len(liveOld)+len(liveNew) > 0:
			unsettled++
		default:
			switch u.empty(k) {
			case slotRefill:
				refill = append(refill, k)
				unsettled++
			case slotRestarting:
				unsettled++
			case slotGivenUp:
				settled++
			}
		}
	}
	if !svc.Spec.Mode.IsGlobal() {
		total = svc.Spec.Replicas
	}

	// A new target starts a new update; the one in flight, if any, ends.
	// An update waits for the services it comes after.
	newTarget := st == nil || st.Target != u.targetID
	starting := newTarget || st.State == api.UpdateWaiting
	if starting && old == 0 && len(refill) == 0 {
		d.ClearStatus = st != nil && st.State == api.UpdateWaiting
		return // nothing runs another spec: nothing to update
	}
	if starting {
		if waitFor := gate(); len(waitFor) > 0 {
			u.standStill()
			s := api.UpdateStatus{State: api.UpdateWaiting, StartedAt: now, Target: u.targetID, Message: waitingMessage(waitFor), Total: total, Done: done}
			if !newTarget {
				s.StartedAt = st.StartedAt
			}
			u.setStatus(st, s)
			return
		}
		d.Status = &api.UpdateStatus{State: api.UpdateUpdating, StartedAt: now, Target: u.targetID, Message: "update started"}
		st = d.Status
	}
	switch st.State {
	case api.UpdatePaused, api.UpdateRollbackPaused, api.UpdateCompleted, api.UpdateRollbackCompleted:
		u.standStill() // until a new spec, or an operator, moves it on
		return
	}

	// This update's tasks: their readiness, failures and the last batch.
	var updated, failed uint64
	var inFlight int
	var lastReady time.Time
	var lastErr string
	for i := range u.tasks {
		t := &u.tasks[i]
		if specKey(t.Spec) != u.target || t.CreatedAt.Before(st.StartedAt) {
			continue
		}
		updated++
		readyAt := t.ReadyAt
		if readyAt.IsZero() && isReady(t) {
			readyAt = now
		}
		switch {
		case endedOnItsOwn(t):
			if readyAt.IsZero() || t.Status.Timestamp.Sub(readyAt) < u.cfg.Monitor.Std() {
				failed++
				lastErr = taskError(t)
			}
		case !t.Status.State.Terminal() && readyAt.IsZero() && live(t):
			timeout := startTimeout(u.cfg, svc.Spec.Task, t)
			if now.Sub(t.CreatedAt) > timeout {
				failed++
				lastErr = fmt.Sprintf("not ready within %s (%s)", timeout, t.Status.State)
				d.retire(t, lastErr, now, u.drain) // not ready: not in the set, stopped at once
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
	status.Updated, status.Failed, status.Done, status.Total = updated, failed, done, total
	status.NextBatchAt = time.Time{}
	if updated > 0 && float64(failed)/float64(updated) > u.cfg.MaxFailureRatio && u.cfg.FailureAction != api.FailureContinue {
		msg := fmt.Sprintf("%d of %d updated tasks failed: %s", failed, updated, lastErr)
		u.standStill()
		switch {
		case u.rollback:
			status.State, status.Message = api.UpdateRollbackPaused, "rollback paused: "+msg
		case u.cfg.FailureAction == api.FailureRollback && svc.PreviousSpec != nil:
			d.Rollback, d.Adopt = true, nil
			status = api.UpdateStatus{State: api.UpdateRollbackStarted, StartedAt: now,
				Target: SpecTarget(svc.PreviousSpec.Task), Message: msg}
		default:
			status.State, status.Message = api.UpdatePaused, "update paused: "+msg
		}
		u.setStatus(st, status)
		return
	}

	// Failed slots of the spec rolled away from (or of the spec an update
	// replaces) get their new task now, outside the batches and without
	// the restart delay: nothing runs there that the batch would take away.
	for _, k := range refill {
		u.create(k)
		inFlight++
	}

	// Everything replaced, every slot running a ready task of the target
	// spec: complete once the last batch has been watched for monitor.
	complete := unsettled == 0 && (svc.Spec.Mode.IsGlobal() || settled >= total)
	if old == 0 && inFlight == 0 && complete {
		if until := lastReady.Add(u.cfg.Monitor.Std()); now.Before(until) {
			d.wakeAt(until)
			u.setStatus(st, status)
			return
		}
		end := status
		end.State, end.CompletedAt, end.Message = api.UpdateCompleted, now, "update completed"
		if failed > 0 {
			end.Message = fmt.Sprintf("update completed with %d failed task(s): %s", failed, lastErr)
		}
		if u.rollback {
			end.State, end.Message = api.UpdateRollbackCompleted, "rollback completed"
			if st.Message != "" {
				end.Message = "rolled back: " + st.Message
			}
		}
		u.setStatus(st, end)
		return
	}

	// Stop-first slots of the batch in progress: their old tasks drain,
	// then stop, and then the slot gets its new task.
	created, pending := 0, 0
	var idle []string
	for _, k := range dirty {
		if u.cfg.Order == api.OrderStopFirst && u.drainingIn(k) {
			if u.stopFirst(k) {
				created++
			} else {
				pending++
			}
			continue
		}
		idle = append(idle, k)
	}

	// The next batch, once the last one is ready and the delay is over.
	if inFlight > 0 || created > 0 || pending > 0 || len(idle) == 0 {
		u.setStatus(st, status)
		return
	}
	if next := lastReady.Add(u.cfg.Delay.Std()); !lastReady.IsZero() && now.Before(next) {
		status.NextBatchAt = next
		d.wakeAt(next)
		u.setStatus(st, status)
		return
	}
	n := int(u.cfg.Parallelism)
	if n == 0 || n > len(idle) {
		n = len(idle)
	}
	for _, k := range idle[:n] {
		if u.cfg.Order == api.OrderStartFirst {
			u.create(k)
		} else {
			u.stopFirst(k)
		}
	}
	u.setStatus(st, status)
}

// stopFirst retires a slot's old tasks and, once they are stopped,
// creates its new one. It reports whether it created it.
func (u *updater) stopFirst(k string) bool {
	old, _ := u.split(k)
	stopped := true
	for _, t := range old {
		if !u.d.retire(t, "updating", u.now, u.drain) {
			stopped = false
		}
	}
	if stopped {
		u.create(k)
	}
	return stopped
}

// create adds the new task of a group; the group's tasks that ended on
// their own become history (Decision.Replace).
func (u *updater) create(k string) {
	g := u.groups[k]
	slot, node := g[0].Slot, ""
	if u.svc.Spec.Mode.IsGlobal() {
		slot, node = 0, g[0].NodeID
	}
	g.create(&u.d.Decision, newTask(u.svc, slot, node, nil, u.now))
}

// emptySlot is what a group without a live task the rollout counts (none
// of the target spec, none to replace) waits for.
type emptySlot uint8

const (
	// slotFree is not wanted: scaled down, or its node left the service.
	slotFree emptySlot = iota
	// slotRefill's last task, of another spec, ended on its own: the
	// rollout gives it a task of the target spec at once.
	slotRefill
	// slotRestarting's last task, of the target spec, ended on its own:
	// the restart policy refills it, after its delay.
	slotRestarting
	// slotGivenUp's last task ended and the restart policy keeps it so.
	slotGivenUp
)

// empty judges a group without a live task of the target spec or to
// replace.
func (u *updater) empty(k string) emptySlot {
	g := u.groups[k]
	if len(g.liveTasks()) > 0 || stoppedByUs(g[0]) {
		return slotFree // a task the orchestrator stops (fitLeave), or stopped
	}
	if u.svc.Spec.Mode.IsGlobal() {
		n, ok := u.nodes[k]
		if !ok || n.Removed() || n.Status.State != api.NodeReady || n.Spec.Availability != api.AvailabilityActive || !eligible(u.svc, &n) {
			return slotFree
		}
	}
	last := g[0]
	p := u.svc.Spec.Task.Restart
	other := specKey(last.Spec) != u.target
	if other {
		p.MaxAttempts = 0 // the attempts were another spec's
	}
	v := decideRestart(p, last, u.svc.Spec.Mode, false)
	switch {
	case !v.restart:
		return slotGivenUp
	case other:
		return slotRefill
	case u.cfg.FailureAction == api.FailureContinue || u.cfg.MaxFailureRatio >= 1:
		// The operator asked to carry on past failures (or to tolerate
		// them all): a failing slot of the target spec does not hold the
		// rollout's completion, which reports the failures.
		return slotGivenUp
	}
	return slotRestarting
}

// standStill drops whatever the decision would move: the rollout waits,
// stopped, or turned into a rollback.
func (u *updater) standStill() {
	u.d.Create, u.d.Shutdown, u.d.Drain, u.d.Draining = nil, nil, nil, nil
}

// setStatus records the status when it differs from the stored one, or
// when the decision already changed it.
func (u *updater) setStatus(prev *api.UpdateStatus, s api.UpdateStatus) {
	if u.d.Status != nil || !sameStatus(prev, s) {
		u.d.Status = &s
	}
}

// sameStatus compares statuses, times by instant.
func sameStatus(a *api.UpdateStatus, b api.UpdateStatus) bool {
	if a == nil {
		return false
	}
	x, y := *a, b
	for _, p := range [][2]*time.Time{{&x.StartedAt, &y.StartedAt}, {&x.CompletedAt, &y.CompletedAt}, {&x.NextBatchAt, &y.NextBatchAt}} {
		if !p[0].Equal(*p[1]) {
			return false
		}
		*p[0], *p[1] = time.Time{}, time.Time{}
	}
	return x == y
}

// finish returns the decision with the draining tasks it no longer
// retires back in the load-balancing set.
func (u *updater) finish() UpdateDecision {
	d := u.d
	d.undrainRest(u.tasks)
	return d
}

// markReady stamps ReadyAt on tasks of the target spec that just became ready.
func (u *updater) markReady() {
	for i := range u.tasks {
		t := &u.tasks[i]
		if t.ReadyAt.IsZero() && isReady(t) && specKey(t.Spec) == u.target {
			u.d.Ready = append(u.d.Ready, t.ID)
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

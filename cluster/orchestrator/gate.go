package orchestrator

import (
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// Dependency is a service another one's rollout may wait for, with its
// tasks.
type Dependency struct {
	Service *api.Service
	Tasks   []api.Task
}

// WaitingFor returns, sorted, the services of svc.Spec.RolloutAfter that
// svc must still wait for before it starts its first tasks or an update
// (depends_on between services and between stacks). A service is waited
// for, under depends_on's service_healthy and service_completed_successfully
// (and by a stack's depends_on), while
//   - its own rollout is not over: waiting, updating, paused, rolling back
//     or with a rollback paused;
//   - its rollback completed since svc began to wait: the update svc was
//     to follow failed, so svc keeps waiting while the revision goes
//     Degraded and is reverted (a rollback before that is history);
//   - not every one of its tasks runs its current spec and is ready
//     (running, and healthy if it has a healthcheck); for jobs, until they
//     have completed.
//
// Under service_started, only while not every task of its current spec
// runs: neither its rollout nor its tasks' health is waited for.
//
// Names that are not services (any more) are not waited for: waiting for
// nothing would never end. The result depends only on its arguments.
func WaitingFor(svc *api.Service, deps map[string]Dependency, nodes Nodes, now time.Time) []string {
	return waitingFor(svc, deps, nodes, now, map[string]bool{})
}

// waitingFor is WaitingFor with a cache of whether each dependency's
// tasks are settled, for a pass that asks for many services.
func waitingFor(svc *api.Service, deps map[string]Dependency, nodes Nodes, now time.Time, tasksSettled map[string]bool) []string {
	if len(svc.Spec.RolloutAfter) == 0 {
		return nil
	}
	since := now
	if u := svc.Update; u != nil && u.State == api.UpdateWaiting && u.Target == SpecTarget(svc.Spec.Task) {
		since = u.StartedAt
	}
	var out []string
	for _, name := range svc.Spec.RolloutAfter {
		dep, ok := deps[name]
		if !ok || dep.Service == nil || name == svc.Spec.Name {
			continue
		}
		started := svc.Spec.Conditions[name] == api.DependStarted && !dep.Service.Spec.Mode.IsJob()
		if !started && !rolledOut(dep.Service, since) {
			out = append(out, name)
			continue
		}
		key := name
		if started {
			key += "/started"
		}
		ok, known := tasksSettled[key]
		if !known {
			ok = tasksReady(dep, nodes, !started)
			tasksSettled[key] = ok
		}
		if !ok {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// rolledOut reports whether a dependency's rollout is over, and did not
// end in a rollback since the dependent began to wait.
func rolledOut(svc *api.Service, since time.Time) bool {
	u := svc.Update
	if u == nil {
		return true
	}
	switch u.State {
	case api.UpdateWaiting, api.UpdateUpdating, api.UpdatePaused, api.UpdateRollbackStarted, api.UpdateRollbackPaused:
		return false
	case api.UpdateRollbackCompleted:
		return u.StartedAt.Before(since)
	}
	return true
}

// tasksReady reports whether every task of a dependency runs its current
// spec and is ready (for jobs: has completed), on every node that should
// run one for a global service. Without healthy, running is enough
// (depends_on's service_started).
func tasksReady(dep Dependency, nodes Nodes, healthy bool) bool {
	svc := dep.Service
	loose := specKey(withoutPlacement(svc.Spec.Task))
	current := func(t *api.Task) bool { return specKey(withoutPlacement(t.Spec)) == loose }
	var ready, completed uint64
	readyOn, completedOn := map[string]bool{}, map[string]bool{}
	for i := range dep.Tasks {
		t := &dep.Tasks[i]
		switch {
		case t.Status.State == api.TaskComplete && current(t):
			completed++
			completedOn[t.NodeID] = true
		case t.Status.State.Terminal() || t.DesiredState != desiredFor(svc.Spec.Mode):
		case !current(t):
			return false // a task of an older spec still runs
		case isReady(t) || !healthy && t.Status.State == api.TaskRunning:
			ready++
			readyOn[t.NodeID] = true
		case !svc.Spec.Mode.IsJob():
			if svc.Spec.Mode.IsGlobal() {
				return false // every task of a global service must be ready
			}
		}
	}
	switch svc.Spec.Mode {
	case api.ModeReplicated:
		return ready >= svc.Spec.Replicas
	case api.ModeReplicatedJob:
		return completed >= svc.Spec.TotalCompletions
	}
	// Global: every node that should run a task runs a ready (or, for a
	// job, completed) one.
	for id, n := range nodes {
		if n.Status.State != api.NodeReady || n.Spec.Availability != api.AvailabilityActive || !eligible(svc, &n) {
			continue
		}
		if svc.Spec.Mode.IsJob() && !completedOn[id] || !svc.Spec.Mode.IsJob() && !readyOn[id] {
			return false
		}
	}
	return true
}

// waitingMessage is the status message of a rollout held by its
// dependencies.
func waitingMessage(waitFor []string) string {
	return "waiting for " + strings.Join(waitFor, ", ")
}

package reconcile

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// DefaultProgressDeadline is how long a revision may stay Progressing
// before it counts as failed, as Kubernetes' progressDeadlineSeconds.
const DefaultProgressDeadline = 10 * time.Minute

// Observed is what the cluster holds for one service: the service (absent
// once deleted) and its tasks.
type Observed struct {
	Service *api.Service
	Tasks   []api.Task
}

// ServiceProgress is one service's part in a revision's rollout.
type ServiceProgress struct {
	Name    string `json:"name"`
	Done    bool   `json:"done"`
	Failed  bool   `json:"failed,omitempty"`
	Ready   int    `json:"ready"`   // tasks running the new spec, healthy
	Desired int    `json:"desired"` // tasks wanted (completions for jobs)
	Message string `json:"message,omitempty"`
}

// Tracking is where a revision's rollout stands.
type Tracking struct {
	Phase    api.SyncPhase     `json:"phase"`
	Message  string            `json:"message"`
	Services []ServiceProgress `json:"services,omitempty"`
}

// Rollout names what a revision changed: the services it created or
// updated, and those it removed.
type Rollout struct {
	Changed   []string
	Removed   []string
	AppliedAt time.Time
	Deadline  time.Duration // 0: DefaultProgressDeadline
	// Unchanged: the revision changed no service (a revert to the spec a
	// rollback already restored, a commit that touches no stack), and
	// Changed lists every service it declares. Their update states are
	// then an earlier rollout's: a finished or running rollback is not
	// this revision failing (its tasks are judged as they run); a rollout
	// that stopped (paused) still is.
	Unchanged bool
}

// RolloutOf lists the services a changeset creates, updates and deletes.
func RolloutOf(cs Changeset, appliedAt time.Time) Rollout {
	r := Rollout{AppliedAt: appliedAt}
	for _, s := range cs.Steps {
		if s.Kind != KindService {
			continue
		}
		switch s.Action {
		case Create, Update:
			r.Changed = append(r.Changed, s.Name)
		case Delete:
			r.Removed = append(r.Removed, s.Name)
		}
	}
	return r
}

// Track judges a revision's rollout from what the cluster holds. It is
// pure: now comes from the caller's clock. The revision is Synced only when
// every changed service runs its new spec with every task ready (running,
// and healthy when it has a healthcheck) and no task of a removed service
// is left; Degraded as soon as a rollout paused or rolled back, or when
// the deadline passes with work outstanding; Progressing otherwise.
func Track(r Rollout, observed map[string]Observed, now time.Time) Tracking {
	var t Tracking
	var waiting, failed []string
	for _, name := range sorted(r.Changed) {
		p := progress(name, observed[name], r.Unchanged)
		t.Services = append(t.Services, p)
		switch {
		case p.Failed:
			failed = append(failed, fmt.Sprintf("%s: %s", name, p.Message))
		case !p.Done:
			waiting = append(waiting, fmt.Sprintf("%s: %s", name, p.Message))
		}
	}
	for _, name := range sorted(r.Removed) {
		if n := live(observed[name].Tasks); n > 0 {
			msg := fmt.Sprintf("%d task(s) still running after removal", n)
			t.Services = append(t.Services, ServiceProgress{Name: name, Message: msg})
			waiting = append(waiting, fmt.Sprintf("%s: %s", name, msg))
		} else {
			t.Services = append(t.Services, ServiceProgress{Name: name, Done: true, Message: "removed"})
		}
	}
	deadline := r.Deadline
	if deadline == 0 {
		deadline = DefaultProgressDeadline
	}
	switch {
	case len(failed) > 0:
		t.Phase, t.Message = api.SyncDegraded, "rollout failed: "+strings.Join(failed, "; ")
	case len(waiting) == 0:
		t.Phase, t.Message = api.SyncSynced, fmt.Sprintf("%d service(s) rolled out healthy", len(r.Changed))
		if len(r.Removed) > 0 {
			t.Message += fmt.Sprintf(", %d removed", len(r.Removed))
		}
	case now.Sub(r.AppliedAt) > deadline:
		t.Phase = api.SyncDegraded
		t.Message = fmt.Sprintf("no healthy rollout after %s: %s", deadline, strings.Join(waiting, "; "))
	default:
		t.Phase, t.Message = api.SyncProgressing, "waiting for "+strings.Join(waiting, "; ")
	}
	return t
}

func sorted(names []string) []string {
	out := append([]string(nil), names...)
	sort.Strings(out)
	return out
}

// live counts tasks that are, or are about to be, running.
func live(tasks []api.Task) int {
	n := 0
	for _, t := range tasks {
		if !t.Status.State.Terminal() {
			n++
		}
	}
	return n
}

func progress(name string, o Observed, unchanged bool) ServiceProgress {
	p := ServiceProgress{Name: name}
	svc := o.Service
	if svc == nil {
		p.Message = "not created yet"
		return p
	}
	if u := svc.Update; u != nil {
		switch u.State {
		case api.UpdateRollbackStarted, api.UpdateRollbackCompleted:
			if unchanged {
				break // an earlier rollout's rollback, to the spec this revision keeps
			}
			fallthrough
		case api.UpdatePaused, api.UpdateRollbackPaused:
			p.Failed = true
			p.Message = "update " + u.State.String()
			if u.Message != "" {
				p.Message += ": " + u.Message
			}
			return p
		}
	}
	if e := svc.Endpoint; e != nil && e.Problem != "" {
		// Running tasks that cannot be reached by their VIP or port are
		// not a rollout done: it waits, then the deadline degrades it.
		p.Message = e.Problem
		return p
	}
	spec := specKey(svc.Spec.Task)
	endpoint := endpointKey(&svc.Spec.Endpoint)
	// current: the task runs the service's spec. The orchestrator gives
	// tasks that a placement-only change lets stay the new spec in place;
	// a task made for another endpoint is replaced like one of another
	// spec (tasks that recorded none never differ).
	current := func(t api.Task) bool {
		return specKey(t.Spec) == spec && (t.Endpoint == nil || endpointKey(t.Endpoint) == endpoint)
	}
	var pending []string
	completed := 0
	for _, t := range o.Tasks {
		if !current(t) {
			continue // a task of an older spec: the update has not reached it
		}
		switch {
		case t.Status.State == api.TaskComplete:
			completed++
		case t.DesiredState != api.TaskRunning && !svc.Spec.Mode.IsJob():
		case t.Status.State == api.TaskRunning && ready(t):
			p.Ready++
		case t.Status.State < api.TaskRunning && t.Status.Err != "":
			pending = append(pending, t.Status.Err)
		}
	}
	old := 0
	for _, t := range o.Tasks {
		if !current(t) && !t.Status.State.Terminal() && t.DesiredState == api.TaskRunning {
			old++
		}
	}
	switch svc.Spec.Mode {
	case api.ModeReplicated:
		p.Desired = int(svc.Spec.Replicas)
	case api.ModeReplicatedJob:
		p.Desired, p.Ready = int(svc.Spec.TotalCompletions), completed
	case api.ModeGlobalJob:
		p.Desired, p.Ready = 0, completed
		for _, t := range o.Tasks {
			if current(t) {
				p.Desired++
			}
		}
	default: // global: one task per eligible node, as the orchestrator made them
		for _, t := range o.Tasks {
			if current(t) && t.DesiredState == api.TaskRunning {
				p.Desired++
			}
		}
	}
	p.Done = p.Ready >= p.Desired && old == 0 && (p.Desired > 0 || svc.Spec.Mode == api.ModeReplicated)
	waiting := svc.Update != nil && svc.Update.State == api.UpdateWaiting
	switch {
	case waiting:
		// Held by depends_on: not started, whatever its tasks say.
		p.Done = false
		p.Message = fmt.Sprintf("%d/%d ready, %s", p.Ready, p.Desired, svc.Update.Message)
	case p.Done:
		p.Message = fmt.Sprintf("%d/%d ready", p.Ready, p.Desired)
	case len(pending) > 0:
		p.Message = fmt.Sprintf("%d/%d ready; %s", p.Ready, p.Desired, pending[0])
	case old > 0:
		p.Message = fmt.Sprintf("%d/%d ready, %d task(s) of the previous spec left", p.Ready, p.Desired, old)
	default:
		p.Message = fmt.Sprintf("%d/%d ready", p.Ready, p.Desired)
	}
	return p
}

// ready is a running task that passed its healthcheck, if it has one
// (its spec's, or its image's: the node reports a health).
func ready(t api.Task) bool {
	if !t.HealthChecked() {
		return true
	}
	return t.Status.Health == api.HealthHealthy
}

// specKey compares task specs by content: stored copies may differ in nil
// versus empty collections, never in meaning.
func specKey(s api.TaskSpec) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func endpointKey(e *api.EndpointSpec) string {
	b, _ := json.Marshal(e)
	return string(b)
}

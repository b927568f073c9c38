package orchestrator

import (
	"slices"
	"sort"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// HistoryPerSlot is how many ended tasks a slot (or a global service's
// node) keeps for inspection before the oldest are deleted, as Swarm's
// task history retention limit.
const HistoryPerSlot = 5

// Decision is what the orchestrator wants committed for one service.
// Every task it stops goes through retire: one in the load-balancing set
// is drained first and stopped only the drain delay later, on another
// pass.
type Decision struct {
	// Create are new tasks, without IDs (the store assigns them).
	Create []api.Task
	// Drain are tasks that leave their service's load-balancing set now
	// (DrainingSince = now) because the decision stops them: they are
	// stopped (Shutdown) by a pass at least the drain delay later.
	Drain []string
	// Draining are tasks already draining that the decision stops once
	// their drain delay is over (Wake); nothing is committed for them.
	Draining []string
	// Undrain are draining tasks that rejoin the set: nothing stops them
	// any more.
	Undrain []string
	// Shutdown are tasks whose desired state becomes shutdown, with why.
	Shutdown []Stop
	// Replace are tasks that ended on their own and whose slot (or node)
	// gets a new task in this decision: their desired state becomes
	// shutdown and they are marked api.Task.Replaced, history from now on.
	Replace []string
	// Delete are ended tasks beyond the history limit.
	Delete []string
	// Wake is when a delayed restart or a drain falls due; zero when
	// nothing waits.
	Wake time.Time
}

// Stop asks a task to stop.
type Stop struct {
	TaskID string
	Reason string
}

// Empty reports whether the decision changes nothing.
func (d Decision) Empty() bool {
	return len(d.Create)+len(d.Drain)+len(d.Undrain)+len(d.Shutdown)+len(d.Replace)+len(d.Delete) == 0
}

func (d *Decision) wakeAt(t time.Time) {
	if d.Wake.IsZero() || t.Before(d.Wake) {
		d.Wake = t
	}
}

// Nodes is the orchestrator's view of the cluster's nodes.
type Nodes map[string]api.Node

// usable reports whether a task on the node may keep running there.
func (n Nodes) usable(id string) (bool, string) {
	node, ok := n[id]
	switch {
	case id == "":
		return true, "" // not scheduled yet
	case !ok, node.Removed():
		return false, "node removed"
	case node.Status.State == api.NodeDown:
		return false, "node down"
	case node.Spec.Availability == api.AvailabilityDrain:
		return false, "node drained"
	}
	return true, ""
}

// live reports whether a task is running or on its way to run: not ended,
// and not asked to stop (a job's task is wanted until it completes).
func live(t *api.Task) bool {
	return !t.Status.State.Terminal() && (t.DesiredState <= api.TaskRunning || t.DesiredState == api.TaskComplete)
}

// newTask is a fresh task for a slot (or node) of a service.
func newTask(svc *api.Service, slot uint64, nodeID string, restarts []time.Time, now time.Time) api.Task {
	return api.Task{
		ServiceID:    svc.ID,
		ServiceName:  svc.Spec.Name,
		Slot:         slot,
		NodeID:       nodeID,
		SpecVersion:  svc.Version,
		Spec:         svc.Spec.Task,
		DesiredState: desiredFor(svc.Spec.Mode),
		Status:       api.TaskStatus{State: api.TaskNew, Timestamp: now, Message: "created"},
		Restarts:     restarts,
		Endpoint:     endpointOf(svc),
	}
}

// endpointOf is a copy of the service's endpoint spec for a new task.
func endpointOf(svc *api.Service) *api.EndpointSpec {
	e := svc.Spec.Endpoint
	e.Ports = slices.Clone(e.Ports)
	return &e
}

// desiredFor is the desired state of a new task: jobs run to completion.
func desiredFor(m api.ServiceMode) api.TaskState {
	if m.IsJob() {
		return api.TaskComplete
	}
	return api.TaskRunning
}

// group holds the tasks of one slot (or one node of a global service),
// newest first.
type group []*api.Task

func groupBy(tasks []api.Task, key func(*api.Task) string) map[string]group {
	g := map[string]group{}
	for i := range tasks {
		t := &tasks[i]
		k := key(t)
		g[k] = append(g[k], t)
	}
	for _, ts := range g {
		sort.SliceStable(ts, func(i, j int) bool {
			if !ts[i].CreatedAt.Equal(ts[j].CreatedAt) {
				return ts[i].CreatedAt.After(ts[j].CreatedAt)
			}
			return ts[i].ID > ts[j].ID
		})
	}
	return g
}

// liveTasks returns the group's live tasks.
func (g group) liveTasks() []*api.Task {
	var out []*api.Task
	for _, t := range g {
		if live(t) {
			out = append(out, t)
		}
	}
	return out
}

// create adds a new task to the decision for the group's slot (or node)
// and makes history of the group's tasks that ended on their own (Replace):
// from this commit on, the new task is the one wanted there.
func (g group) create(d *Decision, t api.Task) {
	d.Create = append(d.Create, t)
	for _, old := range g {
		if endedOnItsOwn(old) && !old.Replaced && !(old.Status.State == api.TaskComplete && old.DesiredState == api.TaskComplete) {
			d.Replace = append(d.Replace, old.ID) // a completed job task stays complete
		}
	}
}

// reap deletes ended tasks beyond the history limit.
func (g group) reap(d *Decision) {
	ended := 0
	for _, t := range g {
		if live(t) {
			continue
		}
		ended++
		if ended > HistoryPerSlot && t.Status.State.Terminal() {
			d.Delete = append(d.Delete, t.ID)
		}
	}
}

// evict retires the live tasks of a group that sit on nodes that cannot
// keep them (drained, down, removed), and returns the tasks that remain.
// A task that still drains does not remain: its slot is refilled at once,
// while it drains.
func (g group) evict(nodes Nodes, d *Decision, now time.Time, drain time.Duration) []*api.Task {
	var keep []*api.Task
	for _, t := range g.liveTasks() {
		if ok, why := nodes.usable(t.NodeID); !ok {
			d.retire(t, why, now, drain)
			continue
		}
		keep = append(keep, t)
	}
	return keep
}

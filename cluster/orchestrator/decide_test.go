package orchestrator

import (
	"fmt"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func service(mode api.ServiceMode, replicas uint64, restart api.RestartPolicy) *api.Service {
	return &api.Service{Meta: api.Meta{ID: "svc", Version: 7}, Spec: api.ServiceSpec{
		Name: "s_web", Mode: mode, Replicas: replicas,
		Task: api.TaskSpec{Container: api.ContainerSpec{Image: "web:1"}, Restart: restart},
	}}
}

func readyNodes(ids ...string) Nodes {
	n := Nodes{}
	for _, id := range ids {
		n[id] = api.Node{Meta: api.Meta{ID: id}, Status: api.NodeStatus{State: api.NodeReady}}
	}
	return n
}

// tk builds a task: slot, node, state, and when it last changed.
func tk(id string, slot uint64, node string, state api.TaskState, at time.Time) api.Task {
	desired := api.TaskRunning
	return api.Task{Meta: api.Meta{ID: id, CreatedAt: at}, ServiceID: "svc", Slot: slot, NodeID: node,
		DesiredState: desired, Status: api.TaskStatus{State: state, Timestamp: at}}
}

// stopped is a task the orchestrator stopped (a scale-down, an update).
func stopped(t api.Task) api.Task {
	t.DesiredState = api.TaskShutdown
	return t
}

// summary prints a decision compactly for comparisons.
func summary(d Decision) []string {
	var out []string
	for _, c := range d.Create {
		out = append(out, fmt.Sprintf("create slot=%d node=%s restarts=%d", c.Slot, c.NodeID, len(c.Restarts)))
	}
	for _, id := range d.Drain {
		out = append(out, "drain "+id)
	}
	for _, id := range d.Draining {
		out = append(out, "draining "+id)
	}
	for _, id := range d.Undrain {
		out = append(out, "undrain "+id)
	}
	for _, s := range d.Shutdown {
		out = append(out, fmt.Sprintf("shutdown %s (%s)", s.TaskID, s.Reason))
	}
	for _, id := range d.Delete {
		out = append(out, "delete "+id)
	}
	if !d.Wake.IsZero() {
		out = append(out, "wake +"+d.Wake.Sub(t0).String())
	}
	return out
}

func TestDecideReplicated(t *testing.T) {
	any5s := api.RestartPolicy{Condition: api.RestartAny, Delay: api.Duration(5 * time.Second)}
	nodes := readyNodes("n1", "n2")
	cases := []struct {
		name  string
		svc   *api.Service
		tasks []api.Task
		nodes Nodes
		now   time.Time
		want  []string
	}{
		{"new service", service(api.ModeReplicated, 3, any5s), nil, nodes, t0,
			[]string{"create slot=1 node= restarts=0", "create slot=2 node= restarts=0", "create slot=3 node= restarts=0"}},
		{"steady", service(api.ModeReplicated, 2, any5s),
			[]api.Task{tk("a", 1, "n1", api.TaskRunning, t0), tk("b", 2, "n2", api.TaskRunning, t0)}, nodes, t0, nil},
		{"failed task waits for the delay", service(api.ModeReplicated, 1, any5s),
			[]api.Task{tk("a", 1, "n1", api.TaskFailed, t0)}, nodes, t0.Add(2 * time.Second),
			[]string{"wake +5s"}},
		{"failed task replaced after the delay", service(api.ModeReplicated, 1, any5s),
			[]api.Task{tk("a", 1, "n1", api.TaskFailed, t0)}, nodes, t0.Add(5 * time.Second),
			[]string{"create slot=1 node= restarts=1"}},
		{"on-failure does not restart a clean exit", service(api.ModeReplicated, 1, api.RestartPolicy{Condition: api.RestartOnFailure}),
			[]api.Task{tk("a", 1, "n1", api.TaskComplete, t0)}, nodes, t0.Add(time.Hour), nil},
		{"none never restarts", service(api.ModeReplicated, 1, api.RestartPolicy{Condition: api.RestartNone}),
			[]api.Task{tk("a", 1, "n1", api.TaskFailed, t0)}, nodes, t0.Add(time.Hour), nil},
		{"node down: replaced at once, no attempt counted, the old task drains", service(api.ModeReplicated, 1, any5s),
			[]api.Task{tk("a", 1, "n1", api.TaskRunning, t0)},
			Nodes{"n1": {Meta: api.Meta{ID: "n1"}, Status: api.NodeStatus{State: api.NodeDown}}}, t0.Add(time.Second),
			[]string{"create slot=1 node= restarts=0", "drain a", "wake +1.5s"}},
		{"node down: a task that does not run yet is stopped at once", service(api.ModeReplicated, 1, any5s),
			[]api.Task{tk("a", 1, "n1", api.TaskAssigned, t0)},
			Nodes{"n1": {Meta: api.Meta{ID: "n1"}, Status: api.NodeStatus{State: api.NodeDown}}}, t0.Add(time.Second),
			[]string{"create slot=1 node= restarts=0", "shutdown a (node down)"}},
		{"drained node", service(api.ModeReplicated, 1, any5s),
			[]api.Task{tk("a", 1, "n1", api.TaskRunning, t0)},
			Nodes{"n1": {Meta: api.Meta{ID: "n1"}, Spec: api.NodeSpec{Availability: api.AvailabilityDrain}, Status: api.NodeStatus{State: api.NodeReady}}}, t0,
			[]string{"create slot=1 node= restarts=0", "drain a", "wake +500ms"}},
		{"scale down: pending first, then busiest node, then highest slot", service(api.ModeReplicated, 2, any5s),
			[]api.Task{tk("a", 1, "n1", api.TaskRunning, t0), tk("b", 2, "n1", api.TaskRunning, t0),
				tk("c", 3, "n2", api.TaskRunning, t0), tk("d", 4, "", api.TaskPending, t0)}, nodes, t0,
			[]string{"drain b", "shutdown d (scaled down)", "wake +500ms"}},
		{"scaled-down slot is not refilled", service(api.ModeReplicated, 1, any5s),
			[]api.Task{tk("a", 1, "n1", api.TaskRunning, t0), tk("b", 2, "n1", api.TaskFailed, t0)}, nodes, t0.Add(time.Hour), nil},
		{"scaled up again: a slot a scale-down stopped is refilled", service(api.ModeReplicated, 2, any5s),
			[]api.Task{tk("a", 1, "n1", api.TaskRunning, t0), stopped(tk("b", 2, "n2", api.TaskShutdown, t0))}, nodes, t0.Add(time.Second),
			[]string{"create slot=2 node= restarts=0"}},
		{"a scale-down that stopped a low slot keeps the count", service(api.ModeReplicated, 2, any5s),
			[]api.Task{stopped(tk("a", 1, "n1", api.TaskShutdown, t0)), tk("b", 2, "n1", api.TaskRunning, t0), tk("c", 3, "n2", api.TaskRunning, t0)},
			nodes, t0.Add(time.Second), nil},
		{"scaled up from there: the stopped low slot first", service(api.ModeReplicated, 4, any5s),
			[]api.Task{stopped(tk("a", 1, "n1", api.TaskShutdown, t0)), tk("b", 2, "n1", api.TaskRunning, t0), tk("c", 3, "n2", api.TaskRunning, t0)},
			nodes, t0.Add(time.Second), []string{"create slot=1 node= restarts=0", "create slot=4 node= restarts=0"}},
	}
	// A commit that changes the spec and scales down at once: slot 1's
	// start-first replacement does not run yet, but its old task does, so
	// the slot is a running one; a slot above the count goes, not the
	// replacement (which the updater made again at once, for ever).
	scaled := service(api.ModeReplicated, 2, any5s)
	old := tk("a", 1, "n1", api.TaskRunning, t0)
	old.Spec = api.TaskSpec{Container: api.ContainerSpec{Image: "web:0"}}
	repl := tk("a2", 1, "n1", api.TaskStarting, t0.Add(time.Second))
	repl.Spec = scaled.Spec.Task
	b, c := tk("b", 2, "n2", api.TaskRunning, t0), tk("c", 3, "n2", api.TaskRunning, t0)
	b.Spec, c.Spec = old.Spec, old.Spec
	cases = append(cases, struct {
		name  string
		svc   *api.Service
		tasks []api.Task
		nodes Nodes
		now   time.Time
		want  []string
	}{"spec changed and scaled down: the replacement of a running slot stays", scaled,
		[]api.Task{old, repl, b, c}, nodes, t0.Add(2 * time.Second), []string{"drain c", "wake +2.5s"}})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := summary(DecideReplicated(tc.svc, tc.tasks, tc.nodes, tc.now, DefaultDrainDelay))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// The restart history travels with the slot's tasks: max_attempts within
// the window is enforced across replacements, and attempts older than the
// window are forgotten.
func TestRestartAttemptsWithinWindow(t *testing.T) {
	policy := api.RestartPolicy{Condition: api.RestartAny, MaxAttempts: 2, Window: api.Duration(time.Minute)}
	svc := service(api.ModeReplicated, 1, policy)
	nodes := readyNodes("n1")
	now := t0
	var tasks []api.Task
	tasks = append(tasks, tk("t0", 1, "n1", api.TaskFailed, now))
	restarts := 0
	for i := 1; i <= 5; i++ {
		now = now.Add(time.Second)
		d := DecideReplicated(svc, tasks, nodes, now, DefaultDrainDelay)
		if len(d.Create) == 0 {
			break
		}
		restarts++
		next := d.Create[0]
		next.ID, next.CreatedAt = fmt.Sprintf("t%d", i), now
		next.Status = api.TaskStatus{State: api.TaskFailed, Timestamp: now}
		tasks = append(tasks, next)
	}
	if restarts != 2 {
		t.Fatalf("restarted %d times, want max_attempts 2", restarts)
	}
	// Two minutes later the attempts have left the window.
	last := tasks[len(tasks)-1]
	last.Status.Timestamp = now.Add(2 * time.Minute)
	tasks[len(tasks)-1] = last
	d := DecideReplicated(svc, tasks, nodes, now.Add(2*time.Minute), DefaultDrainDelay)
	if len(d.Create) != 1 || len(d.Create[0].Restarts) != 1 {
		t.Fatalf("after the window: %v", summary(d))
	}
}

func TestHistoryIsReaped(t *testing.T) {
	svc := service(api.ModeReplicated, 1, api.RestartPolicy{Condition: api.RestartAny})
	var tasks []api.Task
	for i := 0; i < HistoryPerSlot+3; i++ {
		tasks = append(tasks, tk(fmt.Sprintf("old%d", i), 1, "n1", api.TaskFailed, t0.Add(time.Duration(i)*time.Second)))
	}
	tasks = append(tasks, tk("live", 1, "n1", api.TaskRunning, t0.Add(time.Hour)))
	d := DecideReplicated(svc, tasks, readyNodes("n1"), t0.Add(time.Hour), DefaultDrainDelay)
	if diff := cmp.Diff([]string{"delete old0", "delete old1", "delete old2"}, summary(d)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestDecideGlobal(t *testing.T) {
	svc := service(api.ModeGlobal, 0, api.RestartPolicy{Condition: api.RestartAny})
	nodes := readyNodes("n1", "n2", "n3")
	paused := nodes["n3"]
	paused.Spec.Availability = api.AvailabilityPause
	nodes["n3"] = paused
	nodes["n4"] = api.Node{Meta: api.Meta{ID: "n4"}, Spec: api.NodeSpec{Labels: map[string]string{"gpu": "no"}}, Status: api.NodeStatus{State: api.NodeReady}}
	eligible := func(n api.Node) bool { return n.Spec.Labels["gpu"] != "no" }
	tasks := []api.Task{tk("a", 0, "n1", api.TaskRunning, t0), tk("c", 0, "n3", api.TaskRunning, t0), tk("d", 0, "n4", api.TaskRunning, t0)}
	got := summary(DecideGlobal(svc, tasks, nodes, eligible, t0, DefaultDrainDelay))
	want := []string{"create slot=0 node=n2 restarts=0", "drain d", "wake +500ms"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestDecideReplicatedJob(t *testing.T) {
	svc := service(api.ModeReplicatedJob, 0, api.RestartPolicy{Condition: api.RestartOnFailure})
	svc.Spec.MaxConcurrent, svc.Spec.TotalCompletions = 2, 3
	nodes := readyNodes("n1")
	got := summary(DecideReplicatedJob(svc, nil, nodes, t0, DefaultDrainDelay))
	if diff := cmp.Diff([]string{"create slot=1 node= restarts=0", "create slot=2 node= restarts=0"}, got); diff != "" {
		t.Errorf("start (-want +got):\n%s", diff)
	}
	done := func(id string, slot uint64) api.Task {
		x := tk(id, slot, "n1", api.TaskComplete, t0)
		x.DesiredState = api.TaskComplete
		return x
	}
	running := tk("b", 2, "n1", api.TaskRunning, t0)
	running.DesiredState = api.TaskComplete
	got = summary(DecideReplicatedJob(svc, []api.Task{done("a", 1), running}, nodes, t0, DefaultDrainDelay))
	if diff := cmp.Diff([]string{"create slot=3 node= restarts=0"}, got); diff != "" {
		t.Errorf("one done (-want +got):\n%s", diff)
	}
	failed := tk("c", 3, "n1", api.TaskFailed, t0)
	failed.DesiredState = api.TaskComplete
	got = summary(DecideReplicatedJob(svc, []api.Task{done("a", 1), done("b", 2), failed}, nodes, t0, DefaultDrainDelay))
	if diff := cmp.Diff([]string{"create slot=3 node= restarts=1"}, got); diff != "" {
		t.Errorf("retry a failure (-want +got):\n%s", diff)
	}
	if d := DecideReplicatedJob(svc, []api.Task{done("a", 1), done("b", 2), done("c", 3)}, nodes, t0, DefaultDrainDelay); !d.Empty() {
		t.Errorf("finished job: %v", summary(d))
	}
}

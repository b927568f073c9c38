package orchestrator

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/google/go-cmp/cmp"
)

// zonedWorld is a world of three nodes (n1, n2, n3 in zones a, b, c)
// running the first service's replicas, every task in the set.
func zonedWorld(t *testing.T, replicas uint64) *world {
	w := newWorldOn(t, replicas, cfg(1, api.OrderStopFirst, api.FailurePause),
		map[string]map[string]string{"n1": {"zone": "a"}, "n2": {"zone": "b"}, "n3": {"zone": "c"}})
	w.allInSet()
	return w
}

// allInSet steps a second at a time until every live task of the world is
// in its load-balancing set.
func (w *world) allInSet() {
	w.t.Helper()
	for i := 0; i < 10; i++ {
		w.step()
		w.now = w.now.Add(time.Second)
		out := 0
		for j := range w.tasks {
			if tk := &w.tasks[j]; !tk.Status.State.Terminal() && tk.DesiredState == api.TaskRunning && !tk.InLoadBalancer() {
				out++
			}
		}
		if out == 0 {
			return
		}
	}
	w.t.Fatalf("tasks not all in the set: %+v", w.tasks)
}

func (w *world) setNode(id string, fn func(*api.Node)) {
	n := w.nodes[id]
	fn(&n)
	w.nodes[id] = n
}

// removeService drops a service, as a stack removed from Git does.
func (w *world) removeService(s *api.Service) {
	w.svcs = slices.DeleteFunc(w.svcs, func(x *api.Service) bool { return x == s })
}

// on returns the IDs of a service's tasks on a node that are in the set.
func (w *world) on(s *api.Service, node string) []string {
	var out []string
	for i := range w.tasks {
		if tk := &w.tasks[i]; tk.ServiceID == s.ID && tk.NodeID == node && tk.InLoadBalancer() {
			out = append(out, tk.ID)
		}
	}
	return out
}

// drained returns the IDs of the tasks that drain since the given time.
func (w *world) drained(since time.Time) []string {
	var out []string
	for i := range w.tasks {
		if tk := &w.tasks[i]; tk.DrainingSince.Equal(since) {
			out = append(out, tk.ID)
		}
	}
	return out
}

// Every way the orchestrator stops a task in the load-balancing set
// drains it first: DrainingSince is committed by one pass, with the task
// still wanted running, and the task is stopped by a pass no earlier than
// the drain delay after; the pass that drains it asks to wake then. (The
// world also checks, for every stop, that the task was not in the set
// when the pass began and drained for the whole delay.)
func TestEveryStopDrainsFirst(t *testing.T) {
	cases := []struct {
		name string
		// act changes the world and returns the tasks it is to stop.
		act func(w *world) []string
		// live is how many tasks of the service run once it settled, and
		// off a node none runs on ("" for none).
		live int
		off  string
	}{
		{"rolling update, stop-first", func(w *world) []string {
			w.deploy("web:2")
			return w.inSlots(1) // parallelism 1: the first slot's task
		}, 3, ""},
		{"scale down", func(w *world) []string {
			w.svc.Spec.Replicas = 1
			return w.inSlots(2, 3)
		}, 1, ""},
		{"node drained", func(w *world) []string {
			w.setNode("n2", func(n *api.Node) { n.Spec.Availability = api.AvailabilityDrain })
			return w.on(w.svc, "n2")
		}, 3, "n2"},
		{"node removed while up", func(w *world) []string {
			// As the control API's node rm --force leaves it.
			w.setNode("n2", func(n *api.Node) {
				n.RemovedAt, n.Status.State, n.Spec.Availability = w.now, api.NodeDown, api.AvailabilityDrain
			})
			return w.on(w.svc, "n2")
		}, 3, "n2"},
		{"node gone from the store", func(w *world) []string {
			ids := w.on(w.svc, "n2")
			delete(w.nodes, "n2")
			return ids
		}, 3, "n2"},
		{"node down", func(w *world) []string {
			w.setNode("n2", func(n *api.Node) { n.Status.State = api.NodeDown })
			return w.on(w.svc, "n2")
		}, 3, "n2"},
		{"service removed", func(w *world) []string {
			w.removeService(w.svc)
			return w.inSlots(1, 2, 3)
		}, 0, ""},
		{"duplicate task in a slot", func(w *world) []string {
			old := w.inSlots(1)
			dup := newTask(w.svc, 1, "", nil, w.now)
			dup.NodeID, dup.Status = "n2", api.TaskStatus{State: api.TaskRunning, Timestamp: w.now}
			w.add(dup) // newer: the slot keeps it, the older one goes
			return old
		}, 3, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := zonedWorld(t, 3)
			svc := w.svc
			want := tc.act(w)
			slices.Sort(want)
			drainsAt := w.now
			d := w.step()
			if got := w.drained(drainsAt); len(want) == 0 || !cmp.Equal(want, got) {
				t.Fatalf("drained %v, want %v", got, want)
			}
			for _, id := range want {
				if tk := w.task(id); tk.DesiredState != api.TaskRunning || tk.InLoadBalancer() {
					t.Errorf("task %s: desired %s, in the set %v: want it wanted running, out of the set", id, tk.DesiredState, tk.InLoadBalancer())
				}
			}
			if due := drainsAt.Add(DefaultDrainDelay); !w.wake.Equal(due) {
				t.Errorf("wake at %s, want the drain's end %s (decision %+v)", w.wake.Sub(t0), due.Sub(t0), d)
			}

			// A millisecond before the delay is over: still draining.
			w.now = drainsAt.Add(DefaultDrainDelay - time.Millisecond)
			w.step()
			for _, id := range want {
				if tk := w.task(id); tk.DesiredState != api.TaskRunning || !tk.DrainingSince.Equal(drainsAt) {
					t.Errorf("task %s before the delay: desired %s, draining since %s", id, tk.DesiredState, tk.DrainingSince.Sub(t0))
				}
			}
			// When it is over: stopped.
			w.now = drainsAt.Add(DefaultDrainDelay)
			w.step()
			for _, id := range want {
				if tk := w.task(id); tk.DesiredState != api.TaskShutdown {
					t.Errorf("task %s after the delay: desired %s, want shutdown", id, tk.DesiredState)
				}
			}
			for i := 0; i < 20; i++ {
				w.now = w.now.Add(DefaultDrainDelay / 5)
				w.step()
			}
			live := 0
			for _, tk := range w.tasks {
				if tk.ServiceID == svc.ID && tk.DesiredState == api.TaskRunning && tk.InLoadBalancer() {
					live++
					if tk.NodeID == tc.off {
						t.Errorf("task %s still on %s", tk.ID, tc.off)
					}
				}
			}
			if live != tc.live {
				t.Errorf("%d tasks in the set once settled, want %d: %s", live, tc.live, w.placement(svc))
			}
		})
	}
}

// inSlots returns the IDs of the first service's live tasks in the given
// slots, sorted.
func (w *world) inSlots(slots ...uint64) []string {
	var out []string
	for _, tk := range w.tasks {
		if tk.ServiceID == w.svc.ID && live(&tk) && slices.Contains(slots, tk.Slot) {
			out = append(out, tk.ID)
		}
	}
	slices.Sort(out)
	return out
}

// A global service's task leaves a node that no longer matches its
// constraints (or is drained) by draining first.
func TestGlobalTaskDrainsOffIneligibleNode(t *testing.T) {
	for _, tc := range []struct {
		name string
		act  func(w *world)
	}{
		{"labels no longer match", func(w *world) {
			w.setNode("n2", func(n *api.Node) { n.Spec.Labels = map[string]string{"zone": "c"} })
		}},
		{"constraint changed", func(w *world) {
			w.change(w.svc, func(s *api.ServiceSpec) {
				s.Task.Placement.Constraints = []api.Constraint{{Key: "node.labels.zone", Op: api.OpEq, Value: "a"}}
			})
		}},
		{"node drained", func(w *world) {
			w.setNode("n2", func(n *api.Node) { n.Spec.Availability = api.AvailabilityDrain })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorldOn(t, 0, cfg(1, api.OrderStopFirst, api.FailurePause),
				map[string]map[string]string{"n1": {"zone": "a"}, "n2": {"zone": "b"}})
			w.svc.Spec.Mode = api.ModeGlobal
			w.svc.Spec.Task.Placement.Constraints = []api.Constraint{{Key: "node.labels.zone", Op: api.OpNe, Value: "c"}}
			w.allInSet()
			if got := w.placement(w.svc); got != "n1:1 n2:1" {
				t.Fatalf("placement %q", got)
			}
			leaving := w.on(w.svc, "n2")
			tc.act(w)
			drainsAt := w.now
			w.step()
			if got := w.drained(drainsAt); !cmp.Equal(leaving, got) {
				t.Fatalf("drained %v, want %v", got, leaving)
			}
			if tk := w.task(leaving[0]); tk.DesiredState != api.TaskRunning {
				t.Fatalf("stopped with the drain: %+v", tk)
			}
			w.now = drainsAt.Add(DefaultDrainDelay - time.Millisecond)
			w.step()
			if tk := w.task(leaving[0]); tk.DesiredState != api.TaskRunning {
				t.Fatalf("stopped before the delay: %+v", tk)
			}
			w.now = drainsAt.Add(DefaultDrainDelay)
			w.step()
			if tk := w.task(leaving[0]); tk.DesiredState != api.TaskShutdown {
				t.Fatalf("not stopped after the delay: %+v", tk)
			}
			if got := w.placement(w.svc); got != "n1:1" {
				t.Errorf("placement %q, want n1:1", got)
			}
		})
	}
}

// A task that is not in the load-balancing set (not running yet, health
// starting, unhealthy) is stopped at once, by every path.
func TestTasksOutOfTheSetStopAtOnce(t *testing.T) {
	states := []struct {
		name  string
		check bool
		set   func(*api.TaskStatus)
	}{
		{"starting", false, func(s *api.TaskStatus) { s.State = api.TaskStarting }},
		{"health starting", true, func(s *api.TaskStatus) { s.Health = api.HealthStarting }},
		{"unhealthy", true, func(s *api.TaskStatus) { s.Health = api.HealthUnhealthy }},
	}
	paths := []struct {
		name string
		act  func(w *world, tk *api.Task)
	}{
		{"scale down", func(w *world, _ *api.Task) { w.svc.Spec.Replicas = 0 }},
		{"node drained", func(w *world, tk *api.Task) {
			w.setNode(tk.NodeID, func(n *api.Node) { n.Spec.Availability = api.AvailabilityDrain })
		}},
		{"node down", func(w *world, tk *api.Task) {
			w.setNode(tk.NodeID, func(n *api.Node) { n.Status.State = api.NodeDown })
		}},
		{"service removed", func(w *world, _ *api.Task) { w.removeService(w.svc) }},
		{"update", func(w *world, _ *api.Task) { w.deploy("web:2") }},
	}
	for _, st := range states {
		for _, p := range paths {
			t.Run(st.name+"/"+p.name, func(t *testing.T) {
				w := newWorldOn(t, 1, cfg(1, api.OrderStopFirst, api.FailurePause), map[string]map[string]string{"n1": nil, "n2": nil})
				if st.check {
					withHealthcheck(w)
				}
				w.allInSet()
				tk := &w.tasks[0]
				st.set(&tk.Status)
				if tk.InLoadBalancer() {
					t.Fatal("the task is in the set")
				}
				id := tk.ID
				p.act(w, tk)
				w.step()
				if got := w.task(id); got.DesiredState != api.TaskShutdown || !got.DrainingSince.IsZero() {
					t.Errorf("desired %s, draining since %v: want stopped at once, never drained", got.DesiredState, got.DrainingSince)
				}
			})
		}
	}
}

// The drain delay is the decisions' to be given: a longer one holds the
// stop longer, zero stops at once.
func TestDrainDelayIsConfigurable(t *testing.T) {
	for _, delay := range []time.Duration{0, 3 * time.Second} {
		t.Run(fmt.Sprint(delay), func(t *testing.T) {
			w := zonedWorld(t, 3)
			w.drain = delay
			w.svc.Spec.Replicas = 2
			stopping := w.on(w.svc, "n3")
			at := w.now
			w.step()
			tk := w.task(stopping[0])
			if delay == 0 {
				if tk.DesiredState != api.TaskShutdown || !tk.DrainingSince.IsZero() {
					t.Fatalf("no drain delay: desired %s, draining since %v, want stopped at once", tk.DesiredState, tk.DrainingSince)
				}
				return
			}
			if !tk.DrainingSince.Equal(at) || !w.wake.Equal(at.Add(delay)) {
				t.Fatalf("draining since %v, wake %v, want %v and %v", tk.DrainingSince, w.wake, at, at.Add(delay))
			}
			w.now = at.Add(DefaultDrainDelay) // the default is over, not this delay
			w.step()
			if tk := w.task(stopping[0]); tk.DesiredState != api.TaskRunning {
				t.Fatal("stopped after the default delay, before the configured one")
			}
			w.now = at.Add(delay)
			w.step()
			if tk := w.task(stopping[0]); tk.DesiredState != api.TaskShutdown {
				t.Fatal("not stopped after the configured delay")
			}
		})
	}
}

// A drain that is undone before its delay is over puts the task back in
// the set: a scale-down reverted, a node made active again (the slot was
// refilled meanwhile: the old task is a duplicate and still goes).
func TestUndoneDrain(t *testing.T) {
	t.Run("scale down reverted", func(t *testing.T) {
		w := zonedWorld(t, 3)
		w.svc.Spec.Replicas = 2
		w.step()
		drained := w.drained(w.now)
		if len(drained) != 1 {
			t.Fatalf("drained %v, want one task", drained)
		}
		w.now = w.now.Add(DefaultDrainDelay / 2)
		w.svc.Spec.Replicas = 3
		w.step()
		if tk := w.task(drained[0]); !tk.InLoadBalancer() {
			t.Errorf("the task did not rejoin the set: %+v", tk)
		}
		if n := w.balanced(w.svc); n != 3 || len(w.tasks) != 3 {
			t.Errorf("%d tasks in the set, %d tasks, want 3 and 3", n, len(w.tasks))
		}
	})
	t.Run("node active again", func(t *testing.T) {
		w := zonedWorld(t, 3)
		w.setNode("n2", func(n *api.Node) { n.Spec.Availability = api.AvailabilityDrain })
		old := w.on(w.svc, "n2")
		drainsAt := w.now
		w.step()
		w.now = drainsAt.Add(DefaultDrainDelay / 2)
		w.setNode("n2", func(n *api.Node) { n.Spec.Availability = api.AvailabilityActive })
		w.step()
		if tk := w.task(old[0]); !tk.DrainingSince.Equal(drainsAt) || tk.DesiredState != api.TaskRunning {
			t.Fatalf("the replaced task: draining since %v, desired %s; want still draining", tk.DrainingSince, tk.DesiredState)
		}
		w.now = drainsAt.Add(DefaultDrainDelay)
		w.step()
		if tk := w.task(old[0]); tk.DesiredState != api.TaskShutdown {
			t.Errorf("the replaced task was not stopped: %+v", tk)
		}
		if n := w.balanced(w.svc); n != 3 {
			t.Errorf("%d tasks in the set, want 3", n)
		}
	})
}

// The updater does not put back in the set a task the orchestrator drains
// for a scale-down, nor the orchestrator one the updater drains, whether
// or not the pass commits both decisions; a scale-down during a rolling
// update stops every task it chose exactly once, each after its drain.
func TestScaleDownDuringUpdate(t *testing.T) {
	for _, order := range []api.UpdateOrder{api.OrderStopFirst, api.OrderStartFirst} {
		t.Run(fmt.Sprint(order), func(t *testing.T) {
			w := newWorld(t, 6, cfg(1, order, api.FailurePause))
			undrained := 0
			draining := map[string]bool{}
			w.observe = func(when string) {
				if when != "commit" {
					return
				}
				for i := range w.tasks {
					tk := &w.tasks[i]
					if draining[tk.ID] && tk.DrainingSince.IsZero() && tk.DesiredState == api.TaskRunning {
						undrained++
					}
					draining[tk.ID] = !tk.DrainingSince.IsZero()
				}
			}
			w.deploy("web:2")
			w.step()
			w.now = w.now.Add(DefaultDrainDelay / 5)
			w.svc.Spec.Replicas = 3
			w.run(DefaultDrainDelay/5, 400)
			if undrained > 0 {
				t.Errorf("%d drained task(s) put back in the set", undrained)
			}
			if diff := cmp.Diff(map[string]int{"web:2": 3}, w.live()); diff != "" {
				t.Errorf("live (-want +got):\n%s", diff)
			}
		})
	}
}

// A scale-down keeps its choice while the tasks it chose drain, even when
// the tasks it stopped at once change which would be chosen now.
func TestScaleDownKeepsItsChoice(t *testing.T) {
	svc := service(api.ModeReplicated, 1, api.RestartPolicy{Condition: api.RestartAny})
	tasks := []api.Task{tk("a", 2, "n1", api.TaskRunning, t0), tk("b", 1, "n2", api.TaskRunning, t0), tk("c", 3, "n2", api.TaskAssigned, t0)}
	for i := range tasks {
		tasks[i].Spec = svc.Spec.Task
	}
	nodes := readyNodes("n1", "n2")
	got := summary(DecideReplicated(svc, tasks, nodes, t0, DefaultDrainDelay))
	// c does not run yet: at once; then the busier node's b.
	if diff := cmp.Diff([]string{"drain b", "shutdown c (scaled down)", "wake +500ms"}, got); diff != "" {
		t.Fatalf("first pass (-want +got):\n%s", diff)
	}
	tasks[1].DrainingSince = t0
	tasks[2].DesiredState, tasks[2].Status.State = api.TaskShutdown, api.TaskShutdown
	// Now a and b are alike but for the slot, which would pick a.
	got = summary(DecideReplicated(svc, tasks, nodes, t0.Add(100*time.Millisecond), DefaultDrainDelay))
	if diff := cmp.Diff([]string{"draining b", "wake +500ms"}, got); diff != "" {
		t.Errorf("second pass (-want +got):\n%s", diff)
	}
	got = summary(DecideReplicated(svc, tasks, nodes, t0.Add(DefaultDrainDelay), DefaultDrainDelay))
	if diff := cmp.Diff([]string{"shutdown b (scaled down)"}, got); diff != "" {
		t.Errorf("after the delay (-want +got):\n%s", diff)
	}
}

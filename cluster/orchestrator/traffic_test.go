package orchestrator

import (
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/google/go-cmp/cmp"
)

// withHealthcheck gives the first service and its tasks a healthcheck
// they pass.
func withHealthcheck(w *world) {
	w.svc.Spec.Task.Container.Healthcheck = &api.Healthcheck{Test: []string{"CMD", "true"}}
	for i := range w.tasks {
		w.tasks[i].Spec = w.svc.Spec.Task
		w.tasks[i].Status.Health = api.HealthHealthy
	}
}

// The load-balancing set during rolling updates: a task leaves it a
// commit before it is told to stop, and DefaultDrainDelay before; new tasks join
// it only once healthy; start-first never has fewer than replicas in it.
func TestLoadBalancerSetDuringUpdates(t *testing.T) {
	for _, tc := range []struct {
		name    string
		order   api.UpdateOrder
		minimum int // fewest members of the set at any moment
	}{
		{"start-first keeps the count", api.OrderStartFirst, 10},
		{"stop-first drains each batch first", api.OrderStopFirst, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, 10, cfg(2, tc.order, api.FailureRollback))
			withHealthcheck(w)
			fewest, drained, unhealthyIn := 99, 0, 0
			w.observe = func(string) {
				fewest = minInt(fewest, w.balanced(w.svc))
				for _, tk := range w.tasks {
					if !tk.DrainingSince.IsZero() && tk.DesiredState == api.TaskRunning {
						drained++
					}
					if tk.InLoadBalancer() && tk.Status.Health != api.HealthHealthy {
						unhealthyIn++
					}
				}
			}
			w.deploy("web:2")
			// A tick shorter than DefaultDrainDelay: the drain spans several steps.
			w.run(DefaultDrainDelay/5, 400)
			if w.svc.Update.State != api.UpdateCompleted {
				t.Fatalf("update %s: %v", w.svc.Update.State, w.log)
			}
			if fewest < tc.minimum {
				t.Errorf("the load-balancing set fell to %d tasks, want at least %d", fewest, tc.minimum)
			}
			if drained == 0 {
				t.Error("no task was ever seen draining")
			}
			if unhealthyIn > 0 {
				t.Errorf("%d time(s) a task not yet healthy was in the set", unhealthyIn)
			}
			if len(w.stoppedInSet) > 0 {
				t.Errorf("stopped while in the set, or drained for less than %s: %v", DefaultDrainDelay, w.stoppedInSet)
			}
			if n := w.balanced(w.svc); n != 10 {
				t.Errorf("%d tasks in the set after the update, want 10", n)
			}
			if diff := cmp.Diff(map[string]int{"web:2": 10}, w.live()); diff != "" {
				t.Errorf("live (-want +got):\n%s", diff)
			}
		})
	}
}

// A task drained for an update that a new spec cancels rejoins the set.
func TestDrainedTaskRejoinsWhenNoLongerReplaced(t *testing.T) {
	w := newWorld(t, 2, cfg(1, api.OrderStopFirst, api.FailurePause))
	w.deploy("web:2")
	d := w.step()
	if len(d.Drain) != 1 || len(d.Create)+len(d.Shutdown) != 0 {
		t.Fatalf("first stop-first batch: %+v, want one drain and nothing stopped yet", d)
	}
	drained := d.Drain[0]
	if w.task(drained).InLoadBalancer() {
		t.Fatal("a draining task is still in the set")
	}
	w.now = w.now.Add(DefaultDrainDelay / 2)
	w.deploy("web:1") // back to what it runs
	d = w.step()
	if diff := cmp.Diff([]string{drained}, d.Undrain); diff != "" || len(d.Shutdown) != 0 {
		t.Errorf("undrain (-want +got):\n%s\nshutdown %v", diff, d.Shutdown)
	}
	if n := w.balanced(w.svc); n != 2 {
		t.Errorf("%d tasks in the set, want 2", n)
	}
}

func TestInLoadBalancer(t *testing.T) {
	hc := &api.Healthcheck{Test: []string{"CMD", "true"}}
	cases := []struct {
		name string
		task api.Task
		want bool
	}{
		{"running, no healthcheck", api.Task{DesiredState: api.TaskRunning, Status: api.TaskStatus{State: api.TaskRunning}}, true},
		{"starting", api.Task{DesiredState: api.TaskRunning, Status: api.TaskStatus{State: api.TaskStarting}}, false},
		{"running, health starting", api.Task{Spec: api.TaskSpec{Container: api.ContainerSpec{Healthcheck: hc}}, DesiredState: api.TaskRunning,
			Status: api.TaskStatus{State: api.TaskRunning, Health: api.HealthStarting}}, false},
		{"running, healthy", api.Task{Spec: api.TaskSpec{Container: api.ContainerSpec{Healthcheck: hc}}, DesiredState: api.TaskRunning,
			Status: api.TaskStatus{State: api.TaskRunning, Health: api.HealthHealthy}}, true},
		{"running, unhealthy", api.Task{Spec: api.TaskSpec{Container: api.ContainerSpec{Healthcheck: hc}}, DesiredState: api.TaskRunning,
			Status: api.TaskStatus{State: api.TaskRunning, Health: api.HealthUnhealthy}}, false},
		{"draining", api.Task{DesiredState: api.TaskRunning, DrainingSince: t0, Status: api.TaskStatus{State: api.TaskRunning}}, false},
		{"asked to stop", api.Task{DesiredState: api.TaskShutdown, Status: api.TaskStatus{State: api.TaskRunning}}, false},
		{"a job", api.Task{DesiredState: api.TaskComplete, Status: api.TaskStatus{State: api.TaskRunning}}, false},
	}
	for _, tc := range cases {
		if got := tc.task.InLoadBalancer(); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// The drain takes DefaultDrainDelay of the fake clock, no more.
func TestDrainDelay(t *testing.T) {
	w := newWorld(t, 1, cfg(1, api.OrderStopFirst, api.FailurePause))
	w.deploy("web:2")
	d := w.step()
	if want := t0.Add(DefaultDrainDelay); len(d.Drain) != 1 || !d.Wake.Equal(want) {
		t.Fatalf("drain %v wake %v, want one drain and a wake at %v", d.Drain, d.Wake, want)
	}
	w.now = t0.Add(DefaultDrainDelay - time.Millisecond)
	if d := w.step(); len(d.Shutdown) != 0 {
		t.Fatalf("stopped %v before the drain delay", d.Shutdown)
	}
	w.now = t0.Add(DefaultDrainDelay)
	if d := w.step(); len(d.Shutdown) != 1 || len(d.Create) != 1 {
		t.Fatalf("after the drain delay: %+v, want the old task stopped and replaced", d)
	}
}

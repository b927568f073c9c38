package orchestrator_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/orchestrator"
	"github.com/gitorc/gitorc/cluster/scheduler"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/cluster/store/storetest"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// rig runs the orchestrator, the scheduler and a node agent over a store
// by hand, pass after pass under a fake clock, as their loops would (each
// pass again until nothing changes), and records every committed version
// of every task with the clock of the pass that committed it.
type rig struct {
	t     *testing.T
	s     *store.Store
	orch  *orchestrator.Controller
	sched *scheduler.Controller
	w     *store.Watcher
	now   time.Time
	delay time.Duration // the drain delay the orchestrator was given
	// wake is what the orchestrator's last pass asked for.
	wake time.Time
	// health is what the agent reports for running tasks with a
	// healthcheck.
	health api.HealthState
	// history is every committed version of each task, in commit order.
	history map[string][]version
}

type version struct {
	at      time.Time // the clock of the pass that committed it
	deleted bool
	task    api.Task
}

// newRig starts a one-manager store with two nodes; drainDelay is given to
// the orchestrator's config as is.
func newRig(t *testing.T, drainDelay time.Duration) *rig {
	t.Helper()
	c := storetest.New(t, storetest.Options{Managers: 1})
	if _, err := c.WaitLeader(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, s: c.Store(c.Leader()), now: t0, health: api.HealthHealthy, history: map[string][]version{}}
	r.delay = drainDelay
	switch {
	case drainDelay == 0:
		r.delay = orchestrator.DefaultDrainDelay
	case drainDelay < 0:
		r.delay = 0
	}
	clock := func() time.Time { return r.now }
	var err error
	if r.orch, err = orchestrator.New(orchestrator.Config{Store: r.s, Now: clock, DrainDelay: drainDelay}); err != nil {
		t.Fatal(err)
	}
	if r.sched, err = scheduler.NewController(scheduler.ControllerConfig{Store: r.s, Now: clock}); err != nil {
		t.Fatal(err)
	}
	if r.w, err = r.s.Watch(store.KindTask); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.w.Close)
	addNode(t, r.s, "n1", map[string]string{"zone": "a"})
	addNode(t, r.s, "n2", map[string]string{"zone": "b"})
	return r
}

// cycle runs the orchestrator, the scheduler and the agent until a round
// commits nothing, at the rig's clock.
func (r *rig) cycle() {
	r.t.Helper()
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		wake, err := r.orch.Pass(ctx)
		if err != nil {
			r.t.Fatal(err)
		}
		r.wake = wake
		if err := r.sched.Pass(ctx); err != nil {
			r.t.Fatal(err)
		}
		r.agent()
		if r.collect() == 0 {
			return
		}
	}
	r.t.Fatal("the controllers never settled")
}

// agent plays both nodes: assigned tasks run, stopped ones shut down.
func (r *rig) agent() {
	update(r.t, r.s, func(tx store.Tx) error {
		tasks, err := store.Find[api.Task](tx, store.All())
		if err != nil {
			return err
		}
		for _, tk := range tasks {
			switch {
			case tk.Status.State.Terminal():
				continue
			case tk.DesiredState == api.TaskShutdown && tk.Status.State >= api.TaskAssigned:
				tk.Status = api.TaskStatus{State: api.TaskShutdown, Timestamp: r.now}
			case tk.Status.State == api.TaskAssigned:
				tk.Status = api.TaskStatus{State: api.TaskRunning, Timestamp: r.now}
			case tk.Status.State == api.TaskRunning && !tk.Spec.Container.Healthcheck.Disabled() && tk.Status.Health != r.health:
				tk.Status.Health = r.health
			default:
				continue
			}
			if err := tx.Update(tk); err != nil {
				return err
			}
		}
		return nil
	})
}

// collect records the committed task changes; a store publishes them
// before the write that made them returns. It returns how many there were.
func (r *rig) collect() int {
	n := 0
	for {
		select {
		case e, ok := <-r.w.Events():
			if !ok {
				r.t.Fatalf("task watch ended: %v", r.w.Err())
			}
			n++
			v := version{at: r.now, deleted: e.Action == store.ActionDelete}
			if !v.deleted {
				obj, err := e.Object()
				if err != nil {
					r.t.Fatal(err)
				}
				v.task = *obj.(*api.Task)
			}
			r.history[e.ID] = append(r.history[e.ID], v)
		default:
			return n
		}
	}
}

// checkHistory asserts, over every task's committed versions, that no
// version stops a task (desired state shutdown) that the version before
// left in the load-balancing set, and that a task that drained is stopped
// by a pass at least the drain delay after DrainingSince (unless the
// delay is zero: no drain). It returns the tasks that drained.
func (r *rig) checkHistory() []string {
	r.t.Helper()
	var drained []string
	for id, vs := range r.history {
		var since time.Time
		for i, v := range vs {
			if v.deleted {
				continue
			}
			tk := v.task
			if !tk.DrainingSince.IsZero() && since.IsZero() {
				since = tk.DrainingSince
				drained = append(drained, id)
				if tk.DesiredState != api.TaskRunning {
					r.t.Errorf("task %s: DrainingSince committed with desired state %s", id, tk.DesiredState)
				}
			}
			if i == 0 || tk.DesiredState != api.TaskShutdown || vs[i-1].task.DesiredState == api.TaskShutdown {
				continue
			}
			// This version stops the task.
			if prev := vs[i-1].task; r.delay > 0 && prev.InLoadBalancer() {
				r.t.Errorf("task %s stopped (%q) at +%s while in the load-balancing set", id, tk.Status.Message, v.at.Sub(t0))
			}
			if r.delay > 0 && !since.IsZero() && v.at.Before(since.Add(r.delay)) {
				r.t.Errorf("task %s stopped at +%s, %s after it began to drain, want at least %s", id, v.at.Sub(t0), v.at.Sub(since), r.delay)
			}
		}
	}
	slices.Sort(drained)
	return drained
}

// inSet returns the IDs of a service's tasks in its load-balancing set,
// sorted, optionally only those on a node.
func (r *rig) inSet(serviceID, node string) []string {
	var out []string
	for _, tk := range tasksOf(r.t, r.s, serviceID) {
		if tk.InLoadBalancer() && (node == "" || tk.NodeID == node) {
			out = append(out, tk.ID)
		}
	}
	slices.Sort(out)
	return out
}

// stopped reports whether a task's desired state is shutdown, or it was
// deleted after that.
func (r *rig) stopped(id string) bool {
	vs := r.history[id]
	for i := len(vs) - 1; i >= 0; i-- {
		if !vs[i].deleted {
			return vs[i].task.DesiredState == api.TaskShutdown
		}
	}
	return false
}

func isSubset(sub, of []string) bool {
	for _, id := range sub {
		if !slices.Contains(of, id) {
			return false
		}
	}
	return true
}

func (r *rig) task(id string) *api.Task {
	var tk *api.Task
	err := r.s.View(func(tx store.ReadTx) (err error) {
		tk, err = store.Get[api.Task](tx, id)
		return err
	})
	if err != nil {
		r.t.Fatalf("task %s: %v", id, err)
	}
	return tk
}

func (r *rig) editService(id string, fn func(*api.Service)) {
	update(r.t, r.s, func(tx store.Tx) error {
		svc, err := store.Get[api.Service](tx, id)
		if err != nil {
			return err
		}
		prev := svc.Spec
		svc.PreviousSpec = &prev
		fn(svc)
		return tx.Update(svc)
	})
}

func (r *rig) editNode(id string, fn func(*api.Node)) {
	update(r.t, r.s, func(tx store.Tx) error {
		n, err := store.Get[api.Node](tx, id)
		if err != nil {
			return err
		}
		fn(n)
		return tx.Update(n)
	})
}

// Through the store, every path that stops a task in the load-balancing
// set commits its DrainingSince first, in a change of its own with the
// task still wanted running, and stops it no earlier than the drain delay
// after; the pass that drains it asks to wake when the delay is over.
func TestEveryStopDrainsFirstThroughTheStore(t *testing.T) {
	replicated := func(replicas uint64) api.ServiceSpec {
		upd := api.DefaultUpdateConfig()
		upd.Parallelism, upd.Order = 1, api.OrderStopFirst
		return api.ServiceSpec{Name: "s_web", Mode: api.ModeReplicated, Replicas: replicas,
			Task:   api.TaskSpec{Container: api.ContainerSpec{Image: "web:1"}, Restart: api.RestartPolicy{Condition: api.RestartAny}},
			Update: upd, Rollback: api.DefaultRollbackConfig()}
	}
	global := api.ServiceSpec{Name: "s_agent", Mode: api.ModeGlobal,
		Task: api.TaskSpec{Container: api.ContainerSpec{Image: "agent:1"},
			Placement: api.Placement{Constraints: []api.Constraint{{Key: "node.labels.zone", Op: api.OpNe, Value: "c"}}}}}
	cases := []struct {
		name  string
		spec  api.ServiceSpec
		delay time.Duration // Config.DrainDelay
		// act makes the change and returns how many of the service's
		// tasks in the set it stops, and on which node ("" any).
		act  func(r *rig, svc *api.Service) (int, string)
		live int // tasks in the set once it settled
	}{
		{"rolling update", replicated(2), 0, func(r *rig, svc *api.Service) (int, string) {
			r.editService(svc.ID, func(s *api.Service) { s.Spec.Task.Container.Image = "web:2" })
			return 1, ""
		}, 2},
		{"scale down", replicated(2), 0, func(r *rig, svc *api.Service) (int, string) {
			r.editService(svc.ID, func(s *api.Service) { s.Spec.Replicas = 1 })
			return 1, ""
		}, 1},
		{"node drained", replicated(2), 0, func(r *rig, svc *api.Service) (int, string) {
			r.editNode("n2", func(n *api.Node) { n.Spec.Availability = api.AvailabilityDrain })
			return 1, "n2"
		}, 2},
		{"node removed while up", replicated(2), 0, func(r *rig, svc *api.Service) (int, string) {
			r.editNode("n2", func(n *api.Node) {
				n.RemovedAt, n.Status.State, n.Spec.Availability = r.now, api.NodeDown, api.AvailabilityDrain
			})
			return 1, "n2"
		}, 2},
		{"service deleted", replicated(2), 0, func(r *rig, svc *api.Service) (int, string) {
			update(r.t, r.s, func(tx store.Tx) error { return tx.Delete(store.KindService, svc.ID, 0) })
			return 2, ""
		}, 0},
		{"global: node no longer matches", global, 0, func(r *rig, svc *api.Service) (int, string) {
			r.editNode("n2", func(n *api.Node) { n.Spec.Labels = map[string]string{"zone": "c"} })
			return 1, "n2"
		}, 1},
		{"a drain delay of 3s", replicated(2), 3 * time.Second, func(r *rig, svc *api.Service) (int, string) {
			r.editService(svc.ID, func(s *api.Service) { s.Spec.Replicas = 1 })
			return 1, ""
		}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each has a store of its own
			r := newRig(t, tc.delay)
			svc := &api.Service{Spec: tc.spec}
			update(t, r.s, func(tx store.Tx) error { return tx.Create(svc) })
			r.cycle()
			if got := r.inSet(svc.ID, ""); len(got) != 2 {
				t.Fatalf("tasks in the set before: %v, want 2", got)
			}
			r.now = r.now.Add(time.Second)
			n, node := tc.act(r, svc)
			leaving := r.inSet(svc.ID, node)
			drainsAt := r.now
			r.cycle()

			var draining []string
			for _, id := range leaving {
				if tk := r.task(id); tk.DrainingSince.Equal(drainsAt) {
					draining = append(draining, id)
					if tk.DesiredState != api.TaskRunning {
						t.Errorf("task %s drains with desired state %s", id, tk.DesiredState)
					}
				}
			}
			if len(draining) != n {
				t.Fatalf("draining %v, want %d of %v", draining, n, leaving)
			}
			if due := drainsAt.Add(r.delay); !r.wake.Equal(due) {
				t.Errorf("the orchestrator wakes at +%s, want +%s", r.wake.Sub(t0), due.Sub(t0))
			}
			r.now = drainsAt.Add(r.delay - time.Millisecond)
			r.cycle()
			for _, id := range draining {
				if tk := r.task(id); tk.DesiredState != api.TaskRunning {
					t.Errorf("task %s stopped %s into its drain", id, r.now.Sub(drainsAt))
				}
			}
			r.now = drainsAt.Add(r.delay)
			r.cycle()
			for _, id := range draining {
				if !r.stopped(id) {
					t.Errorf("task %s not stopped once drained: desired %s", id, r.task(id).DesiredState)
				}
			}
			for i := 0; i < 5; i++ {
				r.now = r.now.Add(time.Second)
				r.cycle()
			}
			if got := r.inSet(svc.ID, ""); len(got) != tc.live {
				t.Errorf("tasks in the set once settled: %v, want %d", got, tc.live)
			}
			if node != "" && len(r.inSet(svc.ID, node)) > 0 {
				t.Errorf("tasks still on %s: %v", node, r.inSet(svc.ID, node))
			}
			if got := r.checkHistory(); !isSubset(draining, got) {
				t.Errorf("tasks that drained %v, want at least %v", got, draining)
			}
			if tc.name == "service deleted" {
				if left := tasksOf(t, r.s, svc.ID); len(left) > 0 {
					t.Errorf("tasks of the deleted service left: %d", len(left))
				}
			}
		})
	}
}

// Tasks not in the load-balancing set are stopped at once: unhealthy
// ones, and every task when the drain delay is negative.
func TestStopsAtOnceThroughTheStore(t *testing.T) {
	for _, tc := range []struct {
		name   string
		delay  time.Duration
		health api.HealthState
	}{
		{"unhealthy", 0, api.HealthUnhealthy},
		{"negative drain delay", -1, api.HealthHealthy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, tc.delay)
			r.health = tc.health
			svc := &api.Service{Spec: api.ServiceSpec{Name: "s_web", Mode: api.ModeReplicated, Replicas: 2,
				Task: api.TaskSpec{Container: api.ContainerSpec{Image: "web:1", Healthcheck: &api.Healthcheck{Test: []string{"CMD", "true"}}}}}}
			update(t, r.s, func(tx store.Tx) error { return tx.Create(svc) })
			r.cycle()
			var running []string
			for _, tk := range tasksOf(t, r.s, svc.ID) {
				if tk.Status.State == api.TaskRunning && tk.Status.Health == tc.health {
					running = append(running, tk.ID)
				}
			}
			if len(running) != 2 {
				t.Fatalf("running %v", running)
			}
			r.editService(svc.ID, func(s *api.Service) { s.Spec.Replicas = 0 })
			r.cycle()
			for _, id := range running {
				if tk := r.task(id); tk.DesiredState != api.TaskShutdown || !tk.DrainingSince.IsZero() {
					t.Errorf("task %s: desired %s, draining since %v; want stopped at once", id, tk.DesiredState, tk.DrainingSince)
				}
			}
			if drained := r.checkHistory(); len(drained) > 0 {
				t.Errorf("drained %v", drained)
			}
		})
	}
}

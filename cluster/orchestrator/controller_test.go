package orchestrator_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/orchestrator"
	"github.com/gitorc/gitorc/cluster/scheduler"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/cluster/store/storetest"
)

// managers runs the orchestrator and the scheduler on a one-manager store.
func managers(t *testing.T) *store.Store {
	t.Helper()
	c := storetest.New(t, storetest.Options{Managers: 1})
	if _, err := c.WaitLeader(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	s := c.Store(c.Leader())
	noStopInSet(t, s)
	orch, err := orchestrator.New(orchestrator.Config{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	sched, err := scheduler.NewController(scheduler.ControllerConfig{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { _ = orch.Run(ctx); done <- struct{}{} }()
	go func() { _ = sched.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })
	return s
}

// noStopInSet fails the test if, while it runs, a committed change stops
// a task (desired state shutdown) that the version before left in its
// service's load-balancing set: every stop drains first.
func noStopInSet(t *testing.T, s *store.Store) {
	t.Helper()
	w, err := s.Watch(store.KindTask)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan []string)
	go func() {
		last := map[string]api.Task{}
		var bad []string
		for e := range w.Events() {
			if e.Action == store.ActionDelete {
				delete(last, e.ID)
				continue
			}
			obj, err := e.Object()
			if err != nil {
				bad = append(bad, fmt.Sprintf("%s: %v", e.ID, err))
				continue
			}
			tk := *obj.(*api.Task)
			if prev, ok := last[e.ID]; ok && prev.InLoadBalancer() && tk.DesiredState == api.TaskShutdown {
				bad = append(bad, fmt.Sprintf("%s (%s)", e.ID, tk.Status.Message))
			}
			last[e.ID] = tk
		}
		done <- bad
	}()
	t.Cleanup(func() {
		w.Close()
		bad := <-done
		if err := w.Err(); !errors.Is(err, store.ErrClosed) {
			t.Errorf("task watch: %v", err)
		}
		if len(bad) > 0 {
			t.Errorf("tasks stopped while in the load-balancing set: %v", bad)
		}
	})
}

func update(t *testing.T, s *store.Store, fn func(store.Tx) error) {
	t.Helper()
	if _, err := s.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

// addNode adds a ready node with a task subnet of its own (10.64.N.0/24,
// N counting the nodes), as cluster/allocator would give it: the
// scheduler places tasks only on nodes that have one.
func addNode(t *testing.T, s *store.Store, id string, labels map[string]string) {
	t.Helper()
	update(t, s, func(tx store.Tx) error {
		nodes, err := store.Find[api.Node](tx, store.All())
		if err != nil {
			return err
		}
		return tx.Create(&api.Node{Meta: api.Meta{ID: id}, Subnet: fmt.Sprintf("10.64.%d.0/24", len(nodes)+1),
			Spec:        api.NodeSpec{Name: id, Labels: labels},
			Description: api.NodeDescription{Hostname: id, Platform: api.Platform{OS: "linux", Architecture: "amd64"}, Resources: api.Resources{NanoCPUs: 2e9, Memory: 4 << 30}},
			Status:      api.NodeStatus{State: api.NodeReady}})
	})
}

// placement summarises the live tasks of a service: "node:count" sorted,
// plus the pending ones with their reason.
func placement(t *testing.T, s *store.Store, service string) string {
	t.Helper()
	counts := map[string]int{}
	var pending []string
	err := s.View(func(tx store.ReadTx) error {
		svc, err := store.Find[api.Service](tx, store.ByName(service))
		if err != nil || len(svc) == 0 {
			return err
		}
		tasks, err := store.Find[api.Task](tx, store.ByService(svc[0].ID))
		for _, tk := range tasks {
			switch {
			case tk.DesiredState != api.TaskRunning || tk.Status.State.Terminal():
			case tk.Status.State == api.TaskAssigned:
				counts[tk.NodeID]++
			default:
				pending = append(pending, tk.Status.State.String()+": "+tk.Status.Err)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for n, c := range counts {
		parts = append(parts, fmt.Sprintf("%s:%d", n, c))
	}
	sort.Strings(parts)
	sort.Strings(pending)
	return strings.Join(append(parts, pending...), " ")
}

func waitPlacement(t *testing.T, s *store.Store, service, want string) {
	t.Helper()
	var got string
	if storetest.WaitFor(func() bool { got = placement(t, s, service); return got == want }, 15*time.Second) != nil {
		t.Fatalf("placement of %s: %q, want %q", service, got, want)
	}
}

func TestServicesBecomeTasksOnNodes(t *testing.T) {
	s := managers(t)
	addNode(t, s, "n1", map[string]string{"zone": "a"})
	addNode(t, s, "n2", map[string]string{"zone": "b"})
	svc := &api.Service{Spec: api.ServiceSpec{Name: "shop_api", Mode: api.ModeReplicated, Replicas: 4,
		Task: api.TaskSpec{Container: api.ContainerSpec{Image: "api:1"}, Restart: api.RestartPolicy{Condition: api.RestartAny}}}}
	update(t, s, func(tx store.Tx) error { return tx.Create(svc) })
	waitPlacement(t, s, "shop_api", "n1:2 n2:2")

	// A node goes down: its tasks move to the other one.
	update(t, s, func(tx store.Tx) error {
		n, err := store.Get[api.Node](tx, "n2")
		if err != nil {
			return err
		}
		n.Status.State = api.NodeDown
		return tx.Update(n)
	})
	waitPlacement(t, s, "shop_api", "n1:4")

	// Scale down to one.
	update(t, s, func(tx store.Tx) error {
		cur, err := store.Get[api.Service](tx, svc.ID)
		if err != nil {
			return err
		}
		cur.Spec.Replicas = 1
		return tx.Update(cur)
	})
	waitPlacement(t, s, "shop_api", "n1:1")

	// A service no node can take says why, on its task.
	update(t, s, func(tx store.Tx) error {
		return tx.Create(&api.Service{Spec: api.ServiceSpec{Name: "shop_gpu", Mode: api.ModeReplicated, Replicas: 1,
			Task: api.TaskSpec{Container: api.ContainerSpec{Image: "gpu:1"},
				Placement: api.Placement{Constraints: []api.Constraint{{Key: "node.labels.gpu", Op: api.OpEq, Value: "yes"}}}}}})
	})
	waitPlacement(t, s, "shop_gpu", "pending: no suitable node: 1 node is down, 1 node fails constraint node.labels.gpu==yes")

	// Removing a service stops its tasks.
	update(t, s, func(tx store.Tx) error { return tx.Delete(store.KindService, svc.ID, 0) })
	var wanted []string
	stopped := func() bool {
		wanted = nil
		err := s.View(func(tx store.ReadTx) error {
			tasks, err := store.Find[api.Task](tx, store.ByService(svc.ID))
			for _, tk := range tasks {
				if tk.DesiredState == api.TaskRunning && !tk.Status.State.Terminal() {
					wanted = append(wanted, tk.ID)
				}
			}
			return err
		})
		return err == nil && len(wanted) == 0
	}
	if storetest.WaitFor(stopped, 15*time.Second) != nil {
		t.Fatalf("tasks of a removed service still wanted running: %v", wanted)
	}
}

func TestGlobalServiceFollowsNodes(t *testing.T) {
	s := managers(t)
	addNode(t, s, "n1", nil)
	update(t, s, func(tx store.Tx) error {
		return tx.Create(&api.Service{Spec: api.ServiceSpec{Name: "mon_agent", Mode: api.ModeGlobal,
			Task: api.TaskSpec{Container: api.ContainerSpec{Image: "agent:1"}}}})
	})
	waitPlacement(t, s, "mon_agent", "n1:1")
	addNode(t, s, "n2", nil)
	waitPlacement(t, s, "mon_agent", "n1:1 n2:1")
	update(t, s, func(tx store.Tx) error {
		n, err := store.Get[api.Node](tx, "n1")
		if err != nil {
			return err
		}
		n.Spec.Availability = api.AvailabilityDrain
		return tx.Update(n)
	})
	waitPlacement(t, s, "mon_agent", "n2:1")
}

// fakeAgent plays every node: assigned tasks run (healthy) unless their
// image starts with "bad:", which exits at once; stopped tasks shut down.
func fakeAgent(t *testing.T, s *store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.RunLoop(ctx, store.LoopConfig{Kinds: []store.Kind{store.KindTask}}, func(ctx context.Context) (time.Time, error) {
			_, err := s.Update(ctx, func(tx store.Tx) error {
				tasks, err := store.Find[api.Task](tx, store.All())
				if err != nil {
					return err
				}
				for _, tk := range tasks {
					var next api.TaskStatus
					switch {
					case tk.Status.State.Terminal():
						continue
					case tk.DesiredState == api.TaskShutdown && tk.Status.State >= api.TaskAssigned:
						next = api.TaskStatus{State: api.TaskShutdown, Timestamp: time.Now()}
					case tk.Status.State != api.TaskAssigned:
						continue
					case strings.HasPrefix(tk.Spec.Container.Image, "bad:"):
						next = api.TaskStatus{State: api.TaskFailed, Timestamp: time.Now(), Err: "exit code 1"}
					default:
						next = api.TaskStatus{State: api.TaskRunning, Timestamp: time.Now()}
					}
					tk.Status = next
					if err := tx.Update(tk); err != nil {
						return err
					}
				}
				return nil
			})
			return time.Time{}, err
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// running returns the images of the running tasks of a service, sorted.
func running(t *testing.T, s *store.Store, id string) string {
	var images []string
	err := s.View(func(tx store.ReadTx) error {
		tasks, err := store.Find[api.Task](tx, store.ByService(id))
		for _, tk := range tasks {
			if tk.Status.State == api.TaskRunning && tk.DesiredState == api.TaskRunning {
				images = append(images, tk.Spec.Container.Image)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(images)
	return strings.Join(images, " ")
}

func updateState(t *testing.T, s *store.Store, id string) string {
	var state string
	err := s.View(func(tx store.ReadTx) error {
		svc, err := store.Get[api.Service](tx, id)
		if err == nil && svc.Update != nil {
			state = svc.Update.State.String()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return state
}

func TestRollingUpdateAndAutomaticRollbackThroughTheStore(t *testing.T) {
	s := managers(t)
	fakeAgent(t, s)
	addNode(t, s, "n1", nil)
	addNode(t, s, "n2", nil)
	upd := api.DefaultUpdateConfig()
	upd.Parallelism, upd.Order, upd.FailureAction, upd.Monitor = 2, api.OrderStartFirst, api.FailureRollback, 0
	svc := &api.Service{Spec: api.ServiceSpec{Name: "s_web", Mode: api.ModeReplicated, Replicas: 4,
		Task:   api.TaskSpec{Container: api.ContainerSpec{Image: "web:1"}, Restart: api.RestartPolicy{Condition: api.RestartAny}},
		Update: upd, Rollback: api.DefaultRollbackConfig()}}
	update(t, s, func(tx store.Tx) error { return tx.Create(svc) })
	wait := func(what string, cond func() bool) {
		t.Helper()
		if storetest.WaitFor(cond, 20*time.Second) != nil {
			t.Fatalf("timed out waiting for %s: running %q, update %q", what, running(t, s, svc.ID), updateState(t, s, svc.ID))
		}
	}
	wait("4 web:1", func() bool { return running(t, s, svc.ID) == "web:1 web:1 web:1 web:1" })

	deploy := func(image string) {
		update(t, s, func(tx store.Tx) error {
			cur, err := store.Get[api.Service](tx, svc.ID)
			if err != nil {
				return err
			}
			prev := cur.Spec
			cur.PreviousSpec = &prev
			cur.Spec.Task.Container.Image = image
			return tx.Update(cur)
		})
	}
	deploy("web:2")
	wait("the update to complete", func() bool {
		return updateState(t, s, svc.ID) == "completed" && running(t, s, svc.ID) == "web:2 web:2 web:2 web:2"
	})

	deploy("bad:3")
	wait("the automatic rollback", func() bool {
		return updateState(t, s, svc.ID) == "rollback_completed" && running(t, s, svc.ID) == "web:2 web:2 web:2 web:2"
	})
}

func tasksOf(t *testing.T, s *store.Store, id string) []api.Task {
	var out []api.Task
	err := s.View(func(tx store.ReadTx) error {
		tasks, err := store.Find[api.Task](tx, store.ByService(id))
		for _, tk := range tasks {
			out = append(out, *tk)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Through the store: a service created after another starts once that one
// runs; a placement change keeps (and re-specs) the task whose node still
// fits and replaces the other.
func TestDependsOnAndPlacementChangeThroughTheStore(t *testing.T) {
	s := managers(t)
	fakeAgent(t, s)
	addNode(t, s, "n1", map[string]string{"zone": "a"})
	addNode(t, s, "n2", map[string]string{"zone": "b"})
	spec := func(name, image string) api.ServiceSpec {
		return api.ServiceSpec{Name: name, Mode: api.ModeReplicated, Replicas: 2,
			Task:   api.TaskSpec{Container: api.ContainerSpec{Image: image}, Restart: api.RestartPolicy{Condition: api.RestartAny}},
			Update: api.DefaultUpdateConfig(), Rollback: api.DefaultRollbackConfig()}
	}
	db := &api.Service{Spec: spec("s_db", "db:1")}
	webSpec := spec("s_web", "web:1")
	webSpec.RolloutAfter = []string{"s_db"}
	web := &api.Service{Spec: webSpec}
	update(t, s, func(tx store.Tx) error {
		if err := tx.Create(web); err != nil {
			return err
		}
		return tx.Create(db)
	})
	wait := func(what string, cond func() bool) {
		t.Helper()
		if storetest.WaitFor(cond, 20*time.Second) != nil {
			t.Fatalf("timed out waiting for %s: s_db %q, s_web %q", what, running(t, s, db.ID), running(t, s, web.ID))
		}
	}
	wait("both services running", func() bool {
		return running(t, s, db.ID) == "db:1 db:1" && running(t, s, web.ID) == "web:1 web:1"
	})
	var dbRunning time.Time
	for _, tk := range tasksOf(t, s, db.ID) {
		if tk.Status.Timestamp.After(dbRunning) {
			dbRunning = tk.Status.Timestamp
		}
	}
	for _, tk := range tasksOf(t, s, web.ID) {
		if tk.CreatedAt.Before(dbRunning) {
			t.Errorf("s_web task %s created at %s, before s_db ran (%s)", tk.ID, tk.CreatedAt, dbRunning)
		}
	}

	// Keep s_web off zone b.
	byNode := map[string]string{}
	for _, tk := range tasksOf(t, s, web.ID) {
		byNode[tk.NodeID] = tk.ID
	}
	if len(byNode) != 2 {
		t.Fatalf("s_web not spread over both nodes: %v", byNode)
	}
	update(t, s, func(tx store.Tx) error {
		cur, err := store.Get[api.Service](tx, web.ID)
		if err != nil {
			return err
		}
		prev := cur.Spec
		cur.PreviousSpec, cur.Update = &prev, nil
		cur.Spec.Task.Placement.Constraints = []api.Constraint{{Key: "node.labels.zone", Op: api.OpNe, Value: "b"}}
		return tx.Update(cur)
	})
	wait("s_web off n2", func() bool {
		on := map[string]int{}
		for _, tk := range tasksOf(t, s, web.ID) {
			if tk.DesiredState == api.TaskRunning && tk.Status.State == api.TaskRunning {
				on[tk.NodeID]++
			}
		}
		return on["n1"] == 2 && len(on) == 1
	})
	var kept bool
	for _, tk := range tasksOf(t, s, web.ID) {
		if tk.ID == byNode["n1"] {
			kept = tk.DesiredState == api.TaskRunning && len(tk.Spec.Placement.Constraints) == 1
		}
	}
	if !kept {
		t.Errorf("the task on n1 (%s) was not kept with the new spec", byNode["n1"])
	}
}

// Through the store, with Swarm's default restart delay (5s): a rollback
// from an image that exits 1 is completed only in a state where every
// slot runs the old image again (it was reported while the slots whose
// bad tasks had failed stayed empty until their restart delay was over),
// and the failed tasks are history: desired shutdown, replaced.
func TestRollbackCompletesWithEverySlotThroughTheStore(t *testing.T) {
	s := managers(t)
	fakeAgent(t, s)
	addNode(t, s, "n1", nil)
	upd := api.DefaultUpdateConfig()
	upd.Parallelism, upd.FailureAction, upd.Monitor = 2, api.FailureRollback, 0
	rb := api.DefaultRollbackConfig()
	rb.Monitor = 0
	svc := &api.Service{Spec: api.ServiceSpec{Name: "s_web", Mode: api.ModeReplicated, Replicas: 4,
		Task:   api.TaskSpec{Container: api.ContainerSpec{Image: "web:1"}, Restart: api.DefaultRestartPolicy()},
		Update: upd, Rollback: rb}}
	update(t, s, func(tx store.Tx) error { return tx.Create(svc) })
	if storetest.WaitFor(func() bool { return running(t, s, svc.ID) == "web:1 web:1 web:1 web:1" }, 20*time.Second) != nil {
		t.Fatalf("running %q", running(t, s, svc.ID))
	}
	update(t, s, func(tx store.Tx) error {
		cur, err := store.Get[api.Service](tx, svc.ID)
		if err != nil {
			return err
		}
		prev := cur.Spec
		cur.PreviousSpec = &prev
		cur.Spec.Task.Container.Image = "bad:2"
		return tx.Update(cur)
	})
	// One snapshot: the service's state and its tasks together.
	var state string
	var live []string
	var failed []api.Task
	done := func() bool {
		live, failed = nil, nil
		err := s.View(func(tx store.ReadTx) error {
			cur, err := store.Get[api.Service](tx, svc.ID)
			if err != nil {
				return err
			}
			state = ""
			if cur.Update != nil {
				state = cur.Update.State.String()
			}
			tasks, err := store.Find[api.Task](tx, store.ByService(svc.ID))
			for _, tk := range tasks {
				switch {
				case tk.Status.State == api.TaskRunning && tk.DesiredState == api.TaskRunning:
					live = append(live, fmt.Sprintf("%d:%s", tk.Slot, tk.Spec.Container.Image))
				case tk.Status.State == api.TaskFailed:
					failed = append(failed, *tk)
				}
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return state == "rollback_completed"
	}
	if storetest.WaitFor(done, 20*time.Second) != nil {
		t.Fatalf("state %q, running %v", state, live)
	}
	sort.Strings(live)
	if got, want := strings.Join(live, " "), "1:web:1 2:web:1 3:web:1 4:web:1"; got != want {
		t.Errorf("rollback completed with running %q, want %q", got, want)
	}
	if len(failed) == 0 {
		t.Fatal("no failed task")
	}
	for _, tk := range failed {
		if tk.DesiredState != api.TaskShutdown || !tk.Replaced {
			t.Errorf("failed task %s (slot %d): desired %s, replaced %v", tk.ID, tk.Slot, tk.DesiredState, tk.Replaced)
		}
	}
}

// A service's new tasks are created in one store commit (one Raft entry),
// not one per task: they all carry the same version, the commit's index.
func TestServiceTasksCreatedInOneCommit(t *testing.T) {
	c := storetest.New(t, storetest.Options{Managers: 1})
	if _, err := c.WaitLeader(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	s := c.Store(c.Leader())
	orch, err := orchestrator.New(orchestrator.Config{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	svc := &api.Service{Spec: api.ServiceSpec{Name: "s_many", Mode: api.ModeReplicated, Replicas: 50,
		Task: api.TaskSpec{Container: api.ContainerSpec{Image: "web:1"}}}}
	update(t, s, func(tx store.Tx) error { return tx.Create(svc) })
	if _, err := orch.Pass(context.Background()); err != nil {
		t.Fatal(err)
	}
	tasks := tasksOf(t, s, svc.ID)
	versions := map[uint64]int{}
	for _, tk := range tasks {
		versions[tk.Version]++
	}
	if len(tasks) != 50 || len(versions) != 1 {
		t.Errorf("%d tasks in %d commits: %v", len(tasks), len(versions), versions)
	}
}

package orchestrator

import (
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/google/go-cmp/cmp"
)

func dbSpec(image string) api.ServiceSpec {
	return api.ServiceSpec{Name: "s_db", Mode: api.ModeReplicated, Replicas: 2,
		Task:   api.TaskSpec{Container: api.ContainerSpec{Image: image, Healthcheck: &api.Healthcheck{Test: []string{"CMD", "true"}}}},
		Update: cfg(1, api.OrderStopFirst, api.FailureRollback), Rollback: api.DefaultRollbackConfig()}
}

// depWorld is s_web (2 replicas of web:1, the watched service) after
// s_db (2 healthy replicas of db:1).
func depWorld(t *testing.T) (*world, *api.Service) {
	w := newWorld(t, 2, cfg(1, api.OrderStopFirst, api.FailureRollback))
	w.svc.Spec.RolloutAfter = []string{"s_db"}
	db := w.addService(dbSpec("db:1"))
	w.settle(db, "db:1", 2)
	return w, db
}

// settle steps until a service has n ready tasks of an image.
func (w *world) settle(s *api.Service, image string, n int) {
	w.t.Helper()
	for i := 0; i < 20; i++ {
		w.step()
		w.now = w.now.Add(time.Second)
		if w.ready(s, image) == n {
			return
		}
	}
	w.t.Fatalf("%s never had %d ready %s tasks: %v", s.Spec.Name, n, image, w.liveOf(s))
}

func (w *world) ready(s *api.Service, image string) int {
	n := 0
	for i := range w.tasks {
		t := &w.tasks[i]
		if t.ServiceID == s.ID && t.Spec.Container.Image == image && isReady(t) && t.DesiredState == api.TaskRunning {
			n++
		}
	}
	return n
}

func (w *world) has(s *api.Service, image string) bool {
	for _, t := range w.tasks {
		if t.ServiceID == s.ID && t.Spec.Container.Image == image {
			return true
		}
	}
	return false
}

func state(s *api.Service) string {
	if s.Update == nil {
		return "-"
	}
	return s.Update.State.String()
}

// A commit changes s_db and s_web, which depends on it: s_web's update
// waits, saying so, until s_db's has completed with every task ready.
func TestDependentWaitsForItsDependencyUpdate(t *testing.T) {
	w, db := depWorld(t)
	w.deployTo(db, "db:2")
	w.deploy("web:2")
	w.step()
	if w.svc.Update == nil || w.svc.Update.State != api.UpdateWaiting || w.svc.Update.Message != "waiting for s_db" {
		t.Fatalf("s_web: %+v, want waiting for s_db", w.svc.Update)
	}
	if got := w.svc.Update.Progress(w.now); got != "waiting for s_db" {
		t.Errorf("progress %q", got)
	}
	dbDone := -1
	for i := 1; i < 80 && state(w.svc) != "completed"; i++ {
		w.now = w.now.Add(time.Second)
		w.step()
		if dbDone < 0 && state(db) == "completed" {
			dbDone = i
			if w.ready(db, "db:2") != 2 {
				t.Errorf("s_db completed with %d ready tasks", w.ready(db, "db:2"))
			}
		}
		if w.has(w.svc, "web:2") && (dbDone < 0 || w.ready(db, "db:2") < 2) {
			t.Fatalf("step %d: s_web's update started while s_db is %s with %d ready db:2", i, state(db), w.ready(db, "db:2"))
		}
	}
	if state(w.svc) != "completed" || dbDone < 0 {
		t.Fatalf("s_web %s, s_db %s (log %v)", state(w.svc), state(db), w.log)
	}
	if diff := cmp.Diff(map[string]int{"web:2": 2}, w.live()); diff != "" {
		t.Errorf("s_web live (-want +got):\n%s", diff)
	}
}

// A dependency whose rollout fails (and rolls back) keeps the dependent
// waiting: the revision goes Degraded through s_db, and is reverted.
func TestFailedDependencyKeepsTheDependentWaiting(t *testing.T) {
	w, db := depWorld(t)
	w.deployTo(db, "bad:2")
	w.deploy("web:2")
	for i := 0; i < 80 && state(db) != "rollback_completed"; i++ {
		w.step()
		w.now = w.now.Add(time.Second)
	}
	for i := 0; i < 10; i++ { // and well after
		w.step()
		w.now = w.now.Add(time.Second)
	}
	if state(db) != "rollback_completed" || w.ready(db, "db:1") != 2 {
		t.Fatalf("s_db %s with %d ready db:1", state(db), w.ready(db, "db:1"))
	}
	if w.svc.Update == nil || w.svc.Update.State != api.UpdateWaiting || w.svc.Update.Message != "waiting for s_db" {
		t.Errorf("s_web: %+v, want still waiting for s_db", w.svc.Update)
	}
	if w.has(w.svc, "web:2") {
		t.Error("s_web started its update after s_db's failed")
	}
	if diff := cmp.Diff(map[string]int{"web:1": 2}, w.live()); diff != "" {
		t.Errorf("s_web live (-want +got):\n%s", diff)
	}

	// The revert puts s_web's spec back: nothing to wait for any more,
	// and a waiting status left behind (reconcile drops it with the spec
	// change) is cleared.
	w.change(w.svc, func(s *api.ServiceSpec) { s.Task.Container.Image = "web:1" })
	w.svc.Update = &api.UpdateStatus{State: api.UpdateWaiting, StartedAt: t0, Target: SpecTarget(w.svc.PreviousSpec.Task), Message: "waiting for s_db"}
	w.step()
	if w.svc.Update != nil {
		t.Errorf("s_web after the revert: %+v, want no rollout", w.svc.Update)
	}
}

// Services without changes never wait, and never hold up others.
func TestNoWaitingWithoutChanges(t *testing.T) {
	t.Run("dependent changes, dependency does not", func(t *testing.T) {
		w, db := depWorld(t)
		// A rollback of s_db long ago is history, not a reason to wait.
		db.Update = &api.UpdateStatus{State: api.UpdateRollbackCompleted, StartedAt: t0, Target: SpecTarget(db.Spec.Task)}
		w.deploy("web:2")
		w.step()
		if state(w.svc) != "updating" {
			t.Fatalf("s_web: %+v, want updating at once", w.svc.Update)
		}
		w.run(time.Second, 50)
		if state(w.svc) != "completed" {
			t.Errorf("s_web %s", state(w.svc))
		}
	})
	t.Run("dependency changes, dependent does not", func(t *testing.T) {
		w, db := depWorld(t)
		w.deployTo(db, "db:2")
		for i := 0; i < 30; i++ {
			w.step()
			w.now = w.now.Add(time.Second)
		}
		if state(db) != "completed" || w.svc.Update != nil || len(w.log) != 0 {
			t.Errorf("s_db %s; s_web %+v (log %v), want no rollout of s_web", state(db), w.svc.Update, w.log)
		}
	})
}

// New services wait too: s_db, then the s_migrate job it runs before,
// then s_web, all created by one commit.
func TestCreatesWaitForWhatTheyDependOn(t *testing.T) {
	w := &world{t: t, now: t0, nodes: Nodes{}}
	web := api.ServiceSpec{Name: "s_web", Mode: api.ModeReplicated, Replicas: 2,
		Task: api.TaskSpec{Container: api.ContainerSpec{Image: "web:1"}}, RolloutAfter: []string{"s_db", "s_migrate"}}
	w.svc = w.addService(web)
	migrate := w.addService(api.ServiceSpec{Name: "s_migrate", Mode: api.ModeReplicatedJob, TotalCompletions: 1, MaxConcurrent: 1,
		Task: api.TaskSpec{Container: api.ContainerSpec{Image: "migrate:1"}}, RolloutAfter: []string{"s_db"}})
	db := w.addService(dbSpec("db:1"))

	w.step()
	if w.svc.Update == nil || w.svc.Update.Message != "waiting for s_db, s_migrate" || migrate.Update == nil || migrate.Update.Message != "waiting for s_db" {
		t.Fatalf("s_web %+v, s_migrate %+v", w.svc.Update, migrate.Update)
	}
	order := map[string]int{}
	for i := 1; i < 30; i++ {
		w.now = w.now.Add(time.Second)
		w.step()
		for name, ok := range map[string]bool{
			"db ready":         w.ready(db, "db:1") == 2,
			"migrate started":  w.has(migrate, "migrate:1"),
			"migrate complete": w.completed(migrate) == 1,
			"web started":      w.has(w.svc, "web:1"),
		} {
			if _, seen := order[name]; ok && !seen {
				order[name] = i
			}
		}
	}
	if !(order["db ready"] > 0 && order["db ready"] < order["migrate started"] && order["migrate complete"] < order["web started"]) {
		t.Errorf("order of events by step: %v", order)
	}
	if w.svc.Update != nil || migrate.Update != nil {
		t.Errorf("waiting statuses left: s_web %+v, s_migrate %+v", w.svc.Update, migrate.Update)
	}
	if w.ready(w.svc, "web:1") != 2 {
		t.Errorf("s_web: %v", w.liveOf(w.svc))
	}
}

func (w *world) completed(s *api.Service) int {
	n := 0
	for _, t := range w.tasks {
		if t.ServiceID == s.ID && t.Status.State == api.TaskComplete {
			n++
		}
	}
	return n
}

func TestWaitingFor(t *testing.T) {
	spec := dbSpec("db:1")
	readyTask := func(node string) api.Task {
		x := tk("d-"+node, 1, node, api.TaskRunning, t0)
		x.Spec, x.Status.Health = spec.Task, api.HealthHealthy
		return x
	}
	older := readyTask("n2")
	older.Spec.Container.Image = "db:0"
	starting := readyTask("n2")
	starting.Status.Health = api.HealthStarting
	dep := func(mode api.ServiceMode, u *api.UpdateStatus, tasks ...api.Task) Dependency {
		s := spec
		s.Mode = mode
		return Dependency{Service: &api.Service{Spec: s, Update: u}, Tasks: tasks}
	}
	nodes := readyNodes("n1", "n2")
	cases := []struct {
		name string
		dep  Dependency
		want bool // waited for
	}{
		{"settled", dep(api.ModeReplicated, nil, readyTask("n1"), readyTask("n2")), false},
		{"completed update, all ready", dep(api.ModeReplicated, &api.UpdateStatus{State: api.UpdateCompleted}, readyTask("n1"), readyTask("n2")), false},
		{"updating", dep(api.ModeReplicated, &api.UpdateStatus{State: api.UpdateUpdating}, readyTask("n1"), readyTask("n2")), true},
		{"paused", dep(api.ModeReplicated, &api.UpdateStatus{State: api.UpdatePaused}, readyTask("n1"), readyTask("n2")), true},
		{"itself waiting", dep(api.ModeReplicated, &api.UpdateStatus{State: api.UpdateWaiting}, readyTask("n1"), readyTask("n2")), true},
		{"rolled back since", dep(api.ModeReplicated, &api.UpdateStatus{State: api.UpdateRollbackCompleted, StartedAt: t0}, readyTask("n1"), readyTask("n2")), true},
		{"rolled back before", dep(api.ModeReplicated, &api.UpdateStatus{State: api.UpdateRollbackCompleted, StartedAt: t0.Add(-time.Hour)}, readyTask("n1"), readyTask("n2")), false},
		{"a task not ready", dep(api.ModeReplicated, nil, readyTask("n1"), starting), true},
		{"a task of an older spec", dep(api.ModeReplicated, nil, readyTask("n1"), readyTask("n1"), older), true},
		{"global, a node without its task", dep(api.ModeGlobal, nil, readyTask("n1")), true},
		{"global, every node ready", dep(api.ModeGlobal, nil, readyTask("n1"), readyTask("n2")), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			svc := &api.Service{Spec: api.ServiceSpec{Name: "s_web", RolloutAfter: []string{"s_db", "s_gone"}}}
			got := WaitingFor(svc, map[string]Dependency{"s_db": tc.dep}, nodes, t0)
			if waited := strings.Join(got, ",") == "s_db"; waited != tc.want || len(got) > 1 {
				t.Errorf("waiting for %v, want s_db waited for: %v", got, tc.want)
			}
		})
	}
}

// depends_on's conditions: service_started waits only until every task
// of the dependency's spec runs, whatever its health or its rollout;
// service_healthy (and no condition) until its rollout is over with
// every task healthy.
func TestDependConditions(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	db := &api.Service{Meta: api.Meta{ID: "db"}, Spec: dbSpec("db:1"), Update: &api.UpdateStatus{State: api.UpdateUpdating}}
	task := func(id string, state api.TaskState, health api.HealthState) api.Task {
		return api.Task{Meta: api.Meta{ID: id}, ServiceID: "db", Spec: db.Spec.Task, DesiredState: api.TaskRunning,
			Status: api.TaskStatus{State: state, Health: health}}
	}
	web := func(c api.DependCondition) *api.Service {
		s := &api.Service{Meta: api.Meta{ID: "web"}, Spec: api.ServiceSpec{Name: "s_web", RolloutAfter: []string{"s_db"}}}
		if c != "" {
			s.Spec.Conditions = map[string]api.DependCondition{"s_db": c}
		}
		return s
	}
	for _, tc := range []struct {
		name  string
		tasks []api.Task
		cond  api.DependCondition
		want  []string
	}{
		{"started, both running unhealthy", []api.Task{task("a", api.TaskRunning, api.HealthStarting), task("b", api.TaskRunning, api.HealthUnhealthy)}, api.DependStarted, nil},
		{"started, one still starting", []api.Task{task("a", api.TaskRunning, api.HealthStarting), task("b", api.TaskStarting, api.HealthNone)}, api.DependStarted, []string{"s_db"}},
		{"healthy, running but rolling out", []api.Task{task("a", api.TaskRunning, api.HealthHealthy), task("b", api.TaskRunning, api.HealthHealthy)}, api.DependHealthy, []string{"s_db"}},
		{"no condition, as healthy", []api.Task{task("a", api.TaskRunning, api.HealthHealthy), task("b", api.TaskRunning, api.HealthHealthy)}, "", []string{"s_db"}},
	} {
		deps := map[string]Dependency{"s_db": {Service: db, Tasks: tc.tasks}}
		if got := WaitingFor(web(tc.cond), deps, Nodes{}, now); !cmp.Equal(got, tc.want) {
			t.Errorf("%s: waiting for %v, want %v", tc.name, got, tc.want)
		}
	}
	// The rollout over, healthy tasks satisfy service_healthy.
	db.Update.State = api.UpdateCompleted
	deps := map[string]Dependency{"s_db": {Service: db, Tasks: []api.Task{task("a", api.TaskRunning, api.HealthHealthy), task("b", api.TaskRunning, api.HealthHealthy)}}}
	if got := WaitingFor(web(api.DependHealthy), deps, Nodes{}, now); len(got) != 0 {
		t.Errorf("healthy after the rollout: waiting for %v", got)
	}
}

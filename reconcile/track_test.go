package reconcile

import (
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func svcSpec(image string, replicas uint64, health bool) api.ServiceSpec {
	s := api.ServiceSpec{Name: "s_web", Mode: api.ModeReplicated, Replicas: replicas,
		Task: api.TaskSpec{Container: api.ContainerSpec{Image: image}}}
	if health {
		s.Task.Container.Healthcheck = &api.Healthcheck{Test: []string{"CMD", "true"}}
	}
	return s
}

func task(spec api.ServiceSpec, state api.TaskState, health api.HealthState) api.Task {
	return api.Task{Spec: spec.Task, DesiredState: api.TaskRunning,
		Status: api.TaskStatus{State: state, Health: health}}
}

func TestTrack(t *testing.T) {
	v1, v2 := svcSpec("web:1", 2, true), svcSpec("web:2", 2, true)
	placed := v2
	placed.Task.Placement.Constraints = []api.Constraint{{Key: "node.labels.zone", Op: api.OpNe, Value: "c"}}
	ported := v2
	ported.Endpoint = api.EndpointSpec{Ports: []api.PortConfig{{Target: 80, Published: 8080}}}
	rollout := Rollout{Changed: []string{"s_web"}, AppliedAt: t0}
	unchanged := Rollout{Changed: []string{"s_web"}, AppliedAt: t0, Unchanged: true}
	cases := []struct {
		name      string
		service   *api.Service
		tasks     []api.Task
		now       time.Time
		rollout   *Rollout
		wantPhase api.SyncPhase
		wantMsg   string
	}{
		{"all new tasks healthy", &api.Service{Spec: v2},
			[]api.Task{task(v2, api.TaskRunning, api.HealthHealthy), task(v2, api.TaskRunning, api.HealthHealthy), task(v1, api.TaskShutdown, api.HealthNone)},
			t0, nil, api.SyncSynced, "1 service(s) rolled out healthy"},
		{"running but not yet healthy", &api.Service{Spec: v2},
			[]api.Task{task(v2, api.TaskRunning, api.HealthHealthy), task(v2, api.TaskRunning, api.HealthStarting)},
			t0, nil, api.SyncProgressing, "waiting for s_web: 1/2 ready"},
		{"an old task still runs", &api.Service{Spec: v2},
			[]api.Task{task(v2, api.TaskRunning, api.HealthHealthy), task(v2, api.TaskRunning, api.HealthHealthy), task(v1, api.TaskRunning, api.HealthHealthy)},
			t0, nil, api.SyncProgressing, "waiting for s_web: 2/2 ready, 1 task(s) of the previous spec left"},
		{"pending with a reason", &api.Service{Spec: v2},
			[]api.Task{task(v2, api.TaskRunning, api.HealthHealthy), {Spec: v2.Task, DesiredState: api.TaskRunning,
				Status: api.TaskStatus{State: api.TaskPending, Err: "no suitable node: 3 nodes lack 512MiB memory"}}},
			t0, nil, api.SyncProgressing, "waiting for s_web: 1/2 ready; no suitable node: 3 nodes lack 512MiB memory"},
		{"rolled back is degraded, never green", &api.Service{Spec: v1, Update: &api.UpdateStatus{State: api.UpdateRollbackCompleted, Message: "2 tasks failed: exit code 1"}},
			[]api.Task{task(v1, api.TaskRunning, api.HealthHealthy), task(v1, api.TaskRunning, api.HealthHealthy)},
			t0, nil, api.SyncDegraded, "rollout failed: s_web: update rollback_completed: 2 tasks failed: exit code 1"},
		{"a revision that changed nothing is not failed by an earlier rollback", &api.Service{Spec: v1, Update: &api.UpdateStatus{State: api.UpdateRollbackCompleted, Message: "2 tasks failed: exit code 1"}},
			[]api.Task{task(v1, api.TaskRunning, api.HealthHealthy), task(v1, api.TaskRunning, api.HealthHealthy)},
			t0, &unchanged, api.SyncSynced, "1 service(s) rolled out healthy"},
		{"nor judged green while that rollback runs", &api.Service{Spec: v1, Update: &api.UpdateStatus{State: api.UpdateRollbackStarted}},
			[]api.Task{task(v1, api.TaskRunning, api.HealthHealthy), task(v2, api.TaskRunning, api.HealthHealthy)},
			t0, &unchanged, api.SyncProgressing, "waiting for s_web: 1/2 ready, 1 task(s) of the previous spec left"},
		{"but an earlier rollout that paused still fails it", &api.Service{Spec: v2, Update: &api.UpdateStatus{State: api.UpdatePaused, Message: "1 task failed"}},
			[]api.Task{task(v1, api.TaskRunning, api.HealthHealthy), task(v2, api.TaskRunning, api.HealthHealthy)},
			t0, &unchanged, api.SyncDegraded, "rollout failed: s_web: update paused: 1 task failed"},
		{"healthy tasks without their VIP are not synced", &api.Service{Spec: v2, Endpoint: &api.Endpoint{Problem: "VIP pool 10.96.0.0/30 exhausted"}},
			[]api.Task{task(v2, api.TaskRunning, api.HealthHealthy), task(v2, api.TaskRunning, api.HealthHealthy)},
			t0, nil, api.SyncProgressing, "waiting for s_web: VIP pool 10.96.0.0/30 exhausted"},
		{"and degraded after the deadline", &api.Service{Spec: v2, Endpoint: &api.Endpoint{Problem: "VIP pool 10.96.0.0/30 exhausted"}},
			[]api.Task{task(v2, api.TaskRunning, api.HealthHealthy), task(v2, api.TaskRunning, api.HealthHealthy)},
			t0.Add(DefaultProgressDeadline + time.Second), nil, api.SyncDegraded, "no healthy rollout after 10m0s: s_web: VIP pool 10.96.0.0/30 exhausted"},
		{"paused is degraded", &api.Service{Spec: v2, Update: &api.UpdateStatus{State: api.UpdatePaused}},
			nil, t0, nil, api.SyncDegraded, "rollout failed: s_web: update paused"},
		{"stuck past the deadline", &api.Service{Spec: v2},
			[]api.Task{task(v2, api.TaskStarting, api.HealthNone)},
			t0.Add(DefaultProgressDeadline + time.Second), nil, api.SyncDegraded, "no healthy rollout after 10m0s: s_web: 0/2 ready"},
		{"not stuck yet at the deadline", &api.Service{Spec: v2},
			[]api.Task{task(v2, api.TaskStarting, api.HealthNone)},
			t0.Add(DefaultProgressDeadline), nil, api.SyncProgressing, "waiting for s_web: 0/2 ready"},
		{"removed service still has a task", nil, []api.Task{task(v1, api.TaskRunning, api.HealthHealthy)},
			t0, &Rollout{Removed: []string{"s_web"}, AppliedAt: t0}, api.SyncProgressing, "waiting for s_web: 1 task(s) still running after removal"},
		{"removed service gone", nil, []api.Task{task(v1, api.TaskShutdown, api.HealthNone)},
			t0, &Rollout{Removed: []string{"s_web"}, AppliedAt: t0}, api.SyncSynced, "0 service(s) rolled out healthy, 1 removed"},
		{"scaled to zero", &api.Service{Spec: svcSpec("web:2", 0, false)}, nil, t0, nil, api.SyncSynced, "1 service(s) rolled out healthy"},
		{"placement change, tasks not yet given the new spec", &api.Service{Spec: placed},
			[]api.Task{task(v2, api.TaskRunning, api.HealthHealthy), task(v2, api.TaskRunning, api.HealthHealthy)},
			t0, nil, api.SyncProgressing, "waiting for s_web: 0/2 ready, 2 task(s) of the previous spec left"},
		{"placement change, tasks kept with the new spec", &api.Service{Spec: placed},
			[]api.Task{task(placed, api.TaskRunning, api.HealthHealthy), task(placed, api.TaskRunning, api.HealthHealthy)},
			t0, nil, api.SyncSynced, "1 service(s) rolled out healthy"},
		{"a task made for another endpoint", &api.Service{Spec: ported},
			[]api.Task{withEndpoint(task(ported, api.TaskRunning, api.HealthHealthy), v2.Endpoint), withEndpoint(task(ported, api.TaskRunning, api.HealthHealthy), ported.Endpoint)},
			t0, nil, api.SyncProgressing, "waiting for s_web: 1/2 ready, 1 task(s) of the previous spec left"},
		{"tasks that recorded no endpoint", &api.Service{Spec: ported},
			[]api.Task{task(ported, api.TaskRunning, api.HealthHealthy), task(ported, api.TaskRunning, api.HealthHealthy)},
			t0, nil, api.SyncSynced, "1 service(s) rolled out healthy"},
		{"held by depends_on", &api.Service{Spec: v2, Update: &api.UpdateStatus{State: api.UpdateWaiting, Message: "waiting for s_db"}},
			[]api.Task{task(v1, api.TaskRunning, api.HealthHealthy), task(v1, api.TaskRunning, api.HealthHealthy)},
			t0, nil, api.SyncProgressing, "waiting for s_web: 0/2 ready, waiting for s_db"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := rollout
			if tc.rollout != nil {
				r = *tc.rollout
			}
			got := Track(r, map[string]Observed{"s_web": {Service: tc.service, Tasks: tc.tasks}}, tc.now)
			if got.Phase != tc.wantPhase || got.Message != tc.wantMsg {
				t.Errorf("got %s %q\nwant %s %q", got.Phase, got.Message, tc.wantPhase, tc.wantMsg)
			}
		})
	}
}

func withEndpoint(t api.Task, e api.EndpointSpec) api.Task {
	t.Endpoint = &e
	return t
}

// A dependency whose rollout failed holds its dependent: the revision is
// Degraded by the dependency, never green.
func TestTrackFailedDependency(t *testing.T) {
	db1, db2 := svcSpec("db:1", 1, false), svcSpec("db:2", 1, false)
	db1.Name, db2.Name = "s_db", "s_db"
	web1, web2 := svcSpec("web:1", 1, false), svcSpec("web:2", 1, false)
	web2.RolloutAfter = []string{"s_db"}
	r := Rollout{Changed: []string{"s_db", "s_web"}, AppliedAt: t0}
	got := Track(r, map[string]Observed{
		"s_db": {Service: &api.Service{Spec: db1, PreviousSpec: &db2,
			Update: &api.UpdateStatus{State: api.UpdateRollbackCompleted, Message: "rolled back: 1 of 1 updated tasks failed: exit code 1"}},
			Tasks: []api.Task{task(db1, api.TaskRunning, api.HealthNone)}},
		"s_web": {Service: &api.Service{Spec: web2, Update: &api.UpdateStatus{State: api.UpdateWaiting, Message: "waiting for s_db"}},
			Tasks: []api.Task{task(web1, api.TaskRunning, api.HealthNone)}},
	}, t0)
	want := "rollout failed: s_db: update rollback_completed: rolled back: 1 of 1 updated tasks failed: exit code 1"
	if got.Phase != api.SyncDegraded || got.Message != want {
		t.Errorf("got %s %q\nwant %s %q", got.Phase, got.Message, api.SyncDegraded, want)
	}
}

// DesiredState resolves depends_on, between services of a stack and
// between stacks, into the full names each service's rollout waits for.
func TestDesiredStateRolloutAfter(t *testing.T) {
	svc := func(stack, name string, deps ...string) api.ServiceSpec {
		return api.ServiceSpec{Name: stack + "_" + name, Stack: stack, DependsOn: deps}
	}
	got := DesiredState([]api.Bundle{
		{Stack: api.StackSpec{Name: "db"}, Services: []api.ServiceSpec{svc("db", "pg"), svc("db", "migrate", "pg")}},
		{Stack: api.StackSpec{Name: "shop", DependsOn: []string{"db"}}, Services: []api.ServiceSpec{svc("shop", "web", "api"), svc("shop", "api")}},
	})
	after := map[string][]string{}
	for _, s := range got.Services {
		after[s.Name] = s.RolloutAfter
	}
	want := map[string][]string{
		"db_pg":      nil,
		"db_migrate": {"db_pg"},
		"shop_web":   {"db_migrate", "db_pg", "shop_api"},
		"shop_api":   {"db_migrate", "db_pg"},
	}
	if diff := cmp.Diff(want, after); diff != "" {
		t.Errorf("rollout_after (-want +got):\n%s", diff)
	}
}

func TestTrackJobs(t *testing.T) {
	job := api.ServiceSpec{Name: "s_migrate", Mode: api.ModeReplicatedJob, MaxConcurrent: 1, TotalCompletions: 2,
		Task: api.TaskSpec{Container: api.ContainerSpec{Image: "m:1"}}}
	done := api.Task{Spec: job.Task, DesiredState: api.TaskComplete, Status: api.TaskStatus{State: api.TaskComplete}}
	running := api.Task{Spec: job.Task, DesiredState: api.TaskComplete, Status: api.TaskStatus{State: api.TaskRunning}}
	r := Rollout{Changed: []string{"s_migrate"}, AppliedAt: t0}
	got := Track(r, map[string]Observed{"s_migrate": {Service: &api.Service{Spec: job}, Tasks: []api.Task{done, running}}}, t0)
	if got.Phase != api.SyncProgressing || !strings.Contains(got.Message, "1/2 ready") {
		t.Errorf("one of two completions: %s %q", got.Phase, got.Message)
	}
	got = Track(r, map[string]Observed{"s_migrate": {Service: &api.Service{Spec: job}, Tasks: []api.Task{done, done}}}, t0)
	if got.Phase != api.SyncSynced {
		t.Errorf("two completions: %s %q", got.Phase, got.Message)
	}
}

func TestRolloutOf(t *testing.T) {
	cs := Changeset{Steps: []Step{
		{Kind: KindNetwork, Name: "n", Action: Create},
		{Kind: KindService, Name: "a", Action: Create},
		{Kind: KindService, Name: "b", Action: Unchanged},
		{Kind: KindService, Name: "c", Action: Update},
		{Kind: KindService, Name: "d", Action: Delete},
	}}
	r := RolloutOf(cs, t0)
	if strings.Join(r.Changed, ",") != "a,c" || strings.Join(r.Removed, ",") != "d" {
		t.Errorf("rollout %+v", r)
	}
}

// A global service's node whose task failed and was replaced: the
// orchestrator moves the failed task to desired shutdown (Replaced), so
// the node counts once and the rollout is done; while it was left desired
// running, the node counted twice and the rollout never was.
func TestTrackGlobalWithReplacedTask(t *testing.T) {
	spec := svcSpec("mon:1", 0, false)
	spec.Mode = api.ModeGlobal
	failed := task(spec, api.TaskFailed, api.HealthNone)
	failed.NodeID, failed.DesiredState, failed.Replaced = "n1", api.TaskShutdown, true
	runs := task(spec, api.TaskRunning, api.HealthNone)
	runs.NodeID = "n1"
	r := Rollout{Changed: []string{"s_web"}, AppliedAt: t0}
	got := Track(r, map[string]Observed{"s_web": {Service: &api.Service{Spec: spec}, Tasks: []api.Task{failed, runs}}}, t0)
	if got.Phase != api.SyncSynced || got.Services[0].Message != "1/1 ready" {
		t.Errorf("phase %s, %+v", got.Phase, got.Services)
	}
	failed.DesiredState, failed.Replaced = api.TaskRunning, false // as before the fix
	got = Track(r, map[string]Observed{"s_web": {Service: &api.Service{Spec: spec}, Tasks: []api.Task{failed, runs}}}, t0)
	if got.Phase != api.SyncProgressing || got.Services[0].Message != "1/2 ready" {
		t.Errorf("failed task desired running: phase %s, %+v", got.Phase, got.Services)
	}
}

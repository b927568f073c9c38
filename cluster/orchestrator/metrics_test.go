package orchestrator

import (
	"strings"
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fixedState is a collector over given objects, as StateCollector is over
// the store.
type fixedState struct {
	services []*api.Service
	tasks    []*api.Task
}

func (f *fixedState) Describe(ch chan<- *prometheus.Desc) { ch <- descRollouts; ch <- descTasks }
func (f *fixedState) Collect(ch chan<- prometheus.Metric) {
	for _, m := range StateMetrics(f.services, f.tasks) {
		ch <- m
	}
}

func svc(name string, u api.UpdateState) *api.Service {
	s := &api.Service{Spec: api.ServiceSpec{Name: name}}
	if u != api.UpdateNone {
		s.Update = &api.UpdateStatus{State: u}
	}
	return s
}

func task(service string, st api.TaskState) *api.Task {
	return &api.Task{ServiceName: service, Status: api.TaskStatus{State: st}}
}

func TestStateMetrics(t *testing.T) {
	f := &fixedState{
		services: []*api.Service{svc("web", api.UpdateUpdating), svc("db", api.UpdateCompleted), svc("idle", api.UpdateNone)},
		tasks: []*api.Task{task("web", api.TaskRunning), task("web", api.TaskRunning), task("web", api.TaskPreparing),
			task("web", api.TaskShutdown), task("db", api.TaskFailed)},
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(f)
	const head = "# HELP gitorc_tasks Tasks in the store by service and observed state; running is always reported, other states while a task is in them.\n# TYPE gitorc_tasks gauge\n"
	err := testutil.GatherAndCompare(reg, strings.NewReader(head+`
gitorc_tasks{service="db",state="failed"} 1
gitorc_tasks{service="db",state="running"} 0
gitorc_tasks{service="idle",state="running"} 0
gitorc_tasks{service="web",state="preparing"} 1
gitorc_tasks{service="web",state="running"} 2
gitorc_tasks{service="web",state="shutdown"} 1
`), "gitorc_tasks")
	if err != nil {
		t.Error(err)
	}
	err = testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP gitorc_rollouts Services by the state of their rolling update or rollback (none: no update recorded).
# TYPE gitorc_rollouts gauge
gitorc_rollouts{state="completed"} 1
gitorc_rollouts{state="none"} 1
gitorc_rollouts{state="paused"} 0
gitorc_rollouts{state="rollback_completed"} 0
gitorc_rollouts{state="rollback_paused"} 0
gitorc_rollouts{state="rollback_started"} 0
gitorc_rollouts{state="updating"} 1
gitorc_rollouts{state="waiting"} 0
`), "gitorc_rollouts")
	if err != nil {
		t.Error(err)
	}

	// The service and its tasks removed: its series are gone.
	f.services, f.tasks = f.services[1:], f.tasks[4:]
	err = testutil.GatherAndCompare(reg, strings.NewReader(head+`
gitorc_tasks{service="db",state="failed"} 1
gitorc_tasks{service="db",state="running"} 0
gitorc_tasks{service="idle",state="running"} 0
`), "gitorc_tasks")
	if err != nil {
		t.Error(err)
	}
}

package orchestrator

import (
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/google/go-cmp/cmp"
)

// A node that was drained (its global task stopped) and is active again
// gets a new task; a task an update stopped is the updater's to replace.
func TestDecideGlobalNodeBack(t *testing.T) {
	svc := service(api.ModeGlobal, 0, api.RestartPolicy{Condition: api.RestartAny})
	nodes := readyNodes("n1", "n2")
	stopped := func(id, node, image string) api.Task {
		t := tk(id, 0, node, api.TaskShutdown, t0)
		t.DesiredState = api.TaskShutdown
		t.Spec.Container.Image = image
		return t
	}
	running := tk("a", 0, "n1", api.TaskRunning, t0)
	running.Spec = svc.Spec.Task

	got := summary(DecideGlobal(svc, []api.Task{running, stopped("b", "n2", "web:1")}, nodes, func(api.Node) bool { return true }, t0, DefaultDrainDelay))
	if diff := cmp.Diff([]string{"create slot=0 node=n2 restarts=0"}, got); diff != "" {
		t.Errorf("node back after a drain (-want +got):\n%s", diff)
	}
	got = summary(DecideGlobal(svc, []api.Task{running, stopped("b", "n2", "web:0")}, nodes, func(api.Node) bool { return true }, t0, DefaultDrainDelay))
	if len(got) != 0 {
		t.Errorf("a task stopped by an update was replaced by the global orchestrator: %v", got)
	}
}

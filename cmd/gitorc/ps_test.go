package main

import (
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/google/go-cmp/cmp"
)

// ps indents a slot's (or a global service's node's) earlier tasks under
// the one wanted there, as docker service ps does; a slot whose failed
// task awaits its restart shows that task as its current line.
func TestTaskLinesShowHistory(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	task := func(id, svc string, slot uint64, node string, desired, state api.TaskState) controlapi.Task {
		return controlapi.Task{Task: api.Task{Meta: api.Meta{ID: id, CreatedAt: t0}, ServiceName: svc, Slot: slot, NodeID: node,
			DesiredState: desired, Status: api.TaskStatus{State: state}}, NodeName: node}
	}
	replaced := task("w1a", "web", 1, "n1", api.TaskShutdown, api.TaskFailed)
	replaced.Replaced = true
	tasks := []controlapi.Task{ // in the API's order (controlapi's sortTasks)
		task("m1", "mon", 0, "n1", api.TaskRunning, api.TaskRunning),
		task("m1a", "mon", 0, "n1", api.TaskShutdown, api.TaskShutdown),
		task("m2", "mon", 0, "n2", api.TaskRunning, api.TaskRunning),
		task("w1", "web", 1, "n1", api.TaskRunning, api.TaskRunning),
		replaced,
		task("w1b", "web", 1, "n2", api.TaskShutdown, api.TaskShutdown),
		task("w2", "web", 2, "n2", api.TaskRunning, api.TaskFailed), // its restart waits for the delay
		task("w3", "web", 3, "n2", api.TaskRunning, api.TaskRunning),
	}
	var got []string
	for _, l := range taskLines(tasks) {
		got = append(got, l.task.ID+" "+l.name)
	}
	want := []string{
		"m1 mon.n1", `m1a  \_ mon.n1`, "m2 mon.n2",
		"w1 web.1", `w1a  \_ web.1`, `w1b  \_ web.1`,
		"w2 web.2", "w3 web.3",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
}

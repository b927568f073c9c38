package dispatcher_test

import (
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/dispatcher"
)

// A failed task that the orchestrator replaced (desired shutdown, marked
// Replaced) stays in its node's set, as it did while it was desired
// running: the node keeps its log while it is history. A task that was
// stopped and ended leaves it.
func TestAssignedKeepsReplacedTasks(t *testing.T) {
	cases := []struct {
		name     string
		state    api.TaskState
		desired  api.TaskState
		replaced bool
		want     bool
	}{
		{"pending", api.TaskPending, api.TaskRunning, false, false},
		{"running", api.TaskRunning, api.TaskRunning, false, true},
		{"failed, not replaced yet", api.TaskFailed, api.TaskRunning, false, true},
		{"failed and replaced", api.TaskFailed, api.TaskShutdown, true, true},
		{"stopping", api.TaskRunning, api.TaskShutdown, false, true},
		{"stopped", api.TaskShutdown, api.TaskShutdown, false, false},
		{"completed job", api.TaskComplete, api.TaskComplete, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tk := &api.Task{DesiredState: tc.desired, Status: api.TaskStatus{State: tc.state}, Replaced: tc.replaced}
			if got := dispatcher.Assigned(tk); got != tc.want {
				t.Errorf("Assigned = %v, want %v", got, tc.want)
			}
		})
	}
}

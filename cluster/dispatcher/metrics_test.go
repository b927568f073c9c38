package dispatcher

import (
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

func TestStartLatency(t *testing.T) {
	created := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	now := created.Add(1500 * time.Millisecond)
	mk := func(st api.TaskState) *api.Task {
		return &api.Task{Meta: api.Meta{CreatedAt: created}, Status: api.TaskStatus{State: st}}
	}
	for _, tc := range []struct {
		name     string
		task     *api.Task
		next     api.TaskState
		want     time.Duration
		observed bool
	}{
		{"starting to running", mk(api.TaskStarting), api.TaskRunning, 1500 * time.Millisecond, true},
		{"assigned straight to running", mk(api.TaskAssigned), api.TaskRunning, 1500 * time.Millisecond, true},
		{"running again (health change)", mk(api.TaskRunning), api.TaskRunning, 0, false},
		{"preparing", mk(api.TaskAssigned), api.TaskPreparing, 0, false},
		{"failed before running", mk(api.TaskStarting), api.TaskFailed, 0, false},
		{"no creation time", &api.Task{Status: api.TaskStatus{State: api.TaskStarting}}, api.TaskRunning, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := startLatency(tc.task, api.TaskStatus{State: tc.next}, now)
			if ok != tc.observed || got != tc.want {
				t.Errorf("startLatency = %v, %v; want %v, %v", got, ok, tc.want, tc.observed)
			}
		})
	}
}

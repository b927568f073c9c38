package api

import (
	"testing"
	"time"
)

func TestInLoadBalancerHealth(t *testing.T) {
	compose := &Healthcheck{Test: []string{"CMD", "true"}}
	disabled := &Healthcheck{Test: []string{"NONE"}}
	tests := []struct {
		name    string
		hc      *Healthcheck
		health  HealthState
		checked bool
		in      bool
	}{
		{"no healthcheck anywhere: in at once", nil, HealthNone, false, true},
		{"compose healthcheck, not reported yet: out", compose, HealthNone, true, false},
		{"compose healthcheck, starting: out", compose, HealthStarting, true, false},
		{"compose healthcheck, healthy: in", compose, HealthHealthy, true, true},
		{"compose healthcheck, unhealthy: out", compose, HealthUnhealthy, true, false},
		// The spec has none, but the node runs the image's HEALTHCHECK.
		{"image healthcheck, starting: out", nil, HealthStarting, true, false},
		{"image healthcheck, healthy: in", nil, HealthHealthy, true, true},
		{"image healthcheck, unhealthy: out", nil, HealthUnhealthy, true, false},
		// disable: true switches the image's off: the node reports none.
		{"disabled, no health: in at once", disabled, HealthNone, false, true},
		{"disabled, yet a health is reported: it counts", disabled, HealthStarting, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			task := &Task{DesiredState: TaskRunning, Status: TaskStatus{State: TaskRunning, Health: tc.health}}
			task.Spec.Container.Healthcheck = tc.hc
			if got := task.HealthChecked(); got != tc.checked {
				t.Errorf("HealthChecked() = %v, want %v", got, tc.checked)
			}
			if got := task.InLoadBalancer(); got != tc.in {
				t.Errorf("InLoadBalancer() = %v, want %v", got, tc.in)
			}
		})
	}
}

func TestInLoadBalancerState(t *testing.T) {
	base := func() *Task {
		return &Task{DesiredState: TaskRunning, Status: TaskStatus{State: TaskRunning, Health: HealthHealthy}}
	}
	if !base().InLoadBalancer() {
		t.Fatal("a healthy running task wanted running is not in the set")
	}
	tests := []struct {
		name string
		mod  func(*Task)
	}{
		{"not running yet", func(t *Task) { t.Status.State = TaskStarting }},
		{"no longer wanted", func(t *Task) { t.DesiredState = TaskShutdown }},
		{"draining", func(t *Task) { t.DrainingSince = time.Unix(1, 0) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			task := base()
			tc.mod(task)
			if task.InLoadBalancer() {
				t.Error("in the load-balancing set, want out")
			}
		})
	}
}

package agent

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gitorc/gitorc/cluster/api"
)

func TestStep(t *testing.T) {
	running := &Observed{TaskID: "t", ContainerID: "t", State: ContainerRunning}
	st := func(s api.TaskState) api.TaskStatus { return api.TaskStatus{State: s} }
	tests := []struct {
		name    string
		cur     api.TaskStatus
		desired api.TaskState
		obs     *Observed
		want    Transition
		wantOK  bool
	}{
		{"assigned moves to preparing", st(api.TaskAssigned), api.TaskRunning, nil,
			Transition{To: api.TaskPreparing, Message: "preparing"}, true},
		{"pending is taken as assigned", st(api.TaskPending), api.TaskRunning, nil,
			Transition{To: api.TaskAssigned, Message: "assigned"}, true},
		{"preparing prepares, rejected on failure", st(api.TaskPreparing), api.TaskRunning, nil,
			Transition{Action: ActPrepare, To: api.TaskStarting, Message: "starting", FailTo: api.TaskRejected}, true},
		{"starting starts, failed on failure", st(api.TaskStarting), api.TaskRunning, nil,
			Transition{Action: ActStart, To: api.TaskRunning, Message: "started", FailTo: api.TaskFailed}, true},
		{"starting a container with a healthcheck runs with its health starting", st(api.TaskStarting), api.TaskRunning,
			&Observed{State: ContainerCreated, Health: api.HealthStarting},
			Transition{Action: ActStart, To: api.TaskRunning, Message: "started", FailTo: api.TaskFailed, Health: api.HealthStarting}, true},
		{"starting a container without a healthcheck", st(api.TaskStarting), api.TaskRunning,
			&Observed{State: ContainerCreated},
			Transition{Action: ActStart, To: api.TaskRunning, Message: "started", FailTo: api.TaskFailed}, true},
		{"starting waits while desired is below running", st(api.TaskStarting), api.TaskPreparing, nil,
			Transition{}, false},
		{"running and healthy-less: nothing to do", st(api.TaskRunning), api.TaskRunning, running,
			Transition{}, false},
		{"running exited 0 completes", st(api.TaskRunning), api.TaskRunning,
			&Observed{State: ContainerExited, ExitCode: 0},
			Transition{To: api.TaskComplete, Message: "finished"}, true},
		{"a job's task runs while desired is complete", st(api.TaskRunning), api.TaskComplete, running,
			Transition{}, false},
		{"a job's task starts while desired is complete", st(api.TaskStarting), api.TaskComplete, nil,
			Transition{Action: ActStart, To: api.TaskRunning, Message: "started", FailTo: api.TaskFailed}, true},
		{"a job's task exited 0 completes", st(api.TaskRunning), api.TaskComplete,
			&Observed{State: ContainerExited, ExitCode: 0},
			Transition{To: api.TaskComplete, Message: "finished"}, true},
		{"running exited 3 fails", st(api.TaskRunning), api.TaskRunning,
			&Observed{State: ContainerExited, ExitCode: 3},
			Transition{To: api.TaskFailed, Message: "exit code 3", Err: "exit code 3", ExitCode: 3}, true},
		{"running container gone fails", st(api.TaskRunning), api.TaskRunning, nil,
			Transition{To: api.TaskFailed, Message: "container not found", Err: "container not found"}, true},
		{"running turns healthy", st(api.TaskRunning), api.TaskRunning,
			&Observed{State: ContainerRunning, Health: api.HealthHealthy},
			Transition{To: api.TaskRunning, Health: api.HealthHealthy}, true},
		{"a running task's warning is reported, the task runs on", api.TaskStatus{State: api.TaskRunning, Message: "started"}, api.TaskRunning,
			&Observed{State: ContainerRunning, Warning: "hold host port 8080/tcp: address already in use"},
			Transition{To: api.TaskRunning, Message: "started", Warning: "hold host port 8080/tcp: address already in use"}, true},
		{"a warning that went is cleared", api.TaskStatus{State: api.TaskRunning, Message: "started", Warning: "port taken"}, api.TaskRunning,
			running, Transition{To: api.TaskRunning, Message: "started"}, true},
		{"unhealthy fails and removes", api.TaskStatus{State: api.TaskRunning, Health: api.HealthHealthy}, api.TaskRunning,
			&Observed{State: ContainerRunning, Health: api.HealthUnhealthy, HealthMessage: "unhealthy: 3 consecutive failures"},
			Transition{Action: ActRemove, To: api.TaskFailed, Message: "unhealthy: 3 consecutive failures",
				Err: "unhealthy: 3 consecutive failures", Health: api.HealthUnhealthy}, true},
		{"shutdown wanted while running", st(api.TaskRunning), api.TaskShutdown, running,
			Transition{Action: ActRemove, To: api.TaskShutdown, Message: "shutdown"}, true},
		{"shutdown wanted before a container exists", st(api.TaskPreparing), api.TaskShutdown, nil,
			Transition{To: api.TaskShutdown, Message: "shutdown"}, true},
		{"terminal with a container removes it", api.TaskStatus{State: api.TaskFailed, Message: "exit code 1", Err: "exit code 1", ExitCode: 1}, api.TaskRunning,
			&Observed{State: ContainerExited, ExitCode: 1},
			Transition{Action: ActRemove, To: api.TaskFailed, Message: "exit code 1", Err: "exit code 1", ExitCode: 1}, true},
		{"terminal without a container: done", st(api.TaskComplete), api.TaskRunning, nil, Transition{}, false},
		{"terminal stays terminal when shutdown is wanted", st(api.TaskFailed), api.TaskShutdown, nil, Transition{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Step(tc.cur, tc.desired, tc.obs)
			if ok != tc.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tc.wantOK)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("transition (-want +got):\n%s", diff)
			}
			if ok && got.To < tc.cur.State {
				t.Errorf("moves backwards: %s → %s", tc.cur.State, got.To)
			}
		})
	}
}

// TestStepNeverMovesBackwards walks every state, desired state and
// observation: no transition goes to an earlier state.
func TestStepNeverMovesBackwards(t *testing.T) {
	obs := []*Observed{nil,
		{State: ContainerCreated}, {State: ContainerRunning}, {State: ContainerExited, ExitCode: 2},
		{State: ContainerRunning, Health: api.HealthUnhealthy}, {State: ContainerRunning, Health: api.HealthHealthy}}
	for s := api.TaskNew; s <= api.TaskRemove; s++ {
		for d := api.TaskNew; d <= api.TaskRemove; d++ {
			for _, o := range obs {
				tr, ok := Step(api.TaskStatus{State: s}, d, o)
				if !ok {
					continue
				}
				if tr.To < s || (tr.FailTo != 0 && tr.FailTo < s) {
					t.Errorf("%s (desired %s, obs %+v) → %s / fail %s", s, d, o, tr.To, tr.FailTo)
				}
			}
		}
	}
}

func TestApply(t *testing.T) {
	now := time.Unix(100, 0)
	cur := api.TaskStatus{State: api.TaskPreparing, ContainerID: "c1"}
	prep := Transition{Action: ActPrepare, To: api.TaskStarting, Message: "starting", FailTo: api.TaskRejected}

	got := Apply(cur, prep, Exit{}, errors.New("pull x: not found"), now)
	want := api.TaskStatus{State: api.TaskRejected, Timestamp: now, Message: "pull x: not found", Err: "pull x: not found", ContainerID: "c1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("failed action (-want +got):\n%s", diff)
	}

	got = Apply(cur, prep, Exit{}, nil, now)
	want = api.TaskStatus{State: api.TaskStarting, Timestamp: now, Message: "starting", ContainerID: "c1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("successful action (-want +got):\n%s", diff)
	}

	stop := Transition{Action: ActRemove, To: api.TaskShutdown, Message: "shutdown"}
	got = Apply(api.TaskStatus{State: api.TaskRunning}, stop, Exit{Stopped: true, Killed: true, ExitCode: 137}, nil, now)
	if got.Message != "killed after the grace period (exit code 137)" || got.ExitCode != 137 {
		t.Errorf("killed: %+v", got)
	}

	retry := Transition{Action: ActRemove, To: api.TaskFailed}
	running := api.TaskStatus{State: api.TaskRunning, Message: "started"}
	if got := Apply(running, retry, Exit{}, errors.New("boom"), now); got != running {
		t.Errorf("a failed removal changed the status: %+v", got)
	}
}

// A health change is a status change: it carries a new time, so the
// managers (which keep only newer reports) take it.
func TestHealthChangeIsNewer(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cur := api.TaskStatus{State: api.TaskRunning, Timestamp: t0, Health: api.HealthStarting}
	next := Apply(cur, Transition{To: api.TaskRunning, Health: api.HealthHealthy}, Exit{}, nil, t0.Add(time.Second))
	if !next.Timestamp.After(cur.Timestamp) || next.Health != api.HealthHealthy {
		t.Errorf("health change: %+v", next)
	}
	same := Apply(next, Transition{To: api.TaskRunning, Health: api.HealthHealthy}, Exit{}, nil, t0.Add(2*time.Second))
	if !same.Timestamp.Equal(next.Timestamp) {
		t.Errorf("no change moved the time: %v -> %v", next.Timestamp, same.Timestamp)
	}
}

package simnode

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/agent"
	"github.com/gitorc/gitorc/cluster/api"
)

type recorder struct {
	mu     sync.Mutex
	states map[string][]api.TaskState
}

func (r *recorder) ReportTaskStatus(_ context.Context, id string, st api.TaskStatus) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states[id] = append(r.states[id], st.State)
	return nil
}

func (r *recorder) last(id string) api.TaskState {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.states[id]
	if len(s) == 0 {
		return api.TaskNew
	}
	return s[len(s)-1]
}

// The real agent drives a task on the simulated executor through every
// state to running, and to shutdown when it is no longer wanted; the
// executor then holds nothing.
func TestAgentRunsTasksOnSimulatedExecutor(t *testing.T) {
	exec := newExecutor()
	rep := &recorder{states: map[string][]api.TaskState{}}
	ag, err := agent.New(agent.Config{Executor: exec, Reporter: rep, Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = ag.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	task := &api.Task{Meta: api.Meta{ID: "t1"}, DesiredState: api.TaskRunning,
		Status: api.TaskStatus{State: api.TaskAssigned}}
	ag.Assign([]agent.Assignment{{Task: task}})
	waitFor(t, "t1 running", func() bool { return rep.last("t1") == api.TaskRunning })
	if n := exec.running(); n != 1 {
		t.Errorf("executor runs %d tasks, want 1", n)
	}
	stop := *task
	stop.DesiredState = api.TaskShutdown
	ag.Assign([]agent.Assignment{{Task: &stop}})
	waitFor(t, "t1 shut down", func() bool { return rep.last("t1") == api.TaskShutdown })
	waitFor(t, "nothing held", func() bool {
		obs, _ := exec.Observe(ctx)
		return len(obs) == 0
	})
	rep.mu.Lock()
	got := rep.states["t1"]
	rep.mu.Unlock()
	for i := 1; i < len(got); i++ {
		if got[i] < got[i-1] {
			t.Errorf("states went backwards: %v", got)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second) // a hang guard
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within the hang guard", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

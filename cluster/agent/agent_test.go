package agent

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// stuckExecutor runs one container whose stop its shim never acknowledges.
type stuckExecutor struct {
	mu      sync.Mutex
	removes int
}

var errStuck = errors.New("stop: stop not acknowledged: signal terminated by the shim within 10s")

func (*stuckExecutor) Prepare(context.Context, *api.Task, Files) error { return nil }
func (*stuckExecutor) Start(context.Context, string) error             { return nil }
func (s *stuckExecutor) Remove(context.Context, string) (Exit, error) {
	s.mu.Lock()
	s.removes++
	s.mu.Unlock()
	return Exit{}, errStuck
}
func (*stuckExecutor) Observe(context.Context) ([]Observed, error) {
	return []Observed{{TaskID: "t1", ContainerID: "t1", State: ContainerRunning}}, nil
}

type chanReporter chan api.TaskStatus

func (c chanReporter) ReportTaskStatus(_ context.Context, _ string, st api.TaskStatus) error {
	c <- st
	return nil
}

// A stop the executor cannot get acknowledged reaches the managers on the
// task's status (its state stays), and is retried.
func TestStopNotAcknowledgedIsReported(t *testing.T) {
	ex := &stuckExecutor{}
	rep := make(chanReporter, 16)
	a, err := New(Config{Executor: ex, Reporter: rep, Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	a.Assign([]Assignment{{Task: &api.Task{Meta: api.Meta{ID: "t1"}, DesiredState: api.TaskShutdown,
		Status: api.TaskStatus{State: api.TaskRunning, Message: "started"}}}})
	var st api.TaskStatus
	select {
	case st = <-rep:
	case <-time.After(10 * time.Second):
		t.Fatal("no status reported for a stop that fails")
	}
	if st.State != api.TaskRunning || !strings.HasPrefix(st.Message, "stopping: ") || !strings.Contains(st.Message, errStuck.Error()) {
		t.Fatalf("status = %s %q, want running with the stop's error", st.State, st.Message)
	}
	// Retried, and reported once while the error stays the same.
	for {
		ex.mu.Lock()
		n := ex.removes
		ex.mu.Unlock()
		if n >= 3 {
			break
		}
		select {
		case st := <-rep:
			t.Fatalf("reported again: %s %q", st.State, st.Message)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Update changes the held set as Assign would the whole: a changed task's
// status never moves back, a removed task leaves (its log to remove), the
// rest stays.
func TestUpdateChangesPartOfTheSet(t *testing.T) {
	a, err := New(Config{Executor: &stuckExecutor{}})
	if err != nil {
		t.Fatal(err)
	}
	running := api.TaskStatus{State: api.TaskRunning, Message: "started"}
	a.Assign([]Assignment{{Task: &api.Task{Meta: api.Meta{ID: "t1"}, DesiredState: api.TaskRunning, Status: running}},
		{Task: &api.Task{Meta: api.Meta{ID: "t2"}, DesiredState: api.TaskRunning, Status: running}}})
	a.Update([]Assignment{{Task: &api.Task{Meta: api.Meta{ID: "t1"}, DesiredState: api.TaskShutdown,
		Status: api.TaskStatus{State: api.TaskAssigned}}}, {Task: &api.Task{Meta: api.Meta{ID: "t3"}, DesiredState: api.TaskRunning}}},
		[]string{"t2"})
	if st, ok := a.Status("t1"); !ok || st != running {
		t.Errorf("t1 status %+v (held %v), want it kept at running", st, ok)
	}
	if got := a.tasks["t1"].task.DesiredState; got != api.TaskShutdown {
		t.Errorf("t1 desired %s, want shutdown (the update)", got)
	}
	if _, ok := a.Status("t2"); ok {
		t.Error("t2 still held after its removal")
	}
	if _, ok := a.forgot["t2"]; !ok {
		t.Error("t2's log not marked for removal")
	}
	if _, ok := a.Status("t3"); !ok {
		t.Error("t3 not held after it was added")
	}
}

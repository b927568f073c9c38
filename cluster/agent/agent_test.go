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

// stillClock is a clock whose timers never fire: an agent on it observes
// only when something wakes it.
type stillClock struct{}

func (stillClock) Now() time.Time               { return time.Unix(1e9, 0) }
func (stillClock) NewTimer(time.Duration) Timer { return stillTimer{} }
func (stillTimer) C() <-chan time.Time          { return nil }
func (stillTimer) Stop() bool                   { return true }

type stillTimer struct{}

// notifyingExecutor runs one container, t1, and signals Changes when
// told to.
type notifyingExecutor struct {
	changes chan struct{}
	mu      sync.Mutex
	exited  bool
	calls   int // Observe calls
}

func (*notifyingExecutor) Prepare(context.Context, *api.Task, Files) error { return nil }
func (*notifyingExecutor) Start(context.Context, string) error             { return nil }
func (*notifyingExecutor) Remove(context.Context, string) (Exit, error)    { return Exit{}, nil }
func (n *notifyingExecutor) Changes() <-chan struct{}                      { return n.changes }
func (n *notifyingExecutor) Observe(context.Context) ([]Observed, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls++
	o := Observed{TaskID: "t1", ContainerID: "t1", State: ContainerRunning}
	if n.exited {
		o.State, o.ExitCode = ContainerExited, 137
	}
	return []Observed{o}, nil
}

func (n *notifyingExecutor) observes() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.calls
}

// A container that exits is reported as soon as the executor signals a
// change, not at the agent's next interval: with a clock whose timers
// never fire, the failure is reported only through the signal.
func TestExitReportedOnChangeSignal(t *testing.T) {
	ex := &notifyingExecutor{changes: make(chan struct{}, 1)}
	rep := make(chanReporter, 16)
	a, err := New(Config{Executor: ex, Reporter: rep, Clock: stillClock{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitObserves := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for ex.observes() < n {
			if time.Now().After(deadline) {
				t.Fatalf("the agent observed %d times, want %d", ex.observes(), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitObserves(1) // Run's first pass, before any task
	before := ex.observes()
	a.Assign([]Assignment{{Task: &api.Task{Meta: api.Meta{ID: "t1"}, DesiredState: api.TaskRunning,
		Status: api.TaskStatus{State: api.TaskRunning, Message: "started"}}}})
	waitObserves(before + 1) // the pass Assign woke has seen the task running
	ex.mu.Lock()
	ex.exited = true
	ex.mu.Unlock()
	ex.changes <- struct{}{}
	select {
	case st := <-rep:
		if st.State != api.TaskFailed || st.ExitCode != 137 {
			t.Fatalf("status = %s (exit code %d), want failed with exit code 137", st.State, st.ExitCode)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the exit was not reported after the change signal")
	}
}

// An assignment set that changes nothing the agent acts on does not wake
// it; a new desired state, a task more or less, or a status ahead of the
// agent's does.
func TestAssignWakesOnlyOnChange(t *testing.T) {
	a, err := New(Config{Executor: &stuckExecutor{}, Clock: stillClock{}})
	if err != nil {
		t.Fatal(err)
	}
	woken := func() bool {
		select {
		case <-a.wake:
			return true
		default:
			return false
		}
	}
	task := func(id string, desired, state api.TaskState) Assignment {
		return Assignment{Task: &api.Task{Meta: api.Meta{ID: id}, DesiredState: desired, Status: api.TaskStatus{State: state}}}
	}
	steps := []struct {
		name string
		set  []Assignment
		want bool
	}{
		{"first set", []Assignment{task("t1", api.TaskRunning, api.TaskRunning)}, true},
		{"the same again", []Assignment{task("t1", api.TaskRunning, api.TaskRunning)}, false},
		{"desired state shutdown", []Assignment{task("t1", api.TaskShutdown, api.TaskRunning)}, true},
		{"a task more", []Assignment{task("t1", api.TaskShutdown, api.TaskRunning), task("t2", api.TaskRunning, api.TaskAssigned)}, true},
		{"a status behind the agent's", []Assignment{task("t1", api.TaskShutdown, api.TaskAssigned), task("t2", api.TaskRunning, api.TaskAssigned)}, false},
		{"a status ahead", []Assignment{task("t1", api.TaskShutdown, api.TaskComplete), task("t2", api.TaskRunning, api.TaskAssigned)}, true},
		{"a task less", []Assignment{task("t2", api.TaskRunning, api.TaskAssigned)}, true},
	}
	for _, s := range steps {
		a.Assign(s.set)
		if got := woken(); got != s.want {
			t.Errorf("%s: woken = %v, want %v", s.name, got, s.want)
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

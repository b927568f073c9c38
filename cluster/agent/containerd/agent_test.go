package containerd_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/agent"
	"github.com/gitorc/gitorc/cluster/agent/containerd"
	"github.com/gitorc/gitorc/cluster/agent/containerd/imagetest"
	"github.com/gitorc/gitorc/cluster/api"
)

// statusLog records what an agent reports.
type statusLog struct {
	mu   sync.Mutex
	seen map[string][]api.TaskStatus
}

func (l *statusLog) ReportTaskStatus(_ context.Context, id string, st api.TaskStatus) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[string][]api.TaskStatus{}
	}
	l.seen[id] = append(l.seen[id], st)
	return nil
}

func (l *statusLog) states(id string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, st := range l.seen[id] {
		out = append(out, st.State.String())
	}
	return out
}

// startAgent runs an agent on e until the test ends (or stop is called).
func startAgent(t *testing.T, e agent.Executor, rep agent.Reporter) (*agent.Agent, func()) {
	t.Helper()
	a, err := agent.New(agent.Config{Executor: e, Reporter: rep, Logger: testLogger(), Interval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = a.Run(ctx)
	}()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return a, stop
}

func waitState(t *testing.T, a *agent.Agent, id string, want func(api.TaskState) bool, what string) api.TaskStatus {
	t.Helper()
	var st api.TaskStatus
	waitFor(t, 60*time.Second, func() (bool, string) {
		st, _ = a.Status(id)
		return want(st.State), fmt.Sprintf("task %s is %s (%s), want %s", id, st.State, st.Message, what)
	})
	return st
}

func isTerminal(s api.TaskState) bool { return s.Terminal() }

func TestAgentBadInputs_Root(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name      string
		task      *api.Task
		wantState api.TaskState
		wantMsg   string
	}{{
		name:      "missing image",
		task:      newTask(t, env.reg.Addr+"/test/web:9"),
		wantState: api.TaskRejected,
		wantMsg:   "pull " + env.reg.Addr + "/test/web:9: not found",
	}, {
		name:      "unreachable registry",
		task:      newTask(t, "127.0.0.1:9/test/web:1"),
		wantState: api.TaskRejected,
		wantMsg:   "pull 127.0.0.1:9/test/web:1: dial tcp 127.0.0.1:9: connect: connection refused",
	}, {
		name:      "bad command",
		task:      newTask(t, env.image, withCommand("/nope")),
		wantState: api.TaskFailed,
		wantMsg:   `start: exec: "/nope": stat /nope: no such file or directory`,
	}, {
		name:      "exits at once",
		task:      newTask(t, env.image, withCommand("false")),
		wantState: api.TaskFailed,
		wantMsg:   "exit code 1",
	}}
	a, _ := startAgent(t, env.exec, nil)
	var as []agent.Assignment
	for _, tc := range tests {
		as = append(as, agent.Assignment{Task: tc.task})
	}
	a.Assign(as)
	for _, tc := range tests {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			st := waitState(t, a, tc.task.ID, isTerminal, "terminal")
			if st.State != tc.wantState || st.Message != tc.wantMsg || st.Err != tc.wantMsg {
				t.Errorf("status = %s %q (err %q), want %s %q", st.State, st.Message, st.Err, tc.wantState, tc.wantMsg)
			}
			// A finished task holds nothing on the node.
			waitGone(t, env.exec, nodeDir(), tc.task.ID)
		})
	}
}

func TestAgentLifecycle_Root(t *testing.T) {
	requireRoot(t)
	rep := &statusLog{}
	a, _ := startAgent(t, env.exec, rep)
	task := newTask(t, env.image)
	a.Assign([]agent.Assignment{{Task: task}})
	st := waitState(t, a, task.ID, func(s api.TaskState) bool { return s == api.TaskRunning }, "running")
	if st.ContainerID == "" {
		waitFor(t, 10*time.Second, func() (bool, string) {
			st, _ = a.Status(task.ID)
			return st.ContainerID != "", "no container id in status"
		})
	}
	if st.ContainerID != task.ID {
		t.Errorf("container id = %q, want %q", st.ContainerID, task.ID)
	}
	// The orchestrator no longer wants it.
	stopping := *task
	stopping.DesiredState = api.TaskShutdown
	a.Assign([]agent.Assignment{{Task: &stopping}})
	st = waitState(t, a, task.ID, isTerminal, "terminal")
	if st.State != api.TaskShutdown || !strings.HasPrefix(st.Message, "killed after the grace period (exit code 137)") {
		t.Errorf("status = %s %q, want shutdown after a kill (sleep ignores SIGTERM as PID 1)", st.State, st.Message)
	}
	want := []string{"preparing", "starting", "running", "shutdown"}
	if got := rep.states(task.ID); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("reported states %v, want %v", got, want)
	}
	waitGone(t, env.exec, nodeDir(), task.ID)
	// Unassigned: the log goes too.
	a.Assign(nil)
	waitFor(t, 10*time.Second, func() (bool, string) {
		m, err := filepath.Glob(filepath.Join(nodeDir(), "logs", task.ID+".log*"))
		return err == nil && len(m) == 0, fmt.Sprintf("logs left: %v", m)
	})
}

// TestAgentRestartAdopts_Root stops an agent, its executor and its own
// containerd while 3 tasks run, starts new ones on the same data dir, and
// checks that the same 3 containers (same processes) are adopted.
func TestAgentRestartAdopts_Root(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	dir := filepath.Join(env.dir, "restart")
	e1, stopE1, err := startExecutor(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer stopE1()
	rep1 := &statusLog{}
	a1, stopA1 := startAgent(t, e1, rep1)
	var tasks []*api.Task
	var as []agent.Assignment
	for i := 0; i < 3; i++ {
		task := newTask(t, env.image)
		tasks = append(tasks, task)
		as = append(as, agent.Assignment{Task: task})
	}
	a1.Assign(as)
	last := map[string]api.TaskStatus{}
	for _, task := range tasks {
		last[task.ID] = waitState(t, a1, task.ID, func(s api.TaskState) bool { return s == api.TaskRunning }, "running")
	}
	pids1 := taskPIDs(t, e1)
	stopA1()
	stopE1()

	e2, stopE2, err := startExecutor(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer stopE2()
	defer func() {
		if err := removeAll(ctx, e2); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}()
	if pids2 := taskPIDs(t, e2); fmt.Sprint(pids2) != fmt.Sprint(pids1) {
		t.Fatalf("after containerd restart, processes %v, want %v", pids2, pids1)
	}
	// The managers know the first task as running and the second as
	// running; the third's last report (starting) was lost in the crash.
	rep2 := &statusLog{}
	a2, _ := startAgent(t, e2, rep2)
	as = nil
	for i, task := range tasks {
		cp := *task
		cp.Status = last[task.ID]
		if i == 2 {
			cp.Status = api.TaskStatus{State: api.TaskStarting}
		}
		as = append(as, agent.Assignment{Task: &cp})
	}
	a2.Assign(as)
	waitState(t, a2, tasks[2].ID, func(s api.TaskState) bool { return s == api.TaskRunning }, "running")
	for _, task := range tasks {
		if st, _ := a2.Status(task.ID); st.State != api.TaskRunning {
			t.Errorf("task %s is %s after restart, want running", task.ID, st.State)
		}
	}
	if pids2 := taskPIDs(t, e2); fmt.Sprint(pids2) != fmt.Sprint(pids1) {
		t.Errorf("after agent restart, processes %v, want the same %v (no duplicates)", pids2, pids1)
	}
	if got := rep2.states(tasks[0].ID); len(got) != 0 {
		t.Errorf("adopted running task reported %v, want nothing new", got)
	}

	// Reaping: the first task is no longer assigned to this node.
	a2.Assign(as[1:])
	waitFor(t, 30*time.Second, func() (bool, string) {
		return observed(t, e2, tasks[0].ID) == nil, "unassigned container not reaped"
	})
	pids3 := taskPIDs(t, e2)
	if len(pids3) != 2 || pids3[tasks[1].ID] != pids1[tasks[1].ID] || pids3[tasks[2].ID] != pids1[tasks[2].ID] {
		t.Errorf("after reaping, processes %v, want the other two of %v", pids3, pids1)
	}
}

// taskPIDs maps the task ID of every running container to its process ID.
func taskPIDs(t *testing.T, e *containerd.Executor) map[string]uint32 {
	t.Helper()
	ctx := namespaced(context.Background())
	obs, err := e.Observe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint32{}
	for _, o := range obs {
		c, err := e.Client().LoadContainer(ctx, o.ContainerID)
		if err != nil {
			t.Fatal(err)
		}
		tk, err := c.Task(ctx, nil)
		if err != nil {
			t.Fatalf("task of %s: %v", o.ContainerID, err)
		}
		out[o.TaskID] = tk.Pid()
	}
	return out
}

// TestAgentImageHealthcheck_Root: a task whose spec has no healthcheck,
// from an image with a HEALTHCHECK, is reported running with its health
// starting from its first running report on (the managers gate on the
// reported health: they must never see it running without one), then
// healthy.
func TestAgentImageHealthcheck_Root(t *testing.T) {
	requireRoot(t)
	image := pushWithHealthcheck(t, "test/agent-image-hc", imagetest.Healthcheck{
		Test:          []string{"CMD-SHELL", "test -f /ctl/healthy"},
		Interval:      100 * time.Millisecond,
		StartPeriod:   time.Hour,
		StartInterval: 100 * time.Millisecond,
	})
	ctl := t.TempDir()
	task := newTask(t, image, func(t *api.Task) {
		t.Spec.Container.Mounts = []api.Mount{{Type: api.MountBind, Source: ctl, Target: "/ctl", ReadOnly: true}}
	})
	rep := &statusLog{}
	a, _ := startAgent(t, env.exec, rep)
	a.Assign([]agent.Assignment{{Task: task}})
	defer func() {
		stopping := *task
		stopping.DesiredState = api.TaskShutdown
		a.Assign([]agent.Assignment{{Task: &stopping}})
		waitState(t, a, task.ID, isTerminal, "terminal")
		waitGone(t, env.exec, nodeDir(), task.ID)
	}()
	waitState(t, a, task.ID, func(s api.TaskState) bool { return s == api.TaskRunning }, "running")
	if err := os.WriteFile(filepath.Join(ctl, "healthy"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() (bool, string) {
		st, _ := a.Status(task.ID)
		return st.Health == api.HealthHealthy, fmt.Sprintf("task %s, health %s", st.State, st.Health)
	})
	var got []string
	rep.mu.Lock()
	for _, st := range rep.seen[task.ID] {
		if st.State == api.TaskRunning {
			got = append(got, st.Health.String())
		}
	}
	rep.mu.Unlock()
	if want := []string{"starting", "healthy"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("health in the running reports %v, want %v", got, want)
	}
}

// progressRuns numbers the runs of TestAgentPullProgress_Root in this
// process: each pushes a tag of its own, which the node lacks (the tag an
// earlier run pulled is on the node already).
var progressRuns atomic.Int32

// A task whose image the node lacks reports the pull's progress while it
// prepares: a preparing status whose message says what is pulled.
func TestAgentPullProgress_Root(t *testing.T) {
	requireRoot(t)
	ref, err := env.reg.Push(context.Background(), env.sleepy, "test/agent-progress", fmt.Sprint(progressRuns.Add(1)))
	if err != nil {
		t.Fatal(err)
	}
	task := newTask(t, ref)
	rep := &statusLog{}
	a, _ := startAgent(t, env.exec, rep)
	a.Assign([]agent.Assignment{{Task: task}})
	defer func() {
		stopping := *task
		stopping.DesiredState = api.TaskShutdown
		a.Assign([]agent.Assignment{{Task: &stopping}})
		waitState(t, a, task.ID, isTerminal, "terminal")
		waitGone(t, env.exec, nodeDir(), task.ID)
	}()
	waitState(t, a, task.ID, func(s api.TaskState) bool { return s == api.TaskRunning }, "running")
	var pulling []string
	rep.mu.Lock()
	for _, st := range rep.seen[task.ID] {
		if st.State == api.TaskPreparing && strings.HasPrefix(st.Message, "pulling "+ref+": ") {
			pulling = append(pulling, st.Message)
		}
	}
	rep.mu.Unlock()
	if len(pulling) == 0 || !strings.Contains(pulling[0], " blobs, ") || !strings.Contains(pulling[0], " MiB of ") {
		t.Errorf("preparing reports with the pull's progress: %q", pulling)
	}
}

package containerd_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/agent"
	"github.com/gitorc/gitorc/cluster/agent/containerd"
	"github.com/gitorc/gitorc/cluster/api"
)

// trapTERM exits 0 on SIGTERM at once, as the web image does.
var trapTERM = withCommand("sh", "-c", "trap 'exit 0' TERM INT; sleep 3600 & wait")

// massStop runs n tasks of one service through an agent on e, then stops
// them all at once (a stack rm) and returns the tasks that were not
// reported "stopped (exit code 0)", i.e. that did not end by their
// SIGTERM.
func massStop(t *testing.T, e *containerd.Executor, dataDir string, n int) []string {
	t.Helper()
	a, _ := startAgent(t, e, nil)
	tasks := make([]*api.Task, n)
	as := make([]agent.Assignment, n)
	for i := range tasks {
		tasks[i] = newTask(t, env.image, trapTERM, func(t *api.Task) {
			t.ServiceID = "svc-massstop"
			// Long enough that a stop that waited out the grace period
			// is told from one that did not by the kill.
			t.Spec.Container.StopGracePeriod = api.Duration(10 * time.Second)
		})
		as[i] = agent.Assignment{Task: tasks[i]}
	}
	t.Cleanup(func() {
		for _, task := range tasks {
			if _, err := e.Remove(context.Background(), task.ID); err != nil {
				t.Errorf("cleanup: remove %s: %v", task.ID, err)
			}
		}
	})
	a.Assign(as)
	for _, task := range tasks {
		waitState(t, a, task.ID, func(s api.TaskState) bool { return s >= api.TaskRunning }, "running")
	}
	for i, task := range tasks {
		stopping := *task
		stopping.DesiredState = api.TaskShutdown
		as[i] = agent.Assignment{Task: &stopping}
	}
	a.Assign(as)
	var bad []string
	for _, task := range tasks {
		st := waitState(t, a, task.ID, isTerminal, "terminal")
		if st.State != api.TaskShutdown || st.Message != "stopped (exit code 0)" {
			bad = append(bad, fmt.Sprintf("%s: %s %q", task.ID, st.State, st.Message))
		}
	}
	for _, task := range tasks {
		waitGone(t, e, dataDir, task.ID)
	}
	return bad
}

// A stack rm of a service with many replicas on one node: the agent stops
// all of them at once, against the service's one shared shim. Each exits
// on SIGTERM at once, so each must be reported stopped with exit code 0,
// none killed after its grace period.
func TestMassStopOfAGroup_Root(t *testing.T) {
	requireRoot(t)
	const n = 40
	if bad := massStop(t, env.exec, nodeDir(), n); len(bad) > 0 {
		t.Errorf("%d of %d tasks did not end by their SIGTERM:\n%s", len(bad), n, strings.Join(bad, "\n"))
	}
}

// slowRuntime writes a wrapper of runc whose every command but create and
// start takes delay longer (after runc did its work), as runc's commands
// do on a loaded node, and returns its path.
func slowRuntime(t *testing.T, dir string, delay time.Duration) string {
	t.Helper()
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("needs runc")
	}
	p := filepath.Join(dir, "slow-runc")
	script := fmt.Sprintf(`#!/bin/sh
for a in "$@"; do
  case "$a" in
  kill|state|delete) %[1]q "$@"; rc=$?; sleep %[2]g; exit $rc ;;
  create|start|run|exec|features|--version|-v) break ;;
  esac
done
exec %[1]q "$@"
`, runc, delay.Seconds())
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// The stall of the issue (a stack rm of 50 stalled for 57 s; 27 tasks
// killed after their grace period although they exit on SIGTERM; "get
// state … context deadline exceeded" against the group's shim) on demand:
// the group's runc commands take a second each, as on the loaded node.
// Every task must still end by its SIGTERM.
func TestMassStopSlowRuntime_Root(t *testing.T) {
	requireRoot(t)
	const n = 30
	dir := netTestDir(t)
	e, err := containerd.New(context.Background(), containerd.Config{
		DataDir:            dir,
		Address:            env.exec.Address(),
		InsecureRegistries: []string{env.reg.Addr},
		Runtime:            slowRuntime(t, dir, time.Second),
		Logger:             testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	if bad := massStop(t, e, dir, n); len(bad) > 0 {
		t.Errorf("%d of %d tasks did not end by their SIGTERM:\n%s", len(bad), n, strings.Join(bad, "\n"))
	}
}

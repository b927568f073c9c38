package containerd_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/agent"
)

// TestChangesOnExit_Root: a task's process that is killed signals
// Changes (from containerd's exit event), so that the agent observes it
// at once rather than at its next interval.
func TestChangesOnExit_Root(t *testing.T) {
	requireRoot(t)
	task := newTask(t, env.image, withCommand("sleep", "3600"))
	runTask(t, task, agent.Files{})
	waitFor(t, 30*time.Second, func() (bool, string) {
		o := observed(t, env.exec, task.ID)
		return o != nil && o.State == agent.ContainerRunning, "not running yet"
	})
	pid := taskPIDs(t, env.exec)[task.ID]
	if pid == 0 {
		t.Fatal("no pid for the task")
	}
	// Signals of earlier exits (other tests') are taken first.
	for drained := false; !drained; {
		select {
		case <-env.exec.Changes():
		default:
			drained = true
		}
	}
	if err := syscall.Kill(int(pid), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(30 * time.Second)
	for {
		select {
		case <-env.exec.Changes():
		case <-deadline:
			t.Fatal("no change signalled for the killed task")
		}
		if o := observed(t, env.exec, task.ID); o != nil && o.State == agent.ContainerExited {
			if o.ExitCode != 137 {
				t.Errorf("exit code = %d, want 137", o.ExitCode)
			}
			return
		}
	}
}

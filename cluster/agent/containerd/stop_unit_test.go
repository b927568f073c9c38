package containerd

import (
	"context"
	"os"
	"slices"
	"testing"

	tasktypes "github.com/containerd/containerd/api/types/task"

	"github.com/gitorc/gitorc/cluster/agent"
)

func TestProcessState(t *testing.T) {
	for s, want := range map[tasktypes.Status]agent.ContainerState{
		tasktypes.Status_CREATED: agent.ContainerCreated,
		tasktypes.Status_RUNNING: agent.ContainerRunning,
		tasktypes.Status_PAUSED:  agent.ContainerRunning,
		tasktypes.Status_PAUSING: agent.ContainerRunning,
		tasktypes.Status_STOPPED: agent.ContainerExited,
		// A busy shim's state query timed out: not a container that
		// was never started.
		tasktypes.Status_UNKNOWN: agent.ContainerRunning,
	} {
		if got := processState(s); got != want {
			t.Errorf("processState(%s) = %s, want %s", s, got, want)
		}
	}
}

// The test process is not its PID namespace's init: a pid that is not a
// container's is never signalled directly.
func TestIsNamespaceInit(t *testing.T) {
	if isNamespaceInit(os.Getpid()) {
		t.Errorf("pid %d counted as a namespace's init", os.Getpid())
	}
	if isNamespaceInit(-1) {
		t.Error("a pid that does not exist counted as a namespace's init")
	}
}

func TestChooseRuntime(t *testing.T) {
	for _, tc := range []struct {
		works []string
		want  string
	}{
		{works: []string{"crun", "runc"}, want: "crun"},
		{works: []string{"runc"}, want: "runc"}, // crun refuses hybrid cgroups (Debian's 1.8.1)
		{works: nil, want: "runc"},              // runc's errors come at the first start, where the task reports them
		{works: []string{"crun"}, want: "crun"},
	} {
		got := chooseRuntime(func(bin string) bool { return slices.Contains(tc.works, bin) })
		if got != tc.want {
			t.Errorf("works %v: chose %s, want %s", tc.works, got, tc.want)
		}
	}
}

// The probe runs a real container: runc works on this project's machines;
// crun is reported as it is (Debian's 1.8.1 refuses hybrid cgroups).
func TestProbeRuntime_Root(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (runs a container)")
	}
	if _, err := os.Stat(probeBusybox); err != nil {
		t.Skip("needs " + probeBusybox + " (busybox-static)")
	}
	if err := probeRuntime(context.Background(), "runc"); err != nil {
		t.Errorf("runc probe: %v", err)
	}
	if err := probeRuntime(context.Background(), "no-such-runtime"); err == nil {
		t.Error("a runtime that does not exist passed the probe")
	}
	t.Logf("crun probe: %v", probeRuntime(context.Background(), "crun"))
}

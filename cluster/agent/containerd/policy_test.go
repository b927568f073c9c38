package containerd_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitorc/gitorc/cluster/agent"
	"github.com/gitorc/gitorc/cluster/agent/containerd"
	"github.com/gitorc/gitorc/cluster/api"
)

// The shared executor's policy allows binds below os.TempDir() only
// (startExecutor): everything else a task needs beyond the defaults is
// rejected at prepare, whatever the managers sent, and nothing of the
// task is left on the node.
func TestPolicyRejectsTask_Root(t *testing.T) {
	requireRoot(t)
	escape := filepath.Join(t.TempDir(), "root")
	if err := os.Symlink("/", escape); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		mod  func(*api.Task)
		want string
	}{
		{"docker socket", func(t *api.Task) {
			t.Spec.Container.Mounts = []api.Mount{{Type: api.MountBind, Source: "/var/run", Target: "/host-run"}}
		}, "task.container.mounts[0]: bind of /var/run: not allowed by this node's policy (gitorc daemon --allow-bind)"},
		{"symlink out of an allowed path", func(t *api.Task) {
			t.Spec.Container.Mounts = []api.Mount{{Type: api.MountBind, Source: escape, Target: "/host"}}
		}, "task.container.mounts[0]: bind of " + escape + " resolves to /: not allowed by this node's policy (gitorc daemon --allow-bind)"},
		{"volume on a host path", func(t *api.Task) {
			t.Spec.Container.Mounts = []api.Mount{{Type: api.MountVolume, Source: "etc", Target: "/e",
				VolumeOptions: map[string]string{"type": "none", "o": "bind", "device": "/etc"}}}
		}, "task.container.mounts[0]: volume etc on host path /etc: not allowed by this node's policy (gitorc daemon --allow-bind)"},
		{"capability", func(t *api.Task) { t.Spec.Container.CapAdd = []string{"CAP_SYS_ADMIN"} },
			"task.container.cap_add[0]: capability SYS_ADMIN: not allowed by this node's policy (gitorc daemon --allow-cap)"},
		{"host sysctl", func(t *api.Task) { t.Spec.Container.Sysctls = map[string]string{"kernel.panic": "1"} },
			"task.container.sysctls[kernel.panic]: sysctl kernel.panic: not allowed by this node's policy (gitorc daemon --allow-sysctl)"},
		{"privileged", func(t *api.Task) { t.Spec.Container.Privileged = true },
			"task.container.privileged: privileged: not allowed by this node's policy (gitorc daemon --allow-privileged)"},
		{"unconfined", func(t *api.Task) { t.Spec.Container.SeccompUnconfined = true },
			"task.container.seccomp: seccomp=unconfined: not allowed by this node's policy (gitorc daemon --allow-unconfined)"},
	}
	for _, tc := range tests {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			task := newTask(t, env.image, tc.mod)
			err := env.exec.Prepare(context.Background(), task, agent.Files{})
			if !errors.Is(err, containerd.ErrNotAllowed) || err.Error() != tc.want {
				t.Errorf("prepare: %v\nwant %s", err, tc.want)
			}
			assertGone(t, env.exec, nodeDir(), task.ID)
		})
	}

	// Through the agent, the task is rejected with that message.
	task := newTask(t, env.image, tests[0].mod)
	a, _ := startAgent(t, env.exec, nil)
	a.Assign([]agent.Assignment{{Task: task}})
	st := waitState(t, a, task.ID, isTerminal, "terminal")
	if st.State != api.TaskRejected || st.Err != tests[0].want {
		t.Errorf("status = %s %q, want rejected %q", st.State, st.Err, tests[0].want)
	}
	waitGone(t, env.exec, nodeDir(), task.ID)
}

// A bind below an allowed path runs.
func TestPolicyAllowsBind_Root(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "marker"), []byte("allowed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	task := newTask(t, env.image, withCommand("cat", "/m/marker"), func(t *api.Task) {
		t.Spec.Container.Mounts = []api.Mount{{Type: api.MountBind, Source: dir, Target: "/m", ReadOnly: true}}
	})
	runTask(t, task, agent.Files{})
	if code := waitExited(t, env.exec, task.ID); code != 0 {
		t.Errorf("exit code %d, log %q", code, logs(t, env.exec, task.ID))
	}
	if got := logs(t, env.exec, task.ID); !strings.Contains(got, "allowed") {
		t.Errorf("log = %q", got)
	}
}

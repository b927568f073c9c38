package containerd_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitorc/gitorc/cluster/agent"
	"github.com/gitorc/gitorc/cluster/agent/containerd"
	"github.com/gitorc/gitorc/cluster/api"
)

// seccompMode is the Seccomp line of a task's /proc/self/status.
func seccompMode(t *testing.T, e *containerd.Executor, mods ...func(*api.Task)) string {
	t.Helper()
	task := newTask(t, env.image, append([]func(*api.Task){withCommand("grep", "Seccomp:", "/proc/self/status")}, mods...)...)
	if err := e.Prepare(context.Background(), task, agent.Files{}); err != nil {
		t.Fatalf("prepare: %v", err)
	}
	t.Cleanup(func() {
		if _, err := e.Remove(context.Background(), task.ID); err != nil {
			t.Errorf("remove: %v", err)
		}
	})
	if err := e.Start(context.Background(), task.ID); err != nil {
		t.Fatalf("start: %v", err)
	}
	if code := waitExited(t, e, task.ID); code != 0 {
		t.Fatalf("exit code %d, log %q", code, logs(t, e, task.ID))
	}
	return strings.Join(strings.Fields(logs(t, e, task.ID)), " ")
}

// Every container runs under containerd's default seccomp profile
// (mode 2, filter); seccomp=unconfined, on a node that allows it, runs
// without (mode 0).
func TestSeccompDefaultProfile_Root(t *testing.T) {
	requireRoot(t)
	if got := seccompMode(t, env.exec); !strings.Contains(got, "Seccomp: 2") {
		t.Errorf("default container: %q, want Seccomp: 2", got)
	}

	// A second executor on the same containerd, whose node allows
	// unconfined and privileged containers.
	e, err := containerd.New(context.Background(), containerd.Config{DataDir: filepath.Join(t.TempDir(), "exec"),
		Address: env.exec.Address(), InsecureRegistries: []string{env.reg.Addr}, Logger: testLogger(),
		Policy: api.NodePolicy{AllowUnconfined: true, AllowPrivileged: true}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = e.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; _ = e.Close() }) // after the task's removal
	if got := seccompMode(t, e, func(t *api.Task) { t.Spec.Container.SeccompUnconfined = true }); !strings.Contains(got, "Seccomp: 0") {
		t.Errorf("unconfined container: %q, want Seccomp: 0", got)
	}
	// Privileged: no seccomp filter, every capability this host's
	// bounding set has (the test runs as root with it).
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	var all string
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "CapBnd:"); ok {
			all = "CapEff: " + strings.TrimSpace(v)
		}
	}
	priv := func(t *api.Task) {
		t.Spec.Container.Privileged = true
		t.Spec.Container.Command = []string{"grep", "-E", "^(Seccomp|CapEff):", "/proc/self/status"}
	}
	if got := seccompMode(t, e, priv); !strings.Contains(got, "Seccomp: 0") || !strings.Contains(got, all) {
		t.Errorf("privileged container: %q, want Seccomp: 0 and %s", got, all)
	}
	t.Logf("AppArmor on this host: %v (/sys/module/apparmor/parameters/enabled and apparmor_parser)", containerd.HostAppArmor())
}

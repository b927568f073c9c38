package containerd_test

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/gitorc/gitorc/cluster/agent"
	"github.com/gitorc/gitorc/cluster/agent/containerd"
	"github.com/gitorc/gitorc/cluster/agent/containerd/imagetest"
	"github.com/gitorc/gitorc/cluster/api"
)

func nodeDir() string { return env.dir + "/node" }

// runTask prepares and starts a task on the shared executor and registers its
// removal.
func runTask(t *testing.T, task *api.Task, files agent.Files) {
	t.Helper()
	ctx := context.Background()
	if err := env.exec.Prepare(ctx, task, files); err != nil {
		t.Fatalf("prepare: %v", err)
	}
	t.Cleanup(func() {
		if _, err := env.exec.Remove(context.Background(), task.ID); err != nil {
			t.Errorf("remove: %v", err)
		}
	})
	if err := env.exec.Start(ctx, task.ID); err != nil {
		t.Fatalf("start: %v", err)
	}
}

func TestPullRunExitCode_Root(t *testing.T) {
	requireRoot(t)
	task := newTask(t, env.image, withCommand("sh", "-c", "echo hello from $(hostname); exit 3"))
	runTask(t, task, agent.Files{})
	if code := waitExited(t, env.exec, task.ID); code != 3 {
		t.Errorf("exit code = %d, want 3", code)
	}
	if got := logs(t, env.exec, task.ID); !strings.Contains(got, "hello from "+task.ID[:12]) {
		t.Errorf("log = %q, want the greeting with the task's hostname", got)
	}
	// Idempotent: preparing and starting again change nothing.
	if err := env.exec.Prepare(context.Background(), task, agent.Files{}); err != nil {
		t.Errorf("second prepare: %v", err)
	}
	if err := env.exec.Start(context.Background(), task.ID); err != nil {
		t.Errorf("second start: %v", err)
	}
	if _, err := env.exec.Remove(context.Background(), task.ID); err != nil {
		t.Fatalf("remove: %v", err)
	}
	assertGone(t, env.exec, nodeDir(), task.ID)
}

func TestImportArchive_Root(t *testing.T) {
	requireRoot(t)
	img, err := imagetest.Busybox(ocispec.ImageConfig{Cmd: []string{"cat", "/marker"}},
		imagetest.File{Path: "/marker", Mode: 0o644, Data: []byte("from the archive\n")})
	if err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	if err := img.WriteOCIArchive(&archive, "example.com/offline/app:1"); err != nil {
		t.Fatal(err)
	}
	names, err := env.exec.Import(context.Background(), &archive, "")
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	if len(names) != 1 || names[0] != "example.com/offline/app:1" {
		t.Fatalf("imported %v, want example.com/offline/app:1", names)
	}
	// example.com is unreachable here: the task runs from the imported image.
	task := newTask(t, "example.com/offline/app:1")
	runTask(t, task, agent.Files{})
	if code := waitExited(t, env.exec, task.ID); code != 0 {
		t.Errorf("exit code = %d, want 0", code)
	}
	if got := logs(t, env.exec, task.ID); got != "from the archive\n" {
		t.Errorf("log = %q", got)
	}
}

func TestStop_Root(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name       string
		cmd        []string
		grace      time.Duration
		wantKilled bool
		wantCode   int
	}{
		// sh traps TERM and exits 0 well within the grace period.
		{"graceful", []string{"sh", "-c", "trap 'exit 0' TERM; echo ready; while true; do sleep 0.1; done"}, 20 * time.Second, false, 0},
		// PID 1 without a handler ignores SIGTERM: SIGKILL after the grace period.
		{"forced", []string{"sleep", "3600"}, 300 * time.Millisecond, true, 137},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			task := newTask(t, env.image, withCommand(tc.cmd...), func(t *api.Task) {
				t.Spec.Container.StopGracePeriod = api.Duration(tc.grace)
			})
			runTask(t, task, agent.Files{})
			waitFor(t, 30*time.Second, func() (bool, string) {
				o := observed(t, env.exec, task.ID)
				return o != nil && o.State == agent.ContainerRunning && (tc.wantKilled || strings.Contains(logs(t, env.exec, task.ID), "ready")), "not running yet"
			})
			exit, err := env.exec.Stop(context.Background(), task.ID)
			if err != nil {
				t.Fatalf("stop: %v", err)
			}
			want := agent.Exit{Stopped: true, Killed: tc.wantKilled, ExitCode: tc.wantCode}
			if exit != want {
				t.Errorf("stop = %+v, want %+v", exit, want)
			}
			if o := observed(t, env.exec, task.ID); o == nil || o.State != agent.ContainerExited || o.ExitCode != tc.wantCode {
				t.Errorf("observed after stop: %+v", o)
			}
		})
	}
}

// cgroupValues reads limits as the container sees them, for cgroup v1 and v2.
const cgroupScript = `
for f in memory/memory.limit_in_bytes cpu/cpu.cfs_quota_us cpu/cpu.cfs_period_us pids/pids.max memory.max cpu.max pids.max; do
  [ -f /sys/fs/cgroup/$f ] && echo "$f=$(cat /sys/fs/cgroup/$f)"
done
exit 0`

func TestLimits_Root(t *testing.T) {
	requireRoot(t)
	task := newTask(t, env.image, withCommand("sh", "-c", cgroupScript), func(t *api.Task) {
		t.Spec.Resources.Limits = api.Resources{Memory: 64 << 20, NanoCPUs: 500_000_000, Pids: 100}
		t.Spec.Resources.Reservations = api.Resources{Memory: 32 << 20}
	})
	runTask(t, task, agent.Files{})
	if code := waitExited(t, env.exec, task.ID); code != 0 {
		t.Fatalf("exit code %d: %s", code, logs(t, env.exec, task.ID))
	}
	vals := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(logs(t, env.exec, task.ID)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		vals[k] = v
	}
	t.Logf("cgroup values: %v", vals)
	if _, v1 := vals["memory/memory.limit_in_bytes"]; v1 {
		want := map[string]string{
			"memory/memory.limit_in_bytes": strconv.Itoa(64 << 20),
			"cpu/cpu.cfs_quota_us":         "50000",
			"cpu/cpu.cfs_period_us":        "100000",
			"pids/pids.max":                "100",
		}
		for k, w := range want {
			if vals[k] != w {
				t.Errorf("cgroup v1 %s = %q, want %q", k, vals[k], w)
			}
		}
	} else {
		want := map[string]string{"memory.max": strconv.Itoa(64 << 20), "cpu.max": "50000 100000", "pids.max": "100"}
		for k, w := range want {
			if vals[k] != w {
				t.Errorf("cgroup v2 %s = %q, want %q", k, vals[k], w)
			}
		}
	}
}

func TestPrepareErrors_Root(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	missing := newTask(t, env.reg.Addr+"/test/missing:9")
	err := env.exec.Prepare(ctx, missing, agent.Files{})
	if !errors.Is(err, containerd.ErrImageNotFound) || err.Error() != "pull "+env.reg.Addr+"/test/missing:9: not found" {
		t.Errorf("missing image: %v", err)
	}
	assertGone(t, env.exec, nodeDir(), missing.ID)

	secret := newTask(t, env.image, func(t *api.Task) {
		t.Spec.Container.Secrets = []api.FileRef{{Name: "nope", Target: "/run/secrets/nope"}}
	})
	if err := env.exec.Prepare(ctx, secret, agent.Files{}); !errors.Is(err, containerd.ErrMissingFile) {
		t.Errorf("missing secret: %v", err)
	}
	assertGone(t, env.exec, nodeDir(), secret.ID)
}

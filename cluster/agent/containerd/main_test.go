package containerd_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	ctrlog "github.com/containerd/log"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/gitorc/gitorc/cluster/agent"
	"github.com/gitorc/gitorc/cluster/agent/containerd"
	"github.com/gitorc/gitorc/cluster/agent/containerd/imagetest"
	"github.com/gitorc/gitorc/cluster/api"
)

// env is shared by the package's tests: one registry, one executor with
// its own containerd, both under one temporary directory.
var env struct {
	skip   string
	dir    string
	reg    *imagetest.Registry
	exec   *containerd.Executor
	stop   func()
	image  string // busybox image in the registry
	sleepy *imagetest.Image
}

func requireRoot(t testing.TB) {
	t.Helper()
	if env.skip != "" {
		t.Skip(env.skip)
	}
}

func skipReason() string {
	if os.Geteuid() != 0 {
		return "needs root (containerd, mounts): run as root, as CI does"
	}
	for _, bin := range []string{"containerd", "runc", "containerd-shim-runc-v2"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Sprintf("needs %s: run scripts/install-deps.sh", bin)
		}
	}
	for _, p := range []string{imagetest.BusyboxPath, imagetest.RegistryPath} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Sprintf("needs %s: run scripts/install-deps.sh", p)
		}
	}
	return ""
}

func testLogger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("GITORC_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

func TestMain(m *testing.M) {
	if env.skip = skipReason(); env.skip != "" {
		os.Exit(m.Run())
	}
	// containerd's resolver logs every 404 at info level through logrus.
	_ = ctrlog.SetLevel("warn")
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "containerd tests:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func setup(m *testing.M) (code int, err error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "gitorc-exec-")
	if err != nil {
		return 1, err
	}
	env.dir = dir
	defer func() {
		if cerr := cleanupDir(dir); cerr != nil && err == nil {
			err = cerr
		}
	}()
	env.reg, err = imagetest.StartRegistry(ctx, filepath.Join(dir, "registry"), 30*time.Second)
	if err != nil {
		return 1, err
	}
	defer env.reg.Stop()
	img, err := imagetest.Busybox(ocispec.ImageConfig{Cmd: []string{"sleep", "3600"}})
	if err != nil {
		return 1, err
	}
	env.sleepy = img
	if env.image, err = env.reg.Push(ctx, img, "test/busybox", "1"); err != nil {
		return 1, err
	}
	e, stop, err := startExecutor(ctx, filepath.Join(dir, "node"))
	if err != nil {
		return 1, err
	}
	env.exec, env.stop = e, stop
	code = m.Run()
	if err := removeAll(ctx, e); err != nil {
		return code, err
	}
	stop()
	return code, nil
}

// startExecutor starts an executor with its own containerd under dir and
// runs it; stop ends Run and closes it (containers keep running).
func startExecutor(ctx context.Context, dir string) (*containerd.Executor, func(), error) {
	e, err := containerd.New(ctx, containerd.Config{
		DataDir:            dir,
		Address:            filepath.Join(dir, "containerd", "containerd.sock"),
		InsecureRegistries: []string{env.reg.Addr},
		Logger:             testLogger(),
		// Tests bind directories of their own (t.TempDir) into tasks.
		Policy: api.NodePolicy{AllowBinds: []string{os.TempDir()}},
	})
	if err != nil {
		return nil, nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = e.Run(rctx)
	}()
	var once sync.Once
	return e, func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			_ = e.Close()
		})
	}, nil
}

// removeAll removes every container the executor manages.
func removeAll(ctx context.Context, e *containerd.Executor) error {
	obs, err := e.Observe(ctx)
	if err != nil {
		return err
	}
	for _, o := range obs {
		if _, err := e.Remove(ctx, o.TaskID); err != nil {
			return err
		}
	}
	return nil
}

// cleanupDir unmounts whatever is left under dir, removes it and reports
// what it had to clean up.
func cleanupDir(dir string) error {
	var left []string
	for _, mp := range mountsUnder(dir) {
		left = append(left, mp)
		_ = unix.Unmount(mp, unix.MNT_DETACH)
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("mounts left behind: %v", left)
	}
	return nil
}

// mountsUnder lists the mount points below dir, deepest first.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			out = append([]string{fields[4]}, out...)
		}
	}
	return out
}

// mountOptions returns the options of the mount at mp, or "" when there
// is none.
func mountOptions(mp string) string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 5 && fields[4] == mp {
			return fields[5]
		}
	}
	return ""
}

// waitFor polls cond until it holds or timeout passes; what describes
// the state for the failure message.
func waitFor(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, what := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: %s", timeout, what)
		}
		<-tick.C
	}
}

var taskSeq int

// newTask returns an assigned task that wants to run image.
func newTask(t testing.TB, image string, mods ...func(*api.Task)) *api.Task {
	taskSeq++
	name := strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())
	if len(name) > 40 {
		name = name[:40]
	}
	task := &api.Task{
		Meta:         api.Meta{ID: fmt.Sprintf("%s-%d", strings.ToLower(name), taskSeq)},
		ServiceID:    "svc1",
		ServiceName:  "test_svc",
		Slot:         uint64(taskSeq),
		DesiredState: api.TaskRunning,
		Status:       api.TaskStatus{State: api.TaskAssigned},
		Spec: api.TaskSpec{Container: api.ContainerSpec{
			Image:           image,
			StopGracePeriod: api.Duration(500 * time.Millisecond),
		}},
	}
	for _, m := range mods {
		m(task)
	}
	return task
}

func withCommand(args ...string) func(*api.Task) {
	return func(t *api.Task) { t.Spec.Container.Command = args }
}

// observed returns the executor's view of one task, or nil.
func observed(t testing.TB, e *containerd.Executor, id string) *agent.Observed {
	t.Helper()
	obs, err := e.Observe(context.Background())
	if err != nil {
		t.Fatalf("observe: %v", err)
	}
	for i := range obs {
		if obs[i].TaskID == id {
			return &obs[i]
		}
	}
	return nil
}

// waitExited waits until the task's process exited and returns its code.
func waitExited(t testing.TB, e *containerd.Executor, id string) int {
	t.Helper()
	var code int
	waitFor(t, 30*time.Second, func() (bool, string) {
		o := observed(t, e, id)
		if o == nil {
			return false, "no container"
		}
		code = o.ExitCode
		return o.State == agent.ContainerExited, "state " + o.State.String()
	})
	return code
}

// logs returns a task's whole log.
func logs(t testing.TB, e *containerd.Executor, id string) string {
	t.Helper()
	var b bytes.Buffer
	if err := e.Logs(context.Background(), id, -1, false, &b); err != nil {
		t.Fatalf("logs: %v", err)
	}
	return b.String()
}

// leftovers lists what of the task is still on the node: its container,
// snapshot, mounts and task directory.
func leftovers(t testing.TB, e *containerd.Executor, dataDir, id string) []string {
	t.Helper()
	var left []string
	if o := observed(t, e, id); o != nil {
		left = append(left, fmt.Sprintf("container %+v", *o))
	}
	nsctx := namespaced(context.Background())
	if _, err := e.Client().SnapshotService(containerd.DefaultSnapshotter).Stat(nsctx, id); err == nil {
		left = append(left, "snapshot "+id)
	}
	taskDir := filepath.Join(dataDir, "tasks", id)
	if mps := mountsUnder(taskDir); len(mps) > 0 {
		left = append(left, fmt.Sprintf("mounts %v", mps))
	}
	if _, err := os.Stat(taskDir); err == nil {
		left = append(left, "task directory "+taskDir)
	}
	return left
}

// assertGone checks that nothing of the task is left on the node once the
// executor's Remove has returned.
func assertGone(t testing.TB, e *containerd.Executor, dataDir, id string) {
	t.Helper()
	if left := leftovers(t, e, dataDir, id); len(left) > 0 {
		t.Errorf("task %s left behind: %s", id, strings.Join(left, "; "))
	}
}

// waitGone waits until the agent, which cleans up after a task in the
// background, has left nothing of it on the node.
func waitGone(t testing.TB, e *containerd.Executor, dataDir, id string) {
	t.Helper()
	waitFor(t, 30*time.Second, func() (bool, string) {
		left := leftovers(t, e, dataDir, id)
		return len(left) == 0, fmt.Sprintf("task %s left behind: %s", id, strings.Join(left, "; "))
	})
}

package containerd_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/gitorc/gitorc/cluster/agent"
	"github.com/gitorc/gitorc/cluster/agent/containerd"
	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/netplane/netns"
)

// fakeNetwork records its calls; Attach brings up an interface (gtest0)
// with the task's address inside the namespace, so that the container
// shows which namespace it runs in.
type fakeNetwork struct {
	nameserver string
	fail       error // Attach fails, after it made its interface

	mu    sync.Mutex
	calls []string
}

func (f *fakeNetwork) Attach(_ context.Context, taskID, addr, nsPath string) (string, error) {
	f.record("attach %s %s %s", taskID, addr, nsPath)
	if err := addLink(nsPath, addr); err != nil {
		return "", err
	}
	if f.fail != nil {
		return "", f.fail
	}
	return f.nameserver, nil
}

func (f *fakeNetwork) Detach(_ context.Context, taskID, nsPath string) error {
	f.record("detach %s %s", taskID, nsPath)
	return nil
}

func (f *fakeNetwork) record(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func (f *fakeNetwork) takeCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

// addLink makes gtest0 (one end of a veth pair: this kind of kernel may
// lack dummy links) with addr in the namespace at nsPath, up.
func addLink(nsPath, addr string) error {
	h, err := netns.NS{Path: nsPath}.Handle()
	if err != nil {
		return err
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		return err
	}
	defer nl.Close()
	if err := nl.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "gtest0"}, PeerName: "gtest0p"}); err != nil && !errors.Is(err, syscall.EEXIST) {
		return err
	}
	l, err := nl.LinkByName("gtest0")
	if err != nil {
		return err
	}
	a, err := netlink.ParseAddr(addr)
	if err != nil {
		return err
	}
	if err := nl.AddrReplace(l, a); err != nil {
		return err
	}
	return nl.LinkSetUp(l)
}

// netExecutor is an executor with the fake network, on the shared
// containerd, with a data dir of its own.
func netExecutor(t *testing.T, dataDir string, n containerd.TaskNetwork) *containerd.Executor {
	t.Helper()
	e, err := containerd.New(context.Background(), containerd.Config{
		DataDir:            dataDir,
		Address:            env.exec.Address(),
		InsecureRegistries: []string{env.reg.Addr},
		Network:            n,
		Logger:             testLogger(),
		Policy:             api.NodePolicy{AllowBinds: []string{os.TempDir()}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// netTestDir is a data dir under the shared one (cleaned up by it, mounts
// included, should a test fail half-way).
func netTestDir(t *testing.T) string {
	t.Helper()
	d := filepath.Join(env.dir, "net-"+strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")))
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatal(err)
	}
	return d
}

// removeOnCleanup removes the task at the end of the test whatever happens.
func removeOnCleanup(t *testing.T, e *containerd.Executor, id string) {
	t.Cleanup(func() {
		if _, err := e.Remove(context.Background(), id); err != nil {
			t.Errorf("cleanup: remove %s: %v", id, err)
		}
	})
}

func withAddr(addr string) func(*api.Task) {
	return func(t *api.Task) { t.Addr = addr }
}

func assertNoNetns(t *testing.T, dataDir, id string) {
	t.Helper()
	p := filepath.Join(dataDir, "netns", id)
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("namespace %s left behind (%v)", p, err)
	}
	for _, mp := range mountsUnder(filepath.Join(dataDir, "netns")) {
		t.Errorf("mount %s left behind", mp)
	}
}

func TestTaskNetwork_Root(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	dir := netTestDir(t)
	fake := &fakeNetwork{nameserver: "10.64.3.1"}
	e := netExecutor(t, dir, fake)
	task := newTask(t, env.image, withAddr("10.64.3.7/24"),
		withCommand("sh", "-c", "cat /proc/net/dev; ip -4 -o addr show; echo ready; sleep 3600"),
		func(t *api.Task) {
			t.Spec.Container.Hostname = "web-1"
			t.Spec.Container.ExtraHosts = []string{"db:10.0.0.5"}
		})
	nsPath := filepath.Join(dir, "netns", task.ID)
	if err := e.Prepare(ctx, task, agent.Files{}); err != nil {
		t.Fatalf("prepare: %v", err)
	}
	removeOnCleanup(t, e, task.ID)
	if got, want := fake.takeCalls(), []string{"attach " + task.ID + " 10.64.3.7/24 " + nsPath}; !slices.Equal(got, want) {
		t.Errorf("calls = %q, want %q", got, want)
	}
	if err := e.Start(ctx, task.ID); err != nil {
		t.Fatalf("start: %v", err)
	}
	waitFor(t, 30*time.Second, func() (bool, string) {
		l := logs(t, e, task.ID)
		return strings.Contains(l, "ready"), "log: " + l
	})

	// The container's process is in the namespace at nsPath, and sees the
	// interface Attach made there.
	pid := taskPID(t, e, task.ID)
	var inNS, bound syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &inNS); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(nsPath, &bound); err != nil {
		t.Fatal(err)
	}
	if inNS.Ino != bound.Ino || inNS.Dev != bound.Dev {
		t.Errorf("container's network namespace %d:%d, want the bound one %d:%d", inNS.Dev, inNS.Ino, bound.Dev, bound.Ino)
	}
	log := logs(t, e, task.ID)
	if !strings.Contains(log, "gtest0:") || !strings.Contains(log, "inet 10.64.3.7/24") {
		t.Errorf("the container does not see gtest0 with 10.64.3.7/24:\n%s", log)
	}
	for _, tc := range []struct{ path, want string }{
		{"/etc/resolv.conf", "nameserver 10.64.3.1\noptions ndots:0\n"},
		{"/etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.64.3.7\tweb-1\n10.0.0.5\tdb\n"},
		{"/etc/hostname", "web-1\n"},
	} {
		b, err := os.ReadFile(rootfsPath(pid, tc.path))
		if err != nil || string(b) != tc.want {
			t.Errorf("%s in the container = %q (%v), want %q", tc.path, b, err, tc.want)
		}
	}

	// Remove detaches after the container is gone and removes the
	// namespace; again, it has nothing left to do.
	if _, err := e.Remove(ctx, task.ID); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if got, want := fake.takeCalls(), []string{"detach " + task.ID + " " + nsPath}; !slices.Equal(got, want) {
		t.Errorf("calls = %q, want %q", got, want)
	}
	assertGone(t, e, dir, task.ID)
	assertNoNetns(t, dir, task.ID)
	if _, err := e.Remove(ctx, task.ID); err != nil {
		t.Errorf("second remove: %v", err)
	}
	if got := fake.takeCalls(); len(got) != 0 {
		t.Errorf("second remove called %q", got)
	}
}

func taskPID(t *testing.T, e *containerd.Executor, id string) uint32 {
	t.Helper()
	ctx := namespaced(context.Background())
	c, err := e.Client().LoadContainer(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	return task.Pid()
}

// A failure during Prepare, in Attach or after it, leaves no container,
// snapshot, directory, mount or namespace, and the attachment is undone.
func TestTaskNetworkPrepareFails_Root(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	dir := netTestDir(t)
	// Another program of the node listens on the port a task publishes.
	other, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	taken := uint32(other.Addr().(*net.TCPAddr).Port)
	tests := []struct {
		name    string
		fail    error
		mod     func(*api.Task)
		wantErr string
		wantIs  error
	}{
		{name: "attach fails", fail: errors.New("pool exhausted"),
			wantErr: "attach network 10.64.3.7/24: pool exhausted"},
		{name: "secret missing after attach", mod: func(t *api.Task) {
			t.Spec.Container.Secrets = []api.FileRef{{Name: "nope", Target: "/run/secrets/nope"}}
		}, wantIs: containerd.ErrMissingFile},
		{name: "host port in use", mod: withHostPort(taken),
			wantErr: fmt.Sprintf("invalid task spec: host port %d/tcp is in use on this node by a program gitorc does not run: publish another port, or stop that program", taken)},
	}
	for _, tc := range tests {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			fake := &fakeNetwork{nameserver: "10.64.3.1", fail: tc.fail}
			e := netExecutor(t, dir, fake)
			mods := []func(*api.Task){withAddr("10.64.3.7/24")}
			if tc.mod != nil {
				mods = append(mods, tc.mod)
			}
			task := newTask(t, env.image, mods...)
			err := e.Prepare(ctx, task, agent.Files{})
			if err == nil {
				removeOnCleanup(t, e, task.ID)
				t.Fatal("prepare succeeded")
			}
			if (tc.wantErr != "" && err.Error() != tc.wantErr) || (tc.wantIs != nil && !errors.Is(err, tc.wantIs)) {
				t.Errorf("prepare: %v", err)
			}
			nsPath := filepath.Join(dir, "netns", task.ID)
			want := []string{"attach " + task.ID + " 10.64.3.7/24 " + nsPath, "detach " + task.ID + " " + nsPath}
			if got := fake.takeCalls(); !slices.Equal(got, want) {
				t.Errorf("calls = %q, want %q", got, want)
			}
			assertGone(t, e, dir, task.ID)
			assertNoNetns(t, dir, task.ID)
		})
	}
}

// With a network configured, a task without an address runs as without
// one: a namespace of its own with loopback only, no calls.
func withHostPort(port uint32) func(*api.Task) {
	return func(t *api.Task) {
		t.Endpoint = &api.EndpointSpec{Ports: []api.PortConfig{{Protocol: api.ProtocolTCP, Target: 80, Published: port, Mode: api.PublishHost}}}
	}
}

// preparedWithHostPort is a task at addr publishing a free host port in
// host mode, prepared by a new executor (removed when the test ends).
func preparedWithHostPort(t *testing.T, addr string) (*containerd.Executor, *api.Task, uint32) {
	t.Helper()
	requireRoot(t)
	e := netExecutor(t, netTestDir(t), &fakeNetwork{nameserver: "10.64.3.1"})
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint32(l.Addr().(*net.TCPAddr).Port)
	_ = l.Close()
	task := newTask(t, env.image, withAddr(addr), withHostPort(port))
	if err := e.Prepare(context.Background(), task, agent.Files{}); err != nil {
		t.Fatalf("prepare: %v", err)
	}
	removeOnCleanup(t, e, task.ID)
	return e, task, port
}

// TestTaskHostPorts_Root: a task's host-mode port is held on the node
// from its prepare to its removal, so that no other program takes it.
func TestTaskHostPorts_Root(t *testing.T) {
	ctx := context.Background()
	e, task, port := preparedWithHostPort(t, "10.64.3.8/24")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if l, err := net.Listen("tcp4", addr); err == nil {
		_ = l.Close()
		t.Errorf("another program could listen on %s while the task holds it", addr)
	}
	if _, err := e.Remove(ctx, task.ID); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Errorf("%s still held after the task was removed: %v", addr, err)
	} else {
		_ = l.Close()
	}
}

// TestHostPortTakenWhileRestarting_Root: a restarted executor holds a
// running task's host port again; one another program took meanwhile is
// reported on the task (its observation's warning), until it is free and
// held again.
func TestHostPortTakenWhileRestarting_Root(t *testing.T) {
	ctx := context.Background()
	e, task, port := preparedWithHostPort(t, "10.64.3.9/24")
	if err := e.Start(ctx, task.ID); err != nil {
		t.Fatalf("start: %v", err)
	}
	observed := func() agent.Observed {
		t.Helper()
		obs, err := e.Observe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range obs {
			if o.TaskID == task.ID {
				return o
			}
		}
		t.Fatalf("task %s not observed", task.ID)
		return agent.Observed{}
	}
	// The sockets die with the executor's process; another program
	// listens on the port before the new one observes the task.
	containerd.ReleaseHostPorts(e)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	other, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	if o := observed(); o.State != agent.ContainerRunning || !strings.Contains(o.Warning, fmt.Sprintf("host port %d/tcp is in use", port)) {
		t.Errorf("observed %+v: want the task running with a warning that its port is taken", o)
	}
	_ = other.Close()
	if o := observed(); o.Warning != "" {
		t.Errorf("warning %q once the port is free", o.Warning)
	}
	if l, err := net.Listen("tcp4", addr); err == nil {
		_ = l.Close()
		t.Errorf("another program could listen on %s: the task's port is not held again", addr)
	}
}

func TestTaskNetworkNoAddr_Root(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	dir := netTestDir(t)
	fake := &fakeNetwork{nameserver: "10.64.3.1"}
	e := netExecutor(t, dir, fake)
	task := newTask(t, env.image, withCommand("sh", "-c", "cat /proc/net/dev; echo ---; cat /etc/hosts"))
	if err := e.Prepare(ctx, task, agent.Files{}); err != nil {
		t.Fatalf("prepare: %v", err)
	}
	removeOnCleanup(t, e, task.ID)
	if err := e.Start(ctx, task.ID); err != nil {
		t.Fatalf("start: %v", err)
	}
	if code := waitExited(t, e, task.ID); code != 0 {
		t.Fatalf("exit code %d: %s", code, logs(t, e, task.ID))
	}
	dev, hosts, _ := strings.Cut(logs(t, e, task.ID), "---\n")
	var ifaces []string
	for _, line := range strings.Split(dev, "\n") {
		if name, _, ok := strings.Cut(line, ":"); ok { // the two header lines have none
			ifaces = append(ifaces, strings.TrimSpace(name))
		}
	}
	if !slices.Equal(ifaces, []string{"lo"}) {
		t.Errorf("interfaces in the container %q, want only lo; log:\n%s", ifaces, logs(t, e, task.ID))
	}
	if !strings.Contains(hosts, "127.0.1.1\t"+task.ID[:12]+"\n") {
		t.Errorf("hosts does not name the hostname at 127.0.1.1:\n%s", hosts)
	}
	if _, err := os.Stat(filepath.Join(dir, "tasks", task.ID, "resolv.conf")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("resolv.conf written for a task without an address (%v)", err)
	}
	assertNoNetns(t, dir, task.ID)
	if _, err := e.Remove(ctx, task.ID); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if got := fake.takeCalls(); len(got) != 0 {
		t.Errorf("calls = %q, want none", got)
	}
	assertGone(t, e, dir, task.ID)
}

// An executor that never saw the task (restarted, reaping a container it
// finds) detaches and removes the namespace from the ID alone.
func TestTaskNetworkReap_Root(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	dir := netTestDir(t)
	task := newTask(t, env.image, withAddr("10.64.3.8/24"))
	first := netExecutor(t, dir, &fakeNetwork{nameserver: "10.64.3.1"})
	if err := first.Prepare(ctx, task, agent.Files{}); err != nil {
		t.Fatalf("prepare: %v", err)
	}
	fake := &fakeNetwork{}
	second := netExecutor(t, dir, fake)
	removeOnCleanup(t, second, task.ID)
	if _, err := second.Remove(ctx, task.ID); err != nil {
		t.Fatalf("remove: %v", err)
	}
	nsPath := filepath.Join(dir, "netns", task.ID)
	if got, want := fake.takeCalls(), []string{"detach " + task.ID + " " + nsPath}; !slices.Equal(got, want) {
		t.Errorf("calls = %q, want %q", got, want)
	}
	assertGone(t, second, dir, task.ID)
	assertNoNetns(t, dir, task.ID)
}

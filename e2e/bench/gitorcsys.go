package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/agent/containerd/imagetest"
	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/gitorc/gitorc/e2e/harness"
)

// gitorcSystem is a single-node gitorc cluster (manager and worker, its
// own containerd, the network plane on) in a network-namespace host of
// e2e/harness, with a registry of imagetest on the host's bridge holding
// the suite's images, pulled into the node's containerd before any step.
type gitorcSystem struct {
	bin    string
	dir    string // the node's data dir
	socket string
	node   *harness.Process
	nw     *harness.Network
	reg    *imagetest.Registry
	refs   map[string]string
	client *client.Client
	logs   string
}

var _ system = (*gitorcSystem)(nil)

// startGitorc starts the cluster; tb's cleanup removes what stop leaves.
func startGitorc(tb testing.TB, bin string, images []benchImage) (*gitorcSystem, error) {
	ctx := context.Background()
	g := &gitorcSystem{bin: bin, nw: harness.NewNetwork(tb, 1), logs: tb.TempDir(), refs: map[string]string{}}
	tmp := tb.TempDir()
	g.dir = filepath.Join(tmp, "node")
	reg, err := imagetest.StartRegistryOn(ctx, filepath.Join(tmp, "registry"), g.nw.Gateway.String(), 30*time.Second)
	if err != nil {
		return nil, err
	}
	g.reg = reg
	tb.Cleanup(reg.Stop)
	for _, im := range images {
		ref, err := reg.Push(ctx, im.img, im.repo, im.tag)
		if err != nil {
			return nil, err
		}
		g.refs[im.name] = ref
	}
	h1 := g.nw.Host(1)
	// The node's DNS server forwards to h1's own loopback, where nothing
	// answers: no name leaves the machine (the steps look none up).
	g.node, err = h1.Start(g.logs, bin, "bootstrap", "--data-dir", g.dir, "--listen", h1.Addr.String()+":4270",
		"--insecure-registry", reg.Addr, "--dns-upstream", "127.0.0.1")
	if err != nil {
		return nil, err
	}
	tb.Cleanup(func() { harness.ClearNodeDirs([]string{g.dir}) })
	g.socket = filepath.Join(g.dir, "gitorc.sock")
	g.client = client.Unix(g.socket).WithTimeout(30 * time.Second)
	if err := waitUntil(90*time.Second, "the node to be ready", func() bool {
		nodes, err := g.client.Nodes(ctx)
		return err == nil && len(nodes) == 1 && nodes[0].Status.State == api.NodeReady
	}); err != nil {
		return nil, g.withLog(err)
	}
	sock := g.containerdSocket()
	if err := waitUntil(60*time.Second, "the node's containerd", func() bool {
		_, err := os.Stat(sock)
		return err == nil
	}); err != nil {
		return nil, g.withLog(err)
	}
	// Pre-pull, so that no timed step pulls (Swarm's images are imported).
	for _, ref := range g.refs {
		if out, err := exec.Command("ctr", "--address", sock, "--namespace", "gitorc", "images", "pull", "--plain-http", ref).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("pull %s into the node's containerd: %v: %s", ref, err, out)
		}
	}
	return g, nil
}

func (g *gitorcSystem) name() string              { return "gitorc" }
func (g *gitorcSystem) image(which string) string { return g.refs[which] }
func (g *gitorcSystem) header() string            { return "" }

func (g *gitorcSystem) containerdSocket() string {
	return filepath.Join(g.dir, "executor", "containerd", "containerd.sock")
}

// bundles is containerd's directory of live task bundles, one per container.
func (g *gitorcSystem) bundles() string {
	return filepath.Join(g.dir, "executor", "containerd", "state", "io.containerd.runtime.v2.task", "gitorc")
}

func (g *gitorcSystem) cli(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, g.bin, append([]string{"--socket", g.socket}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("gitorc %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (g *gitorcSystem) deploy(ctx context.Context, stack, file string) error {
	return g.cli(ctx, "stack", "deploy", "-c", file, stack)
}

func (g *gitorcSystem) scale(ctx context.Context, service string, replicas int) error {
	return g.cli(ctx, "service", "scale", fmt.Sprintf("%s=%d", service, replicas))
}

func (g *gitorcSystem) rm(ctx context.Context, stack string) error {
	return g.cli(ctx, "stack", "rm", stack)
}

// notFound reports whether err is a 404 of the control API.
func notFound(err error) bool { return client.StatusOf(err) == http.StatusNotFound }

func (g *gitorcSystem) observe(ctx context.Context, service string, since time.Time) (observation, error) {
	svc, err := g.client.Service(ctx, service)
	if notFound(err) {
		return observation{}, nil
	}
	if err != nil {
		return observation{}, err
	}
	o := observation{exists: true}
	if u := svc.Update; u != nil && !u.StartedAt.Before(since) {
		o.update = u.State.String()
	}
	if svc.Endpoint != nil {
		o.vip = svc.Endpoint.VIP
	}
	tasks, err := g.client.Tasks(ctx, client.TaskFilter{Service: service})
	if notFound(err) {
		return observation{}, nil // removed between the two reads
	}
	if err != nil {
		return observation{}, err
	}
	for _, t := range tasks {
		o.tasks = append(o.tasks, taskObs{id: t.ID, image: t.Spec.Container.Image,
			desiredRunning: t.DesiredState == api.TaskRunning, running: t.Status.State == api.TaskRunning,
			live: !t.Status.State.Terminal()})
	}
	return o, nil
}

func (g *gitorcSystem) gone(ctx context.Context, stack, service string) (bool, error) {
	tasks, err := g.client.Tasks(ctx, client.TaskFilter{})
	if err != nil {
		return false, err
	}
	for _, t := range tasks {
		if t.ServiceName == service && !t.Status.State.Terminal() {
			return false, nil
		}
	}
	_, err = g.client.Network(ctx, stack+"_default")
	if !notFound(err) {
		return false, err
	}
	ents, err := os.ReadDir(g.bundles())
	if err != nil && !os.IsNotExist(err) {
		return false, err
	}
	return len(ents) == 0, nil
}

func (g *gitorcSystem) killOne(ctx context.Context, service string) (string, error) {
	tasks, err := g.client.Tasks(ctx, client.TaskFilter{Service: service})
	if err != nil {
		return "", err
	}
	for _, t := range tasks {
		if t.DesiredState != api.TaskRunning || t.Status.State != api.TaskRunning {
			continue
		}
		cid := t.Status.ContainerID
		if cid == "" {
			cid = t.ID
		}
		b, err := os.ReadFile(filepath.Join(g.bundles(), cid, "init.pid"))
		if err != nil {
			return "", fmt.Errorf("task %s: %w", t.ID, err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			return "", fmt.Errorf("task %s: init.pid: %w", t.ID, err)
		}
		return t.ID, killInit(pid)
	}
	return "", fmt.Errorf("no running task of %s", service)
}

func (g *gitorcSystem) memory() (memory, error) {
	in := g.dir + "/"
	m := memory{groups: []memGroup{
		measureGroup("gitorc daemon", []int{g.node.Cmd.Process.Pid}),
		measureGroup("containerd", processes(func(c string) bool {
			return strings.Contains(c, "containerd --config "+in)
		})),
		measureGroup("shims", processes(func(c string) bool {
			return strings.Contains(c, "containerd-shim") && strings.Contains(c, "-address "+in)
		})),
	}}
	if m.groups[0].procs != 1 || m.groups[1].procs != 1 {
		return m, fmt.Errorf("the node or its containerd is not running: %s", m)
	}
	return m, nil
}

func (g *gitorcSystem) daemons() []int {
	in := g.dir + "/"
	return append([]int{g.node.Cmd.Process.Pid}, processes(func(c string) bool {
		return strings.Contains(c, "containerd --config "+in)
	})...)
}

func (g *gitorcSystem) logFiles() []string {
	files, _ := filepath.Glob(filepath.Join(g.logs, "*.log"))
	return append(files, filepath.Join(g.dir, "executor", "containerd", "containerd.log"))
}

func (g *gitorcSystem) stop() error {
	err := g.node.Stop(30 * time.Second)
	harness.ClearNodeDirs([]string{g.dir})
	g.reg.Stop()
	g.nw.Close()
	if left := g.nw.Leftovers(); len(left) > 0 {
		return fmt.Errorf("gitorc: left behind: %v", left)
	}
	return err
}

// withLog adds the node log's last lines to an error.
func (g *gitorcSystem) withLog(err error) error {
	b, _ := os.ReadFile(g.node.Log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return fmt.Errorf("%w\n%s", err, strings.Join(lines, "\n"))
}

// waitUntil polls cond every 100 ms until it holds, or fails after timeout.
func waitUntil(timeout time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/agent/containerd/imagetest"
	"github.com/gitorc/gitorc/e2e/harness"
)

// cluster is a gitorc cluster on netns hosts, driven with the real binary.
type cluster struct {
	t      testing.TB
	bin    string
	nw     *harness.Network
	dirs   []string // data dir of each host
	procs  []*harness.Process
	logs   string
	socket string // the manager's control socket (a file: reachable from here)
	reg    *imagetest.Registry
	extra  []string // flags every node starts with
}

func (c *cluster) registryAddr() string { return c.reg.Addr }

func requireE2E(t testing.TB) {
	if why := harness.Requirements(); why != "" {
		t.Skip("e2e: " + why)
	}
	for _, p := range []string{imagetest.BusyboxPath, imagetest.RegistryPath, "/usr/bin/containerd", "/usr/sbin/runc"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("e2e: needs %s: run scripts/install-deps.sh", p)
		}
	}
}

// buildGitorc builds the binary under test.
func buildGitorc(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gitorc")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/gitorc").CombinedOutput()
	if err != nil {
		t.Fatalf("build gitorc: %v\n%s", err, out)
	}
	return bin
}

// gitorc runs the CLI against the manager.
func (c *cluster) gitorc(args ...string) (string, error) {
	out, err := exec.Command(c.bin, append([]string{"--socket", c.socket}, args...)...).CombinedOutput()
	return string(out), err
}

func (c *cluster) waitFor(what string, timeout time.Duration, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			c.dumpLogs()
			ps, _ := c.gitorc("ps")
			svc, _ := c.gitorc("service", "ls")
			c.t.Fatalf("timed out after %s waiting for %s\n%s\n%s", timeout, what, svc, ps)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *cluster) dumpLogs() { harness.DumpLogs(c.t, c.logs, 40) }

type taskView struct {
	NodeID       string `json:"node_id"`
	DesiredState string `json:"desired_state"`
	Status       struct {
		State string `json:"state"`
	} `json:"status"`
}

// running returns the running tasks of a stack by node ID (with any=true,
// also those running but asked to stop).
func (c *cluster) running(stack string) map[string]int { return c.runningTasks(stack, false) }

func (c *cluster) runningTasks(stack string, any bool) map[string]int {
	out, err := c.gitorc("ps", stack, "-o", "json")
	if err != nil {
		return nil
	}
	var tasks []taskView
	if json.Unmarshal([]byte(out), &tasks) != nil {
		return nil
	}
	by := map[string]int{}
	for _, t := range tasks {
		if t.Status.State == "running" && (any || t.DesiredState == "running") {
			by[t.NodeID]++
		}
	}
	return by
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// hostsWithRegistry lays out a cluster of hosts that runs no node yet: the
// binary, the network, a registry on the bridge holding
// gitorc/busybox:1, a data dir per host, and the teardown.
func hostsWithRegistry(t testing.TB, hosts int) *cluster {
	requireE2E(t)
	ctx := context.Background()
	c := &cluster{t: t, bin: buildGitorc(t), nw: harness.NewNetwork(t, hosts), logs: t.TempDir()}
	tmp := t.TempDir()
	reg, err := imagetest.StartBusyboxRegistry(ctx, filepath.Join(tmp, "registry"), c.nw.Gateway.String(),
		[]string{"sleep", "3600"}, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)
	c.reg = reg
	for i := range c.nw.Hosts {
		c.dirs = append(c.dirs, filepath.Join(tmp, fmt.Sprintf("node%d", i+1)))
	}
	t.Cleanup(c.teardown)
	return c
}

// newCluster bootstraps h1 and joins the other hosts as workers.
func newCluster(t testing.TB, hosts int) (*cluster, string) { return newClusterWith(t, hosts, nil) }

// newClusterWith is newCluster with extra flags for every node's
// bootstrap or join.
func newClusterWith(t testing.TB, hosts int, extra []string) (*cluster, string) {
	c := hostsWithRegistry(t, hosts)
	startNodes(c, hosts, extra)
	return c, c.reg.Addr
}

// startNodes bootstraps h1 and joins the other hosts as workers, with
// extra flags for each, and waits until every node is ready.
func startNodes(c *cluster, hosts int, extra []string) {
	t := c.t
	reg := c.reg
	h1 := c.nw.Host(1)
	manager := h1.Addr.String() + ":4270"
	p, err := h1.Start(c.logs, c.bin, append([]string{"bootstrap", "--data-dir", c.dirs[0], "--listen", manager, "--insecure-registry", reg.Addr}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	c.procs = append(c.procs, p)
	c.socket = filepath.Join(c.dirs[0], "gitorc.sock")
	var token string
	c.waitFor("the manager to lead", 60*time.Second, func() bool {
		out, err := c.gitorc("token", "worker")
		token = strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
		return err == nil && strings.HasPrefix(token, "GTRC-1-")
	})
	for i := 2; i <= hosts; i++ {
		p, err := c.nw.Host(i).Start(c.logs, c.bin, append([]string{"join", "--token", token, "--data-dir", c.dirs[i-1], "--insecure-registry", reg.Addr, manager}, extra...)...)
		if err != nil {
			t.Fatal(err)
		}
		c.procs = append(c.procs, p)
	}
	c.waitFor(fmt.Sprintf("%d ready nodes", hosts), 60*time.Second, func() bool {
		out, err := c.gitorc("node", "ls", "-o", "json")
		return err == nil && strings.Count(out, `"state": "ready"`) == hosts
	})
}

// teardown removes every stack, stops the nodes, and clears what a killed
// node could leave: container shims and mounts under the data dirs.
func (c *cluster) teardown() {
	out, _ := c.gitorc("ps", "-o", "json")
	if strings.Contains(out, `"state": "running"`) {
		_, _ = c.gitorc("stack", "rm", "app")
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) && total(c.runningTasks("app", true)) > 0 {
			time.Sleep(200 * time.Millisecond)
		}
	}
	for i := len(c.procs) - 1; i >= 0; i-- {
		_ = c.procs[i].Stop(20 * time.Second)
	}
	harness.ClearNodeDirs(c.dirs)
	if c.t.Failed() {
		c.dumpLogs()
	}
}

// Workers join with a token; a stack's replicas spread over the nodes; when
// a worker is cut off, its tasks run elsewhere once it is declared down.
func TestWorkerLossMovesTasks_Root(t *testing.T) {
	c, reg := newCluster(t, 3)
	stack := fmt.Sprintf("services:\n  app:\n    image: %s/gitorc/busybox:1\n    command: [\"sleep\", \"3600\"]\n    deploy:\n      replicas: 6\n", reg)
	file := filepath.Join(t.TempDir(), "compose.yaml")
	if err := os.WriteFile(file, []byte(stack), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := c.gitorc("stack", "deploy", "-c", file, "app"); err != nil {
		t.Fatalf("deploy: %v\n%s", err, out)
	}
	var placed map[string]int
	c.waitFor("6 running replicas on 3 nodes", 120*time.Second, func() bool {
		placed = c.running("app")
		return total(placed) == 6 && len(placed) == 3
	})
	t.Logf("placement: %v", placed)

	// Cut h2 off: its heartbeats stop; after 3 missed beats it is down and
	// its replicas are started on the other nodes.
	h2 := c.nw.Host(2)
	st, err := os.ReadFile(filepath.Join(c.dirs[1], "node.json"))
	if err != nil {
		t.Fatal(err)
	}
	var state struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(st, &state)
	cut := time.Now()
	h2.Cut()
	c.waitFor("h2's replicas to run elsewhere", 90*time.Second, func() bool {
		now := c.running("app")
		return now[state.ID] == 0 && total(now) == 6
	})
	moved := time.Since(cut)
	t.Logf("worker lost: its tasks ran elsewhere %s after the cut (heartbeat 2s x 3 missed, by default)", moved.Round(100*time.Millisecond))
	if out, _ := c.gitorc("node", "ls"); !strings.Contains(out, "down") {
		t.Errorf("the cut node is not shown down:\n%s", out)
	}
	h2.Heal()
}

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// newHACluster starts 3 managers that run no tasks (h1 bootstraps, h2 and
// h3 join with the manager token) and 2 workers (h4, h5, joined through
// h2: any manager admits nodes).
func newHACluster(t *testing.T) (*cluster, string) {
	c := hostsWithRegistry(t, 5)
	reg := c.reg
	addr := func(i int) string { return c.nw.Host(i).Addr.String() + ":4270" }
	start := func(i int, args ...string) {
		p, err := c.nw.Host(i).Start(c.logs, c.bin, append(args, "--data-dir", c.dirs[i-1], "--insecure-registry", reg.Addr)...)
		if err != nil {
			t.Fatal(err)
		}
		c.procs = append(c.procs, p)
	}
	token := func(role string) string {
		var tok string
		c.waitFor("a "+role+" token", 60*time.Second, func() bool {
			out, err := c.gitorc("token", role)
			tok = strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
			return err == nil && strings.HasPrefix(tok, "GTRC-1-")
		})
		return tok
	}
	start(1, "bootstrap", "--listen", addr(1), "--no-worker")
	c.socket = filepath.Join(c.dirs[0], "gitorc.sock")
	mtok := token("manager")
	for _, i := range []int{2, 3} {
		start(i, "join", "--token", mtok, "--listen", addr(i), "--no-worker", addr(1))
	}
	c.waitFor("3 managers caught up", 60*time.Second, func() bool {
		return len(c.managers(true)) == 3
	})
	wtok := token("worker")
	for _, i := range []int{4, 5} {
		start(i, "join", "--token", wtok, addr(2))
	}
	c.waitFor("2 ready workers", 60*time.Second, func() bool {
		return len(c.nodes(func(n nodeView) bool { return n.Spec.Role == "worker" && n.Status.State == "ready" })) == 2
	})
	return c, reg.Addr
}

type nodeView struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Spec struct {
		Role         string `json:"role"`
		Availability string `json:"availability"`
	} `json:"spec"`
	Status struct {
		State string `json:"state"`
		Addr  string `json:"addr"`
	} `json:"status"`
	Manager *struct {
		Addr     string `json:"addr"`
		Leader   bool   `json:"leader"`
		CaughtUp bool   `json:"caught_up"`
	} `json:"manager"`
}

func (c *cluster) nodes(keep func(nodeView) bool) []nodeView {
	out, err := c.gitorc("node", "ls", "-o", "json")
	if err != nil {
		return nil
	}
	var all, kept []nodeView
	if json.Unmarshal([]byte(out), &all) != nil {
		return nil
	}
	for _, n := range all {
		if keep(n) {
			kept = append(kept, n)
		}
	}
	return kept
}

// managers lists the managers (caught up ones only, if asked).
func (c *cluster) managers(caughtUp bool) []nodeView {
	return c.nodes(func(n nodeView) bool { return n.Manager != nil && (n.Manager.CaughtUp || !caughtUp) })
}

type haTask struct {
	ID           string `json:"id"`
	ServiceName  string `json:"service_name"`
	Slot         uint64 `json:"slot"`
	NodeID       string `json:"node_id"`
	DesiredState string `json:"desired_state"`
	Status       struct {
		State   string `json:"state"`
		Message string `json:"message"`
	} `json:"status"`
}

func (c *cluster) haTasks(stack string) []haTask {
	out, err := c.gitorc("ps", stack, "-o", "json")
	if err != nil {
		return nil
	}
	var ts []haTask
	if json.Unmarshal([]byte(out), &ts) != nil {
		return nil
	}
	return ts
}

// runningOf returns the running tasks of a service meant to run, by ID.
func runningOf(ts []haTask, service string) map[string]haTask {
	out := map[string]haTask{}
	for _, t := range ts {
		if t.ServiceName == service && t.DesiredState == "running" && t.Status.State == "running" {
			out[t.ID] = t
		}
	}
	return out
}

func byNode(ts map[string]haTask) map[string]int {
	out := map[string]int{}
	for _, t := range ts {
		out[t.NodeID]++
	}
	return out
}

// Three managers and two workers: a replicated service, a global service,
// a job, constraints and drain; then the leader is killed and the cluster
// carries on with no task lost or duplicated.
func TestManagersAndWorkers_Root(t *testing.T) {
	c, reg := newHACluster(t)
	workers := c.nodes(func(n nodeView) bool { return n.Spec.Role == "worker" })
	w4, w5 := workers[0], workers[1]
	if out, err := c.gitorc("node", "update", "--label-add", "zone=b", w5.ID); err != nil {
		t.Fatalf("label: %v\n%s", err, out)
	}
	img := reg + "/gitorc/busybox:1"
	stack := fmt.Sprintf(`services:
  web:
    image: %[1]s
    command: ["sleep", "3600"]
    deploy:
      replicas: 6
  agent:
    image: %[1]s
    command: ["sleep", "3600"]
    deploy:
      mode: global
  init:
    image: %[1]s
    command: ["true"]
    deploy:
      mode: replicated-job
      replicas: 2
  pinned:
    image: %[1]s
    command: ["sleep", "3600"]
    deploy:
      replicas: 2
      placement:
        constraints: [node.labels.zone == b]
  nowhere:
    image: %[1]s
    command: ["sleep", "3600"]
    deploy:
      placement:
        constraints: [node.labels.zone == x]
`, img)
	file := filepath.Join(t.TempDir(), "compose.yaml")
	if err := os.WriteFile(file, []byte(stack), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := c.gitorc("stack", "deploy", "-c", file, "app"); err != nil {
		t.Fatalf("deploy: %v\n%s", err, out)
	}
	completed := func(ts []haTask) int {
		n := 0
		for _, t := range ts {
			if t.ServiceName == "app_init" && t.Status.State == "complete" {
				n++
			}
		}
		return n
	}
	var ts []haTask
	c.waitFor("the stack to converge", 120*time.Second, func() bool {
		ts = c.haTasks("app")
		web, agent, pinned := runningOf(ts, "app_web"), runningOf(ts, "app_agent"), runningOf(ts, "app_pinned")
		return len(web) == 6 && len(byNode(web)) == 2 && len(agent) == 2 && len(byNode(agent)) == 2 &&
			len(pinned) == 2 && byNode(pinned)[w5.ID] == 2 && completed(ts) == 2
	})
	if n := byNode(runningOf(ts, "app_web")); n[w4.ID] != 3 || n[w5.ID] != 3 {
		t.Errorf("web spread %v, want 3 on each worker", n)
	}
	// The task that fits nowhere says why, in gitorc ps.
	out, _ := c.gitorc("ps", "app_nowhere")
	if !strings.Contains(out, "no suitable node") || !strings.Contains(out, "zone") {
		t.Errorf("gitorc ps of an unplaceable task does not say why:\n%s", out)
	}
	// gitorc ps names the node of every running task.
	out, _ = c.gitorc("ps", "app_web")
	for _, w := range workers {
		if !strings.Contains(out, w.Name) {
			t.Errorf("gitorc ps does not show node %s:\n%s", w.Name, out)
		}
	}

	// Drain w4: its replicated tasks move to w5, its global task stops.
	if out, err := c.gitorc("node", "update", "--availability", "drain", w4.ID); err != nil {
		t.Fatalf("drain: %v\n%s", err, out)
	}
	c.waitFor("w4 drained", 90*time.Second, func() bool {
		ts = c.haTasks("app")
		web, agent := runningOf(ts, "app_web"), runningOf(ts, "app_agent")
		return len(web) == 6 && byNode(web)[w5.ID] == 6 && len(agent) == 1 && byNode(agent)[w5.ID] == 1
	})
	if out, err := c.gitorc("node", "update", "--availability", "active", w4.ID); err != nil {
		t.Fatalf("activate: %v\n%s", err, out)
	}
	c.waitFor("the global service back on w4", 60*time.Second, func() bool {
		ts = c.haTasks("app")
		return len(runningOf(ts, "app_agent")) == 2
	})

	// Kill the leader.
	before := c.haTasks("app")
	var leader nodeView
	for _, m := range c.managers(true) {
		if m.Manager.Leader {
			leader = m
		}
	}
	li := -1
	for i, h := range c.nw.Hosts {
		if leader.Manager != nil && strings.HasPrefix(leader.Manager.Addr, h.Addr.String()+":") {
			li = i
		}
	}
	if li < 0 || li > 2 {
		t.Fatalf("leader %+v is not one of the managers' hosts", leader)
	}
	killed := time.Now()
	c.procs[li].Kill()
	for i := range 3 {
		if i != li {
			c.socket = filepath.Join(c.dirs[i], "gitorc.sock")
		}
	}
	c.waitFor("a new leader", 60*time.Second, func() bool {
		for _, m := range c.managers(true) {
			if m.Manager.Leader && m.ID != leader.ID {
				return true
			}
		}
		return false
	})
	t.Logf("leader killed: a new leader in %s", time.Since(killed).Round(100*time.Millisecond))
	// The cluster keeps serving: a scale goes through a follower or the new
	// leader, and is carried out.
	if out, err := c.gitorc("service", "scale", "app_web=8"); err != nil {
		t.Fatalf("scale after the leader was killed: %v\n%s", err, out)
	}
	c.waitFor("8 web replicas", 90*time.Second, func() bool {
		ts = c.haTasks("app")
		return len(runningOf(ts, "app_web")) == 8
	})
	// Nothing lost, nothing duplicated: every task that ran before still
	// runs, each slot has one running task, the job did not run again.
	for _, svc := range []string{"app_web", "app_agent", "app_pinned"} {
		now := runningOf(ts, svc)
		for id := range runningOf(before, svc) {
			if _, ok := now[id]; !ok {
				t.Errorf("%s: task %s no longer runs after the leader was killed", svc, id)
			}
		}
	}
	slots := map[uint64]int{}
	for _, t := range runningOf(ts, "app_web") {
		slots[t.Slot]++
	}
	for s, n := range slots {
		if n != 1 {
			t.Errorf("web slot %d has %d running tasks", s, n)
		}
	}
	if len(slots) != 8 {
		t.Errorf("web has %d slots running, want 8", len(slots))
	}
	jobs := 0
	for _, t := range ts {
		if t.ServiceName == "app_init" {
			jobs++
		}
	}
	if jobs != 2 || completed(ts) != 2 {
		t.Errorf("the job has %d tasks (%d complete) after the leader change, want its 2 completed ones", jobs, completed(ts))
	}
}

package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/controlapi/controlapitest"
)

// serveAPI serves the control API over a seeded one-manager store and
// points the CLI at it, with the clock fixed at the seed's time.
func serveAPI(t *testing.T) *controlapitest.Fixture {
	t.Helper()
	f := controlapitest.New(t)
	t.Setenv("GITORC_SOCKET", f.Socket)
	old := now
	now = func() time.Time { return f.Now }
	t.Cleanup(func() { now = old })
	return f
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := run(t, args...)
	if code != 0 {
		t.Fatalf("gitorc %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func mustFail(t *testing.T, want string, args ...string) {
	t.Helper()
	out, errOut, code := run(t, args...)
	if code == 0 || !strings.Contains(errOut, want) {
		t.Errorf("gitorc %s: exit %d, stderr %q, want failure with %q\n%s", strings.Join(args, " "), code, errOut, want, out)
	}
}

// fields splits a table into rows of whitespace-separated cells.
func rows(out string) [][]string {
	var rs [][]string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		rs = append(rs, strings.Fields(l))
	}
	return rs
}

func wantLine(t *testing.T, out string, cells ...string) {
	t.Helper()
	wantCells(t, out, cells)
}

func wantCells(t *testing.T, out string, cells []string) {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if strings.Join(strings.Fields(l), " ") == strings.Join(cells, " ") {
			return
		}
	}
	t.Errorf("no line %q in\n%s", strings.Join(cells, " "), out)
}

func TestSocketPath(t *testing.T) {
	t.Setenv("GITORC_SOCKET", "")
	cmd := newPsCmd()
	if got := socketPath(cmd); got != defaultSocket {
		t.Errorf("default: %s", got)
	}
	t.Setenv("GITORC_SOCKET", "/run/x.sock")
	if got := socketPath(cmd); got != "/run/x.sock" {
		t.Errorf("env: %s", got)
	}
	cmd.Flags().String("socket", "", "")
	_ = cmd.Flags().Set("socket", "/run/flag.sock")
	if got := socketPath(cmd); got != "/run/flag.sock" {
		t.Errorf("flag: %s", got)
	}
}

func TestNoDaemon(t *testing.T) {
	t.Setenv("GITORC_SOCKET", t.TempDir()+"/none.sock")
	mustFail(t, "cannot reach the gitorc daemon at", "node", "ls")
}

func TestNodeCommands(t *testing.T) {
	serveAPI(t)
	out := mustRun(t, "node", "ls")
	if r := rows(out); len(r) != 5 || strings.Join(r[0], " ") != "ID NAME ROLE STATUS AVAILABILITY MANAGER TASKS LABELS" ||
		strings.Join(r[4], " ") != "warning: node beta is down" {
		t.Fatalf("node ls:\n%s", out)
	}
	wantLine(t, out, "n1", "alpha", "worker", "ready", "active", "2", "-")
	wantLine(t, out, "m1", "boss", "manager", "ready", "active", "leader", "2", "-")
	if out2 := mustRun(t, "nodes"); out2 != out {
		t.Errorf("gitorc nodes differs from node ls:\n%s", out2)
	}

	out = mustRun(t, "node", "update", "alpha", "--availability", "drain", "--label-add", "zone=a", "--label-add", "disk=ssd")
	if want := "alpha: availability drain, role worker, labels disk=ssd,zone=a\n"; out != want {
		t.Errorf("update: %q, want %q", out, want)
	}
	out = mustRun(t, "node", "update", "alpha", "--label-rm", "zone", "-o", "json")
	var n controlapi.Node
	if err := json.Unmarshal([]byte(out), &n); err != nil || n.Spec.Labels["disk"] != "ssd" || len(n.Spec.Labels) != 1 {
		t.Errorf("update -o json: %v\n%s", err, out)
	}
	mustFail(t, `invalid availability "sleepy"`, "node", "update", "alpha", "--availability", "sleepy")
	mustFail(t, "nothing to update", "node", "update", "alpha")
	mustFail(t, `node "zeta" not found`, "node", "inspect", "zeta")

	out = mustRun(t, "node", "inspect", "boss")
	var nodes []controlapi.Node
	if err := json.Unmarshal([]byte(out), &nodes); err != nil || len(nodes) != 1 || nodes[0].ID != "m1" {
		t.Errorf("inspect: %v\n%s", err, out)
	}

	// The last manager cannot be demoted; a worker can be promoted.
	mustFail(t, "is the last manager", "node", "demote", "boss")
	if out := mustRun(t, "node", "promote", "alpha"); out != "node alpha is to be a manager\n" {
		t.Errorf("promote: %q", out)
	}
	if out := mustRun(t, "node", "demote", "alpha"); out != "node alpha is to be a worker\n" {
		t.Errorf("demote: %q", out)
	}
	mustFail(t, "node alpha is ready: stop it first, or remove it with --force", "node", "rm", "alpha")
	if out := mustRun(t, "node", "rm", "beta"); out != "removed node beta (n2)\n" {
		t.Errorf("rm: %q", out)
	}
	mustRun(t, "node", "rm", "--force", "alpha")
	out = mustRun(t, "node", "ls", "-o", "json")
	if err := json.Unmarshal([]byte(out), &nodes); err != nil || len(nodes) != 1 {
		t.Errorf("after rm: %v\n%s", err, out)
	}
}

func TestServiceCommands(t *testing.T) {
	serveAPI(t)
	out := mustRun(t, "service", "ls")
	wantLine(t, out, "ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS", "UPDATE")
	wantLine(t, out, "svcweb", "shop_web", "replicated", "2/3", controlapitest.WebNew, "*:8080->80/tcp,host:5353->53/udp", "updating,", "1", "failure")
	wantLine(t, out, "svcmon", "shop_mon", "global", "2/2", "registry.local/mon:1", "-", "-")
	wantLine(t, out, "svcsolo", "solo", "replicated", "0/1", "registry.local/solo:1", "-", "-")
	// What the allocator could not give is said under the table.
	wantLine(t, out, "solo:", "VIP", "pool", "10.96.0.0/30", "exhausted")

	out = mustRun(t, "service", "inspect", "shop_web")
	var svcs []controlapi.Service
	if err := json.Unmarshal([]byte(out), &svcs); err != nil || len(svcs) != 1 || svcs[0].PreviousSpec.Task.Container.Image != controlapitest.WebOld {
		t.Errorf("inspect: %v\n%s", err, out)
	}

	if out := mustRun(t, "service", "scale", "shop_web=5", "solo=2"); !strings.Contains(out, "shop_web scaled to 5") || !strings.Contains(out, "solo scaled to 2") {
		t.Errorf("scale: %s", out)
	}
	mustFail(t, "want SERVICE=REPLICAS", "service", "scale", "shop_web")
	mustFail(t, "only replicated services scale", "service", "scale", "shop_mon=3")
	mustFail(t, `service "nope" not found`, "service", "scale", "nope=1")

	if out := mustRun(t, "service", "rollback", "shop_web"); out != "shop_web: rolling back to "+controlapitest.WebOld+"\n" {
		t.Errorf("rollback: %q", out)
	}
	mustFail(t, "solo has no previous spec", "service", "rollback", "solo")
	out = mustRun(t, "service", "ls", "-o", "json")
	if err := json.Unmarshal([]byte(out), &svcs); err != nil || len(svcs) != 3 {
		t.Fatalf("ls -o json: %v\n%s", err, out)
	}
	if web := svcs[1]; web.Update.State != api.UpdateRollbackStarted || web.Spec.Replicas != 3 || web.Progress() != "rolling back 0/3" {
		t.Errorf("after rollback: %+v replicas %d", web.Update, web.Spec.Replicas)
	}

	mustFail(t, "only --force is supported", "service", "update", "solo")
	if out := mustRun(t, "service", "update", "solo", "--force"); out != "solo: redeploying 2 task(s) (force update 1)\n" {
		t.Errorf("force: %q", out)
	}
}

func TestPs(t *testing.T) {
	serveAPI(t)
	out := mustRun(t, "ps", "shop_web")
	r := rows(out)
	if len(r) != 6 {
		t.Fatalf("ps shop_web:\n%s", out)
	}
	wantLine(t, out, "shop_web:", "updating,", "1", "failure") // its rollout, above its tasks
	wantLine(t, out, "ID", "NAME", "IMAGE", "NODE", "ADDRESS", "PORTS", "DESIRED", "CURRENT", "AGE", "ERROR")
	// The host-mode port is on the nodes of the tasks that should run;
	// the ingress port is the service's (service ls).
	wantLine(t, out, "t-web-1", "shop_web.1", controlapitest.WebNew, "alpha", "10.64.1.3/24", "*:5353->53/udp", "running", "running", "30s", "-")
	wantLine(t, out, "t-web-2", "shop_web.2", controlapitest.WebNew, "boss", "10.64.2.2/24", "*:5353->53/udp", "running", "running", "30s", "-")
	// A slot's earlier task is its history, as docker service ps shows it.
	wantLine(t, out, "t-web-2-old", `\_`, "shop_web.2", controlapitest.WebNew, "alpha", "10.64.1.2/24", "-", "shutdown", "failed", "45s", "task:", "non-zero", "exit", "(1)")
	wantCells(t, out, append([]string{"t-web-3", "shop_web.3", controlapitest.WebNew, "-", "-", "-", "running", "pending", "10s"},
		strings.Fields(controlapitest.PendingErr)...))

	out = mustRun(t, "ps", "shop") // a stack
	if r := rows(out); len(r) != 8 {
		t.Errorf("ps shop:\n%s", out)
	}
	wantLine(t, out, "t-mon-a", "shop_mon.alpha", "registry.local/mon:1", "alpha", "10.64.1.4/24", "-", "running", "running", "30s", "-")
	if out := mustRun(t, "ps"); len(rows(out)) != 8 {
		t.Errorf("ps:\n%s", out)
	}
	if out := mustRun(t, "ps", "--node", "boss"); len(rows(out)) != 4 {
		t.Errorf("ps --node boss:\n%s", out)
	}
	mustFail(t, `no service or stack named "nope"`, "ps", "nope")

	out = mustRun(t, "ps", "-o", "json", "shop_web")
	var tasks []controlapi.Task
	if err := json.Unmarshal([]byte(out), &tasks); err != nil || len(tasks) != 4 || tasks[3].Status.Err != controlapitest.PendingErr || tasks[0].NodeName != "alpha" {
		t.Errorf("ps -o json: %v\n%s", err, out)
	}
}

// network ls and inspect show a network's services with their names and
// VIPs, and its tasks with their addresses; ended tasks are not on it.
func TestNetwork(t *testing.T) {
	serveAPI(t)
	out := mustRun(t, "network", "ls")
	wantLine(t, out, "ID", "NAME", "STACK", "SCOPE", "SERVICES", "TASKS")
	wantLine(t, out, "netdefault", "shop_default", "shop", "egress", "shop_mon,shop_web", "4")
	out = mustRun(t, "network", "inspect", "shop_default")
	wantLine(t, out, "shop_web", "shop_web,web,www", "vip", controlapitest.WebVIP)
	wantLine(t, out, "shop_mon", "shop_mon,mon", "dnsrr", "-")
	wantLine(t, out, "shop_web.1", "alpha", "10.64.1.3/24", "running", "true")
	wantLine(t, out, "shop_mon.boss", "boss", "10.64.2.3/24", "running", "true")
	if strings.Contains(out, "10.64.1.2/") {
		t.Errorf("an ended task's address is listed:\n%s", out)
	}
	var nets []controlapi.Network
	if err := json.Unmarshal([]byte(mustRun(t, "network", "inspect", "-o", "json", "netdefault")), &nets); err != nil ||
		len(nets) != 1 || len(nets[0].Tasks) != 4 || nets[0].Services[1].VIP != controlapitest.WebVIP {
		t.Errorf("network inspect -o json: %v %+v", err, nets)
	}
	mustFail(t, `network "nope" not found`, "network", "inspect", "nope")
}

func TestStackSubcommands(t *testing.T) {
	serveAPI(t)
	ps := newStackPsCmd()
	ps.SetArgs([]string{"shop"})
	var b strings.Builder
	ps.SetOut(&b)
	if err := ps.Execute(); err != nil || len(rows(b.String())) != 8 {
		t.Errorf("stack ps: %v\n%s", err, b.String())
	}
	svcs := newStackServicesCmd()
	svcs.SetArgs([]string{"shop"})
	b.Reset()
	svcs.SetOut(&b)
	if err := svcs.Execute(); err != nil || len(rows(b.String())) != 3 {
		t.Errorf("stack services: %v\n%s", err, b.String())
	}
}

// What node ls and status flag: down nodes, and certificates their nodes
// have not renewed; nothing for healthy or removed nodes.
func TestNodeWarnings(t *testing.T) {
	at := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	defer func(f func() time.Time) { now = f }(now)
	now = func() time.Time { return at }
	node := func(id, name string, st api.NodeStatus) controlapi.Node {
		return controlapi.Node{Node: api.Node{Meta: api.Meta{ID: id}, Status: st}, Name: name}
	}
	fresh := api.NodeStatus{State: api.NodeReady, CertNotBefore: at.Add(-24 * time.Hour), CertNotAfter: at.Add(89 * 24 * time.Hour)}
	stuck := api.NodeStatus{State: api.NodeReady, CertNotBefore: at.Add(-80 * 24 * time.Hour), CertNotAfter: at.Add(10 * 24 * time.Hour)}
	expired := api.NodeStatus{State: api.NodeDown, Message: "missed 3 heartbeats", LastHeartbeat: at.Add(-3 * time.Hour),
		CertNotBefore: at.Add(-92 * 24 * time.Hour), CertNotAfter: at.Add(-2 * 24 * time.Hour)}
	removed := node("r1", "gone", stuck)
	removed.RemovedAt = at.Add(-time.Hour)
	got := nodeWarnings([]controlapi.Node{node("n1", "ok", fresh), node("n2", "stuck", stuck), node("n3", "old", expired), removed,
		node("n4", "new", api.NodeStatus{State: api.NodeUnknown})}, at)
	want := []string{
		"node stuck has not renewed its certificate, which expires in 10d (2026-06-11 12:00 UTC): it must reach a manager to renew it; see its log",
		"node old is down (last heartbeat 3h ago): missed 3 heartbeats",
		"node old has not renewed its certificate, which expired 2d ago (2026-05-30 12:00 UTC): it must reach a manager to renew it; see its log",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

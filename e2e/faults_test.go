package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/controlapi"
	apiclient "github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/gitorc/gitorc/e2e/harness"
)

// Fault benchmarks: how long the cluster takes to get over a killed leader
// and a cut-off worker, and whether it holds still on a loaded machine.
// Figures and commands: BENCHMARKS.md, Faults. Each takes the nodes' extra flags
// from GITORC_FAULT_FLAGS (e.g. "--raft-timeout 300ms --heartbeat-period
// 1s"), to compare settings.

// faultFlags are the extra flags of every node's bootstrap or join.
func faultFlags() []string { return strings.Fields(os.Getenv("GITORC_FAULT_FLAGS")) }

// envInt reads a positive count from the environment, or def.
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// socketAPI calls a node's control API over its socket, without a CLI
// process (one costs 50-60 ms of CPU here): for polling.
type socketAPI struct{ c *apiclient.Client }

func newSocketAPI(socket string) *socketAPI {
	return &socketAPI{c: apiclient.Unix(socket).WithTimeout(2 * time.Second)}
}

func (a *socketAPI) info() (controlapi.Info, error) { return a.c.Info(context.Background()) }

// managersCluster starts n managers: h1 bootstraps, the others join with
// the manager token; workers says whether they also run tasks.
func managersCluster(b *testing.B, n int, workers bool, extra []string) *cluster {
	c := hostsWithRegistry(b, n)
	addr := func(i int) string { return c.nw.Host(i).Addr.String() + ":4270" }
	start := func(i int, args ...string) {
		args = append(args, "--data-dir", c.dirs[i-1], "--insecure-registry", c.reg.Addr)
		if !workers {
			args = append(args, "--no-worker")
		}
		p, err := c.nw.Host(i).Start(c.logs, c.bin, append(args, extra...)...)
		if err != nil {
			b.Fatal(err)
		}
		c.procs = append(c.procs, p)
	}
	start(1, "bootstrap", "--listen", addr(1))
	c.socket = filepath.Join(c.dirs[0], "gitorc.sock")
	var tok string
	c.waitFor("a manager token", 60*time.Second, func() bool {
		out, err := c.gitorc("token", "manager")
		tok = strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
		return err == nil && strings.HasPrefix(tok, "GTRC-1-")
	})
	for i := 2; i <= n; i++ {
		start(i, "join", "--token", tok, "--listen", addr(i), addr(1))
	}
	c.waitFor(fmt.Sprintf("%d managers caught up", n), 90*time.Second, func() bool {
		return len(c.managers(true)) == n
	})
	if workers {
		c.waitFor(fmt.Sprintf("%d ready nodes", n), 60*time.Second, func() bool {
			return len(c.nodes(func(v nodeView) bool { return v.Status.State == "ready" })) == n
		})
	}
	return c
}

// leaderIndex is the index (0-based host) of the manager that leads as
// every live manager's socket reports it, or -1.
func (c *cluster) leaderIndex(live []int) int {
	for _, i := range live {
		if v, err := newSocketAPI(filepath.Join(c.dirs[i], "gitorc.sock")).info(); err == nil && v.IsLeader {
			return i
		}
	}
	return -1
}

func medianD(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

// BenchmarkLeaderFailover_Root: 3 managers on netns hosts; the leader is
// killed (SIGKILL) and, at once, a CLI write (gitorc node update
// --label-add) is started on the control socket of another manager; timed
// until it succeeds. Beside it, the time until that manager names a new
// leader (polled every 5 ms) and, on the healthy cluster, what the same
// write costs (the CLI's start and the forward). The killed manager is
// restarted and caught up before the next round. With FAILOVER_FAULT=cut
// the leader is not killed but cut off by nftables (its packets dropped:
// no connection is refused, dials to it hang), and healed after the
// round. Rounds: FAILOVER_ROUNDS (default 7). Run with -benchtime 1x.
func BenchmarkLeaderFailover_Root(b *testing.B) {
	c := managersCluster(b, 3, false, faultFlags())
	rounds := envInt("FAILOVER_ROUNDS", 7)
	var writes, seen, healthy []time.Duration
	failed := 0
	for r := range rounds {
		live := []int{0, 1, 2}
		li := -1
		c.waitFor("a leader", 30*time.Second, func() bool { li = c.leaderIndex(live); return li >= 0 })
		fi := (li + 1) % 3
		fsock := filepath.Join(c.dirs[fi], "gitorc.sock")
		c.socket = fsock
		var fid string
		if v, err := newSocketAPI(fsock).info(); err == nil {
			fid = v.Node
		}
		write := func(label string) error {
			out, err := exec.Command(c.bin, "--socket", fsock, "node", "update", "--label-add", label, fid).CombinedOutput()
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		}
		t0 := time.Now()
		if err := write(fmt.Sprintf("healthy=%d", r)); err != nil {
			b.Fatalf("write on a healthy cluster: %v", err)
		}
		healthy = append(healthy, time.Since(t0))

		oldLeader, _ := newSocketAPI(filepath.Join(c.dirs[li], "gitorc.sock")).info()
		seenc := make(chan time.Duration, 1)
		stop := make(chan struct{})
		killed := time.Now()
		go func() { // when the follower names another leader
			api := newSocketAPI(fsock)
			for {
				select {
				case <-stop:
					seenc <- -1
					return
				default:
				}
				if v, err := api.info(); err == nil && v.Leader != "" && v.Leader != oldLeader.Node {
					seenc <- time.Since(killed)
					return
				}
				time.Sleep(5 * time.Millisecond) // polling interval
			}
		}()
		cutOff := os.Getenv("FAILOVER_FAULT") == "cut"
		if cutOff {
			var rest []*harness.Host
			for i := range 3 {
				if i != li {
					rest = append(rest, c.nw.Hosts[i])
				}
			}
			c.nw.Partition([]*harness.Host{c.nw.Hosts[li]}, rest)
		} else {
			c.procs[li].Kill()
		}
		var err error
		for try := 0; try < 100; try++ { // bounded: a write that keeps failing ends the benchmark
			if err = write(fmt.Sprintf("failover=%d", r)); err == nil {
				break
			}
			failed++
			b.Logf("round %d: write failed %s after the kill: %v", r, time.Since(killed).Round(time.Millisecond), err)
		}
		took := time.Since(killed)
		if err != nil {
			close(stop)
			b.Fatalf("round %d: no write went through: %v", r, err)
		}
		var s time.Duration
		select {
		case s = <-seenc:
		case <-time.After(30 * time.Second):
			close(stop)
			s = <-seenc
		}
		writes, seen = append(writes, took), append(seen, s)
		b.Logf("round %d: killed (or cut off) %s; %s named a new leader after %s; the write went through after %s (healthy: %s)",
			r, c.nw.Hosts[li].Name, c.nw.Hosts[fi].Name, ms(s), ms(took), ms(healthy[len(healthy)-1]))

		// Restart the killed manager from its data dir (or heal the cut)
		// and wait until it follows the new leader.
		if cutOff {
			c.nw.HealPartition()
		} else {
			p, err := c.nw.Hosts[li].Start(c.logs, c.bin, "daemon", "--data-dir", c.dirs[li])
			if err != nil {
				b.Fatal(err)
			}
			c.procs[li] = p
		}
		c.waitFor("the old leader back", 60*time.Second, func() bool {
			v, err := newSocketAPI(filepath.Join(c.dirs[li], "gitorc.sock")).info()
			w, werr := newSocketAPI(fsock).info()
			return err == nil && werr == nil && v.Leader != "" && v.Leader == w.Leader
		})
	}
	b.ReportMetric(float64(medianD(writes))/1e6, "write-ms")
	b.ReportMetric(float64(medianD(seen))/1e6, "leader-seen-ms")
	b.ReportMetric(float64(medianD(healthy))/1e6, "healthy-write-ms")
	b.ReportMetric(float64(failed), "failed-writes")
	b.Logf("%d rounds, fault %q, flags %q: kill → CLI write through on another manager median %s (%v); new leader named median %s; healthy write median %s; failed CLI writes %d",
		rounds, os.Getenv("FAILOVER_FAULT"), faultFlags(), ms(medianD(writes)), writes, ms(medianD(seen)), ms(medianD(healthy)), failed)
}

// BenchmarkWorkerCutOff_Root: h1 a manager and worker, h2 and h3 workers,
// 6 replicas spread over them. A worker holding replicas is cut off by
// nftables (its packets dropped both ways, its link up), timed until all
// 6 replicas run on the other nodes; parts: cut → the node marked down
// (its object's update time), down → the replacements created (the
// orchestrator), created → the last one running (scheduling, dispatch,
// the start). The partition is then healed, the node comes back ready and
// its old tasks stop before the next round, which cuts the other worker.
// Rounds: CUTOFF_ROUNDS (default 3). Run with -benchtime 1x.
func BenchmarkWorkerCutOff_Root(b *testing.B) {
	c, reg := newClusterWith(b, 3, faultFlags())
	stack := fmt.Sprintf("services:\n  app:\n    image: %s/gitorc/busybox:1\n    command: [\"sleep\", \"3600\"]\n    deploy:\n      replicas: 6\n", reg)
	file := filepath.Join(b.TempDir(), "compose.yaml")
	if err := os.WriteFile(file, []byte(stack), 0o644); err != nil {
		b.Fatal(err)
	}
	if out, err := c.gitorc("stack", "deploy", "-c", file, "app"); err != nil {
		b.Fatalf("deploy: %v\n%s", err, out)
	}
	api := newSocketAPI(c.socket)
	tasks := func() []controlapi.Task {
		ts, _ := api.c.Tasks(context.Background(), apiclient.TaskFilter{Stack: "app"})
		return ts
	}
	running := func(ts []controlapi.Task) map[string]int {
		by := map[string]int{}
		for _, t := range ts {
			if t.DesiredState.String() == "running" && t.Status.State.String() == "running" {
				by[t.NodeID]++
			}
		}
		return by
	}
	c.waitFor("6 running replicas", 120*time.Second, func() bool { return total(running(tasks())) == 6 })
	ids := map[string]string{} // host name → node ID
	for i := 1; i < 3; i++ {
		var st struct {
			ID string `json:"id"`
		}
		raw, err := os.ReadFile(filepath.Join(c.dirs[i], "node.json"))
		if err != nil || json.Unmarshal(raw, &st) != nil {
			b.Fatalf("node.json of %s: %v", c.nw.Hosts[i].Name, err)
		}
		ids[c.nw.Hosts[i].Name] = st.ID
	}
	rounds := envInt("CUTOFF_ROUNDS", 3)
	var totals, detect, orch, start []time.Duration
	for r := range rounds {
		victim := c.nw.Hosts[1+r%2]
		others := []*harness.Host{c.nw.Hosts[0], c.nw.Hosts[2-r%2]}
		vid := ids[victim.Name]
		if running(tasks())[vid] == 0 {
			b.Fatalf("round %d: %s holds no replica to move", r, victim.Name)
		}
		before := map[string]bool{}
		for _, t := range tasks() {
			before[t.ID] = true
		}
		cut := time.Now()
		c.nw.Partition([]*harness.Host{victim}, others)
		var ts []controlapi.Task
		c.waitFor("the replicas of "+victim.Name+" running elsewhere", 90*time.Second, func() bool {
			ts = tasks()
			by := running(ts)
			return by[vid] == 0 && total(by) == 6
		})
		took := time.Since(cut)
		nodes, _ := api.c.Nodes(context.Background())
		var downAt, created, ready time.Time
		for _, n := range nodes {
			if n.ID == vid && n.Status.State.String() == "down" {
				downAt = n.UpdatedAt
			}
		}
		for _, t := range ts {
			if before[t.ID] || t.DesiredState.String() != "running" {
				continue
			}
			if created.IsZero() || t.CreatedAt.Before(created) {
				created = t.CreatedAt
			}
			at := t.ReadyAt
			if at.IsZero() {
				at = t.Status.Timestamp
			}
			if at.After(ready) {
				ready = at
			}
		}
		totals = append(totals, took)
		detect, orch, start = append(detect, downAt.Sub(cut)), append(orch, created.Sub(downAt)), append(start, ready.Sub(created))
		b.Logf("round %d: %s cut off; replicas running elsewhere after %s: marked down after %s, replacements created %s later, the last running %s after that",
			r, victim.Name, ms(took), ms(downAt.Sub(cut)), ms(created.Sub(downAt)), ms(ready.Sub(created)))

		c.nw.HealPartition()
		c.waitFor(victim.Name+" ready again, its old tasks stopped", 90*time.Second, func() bool {
			nodes, err := api.c.Nodes(context.Background())
			if err != nil {
				return false
			}
			for _, n := range nodes {
				if n.ID == vid && n.Status.State.String() != "ready" {
					return false
				}
			}
			for _, t := range tasks() {
				if t.NodeID == vid && t.Status.State.String() == "running" {
					return false
				}
			}
			return true
		})
		// The healed worker holds nothing now; the next round cuts the
		// other one, which holds replicas.
	}
	b.ReportMetric(float64(medianD(totals))/1e6, "moved-ms")
	b.ReportMetric(float64(medianD(detect))/1e6, "down-ms")
	b.Logf("%d rounds, flags %q: cut-off → replicas running elsewhere median %s (%v); parts (medians): down after %s, replacements created %s later, last running %s after that",
		rounds, faultFlags(), ms(medianD(totals)), totals, ms(medianD(detect)), ms(medianD(orch)), ms(medianD(start)))
}

// BenchmarkQuietUnderLoad_Root: 3 managers that are also workers, 6
// replicas, left alone for QUIET_FOR (default 2m) while two CPU burners
// (busy shell loops, stopped at the end) load the machine on top of
// whatever else runs on it. Counts what a fault would show and none
// happened: leader changes seen on any manager (polled every 100 ms) and
// nodes marked down (node down verdicts in the managers' logs). Run with
// -benchtime 1x.
func BenchmarkQuietUnderLoad_Root(b *testing.B) {
	c := managersCluster(b, 3, true, faultFlags())
	stack := fmt.Sprintf("services:\n  app:\n    image: %s/gitorc/busybox:1\n    command: [\"sleep\", \"3600\"]\n    deploy:\n      replicas: 6\n", c.reg.Addr)
	file := filepath.Join(b.TempDir(), "compose.yaml")
	if err := os.WriteFile(file, []byte(stack), 0o644); err != nil {
		b.Fatal(err)
	}
	if out, err := c.gitorc("stack", "deploy", "-c", file, "app"); err != nil {
		b.Fatalf("deploy: %v\n%s", err, out)
	}
	c.waitFor("6 running replicas", 120*time.Second, func() bool { return total(c.running("app")) == 6 })
	downsBefore := countInLogs(b, c.logs, `msg="node down"`)
	electionsBefore := countInLogs(b, c.logs, "entering candidate state")

	d := 2 * time.Minute
	if v, err := time.ParseDuration(os.Getenv("QUIET_FOR")); err == nil && v > 0 {
		d = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for range 2 {
		burner := exec.CommandContext(ctx, "sh", "-c", "while :; do :; done")
		if err := burner.Start(); err != nil {
			b.Fatal(err)
		}
		defer func() { _ = burner.Wait() }()
	}
	apis := []*socketAPI{}
	for i := range 3 {
		apis = append(apis, newSocketAPI(filepath.Join(c.dirs[i], "gitorc.sock")))
	}
	last := make([]string, 3)
	changes, polls := 0, 0
	for ctx.Err() == nil {
		for i, a := range apis {
			v, err := a.info()
			if err != nil {
				continue
			}
			if v.Leader == "" { // in an election: counted when one is named
				continue
			}
			if last[i] != "" && v.Leader != last[i] {
				changes++
				b.Logf("%s: leader %q → %q", c.nw.Hosts[i].Name, last[i], v.Leader)
			}
			last[i] = v.Leader
		}
		polls++
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond): // polling interval
		}
	}
	downs := countInLogs(b, c.logs, `msg="node down"`) - downsBefore
	// A follower that stood for election, even if it lost: a near miss.
	elections := countInLogs(b, c.logs, "entering candidate state") - electionsBefore
	running := total(c.running("app"))
	b.ReportMetric(float64(changes), "leader-changes")
	b.ReportMetric(float64(elections), "elections")
	b.ReportMetric(float64(downs), "down-verdicts")
	b.Logf("%s under 2 CPU burners, flags %q: %d leader changes seen over %d polls of 3 managers, %d elections started, %d node down verdicts, %d of 6 replicas running at the end",
		d, faultFlags(), changes, polls, elections, downs, running)
}

// countInLogs counts the lines holding s in the nodes' logs.
func countInLogs(b *testing.B, dir, s string) int {
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	n := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		n += strings.Count(string(raw), s)
	}
	return n
}

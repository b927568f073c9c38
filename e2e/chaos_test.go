package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/e2e/gitserver"
	"github.com/gitorc/gitorc/e2e/harness"
	"github.com/gitorc/gitorc/netplane/netns"
)

// The chaos test's hosts: h1–h3 managers (no tasks), h4–h5 workers, h6 a
// client outside the cluster.
const (
	chaosManagers = 3
	chaosWorkers  = 2
	chaosClient   = chaosManagers + chaosWorkers + 1
	chaosPort     = 8080
)

// chaos is a cluster following a Git repository, and what the test knows
// of the faults it put on it. The fault schedule runs on the test's
// goroutine; the pusher and the client run beside it and never call t.
type chaos struct {
	t    *testing.T
	c    *cluster
	repo *gitserver.Repo

	mu   sync.Mutex
	down map[int]bool               // hosts whose gitorc is killed
	cut  map[int]*harness.Isolation // hosts isolated from the others
}

// sock is host i's control socket.
func (ch *chaos) sock(i int) string { return filepath.Join(ch.c.dirs[i-1], "gitorc.sock") }

// on runs the CLI against host i's socket, bounded (a manager cut off can
// hang a forwarded write).
func (ch *chaos) on(i int, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, ch.c.bin, append([]string{"--socket", ch.sock(i)}, args...)...).CombinedOutput()
	return string(out), err
}

// managersByPreference lists the managers, those up and connected first.
func (ch *chaos) managersByPreference() []int {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	var good, rest []int
	for i := 1; i <= chaosManagers; i++ {
		switch {
		case ch.down[i]:
		case ch.cut[i] != nil:
			rest = append(rest, i)
		default:
			good = append(good, i)
		}
	}
	return append(good, rest...)
}

// cli runs the CLI against the first manager that answers it.
func (ch *chaos) cli(args ...string) (string, error) {
	out, err := "", fmt.Errorf("no manager is up")
	for _, i := range ch.managersByPreference() {
		if out, err = ch.on(i, args...); err == nil {
			return out, nil
		}
	}
	return out, err
}

// chaosStatus is the part of gitorc status -o json the test reads.
type chaosStatus struct {
	State api.SyncState `json:"state"`
}

func (ch *chaos) status() (api.SyncState, bool) {
	out, err := ch.cli("status", "-o", "json")
	var st chaosStatus
	if err != nil || json.Unmarshal([]byte(out), &st) != nil {
		return api.SyncState{}, false
	}
	return st.State, true
}

func (ch *chaos) tasks() []api.Task {
	out, err := ch.cli("ps", "app", "-o", "json")
	var ts []api.Task
	if err != nil || json.Unmarshal([]byte(out), &ts) != nil {
		return nil
	}
	return ts
}

// leader returns the host of the leading manager, as the managers up and
// connected see it (0: none, or they disagree).
func (ch *chaos) leader() int {
	ch.mu.Lock()
	var asked []int
	for i := 1; i <= chaosManagers; i++ {
		if !ch.down[i] && ch.cut[i] == nil {
			asked = append(asked, i)
		}
	}
	ch.mu.Unlock()
	found := 0
	for _, i := range asked {
		l := ch.leaderSeenBy(i)
		if l == 0 || (found != 0 && l != found) {
			return 0
		}
		found = l
	}
	return found
}

// leaderSeenBy returns the host of the leader manager i knows of (0: none).
func (ch *chaos) leaderSeenBy(i int) int {
	out, err := ch.on(i, "node", "ls", "-o", "json")
	var ns []nodeView
	if err != nil || json.Unmarshal([]byte(out), &ns) != nil {
		return 0
	}
	for _, n := range ns {
		if n.Manager != nil && n.Manager.Leader {
			for h := 1; h <= chaosManagers; h++ {
				if strings.HasPrefix(n.Manager.Addr, ch.c.nw.Host(h).Addr.String()+":") {
					return h
				}
			}
		}
	}
	return 0
}

// chaosNode is the part of gitorc node ls -o json the test reads.
type chaosNode struct {
	ID   string `json:"id"`
	Spec struct {
		Role string `json:"role"`
	} `json:"spec"`
	Status struct {
		State         string    `json:"state"`
		LastHeartbeat time.Time `json:"last_heartbeat"`
	} `json:"status"`
	Manager *struct {
		Addr   string `json:"addr"`
		Leader bool   `json:"leader"`
	} `json:"manager"`
}

// healthy reports whether every manager is up and knows the same leader,
// and every manager sees both workers ready.
func (ch *chaos) healthy() bool { return ch.whole(0, time.Time{}) }

// whole is healthy, and, when worker is not 0, that worker has started a
// new session with the leader since since (a restarted worker is still
// ready in the store until it misses 3 heartbeats).
func (ch *chaos) whole(worker int, since time.Time) bool {
	leader := 0
	id := ""
	if worker != 0 {
		id = ch.c.nodeIDs()[worker]
	}
	for i := 1; i <= chaosManagers; i++ {
		out, err := ch.on(i, "node", "ls", "-o", "json")
		var ns []chaosNode
		if err != nil || json.Unmarshal([]byte(out), &ns) != nil {
			return false
		}
		ready, l := 0, 0
		for _, n := range ns {
			if n.Spec.Role == "worker" && n.Status.State == "ready" && (n.ID != id || n.Status.LastHeartbeat.After(since)) {
				ready++
			}
			if n.Manager != nil && n.Manager.Leader {
				for h := 1; h <= chaosManagers; h++ {
					if strings.HasPrefix(n.Manager.Addr, ch.c.nw.Host(h).Addr.String()+":") {
						l = h
					}
				}
			}
		}
		if ready != chaosWorkers || l == 0 || (leader != 0 && l != leader) {
			return false
		}
		leader = l
	}
	return true
}

// startCluster bootstraps h1 as a manager that runs no tasks, joins h2
// and h3 as managers and h4, h5 as workers (through h2: any manager
// admits nodes), every node forwarding DNS to the test's resolver.
func (ch *chaos) startCluster() {
	c := ch.c
	t := ch.t
	addr := func(i int) string { return c.nw.Host(i).Addr.String() + ":4270" }
	start := func(i int, args ...string) {
		p, err := c.nw.Host(i).Start(c.logs, c.bin, append(append(args, "--data-dir", c.dirs[i-1], "--insecure-registry", c.reg.Addr), c.extra...)...)
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
	c.socket = ch.sock(1)
	mtok := token("manager")
	for i := 2; i <= chaosManagers; i++ {
		start(i, "join", "--token", mtok, "--listen", addr(i), "--no-worker", addr(1))
	}
	c.waitFor("3 managers caught up", 90*time.Second, func() bool { return len(c.managers(true)) == chaosManagers })
	wtok := token("worker")
	for i := chaosManagers + 1; i <= chaosManagers+chaosWorkers; i++ {
		start(i, "join", "--token", wtok, addr(2))
	}
	c.waitFor("every manager to see the workers ready", 90*time.Second, ch.healthy)
}

// chaosStack is the followed stack: web, the page server behind a
// published port, rolling start-first and rolling back on failure; a
// crashing web's command exits 1 at once. init is a job that must run
// once per slot, whatever happens later.
//
// The schedule's commits change web's page or its replicas, never both:
// a commit that changes web's spec and scales it down at once (3 replicas
// to 2) never converges today, faults or none — the scale-down retires
// the start-first replacement of slot 1 (not running yet, so chosen
// first) instead of slot 3, the updater creates another, and so on: a
// stream of tasks "scaled down", two tasks running in slot 1, slot 3
// kept, the update "updating 0/2" for good.
func chaosStack(reg, page string, replicas int, crash bool) string {
	command := ""
	if crash {
		command = "\n    command: [\"sh\", \"-c\", \"exit 1\"]"
	}
	return fmt.Sprintf(`services:
  web:
    image: %[1]s/%[2]s%[5]s
    ports: ["%[6]d:80"]
    environment:
      PAGE: %[3]s
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]
      interval: 1s
      retries: 2
    deploy:
      replicas: %[4]d
      update_config:
        parallelism: 1
        order: start-first
        failure_action: rollback
        monitor: 2s
      rollback_config:
        parallelism: 2
        order: start-first
  init:
    image: %[1]s/gitorc/busybox:1
    command: ["true"]
    deploy:
      mode: replicated-job
      replicas: 2
`, reg, pageImage, page, replicas, command, chaosPort)
}

// brokenStack does not load: its YAML is cut off mid-sequence.
const brokenStack = "services:\n  web:\n    image: [unclosed\n"

func chaosEnvInt(t *testing.T, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: not a count", name, s)
	}
	return n
}

// chaosParams reads the seed (GITORC_CHAOS_SEED; 1 by default, so that
// make test always plays the same short schedule, while make chaos draws a
// fresh one),
// the number of faults (GITORC_CHAOS_FAULTS, 6) and the longest a fault
// holds (GITORC_CHAOS_HOLD, 10s).
func chaosParams(t *testing.T) (seed uint64, faults int, hold time.Duration) {
	seed = 1
	if s := os.Getenv("GITORC_CHAOS_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("GITORC_CHAOS_SEED=%q: %v", s, err)
		}
		seed = n
	}
	faults = chaosEnvInt(t, "GITORC_CHAOS_FAULTS", 6)
	hold = 10 * time.Second
	if s := os.Getenv("GITORC_CHAOS_HOLD"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < time.Second {
			t.Fatalf("GITORC_CHAOS_HOLD=%q: a duration of a second or more", s)
		}
		hold = d
	}
	return seed, faults, hold
}

// A cluster of 3 managers and 2 workers following a Git branch, under a
// seeded random schedule of faults — the leader, a follower or a worker
// killed and restarted, a manager or a worker cut off and healed, a
// worker's containerd killed (its executor restarts it) — while commits
// arrive (good ones, one whose image crashes, one that does not load) and
// a client outside the cluster sends requests through a published port.
// After the schedule everything is healed, and the cluster must have
// converged: synced on the branch's last commit, a complete history, the
// bad commits failed and reverted, one running task per slot and the job
// run once, every manager's store the same, containers matching tasks,
// and requests answered again. Beside the pushes, register clients put
// and read node labels through random managers (chaos_linear_test.go),
// and porcupine checks that history: no committed write lost, no stale
// linearizable read, under the same faults.
//
// Requests that fail are counted per fault window and logged, not
// asserted: which of them a fault may fail depends on where the tasks
// run (requests to the other worker that it forwards to a task of the
// killed or cut-off one fail too). Once healed, every request must be
// answered.
//
// A revert that follows a rollout failure_action rolled back must end
// synced: it changes no service, and is judged on their health.
func TestChaos_Root(t *testing.T) {
	requireE2E(t)
	if why := gitserver.Requirements(); why != "" {
		t.Skip("chaos e2e: " + why)
	}
	seed, faults, hold := chaosParams(t)
	t.Logf("chaos seed %d, %d faults, each held up to %s (GITORC_CHAOS_SEED=%d GITORC_CHAOS_FAULTS=%d GITORC_CHAOS_HOLD=%s replays the schedule; timings are the machine's)",
		seed, faults, hold, seed, faults, hold)

	c := hostsWithRegistry(t, chaosClient)
	res := startResolver(t, c.nw.Gateway.String(), net.IP(c.nw.Gateway.AsSlice()))
	c.extra = []string{"--dns-upstream", res.addr}
	repo, err := gitserver.NewRepo(filepath.Join(t.TempDir(), "git"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Commit("main", "empty", map[string]string{"README": "stacks\n"}); err != nil {
		t.Fatal(err)
	}
	srv, err := gitserver.Serve(repo, net.JoinHostPort(c.nw.Gateway.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	pushPageImage(t, c)
	ch := &chaos{t: t, c: c, repo: repo, down: map[int]bool{}, cut: map[int]*harness.Isolation{}}
	t.Cleanup(func() { ch.keepArtifacts(seed) })
	// Heal what is still cut before the cluster's teardown runs.
	t.Cleanup(ch.healAllCuts)
	ch.startCluster()

	if out, err := c.gitorc("source", "set", "--repo", srv.URL, "--branch", "main", "--interval", "2s"); err != nil {
		t.Fatalf("source set: %v\n%s", err, out)
	}
	reg := c.registryAddr()
	first, err := repo.Commit("main", "app: web v0, 2 replicas", map[string]string{"app/compose.yaml": chaosStack(reg, "v0", 2, false)})
	if err != nil {
		t.Fatal(err)
	}
	c.waitFor("the first commit synced", 180*time.Second, func() bool {
		st, ok := ch.status()
		return ok && st.Revision == first && st.Phase == api.SyncSynced
	})
	cl := &client{ns: netns.NS{Path: "/run/netns/" + c.nw.Host(chaosClient).NS}, addr: c.nw.Host(chaosClient).Addr.String()}
	c.waitFor("the page through both workers", 120*time.Second, func() bool {
		for w := chaosManagers + 1; w <= chaosManagers+chaosWorkers; w++ {
			if line, err := cl.get(ch.url(w)); err != nil || !strings.HasSuffix(line, " v0") {
				return false
			}
		}
		return true
	})

	rng := rand.New(rand.NewPCG(seed, 1))
	plan := planPushes(rand.New(rand.NewPCG(seed, 2)), faults)
	sched := planFaults(rng, faults, hold)
	t.Logf("pushes: %s", pushKinds(plan))

	load := ch.startLoad(cl, 100000)
	regs := ch.startRegisters(c.nodeIDs()[1], seed, 100000)
	p := ch.startPusher(plan)
	started := time.Now()
	windows := ch.runFaults(sched)
	<-p.done
	ch.healAllCuts()
	ch.restartAllDown()
	c.waitFor("every node back after the schedule", 180*time.Second, ch.healthy)
	c.socket = ch.sock(ch.managersByPreference()[0])
	load.stop()
	t.Logf("schedule done in %s", time.Since(started).Round(time.Second))
	ch.report(windows, p, load)
	regs.check()

	ch.checkPushes(p)
	// A last commit after the heal, a new page: the branch's last good
	// commit, which the cluster must be synced on.
	final, err := repo.Commit("main", "app: web final", map[string]string{"app/compose.yaml": chaosStack(reg, "final", p.replicas, false)})
	if err != nil {
		t.Fatal(err)
	}
	ch.checkConverged(final, p.replicas, p)
	ch.checkRequests(cl, "final")
}

// keepArtifacts copies the nodes' logs, and what gitorc ps, status,
// history and service ls show, under $GITORC_ARTIFACTS/chaos-<seed> when
// the test failed, to read after the test's directories are gone.
func (ch *chaos) keepArtifacts(seed uint64) {
	t, c := ch.t, ch.c
	root := os.Getenv("GITORC_ARTIFACTS")
	if root == "" || !t.Failed() {
		return
	}
	dir := filepath.Join(root, fmt.Sprintf("chaos-%d", seed))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("artifacts: %v", err)
		return
	}
	files, _ := filepath.Glob(filepath.Join(c.logs, "*.log"))
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil {
			_ = os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644)
		}
	}
	for _, args := range [][]string{{"ps", "-o", "json"}, {"status", "-o", "json"}, {"history", "-o", "json"}, {"service", "ls", "-o", "json"}} {
		out, _ := ch.cli(args...)
		_ = os.WriteFile(filepath.Join(dir, strings.Join(args[:len(args)-2], "-")+".json"), []byte(out), 0o644)
	}
	t.Logf("logs kept in %s", dir)
}

// url is the published port on host i.
func (ch *chaos) url(i int) string {
	return fmt.Sprintf("http://%s:%d/", ch.c.nw.Host(i).Addr, chaosPort)
}

func (ch *chaos) healAllCuts() {
	ch.mu.Lock()
	cuts := ch.cut
	ch.cut = map[int]*harness.Isolation{}
	ch.mu.Unlock()
	for _, iso := range cuts {
		iso.Heal()
	}
}

// restartAllDown starts again every node the schedule left killed.
func (ch *chaos) restartAllDown() {
	ch.mu.Lock()
	var down []int
	for i, d := range ch.down {
		if d {
			down = append(down, i)
		}
	}
	ch.mu.Unlock()
	for _, i := range down {
		ch.restart(i)
	}
}

// restart starts host i's node again from its data dir.
func (ch *chaos) restart(i int) {
	c := ch.c
	p, err := c.nw.Host(i).Start(c.logs, c.bin, "daemon", "--data-dir", c.dirs[i-1])
	if err != nil {
		ch.t.Fatal(err)
	}
	c.procs[i-1] = p
	ch.mu.Lock()
	delete(ch.down, i)
	ch.mu.Unlock()
}

func isWorker(i int) bool { return i > chaosManagers && i <= chaosManagers+chaosWorkers }

func pushKinds(ps []*chaosPush) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, ", ")
}

// checkPushes asserts what each commit of the schedule came to: a
// crashing commit failed and was reverted, a commit that does not load
// failed with nothing applied; good ones are reported (a fault may fail
// a rollout, and a failed good commit is reverted too).
func (ch *chaos) checkPushes(p *pusher) {
	t := ch.t
	for _, e := range p.errs {
		t.Errorf("pusher: %s", e)
	}
	for _, ps := range p.pushes {
		t.Logf("push %s %s (page %s, %d replicas): %s", ps, short(ps.commit), ps.page, ps.replicas, ps.outcome)
	}
}

func short(c string) string {
	if len(c) > 7 {
		return c[:7]
	}
	return c
}

// checkConverged waits for the cluster to be synced on final and checks
// its history, its tasks, the managers' stores and the workers'
// containers.
func (ch *chaos) checkConverged(final string, replicas int, p *pusher) {
	t, c := ch.t, ch.c
	var st api.SyncState
	c.waitFor("synced on the branch's last commit "+short(final), 300*time.Second, func() bool {
		var ok bool
		st, ok = ch.status()
		return ok && st.Revision == final && st.Phase == api.SyncSynced && st.InFlight == nil
	})
	if st.LastGoodRevision != final {
		t.Errorf("last good revision %s, want %s", short(st.LastGoodRevision), short(final))
	}

	// The history: complete, no record twice, the bad commits failed
	// (and the crashing ones reverted).
	var hist []api.SyncRecord
	if out, err := ch.cli("history", "-o", "json"); err != nil || json.Unmarshal([]byte(out), &hist) != nil {
		t.Fatalf("history: %v\n%s", err, out)
	}
	ids := map[string]bool{}
	applied := map[string]int{}
	for _, h := range hist {
		if h.Result == api.SyncProgressing || h.FinishedAt.IsZero() {
			t.Errorf("history record %s of %s left %s (finished %v)", h.ID, short(h.Revision), h.Result, h.FinishedAt)
		}
		if ids[h.ID] {
			t.Errorf("history record %s twice", h.ID)
		}
		ids[h.ID] = true
		switch h.Trigger {
		case api.TriggerPoll, api.TriggerWebhook, api.TriggerManual, api.TriggerWatch:
			applied[h.Revision]++
		}
	}
	for rev, n := range applied {
		if n > 1 {
			t.Errorf("revision %s applied %d times by syncs of the source", short(rev), n)
		}
	}
	for _, ps := range p.pushes {
		if ps.kind == pushGood || ps.commit == "" || ps.outcome == outcomeTimeout {
			continue
		}
		if !slices.Contains(st.FailedRevisions, ps.commit) {
			t.Errorf("%s commit %s is not marked failed: %v", ps.kind, short(ps.commit), st.FailedRevisions)
		}
		want := api.SyncFailed
		if ps.kind == pushCrash {
			want = api.SyncDegraded
		}
		var rec *api.SyncRecord
		reverted := false
		for i := range hist {
			h := &hist[i]
			if h.Revision == ps.commit && h.Trigger != api.TriggerRevert && rec == nil {
				rec = h
			}
			if ps.kind == pushCrash && rec != nil && h.Trigger == api.TriggerRevert && !h.StartedAt.Before(rec.StartedAt) && !reverted {
				reverted = true
				if h.Result != api.SyncSynced {
					// The revert restores what failure_action's rollback
					// already runs: it changes no service and is judged on
					// their health, not on that rollback (Rollout.Unchanged).
					t.Errorf("the revert after %s %s ended %s: %s", ps.kind, short(ps.commit), h.Result, h.Message)
				}
			}
		}
		switch {
		case rec == nil:
			t.Errorf("%s commit %s has no history record", ps.kind, short(ps.commit))
		case rec.Result != want:
			t.Errorf("%s commit %s ended %s, want %s: %s", ps.kind, short(ps.commit), rec.Result, want, rec.Message)
		case ps.kind == pushCrash && !reverted:
			t.Errorf("crashing commit %s was not reverted: %s", short(ps.commit), rec.Message)
		}
	}

	// Tasks: each web slot has exactly one running task, the job's two
	// tasks completed once each.
	var ts []api.Task
	c.waitFor("one running web task per slot", 180*time.Second, func() bool {
		ts = ch.tasks()
		slots := map[uint64]int{}
		for _, tk := range ts {
			if tk.ServiceName == "app_web" && tk.Status.State == api.TaskRunning {
				slots[tk.Slot]++
			}
		}
		if len(slots) != replicas {
			return false
		}
		for s, n := range slots {
			if n != 1 || s < 1 || s > uint64(replicas) {
				return false
			}
		}
		return true
	})
	jobs, done := 0, 0
	for _, tk := range ts {
		if tk.ServiceName == "app_init" {
			jobs++
			if tk.Status.State == api.TaskComplete {
				done++
			}
		}
	}
	if jobs != 2 || done != 2 {
		t.Errorf("the job has %d tasks, %d complete; want its 2, each run once", jobs, done)
	}

	ch.checkStoresAgree()
	ch.checkContainers()
}

// managerView is what a manager's own store holds, read from its socket.
func (ch *chaos) managerView(i int) (string, bool) {
	svcOut, err := ch.on(i, "service", "ls", "-o", "json")
	if err != nil {
		return "", false
	}
	var svcs []api.Service
	if json.Unmarshal([]byte(svcOut), &svcs) != nil {
		return "", false
	}
	histOut, err := ch.on(i, "history", "-o", "json")
	if err != nil {
		return "", false
	}
	var hist []api.SyncRecord
	if json.Unmarshal([]byte(histOut), &hist) != nil {
		return "", false
	}
	st, err := ch.on(i, "status", "-o", "json")
	var s chaosStatus
	if err != nil || json.Unmarshal([]byte(st), &s) != nil {
		return "", false
	}
	psOut, err := ch.on(i, "ps", "app", "-o", "json")
	var ts []api.Task
	if err != nil || json.Unmarshal([]byte(psOut), &ts) != nil {
		return "", false
	}
	type task struct {
		ID, Node, Desired, State string
		Slot                     uint64
	}
	var tasks []task
	for _, tk := range ts {
		tasks = append(tasks, task{tk.ID, tk.NodeID, tk.DesiredState.String(), tk.Status.State.String(), tk.Slot})
	}
	b, _ := json.MarshalIndent(map[string]any{
		"services": svcs, "history": hist, "tasks": tasks,
		"sync": map[string]any{"revision": s.State.Revision, "phase": s.State.Phase, "last_good": s.State.LastGoodRevision,
			"failed": s.State.FailedRevisions, "version": s.State.Version},
	}, "", " ")
	return string(b), true
}

// checkStoresAgree waits until every manager's store holds the same
// services (specs and versions), history, sync state and tasks.
func (ch *chaos) checkStoresAgree() {
	views := make([]string, chaosManagers+1)
	agree := func() bool {
		for i := 1; i <= chaosManagers; i++ {
			v, ok := ch.managerView(i)
			if !ok {
				return false
			}
			views[i] = v
		}
		for i := 2; i <= chaosManagers; i++ {
			if views[i] != views[1] {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(90 * time.Second)
	for !agree() {
		if time.Now().After(deadline) {
			for i := 2; i <= chaosManagers; i++ {
				if views[i] != views[1] {
					ch.t.Errorf("manager h%d's store differs from h1's:\n--- h1\n%s\n--- h%d\n%s", i, views[1], i, views[i])
				}
			}
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// checkContainers waits until each worker's containerd runs exactly the
// containers of the tasks the store has running on it: no container of a
// task the store stopped, none twice.
func (ch *chaos) checkContainers() {
	c := ch.c
	ids := c.nodeIDs()
	var last string
	match := func() bool {
		want := map[string][]string{}
		for _, tk := range ch.tasks() {
			if tk.Status.State == api.TaskRunning {
				want[tk.NodeID] = append(want[tk.NodeID], tk.ID)
			}
		}
		for w := chaosManagers + 1; w <= chaosManagers+chaosWorkers; w++ {
			sock := filepath.Join(c.dirs[w-1], "executor", "containerd", "containerd.sock")
			out, err := exec.Command("ctr", "--address", sock, "--namespace", "gitorc", "task", "ls").Output()
			if err != nil {
				last = fmt.Sprintf("h%d: ctr task ls: %v", w, err)
				return false
			}
			var got []string
			for _, l := range strings.Split(string(out), "\n")[1:] {
				if f := strings.Fields(l); len(f) == 3 && f[2] == "RUNNING" {
					got = append(got, f[0])
				}
			}
			slices.Sort(got)
			exp := want[ids[w]]
			slices.Sort(exp)
			if !slices.Equal(got, exp) {
				last = fmt.Sprintf("h%d runs containers %v, the store has tasks %v running there", w, got, exp)
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(90 * time.Second)
	for !match() {
		if time.Now().After(deadline) {
			ch.t.Errorf("containers do not match tasks: %s", last)
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// checkRequests waits until both workers serve the final page, then
// asserts that every one of a bounded burst of requests is answered.
func (ch *chaos) checkRequests(cl *client, page string) {
	c := ch.c
	c.waitFor("the final page through both workers", 120*time.Second, func() bool {
		for w := chaosManagers + 1; w <= chaosManagers+chaosWorkers; w++ {
			if line, err := cl.get(ch.url(w)); err != nil || !strings.HasSuffix(line, " "+page) {
				return false
			}
		}
		return true
	})
	var failed []string
	n := 0
	for range 20 {
		for w := chaosManagers + 1; w <= chaosManagers+chaosWorkers; w++ {
			n++
			if line, err := cl.get(ch.url(w)); err != nil || !strings.HasSuffix(line, " "+page) {
				failed = append(failed, fmt.Sprintf("h%d: %q %v", w, line, err))
			}
		}
	}
	ch.t.Logf("after the heal: %d of %d requests failed", len(failed), n)
	if len(failed) > 0 {
		ch.t.Errorf("requests fail after the heal:\n%s", strings.Join(failed, "\n"))
	}
}

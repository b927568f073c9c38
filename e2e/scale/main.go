// Command scale runs 3 gitorc managers (processes of the gitorc binary on
// loopback addresses 127.0.0.11-13) against thousands of simulated worker
// nodes (e2e/simnode, in this process), and prints a table: managers' CPU
// and memory, heartbeats the leader handles, time to schedule and
// dispatch a deployment until every task runs, time to detect and
// reschedule lost nodes, and failover time under that load. Run as root
// (the managers' control sockets are root-only):
//
//	go run ./e2e/scale -nodes 5000 -services 1000 -replicas 100
//
// -profile DIR keeps a 20 s CPU profile of the leader taken while the
// deployment converges (from the daemon's pprof endpoint on its control
// socket), and the managers' logs.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/gitorc/gitorc/cluster/dispatcher"
	"github.com/gitorc/gitorc/e2e/simnode"
)

type options struct {
	bin                       string
	nodes, services, replicas int
	stacks                    int
	lost                      int
	profile                   string
	timeout                   time.Duration
	raftTimeout               time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "", "the gitorc binary (default: built from ./cmd/gitorc)")
	flag.IntVar(&o.nodes, "nodes", 100, "simulated worker nodes")
	flag.IntVar(&o.services, "services", 10, "services to deploy")
	flag.IntVar(&o.replicas, "replicas", 100, "replicas of each service")
	flag.IntVar(&o.stacks, "stacks", 10, "stacks the services are spread over (deployed at once)")
	flag.IntVar(&o.lost, "lost", 100, "simulated nodes to stop after the deployment converged")
	flag.StringVar(&o.profile, "profile", "", "directory for the leader's CPU profile and the managers' logs")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up after this long in any one phase")
	flag.DurationVar(&o.raftTimeout, "raft-timeout", 0, "the managers' --raft-timeout (default: the daemon's)")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "scale: needs root (the managers' control sockets)")
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

// manager is one gitorc manager process.
type manager struct {
	addr, metrics, dir, socket string
	cmd                        *exec.Cmd
	done                       chan struct{}
	// hc reaches the control socket's debug endpoints (pprof); api is
	// the control API's client.
	hc  *http.Client
	api *client.Client
}

func (m *manager) alive() bool {
	if m.cmd == nil {
		return false // never started
	}
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

func (m *manager) kill() {
	if m.alive() {
		_ = m.cmd.Process.Kill()
		<-m.done
	}
}

// usage is a process's CPU time and memory.
type usage struct {
	cpu      time.Duration
	rss, hwm int64 // bytes
}

func (m *manager) usage() usage {
	var u usage
	if !m.alive() {
		return u
	}
	pid := m.cmd.Process.Pid
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i > 0 {
			f := strings.Fields(s[i+1:])
			if len(f) > 13 {
				ut, _ := strconv.ParseInt(f[11], 10, 64)
				st, _ := strconv.ParseInt(f[12], 10, 64)
				u.cpu = time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ 100
			}
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			var kb int64
			if _, err := fmt.Sscanf(sc.Text(), "VmRSS: %d kB", &kb); err == nil {
				u.rss = kb << 10
			}
			if _, err := fmt.Sscanf(sc.Text(), "VmHWM: %d kB", &kb); err == nil {
				u.hwm = kb << 10
			}
		}
	}
	return u
}

// metric sums the samples of a Prometheus metric (with any labels) from
// the manager's /metrics.
func (m *manager) metric(ctx context.Context, name string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.metrics+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sum, found := 0.0, false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest != "" && rest[0] != ' ' && rest[0] != '{' {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum, found = sum+v, true
		}
	}
	if !found {
		return 0, fmt.Errorf("%s: no metric %s", m.metrics, name)
	}
	return sum, sc.Err()
}

// histogram reads a histogram's cumulative buckets (le → count).
func (m *manager) histogram(ctx context.Context, name string) (map[float64]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.metrics+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[float64]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	prefix := name + `_bucket{le="`
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		le, count, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		l, err1 := strconv.ParseFloat(le, 64)
		c, err2 := strconv.ParseFloat(count, 64)
		if err1 == nil && err2 == nil {
			out[l] = c
		}
	}
	return out, sc.Err()
}

type cluster struct {
	o    options
	bin  string
	tmp  string
	logs string
	mgrs []*manager
}

func run(ctx context.Context, o options) (err error) {
	tmp, err := os.MkdirTemp("", "gitorc-scale-")
	if err != nil {
		return err
	}
	c := &cluster{o: o, bin: o.bin, tmp: tmp, logs: filepath.Join(tmp, "logs")}
	if o.profile != "" {
		if c.logs, err = filepath.Abs(o.profile); err != nil {
			return err
		}
	}
	defer func() {
		for _, m := range c.mgrs {
			m.kill()
		}
		_ = os.RemoveAll(tmp)
	}()
	if err := os.MkdirAll(c.logs, 0o755); err != nil {
		return err
	}
	if c.bin == "" {
		c.bin = filepath.Join(tmp, "gitorc")
		if out, err := exec.Command("go", "build", "-o", c.bin, "./cmd/gitorc").CombinedOutput(); err != nil {
			return fmt.Errorf("build gitorc: %v\n%s", err, out)
		}
	}
	if err := c.startManagers(ctx); err != nil {
		return err
	}
	err = c.measure(ctx)
	if err != nil {
		c.dumpGoroutines()
	}
	return err
}

// dumpGoroutines keeps the live managers' goroutine stacks beside their
// logs, for a run that failed.
func (c *cluster) dumpGoroutines() {
	for _, m := range c.mgrs {
		if !m.alive() {
			continue
		}
		path := filepath.Join(c.logs, filepath.Base(m.dir)+"-goroutines.txt")
		if err := c.fetchDebug(context.Background(), m, "/debug/pprof/goroutine?debug=2", path); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines of", m.addr+":", err)
		} else {
			fmt.Fprintln(os.Stderr, "goroutines of", m.addr, "in", path)
		}
	}
}

func (c *cluster) startManagers(ctx context.Context) error {
	for i := range 3 {
		ip := fmt.Sprintf("127.0.0.%d", 11+i)
		for _, port := range []string{"4270", "4271", "9100"} {
			if ln, err := net.Listen("tcp", ip+":"+port); err != nil {
				return fmt.Errorf("%s:%s is taken (another run?): %w", ip, port, err)
			} else {
				ln.Close()
			}
		}
		dir := filepath.Join(c.tmp, fmt.Sprintf("m%d", i+1))
		m := &manager{addr: ip + ":4270", metrics: ip + ":9100", dir: dir, socket: filepath.Join(dir, "gitorc.sock"), done: make(chan struct{})}
		m.hc = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", m.socket)
		}}}
		m.api = client.Unix(m.socket).WithTimeout(30 * time.Second)
		c.mgrs = append(c.mgrs, m)
	}
	start := func(m *manager, args ...string) error {
		log, err := os.Create(filepath.Join(c.logs, filepath.Base(m.dir)+".log"))
		if err != nil {
			return err
		}
		args = append(args, "--data-dir", m.dir, "--listen", m.addr, "--no-worker", "--metrics-listen", m.metrics)
		if c.o.raftTimeout > 0 {
			args = append(args, "--raft-timeout", c.o.raftTimeout.String())
		}
		m.cmd = exec.Command(c.bin, args...)
		m.cmd.Stdout, m.cmd.Stderr = log, log
		m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := m.cmd.Start(); err != nil {
			log.Close()
			return err
		}
		go func() { _ = m.cmd.Wait(); log.Close(); close(m.done) }()
		return nil
	}
	// Pools of their own: the managers run no tasks, and the default task
	// pool may overlap a test network on this host.
	if err := start(c.mgrs[0], "bootstrap", "--task-pool", "10.160.0.0/11", "--vip-pool", "10.192.0.0/16"); err != nil {
		return err
	}
	mtok, err := c.token(ctx, c.mgrs[0], "manager")
	if err != nil {
		return err
	}
	for _, m := range c.mgrs[1:] {
		if err := start(m, "join", "--token", mtok, c.mgrs[0].addr); err != nil {
			return err
		}
	}
	return c.waitFor(ctx, "3 managers", func() (bool, string) {
		nodes, err := c.mgrs[0].api.Nodes(ctx)
		if err != nil {
			return false, err.Error()
		}
		n := 0
		for _, nd := range nodes {
			if nd.Manager != nil && nd.Manager.CaughtUp {
				n++
			}
		}
		return n == 3, fmt.Sprintf("%d caught up", n)
	})
}

func (c *cluster) token(ctx context.Context, m *manager, role string) (string, error) {
	var tok string
	err := c.waitFor(ctx, "a "+role+" token", func() (bool, string) {
		if !m.alive() {
			b, _ := os.ReadFile(filepath.Join(c.logs, filepath.Base(m.dir)+".log"))
			return false, fmt.Sprintf("%s exited: %s", m.addr, tail(string(b), 600))
		}
		out, err := m.api.Token(ctx, role)
		if err != nil {
			return false, err.Error()
		}
		tok = out.Token
		return strings.HasPrefix(tok, "GTRC-1-"), ""
	})
	return tok, err
}

// tail is the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// waitFor polls cond until it holds, ctx ends or the phase timeout passes.
func (c *cluster) waitFor(ctx context.Context, what string, cond func() (bool, string)) error {
	return c.waitForEvery(ctx, what, 100*time.Millisecond, cond)
}

// waitForEvery is waitFor polling every interval.
func (c *cluster) waitForEvery(ctx context.Context, what string, interval time.Duration, cond func() (bool, string)) error {
	deadline := time.Now().Add(c.o.timeout)
	last := ""
	for {
		ok, msg := cond()
		if ok {
			return nil
		}
		if msg != "" {
			last = msg
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not after %s (%s)", what, c.o.timeout, last)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-time.After(interval):
		}
	}
}

// logCount counts the lines of the managers' logs that hold s.
func (c *cluster) logCount(s string) int {
	n := 0
	for _, m := range c.mgrs {
		b, err := os.ReadFile(filepath.Join(c.logs, filepath.Base(m.dir)+".log"))
		if err == nil {
			n += strings.Count(string(b), s)
		}
	}
	return n
}

// leader returns the manager that leads, as live managers see it.
func (c *cluster) leader(ctx context.Context) (*manager, error) {
	for _, m := range c.mgrs {
		if !m.alive() {
			continue
		}
		if info, err := m.api.Info(ctx); err == nil && info.IsLeader {
			return m, nil
		}
	}
	return nil, errors.New("no leader")
}

// services reads the services and sums their running and desired tasks.
func (c *cluster) converged(ctx context.Context, m *manager) (running, desired uint64, err error) {
	svcs, err := m.api.Services(ctx)
	if err != nil {
		return 0, 0, err
	}
	for _, s := range svcs {
		running += s.Running
		desired += s.Desired
	}
	return running, desired, nil
}

// readyNodes counts the ready workers the manager knows.
func (c *cluster) readyNodes(ctx context.Context, m *manager) (ready, down int, err error) {
	nodes, err := m.api.Nodes(ctx)
	if err != nil {
		return 0, 0, err
	}
	for _, n := range nodes {
		if n.Manager != nil {
			continue
		}
		switch n.Status.State.String() {
		case "ready":
			ready++
		case "down":
			down++
		}
	}
	return ready, down, nil
}

// stackFile is a compose file of n services of r replicas each.
func stackFile(first, n, r int) string {
	var b strings.Builder
	b.WriteString("services:\n")
	for i := range n {
		fmt.Fprintf(&b, "  s%04d:\n    image: sim.invalid/app:1\n    deploy:\n      replicas: %d\n", first+i, r)
	}
	return b.String()
}

type row struct{ what, value string }

func (c *cluster) measure(ctx context.Context) error {
	o := c.o
	var rows []row
	add := func(what, format string, args ...any) {
		r := row{what, fmt.Sprintf(format, args...) + "; load " + loadAvg()}
		rows = append(rows, r)
		fmt.Fprintf(os.Stderr, "  %s: %s\n", r.what, r.value)
	}
	usages := func(label string) {
		var parts []string
		for i, m := range c.mgrs {
			u := m.usage()
			if !m.alive() {
				parts = append(parts, fmt.Sprintf("m%d killed", i+1))
				continue
			}
			parts = append(parts, fmt.Sprintf("m%d %.0f MiB (peak %.0f)", i+1, float64(u.rss)/(1<<20), float64(u.hwm)/(1<<20)))
		}
		add("managers' RSS "+label, "%s", strings.Join(parts, ", "))
	}
	cpuSince := func(before []usage, d time.Duration) string {
		var parts []string
		for i, m := range c.mgrs {
			if !m.alive() {
				continue
			}
			cpu := m.usage().cpu - before[i].cpu
			parts = append(parts, fmt.Sprintf("m%d %.2f", i+1, cpu.Seconds()/d.Seconds()))
		}
		return strings.Join(parts, ", ")
	}
	snapshot := func() []usage {
		out := make([]usage, len(c.mgrs))
		for i, m := range c.mgrs {
			out[i] = m.usage()
		}
		return out
	}
	leader, err := c.leader(ctx)
	if err != nil {
		return err
	}
	wtok, err := c.token(ctx, leader, "worker")
	if err != nil {
		return err
	}

	// Join.
	fmt.Fprintf(os.Stderr, "joining %d simulated nodes\n", o.nodes)
	t0, u0 := time.Now(), snapshot()
	fleet, err := simnode.Join(ctx, simnode.Config{Join: leader.addr, Token: wtok, Nodes: o.nodes})
	if err != nil {
		return err
	}
	joined := time.Since(t0)
	fctx, stopFleet := context.WithCancel(ctx)
	fleetDone := make(chan struct{})
	go func() { _ = fleet.Run(fctx); close(fleetDone) }()
	defer func() { stopFleet(); <-fleetDone }()
	if err := c.waitForEvery(ctx, "nodes ready", 250*time.Millisecond, func() (bool, string) {
		n, _, err := c.readyNodes(ctx, leader)
		if err != nil {
			return false, err.Error()
		}
		return n == o.nodes, fmt.Sprintf("%d ready", n)
	}); err != nil {
		return err
	}
	ready := time.Since(t0)
	add("join (certificate per node)", "%d nodes in %s (%.0f/s)", o.nodes, joined.Round(time.Millisecond), float64(o.nodes)/joined.Seconds())
	add("join → all ready", "%s; managers' CPU (cores): %s", ready.Round(time.Millisecond), cpuSince(u0, ready))

	// Idle: heartbeats.
	// The managers run with the default liveness settings.
	period, missed := dispatcher.DefaultHeartbeatPeriod, dispatcher.DefaultMissedHeartbeats
	idle := 15 * time.Second
	fmt.Fprintf(os.Stderr, "idle %s with %d nodes\n", idle, o.nodes)
	if l, err := c.leader(ctx); err == nil {
		leader = l // leadership may have moved under load
	}
	hb0, _ := leader.metric(ctx, "gitorc_dispatcher_heartbeats_total")
	g0, _ := leader.histogram(ctx, "gitorc_dispatcher_heartbeat_interval_seconds")
	t1, u1 := time.Now(), snapshot()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(idle):
	}
	hb1, err := leader.metric(ctx, "gitorc_dispatcher_heartbeats_total")
	if err != nil {
		return err
	}
	g1, _ := leader.histogram(ctx, "gitorc_dispatcher_heartbeat_interval_seconds")
	el := time.Since(t1)
	add("idle: heartbeats handled by the leader", "%.0f/s (expected %.0f/s)", (hb1-hb0)/el.Seconds(), float64(o.nodes)/period.Seconds())
	add("idle: heartbeat interval at the leader", "%s", quantiles(g0, g1))
	add("idle: managers' CPU (cores)", "%s", cpuSince(u1, el))
	usages("idle")

	// Deploy.
	total := o.services * o.replicas
	fmt.Fprintf(os.Stderr, "deploying %d services × %d replicas = %d tasks in %d stacks\n", o.services, o.replicas, total, o.stacks)
	per := (o.services + o.stacks - 1) / o.stacks
	var files []string
	for s := 0; s*per < o.services; s++ {
		n := min(per, o.services-s*per)
		f := filepath.Join(c.tmp, fmt.Sprintf("st%02d.yaml", s))
		if err := os.WriteFile(f, []byte(stackFile(s*per, n, o.replicas)), 0o644); err != nil {
			return err
		}
		files = append(files, f)
	}
	if l, err := c.leader(ctx); err == nil {
		leader = l
	}
	hb0, _ = leader.metric(ctx, "gitorc_dispatcher_heartbeats_total")
	g0, _ = leader.histogram(ctx, "gitorc_dispatcher_heartbeat_interval_seconds")
	ibN0, _ := leader.metric(ctx, "gitorc_dispatcher_view_index_build_seconds_count")
	ibS0, _ := leader.metric(ctx, "gitorc_dispatcher_view_index_build_seconds_sum")
	t2, u2 := time.Now(), snapshot()
	views0, viewBytes0 := simnode.ViewsReceived()
	profDone := make(chan error, 1)
	if o.profile != "" {
		go func() { profDone <- c.cpuProfile(ctx, leader, filepath.Join(c.logs, "leader-deploy.pprof"), 20) }()
	} else {
		profDone <- nil
	}
	// One after the other: concurrent first deploys of stacks race on
	// creating the cluster's sync state ("create sync_state sync: already
	// exists").
	// A deploy that fails because leadership moved (a loaded machine) is
	// sent again to the new leader: the same stack file is idempotent.
	deploys := 0
	for i, f := range files {
		for try := 1; ; try++ {
			deploys++
			l, err := c.leader(ctx)
			if err == nil {
				var out []byte
				out, err = exec.CommandContext(ctx, c.bin, "stack", "deploy", "--socket", l.socket, "-c", f, fmt.Sprintf("st%02d", i)).CombinedOutput()
				if err != nil {
					err = fmt.Errorf("stack deploy st%02d: %v: %s", i, err, out)
				}
			}
			if err == nil {
				break
			}
			if try == 5 || ctx.Err() != nil {
				return err
			}
			fmt.Fprintln(os.Stderr, "  again:", strings.TrimSpace(err.Error()))
			time.Sleep(time.Second)
		}
	}
	deployed := time.Since(t2)
	down0 := c.logCount(`msg="node down"`)
	if err := c.waitFor(ctx, "tasks running", func() (bool, string) {
		// Ask the leader only once the nodes run every task, so that
		// polling 100,000 tasks does not load it meanwhile.
		if n := fleet.Running(); n < total {
			return false, fmt.Sprintf("fleet runs %d/%d", n, total)
		}
		l, err := c.leader(ctx) // leadership may move under load
		if err != nil {
			return false, err.Error()
		}
		run, des, err := c.converged(ctx, l)
		if err != nil {
			return false, err.Error()
		}
		return des == uint64(total) && run == des, fmt.Sprintf("%d/%d running (fleet: %d)", run, des, fleet.Running())
	}); err != nil {
		return err
	}
	conv := time.Since(t2)
	hb1, _ = leader.metric(ctx, "gitorc_dispatcher_heartbeats_total")
	g1, _ = leader.histogram(ctx, "gitorc_dispatcher_heartbeat_interval_seconds")
	add("deploy: stack deploy commands returned", "%s (%d commands for %d stacks)", deployed.Round(time.Millisecond), deploys, len(files))
	add(fmt.Sprintf("deploy: %d tasks → all running", total), "%s (%.0f tasks/s); managers' CPU (cores): %s", conv.Round(time.Millisecond), float64(total)/conv.Seconds(), cpuSince(u2, conv))
	add("deploy: heartbeats handled by the leader", "%.0f/s (a status batch stands in for a heartbeat); interval %s; nodes marked down (all falsely) %d",
		(hb1-hb0)/conv.Seconds(), quantiles(g0, g1), c.logCount(`msg="node down"`)-down0)
	ibN1, _ := leader.metric(ctx, "gitorc_dispatcher_view_index_build_seconds_count")
	ibS1, _ := leader.metric(ctx, "gitorc_dispatcher_view_index_build_seconds_sum")
	if n := ibN1 - ibN0; n > 0 {
		add("deploy: network view indexes the leader built", "%.0f, %.1f s in all (%.0f ms each)", n, ibS1-ibS0, (ibS1-ibS0)/n*1000)
	}
	views1, viewBytes1 := simnode.ViewsReceived()
	add("deploy: network views the fleet received", "%d, %.1f MB (the simulated nodes do not parse them)", views1-views0, float64(viewBytes1-viewBytes0)/1e6)
	usages("converged")
	if err := <-profDone; err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
	}

	// Lost nodes.
	lost := min(o.lost, o.nodes/2)
	if lost > 0 {
		fmt.Fprintf(os.Stderr, "stopping %d simulated nodes\n", lost)
		gone := map[string]bool{}
		for _, n := range fleet.Nodes()[:lost] {
			gone[n.ID] = true
		}
		t3, u3 := time.Now(), snapshot()
		for _, n := range fleet.Nodes()[:lost] {
			go n.Stop()
		}
		var detected time.Duration
		// The leader's services and the live nodes say when the tasks
		// run elsewhere: listing 100,000 tasks every poll would load
		// the leader more than the rescheduling does.
		if err := c.waitForEvery(ctx, "lost nodes' tasks rescheduled", 250*time.Millisecond, func() (bool, string) {
			l, err := c.leader(ctx)
			if err != nil {
				return false, err.Error()
			}
			if detected == 0 {
				nodes, err := l.api.Nodes(ctx)
				if err != nil {
					return false, err.Error()
				}
				d := 0
				for _, n := range nodes {
					if gone[n.ID] && n.Status.State.String() == "down" {
						d++
					}
				}
				if d < lost {
					return false, fmt.Sprintf("%d/%d down", d, lost)
				}
				detected = time.Since(t3)
			}
			if n := fleet.RunningLive(); n < total {
				return false, fmt.Sprintf("live nodes run %d/%d", n, total)
			}
			run, des, err := c.converged(ctx, l)
			if err != nil {
				return false, err.Error()
			}
			return des == uint64(total) && run == des, fmt.Sprintf("%d/%d running (live nodes: %d)", run, des, fleet.RunningLive())
		}); err != nil {
			return err
		}
		el := time.Since(t3)
		add(fmt.Sprintf("lose %d nodes → all down", lost), "%s (tolerance: %d heartbeat periods, %s, checked 4 times a period)", detected.Round(time.Millisecond),
			missed, time.Duration(missed)*period)
		add(fmt.Sprintf("lose %d nodes → their tasks running elsewhere", lost), "%s; managers' CPU (cores): %s", el.Round(time.Millisecond), cpuSince(u3, el))
	}

	// Failover.
	fmt.Fprintln(os.Stderr, "killing the leader")
	old, err := c.leader(ctx)
	if err != nil {
		return err
	}
	t4 := time.Now()
	old.kill()
	var newLeader *manager
	if err := c.waitFor(ctx, "a new leader", func() (bool, string) {
		m, err := c.leader(ctx)
		if err != nil {
			return false, err.Error()
		}
		newLeader = m
		return true, ""
	}); err != nil {
		return err
	}
	elected := time.Since(t4)
	// A write through the new leader that needs live sessions: one more
	// replica of each of the first services, until they run.
	// Setting a replica count is idempotent: a write whose outcome is
	// unknown (leadership moved again while it committed: a 503) is sent
	// again to whoever leads then, and the retries are reported.
	more := min(10, o.services)
	retries := 0
	for i := range more {
		name := fmt.Sprintf("st%02d_s%04d", i/per, i)
		if err := c.waitFor(ctx, "the scale of "+name+" accepted", func() (bool, string) {
			if _, err := newLeader.api.Scale(ctx, name, uint64(o.replicas+1), 0); err != nil {
				retries++
				if l, lerr := c.leader(ctx); lerr == nil {
					newLeader = l
				}
				return false, err.Error()
			}
			return true, ""
		}); err != nil {
			return err
		}
	}
	wrote := time.Since(t4)
	total += more
	if err := c.waitFor(ctx, "the new replicas running", func() (bool, string) {
		run, des, err := c.converged(ctx, newLeader)
		if err != nil {
			return false, err.Error()
		}
		return run == des && des == uint64(total), fmt.Sprintf("%d/%d running", run, des)
	}); err != nil {
		return err
	}
	add("kill the leader → new leader", "%s", elected.Round(time.Millisecond))
	add("kill the leader → a write (scale) accepted by the new leader", "%s (%d writes sent again)", wrote.Round(time.Millisecond), retries)
	add(fmt.Sprintf("kill the leader → %d new replicas running through the new leader", more), "%s", time.Since(t4).Round(time.Millisecond))
	usages("after failover")

	fmt.Printf("\n%d simulated nodes, %d services × %d replicas, 3 managers on loopback\n\n", o.nodes, o.services, o.replicas)
	fmt.Println("| measure | value |")
	fmt.Println("| --- | --- |")
	for _, r := range rows {
		fmt.Printf("| %s | %s |\n", r.what, r.value)
	}
	return nil
}

// loadAvg is the machine's 1-minute load average (the machine is shared:
// every figure is given beside it).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

// cpuProfile fetches a CPU profile of secs seconds from m's pprof endpoint.
func (c *cluster) cpuProfile(ctx context.Context, m *manager, path string, secs int) error {
	return c.fetchDebug(ctx, m, fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), path)
}

// fetchDebug saves what m's control socket answers at path into file.
func (c *cluster) fetchDebug(ctx context.Context, m *manager, path, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://gitorc"+path, nil)
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: m.hc.Transport}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// quantiles estimates p50, p99 and the top bucket of the observations
// between two readings of a histogram's cumulative buckets.
func quantiles(before, after map[float64]float64) string {
	var les []float64
	for le := range after {
		les = append(les, le)
	}
	sort.Float64s(les)
	if len(les) == 0 {
		return "no data"
	}
	total := after[les[len(les)-1]] - before[les[len(les)-1]]
	if total <= 0 {
		return "no heartbeats"
	}
	q := func(p float64) string {
		for _, le := range les {
			if after[le]-before[le] >= p*total {
				return fmt.Sprintf("≤ %g s", le)
			}
		}
		return "?"
	}
	maxLe := les[0]
	prev := 0.0
	for _, le := range les {
		if n := after[le] - before[le]; n > prev {
			maxLe, prev = le, n
		}
	}
	return fmt.Sprintf("p50 %s, p99 %s, max %s (%.0f samples)", q(.5), q(.99), fmtLe(maxLe), total)
}

func fmtLe(le float64) string {
	if le > 1e9 {
		return "> 30 s"
	}
	return fmt.Sprintf("≤ %g s", le)
}

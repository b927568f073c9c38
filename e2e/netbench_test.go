package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/gitorc/gitorc/cluster/api"
)

// The network plane's benchmarks on netns hosts (as root, with wrk from
// Debian): BENCHMARKS.md quotes them. Run with
//
//	go test ./e2e -run '^$' -bench 'VIPRequestRate|BackendPropagation' -benchtime 1x -v

// A client task on h1 and one backend on h2: wrk from the client's
// network namespace against the backend's address and against its
// service's VIP, alternating, 3 rounds of 5 s each. Both cross the
// WireGuard overlay; the VIP adds the nftables DNAT.
func BenchmarkVIPRequestRate_Root(b *testing.B) {
	if _, err := exec.LookPath("wrk"); err != nil {
		b.Skip("needs wrk (apt install wrk)")
	}
	c, _ := netCluster(b, 2)
	reg := c.registryAddr()
	c.deployApp(fmt.Sprintf(`services:
  web:
    image: %[1]s/gitorc/busybox:1
    command: ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 80 -h /www"]
    deploy:
      placement:
        constraints: [node.labels.host == h2]
  client:
    image: %[1]s/gitorc/busybox:1
    command: ["sleep", "3600"]
    deploy:
      placement:
        constraints: [node.labels.host == h1]
`, reg))
	c.waitFor("web and client running, web's VIP", 2*time.Minute, func() bool {
		return len(c.liveTasks("app_web")) == 1 && len(c.liveTasks("app_client")) == 1 && c.vip("app_web") != ""
	})
	web, client := c.liveTasks("app_web")[0], c.liveTasks("app_client")[0]
	vip := c.vip("app_web")
	ns := filepath.Join(c.dirs[c.host(client.NodeID)-1], "executor", "netns", client.ID)
	wrk := func(addr string) float64 {
		return wrkRate(b, runWrk(b, ns, "-c", "16", "http://"+addr+"/"))
	}
	var direct, viaVIP []float64
	for round := 0; round < 3; round++ {
		direct = append(direct, wrk(plain(web.Addr)))
		viaVIP = append(viaVIP, wrk(vip))
	}
	d, v := median(direct), median(viaVIP)
	b.Logf("requests/s: task address %v, VIP %v; medians %.0f and %.0f, ratio %.2f", direct, viaVIP, d, v, v/d)
	b.ReportMetric(d, "direct-req/s")
	b.ReportMetric(v, "vip-req/s")
	b.ReportMetric(v/d, "vip/direct")
}

// runWrk runs wrk for 5 s with 2 threads in the network namespace at
// nsPath (args: the rest of its flags and the URL), bounded at 30 s, and
// returns its output.
func runWrk(b *testing.B, nsPath string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + nsPath, "wrk", "-t", "2", "-d", "5s"}, args...)...).CombinedOutput()
	if err != nil {
		b.Fatalf("wrk %v: %v\n%s", args, err, out)
	}
	return string(out)
}

var wrkRateRe = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)

func wrkRate(b *testing.B, out string) float64 {
	m := wrkRateRe.FindStringSubmatch(out)
	if m == nil || strings.Contains(out, "Non-2xx") || strings.Contains(out, "Socket errors") {
		b.Fatalf("wrk failed or saw errors:\n%s", out)
	}
	r, _ := strconv.ParseFloat(m[1], 64)
	return r
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	sort.Float64s(s)
	return s[len(s)/2]
}

// Three nodes, a service of two replicas on h2 and h3 and a global client
// on its network (so that every node has it in its view). Each round
// scales it to 1 and then back to 2. A removal is timed from the moment
// the leader committed the task's DrainingSince to the moment its backend
// chain is gone from each node's nftables table; an addition from the new
// task's running status (the agent's report, before the managers commit
// it) to its chain being in each table. Tables are read over netlink in
// each host's namespace every millisecond.
func BenchmarkBackendPropagation_Root(b *testing.B) {
	c, _ := netCluster(b, 3)
	reg := c.registryAddr()
	c.deployApp(fmt.Sprintf(`services:
  web:
    image: %[1]s/gitorc/busybox:1
    command: ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 80 -h /www"]
    stop_grace_period: 1s
    deploy:
      replicas: 2
      placement:
        constraints: [node.labels.tier == back]
        max_replicas_per_node: 1
  client:
    image: %[1]s/gitorc/busybox:1
    command: ["sleep", "3600"]
    deploy:
      mode: global
`, reg))
	// The clients put web in every node's view.
	c.waitFor("two web tasks, three clients", 2*time.Minute, func() bool {
		return len(c.liveTasks("app_web")) == 2 && len(c.liveTasks("app_client")) == 3
	})

	w := newChainWatch(b, c, 3)
	defer w.stop()
	scale := func(n int) {
		if out, err := c.gitorc("service", "scale", fmt.Sprintf("app_web=%d", n)); err != nil {
			b.Fatalf("scale: %v\n%s", err, out)
		}
	}
	const rounds = 20
	var removals, additions []time.Duration
	for round := 0; round < rounds; round++ {
		before := c.liveTasks("app_web")
		scale(1)
		var gone api.Task
		c.waitFor("a task draining", time.Minute, func() bool {
			for _, t := range c.tasks("app") {
				if t.ServiceName == "app_web" && !t.DrainingSince.IsZero() && slices.ContainsFunc(before, func(x api.Task) bool { return x.ID == t.ID }) {
					gone = t
					return true
				}
			}
			return false
		})
		for h := 1; h <= 3; h++ {
			at := w.waitGone(h, gone.ID)
			removals = append(removals, at.Sub(gone.DrainingSince))
		}
		c.waitFor("one task left", time.Minute, func() bool { return len(c.tasksRunningAny("app_web")) == 1 })
		scale(2)
		var added api.Task
		c.waitFor("a new task running", time.Minute, func() bool {
			for _, t := range c.liveTasks("app_web") {
				if !slices.ContainsFunc(before, func(x api.Task) bool { return x.ID == t.ID }) {
					added = t
					return true
				}
			}
			return false
		})
		for h := 1; h <= 3; h++ {
			at := w.waitPresent(h, added.ID)
			additions = append(additions, at.Sub(added.Status.Timestamp))
		}
	}
	report := func(what string, ds []time.Duration) {
		slices.Sort(ds)
		p := func(q float64) time.Duration { return ds[int(q*float64(len(ds)-1))] }
		b.Logf("%s over %d node updates: p50 %s, p99 %s, max %s", what, len(ds), p(0.5), p(0.99), ds[len(ds)-1])
		b.ReportMetric(float64(p(0.99).Microseconds())/1000, what+"-p99-ms")
	}
	report("removal", removals)
	report("addition", additions)
}

// chainWatch polls the backend chains of gitorc's table on hosts 1..n and
// keeps, for each task ID seen, when its chain was first seen and when it
// was first missing after that.
type chainWatch struct {
	b    *testing.B
	mu   sync.Mutex
	seen []map[string]time.Time // per host: task ID (12) → first seen
	gone []map[string]time.Time // per host: task ID (12) → first missing
	quit chan struct{}
	wg   sync.WaitGroup
}

func newChainWatch(b *testing.B, c *cluster, n int) *chainWatch {
	w := &chainWatch{b: b, quit: make(chan struct{})}
	for h := 1; h <= n; h++ {
		f, err := os.Open("/run/netns/" + c.nw.Host(h).NS)
		if err != nil {
			b.Fatal(err)
		}
		conn, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
		if err != nil {
			b.Fatal(err)
		}
		w.seen = append(w.seen, map[string]time.Time{})
		w.gone = append(w.gone, map[string]time.Time{})
		w.wg.Add(1)
		go w.poll(h-1, conn, f)
	}
	return w
}

func (w *chainWatch) poll(i int, conn *nftables.Conn, f *os.File) {
	defer w.wg.Done()
	defer f.Close()
	defer conn.CloseLasting()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-w.quit:
			return
		case <-tick.C:
		}
		chains, err := conn.ListChainsOfTableFamily(nftables.TableFamilyINet)
		now := time.Now()
		if err != nil {
			continue // the table is being replaced: the next poll sees it
		}
		present := map[string]bool{}
		for _, ch := range chains {
			if ch.Table.Name != "gitorc" || !strings.HasPrefix(ch.Name, "be-") {
				continue
			}
			id := ch.Name[strings.LastIndex(ch.Name, "-")+1:]
			present[id] = true
		}
		w.mu.Lock()
		for id := range present {
			if _, ok := w.seen[i][id]; !ok {
				w.seen[i][id] = now
			}
		}
		for id := range w.seen[i] {
			if _, ok := w.gone[i][id]; !ok && !present[id] {
				w.gone[i][id] = now
			}
		}
		w.mu.Unlock()
	}
}

func (w *chainWatch) wait(h int, id string, in func(i int) map[string]time.Time) time.Time {
	short := id[:12]
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		at, ok := in(h - 1)[short]
		w.mu.Unlock()
		if ok {
			return at
		}
		time.Sleep(5 * time.Millisecond)
	}
	w.b.Fatalf("host %d: backend chain of task %s did not change within a minute", h, id)
	return time.Time{}
}

func (w *chainWatch) waitGone(h int, id string) time.Time {
	return w.wait(h, id, func(i int) map[string]time.Time { return w.gone[i] })
}

func (w *chainWatch) waitPresent(h int, id string) time.Time {
	return w.wait(h, id, func(i int) map[string]time.Time { return w.seen[i] })
}

func (w *chainWatch) stop() {
	close(w.quit)
	w.wg.Wait()
}

// A busybox httpd task on h1 published as 8080 (ingress), a client host
// outside the cluster: wrk without keep-alive (a new connection per
// request, as Swarm's figures were taken) against the task's address from
// its own node, the port on 127.0.0.1 of that node, the port on that
// node's address from the client (a local backend: DNAT only), and on
// the other node's address (a remote backend: DNAT, the overlay and
// masquerade). 3 rounds alternating, medians.
func BenchmarkMeshRequestRate_Root(b *testing.B) {
	if _, err := exec.LookPath("wrk"); err != nil {
		b.Skip("needs wrk (apt install wrk)")
	}
	c, _ := meshCluster(b, 2)
	c.deployApp(fmt.Sprintf(`services:
  web:
    image: %s/gitorc/busybox:1
    command: ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 80 -h /www"]
    ports: ["8080:80"]
    deploy:
      placement:
        constraints: [node.labels.host == h1]
`, c.registryAddr()))
	c.waitFor("web running", 2*time.Minute, func() bool { return len(c.liveTasks("app_web")) == 1 })
	web := c.liveTasks("app_web")[0]
	h1, h2, client := c.nw.Host(1), c.nw.Host(2), c.nw.Host(3)
	type path struct {
		name, ns, url string
	}
	paths := []path{
		{"direct", h1.NS, "http://" + plain(web.Addr) + "/"},
		{"loopback", h1.NS, "http://127.0.0.1:8080/"},
		{"mesh-local", client.NS, "http://" + h1.Addr.String() + ":8080/"},
		{"mesh-remote", client.NS, "http://" + h2.Addr.String() + ":8080/"},
	}
	c.waitFor("the port on every node", time.Minute, func() bool {
		for _, p := range paths {
			if exec.Command("nsenter", "--net=/run/netns/"+p.ns, "curl", "-fsS", "-m", "2", "-o", "/dev/null", p.url).Run() != nil {
				return false
			}
		}
		return true
	})
	// A new connection per request leaves the closing side's ports in
	// TIME_WAIT for a minute: past ~28,000 of them connect() spends its
	// time searching for a free port (system time near 100% and the rate
	// falling round after round). A load generator reuses them.
	for _, ns := range []string{h1.NS, client.NS} {
		if out, err := exec.Command("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1").CombinedOutput(); err != nil {
			b.Fatalf("tcp_tw_reuse in %s: %v\n%s", ns, err, out)
		}
	}
	rates, p99s := map[string][]float64{}, map[string][]float64{}
	for round := 0; round < 3; round++ {
		for _, p := range paths {
			out := runWrk(b, "/run/netns/"+p.ns, "-c", "32", "--latency", "-H", "Connection: close", p.url)
			rates[p.name] = append(rates[p.name], wrkRate(b, out))
			p99s[p.name] = append(p99s[p.name], wrkP99(b, out))
		}
	}
	direct := median(rates["direct"])
	for _, p := range paths {
		r, l := median(rates[p.name]), median(p99s[p.name])
		b.Logf("%-11s %s: %.0f req/s (%v), p99 %.1f ms, %.2f of direct", p.name, p.url, r, rates[p.name], l, r/direct)
		b.ReportMetric(r, p.name+"-req/s")
		b.ReportMetric(l, p.name+"-p99-ms")
	}
}

var wrkP99Re = regexp.MustCompile(`\s99%\s+([0-9.]+)(us|ms|s)\b`)

// wrkP99 is the 99th percentile of wrk --latency, in milliseconds.
func wrkP99(b *testing.B, out string) float64 {
	m := wrkP99Re.FindStringSubmatch(out)
	if m == nil {
		b.Fatalf("no 99%% latency in wrk's output:\n%s", out)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	switch m[2] {
	case "us":
		v /= 1000
	case "s":
		v *= 1000
	}
	return v
}

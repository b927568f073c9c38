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
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "nsenter", "--net="+ns, "wrk", "-t", "2", "-c", "16", "-d", "5s",
			"http://"+addr+"/").CombinedOutput()
		if err != nil {
			b.Fatalf("wrk %s: %v\n%s", addr, err, out)
		}
		return wrkRate(b, string(out))
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

package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/gitorc/gitorc/cluster/agent/containerd/imagetest"
	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/netplane/netns"
)

// pageImage serves "<hostname> <$PAGE>" at / and "<client address>
// <hostname>" at /cgi-bin/ip, with busybox httpd on port 80.
const pageImage = "gitorc/page:1"

func pushPageImage(t testing.TB, c *cluster) {
	t.Helper()
	start := "#!/bin/sh\nmkdir -p /www/cgi-bin\necho \"$(hostname) ${PAGE:-v1}\" > /www/index.html\n" +
		"cp /etc/ip.cgi /www/cgi-bin/ip\nexec httpd -f -p 80 -h /www\n"
	cgi := "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s %s\\n' \"$REMOTE_ADDR\" \"$(hostname)\"\n"
	img, err := imagetest.Busybox(ocispec.ImageConfig{Cmd: []string{"/bin/page"}},
		imagetest.File{Path: "/bin/page", Mode: 0o755, Data: []byte(start)},
		imagetest.File{Path: "/etc/ip.cgi", Mode: 0o755, Data: []byte(cgi)})
	if err != nil {
		t.Fatal(err)
	}
	repo, tag, _ := strings.Cut(pageImage, ":")
	if _, err := c.reg.Push(context.Background(), img, repo, tag); err != nil {
		t.Fatal(err)
	}
}

// meshCluster is a netCluster of nodes hosts plus one more host that runs
// no node: the client outside the cluster (the last host).
func meshCluster(t testing.TB, nodes int) (*cluster, *client) {
	requireE2E(t)
	c := hostsWithRegistry(t, nodes+1)
	res := startResolver(t, c.nw.Gateway.String(), net.IP(c.nw.Gateway.AsSlice()))
	c.extra = []string{"--dns-upstream", res.addr}
	startNodes(c, nodes, c.extra)
	c.label(nodes)
	pushPageImage(t, c)
	h := c.nw.Host(nodes + 1)
	return c, &client{ns: netns.NS{Path: "/run/netns/" + h.NS}, addr: h.Addr.String()}
}

// label gives hosts 1..n the labels tier (h1 front, others back) and host.
func (c *cluster) label(n int) {
	c.t.Helper()
	ids := c.nodeIDs()
	for i := 1; i <= n; i++ {
		if ids[i] == "" {
			continue
		}
		tier := "back"
		if i == 1 {
			tier = "front"
		}
		if out, err := c.gitorc("node", "update", "--label-add", "tier="+tier, "--label-add", fmt.Sprintf("host=h%d", i), ids[i]); err != nil {
			c.t.Fatalf("label h%d: %v\n%s", i, err, out)
		}
	}
}

// client is a host outside the cluster that sends requests to it.
type client struct {
	ns   netns.NS
	addr string
}

// http is a client whose connections are opened in the client's
// namespace, a new one for every request.
func (cl *client) http() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (conn net.Conn, err error) {
			err = cl.ns.Do(func() error {
				conn, err = (&net.Dialer{Timeout: 3 * time.Second}).DialContext(ctx, network, addr)
				return err
			})
			return conn, err
		},
	}}
}

// get fetches a URL from the client and returns the body's first line.
func (cl *client) get(url string) (string, error) {
	resp, err := cl.http().Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", url, resp.Status)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return line, nil
}

// load sends requests to urls in turn, each on a new connection, until
// stop is closed or max requests were sent, and counts them exactly.
type load struct {
	mu     sync.Mutex
	sent   int
	failed []string
	done   chan struct{}
}

func (cl *client) load(urls []string, max int, stop <-chan struct{}) *load {
	l := &load{done: make(chan struct{})}
	hc := cl.http()
	go func() {
		defer close(l.done)
		for i := 0; i < max; i++ {
			select {
			case <-stop:
				return
			default:
			}
			url := urls[i%len(urls)]
			resp, err := hc.Get(url)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("%s", resp.Status)
				}
			}
			l.mu.Lock()
			l.sent++
			if err != nil {
				l.failed = append(l.failed, fmt.Sprintf("%s %s: %v", time.Now().Format("15:04:05.000"), url, err))
			}
			l.mu.Unlock()
		}
	}()
	return l
}

// during runs act while a load loop sends requests to port on every
// node's address, stops the loop once done reports true (bounded), and
// asserts that no request failed.
func (c *cluster) during(t *testing.T, cl *client, what string, port, nodes int, act func(), done func() bool) {
	t.Helper()
	var urls []string
	for i := 1; i <= nodes; i++ {
		urls = append(urls, fmt.Sprintf("http://%s:%d/", c.nw.Host(i).Addr, port))
	}
	stop := make(chan struct{})
	l := cl.load(urls, 100000, stop)
	act()
	c.waitFor(what, 180*time.Second, done)
	time.Sleep(time.Second) // a last second of requests on the final state: part of the count, not a wait for a condition
	close(stop)
	<-l.done
	t.Logf("%s: %d requests through the mesh, %d failed", what, l.sent, len(l.failed))
	if len(l.failed) > 0 || l.sent == 0 {
		t.Errorf("%s: %d of %d requests failed:\n%s", what, len(l.failed), l.sent, strings.Join(l.failed, "\n"))
	}
}

// A published port answers on every node's address with the page of a
// task that may run on another node; a host-mode port only where a task
// runs; a node that joins later answers too; a local backend sees the
// client's own address, a remote one the forwarding node's gateway.
func TestIngressMesh_Root(t *testing.T) {
	c, cl := meshCluster(t, 3)
	reg := c.registryAddr()
	c.deployApp(fmt.Sprintf(`services:
  web:
    image: %[1]s/%[2]s
    ports: ["8080:80"]
    deploy:
      replicas: 2
      placement:
        constraints: [node.labels.tier == back]
        max_replicas_per_node: 1
  pinned:
    image: %[1]s/%[2]s
    ports:
      - {target: 80, published: 8090, mode: host}
    deploy:
      placement:
        constraints: [node.labels.host == h2]
`, reg, pageImage))
	c.waitFor("web and pinned running", 120*time.Second, func() bool {
		return len(c.liveTasks("app_web")) == 2 && len(c.liveTasks("app_pinned")) == 1
	})
	web := c.liveTasks("app_web")
	names := hostnames(web)
	byHost := map[int]string{}
	for _, w := range web {
		byHost[c.host(w.NodeID)] = w.ID[:12]
	}
	addr := func(i int) string { return c.nw.Host(i).Addr.String() }
	c.waitFor("the published port on every node", 60*time.Second, func() bool {
		for i := 1; i <= 3; i++ {
			if _, err := cl.get(fmt.Sprintf("http://%s:8080/", addr(i))); err != nil {
				return false
			}
		}
		return true
	})
	for i := 1; i <= 3; i++ {
		seen := map[string]bool{}
		for range 20 {
			page, err := cl.get(fmt.Sprintf("http://%s:8080/", addr(i)))
			if err != nil {
				t.Fatalf("h%d:8080: %v", i, err)
			}
			seen[strings.Fields(page)[0]] = true
		}
		for name := range seen {
			if !slices.Contains(names, name) {
				t.Errorf("h%d:8080 answered from %q, not a web task", i, name)
			}
		}
		if i == 1 && len(seen) != 2 {
			t.Errorf("h1 (no web task) reached %v, want both tasks on h2 and h3", seen)
		}
	}

	// The client's address: kept towards a local backend, the node's
	// gateway towards a remote one.
	gotLocal, gotRemote := false, false
	for i := 0; i < 40 && !(gotLocal && gotRemote); i++ {
		line, err := cl.get(fmt.Sprintf("http://%s:8080/cgi-bin/ip", addr(2)))
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			t.Fatalf("ip page: %q", line)
		}
		// httpd listens on both families: IPv4 peers come as [::ffff:a.b.c.d].
		f[0] = strings.TrimPrefix(strings.Trim(f[0], "[]"), "::ffff:")
		switch f[1] {
		case byHost[2]:
			gotLocal = true
			if f[0] != cl.addr {
				t.Errorf("a backend on the receiving node saw %s, not the client's %s", f[0], cl.addr)
			}
		case byHost[3]:
			gotRemote = true
			if f[0] == cl.addr {
				t.Errorf("a backend on another node saw the client's address: the forwarded request was not masqueraded")
			}
		}
	}
	if !gotLocal || !gotRemote {
		t.Errorf("40 requests to h2 did not reach both backends (local %t, remote %t)", gotLocal, gotRemote)
	}

	// Host mode: only h2 answers on 8090, with its own task.
	pinned := c.liveTasks("app_pinned")[0]
	if page, err := cl.get(fmt.Sprintf("http://%s:8090/", addr(2))); err != nil || !strings.HasPrefix(page, pinned.ID[:12]) {
		t.Errorf("h2:8090: %q %v", page, err)
	}
	for _, i := range []int{1, 3} {
		if page, err := cl.get(fmt.Sprintf("http://%s:8090/", addr(i))); err == nil {
			t.Errorf("h%d:8090 answered %q without a pinned task", i, page)
		}
	}

	// A node that joins later publishes the port as soon as it is ready.
	c.joinHost(4)
	c.waitFor("h4 to answer on 8080", 90*time.Second, func() bool {
		page, err := cl.get(fmt.Sprintf("http://%s:8080/", addr(4)))
		return err == nil && slices.Contains(names, strings.Fields(page)[0])
	})
}

// Requests through the mesh never fail while tasks come and go: a
// start-first update of one replica with a healthcheck, a start-first
// update of six replicas over three nodes, a stop-first update of three
// replicas one at a time, a scale from six to two, and a drain of a node
// holding tasks.
func TestMeshDropsNothing_Root(t *testing.T) {
	c, cl := meshCluster(t, 3)
	reg := c.registryAddr()
	stack := func(one, six, three string, sixReplicas int) string {
		return fmt.Sprintf(`x-check: &check
  test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]
  interval: 1s
  retries: 1
  start_period: 10s
services:
  one:
    image: %[1]s/%[2]s
    environment: {PAGE: %[3]s}
    ports: ["8101:80"]
    healthcheck: *check
    deploy:
      replicas: 1
      update_config: {order: start-first, monitor: 2s}
  six:
    image: %[1]s/%[2]s
    environment: {PAGE: %[5]s}
    ports: ["8102:80"]
    healthcheck: *check
    deploy:
      replicas: %[4]d
      update_config: {order: start-first, parallelism: 2, monitor: 2s}
  three:
    image: %[1]s/%[2]s
    environment: {PAGE: %[6]s}
    ports: ["8103:80"]
    healthcheck: *check
    deploy:
      replicas: 3
      update_config: {order: stop-first, parallelism: 1, monitor: 2s}
      # At most two a node: the drain below leaves one of three's
      # backends in the set (a node holding every replica would leave
      # none until a replacement is healthy; the scheduler may put them
      # so), and the two nodes left can hold all three.
      placement: {max_replicas_per_node: 2}
`, reg, pageImage, one, sixReplicas, six, three)
	}
	c.deployApp(stack("v1", "v1", "v1", 6))
	ready := func(svc string, n int, page string) func() bool {
		return func() bool {
			ts := c.liveTasks(svc)
			if len(ts) != n {
				return false
			}
			for _, t := range ts {
				if !t.InLoadBalancer() || !slices.Contains(t.Spec.Container.Env, "PAGE="+page) {
					return false
				}
			}
			return c.updateState(svc) != "updating"
		}
	}
	c.waitFor("every service healthy", 180*time.Second, func() bool {
		return ready("app_one", 1, "v1")() && ready("app_six", 6, "v1")() && ready("app_three", 3, "v1")()
	})
	spread := map[string]bool{}
	for _, t := range c.liveTasks("app_six") {
		spread[t.NodeID] = true
	}
	if len(spread) != 3 {
		t.Fatalf("six's replicas are on %d nodes", len(spread))
	}
	c.during(t, cl, "start-first update of 1 replica", 8101, 3, func() { c.deployApp(stack("v2", "v1", "v1", 6)) }, ready("app_one", 1, "v2"))
	c.during(t, cl, "start-first update of 6 replicas", 8102, 3, func() { c.deployApp(stack("v2", "v2", "v1", 6)) }, ready("app_six", 6, "v2"))
	c.during(t, cl, "stop-first update of 3 replicas", 8103, 3, func() { c.deployApp(stack("v2", "v2", "v2", 6)) }, ready("app_three", 3, "v2"))
	c.during(t, cl, "scale 6 to 2", 8102, 3, func() { c.deployApp(stack("v2", "v2", "v2", 2)) }, func() bool {
		return len(c.tasksRunningAny("app_six")) == 2
	})
	// Drain a node that holds tasks of three: they move, and no request fails.
	holder := c.liveTasks("app_three")[0].NodeID
	c.during(t, cl, "drain of a node", 8103, 3, func() {
		if out, err := c.gitorc("node", "update", "--availability", "drain", holder); err != nil {
			t.Fatalf("drain: %v %s", err, out)
		}
	}, func() bool {
		ts := c.tasksRunningAny("app_three")
		for _, t := range ts {
			if t.NodeID == holder {
				return false
			}
		}
		return len(ts) == 3 && ready("app_three", 3, "v2")()
	})
}

// tasksRunningAny returns a service's running tasks, wanted or not (a
// task being stopped still runs).
func (c *cluster) tasksRunningAny(service string) []api.Task {
	var out []api.Task
	for _, t := range c.tasks("app") {
		if t.ServiceName == service && t.Status.State == api.TaskRunning {
			out = append(out, t)
		}
	}
	return out
}

// joinHost starts a node on host i that joins as a worker, with the
// cluster's extra flags, and waits until it is ready and labelled.
func (c *cluster) joinHost(i int) {
	c.t.Helper()
	out, err := c.gitorc("token", "worker")
	if err != nil {
		c.t.Fatalf("token: %v %s", err, out)
	}
	token := strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
	manager := c.nw.Host(1).Addr.String() + ":4270"
	p, err := c.nw.Host(i).Start(c.logs, c.bin, append([]string{"join", "--token", token, "--data-dir", c.dirs[i-1],
		"--insecure-registry", c.reg.Addr, manager}, c.extra...)...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.procs = append(c.procs, p)
	c.waitFor(fmt.Sprintf("h%d ready", i), 60*time.Second, func() bool {
		out, err := c.gitorc("node", "ls", "-o", "json")
		return err == nil && strings.Count(out, `"state": "ready"`) == i
	})
	c.label(i)
}

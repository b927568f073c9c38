package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/e2e/harness"
)

// resolver is the DNS server nodes forward names outside the cluster to in
// tests: it runs on the test bridge (never the machine's own resolvers)
// and answers outside.test. with the bridge's address.
type resolver struct {
	addr    string
	queries atomic.Int64
}

func startResolver(t testing.TB, host string, answer net.IP) *resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	r := &resolver{addr: pc.LocalAddr().String()}
	mux := dns.NewServeMux()
	mux.HandleFunc(".", func(w dns.ResponseWriter, q *dns.Msg) {
		r.queries.Add(1)
		m := new(dns.Msg)
		m.SetReply(q)
		switch {
		case len(q.Question) != 1 || q.Question[0].Name != "outside.test.":
			m.Rcode = dns.RcodeNameError
		case q.Question[0].Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: "outside.test.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: answer})
		default: // the name exists, with no record of that type (NODATA)
		}
		_ = w.WriteMsg(m)
	})
	srv := &dns.Server{PacketConn: pc, Handler: mux}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return r
}

// netCluster is a cluster whose nodes forward DNS to a resolver of the
// test's, with hosts labelled: h1 tier=front, the others tier=back, and
// each host=h<i>.
func netCluster(t testing.TB, hosts int) (*cluster, *resolver) {
	requireE2E(t)
	// The resolver must exist before the nodes start; the bridge does not
	// exist yet, so the cluster is laid out first.
	c := hostsWithRegistry(t, hosts)
	res := startResolver(t, c.nw.Gateway.String(), net.IP(c.nw.Gateway.AsSlice()))
	c.extra = []string{"--dns-upstream", res.addr}
	startNodes(c, hosts, c.extra)
	c.label(hosts)
	return c, res
}

// outsideServer serves HTTP on the bridge's gateway, an address outside
// the cluster, for the rest of the test: each answer is "from-outside"
// and the caller's address. It reads the request before it answers (a
// socket closed with a request unread resets the connection).
func outsideServer(t testing.TB, c *cluster) string {
	l, err := net.Listen("tcp", net.JoinHostPort(c.nw.Gateway.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, "from-outside %s\n", r.RemoteAddr)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + l.Addr().String() + "/"
}

// nodeIDs maps host numbers to node IDs.
func (c *cluster) nodeIDs() map[int]string {
	c.t.Helper()
	out := map[int]string{}
	for i, d := range c.dirs {
		b, err := os.ReadFile(filepath.Join(d, "node.json"))
		if os.IsNotExist(err) {
			continue // a host that runs no node
		}
		if err != nil {
			c.t.Fatal(err)
		}
		var st struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(b, &st); err != nil {
			c.t.Fatal(err)
		}
		out[i+1] = st.ID
	}
	return out
}

// host returns the host number a node runs on.
func (c *cluster) host(nodeID string) int {
	for i, id := range c.nodeIDs() {
		if id == nodeID {
			return i
		}
	}
	c.t.Fatalf("no host runs node %s", nodeID)
	return 0
}

// exec runs a command in a task's container (its filesystem, its
// resolv.conf, its network namespace) and returns its output.
func (c *cluster) exec(t api.Task, timeout time.Duration, args ...string) (string, error) {
	h := c.host(t.NodeID)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	sock := filepath.Join(c.dirs[h-1], "executor", "containerd", "containerd.sock")
	cmd := exec.CommandContext(ctx, "ctr", append([]string{"--address", sock, "--namespace", "gitorc", "task", "exec",
		"--exec-id", "e2e-" + hex.EncodeToString(b), t.ID}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// deployApp deploys a stack file as stack "app" (the one teardown removes).
func (c *cluster) deployApp(stack string) {
	c.t.Helper()
	file := filepath.Join(c.t.TempDir(), "compose.yaml")
	if err := os.WriteFile(file, []byte(stack), 0o644); err != nil {
		c.t.Fatal(err)
	}
	if out, err := c.gitorc("stack", "deploy", "-c", file, "app"); err != nil {
		c.t.Fatalf("deploy: %v\n%s", err, out)
	}
}

// liveTasks returns the running tasks of a service, wanted running.
func (c *cluster) liveTasks(service string) []api.Task {
	var out []api.Task
	stack, _, _ := strings.Cut(service, "_")
	for _, t := range c.tasks(stack) {
		if t.ServiceName == service && t.DesiredState == api.TaskRunning && t.Status.State == api.TaskRunning {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (c *cluster) vip(service string) string {
	out, err := c.gitorc("service", "inspect", service, "-o", "json")
	if err != nil {
		return ""
	}
	var svcs []api.Service
	if json.Unmarshal([]byte(out), &svcs) != nil || len(svcs) != 1 || svcs[0].Endpoint == nil {
		return ""
	}
	return svcs[0].Endpoint.VIP
}

// plain strips a task address's prefix.
func plain(addr string) string { a, _, _ := strings.Cut(addr, "/"); return a }

// hostnames is what the tasks' pages answer: their hostnames, the first
// 12 characters of their IDs.
func hostnames(ts []api.Task) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.ID[:12])
	}
	sort.Strings(out)
	return out
}

var nsAddrRe = regexp.MustCompile(`Address(?: \d+)?:\s+([0-9.]+)(?:\s|$)`)

// lookup resolves name from inside a task with busybox nslookup, which
// asks the container's nameserver (the node's DNS server) and prints it
// first: that line is skipped.
func (c *cluster) lookup(from api.Task, name string) ([]string, error) {
	out, err := c.exec(from, 15*time.Second, "nslookup", name)
	if err != nil {
		return nil, fmt.Errorf("nslookup %s: %v: %s", name, err, out)
	}
	_, answers, _ := strings.Cut(out, "Name:")
	var addrs []string
	for _, m := range nsAddrRe.FindAllStringSubmatch(answers, -1) {
		addrs = append(addrs, m[1])
	}
	sort.Strings(addrs)
	return addrs, nil
}

// spread fetches url from a task n times (new connections each) and
// returns the set of pages seen.
func (c *cluster) spread(from api.Task, url string, n int) ([]string, error) {
	// busybox 1.35 wget crashes with -T: the timeout applet bounds it.
	script := fmt.Sprintf("for i in $(seq %d); do timeout 5 wget -q -O - %s || echo FAILED; done", n, url)
	out, err := c.exec(from, 60*time.Second, "sh", "-c", script)
	if err != nil {
		return nil, fmt.Errorf("wget %s: %v: %s", url, err, out)
	}
	var seen []string
	for _, l := range strings.Fields(out) {
		if l == "FAILED" {
			return nil, fmt.Errorf("a request to %s failed:\n%s", url, out)
		}
		if !slices.Contains(seen, l) {
			seen = append(seen, l)
		}
	}
	sort.Strings(seen)
	return seen, nil
}

const pageCmd = `["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"]`

// Three hosts: a client on h1 reaches a service whose tasks run on h2 and
// h3 by name, short name and VIP, balanced over both; tasks.<service> and a
// dnsrr service answer with every task; after a scale and a rolling
// update, DNS and the VIP follow. Between hosts the link carries only
// WireGuard (and the control plane's TLS): a marker sent over HTTP never
// shows in a capture. Isolation: a service on a network the client does
// not share can neither be resolved nor reached; a task on an internal
// network cannot reach an address outside the cluster, one on another
// network can; names outside the cluster are forwarded to the upstream.
func TestOverlayDiscoveryIsolation_Root(t *testing.T) {
	c, res := netCluster(t, 3)
	reg := c.registryAddr()
	outURL := outsideServer(t, c)
	back := `    deploy:
      replicas: 2
      placement:
        constraints: [node.labels.tier == back]
        max_replicas_per_node: 1
`
	c.deployApp(fmt.Sprintf(`services:
  api:
    image: %[1]s/gitorc/busybox:1
    command: %[2]s
    networks:
      back:
        aliases: [backend-api]
%[3]s
  rr:
    image: %[1]s/gitorc/busybox:1
    command: %[2]s
    networks: [back]
%[3]s      endpoint_mode: dnsrr
  client:
    image: %[1]s/gitorc/busybox:1
    command: ["sleep", "3600"]
    networks: [back]
    deploy:
      placement:
        constraints: [node.labels.tier == front]
  lonely:
    image: %[1]s/gitorc/busybox:1
    command: %[2]s
    networks: [other]
  inner:
    image: %[1]s/gitorc/busybox:1
    command: ["sleep", "3600"]
    networks: [priv]
networks:
  back: {}
  other: {}
  priv:
    internal: true
`, reg, pageCmd, back))
	c.waitFor("every service running", 120*time.Second, func() bool {
		return len(c.liveTasks("app_api")) == 2 && len(c.liveTasks("app_rr")) == 2 && len(c.liveTasks("app_client")) == 1 &&
			len(c.liveTasks("app_lonely")) == 1 && len(c.liveTasks("app_inner")) == 1
	})
	client, apiTasks := c.liveTasks("app_client")[0], c.liveTasks("app_api")
	if h := c.host(client.NodeID); h != 1 {
		t.Fatalf("the client runs on h%d", h)
	}
	for _, a := range apiTasks {
		if c.host(a.NodeID) == 1 {
			t.Fatalf("an api task runs on h1: %+v", a)
		}
	}
	vip := c.vip("app_api")
	if vip == "" {
		t.Fatal("app_api has no VIP")
	}

	// Names, VIP and spreading.
	for _, name := range []string{"api", "app_api", "backend-api"} {
		if got, err := c.lookup(client, name); err != nil || !slices.Equal(got, []string{vip}) {
			t.Errorf("%s resolves to %v (%v), want the VIP %s", name, got, err, vip)
		}
	}
	want := hostnames(apiTasks)
	for _, url := range []string{"http://api/", "http://" + vip + "/"} {
		seen, err := c.spread(client, url, 30)
		if err != nil || !slices.Equal(seen, want) {
			t.Errorf("%s reached %v (%v), want both tasks %v", url, seen, err, want)
		}
	}
	taskAddrs := func(ts []api.Task) []string {
		var out []string
		for _, t := range ts {
			out = append(out, plain(t.Addr))
		}
		sort.Strings(out)
		return out
	}
	checkDNS := func(name string, ts []api.Task) {
		t.Helper()
		c.waitFor(name+" to list the running tasks", 30*time.Second, func() bool {
			got, err := c.lookup(client, name)
			return err == nil && slices.Equal(got, taskAddrs(ts))
		})
	}
	checkDNS("tasks.api", apiTasks)
	checkDNS("rr", c.liveTasks("app_rr"))
	if got, _ := c.lookup(client, "outside.test"); !slices.Equal(got, []string{c.nw.Gateway.String()}) {
		t.Errorf("outside.test resolved to %v through the upstream (%d queries reached it)", got, res.queries.Load())
	}

	// Isolation: another network's service is neither resolved nor reached.
	lonely := c.liveTasks("app_lonely")[0]
	if got, err := c.lookup(client, "lonely"); err == nil {
		t.Errorf("lonely (on another network) resolves from the client: %v", got)
	}
	if out, err := c.exec(client, 20*time.Second, "sh", "-c", "timeout 3 wget -q -O - http://"+plain(lonely.Addr)+"/"); err == nil {
		t.Errorf("the client reached lonely's address: %s", out)
	}
	// Egress: the client's network has it, the internal one none.
	if out, err := c.exec(client, 20*time.Second, "sh", "-c", "timeout 5 wget -q -O - "+outURL); err != nil || !strings.Contains(out, "from-outside") {
		t.Errorf("the client (network back) cannot reach outside the cluster: %v %s", err, out)
	} else if strings.Contains(out, plain(client.Addr)) {
		t.Errorf("egress is not masqueraded: %s", out)
	}
	inner := c.liveTasks("app_inner")[0]
	if out, err := c.exec(inner, 20*time.Second, "sh", "-c", "timeout 3 wget -q -O - "+outURL); err == nil {
		t.Errorf("a task on an internal network reached outside the cluster: %s", out)
	}

	// The link between hosts: a marker sent from h1 to a task on h2 never
	// appears on the wire; what crosses is WireGuard (and the control
	// plane's TLS, which the capture leaves out).
	marker := "MARKER-" + hex.EncodeToString([]byte(t.Name()))[:16]
	target := apiTasks[0]
	if c.host(target.NodeID) != 2 {
		target = apiTasks[1]
	}
	pcap := filepath.Join(t.TempDir(), "link.pcap")
	veth := c.nw.Host(2).Veth()
	filter := fmt.Sprintf("ip and host %s and not (tcp port 4270 or tcp port 4271)", c.nw.Host(2).Addr)
	capCtx, stopCap := context.WithTimeout(context.Background(), 60*time.Second)
	defer stopCap()
	capture := exec.CommandContext(capCtx, "tcpdump", "-i", veth, "--immediate-mode", "-U", "-s", "0", "-c", "2000", "-w", pcap, filter)
	capture.Cancel = func() error { return capture.Process.Signal(os.Interrupt) }
	var capErr bytes.Buffer
	capture.Stderr = &capErr
	if err := capture.Start(); err != nil {
		t.Fatal(err)
	}
	c.waitFor("tcpdump to listen", 20*time.Second, func() bool { return strings.Contains(capErr.String(), "listening on") })
	if out, err := c.exec(client, 20*time.Second, "sh", "-c",
		fmt.Sprintf("timeout 5 wget -q -O - --header 'X-Marker: %s' http://%s/ && echo SENT", marker, plain(target.Addr))); err != nil || !strings.Contains(out, "SENT") {
		t.Fatalf("request to a task on h2: %v %s", err, out)
	}
	stopCap() // SIGINT: tcpdump writes what it holds and exits
	_ = capture.Wait()
	raw, err := os.ReadFile(pcap)
	if err != nil || len(raw) < 100 {
		t.Fatalf("capture: %v (%d bytes) %s", err, len(raw), capErr.String())
	}
	if bytes.Contains(raw, []byte(marker)) {
		t.Errorf("the marker %s crossed the link in clear", marker)
	}
	pkts, err := readPcap(raw)
	if err != nil {
		t.Fatalf("capture: %v", err)
	}
	packets, wgPackets := len(pkts), 0
	for _, p := range pkts {
		if p.proto == syscall.IPPROTO_UDP && (p.dport == 51820 || p.sport == 51820) {
			wgPackets++
		} else {
			t.Errorf("a packet between hosts that is not WireGuard: %s", p)
		}
	}
	if wgPackets == 0 {
		t.Errorf("no WireGuard packet in the capture (%d packets): the request did not cross the link", packets)
	}
	t.Logf("link capture: %d packets, all WireGuard; marker absent", packets)

	// Scale and rolling update: DNS and the VIP follow.
	if out, err := c.gitorc("service", "scale", "app_rr=1"); err != nil {
		t.Fatalf("scale: %v %s", err, out)
	}
	c.waitFor("rr at 1 task", 60*time.Second, func() bool { return len(c.liveTasks("app_rr")) == 1 })
	checkDNS("rr", c.liveTasks("app_rr"))
	old := hostnames(apiTasks)
	if out, err := c.gitorc("service", "update", "app_api", "--force"); err != nil {
		t.Fatalf("force update: %v %s", err, out)
	}
	c.waitFor("api replaced", 120*time.Second, func() bool {
		now := c.liveTasks("app_api")
		return len(now) == 2 && !slices.Contains(old, now[0].ID[:12]) && !slices.Contains(old, now[1].ID[:12]) &&
			c.updateState("app_api") == "completed"
	})
	apiTasks = c.liveTasks("app_api")
	checkDNS("tasks.api", apiTasks)
	seen, err := c.spread(client, "http://api/", 30)
	if err != nil || !slices.Equal(seen, hostnames(apiTasks)) {
		t.Errorf("after the update the VIP reached %v (%v), want the new tasks %v", seen, err, hostnames(apiTasks))
	}
}

// apiAndClient deploys a page service api on h2 and a client on h3 of a
// 3-host cluster, and checks the client reaches api by name.
func apiAndClient(t *testing.T) (*cluster, api.Task, api.Task) {
	c, _ := netCluster(t, 3)
	reg := c.registryAddr()
	c.deployApp(fmt.Sprintf(`services:
  api:
    image: %[1]s/gitorc/busybox:1
    command: %[2]s
    deploy:
      placement:
        constraints: [node.labels.host == h2]
  client:
    image: %[1]s/gitorc/busybox:1
    command: ["sleep", "3600"]
    deploy:
      placement:
        constraints: [node.labels.host == h3]
`, reg, pageCmd))
	c.waitFor("api and client running", 120*time.Second, func() bool {
		return len(c.liveTasks("app_api")) == 1 && len(c.liveTasks("app_client")) == 1
	})
	apiTask, client := c.liveTasks("app_api")[0], c.liveTasks("app_client")[0]
	if c.host(apiTask.NodeID) != 2 || c.host(client.NodeID) != 3 {
		t.Fatalf("api on h%d, client on h%d", c.host(apiTask.NodeID), c.host(client.NodeID))
	}
	if seen, err := c.spread(client, "http://api/", 3); err != nil || !slices.Equal(seen, hostnames([]api.Task{apiTask})) {
		t.Fatalf("before the test: %v %v", seen, err)
	}
	return c, apiTask, client
}

// A worker cut off from the managers keeps its tasks talking to tasks on
// other nodes with the last view; healed, it converges to the new one.
func TestCutOffWorkerKeepsTalking_Root(t *testing.T) {
	c, apiTask, client := apiAndClient(t)

	// Cut the manager (h1) off from both workers, past the heartbeat
	// timeout: the workers serve on with their last view.
	c.nw.Partition([]*harness.Host{c.nw.Host(1)}, []*harness.Host{c.nw.Host(2), c.nw.Host(3)})
	deadline := time.Now().Add(20 * time.Second)
	for n := 0; time.Now().Before(deadline); n++ {
		seen, err := c.spread(client, "http://api/", 3)
		if err != nil || !slices.Equal(seen, hostnames([]api.Task{apiTask})) {
			t.Fatalf("cut off from the managers, request round %d failed: %v %v", n, seen, err)
		}
	}
	c.nw.HealPartition()

	// Healed: a change reaches the workers' planes.
	c.waitFor("nodes ready again", 90*time.Second, func() bool {
		out, err := c.gitorc("node", "ls", "-o", "json")
		return err == nil && strings.Count(out, `"state": "ready"`) == 3
	})
	if out, err := c.gitorc("service", "update", "app_api", "--force"); err != nil {
		t.Fatalf("force update: %v %s", err, out)
	}
	c.waitFor("a new api task serving the client", 120*time.Second, func() bool {
		now, cl := c.liveTasks("app_api"), c.liveTasks("app_client")
		if len(now) != 1 || now[0].ID == apiTask.ID || len(cl) != 1 {
			return false
		}
		seen, err := c.spread(cl[0], "http://api/", 3)
		return err == nil && slices.Equal(seen, hostnames(now))
	})
}

// packet is what the link capture check needs of an IPv4 packet.
type packet struct {
	proto        uint8
	src, dst     net.IP
	sport, dport uint16
}

func (p packet) String() string {
	return fmt.Sprintf("proto %d %s:%d > %s:%d", p.proto, p.src, p.sport, p.dst, p.dport)
}

// readPcap parses a classic pcap file of Ethernet frames (tcpdump -w on a
// veth), keeping the IPv4 packets.
func readPcap(b []byte) ([]packet, error) {
	if len(b) < 24 {
		return nil, fmt.Errorf("pcap: %d bytes, no header", len(b))
	}
	var order binary.ByteOrder
	switch binary.LittleEndian.Uint32(b) {
	case 0xa1b2c3d4, 0xa1b23c4d:
		order = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		order = binary.BigEndian
	default:
		return nil, fmt.Errorf("pcap: bad magic %x", b[:4])
	}
	if lt := order.Uint32(b[20:]); lt != 1 {
		return nil, fmt.Errorf("pcap: link type %d, want Ethernet", lt)
	}
	var out []packet
	for b = b[24:]; len(b) >= 16; {
		n := int(order.Uint32(b[8:]))
		if len(b) < 16+n {
			break // cut short by the capture's end
		}
		f := b[16 : 16+n]
		b = b[16+n:]
		if len(f) < 14+20 || binary.BigEndian.Uint16(f[12:]) != 0x0800 {
			continue
		}
		ip := f[14:]
		hl := int(ip[0]&0x0f) * 4
		p := packet{proto: ip[9], src: net.IP(ip[12:16]), dst: net.IP(ip[16:20])}
		if (p.proto == syscall.IPPROTO_UDP || p.proto == syscall.IPPROTO_TCP) && len(ip) >= hl+4 {
			p.sport, p.dport = binary.BigEndian.Uint16(ip[hl:]), binary.BigEndian.Uint16(ip[hl+2:])
		}
		out = append(out, p)
	}
	return out, nil
}

// A node killed and started again rebuilds its plane (WireGuard, routes,
// the nftables table, DNS) from its last view and the managers' new one,
// without touching its running tasks: the same processes, in the same
// namespaces, with the same addresses, reached by name from another host
// again, and a change made after the restart reaches the rebuilt plane.
func TestRestartedNodeRebuildsPlane_Root(t *testing.T) {
	c, apiTask, client := apiAndClient(t)
	// The task's process (its start time, in clock ticks since boot) and
	// the address in its namespace.
	identity := func() string {
		out, err := c.exec(apiTask, 15*time.Second, "sh", "-c", "cut -d' ' -f22 /proc/1/stat; ip -4 -o addr show dev eth0")
		if err != nil {
			t.Fatalf("exec in api: %v %s", err, out)
		}
		return out
	}
	before := identity()
	if !strings.Contains(before, "inet "+apiTask.Addr) {
		t.Fatalf("api's namespace does not hold %s:\n%s", apiTask.Addr, before)
	}

	c.procs[1].Kill()
	p, err := c.nw.Host(2).Start(c.logs, c.bin, "daemon", "--data-dir", c.dirs[1])
	if err != nil {
		t.Fatal(err)
	}
	c.procs[1] = p
	c.waitFor("api reached from h3 after h2's restart", 90*time.Second, func() bool {
		seen, err := c.spread(client, "http://api/", 3)
		return err == nil && slices.Equal(seen, hostnames([]api.Task{apiTask}))
	})
	if after := identity(); after != before {
		t.Errorf("the restart touched the running task:\nbefore %s\nafter  %s", before, after)
	}
	if now := c.liveTasks("app_api"); len(now) != 1 || now[0].ID != apiTask.ID || now[0].Addr != apiTask.Addr {
		t.Errorf("api tasks after the restart: %+v, want %s at %s only", now, apiTask.ID, apiTask.Addr)
	}

	// The rebuilt plane takes the managers' changes: a second api task
	// on h2 joins the VIP, seen from h3.
	if out, err := c.gitorc("service", "scale", "app_api=2"); err != nil {
		t.Fatalf("scale: %v %s", err, out)
	}
	c.waitFor("both api tasks answering h3", 120*time.Second, func() bool {
		now := c.liveTasks("app_api")
		if len(now) != 2 {
			return false
		}
		seen, err := c.spread(client, "http://api/", 12)
		return err == nil && slices.Equal(seen, hostnames(now))
	})
}

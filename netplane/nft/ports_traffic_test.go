package nft

import (
	"errors"
	"net/netip"
	"os"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/gitorc/gitorc/cluster/api"
)

// setSysctl writes a sysctl of the host's namespace (/proc/sys/...).
func setSysctl(t *testing.T, hst *host, key, value string) {
	t.Helper()
	must(t, key, hst.ns.Do(func() error {
		return os.WriteFile("/proc/sys/"+key, []byte(value), 0o644)
	}))
}

// pubNode is one node of TestPublishedPorts_Root.
type pubNode struct {
	*host
	id       string
	subnet   string
	gw       string
	ext      string // its address on the client's link
	clientIP string // the client's address on that link
	tasks    []api.NetTask
}

// wgLink joins two nodes as their WireGuard interfaces do: an
// interface named gtrc-wg on each holding the node's gateway (/32), the
// peer's subnet routed through it from the gateway. A veth pair, not
// WireGuard (no kernel module here): the peer's gateway is the next
// hop, and a table of the test's drops what WireGuard would, packets
// from outside the peer's AllowedIPs (its subnet).
func wgLink(t *testing.T, n1, n2 *pubNode) {
	t.Helper()
	l1, l2 := vethPairNamed(t, n1.host, n2.host, DefaultWGInterface, DefaultWGInterface)
	for _, e := range []struct {
		n, peer *pubNode
		l       netlink.Link
	}{{n1, n2, l1}, {n2, n1, l2}} {
		must(t, "wg addr", e.n.h.AddrAdd(e.l, &netlink.Addr{IPNet: prefix(e.n.gw + "/32")}))
		must(t, "wg route", e.n.h.RouteAdd(&netlink.Route{LinkIndex: e.l.Attrs().Index, Dst: prefix(e.peer.subnet),
			Gw: netip.MustParseAddr(e.peer.gw).AsSlice(), Flags: int(netlink.FLAG_ONLINK), Src: netip.MustParseAddr(e.n.gw).AsSlice()}))
		nftIn(t, e.n.ns, "table ip wg-allowed-ips {\n\tchain in {\n\t\ttype filter hook prerouting priority raw; policy accept;\n"+
			"\t\tiifname \""+DefaultWGInterface+"\" ip saddr != "+e.peer.subnet+" drop\n\t}\n}\n", "-f", "-")
	}
}

// TestPublishedPorts_Root sends real connections to published ports
// through the rulesets of two nodes, joined as WireGuard would, from a
// client beyond both, from the nodes themselves and from tasks.
//
//	client  203.0.113.2 (to n1, 203.0.113.1), 198.51.100.2 (to n2, 198.51.100.1)
//	n1 10.64.1.0/24  a1 10.64.1.10 (web), c1 10.64.1.20 (a client task, no network shared with web)
//	n2 10.64.2.0/24  a2 10.64.2.10 (web), h2 10.64.2.11 (hm)
//	web    ingress tcp 30080 → 8080, udp 30053 → 5353: a1, a2
//	hm     host tcp 30081 → 8080: h2
//	empty  ingress tcp 30082 → 8080, udp 30083 → 5353: no backend
//
// Each node also listens itself on the published ports (n1 on those of
// web and empty, n2 on hm's): a connection the rules do not translate
// reaches the node, not refused, and the checks tell.
func TestPublishedPorts_Root(t *testing.T) {
	needRoot(t)
	client := newHost(t, "client")
	n1 := &pubNode{host: newHost(t, "n1"), id: "n1", subnet: "10.64.1.0/24", gw: "10.64.1.1", ext: "203.0.113.1", clientIP: "203.0.113.2"}
	n2 := &pubNode{host: newHost(t, "n2"), id: "n2", subnet: "10.64.2.0/24", gw: "10.64.2.1", ext: "198.51.100.1", clientIP: "198.51.100.2"}
	nodes := []*pubNode{n1, n2}
	for i, n := range nodes {
		nl, cl := vethPairNamed(t, n.host, client, "ext0", []string{"eth0", "eth1"}[i])
		must(t, "addr", n.h.AddrAdd(nl, &netlink.Addr{IPNet: prefix(n.ext + "/24")}))
		must(t, "addr", client.h.AddrAdd(cl, &netlink.Addr{IPNet: prefix(n.clientIP + "/24")}))
		setSysctl(t, n.host, "net/ipv4/ip_forward", "1")
		setSysctl(t, n.host, "net/ipv4/conf/all/route_localnet", "1") // as the plane does
		lo, err := n.h.LinkByName("lo")
		must(t, "lo", err)
		must(t, "gateway on lo", n.h.AddrAdd(lo, &netlink.Addr{IPNet: prefix(n.gw + "/32")})) // as the plane does
	}
	wgLink(t, n1, n2)
	tasks := map[string]*host{}
	addr := map[string]string{"a1": "10.64.1.10", "c1": "10.64.1.20", "a2": "10.64.2.10", "h2": "10.64.2.11"}
	nets := map[string]string{"a1": "front", "c1": "other", "a2": "front", "h2": "hm"}
	for _, e := range []struct {
		n    *pubNode
		task string
	}{{n1, "a1"}, {n1, "c1"}, {n2, "a2"}, {n2, "h2"}} {
		th := newHost(t, e.task)
		tasks[e.task] = th
		attachTask(t, e.n.host, th, "veth-"+e.task, addr[e.task], e.n.gw, e.n.subnet)
		serve(t, th, addr[e.task]+":8080")
		serveUDP(t, th, addr[e.task]+":5353")
		e.n.tasks = append(e.n.tasks, api.NetTask{ID: e.task, ServiceID: e.task[:1], Addr: addr[e.task], Networks: []string{nets[e.task]}})
	}
	serve(t, n1.host, ":30080")
	serve(t, n1.host, ":30082")
	serveUDP(t, n1.host, ":30053")
	serveUDP(t, n1.host, ":30083")
	serve(t, n2.host, ":30081")

	// Before any rule, nothing is published: the nodes answer.
	wantReach(t, client, n1.ext+":30080", "n1", n1.clientIP)

	web := []api.NetBackend{{TaskID: "a1", NodeID: "n1", Addr: addr["a1"]}, {TaskID: "a2", NodeID: "n2", Addr: addr["a2"]}}
	view := func(n, peer *pubNode, web []api.NetBackend) *api.NetView {
		port := func(proto api.Protocol, published, target uint32, mode api.PublishMode) api.PortConfig {
			return api.PortConfig{Protocol: proto, Published: published, Target: target, Mode: mode}
		}
		return &api.NetView{NodeID: n.id, Subnet: n.subnet, TaskPool: api.DefaultTaskPool, VIPPool: api.DefaultVIPPool,
			Peers: []api.NetPeer{{NodeID: peer.id, PublicKey: "k", Endpoint: peer.ext + ":51820", Subnet: peer.subnet}},
			Networks: []api.NetNetwork{
				{ID: "front", Name: "front", Members: []string{addr["a1"], addr["a2"]}},
				{ID: "hm", Name: "hm", Members: []string{addr["h2"]}},
				{ID: "other", Name: "other", Members: []string{addr["c1"]}},
			},
			Services: []api.NetService{
				{ID: "empty", Name: "empty", Ports: []api.PortConfig{
					port(api.ProtocolTCP, 30082, 8080, api.PublishIngress), port(api.ProtocolUDP, 30083, 5353, api.PublishIngress)}},
				{ID: "hm", Name: "hm", Ports: []api.PortConfig{port(api.ProtocolTCP, 30081, 8080, api.PublishHost)},
					Backends: []api.NetBackend{{TaskID: "h2", NodeID: "n2", Addr: addr["h2"]}}},
				{ID: "web", Name: "web", Backends: web, Ports: []api.PortConfig{
					port(api.ProtocolTCP, 30080, 8080, api.PublishIngress), port(api.ProtocolUDP, 30053, 5353, api.PublishIngress)}},
			},
			Tasks: n.tasks,
		}
	}
	tables := map[*pubNode]*Table{}
	applyViews := func(web []api.NetBackend) {
		t.Helper()
		for _, n := range nodes {
			peer := n2
			if n == n2 {
				peer = n1
			}
			if tables[n] == nil {
				tables[n] = NewTable(n.ns, Options{})
			}
			r := mustBuild(t, view(n, peer, web), Options{})
			if _, err := tables[n].Apply(r); err != nil {
				t.Fatal(err)
			}
		}
	}
	applyViews(web)

	// reachAll dials until both web backends answered, each seeing the
	// source it should (from, by backend), and nothing else answers.
	reachAll := func(t *testing.T, from *host, to string, want map[string]string) {
		t.Helper()
		seen := map[string]bool{}
		for i := 0; i < 300 && len(seen) < len(want); i++ {
			name, src, err := dial(from, to)
			if err != nil {
				t.Fatalf("%s to %s: %v", from.name, to, err)
			}
			w, ok := want[name]
			if !ok {
				t.Fatalf("%s to %s: answered by %s, want one of %v", from.name, to, name, want)
			}
			if src != w {
				t.Errorf("%s to %s: %s saw %s, want %s", from.name, to, name, src, w)
			}
			seen[name] = true
		}
		if len(seen) < len(want) {
			t.Errorf("%s to %s reached %v, want %v", from.name, to, seen, want)
		}
	}
	// udpAll asks until both web backends answered.
	udpAll := func(t *testing.T, from *host, to string) {
		t.Helper()
		seen := map[string]bool{}
		for i := 0; i < 300 && len(seen) < 2; i++ {
			name, err := askUDP(from, to)
			if err != nil {
				t.Fatalf("udp %s to %s: %v", from.name, to, err)
			}
			if name != "a1" && name != "a2" {
				t.Fatalf("udp %s to %s: answered by %s, want a1 or a2", from.name, to, name)
			}
			seen[name] = true
		}
		if len(seen) < 2 {
			t.Errorf("udp %s to %s reached %v, want a1 and a2", from.name, to, seen)
		}
	}
	wantUDPRefused := func(t *testing.T, from *host, to string) {
		t.Helper()
		if name, err := askUDP(from, to); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("udp %s to %s: answer %q, err = %v, want port unreachable", from.name, to, name, err)
		}
	}

	t.Run("ingress", func(t *testing.T) {
		// A local backend sees the client; a remote one the node's
		// gateway (masqueraded over WireGuard, a source the peer takes).
		reachAll(t, client, n1.ext+":30080", map[string]string{"a1": n1.clientIP, "a2": n1.gw})
		reachAll(t, client, n2.ext+":30080", map[string]string{"a1": n2.gw, "a2": n2.clientIP})
	})

	t.Run("udp", func(t *testing.T) {
		udpAll(t, client, n1.ext+":30053")
		udpAll(t, client, n2.ext+":30053")
	})

	t.Run("node itself", func(t *testing.T) {
		reachAll(t, n1.host, "127.0.0.1:30080", map[string]string{"a1": n1.gw, "a2": n1.gw})
		reachAll(t, n2.host, "127.0.0.1:30080", map[string]string{"a1": n2.gw, "a2": n2.gw})
		udpAll(t, n1.host, "127.0.0.1:30053")
		wantReach(t, n2.host, "127.0.0.1:30081", "h2", n2.gw)
	})

	t.Run("tasks", func(t *testing.T) {
		// A task sharing no network with web: published ports are for
		// anyone. A local backend sees the task.
		reachAll(t, tasks["c1"], n1.ext+":30080", map[string]string{"a1": addr["c1"], "a2": n1.gw})
		// A backend to its own service: hairpin.
		reachAll(t, tasks["a1"], n1.ext+":30080", map[string]string{"a1": n1.gw, "a2": n1.gw})
		udpAll(t, tasks["c1"], n1.ext+":30053")
		// The gateway is not published on: there tasks reach the node
		// itself (its DNS server), whatever a service publishes.
		if name, _, err := dial(tasks["c1"], n1.gw+":30080"); err != nil || name != "n1" {
			t.Errorf("c1 to the gateway's port 30080: answered by %q (%v), want the node n1 itself", name, err)
		}
		wantReach(t, tasks["a2"], n2.ext+":30081", "h2", addr["a2"])
	})

	t.Run("host mode", func(t *testing.T) {
		wantReach(t, client, n2.ext+":30081", "h2", n2.clientIP)
		wantRefused(t, client, n1.ext+":30081") // no hm task on n1
		wantRefused(t, n1.host, "127.0.0.1:30081")
	})

	t.Run("no backend", func(t *testing.T) {
		for _, n := range nodes {
			wantRefused(t, client, n.ext+":30082")
			wantUDPRefused(t, client, n.ext+":30083")
			wantRefused(t, n.host, "127.0.0.1:30082")
		}
	})

	t.Run("backends gone", func(t *testing.T) {
		applyViews(nil)
		for _, n := range nodes {
			wantRefused(t, client, n.ext+":30080")
			wantUDPRefused(t, client, n.ext+":30053")
			wantRefused(t, tasks["c1"], n1.ext+":30080")
		}
		// And back.
		applyViews(web[1:])
		name, src, err := dial(client, n1.ext+":30080")
		if err != nil || name != "a2" || src != n1.gw {
			t.Errorf("client to n1 with a2 only: %s seeing %s, %v", name, src, err)
		}
	})
}

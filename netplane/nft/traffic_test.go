package nft

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/netplane/netns"
)

// host is a namespace with a handle for configuring its links.
type host struct {
	name string
	ns   netns.NS
	h    *netlink.Handle
}

func newHost(t *testing.T, name string) *host {
	t.Helper()
	ns := newNS(t, name)
	fd, err := ns.Handle()
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	h, err := netlink.NewHandleAt(fd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	return &host{name: name, ns: ns, h: h}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func prefix(s string) *net.IPNet {
	p := netip.MustParsePrefix(s)
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}
}

// vethPair makes a veth pair, ours (named here) in a and "eth0" in b.
func vethPair(t *testing.T, a, b *host, here string) (la, lb netlink.Link) {
	t.Helper()
	return vethPairNamed(t, a, b, here, "eth0")
}

// vethPairNamed makes a veth pair, here in a and there in b.
func vethPairNamed(t *testing.T, a, b *host, here, there string) (la, lb netlink.Link) {
	t.Helper()
	must(t, "veth", a.h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: here}, PeerName: "peer-" + here}))
	peer, err := a.h.LinkByName("peer-" + here)
	must(t, "veth peer", err)
	fd, err := b.ns.Handle()
	must(t, "netns", err)
	defer fd.Close()
	must(t, "veth to netns", a.h.LinkSetNsFd(peer, int(fd)))
	lb, err = b.h.LinkByName("peer-" + here)
	must(t, "veth peer", err)
	must(t, "rename", b.h.LinkSetName(lb, there))
	la, err = a.h.LinkByName(here)
	must(t, "veth", err)
	must(t, "up", a.h.LinkSetUp(la))
	must(t, "up", b.h.LinkSetUp(lb))
	return la, lb
}

// attachTask joins a task to the node as CNI's ptp plugin does: the host
// end holds the gateway /32 and a /32 route to the task; the task holds
// addr/24 without its subnet route, a link route to the gateway and
// routes through it.
func attachTask(t *testing.T, node, task *host, hostIf, addr, gw, subnet string) {
	t.Helper()
	hl, tl := vethPair(t, node, task, hostIf)
	a, g := netip.MustParseAddr(addr), netip.MustParseAddr(gw)
	must(t, "gateway addr", node.h.AddrAdd(hl, &netlink.Addr{IPNet: prefix(gw + "/32")}))
	must(t, "route to task", node.h.RouteAdd(&netlink.Route{LinkIndex: hl.Attrs().Index, Dst: prefix(addr + "/32"),
		Scope: netlink.SCOPE_LINK, Src: g.AsSlice()}))
	bits := netip.MustParsePrefix(subnet).Bits()
	must(t, "task addr", task.h.AddrAdd(tl, &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, 32)},
		Flags: unix.IFA_F_NOPREFIXROUTE}))
	idx := tl.Attrs().Index
	must(t, "route to gateway", task.h.RouteAdd(&netlink.Route{LinkIndex: idx, Dst: prefix(gw + "/32"), Scope: netlink.SCOPE_LINK, Src: a.AsSlice()}))
	must(t, "subnet route", task.h.RouteAdd(&netlink.Route{LinkIndex: idx, Dst: prefix(subnet), Gw: g.AsSlice(), Src: a.AsSlice()}))
	must(t, "default route", task.h.RouteAdd(&netlink.Route{LinkIndex: idx, Gw: g.AsSlice()}))
}

// serve answers each TCP connection on addr, inside the host's namespace,
// with its name and the address the connection came from.
func serve(t *testing.T, hst *host, addr string) {
	t.Helper()
	var l net.Listener
	must(t, "listen "+addr, hst.ns.Do(func() (err error) {
		l, err = net.Listen("tcp4", addr)
		return err
	}))
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s %s\n", hst.name, c.RemoteAddr().(*net.TCPAddr).IP)
			c.Close()
		}
	}()
}

// serveUDP answers each datagram on addr with the host's name.
func serveUDP(t *testing.T, hst *host, addr string) {
	t.Helper()
	var c net.PacketConn
	must(t, "listen udp "+addr, hst.ns.Do(func() (err error) {
		c, err = net.ListenPacket("udp4", addr)
		return err
	}))
	done := make(chan struct{})
	t.Cleanup(func() {
		c.Close()
		<-done
	})
	go func() {
		defer close(done)
		buf := make([]byte, 64)
		for {
			_, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = c.WriteTo([]byte(hst.name), from)
		}
	}()
}

// askUDP sends a datagram from inside the host's namespace and returns
// the answer.
func askUDP(hst *host, addr string) (name string, err error) {
	err = hst.ns.Do(func() error {
		c, err := net.Dial("udp4", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
			return err
		}
		if _, err := c.Write([]byte("?")); err != nil {
			return err
		}
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		name = string(buf[:n])
		return err
	})
	return name, err
}

// dial connects from inside the host's namespace and returns the answer
// of serve: the name of the host that answered and the source it saw.
func dial(hst *host, addr string) (name, from string, err error) {
	err = hst.ns.Do(func() error {
		c, err := net.DialTimeout("tcp4", addr, 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
			return err
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return fmt.Errorf("answer %q", line)
		}
		name, from = f[0], f[1]
		return nil
	})
	return name, from, err
}

// wantRefused fails unless a connection is refused (a black hole times
// out: another error).
func wantRefused(t *testing.T, hst *host, addr string) {
	t.Helper()
	_, _, err := dial(hst, addr)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("%s to %s: err = %v, want connection refused", hst.name, addr, err)
	}
}

func wantReach(t *testing.T, hst *host, addr, wantName, wantFrom string) {
	t.Helper()
	name, from, err := dial(hst, addr)
	if err != nil {
		t.Errorf("%s to %s: %v", hst.name, addr, err)
		return
	}
	if name != wantName || from != wantFrom {
		t.Errorf("%s to %s: answered by %s seeing %s, want %s seeing %s", hst.name, addr, name, from, wantName, wantFrom)
	}
}

// TestTraffic_Root sends real connections through a ruleset: a node
// namespace, five task namespaces routed like the ptp plugin does, and an
// "outside" namespace beyond the node.
//
//	t1 10.64.1.10  front
//	t2 10.64.1.11  front, back (internal)
//	t3 10.64.1.12  back: internal only
//	t4 10.64.1.13  other
//	t5 10.64.1.14  front
//	web 10.96.0.10: t1, t2, t5;  empty 10.96.0.11: no backend
func TestTraffic_Root(t *testing.T) {
	needRoot(t)
	node := newHost(t, "node")
	outside := newHost(t, "outside")
	const gw, subnet = "10.64.1.1", "10.64.1.0/24"
	tasks := map[string]string{"t1": "10.64.1.10", "t2": "10.64.1.11", "t3": "10.64.1.12", "t4": "10.64.1.13", "t5": "10.64.1.14"}
	hosts := map[string]*host{}
	for _, name := range []string{"t1", "t2", "t3", "t4", "t5"} {
		hosts[name] = newHost(t, name)
		attachTask(t, node, hosts[name], "veth-"+name, tasks[name], gw, subnet)
		serve(t, hosts[name], tasks[name]+":8080")
		serveUDP(t, hosts[name], tasks[name]+":5353")
	}
	el, ol := vethPair(t, node, outside, "ext0")
	must(t, "addr", node.h.AddrAdd(el, &netlink.Addr{IPNet: prefix("203.0.113.1/24")}))
	must(t, "addr", outside.h.AddrAdd(ol, &netlink.Addr{IPNet: prefix("203.0.113.2/24")}))
	serve(t, outside, "203.0.113.2:9090")
	must(t, "forwarding", node.ns.Do(func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644)
	}))
	if got := strings.TrimSpace(inNS(t, node.ns, "sysctl", "-n", "net.ipv4.ip_forward")); got != "1" {
		t.Fatalf("ip_forward in the node namespace = %s", got)
	}
	// The gateway on an interface of its own, as the plane has it (a
	// dummy there; this kernel has no dummy driver, so half a veth pair),
	// and the VIP pool routed there: the node's own connections to VIPs
	// need a route before nat output translates them (a node without a
	// default route).
	must(t, "gtrc-gw", node.h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "gtrc-gw"}, PeerName: "gtrc-gw-peer"}))
	dummy, err := node.h.LinkByName("gtrc-gw")
	must(t, "gtrc-gw", err)
	must(t, "gtrc-gw up", node.h.LinkSetUp(dummy))
	must(t, "dummy addr", node.h.AddrAdd(dummy, &netlink.Addr{IPNet: prefix(gw + "/32")}))
	must(t, "vip route", node.h.RouteAdd(&netlink.Route{LinkIndex: dummy.Attrs().Index, Dst: prefix(api.DefaultVIPPool),
		Src: netip.MustParseAddr(gw).AsSlice()}))
	// The node itself listens on its gateway: DNS and another port.
	serve(t, node, gw+":53")
	serve(t, node, gw+":8081")

	// Before any rule, everything is open: the checks below are the rules'.
	wantReach(t, hosts["t4"], tasks["t1"]+":8080", "t1", tasks["t4"])

	v := &api.NetView{
		NodeID: "n1", Subnet: subnet, TaskPool: api.DefaultTaskPool, VIPPool: api.DefaultVIPPool,
		Networks: []api.NetNetwork{
			{ID: "front", Name: "front", Members: []string{tasks["t1"], tasks["t2"], tasks["t5"]}},
			{ID: "back", Name: "back", Internal: true, Members: []string{tasks["t2"], tasks["t3"]}},
			{ID: "other", Name: "other", Members: []string{tasks["t4"]}},
		},
		Services: []api.NetService{
			{ID: "web", Name: "web", VIP: "10.96.0.10", Backends: []api.NetBackend{
				{TaskID: "t1", NodeID: "n1", Addr: tasks["t1"]},
				{TaskID: "t2", NodeID: "n1", Addr: tasks["t2"]},
				{TaskID: "t5", NodeID: "n1", Addr: tasks["t5"]},
			}},
			{ID: "empty", Name: "empty", VIP: "10.96.0.11"},
		},
		Tasks: []api.NetTask{
			{ID: "t1", Addr: tasks["t1"], Networks: []string{"front"}},
			{ID: "t2", Addr: tasks["t2"], Networks: []string{"back", "front"}},
			{ID: "t3", Addr: tasks["t3"], Networks: []string{"back"}},
			{ID: "t4", Addr: tasks["t4"], Networks: []string{"other"}},
			{ID: "t5", Addr: tasks["t5"], Networks: []string{"front"}},
		},
	}
	if _, err := NewTable(node.ns, Options{}).Apply(mustBuild(t, v, Options{})); err != nil {
		t.Fatal(err)
	}

	t.Run("isolation", func(t *testing.T) {
		wantReach(t, hosts["t1"], tasks["t2"]+":8080", "t2", tasks["t1"]) // front
		wantReach(t, hosts["t3"], tasks["t2"]+":8080", "t2", tasks["t3"]) // back
		wantRefused(t, hosts["t4"], tasks["t1"]+":8080")                  // nothing shared
		wantRefused(t, hosts["t1"], tasks["t3"]+":8080")
		wantRefused(t, hosts["t3"], tasks["t5"]+":8080")
	})

	t.Run("vip", func(t *testing.T) {
		for _, client := range []string{"t1", "t2", "t5"} {
			seen := map[string]bool{}
			for i := 0; i < 300 && len(seen) < 3; i++ {
				name, from, err := dial(hosts[client], "10.96.0.10:8080")
				if err != nil {
					t.Fatalf("%s to the vip: %v", client, err)
				}
				want := tasks[client]
				if name == client {
					want = gw // hairpin: masqueraded to the gateway
				}
				if from != want {
					t.Errorf("%s to the vip, answered by %s seeing %s, want %s", client, name, from, want)
				}
				seen[name] = true
			}
			if len(seen) != 3 || !seen[client] {
				t.Errorf("%s reached %v through the vip, want t1, t2 and t5 (itself included)", client, seen)
			}
		}
		// udp too, on the port the client chose.
		name, err := askUDP(hosts["t2"], "10.96.0.10:5353")
		if err != nil || (name != "t1" && name != "t2" && name != "t5") {
			t.Errorf("udp to the vip: answer %q, %v", name, err)
		}
		wantRefused(t, hosts["t4"], "10.96.0.10:8080") // no network shared with the backends
		wantRefused(t, hosts["t1"], "10.96.0.11:8080") // no backend
		wantRefused(t, hosts["t1"], "10.96.0.99:8080") // no such vip
	})

	t.Run("egress", func(t *testing.T) {
		wantReach(t, hosts["t1"], "203.0.113.2:9090", "outside", "203.0.113.1") // masqueraded
		wantRefused(t, hosts["t3"], "203.0.113.2:9090")                         // internal only
	})

	t.Run("node", func(t *testing.T) {
		wantReach(t, hosts["t3"], gw+":53", "node", tasks["t3"])
		wantRefused(t, hosts["t3"], gw+":8081")
		wantReach(t, hosts["t1"], gw+":8081", "node", tasks["t1"])
		// The node reaches tasks and VIPs.
		wantReach(t, node, tasks["t3"]+":8080", "t3", gw)
		name, _, err := dial(node, "10.96.0.10:8080")
		if err != nil || (name != "t1" && name != "t2" && name != "t5") {
			t.Errorf("node to the vip: %s, %v", name, err)
		}
		wantRefused(t, node, "10.96.0.99:8080")
	})
}

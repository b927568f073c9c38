package netplane

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/vishvananda/netlink"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/netplane/netns"
)

// node is one plane of the test, in a namespace of its own.
type node struct {
	id, subnet, underlay string
	ns                   netns.NS
	plane                *Plane
	stop                 func()
}

// testNode creates a namespace joined to the others' by veth pairs that
// the caller wires, and a running plane in it.
func testNode(t *testing.T, id string, idx int) *node {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "ns")
	if err := netns.Create(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netns.Remove(path) })
	n := &node{id: id, subnet: fmt.Sprintf("10.64.%d.0/24", idx), underlay: fmt.Sprintf("192.168.77.%d", idx), ns: netns.NS{Path: path}}
	p, err := New(Config{DataDir: filepath.Join(dir, "plane"), NS: n.ns, Userspace: true})
	if err != nil {
		t.Fatal(err)
	}
	n.plane = p
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	n.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("plane %s: %v", id, err)
		}
	}
	t.Cleanup(func() {
		if ctx.Err() == nil {
			_ = p.Teardown(context.Background())
			n.stop()
		}
	})
	return n
}

// link joins two nodes' namespaces with a veth pair on 192.168.77.0/24.
func link(t *testing.T, a, b *node) {
	t.Helper()
	ha, err := a.ns.Handle()
	if err != nil {
		t.Fatal(err)
	}
	defer ha.Close()
	hb, err := b.ns.Handle()
	if err != nil {
		t.Fatal(err)
	}
	defer hb.Close()
	la, err := netlink.NewHandleAt(ha)
	if err != nil {
		t.Fatal(err)
	}
	defer la.Close()
	lb, err := netlink.NewHandleAt(hb)
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "eth0", PeerNamespace: netlink.NsFd(hb)}
	if err := la.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		h    *netlink.Handle
		addr string
	}{{la, a.underlay}, {lb, b.underlay}} {
		l, err := x.h.LinkByName("eth0")
		if err != nil {
			t.Fatal(err)
		}
		ip, _ := netlink.ParseAddr(x.addr + "/24")
		if err := x.h.AddrAdd(l, ip); err != nil {
			t.Fatal(err)
		}
		if err := x.h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
}

// task is a task namespace attached to a node.
type task struct {
	id, addr string
	ns       netns.NS
}

func attach(t *testing.T, n *node, id, addr string) task {
	t.Helper()
	path := filepath.Join(t.TempDir(), "task")
	if err := netns.Create(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netns.Remove(path) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dnsAddr, err := n.plane.Attach(ctx, id, addr, path)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimSuffix(n.subnet, "0/24") + "1"; dnsAddr != want {
		t.Errorf("nameserver %s, want the gateway %s", dnsAddr, want)
	}
	t.Cleanup(func() { _ = n.plane.Detach(context.Background(), id, path) })
	plain, _, _ := strings.Cut(addr, "/")
	return task{id: id, addr: plain, ns: netns.NS{Path: path}}
}

// serve answers every connection to :80 in the task with its ID.
func serve(t *testing.T, tk task) {
	t.Helper()
	var ln net.Listener
	if err := tk.ns.Do(func() (err error) { ln, err = net.Listen("tcp", ":80"); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s\n", tk.id)
			c.Close()
		}
	}()
}

// get connects from a task to addr:80 and returns the line it answers.
func get(tk task, addr string) (string, error) {
	var line string
	err := tk.ns.Do(func() error {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(addr, "80"), 3*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		line, err = bufio.NewReader(c).ReadString('\n')
		return err
	})
	return strings.TrimSpace(line), err
}

// lookup asks the node's DNS server from a task.
func lookup(tk task, server, name string) ([]string, int, error) {
	var r *mdns.Msg
	err := tk.ns.Do(func() error {
		m := new(mdns.Msg)
		m.SetQuestion(mdns.Fqdn(name), mdns.TypeA)
		var err error
		r, _, err = (&mdns.Client{Timeout: 3 * time.Second}).Exchange(m, net.JoinHostPort(server, "53"))
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*mdns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out, r.Rcode, nil
}

// views builds each node's view of a cluster of n1 (client task c1) and
// n2 (server task s2 behind service app_api), both on network shared when
// shared is set.
func views(n1, n2 *node, c1, s2 task, shared bool) (*api.NetView, *api.NetView) {
	pools := api.DefaultNetworkConfig()
	peer := func(n *node) api.NetPeer {
		return api.NetPeer{NodeID: n.id, PublicKey: n.plane.WireGuard().PublicKey,
			Endpoint: net.JoinHostPort(n.underlay, fmt.Sprint(n.plane.WireGuard().Port)), Subnet: n.subnet}
	}
	netC, netS := "net-a", "net-a"
	if !shared {
		netS = "net-b"
	}
	nets := []api.NetNetwork{{ID: "net-a", Name: "app_a", Members: []string{c1.addr, s2.addr}}}
	if !shared {
		nets = []api.NetNetwork{{ID: "net-a", Name: "app_a", Members: []string{c1.addr}}, {ID: "net-b", Name: "app_b", Members: []string{s2.addr}}}
	}
	svc := api.NetService{ID: "svc-api", Name: "app_api", ShortName: "api", Mode: api.EndpointVIP, VIP: "10.96.0.5",
		Networks: []api.NetAttachment{{NetworkID: netS}}, Backends: []api.NetBackend{{TaskID: s2.id, NodeID: n2.id, Addr: s2.addr}}}
	client := api.NetService{ID: "svc-client", Name: "app_client", ShortName: "client", Mode: api.EndpointVIP, VIP: "10.96.0.6",
		Networks: []api.NetAttachment{{NetworkID: netC}}, Backends: []api.NetBackend{{TaskID: c1.id, NodeID: n1.id, Addr: c1.addr}}}
	v1 := &api.NetView{NodeID: n1.id, Subnet: n1.subnet, TaskPool: pools.TaskPool, VIPPool: pools.VIPPool,
		Peers: []api.NetPeer{peer(n2)}, Networks: nets, Services: []api.NetService{svc, client},
		Tasks: []api.NetTask{{ID: c1.id, ServiceID: "svc-client", Addr: c1.addr, Networks: []string{netC}}}}
	v2 := &api.NetView{NodeID: n2.id, Subnet: n2.subnet, TaskPool: pools.TaskPool, VIPPool: pools.VIPPool,
		Peers: []api.NetPeer{peer(n1)}, Networks: nets, Services: []api.NetService{svc, client},
		Tasks: []api.NetTask{{ID: s2.id, ServiceID: "svc-api", Addr: s2.addr, Networks: []string{netS}}}}
	return v1, v2
}

func reconfig(t *testing.T, n *node, v *api.NetView) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.plane.Reconfig(ctx, v); err != nil {
		t.Fatal(err)
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	if _, err := os.Stat("/usr/lib/cni/ptp"); err != nil {
		t.Skip("needs containernetworking-plugins")
	}
}

// Two nodes, each a plane in its own namespace with a task attached: the
// client task on n1 reaches the service on n2 by VIP, by address and by
// name through n1's DNS server, across the WireGuard overlay; a view in
// which they share no network cuts them apart and hides the name; an
// unchanged view changes nothing; Teardown leaves nothing behind.
func TestTwoPlanes_Root(t *testing.T) {
	requireRoot(t)
	n1, n2 := testNode(t, "n1", 1), testNode(t, "n2", 2)
	link(t, n1, n2)
	c1 := attach(t, n1, "task-c1", "10.64.1.2/24")
	s2 := attach(t, n2, "task-s2", "10.64.2.2/24")
	serve(t, s2)
	v1, v2 := views(n1, n2, c1, s2, true)
	reconfig(t, n1, v1)
	reconfig(t, n2, v2)

	for _, to := range []string{"10.96.0.5", s2.addr} {
		if got, err := get(c1, to); err != nil || got != s2.id {
			t.Errorf("client → %s: %q, %v", to, got, err)
		}
	}
	for _, name := range []string{"api", "app_api", "API."} {
		if got, rcode, err := lookup(c1, "10.64.1.1", name); err != nil || rcode != mdns.RcodeSuccess || len(got) != 1 || got[0] != "10.96.0.5" {
			t.Errorf("lookup %s: %v rcode %d %v", name, got, rcode, err)
		}
	}

	// The same view again is a no-op.
	applied := n1.plane.applies.Load()
	reconfig(t, n1, v1)
	if n1.plane.applies.Load() != applied {
		t.Error("an unchanged view was applied again")
	}

	// No shared network: no connection, no name.
	v1, v2 = views(n1, n2, c1, s2, false)
	reconfig(t, n1, v1)
	reconfig(t, n2, v2)
	for _, to := range []string{"10.96.0.5", s2.addr} {
		if got, err := get(c1, to); err == nil {
			t.Errorf("client → %s without a shared network: %q", to, got)
		}
	}
	if got, rcode, err := lookup(c1, "10.64.1.1", "api"); err != nil || rcode != mdns.RcodeNameError {
		t.Errorf("api resolves without a shared network: %v rcode %d %v", got, rcode, err)
	}

	// Teardown: no table, WireGuard link, gateway address or cache left.
	if err := n1.plane.Teardown(context.Background()); err != nil {
		t.Fatal(err)
	}
	n1.stop()
	var out []byte
	err := n1.ns.Do(func() (err error) {
		out, err = exec.Command("sh", "-c", "nft list tables; ip -o link; ip -o -4 addr; ip route").CombinedOutput()
		return err
	})
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, left := range []string{"gitorc", WireGuardLink, "10.64.1.1", "10.64.2.0"} {
		if strings.Contains(string(out), left) {
			t.Errorf("%s left after Teardown:\n%s", left, out)
		}
	}
	if _, err := os.Stat(filepath.Join(n1.plane.cfg.DataDir, cniDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("CNI cache left: %v", err)
	}
}

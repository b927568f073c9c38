package dns

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"

	"github.com/gitorc/gitorc/netplane/netns"
)

// newNS creates a network namespace with loopback up, bound in the
// test's temporary directory, removed when the test ends.
func newNS(t testing.TB) netns.NS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	path := filepath.Join(t.TempDir(), "ns")
	if err := netns.Create(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := netns.Remove(path); err != nil {
			t.Error(err)
		}
	})
	ns := netns.NS{Path: path}
	if err := ns.Do(func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	}); err != nil {
		t.Fatal(err)
	}
	return ns
}

// queryIn asks from inside ns (the socket is opened there).
func queryIn(t *testing.T, ns netns.NS, server string, caller netip.Addr, network, name string) *dns.Msg {
	t.Helper()
	var conn net.Conn
	if err := ns.Do(func() (err error) {
		conn, err = client(caller, network).Dialer.Dial(network, server)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	r, _, err := client(caller, network).ExchangeWithConn(m, &dns.Conn{Conn: conn})
	if err != nil {
		t.Fatalf("%s from %s in the namespace: %v", name, caller, err)
	}
	return r
}

// A server whose plane lives in another namespace listens there, tells
// its tasks apart there, and forwards from there: an upstream on the
// same loopback address and port in the test's own namespace (which
// answers SERVFAIL) never hears from it.
func TestNamespace_Root(t *testing.T) {
	ns := newNS(t)
	upAddr := netip.AddrPortFrom(loopback, uint16(freePort(t, loopback))).String()
	inside := runUpstreamAt(t, ns, upAddr, false)
	decoy := runUpstreamAt(t, netnsOwn, upAddr, true)

	port := freePort(t, loopback)
	_, addr := runServer(t, Config{NS: ns, Addr: loopback, Port: port, Upstreams: []string{upAddr}}, testView())

	for _, network := range []string{"udp", "tcp"} {
		if got := resultOf(queryIn(t, ns, addr, callHost, network, "api.")); len(got.Addrs) != 2 {
			t.Fatalf("%s: api. from the node: %+v, want both VIPs", network, got)
		}
		if got := resultOf(queryIn(t, ns, addr, callFront, network, "api.")); len(got.Addrs) != 1 || got.Addrs[0] != "10.96.0.3" {
			t.Fatalf("%s: api. from a task on front: %+v", network, got)
		}
		if got := resultOf(queryIn(t, ns, addr, callFront, network, "example.test.")); got.Rcode != "NOERROR" || len(got.Addrs) != 1 || got.Addrs[0] != "192.0.2.1" {
			t.Fatalf("%s: example.test.: %+v, want the namespace's upstream's answer", network, got)
		}
	}
	if n, d := inside.count.Load(), decoy.count.Load(); n != 2 || d != 0 {
		t.Fatalf("upstream in the namespace got %d queries, the one outside %d; want 2 and 0", n, d)
	}
	// Nothing listens on the server's port out here.
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatalf("%s answers in the test's own namespace", addr)
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial %s out of the namespace: %v, want connection refused", addr, err)
	}
}

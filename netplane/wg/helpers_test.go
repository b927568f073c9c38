package wg

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/gitorc/gitorc/netplane/netns"
)

// The test underlay: two namespaces joined by a veth pair.
const (
	underlayPrefix = 24
	underlayLink   = "u0"
)

// needRoot skips tests that make network namespaces, links and TUN
// devices.
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, veth pairs and TUN devices in them")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skip("needs /dev/net/tun for wireguard-go")
	}
}

// newNS creates a network namespace bound in the test's temporary
// directory, removed when the test ends, with lo up and IPv6 off (so
// that the underlay carries no neighbour discovery).
func newNS(t testing.TB, name string) netns.NS {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := netns.Create(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := netns.Remove(path); err != nil {
			t.Error(err)
		}
	})
	ns := netns.NS{Path: path}
	err := ns.Do(func() error {
		for _, f := range []string{"all", "default"} {
			err := os.WriteFile("/proc/sys/net/ipv6/conf/"+f+"/disable_ipv6", []byte("1\n"), 0o644)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	h := handleOn(t, ns)
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// handleOn returns a netlink handle on ns, closed when the test ends.
func handleOn(t testing.TB, ns netns.NS) *netlink.Handle {
	t.Helper()
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
	return h
}

// logBuf collects a device's logs; the test prints them when it fails.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Len is how much has been logged so far, for since.
func (l *logBuf) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Len()
}

// since returns what was logged after the first off bytes.
func (l *logBuf) since(off int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b.Bytes()[off:])
}

// node is one test node: a namespace with an underlay address and a
// Device.
type node struct {
	name     string
	ns       netns.NS
	h        *netlink.Handle
	dev      *Device
	keyFile  string
	logs     *logBuf
	underlay netip.Addr
	local    netip.Addr   // the node's gateway
	subnet   netip.Prefix // its task subnet
}

// twoNodes makes two nodes joined by a veth pair, 192.168.77.1 and .2,
// each with a Device (up) whose gateways are 10.64.1.1 and 10.64.2.1. The
// devices have no peers yet: see connect.
func twoNodes(t testing.TB, userspace bool) (*node, *node) {
	t.Helper()
	n1 := &node{name: "n1", underlay: netip.MustParseAddr("192.168.77.1"),
		local: netip.MustParseAddr("10.64.1.1"), subnet: netip.MustParsePrefix("10.64.1.0/24")}
	n2 := &node{name: "n2", underlay: netip.MustParseAddr("192.168.77.2"),
		local: netip.MustParseAddr("10.64.2.1"), subnet: netip.MustParsePrefix("10.64.2.0/24")}
	for _, n := range []*node{n1, n2} {
		n.ns = newNS(t, n.name)
		n.h = handleOn(t, n.ns)
	}
	ns2, err := n2.ns.Handle()
	if err != nil {
		t.Fatal(err)
	}
	defer ns2.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: underlayLink}, PeerName: "peer", PeerNamespace: netlink.NsFd(int(ns2))}
	if err := n1.h.LinkAdd(veth); err != nil {
		t.Fatalf("veth pair: %v", err)
	}
	if l, err := n2.h.LinkByName("peer"); err != nil {
		t.Fatal(err)
	} else if err := n2.h.LinkSetName(l, underlayLink); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*node{n1, n2} {
		l, err := n.h.LinkByName(underlayLink)
		if err != nil {
			t.Fatal(err)
		}
		a := &netlink.Addr{IPNet: ptr(ipNet(netip.PrefixFrom(n.underlay, underlayPrefix)))}
		if err := n.h.AddrAdd(l, a); err != nil {
			t.Fatal(err)
		}
		if err := n.h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
		n.start(t, userspace)
	}
	return n1, n2
}

// start makes the node's Device and brings it up; the test's end closes
// it (before its namespace goes).
func (n *node) start(t testing.TB, userspace bool) {
	t.Helper()
	n.newDevice(t, userspace)
	if err := n.dev.Up(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// newDevice makes the node a new Device, not up yet, with the key in
// n.keyFile (a new one when the file is missing). The test's end closes
// it, also when Up failed half-way.
func (n *node) newDevice(t testing.TB, userspace bool) {
	t.Helper()
	if n.keyFile == "" {
		n.keyFile = filepath.Join(t.TempDir(), "wireguard.key")
		n.logs = new(logBuf)
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("%s logs:\n%s", n.name, n.logs)
			}
		})
	}
	log := slogTo(n.logs)
	d, err := New(Config{NS: n.ns, KeyFile: n.keyFile, Userspace: userspace, Logger: log.With("node", n.name)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	n.dev = d
}

// peer is n as the other nodes' peer.
func (n *node) peer() Peer {
	return Peer{PublicKey: n.dev.PublicKey(), Endpoint: netip.AddrPortFrom(n.underlay, n.dev.Port()).String(), Subnet: n.subnet}
}

// connect makes each node the other's peer and waits for their
// handshake, and for both keepalives to be on (the node with the higher
// key turns its own on after KeepaliveDelay), so that no background work
// of the Devices is left.
func connect(t testing.TB, n1, n2 *node) {
	t.Helper()
	if err := n1.dev.Reconfig(n1.local, []Peer{n2.peer()}); err != nil {
		t.Fatal(err)
	}
	if err := n2.dev.Reconfig(n2.local, []Peer{n1.peer()}); err != nil {
		t.Fatal(err)
	}
	waitHandshake(t, n1, n2)
}

// waitHandshake waits until n1 and n2 have a session with each other and
// their keepalives on.
func waitHandshake(t testing.TB, n1, n2 *node) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		p1, _ := n1.peerStatus(t, n2.dev.PublicKey())
		p2, _ := n2.peerStatus(t, n1.dev.PublicKey())
		if !p1.LastHandshake.IsZero() && !p2.LastHandshake.IsZero() && p1.Keepalive == Keepalive && p2.Keepalive == Keepalive {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no handshake between %s and %s", n1.name, n2.name)
		}
		time.Sleep(20 * time.Millisecond) // polling, with the deadline above
	}
}

// echo runs a TCP echo server on the node's gateway, closed when the
// test ends, and returns its address.
func (n *node) echo(t testing.TB) string {
	t.Helper()
	var ln net.Listener
	err := n.ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", netip.AddrPortFrom(n.local, 0).String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		conns  []net.Conn
		closed bool
	)
	t.Cleanup(func() {
		// Close the connections too: a client's FIN may never have come
		// (the test removed the peer).
		ln.Close()
		mu.Lock()
		closed = true
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed {
				// Accepted as the cleanup ran: nobody else closes it.
				mu.Unlock()
				c.Close()
				return
			}
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			})
		}
	})
	return ln.Addr().String()
}

// dial connects from the node's gateway to addr.
func (n *node) dial(addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := n.ns.Do(func() error {
		d := net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{IP: net.IP(n.local.AsSlice())}}
		var err error
		c, err = d.Dial("tcp", addr)
		return err
	})
	return c, err
}

// roundTrip sends msg over c and reads it back.
func roundTrip(c net.Conn, msg []byte) error {
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return err
	}
	if _, err := c.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo differs")
	}
	return nil
}

// talk dials addr from n, makes one round trip and closes the
// connection in order: n closes its side first and returns once the
// echo server's FIN has come, so that the last packet n sends for it
// (the ACK of that FIN) is on its way when talk returns.
func (n *node) talk(addr string) error {
	c, err := n.dial(addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := roundTrip(c, []byte("hello over the overlay")); err != nil {
		return err
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return err
	}
	if rest, err := io.ReadAll(c); err != nil || len(rest) > 0 {
		return fmt.Errorf("close: %d bytes more, %v", len(rest), err)
	}
	return nil
}

// flush sends a UDP datagram from n's gateway to to's over the overlay
// and waits for it: WireGuard keeps a peer's packets in order, so
// everything n sent to before has been received (and counted in to's
// peer statistics) when flush returns.
func (n *node) flush(t testing.TB, to *node) {
	t.Helper()
	var ln *net.UDPConn
	err := to.ns.Do(func() error {
		var err error
		ln, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IP(to.local.AsSlice())})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	marker := []byte("flush " + n.name)
	err = n.ns.Do(func() error {
		c, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.IP(n.local.AsSlice())}, ln.LocalAddr().(*net.UDPAddr))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write(marker)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ln.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	for {
		k, err := ln.Read(buf)
		if err != nil {
			t.Fatalf("flush %s to %s: %v", n.name, to.name, err)
		}
		if bytes.Equal(buf[:k], marker) {
			return
		}
	}
}

// routes lists the routes of the main table via the node's WireGuard
// interface, as "dst src proto".
func (n *node) routes(t testing.TB) []string {
	t.Helper()
	l, err := n.h.LinkByName(DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := n.h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{LinkIndex: l.Attrs().Index}, netlink.RT_FILTER_OIF)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%s src=%s proto=%d", r.Dst, r.Src, r.Protocol))
	}
	return out
}

// peerStatus returns the device's peer with the given key.
func (n *node) peerStatus(t testing.TB, key string) (PeerStatus, bool) {
	t.Helper()
	ps, err := n.dev.Peers()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.PublicKey == key {
			return p, true
		}
	}
	return PeerStatus{}, false
}

// capture is a tcpdump running inside a namespace, bounded by a packet
// count and a timeout.
type capture struct {
	file string
	cmd  *exec.Cmd
	done chan error
}

// startCapture runs tcpdump on iface inside ns until it has count
// packets or timeout passes, and returns once it listens.
func startCapture(t testing.TB, ns netns.NS, iface string, count int, timeout time.Duration) *capture {
	t.Helper()
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Skip("needs tcpdump")
	}
	c := &capture{file: filepath.Join(t.TempDir(), iface+".pcap"), done: make(chan error, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	c.cmd = exec.CommandContext(ctx, "nsenter", "--net="+ns.Path, "tcpdump", "-i", iface, "-n", "-s", "0", "-U",
		"-c", fmt.Sprint(count), "-w", c.file)
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	listening := make(chan struct{})
	var out strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "listening on") {
				close(listening)
			}
		}
		err := c.cmd.Wait()
		cancel()
		if err != nil {
			err = fmt.Errorf("tcpdump on %s: %w\n%s", iface, err, out.String())
		}
		c.done <- err
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-c.done:
		case <-time.After(timeout):
		}
	})
	select {
	case <-listening:
	case err := <-c.done:
		c.done <- err
		t.Fatalf("tcpdump on %s stopped before listening: %v", iface, err)
	case <-time.After(timeout):
		t.Fatalf("tcpdump on %s does not listen", iface)
	}
	return c
}

// finished reports whether tcpdump has its packets, failing the test if
// it ended otherwise.
func (c *capture) finished(t testing.TB) bool {
	t.Helper()
	select {
	case err := <-c.done:
		c.done <- err
		if err != nil {
			t.Fatal(err)
		}
		return true
	default:
		return false
	}
}

// packets reads the capture back, one line a packet, as tcpdump -q
// prints them without timestamps.
func (c *capture) packets(t testing.TB) []string {
	t.Helper()
	out, err := exec.Command("tcpdump", "-r", c.file, "-n", "-q", "-t").Output()
	if err != nil {
		t.Fatalf("tcpdump -r: %v", err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

func (c *capture) bytes(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(c.file)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// slogTo logs everything, debug included, to w.
func slogTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

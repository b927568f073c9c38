package wg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// TestOverlay_Root connects two nodes over userspace WireGuard: TCP
// between their gateways works, and meanwhile the underlay carries only
// WireGuard's UDP, without the plaintext, which the WireGuard interface
// itself does show.
func TestOverlay_Root(t *testing.T) {
	needRoot(t)
	n1, n2 := twoNodes(t, true)
	if n1.dev.Kernel() || n2.dev.Kernel() {
		t.Fatal("Kernel() with Userspace set")
	}
	for _, n := range []*node{n1, n2} {
		if u, ok := n.dev.impl.(*userspace); !ok || !u.offloads {
			t.Errorf("%s: TUN offloads (IFF_VNET_HDR, TSO) are off", n.name)
		}
	}
	connect(t, n1, n2)
	addr := n2.echo(t)

	// Routes: one per peer subnet via the interface, source the gateway,
	// marked as the Device's.
	if got, want := n1.routes(t), []string{"10.64.2.0/24 src=10.64.1.1 proto=103"}; !slices.Equal(got, want) {
		t.Fatalf("routes via %s on n1: %q, want %q", DefaultName, got, want)
	}

	marker := make([]byte, 12)
	rand.Read(marker)
	msg := []byte(strings.Repeat("gitorc-marker-"+hex.EncodeToString(marker)+" ", 8))
	const packets = 12
	under := startCapture(t, n1.ns, underlayLink, packets, 20*time.Second)
	over := startCapture(t, n1.ns, DefaultName, packets, 20*time.Second)
	c, err := n1.dial(addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s from n1 over the overlay: %v", addr, err)
	}
	defer c.Close()
	deadline := time.Now().Add(15 * time.Second)
	for !(under.finished(t) && over.finished(t)) {
		if time.Now().After(deadline) {
			t.Fatal("the captures did not get their packets")
		}
		if err := roundTrip(c, msg); err != nil {
			t.Fatalf("round trip over the overlay: %v", err)
		}
	}

	wgPacket := regexp.MustCompile(`^IP 192\.168\.77\.[12]\.51820 > 192\.168\.77\.[12]\.51820: UDP, length \d+$`)
	udp := 0
	for _, p := range under.packets(t) {
		switch {
		case wgPacket.MatchString(p):
			udp++
		case strings.HasPrefix(p, "ARP,"):
		default:
			t.Errorf("underlay packet that is not WireGuard: %s", p)
		}
	}
	if udp < packets/2 {
		t.Errorf("only %d WireGuard packets of %d on the underlay", udp, packets)
	}
	if strings.Contains(string(under.bytes(t)), string(msg[:30])) {
		t.Error("the marker crossed the underlay in plaintext")
	}
	if !strings.Contains(string(over.bytes(t)), string(msg[:30])) {
		t.Error("the marker is not in the capture of the WireGuard interface: the check above proves nothing")
	}

	p, ok := n1.peerStatus(t, n2.dev.PublicKey())
	if !ok {
		t.Fatal("n1 lost its peer")
	}
	if p.LastHandshake.IsZero() || p.RxBytes == 0 || p.TxBytes == 0 || p.Keepalive != Keepalive ||
		!slices.Equal(p.AllowedIPs, []netip.Prefix{n2.subnet}) || p.Endpoint != "192.168.77.2:51820" {
		t.Errorf("n1's peer: %+v", p)
	}

	// The private key is in no log line (debug included).
	for _, n := range []*node{n1, n2} {
		b, err := os.ReadFile(n.keyFile)
		if err != nil {
			t.Fatal(err)
		}
		k, err := wgtypes.ParseKey(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		if logs := n.logs.String(); strings.Contains(logs, k.String()) || strings.Contains(logs, hexKey(k)) {
			t.Errorf("%s: the private key is in the logs", n.name)
		}
	}
}

// TestReconfig_Root: the same peers again cost nothing; a peer added or
// changed leaves the others' sessions alone; a removed peer loses its
// route and its traffic; routes via the interface that others made stay.
func TestReconfig_Root(t *testing.T) {
	needRoot(t)
	n1, n2 := twoNodes(t, true)
	connect(t, n1, n2)
	addr := n2.echo(t)
	if err := n1.talk(addr); err != nil {
		t.Fatalf("n1 to n2: %v", err)
	}

	// Someone else's route via the interface (the plane's VIP pool).
	wgLink, err := n1.h.LinkByName(DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	vip := &netlink.Route{LinkIndex: wgLink.Attrs().Index, Dst: ptr(ipNet(netip.MustParsePrefix("10.96.0.0/16"))), Scope: netlink.SCOPE_LINK}
	if err := n1.h.RouteAdd(vip); err != nil {
		t.Fatal(err)
	}
	const vipRoute = "10.96.0.0/16 src=<nil> proto=3"

	ops := n1.dev.ops.Load()
	if err := n1.dev.Reconfig(n1.local, []Peer{n2.peer()}); err != nil {
		t.Fatal(err)
	}
	if d := n1.dev.ops.Load() - ops; d != 0 {
		t.Fatalf("Reconfig with the same peers: %d kernel or device operations, want 0", d)
	}

	// When the Device does not know what the interface holds (after a
	// failed step, or on a kernel interface an earlier process made) it
	// reads it back: the route of someone else is not taken for its own.
	n1.dev.mu.Lock()
	n1.dev.applied, n1.dev.target = nil, nil
	n1.dev.mu.Unlock()
	if err := n1.dev.Reconfig(n1.local, []Peer{n2.peer()}); err != nil {
		t.Fatal(err)
	}
	if got, want := n1.routes(t), []string{"10.64.2.0/24 src=10.64.1.1 proto=103", vipRoute}; !sameSet(got, want) {
		t.Fatalf("routes after reading the state back: %q, want %q", got, want)
	}

	before, _ := n1.peerStatus(t, n2.dev.PublicKey())
	if before.LastHandshake.IsZero() {
		t.Fatal("no handshake after traffic")
	}
	// A third peer (nobody answers there), then its endpoint moves: n2's
	// session survives both.
	k3, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	p3 := Peer{PublicKey: k3.PublicKey().String(), Endpoint: "192.168.77.3:51820", Subnet: netip.MustParsePrefix("10.64.3.0/24")}
	for _, ep := range []string{"192.168.77.3:51820", "192.168.77.4:51821"} {
		p3.Endpoint = ep
		if err := n1.dev.Reconfig(n1.local, []Peer{p3, n2.peer()}); err != nil {
			t.Fatal(err)
		}
		after, ok := n1.peerStatus(t, n2.dev.PublicKey())
		if !ok || !after.LastHandshake.Equal(before.LastHandshake) || after.RxBytes < before.RxBytes {
			t.Fatalf("n2's peer on n1 changed when only another peer did:\nbefore %+v\nafter  %+v", before, after)
		}
		if got, ok := n1.peerStatus(t, p3.PublicKey); !ok || got.Endpoint != ep {
			t.Fatalf("third peer: %+v, want endpoint %s", got, ep)
		}
		if err := n1.talk(addr); err != nil {
			t.Fatalf("n1 to n2 with a third peer: %v", err)
		}
	}
	want := []string{"10.64.2.0/24 src=10.64.1.1 proto=103", "10.64.3.0/24 src=10.64.1.1 proto=103", vipRoute}
	if got := n1.routes(t); !sameSet(got, want) {
		t.Fatalf("routes: %q, want %q", got, want)
	}

	// n1 drops n2: its route goes, the others stay, and no traffic
	// passes either way (n2 still has n1 as peer, but n1 answers no
	// handshake). What n1 sent before is all in n2's count first.
	n1.flush(t, n2)
	if err := n1.dev.Reconfig(n1.local, []Peer{p3}); err != nil {
		t.Fatal(err)
	}
	want = []string{"10.64.3.0/24 src=10.64.1.1 proto=103", vipRoute}
	if got := n1.routes(t); !sameSet(got, want) {
		t.Fatalf("routes after removing n2: %q, want %q", got, want)
	}
	if _, ok := n1.peerStatus(t, n2.dev.PublicKey()); ok {
		t.Fatal("n2 is still n1's peer")
	}
	if _, err := n1.dial(addr, time.Second); !errors.Is(err, unix.ENETUNREACH) {
		t.Fatalf("dial n2 from n1 without the peer: %v, want network unreachable", err)
	}
	back := n1.echo(t)
	rx, _ := n2.peerStatus(t, n1.dev.PublicKey())
	if c, err := n2.dial(back, 2*time.Second); err == nil {
		c.Close()
		t.Fatal("n2 reached n1, which dropped it")
	}
	if p, _ := n2.peerStatus(t, n1.dev.PublicKey()); p.RxBytes != rx.RxBytes {
		t.Fatalf("n2 received %d bytes from n1, which dropped it", p.RxBytes-rx.RxBytes)
	}

	// Back again: traffic resumes. Then no peers at all: only the VIP
	// route is left.
	if err := n1.dev.Reconfig(n1.local, []Peer{n2.peer(), p3}); err != nil {
		t.Fatal(err)
	}
	if err := n1.talk(addr); err != nil {
		t.Fatalf("n1 to n2 with the peer back: %v", err)
	}
	if err := n1.dev.Reconfig(n1.local, nil); err != nil {
		t.Fatal(err)
	}
	if got := n1.routes(t); !sameSet(got, []string{vipRoute}) {
		t.Fatalf("routes without peers: %q, want only the VIP route", got)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestLifecycle_Root: Up twice; Close and Up again, which restores the
// peers; Delete, which leaves nothing.
func TestLifecycle_Root(t *testing.T) {
	needRoot(t)
	n1, n2 := twoNodes(t, true)
	connect(t, n1, n2)
	addr := n2.echo(t)
	ctx := context.Background()
	link := func() netlink.Link {
		l, err := n1.h.LinkByName(DefaultName)
		if _, ok := errors.AsType[netlink.LinkNotFoundError](err); ok {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	first := link()
	if first == nil || first.Attrs().MTU != DefaultMTU || first.Attrs().Flags&1 == 0 {
		t.Fatalf("interface after Up: %+v", first)
	}
	if err := n1.dev.Up(ctx); err != nil {
		t.Fatalf("Up again: %v", err)
	}
	if l := link(); l == nil || l.Attrs().Index != first.Attrs().Index {
		t.Fatal("a second Up made another interface")
	}
	if err := n1.talk(addr); err != nil {
		t.Fatal(err)
	}

	// Close: the userspace interface goes. Up: it comes back with its
	// peers and routes.
	if err := n1.dev.Close(); err != nil {
		t.Fatal(err)
	}
	if l := link(); l != nil {
		t.Fatal("the interface outlived Close")
	}
	if err := n1.dev.Reconfig(n1.local, nil); !errors.Is(err, ErrNotUp) {
		t.Fatalf("Reconfig after Close: %v, want ErrNotUp", err)
	}
	if err := n1.dev.Up(ctx); err != nil {
		t.Fatalf("Up after Close: %v", err)
	}
	if got := n1.routes(t); !slices.Equal(got, []string{"10.64.2.0/24 src=10.64.1.1 proto=103"}) {
		t.Fatalf("routes after Close and Up: %q", got)
	}
	if err := n1.talk(addr); err != nil {
		t.Fatalf("n1 to n2 after Close and Up: %v", err)
	}

	// Delete: no interface, no route, no address of ours left; twice is
	// fine.
	for range 2 {
		if err := n1.dev.Delete(); err != nil {
			t.Fatal(err)
		}
	}
	if l := link(); l != nil {
		t.Fatal("the interface outlived Delete")
	}
	rs, err := n1.h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Protocol == RouteProtocol || (r.Dst != nil && r.Dst.Contains(n2.local.AsSlice())) ||
			(r.Dst != nil && r.Dst.IP.Equal(n1.local.AsSlice())) {
			t.Errorf("route left after Delete: %s", r)
		}
	}
	if err := n1.dev.Reconfig(n1.local, nil); !errors.Is(err, ErrNotUp) {
		t.Fatalf("Reconfig after Delete: %v, want ErrNotUp", err)
	}
	// Up after Delete makes a new interface without peers.
	if err := n1.dev.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if ps, err := n1.dev.Peers(); err != nil || len(ps) != 0 {
		t.Fatalf("peers after Delete and Up: %v %v", ps, err)
	}
}

// TestStaleInterface_Root: an interface of the Device's name that it did
// not make (a persistent TUN an earlier process left) is replaced.
func TestStaleInterface_Root(t *testing.T) {
	needRoot(t)
	n1, n2 := twoNodes(t, true)
	// Replace n1's device with a leftover, then start a new one.
	if err := n1.dev.Close(); err != nil {
		t.Fatal(err)
	}
	err := n1.ns.Do(func() error {
		return netlink.LinkAdd(&netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: DefaultName}, Mode: netlink.TUNTAP_MODE_TUN,
			Flags: netlink.TUNTAP_DEFAULTS | netlink.TUNTAP_NO_PI})
	})
	if err != nil {
		t.Fatalf("stale tun: %v", err)
	}
	stale, err := n1.h.LinkByName(DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	n1.start(t, true)
	l, err := n1.h.LinkByName(DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	if l.Attrs().Index == stale.Attrs().Index {
		t.Fatal("the stale interface was kept")
	}
	connect(t, n1, n2)
	if err := n1.talk(n2.echo(t)); err != nil {
		t.Fatalf("n1 to n2 after replacing the stale interface: %v", err)
	}
}

// TestKernelOrUserspace_Root: without Userspace, Up takes kernel
// WireGuard when the kernel has it, and falls back to wireguard-go
// otherwise; either works.
func TestKernelOrUserspace_Root(t *testing.T) {
	needRoot(t)
	n1, n2 := twoNodes(t, false)
	t.Logf("kernel WireGuard: %v", n1.dev.Kernel())
	l, err := n1.h.LinkByName(DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[bool]string{true: "wireguard", false: "tuntap"}[n1.dev.Kernel()]; l.Type() != want {
		t.Fatalf("link type %s, want %s (Kernel() = %v)", l.Type(), want, n1.dev.Kernel())
	}
	connect(t, n1, n2)
	if err := n1.talk(n2.echo(t)); err != nil {
		t.Fatalf("n1 to n2: %v", err)
	}
}

// TestSimultaneousUp_Root brings two nodes' interfaces up and makes them
// each other's peer at the same moment, with new keys each round (so
// that either may hold the lower one), and sends a UDP datagram over the
// tunnel at once. Every round the datagram arrives, and the session it
// went over came from the first initiations: at most one was lost (the
// one a node sent before the other knew it) and WireGuard never had to
// retry a handshake (its REKEY_TIMEOUT, a 5 s blackout). Without the
// tie-break (plan.deferKeepalives) both nodes initiate and the
// initiations cross: in some rounds each node drops the answer to its own
// as invalid and the retry brings the session up, in others the session
// works one way only and the datagram never arrives (until a new
// handshake, 15 s later, too late for it).
//
// The datagram goes from the node with the lower key: traffic from the
// other one in the very first moment would start a handshake of its own
// (as any traffic to a peer without a session does), which the tie-break
// on keepalives does not cover.
func TestSimultaneousUp_Root(t *testing.T) {
	needRoot(t)
	const (
		rounds     = 30
		port       = 7777
		initiation = "Sending handshake initiation"
		retry      = "Handshake did not complete after"
		invalid    = "Received invalid response message"
	)
	n1, n2 := twoNodes(t, true)
	nodes := []*node{n1, n2}
	// Each node listens on every address (its gateway comes with
	// Reconfig), and sends from there too.
	conns := make([]*net.UDPConn, 2)
	for i, n := range nodes {
		err := n.ns.Do(func() error {
			var err error
			conns[i], err = net.ListenUDP("udp4", &net.UDPAddr{Port: port})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conns[i].Close() })
	}

	lostOne := 0
	for round := range rounds {
		for _, n := range nodes {
			if err := n.dev.Delete(); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(n.keyFile); err != nil {
				t.Fatal(err)
			}
			n.newDevice(t, true)
		}
		lo, hi := 0, 1
		if compareKeys(n1.dev.pub, n2.dev.pub) > 0 {
			lo, hi = 1, 0
		}
		msg := fmt.Appendf(nil, "round %d from %s", round, nodes[lo].name)
		offs := []int{n1.logs.Len(), n2.logs.Len()}

		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
			errs  = make([]error, 2)
		)
		for i, n := range nodes {
			other := nodes[1-i]
			wg.Go(func() {
				<-start
				if err := n.dev.Up(context.Background()); err != nil {
					errs[i] = err
					return
				}
				if err := n.dev.Reconfig(n.local, []Peer{other.peer()}); err != nil {
					errs[i] = err
					return
				}
				if i == lo {
					to := netip.AddrPortFrom(other.local, port)
					_, errs[i] = conns[i].WriteToUDPAddrPort(msg, to)
				}
			})
		}
		close(start)
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}

		// Wait for the datagram, and for the answer to it: the session
		// works both ways. (The deadline only bounds a broken run: a
		// retried handshake takes 5 s and is caught below, by its log.)
		from := receive(t, conns[hi], msg, fmt.Sprintf("round %d: the datagram from %s", round, nodes[lo].name))
		if want := nodes[lo].local; from.Addr().Unmap() != want {
			t.Fatalf("round %d: the datagram came from %s, want %s", round, from, want)
		}
		reply := append([]byte("re: "), msg...)
		if _, err := conns[hi].WriteToUDPAddrPort(reply, from); err != nil {
			t.Fatal(err)
		}
		receive(t, conns[lo], reply, fmt.Sprintf("round %d: the answer from %s", round, nodes[hi].name))

		// Everything WireGuard did up to here is in the logs by now: the
		// datagram went over a session that was complete.
		var sent, retries, invalids [2]int
		for i, n := range nodes {
			l := n.logs.since(offs[i])
			sent[i], retries[i], invalids[i] = strings.Count(l, initiation), strings.Count(l, retry), strings.Count(l, invalid)
		}
		// One initiation made the session; the others were lost.
		if lost := sent[0] + sent[1] - 1; retries[0]+retries[1] > 0 || lost > 1 || sent[lo] == 0 {
			t.Fatalf("round %d (%s has the lower key): initiations sent %v, of them retries %v, answers dropped as invalid %v; "+
				"want the lower key's initiation first, at most one lost, none retried",
				round, nodes[lo].name, sent, retries, invalids)
		}
		if sent[hi] > 0 {
			lostOne++ // the lower key's initiation came before the other knew it; the other's, later, made it
		}
	}
	t.Logf("%d rounds; in %d the first initiation was lost and the held-back keepalive's made the session", rounds, lostOne)
}

// TestKeepaliveHold_Root: a new peer with a lower key than the device's
// has its keepalive held back, each for its own delay from when it was
// added (a peer added while another's is held back does not go on with
// the first's), and one removed meanwhile leaves no timer behind.
func TestKeepaliveHold_Root(t *testing.T) {
	needRoot(t)
	n1, _ := twoNodes(t, true)
	d := n1.dev
	d.keepaliveDelay = time.Hour // nothing comes due but what the test makes due
	var lower, higher []Peer
	for i := 0; len(lower) < 2 || len(higher) < 1; i++ {
		k, err := wgtypes.GeneratePrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		p := Peer{PublicKey: k.PublicKey().String(), Endpoint: fmt.Sprintf("192.168.77.%d:51820", 10+i),
			Subnet: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 64, byte(10 + i), 0}), 24)}
		if compareKeys(k.PublicKey(), d.pub) < 0 {
			lower = append(lower, p)
		} else {
			higher = append(higher, p)
		}
	}
	a, b, c := lower[0], lower[1], higher[0]
	keepalives := func() map[string]time.Duration {
		t.Helper()
		ps, err := d.Peers()
		if err != nil {
			t.Fatal(err)
		}
		m := make(map[string]time.Duration)
		for _, p := range ps {
			m[p.PublicKey] = p.Keepalive
		}
		return m
	}
	check := func(step string, want map[string]time.Duration) {
		t.Helper()
		if diff := cmp.Diff(want, keepalives()); diff != "" {
			t.Fatalf("%s: keepalives (-want +got):\n%s", step, diff)
		}
	}

	if err := d.Reconfig(n1.local, []Peer{a, c}); err != nil {
		t.Fatal(err)
	}
	check("a and c added", map[string]time.Duration{a.PublicKey: 0, c.PublicKey: Keepalive})
	if err := d.Reconfig(n1.local, []Peer{a, b, c}); err != nil {
		t.Fatal(err)
	}
	check("b added", map[string]time.Duration{a.PublicKey: 0, b.PublicKey: 0, c.PublicKey: Keepalive})

	// a comes due; b, added later, does not go on with it.
	d.mu.Lock()
	ka, _ := wgtypes.ParseKey(a.PublicKey)
	d.pending[ka] = time.Now().Add(-time.Second)
	gen := d.keepaliveGen
	d.mu.Unlock()
	d.keepalivesDue(gen)
	check("a due", map[string]time.Duration{a.PublicKey: Keepalive, b.PublicKey: 0, c.PublicKey: Keepalive})

	// Held back, b stays so through Reconfigs, which cost nothing when
	// nothing else changed.
	ops := d.ops.Load()
	if err := d.Reconfig(n1.local, []Peer{c, b, a}); err != nil {
		t.Fatal(err)
	}
	if n := d.ops.Load() - ops; n != 0 {
		t.Fatalf("the same peers again: %d operations", n)
	}
	check("again", map[string]time.Duration{a.PublicKey: Keepalive, b.PublicKey: 0, c.PublicKey: Keepalive})

	// b removed before it was due: no timer is left.
	if err := d.Reconfig(n1.local, []Peer{a, c}); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	timer, pending := d.keepaliveTimer, len(d.pending)
	d.mu.Unlock()
	if timer != nil || pending != 0 {
		t.Fatalf("b removed: timer %v, %d pending, want none", timer != nil, pending)
	}
	check("b removed", map[string]time.Duration{a.PublicKey: Keepalive, c.PublicKey: Keepalive})
}

// receive reads datagrams from c until one is msg, and returns its
// source; what is the failure's subject.
func receive(t *testing.T, c *net.UDPConn, msg []byte, what string) netip.AddrPort {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("%s did not arrive: %v", what, err)
		}
		if string(buf[:n]) == string(msg) {
			return from
		}
		// A late datagram of an earlier round: skip it.
	}
}

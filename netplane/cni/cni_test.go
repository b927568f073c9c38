package cni

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"

	"github.com/gitorc/gitorc/netplane/netns"
)

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, CNI plugins)")
	}
	for _, p := range plugins {
		if _, err := os.Stat(filepath.Join(DefaultPluginDirs[0], p)); err != nil {
			t.Skipf("needs %s/%s: apt-get install containernetworking-plugins", DefaultPluginDirs[0], p)
		}
	}
}

func testLogger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("GITORC_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// testNode is a node namespace with forwarding on and an Attacher whose
// host ends live there; tasks are namespaces beside it.
type testNode struct {
	dir string
	ns  netns.NS
	a   *Attacher
}

func newTestNode(t testing.TB, mtu int) *testNode {
	t.Helper()
	dir := t.TempDir()
	n := &testNode{dir: dir, ns: newNS(t, filepath.Join(dir, "node"))}
	if err := n.ns.Do(func() error { return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644) }); err != nil {
		t.Fatalf("ip_forward in the node namespace: %v", err)
	}
	a, err := New(Config{NS: n.ns, CacheDir: filepath.Join(dir, "cni"), MTU: mtu, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	n.a = a
	return n
}

// task creates a task namespace, removed when the test ends.
func (n *testNode) task(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(n.dir, name)
	newNS(t, p)
	return p
}

func newNS(t testing.TB, path string) netns.NS {
	t.Helper()
	if err := netns.Create(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := netns.Remove(path); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return netns.NS{Path: path}
}

// nl opens a netlink handle in the namespace at path.
func nl(t testing.TB, path string) *netlink.Handle {
	t.Helper()
	h, err := netns.NS{Path: path}.Handle()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nh.Close)
	return nh
}

// link is what a test sees of an interface.
type link struct {
	Name   string
	Up     bool
	MTU    int
	Addrs  []string
	Routes []string // "dst via gw" or "dst dev"
}

// links describes the namespace's links of the given type ("" for all).
func links(t testing.TB, path, typ string) map[string]link {
	t.Helper()
	h := nl(t, path)
	ls, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]link{}
	for _, l := range ls {
		if typ != "" && l.Type() != typ {
			continue
		}
		a := l.Attrs()
		d := link{Name: a.Name, Up: a.Flags&net.FlagUp != 0, MTU: a.MTU}
		addrs, err := h.AddrList(l, netlink.FAMILY_V4)
		if err != nil {
			t.Fatal(err)
		}
		for _, ad := range addrs {
			d.Addrs = append(d.Addrs, ad.IPNet.String())
		}
		routes, err := h.RouteList(l, netlink.FAMILY_V4)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range routes {
			dst := "default"
			if r.Dst != nil && !(r.Dst.IP.IsUnspecified() && r.Dst.Mask.String() == "00000000") {
				dst = r.Dst.String()
			}
			if r.Gw != nil {
				d.Routes = append(d.Routes, dst+" via "+r.Gw.String())
			} else {
				d.Routes = append(d.Routes, dst+" dev")
			}
		}
		slices.Sort(d.Routes)
		out[a.Name] = d
	}
	return out
}

// hostEnds returns the node's veths, keyed by the address they route to.
func hostEnds(t testing.TB, n *testNode) map[string]link {
	t.Helper()
	out := map[string]link{}
	for _, l := range links(t, n.ns.Path, "veth") {
		key := strings.Join(l.Routes, ",")
		out[key] = l
	}
	return out
}

func cacheEntries(t testing.TB, n *testNode) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(n.dir, "cni", "results", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range m {
		m[i] = filepath.Base(m[i])
	}
	return m
}

func attached(t testing.TB, a *Attacher) []string {
	t.Helper()
	ids, err := a.Attached()
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestAttachDetach_Root(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	const mtu = 1380
	n := newTestNode(t, mtu)
	ns1, ns2 := n.task(t, "t1"), n.task(t, "t2")
	addr1, addr2 := netip.MustParsePrefix("10.64.3.7/24"), netip.MustParsePrefix("10.64.3.8/24")
	if err := n.a.Attach(ctx, "t1", addr1, ns1); err != nil {
		t.Fatalf("attach t1: %v", err)
	}
	if err := n.a.Attach(ctx, "t2", addr2, ns2); err != nil {
		t.Fatalf("attach t2: %v", err)
	}

	// The task's side: eth0 with its address, the routes ptp makes (the
	// subnet via the gateway, the gateway on the link) and the default
	// route; lo up.
	got := links(t, ns1, "")
	want := map[string]link{
		"lo": {Name: "lo", Up: true, MTU: 65536, Addrs: []string{"127.0.0.1/8"}},
		"eth0": {Name: "eth0", Up: true, MTU: mtu, Addrs: []string{"10.64.3.7/24"},
			Routes: []string{"10.64.3.0/24 via 10.64.3.1", "10.64.3.1/32 dev", "default via 10.64.3.1"}},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("task namespace (-want +got):\n%s", d)
	}
	// The node's side: one veth per task with the gateway /32 and a /32
	// route to the task.
	ends := hostEnds(t, n)
	for _, dst := range []string{"10.64.3.7/32 dev", "10.64.3.8/32 dev"} {
		l, ok := ends[dst]
		if !ok {
			t.Fatalf("no host veth routes %s; node has %+v", dst, ends)
		}
		if !l.Up || l.MTU != mtu || !slices.Equal(l.Addrs, []string{"10.64.3.1/32"}) {
			t.Errorf("host end %+v, want up, mtu %d, 10.64.3.1/32", l, mtu)
		}
	}
	if len(ends) != 2 {
		t.Errorf("node has %d veths, want 2: %+v", len(ends), ends)
	}
	if ids := attached(t, n.a); !slices.Equal(ids, []string{"t1", "t2"}) {
		t.Errorf("attached = %v, want [t1 t2]", ids)
	}

	t.Run("tcp between tasks", func(t *testing.T) {
		echo(t, ns2, ns1, addr2.Addr(), addr1.Addr())
	})

	t.Run("attach again keeps it", func(t *testing.T) {
		before := hostEnds(t, n)
		if err := n.a.Attach(ctx, "t1", addr1, ns1); err != nil {
			t.Fatalf("second attach: %v", err)
		}
		if d := cmp.Diff(before, hostEnds(t, n)); d != "" {
			t.Errorf("second attach changed the host ends (-before +after):\n%s", d)
		}
	})

	t.Run("attach with another address replaces it", func(t *testing.T) {
		addr := netip.MustParsePrefix("10.64.3.9/24")
		if err := n.a.Attach(ctx, "t1", addr, ns1); err != nil {
			t.Fatalf("attach: %v", err)
		}
		if got := links(t, ns1, "")["eth0"].Addrs; !slices.Equal(got, []string{"10.64.3.9/24"}) {
			t.Errorf("eth0 addresses %v, want 10.64.3.9/24", got)
		}
		ends := hostEnds(t, n)
		if _, ok := ends["10.64.3.9/32 dev"]; !ok || len(ends) != 2 {
			t.Errorf("host ends %+v, want one to 10.64.3.8, one to 10.64.3.9", ends)
		}
	})

	t.Run("detach", func(t *testing.T) {
		if err := n.a.Detach(ctx, "t1", ns1); err != nil {
			t.Fatalf("detach: %v", err)
		}
		ends := hostEnds(t, n)
		if _, ok := ends["10.64.3.8/32 dev"]; !ok || len(ends) != 1 {
			t.Errorf("host ends after detach %+v, want only the one to 10.64.3.8", ends)
		}
		if _, ok := links(t, ns1, "")["eth0"]; ok {
			t.Errorf("eth0 left in the task namespace")
		}
		if got := cacheEntries(t, n); !slices.Equal(got, []string{"gitorc-t2-eth0"}) {
			t.Errorf("cache entries %v, want only t2's", got)
		}
		if ids := attached(t, n.a); !slices.Equal(ids, []string{"t2"}) {
			t.Errorf("attached = %v, want [t2]", ids)
		}
		if err := n.a.Detach(ctx, "t1", ns1); err != nil {
			t.Errorf("second detach: %v", err)
		}
		if err := n.a.Detach(ctx, "never", filepath.Join(n.dir, "never")); err != nil {
			t.Errorf("detach of an id never attached: %v", err)
		}
	})

	t.Run("detach after the namespace is gone", func(t *testing.T) {
		// A process keeps the namespace alive after its file is gone, as
		// a task's process may: the host end must go anyway.
		h, err := netns.NS{Path: ns2}.Handle()
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		if err := netns.Remove(ns2); err != nil {
			t.Fatal(err)
		}
		if err := n.a.Detach(ctx, "t2", ns2); err != nil {
			t.Fatalf("detach: %v", err)
		}
		if ends := hostEnds(t, n); len(ends) != 0 {
			t.Errorf("host ends left: %+v", ends)
		}
		if got := cacheEntries(t, n); len(got) != 0 {
			t.Errorf("cache entries left: %v", got)
		}
		if ids := attached(t, n.a); len(ids) != 0 {
			t.Errorf("attached = %v, want none", ids)
		}
	})
}

// echo listens in the namespace at srvNS on srv, connects from cliNS and
// checks that a line comes back and that the server saw the client's own
// address.
func echo(t *testing.T, srvNS, cliNS string, srv, cli netip.Addr) {
	t.Helper()
	var ln net.Listener
	if err := (netns.NS{Path: srvNS}).Do(func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(srv, 0).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			peer <- err.Error()
			return
		}
		defer c.Close()
		peer <- c.RemoteAddr().(*net.TCPAddr).IP.String()
		_, _ = io.Copy(c, c)
	}()
	var c net.Conn
	if err := (netns.NS{Path: cliNS}).Do(func() (err error) {
		c, err = net.DialTimeout("tcp", ln.Addr().String(), 10*time.Second)
		return err
	}); err != nil {
		t.Fatalf("connect from the other task: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintln(c, "marker-7f3a"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "marker-7f3a\n" {
		t.Fatalf("echo = %q, %v", line, err)
	}
	if got := <-peer; got != cli.String() {
		t.Errorf("server saw the client as %s, want %s (routed, not translated)", got, cli)
	}
}

// A failed attach leaves no host end and no cache entry.
func TestAttachFailureLeavesNothing_Root(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	n := newTestNode(t, 0)
	addr := netip.MustParsePrefix("10.64.3.7/24")

	if err := n.a.Attach(ctx, "gone", addr, filepath.Join(n.dir, "missing")); err == nil {
		t.Error("attach to a missing namespace succeeded")
	}
	// eth0 taken: ptp fails inside the task's namespace.
	busy := n.task(t, "busy")
	h := nl(t, busy)
	// (A veth pair: this kind of kernel may lack dummy links.)
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "eth0-peer"}); err != nil {
		t.Fatal(err)
	}
	err := n.a.Attach(ctx, "busy", addr, busy)
	if err == nil || !strings.Contains(err.Error(), "eth0") {
		t.Errorf("attach with eth0 taken: %v, want ptp's error naming eth0", err)
	}
	if ends := hostEnds(t, n); len(ends) != 0 {
		t.Errorf("host ends left: %+v", ends)
	}
	if got := cacheEntries(t, n); len(got) != 0 {
		t.Errorf("cache entries left: %v", got)
	}
	// The default MTU applies; and the namespace can be attached now.
	if err := n.a.Attach(ctx, "busy", addr, busy); err != nil {
		t.Fatalf("attach after the failure: %v", err)
	}
	if got := links(t, busy, "")["eth0"].MTU; got != DefaultMTU {
		t.Errorf("eth0 mtu %d, want the default %d", got, DefaultMTU)
	}
	if err := n.a.Detach(ctx, "busy", busy); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the error; none: valid
	}{
		{"missing plugin dir", Config{CacheDir: dir, PluginDirs: []string{filepath.Join(dir, "nope")}},
			[]string{"ptp is in none of " + filepath.Join(dir, "nope"), "static is in none of", "install containernetworking-plugins"}},
		{"no cache dir", Config{PluginDirs: []string{dir}}, []string{`cache dir "" must be an absolute path`}},
		{"relative cache dir", Config{CacheDir: "cni", PluginDirs: []string{dir}}, []string{`cache dir "cni"`}},
		{"mtu", Config{CacheDir: dir, PluginDirs: []string{dir}, MTU: 100}, []string{"mtu 100 is out of range"}},
	}
	if _, err := os.Stat("/usr/lib/cni/ptp"); err == nil {
		tests = append(tests, struct {
			name string
			cfg  Config
			want []string
		}{"defaults", Config{CacheDir: dir}, nil})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate passed")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if tc.name == "missing plugin dir" && !errors.Is(err, ErrPluginNotFound) {
				t.Errorf("error %v is not ErrPluginNotFound", err)
			}
		})
	}
	if _, err := New(Config{CacheDir: dir, PluginDirs: []string{filepath.Join(dir, "nope")}}); !errors.Is(err, ErrPluginNotFound) {
		t.Errorf("New with a missing plugin dir: %v", err)
	}
}

func TestGateway(t *testing.T) {
	tests := []struct {
		addr, gw, err string
	}{
		{"10.64.3.7/24", "10.64.3.1", ""},
		{"10.64.3.254/24", "10.64.3.1", ""},
		{"10.64.0.2/28", "10.64.0.1", ""},
		{"10.64.3.1/24", "", "is its subnet's network, gateway or broadcast address"},
		{"10.64.3.0/24", "", "is its subnet's network, gateway or broadcast address"},
		{"10.64.3.255/24", "", "is its subnet's network, gateway or broadcast address"},
		{"10.64.0.15/28", "", "is its subnet's network, gateway or broadcast address"},
		{"10.64.3.7/31", "", "leaves no room for a gateway"},
		{"fd00::7/64", "", "not an IPv4 CIDR"},
	}
	for _, tc := range tests {
		gw, err := gatewayOf(netip.MustParsePrefix(tc.addr))
		switch {
		case tc.err == "" && (err != nil || gw.String() != tc.gw):
			t.Errorf("gateway of %s = %s, %v, want %s", tc.addr, gw, err, tc.gw)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("gateway of %s: error %v, want %q", tc.addr, err, tc.err)
		}
	}
	if _, err := gatewayOf(netip.Prefix{}); err == nil {
		t.Error("the zero prefix has a gateway")
	}
}

func TestPluginConfig(t *testing.T) {
	a := &Attacher{cfg: Config{MTU: 1420}}
	conf, err := a.pluginConfig(netip.MustParsePrefix("10.64.3.7/24"), netip.MustParseAddr("10.64.3.1"))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"cniVersion":"1.0.0","name":"gitorc","type":"ptp","mtu":1420,"ipMasq":false,` +
		`"ipam":{"type":"static","addresses":[{"address":"10.64.3.7/24","gateway":"10.64.3.1"}],"routes":[{"dst":"0.0.0.0/0"}]}}`
	if string(conf.Bytes) != want {
		t.Errorf("config\n got %s\nwant %s", conf.Bytes, want)
	}
	if got := cachedAddr(conf); got != netip.MustParsePrefix("10.64.3.7/24") {
		t.Errorf("cachedAddr = %s", got)
	}
}

package harness

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// Network is a bridge in the root namespace and the hosts attached to it.
type Network struct {
	t      testing.TB
	id     string // short random id in every name this network creates
	bridge string
	prefix netip.Prefix
	// Gateway is the bridge's address: hosts reach services of the root
	// namespace (a test registry, say) there.
	Gateway netip.Addr
	Hosts   []*Host

	mu    sync.Mutex
	procs []*Process
	nft   bool
	// isolations counts the isolations made (it names their tables);
	// isolated are those not healed yet.
	isolations int
	isolated   []*Isolation
}

// Host is one machine of the cluster: a network namespace.
type Host struct {
	net   *Network
	Name  string     // h1, h2, …
	NS    string     // network namespace name
	Addr  netip.Addr // address on the shared bridge
	veth  string     // root-side end of its link
	index int
}

// Requirements reports why the harness cannot run here, or "".
func Requirements() string {
	if os.Geteuid() != 0 {
		return "needs root (network namespaces)"
	}
	for _, bin := range []string{"ip", "nft", "nsenter"} {
		if _, err := exec.LookPath(bin); err != nil {
			return "needs " + bin
		}
	}
	return ""
}

// NewNetwork creates n hosts on a new bridge. It skips the test when the
// machine cannot run it, and removes everything when the test ends.
func NewNetwork(t testing.TB, n int) *Network {
	t.Helper()
	if why := Requirements(); why != "" {
		t.Skip("e2e harness: " + why)
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	nw := &Network{t: t, id: id, bridge: "gtrc" + id}
	t.Cleanup(nw.Close)
	prefix, err := freeSubnet()
	if err != nil {
		t.Fatal(err)
	}
	nw.prefix = prefix
	nw.Gateway = prefix.Addr().Next()
	nw.must("ip", "link", "add", nw.bridge, "type", "bridge")
	nw.must("ip", "addr", "add", netip.PrefixFrom(nw.Gateway, prefix.Bits()).String(), "dev", nw.bridge)
	nw.must("ip", "link", "set", nw.bridge, "up")
	for i := 1; i <= n; i++ {
		nw.addHost(i)
	}
	return nw
}

func (nw *Network) addHost(i int) {
	h := &Host{net: nw, Name: fmt.Sprintf("h%d", i), NS: fmt.Sprintf("gtrc%s-h%d", nw.id, i),
		veth: fmt.Sprintf("gv%s%d", nw.id, i), index: i}
	addr := nw.Gateway
	for k := 0; k < 9+i; k++ {
		addr = addr.Next()
	}
	h.Addr = addr
	peer := h.veth + "p"
	nw.must("ip", "netns", "add", h.NS)
	nw.Hosts = append(nw.Hosts, h)
	nw.must("ip", "link", "add", h.veth, "type", "veth", "peer", "name", peer)
	nw.must("ip", "link", "set", h.veth, "master", nw.bridge, "up")
	nw.must("ip", "link", "set", peer, "netns", h.NS)
	in := func(args ...string) { nw.must(append([]string{"ip", "-n", h.NS}, args...)...) }
	in("link", "set", peer, "name", "eth0")
	in("addr", "add", netip.PrefixFrom(h.Addr, nw.prefix.Bits()).String(), "dev", "eth0")
	in("link", "set", "eth0", "up")
	in("link", "set", "lo", "up")
	in("route", "add", "default", "via", nw.Gateway.String())
}

// freeSubnet picks a /24 in 10.200.0.0/16 that no interface uses.
func freeSubnet() (netip.Prefix, error) {
	out, err := exec.Command("ip", "-4", "-o", "addr").Output()
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("ip addr: %w", err)
	}
	b := make([]byte, 1)
	for tries := 0; tries < 64; tries++ {
		_, _ = rand.Read(b)
		p := netip.MustParsePrefix(fmt.Sprintf("10.200.%d.0/24", b[0]))
		if !strings.Contains(string(out), fmt.Sprintf(" 10.200.%d.", b[0])) {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("no free /24 in 10.200.0.0/16")
}

func (nw *Network) must(args ...string) {
	nw.t.Helper()
	if out, err := run(args...); err != nil {
		nw.t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func run(args ...string) ([]byte, error) {
	cmd := exec.Command(args[0], args[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// Veth is the root-side end of the host's link: capture there to see
// what the host sends and receives.
func (h *Host) Veth() string { return h.veth }

// Host returns host i (1-based).
func (nw *Network) Host(i int) *Host { return nw.Hosts[i-1] }

// Cut takes a host off the network (its link goes down), as a pulled cable.
func (h *Host) Cut() { h.net.must("ip", "link", "set", h.veth, "down") }

// Heal puts a cut host back.
func (h *Host) Heal() { h.net.must("ip", "link", "set", h.veth, "up") }

// Partition splits the hosts into groups that cannot reach each other;
// hosts in one group still can, and the gateway stays reachable from all.
// A new partition replaces the previous one; Heal ends it.
func (nw *Network) Partition(groups ...[]*Host) {
	nw.HealPartition()
	table := "gtrc" + nw.id
	var rules strings.Builder
	fmt.Fprintf(&rules, "table bridge %s {\n chain forward {\n  type filter hook forward priority -10; policy accept;\n", table)
	for i, a := range groups {
		for j, b := range groups {
			if i == j {
				continue
			}
			for _, x := range a {
				for _, y := range b {
					fmt.Fprintf(&rules, "  ether type ip ip saddr %s ip daddr %s drop\n", x.Addr, y.Addr)
					fmt.Fprintf(&rules, "  ether type arp arp saddr ip %s arp daddr ip %s drop\n", x.Addr, y.Addr)
				}
			}
		}
	}
	rules.WriteString(" }\n}\n")
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		nw.t.Fatalf("nft partition: %v: %s", err, out)
	}
	nw.mu.Lock()
	nw.nft = true
	nw.mu.Unlock()
}

// HealPartition removes the partition rules.
func (nw *Network) HealPartition() {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if nw.nft {
		_, _ = run("nft", "delete", "table", "bridge", "gtrc"+nw.id)
		nw.nft = false
	}
}

// Close stops every process and removes every namespace, link and table.
// It runs by itself when the test ends.
func (nw *Network) Close() {
	nw.mu.Lock()
	procs := nw.procs
	nw.procs = nil
	nw.mu.Unlock()
	for _, p := range procs {
		p.Kill()
	}
	nw.HealPartition()
	nw.healIsolations()
	for _, h := range nw.Hosts {
		_, _ = run("ip", "link", "del", h.veth) // takes its peer along
		_, _ = run("ip", "netns", "del", h.NS)
	}
	nw.Hosts = nil
	_, _ = run("ip", "link", "del", nw.bridge)
}

// Leftovers lists what this network left on the machine; a test calls it
// after Close to prove the cleanup. (Other networks, of tests running at
// the same time, are not its business.)
func (nw *Network) Leftovers() []string {
	var mine []string
	for _, l := range leftovers() {
		if strings.Contains(l, nw.id) {
			mine = append(mine, l)
		}
	}
	return mine
}

// leftovers lists every object a harness network creates on the machine.
func leftovers() []string {
	var left []string
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "gtrc") {
				left = append(left, "netns "+strings.Fields(l)[0])
			}
		}
	}
	if out, err := exec.Command("ip", "-o", "link").Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Fields(l); len(f) > 1 && (strings.HasPrefix(f[1], "gtrc") || strings.HasPrefix(f[1], "gv")) {
				left = append(left, "link "+strings.TrimSuffix(strings.Split(f[1], "@")[0], ":"))
			}
		}
	}
	if out, err := exec.Command("nft", "list", "tables").Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, " gtrc") {
				left = append(left, "nft "+strings.TrimSpace(l))
			}
		}
	}
	return left
}

package nft

import (
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/netplane/netns"
)

// needRoot skips tests that make network namespaces and nftables tables.
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and nftables tables in them")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft (package nftables) to check the kernel's tables")
	}
}

// newNS creates a network namespace bound in the test's temporary
// directory, removed when the test ends.
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
	return netns.NS{Path: path}
}

// inNS runs a command inside the namespace and returns its output.
func inNS(t testing.TB, ns netns.NS, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command("nsenter", append([]string{"--net=" + ns.Path, name}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// nftIn runs nft inside the namespace, with stdin when given.
func nftIn(t testing.TB, ns netns.NS, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command("nsenter", append([]string{"--net=" + ns.Path, "nft"}, args...)...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("nft %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// listed is a table as nft lists it, in a form where order does not
// matter where the kernel's does not: block by block, set elements
// sorted; rules in order.
func listed(s string) map[string]string {
	out := make(map[string]string)
	var name string
	var body, elems []string
	inElems := false
	for _, line := range strings.Split(s, "\n") {
		l := strings.TrimSpace(line)
		switch {
		case l == "" || strings.HasPrefix(l, "table "):
		case name == "" && strings.HasSuffix(l, "{"):
			name, body, elems = strings.TrimSuffix(l, " {"), nil, nil
		case name != "" && strings.HasPrefix(l, "elements = {"):
			l = strings.TrimPrefix(l, "elements = {")
			inElems = true
			fallthrough
		case inElems:
			if strings.HasSuffix(l, "}") {
				l, inElems = strings.TrimSuffix(l, "}"), false
			}
			for _, e := range strings.Split(l, ",") {
				if e = strings.TrimSpace(e); e != "" {
					elems = append(elems, e)
				}
			}
		case l == "}" && name != "":
			slices.Sort(elems)
			if len(elems) > 0 {
				body = append(body, "elements: "+strings.Join(elems, ", "))
			}
			out[name] = strings.Join(body, "\n")
			name = ""
		case name != "":
			body = append(body, l)
		}
	}
	return out
}

// checkListed fails unless the kernel's table equals r.
func checkListed(t testing.TB, ns netns.NS, r *Ruleset) {
	t.Helper()
	got := listed(nftIn(t, ns, "", "list", "table", "inet", r.Table))
	if d := cmp.Diff(listed(r.String()), got); d != "" {
		t.Fatalf("kernel's table differs from the ruleset (-want +got):\n%s", d)
	}
}

// generation returns the namespace's nftables generation: it counts the
// batches the kernel committed.
func generation(t testing.TB, ns netns.NS) uint32 {
	t.Helper()
	h, err := ns.Handle()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: int(h)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETGEN), Flags: netlink.Request},
		Data:   []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0},
	})
	if err != nil {
		t.Fatalf("get nftables generation: %v", err)
	}
	for _, m := range msgs {
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			t.Fatal(err)
		}
		for ad.Next() {
			if ad.Type() == unix.NFTA_GEN_ID {
				return binary.BigEndian.Uint32(ad.Bytes())
			}
		}
	}
	t.Fatal("no generation in the answer")
	return 0
}

// apply applies r and checks whether it sent a batch, and only one.
func apply(t testing.TB, ns netns.NS, tb *Table, r *Ruleset, wantChanged bool) {
	t.Helper()
	g := generation(t, ns)
	changed, err := tb.Apply(r)
	if err != nil {
		t.Fatal(err)
	}
	if changed != wantChanged {
		t.Fatalf("Apply: changed = %v, want %v", changed, wantChanged)
	}
	want := g
	if wantChanged {
		want++
	}
	if got := generation(t, ns); got != want {
		t.Fatalf("generation %d after Apply from %d: want %d (one batch when changed, none otherwise)", got, g, want)
	}
}

const otherTable = `table ip other {
	set keep {
		type ipv4_addr
		elements = { 192.0.2.1 }
	}

	chain input {
		type filter hook input priority filter; policy accept;
		ip saddr @keep counter packets 0 bytes 0 accept
	}
}
`

func TestApply_Root(t *testing.T) {
	needRoot(t)
	ns := newNS(t, "node")
	nftIn(t, ns, otherTable, "-f", "-")
	// A table of ours left by an earlier process, with content the new
	// ruleset does not have.
	nftIn(t, ns, "table inet gitorc {\n set stale { type ipv4_addr; }\n chain stale { type filter hook input priority 0; drop; }\n}\n", "-f", "-")

	v := shopView()
	r := mustBuild(t, v, Options{})
	tb := NewTable(ns, Options{})
	apply(t, ns, tb, r, true)
	checkListed(t, ns, r)
	// nft reads back what String renders.
	nftIn(t, ns, "", "-c", "-f", writeTemp(t, r.String()))

	t.Run("unchanged", func(t *testing.T) {
		apply(t, ns, tb, mustBuild(t, shopView(), Options{}), false)
	})

	t.Run("backend change", func(t *testing.T) {
		v := shopView()
		v.Services[0].Backends = v.Services[0].Backends[1:] // api loses its local backend
		r2 := mustBuild(t, v, Options{})
		apply(t, ns, tb, r2, true)
		checkListed(t, ns, r2)
		r = r2
	})

	t.Run("many changes", func(t *testing.T) {
		v := shopView()
		v.Networks = v.Networks[:2] // mon goes
		v.Networks = append(v.Networks, api.NetNetwork{ID: "0f5h2ml0q8000p3k9ss0kq1e2g", Name: "new", Members: []string{"10.64.1.30", "10.64.2.31"}})
		v.Services[1].VIP = ""                        // cache loses its VIP...
		v.Services[2].VIP = "10.96.0.12"              // ...which db takes (a verdict change)
		v.Services[3].Backends[0].Addr = "10.64.1.33" // web moves
		v.Tasks = v.Tasks[:3]
		v.Peers = v.Peers[1:]
		r2 := mustBuild(t, v, Options{})
		apply(t, ns, tb, r2, true)
		checkListed(t, ns, r2)

		// Equal to a fresh apply of the same ruleset.
		fresh := newNS(t, "fresh")
		apply(t, fresh, NewTable(fresh, Options{}), r2, true)
		if d := cmp.Diff(listed(nftIn(t, fresh, "", "list", "table", "inet", "gitorc")),
			listed(nftIn(t, ns, "", "list", "table", "inet", "gitorc"))); d != "" {
			t.Errorf("diffed table differs from a fresh one (-fresh +diffed):\n%s", d)
		}
		r = r2
	})

	t.Run("back to the first", func(t *testing.T) {
		r2 := mustBuild(t, shopView(), Options{})
		apply(t, ns, tb, r2, true)
		checkListed(t, ns, r2)
	})

	t.Run("delete", func(t *testing.T) {
		if err := tb.Delete(); err != nil {
			t.Fatal(err)
		}
		if out := nftIn(t, ns, "", "list", "tables"); strings.Contains(out, "gitorc") {
			t.Errorf("table still there:\n%s", out)
		}
		if err := tb.Delete(); err != nil {
			t.Errorf("Delete of no table: %v", err)
		}
		// The next Apply creates it again.
		apply(t, ns, tb, r, true)
		checkListed(t, ns, r)
		if err := tb.Delete(); err != nil {
			t.Fatal(err)
		}
	})

	if d := cmp.Diff(otherTable, nftIn(t, ns, "", "list", "table", "ip", "other")); d != "" {
		t.Errorf("the other table changed:\n%s", d)
	}
}

// Published ports: the ports map (a concatenation) and its chains, as
// nft lists them, applied whole and by difference.
func TestApplyPorts_Root(t *testing.T) {
	needRoot(t)
	ns := newNS(t, "node")
	r := mustBuild(t, portsView(), Options{})
	tb := NewTable(ns, Options{})
	apply(t, ns, tb, r, true)
	checkListed(t, ns, r)
	// nft reads back what String renders, and takes it for the table it
	// has (a map defined otherwise would be "File exists").
	nftIn(t, ns, "", "-c", "-f", writeTemp(t, r.String()))
	for _, edit := range []func(v *api.NetView){
		func(v *api.NetView) { service(v, idSvcAPI).Backends = service(v, idSvcAPI).Backends[1:] },
		func(v *api.NetView) { service(v, idSvcDB).Backends = nil },
		func(v *api.NetView) {
			service(v, idSvcWeb).Ports[0].Target = 9090
			service(v, idSvcMetrics).Backends = append(service(v, idSvcMetrics).Backends,
				api.NetBackend{TaskID: idTaskMon, NodeID: "n1", Addr: "10.64.1.30"})
		},
		func(v *api.NetView) { v.Services = v.Services[:1] },
	} {
		v := portsView()
		edit(v)
		r2 := mustBuild(t, v, Options{})
		apply(t, ns, tb, r2, true)
		checkListed(t, ns, r2)
		apply(t, ns, tb, r, true)
		checkListed(t, ns, r)
	}
}

// A service with more backends than one netlink message holds.
func TestApplyBigService_Root(t *testing.T) {
	needRoot(t)
	ns := newNS(t, "node")
	v := bigView(10, 3000, 2, 2)
	r := mustBuild(t, v, Options{})
	tb := NewTable(ns, Options{})
	apply(t, ns, tb, r, true)
	checkListed(t, ns, r)
	v.Services[0].Backends = v.Services[0].Backends[1:]
	r = mustBuild(t, v, Options{})
	apply(t, ns, tb, r, true)
	checkListed(t, ns, r)
}

func writeTemp(t testing.TB, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ruleset.nft")
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestApplyErrors(t *testing.T) {
	r := mustBuild(t, shopView(), Options{Table: "other"})
	if _, err := NewTable(netns.NS{}, Options{}).Apply(r); !errors.Is(err, ErrTableMismatch) {
		t.Errorf("other table: err = %v", err)
	}
	// A failed Apply forgets what it knew: the next one is whole.
	tb := NewTable(netns.NS{Path: filepath.Join(t.TempDir(), "gone")}, Options{})
	tb.applied = mustBuild(t, shopView(), Options{})
	v := shopView()
	v.Services = v.Services[1:]
	if changed, err := tb.Apply(mustBuild(t, v, Options{})); err == nil || changed {
		t.Fatalf("Apply in a namespace that does not exist: changed %v, err %v", changed, err)
	}
	if tb.applied != nil {
		t.Error("the table still trusts what it applied before the failure")
	}
}

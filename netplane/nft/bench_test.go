package nft

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/netplane/netns"
)

// bigView is node n0's view in a cluster of nodes+1 nodes running tasks
// tasks of services services (each on one of networks networks, with
// tasks/services backends spread over the nodes), every service and
// network in the view. Every service publishes a tcp port in ingress
// mode, every fourth a udp port in host mode too.
func bigView(nodes, tasks, services, networks int) *api.NetView {
	base := netip.MustParseAddr("10.64.0.0").As4()
	subnet := func(n int) netip.Prefix {
		a := base
		a[1] += byte(n >> 8)
		a[2] = byte(n)
		return netip.PrefixFrom(netip.AddrFrom4(a), 24)
	}
	v := &api.NetView{NodeID: "n0", Subnet: subnet(0).String(), TaskPool: api.DefaultTaskPool, VIPPool: api.DefaultVIPPool}
	for n := 1; n <= nodes; n++ {
		v.Peers = append(v.Peers, api.NetPeer{NodeID: fmt.Sprintf("n%d", n), PublicKey: "k", Endpoint: "192.0.2.1:51820", Subnet: subnet(n).String()})
	}
	for i := range networks {
		v.Networks = append(v.Networks, api.NetNetwork{ID: fmt.Sprintf("%02dnet%021d", i, i), Name: fmt.Sprintf("net%d", i), Internal: i%5 == 0})
	}
	for s := range services {
		ports := []api.PortConfig{{Protocol: api.ProtocolTCP, Published: uint32(30000 + s), Target: 8080}}
		if s%4 == 0 {
			ports = append(ports, api.PortConfig{Protocol: api.ProtocolUDP, Published: uint32(40000 + s), Target: 5353, Mode: api.PublishHost})
		}
		v.Services = append(v.Services, api.NetService{ID: fmt.Sprintf("%03dsvc%019d", s, s), Name: fmt.Sprintf("svc%d", s), Mode: api.EndpointVIP,
			VIP: netip.AddrFrom4([4]byte{10, 96, byte(s >> 8), byte(s) + 1}).String(), Ports: ports})
	}
	for j := range tasks {
		node := j % (nodes + 1)
		a := subnet(node).Addr().As4()
		a[3] = byte(2 + j/(nodes+1))
		addr := netip.AddrFrom4(a).String()
		s := j % services
		nw := s % networks
		id := fmt.Sprintf("%05dtask%017d", j, j)
		v.Services[s].Backends = append(v.Services[s].Backends, api.NetBackend{TaskID: id, NodeID: fmt.Sprintf("n%d", node), Addr: addr})
		v.Networks[nw].Members = append(v.Networks[nw].Members, addr)
		if node == 0 {
			v.Tasks = append(v.Tasks, api.NetTask{ID: id, ServiceID: v.Services[s].ID, Addr: addr, Networks: []string{v.Networks[nw].ID}})
		}
	}
	return v
}

func bigRuleset(b *testing.B) *Ruleset {
	b.Helper()
	return mustBuild(b, bigView(1000, 10000, 200, 50), Options{})
}

// BenchmarkBuild computes one node's ruleset in a cluster of 1,001 nodes
// and 10,000 tasks (200 services, 50 networks, 250 published ports).
func BenchmarkBuild(b *testing.B) {
	v := bigView(1000, 10000, 200, 50)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(v, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyUnchanged applies a ruleset equal to (not the same as)
// the one applied before. The table's namespace does not exist: any
// netlink traffic would fail the benchmark.
func BenchmarkApplyUnchanged(b *testing.B) {
	tb := NewTable(netns.NS{Path: "/nonexistent/netns"}, Options{})
	tb.applied = bigRuleset(b)
	r := bigRuleset(b)
	b.ReportAllocs()
	for b.Loop() {
		changed, err := tb.Apply(r)
		if err != nil || changed {
			b.Fatalf("Apply of an unchanged ruleset: changed %v, %v", changed, err)
		}
	}
}

// BenchmarkApplyBackendChange_Root applies, in turn, the big ruleset and
// the same less one backend (a service chain refilled, a backend chain
// deleted or created), in a namespace.
func BenchmarkApplyBackendChange_Root(b *testing.B) {
	needRoot(b)
	ns := newNS(b, "node")
	v := bigView(1000, 10000, 200, 50)
	r1 := mustBuild(b, v, Options{})
	v.Services[7].Backends = v.Services[7].Backends[1:]
	r2 := mustBuild(b, v, Options{})
	tb := NewTable(ns, Options{})
	if _, err := tb.Apply(r1); err != nil {
		b.Fatal(err)
	}
	rs := []*Ruleset{r2, r1}
	i := 0
	for b.Loop() {
		if changed, err := tb.Apply(rs[i%2]); err != nil || !changed {
			b.Fatalf("Apply: changed %v, %v", changed, err)
		}
		i++
	}
}

// BenchmarkApplyFull_Root replaces the whole big table: what a node's
// first Apply costs.
func BenchmarkApplyFull_Root(b *testing.B) {
	needRoot(b)
	ns := newNS(b, "node")
	r := bigRuleset(b)
	for b.Loop() {
		if _, err := NewTable(ns, Options{}).Apply(r); err != nil {
			b.Fatal(err)
		}
	}
}

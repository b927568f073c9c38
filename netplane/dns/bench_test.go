package dns

import (
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/miekg/dns"

	"github.com/gitorc/gitorc/cluster/api"
)

// benchExchange asks name over one connection b.N times and checks the
// rcode.
func benchExchange(b *testing.B, conn net.Conn, caller netip.Addr, network, name string, rcode int) {
	b.Helper()
	cl := client(caller, network)
	co := &dns.Conn{Conn: conn}
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	b.ReportAllocs()
	for b.Loop() {
		m.Id = dns.Id()
		r, _, err := cl.ExchangeWithConn(m, co)
		if err != nil {
			b.Fatal(err)
		}
		if r.Rcode != rcode || (rcode == dns.RcodeSuccess && len(r.Answer) == 0) {
			b.Fatalf("%s: %s with %d answers", name, dns.RcodeToString[r.Rcode], len(r.Answer))
		}
	}
}

// Answer latency through a real client on loopback: a VIP name, a dnsrr
// name, tasks.<name>, a name the caller does not see, a name forwarded to
// the test's upstream, and the upstream asked directly, over udp and tcp
// (one connection per sub-benchmark).
func BenchmarkAnswer(b *testing.B) {
	up := runUpstream(b, netnsOwn, false)
	_, addr := runServer(b, Config{Upstreams: []string{up.addr}}, testView())
	for _, network := range []string{"udp", "tcp"} {
		for _, c := range []struct{ what, name string }{
			{"vip", "api."},
			{"dnsrr", "db."},
			{"tasks", "tasks.api."},
			{"nxdomain", "frontend."},
			{"forwarded", "example.test."},
			{"upstream-direct", "example.test."}, // the floor: a bare miekg/dns server
		} {
			b.Run(network+"/"+c.what, func(b *testing.B) {
				caller := callAPI
				rcode := dns.RcodeSuccess
				if c.what == "nxdomain" {
					caller, rcode = callDB, dns.RcodeNameError
				}
				target := addr
				if c.what == "upstream-direct" {
					target = up.addr
				}
				conn, err := client(caller, network).Dialer.Dial(network, target)
				if err != nil {
					b.Fatal(err)
				}
				defer conn.Close()
				benchExchange(b, conn, caller, network, c.name, rcode)
			})
		}
	}
}

// The work of one local answer, without sockets.
func BenchmarkAnswerInProcess(b *testing.B) {
	s, err := New(Config{Addr: loopback})
	if err != nil {
		b.Fatal(err)
	}
	s.SetView(testView())
	m := new(dns.Msg)
	m.SetQuestion("db.", dns.TypeA)
	b.ReportAllocs()
	for b.Loop() {
		if r := s.answer(callAPI, m); r == nil || len(r.Answer) != 3 {
			b.Fatal(r)
		}
	}
}

// bigView is a node's view of a large cluster: 1,000 services over 20
// networks (each on two, with an alias on each), 10 backends each, 100
// local tasks on 10 distinct sets of networks.
func bigView() *api.NetView {
	v := &api.NetView{NodeID: "n1", TaskPool: "10.64.0.0/11", VIPPool: "10.96.0.0/16"}
	for n := range 20 {
		v.Networks = append(v.Networks, api.NetNetwork{ID: fmt.Sprintf("net%02d", n), Name: fmt.Sprintf("net%02d", n)})
	}
	for i := range 1000 {
		s := api.NetService{ID: fmt.Sprintf("svc%04d", i), Name: fmt.Sprintf("stack%03d_svc%d", i/10, i%10), ShortName: fmt.Sprintf("svc%d", i%10),
			VIP: netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)}).String()}
		if i%3 == 0 {
			s.Mode, s.VIP = api.EndpointDNSRR, ""
		}
		for _, n := range []int{i % 20, (i + 7) % 20} {
			s.Networks = append(s.Networks, api.NetAttachment{NetworkID: fmt.Sprintf("net%02d", n), Aliases: []string{fmt.Sprintf("alias%d-%d", i, n)}})
		}
		for k := range 10 {
			a := netip.AddrFrom4([4]byte{10, 64 + byte(k), byte(i >> 8), byte(i)})
			s.Backends = append(s.Backends, api.NetBackend{TaskID: fmt.Sprintf("t%d-%d", i, k), NodeID: fmt.Sprintf("n%d", k), Addr: a.String()})
		}
		v.Services = append(v.Services, s)
	}
	for t := range 100 {
		set := t % 10
		v.Tasks = append(v.Tasks, api.NetTask{ID: fmt.Sprintf("local%d", t), Addr: netip.AddrFrom4([4]byte{10, 64, 1, byte(t + 2)}).String(),
			Networks: []string{fmt.Sprintf("net%02d", set), fmt.Sprintf("net%02d", set+10)}})
	}
	return v
}

// The cost of SetView (building the index) for a large view.
func BenchmarkSetView(b *testing.B) {
	s, err := New(Config{Addr: loopback})
	if err != nil {
		b.Fatal(err)
	}
	v := bigView()
	b.ReportAllocs()
	for b.Loop() {
		s.SetView(v)
	}
}

// A forwarded name when the plane lives in another namespace: each
// upstream socket is opened through netns.NS.Do.
func BenchmarkForwardNS_Root(b *testing.B) {
	ns := newNS(b)
	up := runUpstream(b, ns, false)
	_, addr := runServer(b, Config{NS: ns, Addr: loopback, Upstreams: []string{up.addr}}, testView())
	var conn net.Conn
	if err := ns.Do(func() (err error) { conn, err = net.Dial("udp", addr); return err }); err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	benchExchange(b, conn, netip.Addr{}, "udp", "example.test.", dns.RcodeSuccess)
}

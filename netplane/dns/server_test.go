package dns

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"

	"github.com/gitorc/gitorc/cluster/api"
)

// Callers of the test view: local tasks (loopback addresses, so that a
// test client can bind them) and the node itself.
var (
	callFront = netip.MustParseAddr("127.0.1.1") // on front
	callAPI   = netip.MustParseAddr("127.0.1.2") // on front and back
	callDB    = netip.MustParseAddr("127.0.1.3") // on back
	callAlone = netip.MustParseAddr("127.0.1.4") // a task on no network
	callHost  = netip.MustParseAddr("127.0.0.1") // not a task: sees all
)

func backends(addrs ...string) []api.NetBackend {
	var bs []api.NetBackend
	for i, a := range addrs {
		bs = append(bs, api.NetBackend{TaskID: "t" + a, NodeID: "n" + string(rune('1'+i)), Addr: a})
	}
	return bs
}

// testView has networks front, back and other; stack shop on front and
// back, stack blog on other, and a service on no network.
func testView() *api.NetView {
	return &api.NetView{
		NodeID: "n1", Subnet: "10.64.1.0/24", TaskPool: "10.64.0.0/11", VIPPool: "10.96.0.0/16",
		Networks: []api.NetNetwork{{ID: "back", Name: "shop_back"}, {ID: "front", Name: "shop_front"}, {ID: "other", Name: "blog_default"}},
		Services: []api.NetService{
			{ID: "s-front", Name: "shop_frontend", ShortName: "frontend", Mode: api.EndpointVIP, VIP: "10.96.0.2",
				Networks: []api.NetAttachment{{NetworkID: "front"}}, Backends: backends("10.64.1.10")},
			{ID: "s-api", Name: "shop_api", ShortName: "api", Mode: api.EndpointVIP, VIP: "10.96.0.3",
				Networks: []api.NetAttachment{{NetworkID: "front", Aliases: []string{"shop-api"}}, {NetworkID: "back", Aliases: []string{"Api-Back.", "store"}}},
				Backends: backends("10.64.1.20", "10.64.2.20")},
			{ID: "s-db", Name: "shop_db", ShortName: "db", Mode: api.EndpointDNSRR,
				Networks: []api.NetAttachment{{NetworkID: "back", Aliases: []string{"store", "kv"}}},
				Backends: backends("10.64.1.30", "10.64.2.30", "10.64.3.30")},
			{ID: "s-cache", Name: "shop_cache", ShortName: "cache", Mode: api.EndpointDNSRR,
				Networks: []api.NetAttachment{{NetworkID: "back", Aliases: []string{"kv"}}},
				Backends: backends("10.64.1.30", "10.64.1.60")},
			{ID: "s-worker", Name: "shop_worker", ShortName: "worker", Mode: api.EndpointDNSRR,
				Networks: []api.NetAttachment{{NetworkID: "back"}}},
			{ID: "s-bapi", Name: "blog_api", ShortName: "api", Mode: api.EndpointVIP, VIP: "10.96.0.9",
				Networks: []api.NetAttachment{{NetworkID: "other"}}, Backends: backends("10.64.3.40")},
			{ID: "s-secret", Name: "blog_secret", ShortName: "secret", Mode: api.EndpointVIP, VIP: "10.96.0.10",
				Networks: []api.NetAttachment{{NetworkID: "other"}}, Backends: backends("10.64.3.50")},
			{ID: "s-lb", Name: "edge", Mode: api.EndpointVIP, VIP: "10.96.0.20"},
		},
		Tasks: []api.NetTask{
			{ID: "t-front", ServiceID: "s-front", Addr: callFront.String(), Networks: []string{"front"}},
			{ID: "t-api", ServiceID: "s-api", Addr: callAPI.String(), Networks: []string{"front", "back"}},
			{ID: "t-db", ServiceID: "s-db", Addr: callDB.String(), Networks: []string{"back"}},
			{ID: "t-alone", ServiceID: "s-x", Addr: callAlone.String()},
		},
	}
}

// result is a reply as the tests compare it: rcode, A addresses sorted,
// the TTLs seen, PTR targets.
type result struct {
	Rcode string
	Addrs []string
	TTLs  []uint32
	Ptrs  []string
	Auth  bool
}

func resultOf(r *dns.Msg) result {
	res := result{Rcode: dns.RcodeToString[r.Rcode], Auth: r.Authoritative}
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			res.Addrs = append(res.Addrs, rr.A.String())
		case *dns.PTR:
			res.Ptrs = append(res.Ptrs, rr.Ptr)
		default:
			res.Addrs = append(res.Addrs, rr.String())
		}
		if !slices.Contains(res.TTLs, rr.Header().Ttl) {
			res.TTLs = append(res.TTLs, rr.Header().Ttl)
		}
	}
	sort.Strings(res.Addrs)
	return res
}

func ok(ttl uint32, addrs ...string) result {
	sort.Strings(addrs)
	return result{Rcode: "NOERROR", Addrs: addrs, TTLs: []uint32{ttl}, Auth: true}
}

var (
	nodata = result{Rcode: "NOERROR", Auth: true}
	nxdom  = result{Rcode: "NXDOMAIN", Auth: true}
	// forwarded is the test upstream's answer for example.test.
	forwarded  = result{Rcode: "NOERROR", Addrs: []string{"192.0.2.1"}, TTLs: []uint32{60}}
	upstreamNX = result{Rcode: "NXDOMAIN"}
)

func ptr(names ...string) result {
	return result{Rcode: "NOERROR", Ptrs: names, TTLs: []uint32{0}, Auth: true}
}

type answerCase struct {
	caller netip.Addr
	name   string
	qtype  uint16
	want   result
	fwd    bool // reaches the upstream
}

func answerCases() []answerCase {
	A, AAAA := dns.TypeA, dns.TypeAAAA
	api3 := ok(VIPTTL, "10.96.0.3")
	dbs := ok(0, "10.64.1.30", "10.64.2.30", "10.64.3.30")
	return []answerCase{
		// A task on front sees frontend and api (with front's alias).
		{callFront, "shop_api.", A, api3, false},
		{callFront, "SHOP_Api.", A, api3, false},
		{callFront, "api.", A, api3, false},
		{callFront, "shop-api.", A, api3, false},
		{callFront, "frontend.", A, ok(VIPTTL, "10.96.0.2"), false},
		{callFront, "shop_frontend.", A, ok(VIPTTL, "10.96.0.2"), false},
		{callFront, "tasks.api.", A, ok(0, "10.64.1.20", "10.64.2.20"), false},
		{callFront, "TASKS.Shop-Api.", A, ok(0, "10.64.1.20", "10.64.2.20"), false},
		{callFront, "tasks.shop_api.", A, ok(0, "10.64.1.20", "10.64.2.20"), false},
		{callFront, "api.", AAAA, nodata, false},
		{callFront, "api.", dns.TypeMX, nodata, false},
		{callFront, "tasks.api.", AAAA, nodata, false},
		// ... and nothing of back's or other's.
		{callFront, "api-back.", A, nxdom, false},
		{callFront, "store.", A, nxdom, false},
		{callFront, "db.", A, nxdom, false},
		{callFront, "db.", AAAA, nxdom, false},
		{callFront, "shop_db.", A, nxdom, false},
		{callFront, "tasks.db.", A, nxdom, false},
		{callFront, "secret.", A, nxdom, false},
		{callFront, "blog_api.", A, nxdom, false},
		{callFront, "edge.", A, nxdom, false},
		// Names under service names may be real domains: forwarded.
		{callFront, "x.api.", A, upstreamNX, true},
		{callFront, "a.tasks.api.", A, upstreamNX, true},
		{callFront, "www.blog_secret.", A, upstreamNX, true},
		// Reverse names: a visible service's VIP, not another's backends;
		// the pools are never forwarded.
		{callFront, "3.0.96.10.in-addr.arpa.", dns.TypePTR, ptr("shop_api."), false},
		{callFront, "20.1.64.10.in-addr.arpa.", dns.TypePTR, ptr("shop_api."), false},
		{callFront, "30.1.64.10.in-addr.arpa.", dns.TypePTR, nxdom, false},
		{callFront, "99.99.64.10.in-addr.arpa.", dns.TypePTR, nxdom, false},
		{callFront, "3.0.96.10.in-addr.arpa.", A, nodata, false},
		// Everything else goes upstream.
		{callFront, "example.test.", A, forwarded, true},
		{callFront, "EXAMPLE.test.", A, upstreamNX, true}, // the upstream is case-sensitive; we pass the name as asked
		{callFront, "nothing.test.", A, upstreamNX, true},
		{callFront, "api.test.", A, upstreamNX, true},
		{callFront, "1.0.0.192.in-addr.arpa.", dns.TypePTR, upstreamNX, true},

		// A task on front and back.
		{callAPI, "api-back.", A, api3, false},
		{callAPI, "shop-api.", A, api3, false},
		{callAPI, "api.", A, api3, false},
		{callAPI, "db.", A, dbs, false},
		{callAPI, "shop_db.", A, dbs, false},
		{callAPI, "tasks.db.", A, dbs, false},
		{callAPI, "tasks.shop_db.", A, dbs, false},
		{callAPI, "db.", AAAA, nodata, false},
		{callAPI, "worker.", A, nodata, false},
		{callAPI, "tasks.worker.", A, nodata, false},
		{callAPI, "tasks.frontend.", A, ok(0, "10.64.1.10"), false},
		// A name of a vip and a dnsrr service: both, TTL 0.
		{callAPI, "store.", A, ok(0, "10.64.1.30", "10.64.2.30", "10.64.3.30", "10.96.0.3"), false},
		{callAPI, "tasks.store.", A, ok(0, "10.64.1.20", "10.64.1.30", "10.64.2.20", "10.64.2.30", "10.64.3.30"), false},
		// A name of two dnsrr services sharing an address: deduplicated.
		{callAPI, "kv.", A, ok(0, "10.64.1.30", "10.64.1.60", "10.64.2.30", "10.64.3.30"), false},
		{callAPI, "30.1.64.10.in-addr.arpa.", dns.TypePTR, ptr("shop_cache.", "shop_db."), false},

		// A task on back only.
		{callDB, "api.", A, api3, false},
		{callDB, "api-back.", A, api3, false},
		{callDB, "shop-api.", A, nxdom, false},
		{callDB, "frontend.", A, nxdom, false},
		{callDB, "tasks.frontend.", A, nxdom, false},

		// A task on no network sees no service.
		{callAlone, "api.", A, nxdom, false},
		{callAlone, "tasks.api.", A, nxdom, false},
		{callAlone, "example.test.", A, forwarded, true},

		// The node sees every service, on every network.
		{callHost, "api.", A, ok(VIPTTL, "10.96.0.3", "10.96.0.9"), false},
		{callHost, "tasks.api.", A, ok(0, "10.64.1.20", "10.64.2.20", "10.64.3.40"), false},
		{callHost, "secret.", A, ok(VIPTTL, "10.96.0.10"), false},
		{callHost, "shop-api.", A, api3, false},
		{callHost, "api-back.", A, api3, false},
		{callHost, "edge.", A, ok(VIPTTL, "10.96.0.20"), false},
		{callHost, "tasks.edge.", A, nodata, false},
		{callHost, "db.", A, dbs, false},
		{callHost, "x.db.", A, upstreamNX, true},
		{callHost, "30.1.64.10.in-addr.arpa.", dns.TypePTR, ptr("shop_cache.", "shop_db."), false},
		{callHost, "example.test.", A, forwarded, true},
	}
}

// Every name, from every kind of caller, over udp and tcp: the exact
// answer, and only the names that are not the cluster's reach the
// upstream.
func TestAnswers(t *testing.T) {
	up := runUpstream(t, netnsOwn, false)
	_, addr := runServer(t, Config{Upstreams: []string{up.addr}}, testView())
	var wantFwd []string
	for _, network := range []string{"udp", "tcp"} {
		for _, c := range answerCases() {
			t.Run(network+"/"+c.caller.String()+"/"+dns.TypeToString[c.qtype]+"/"+c.name, func(t *testing.T) {
				got := resultOf(query(t, addr, c.caller, network, c.name, c.qtype))
				if d := cmp.Diff(c.want, got); d != "" {
					t.Errorf("answer (-want +got):\n%s", d)
				}
			})
			if c.fwd {
				wantFwd = append(wantFwd, c.name)
			}
		}
	}
	got, _ := up.seen()
	sort.Strings(got)
	sort.Strings(wantFwd)
	if d := cmp.Diff(wantFwd, got); d != "" {
		t.Errorf("names forwarded (-want +got):\n%s", d)
	}
}

// The owner name of an answer is the name as asked (some resolvers
// compare it case-sensitively), and a query with EDNS gets EDNS back.
func TestAnswerEchoesName(t *testing.T) {
	_, addr := runServer(t, Config{}, testView())
	m := new(dns.Msg)
	m.SetQuestion("Shop_API.", dns.TypeA)
	m.SetEdns0(4096, false)
	r, _, err := client(callFront, "udp").Exchange(m, addr)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Answer) != 1 || r.Answer[0].Header().Name != "Shop_API." {
		t.Fatalf("answer %v, want one record named Shop_API.", r.Answer)
	}
	if r.IsEdns0() == nil {
		t.Fatal("no OPT record in the reply to an EDNS query")
	}
}

// A dnsrr name answers every backend, in an order rotated per query.
func TestRotation(t *testing.T) {
	_, addr := runServer(t, Config{}, testView())
	sorted := []string{"10.64.1.30", "10.64.2.30", "10.64.3.30"}
	firsts := map[string]bool{}
	for range len(sorted) {
		r := query(t, addr, callAPI, "udp", "db.", dns.TypeA)
		var got []string
		for _, rr := range r.Answer {
			got = append(got, rr.(*dns.A).A.String())
		}
		i := slices.Index(sorted, got[0])
		if i < 0 {
			t.Fatalf("answer %v", got)
		}
		if want := append(slices.Clone(sorted[i:]), sorted[:i]...); !slices.Equal(got, want) {
			t.Fatalf("answer %v is not a rotation of %v", got, sorted)
		}
		firsts[got[0]] = true
	}
	if len(firsts) != len(sorted) {
		t.Fatalf("%d queries in a row began with only %v", len(sorted), firsts)
	}
}

// An answer larger than the client takes over udp is truncated (TC), and
// whole over tcp.
func TestLargeAnswer(t *testing.T) {
	v := testView()
	var bs []string
	for i := range 100 {
		bs = append(bs, netip.AddrFrom4([4]byte{10, 64, 5, byte(i + 1)}).String())
	}
	v.Services = append(v.Services, api.NetService{ID: "s-many", Name: "many", Mode: api.EndpointDNSRR,
		Networks: []api.NetAttachment{{NetworkID: "back"}}, Backends: backends(bs...)})
	_, addr := runServer(t, Config{}, v)
	r := query(t, addr, callDB, "udp", "many.", dns.TypeA)
	if !r.Truncated || len(r.Answer) == 0 || len(r.Answer) >= 100 {
		t.Fatalf("udp: truncated %v with %d records, want a truncated part", r.Truncated, len(r.Answer))
	}
	r = query(t, addr, callDB, "tcp", "many.", dns.TypeA)
	if r.Truncated || len(r.Answer) != 100 {
		t.Fatalf("tcp: truncated %v with %d records, want all 100", r.Truncated, len(r.Answer))
	}
}

// Before any view, and after a nil one, no name is the cluster's.
func TestNoView(t *testing.T) {
	up := runUpstream(t, netnsOwn, false)
	s, addr := runServer(t, Config{Upstreams: []string{up.addr}}, nil)
	if got := resultOf(query(t, addr, callFront, "udp", "api.", dns.TypeA)); got.Rcode != "NXDOMAIN" || got.Auth {
		t.Fatalf("api. without a view: %+v, want the upstream's NXDOMAIN", got)
	}
	s.SetView(testView())
	if got := resultOf(query(t, addr, callFront, "udp", "api.", dns.TypeA)); !got.Auth || len(got.Addrs) != 1 {
		t.Fatalf("api. with the view: %+v", got)
	}
	s.SetView(nil)
	query(t, addr, callFront, "udp", "api.", dns.TypeA)
	if n := up.count.Load(); n != 2 {
		t.Fatalf("upstream got %d queries, want 2 (before and after the view)", n)
	}
}

// Packets that are not queries get no reply; junk does not stop the
// server.
func TestBadPackets(t *testing.T) {
	_, addr := runServer(t, Config{}, testView())
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	q := new(dns.Msg)
	q.SetQuestion("api.", dns.TypeA)
	packed, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(b []byte) []byte) []byte { return f(slices.Clone(packed)) }
	junk := [][]byte{
		{1, 2, 3},
		mutate(func(b []byte) []byte { b[2] |= 0x80; return b }),             // a response
		mutate(func(b []byte) []byte { b[2] = b[2]&^0x78 | 5<<3; return b }), // opcode update
		mutate(func(b []byte) []byte { b[5] = 2; return b }),                 // two questions
		mutate(func(b []byte) []byte { b[5] = 0; return b[:12] }),            // none
		mutate(func(b []byte) []byte { b[7] = 3; return b }),                 // answers in a query
	}
	for _, j := range junk {
		if _, err := conn.Write(j); err != nil {
			t.Fatal(err)
		}
	}
	// Random junk, on another socket: whatever comes back, the server
	// goes on.
	other, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	seed := uint32(1)
	for range 500 {
		b := make([]byte, 1+seed%300)
		for i := range b {
			seed = seed*1664525 + 1013904223
			b[i] = byte(seed >> 24)
		}
		_, _ = other.Write(b)
	}
	// Over tcp: a length with a short body, then junk, then a close.
	tc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = tc.Write([]byte{0, 40, 1, 2, 3})
	tc.Close()
	tc, err = net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = tc.Write([]byte{0, 2, 0xff, 0xff, 0, 0})
	tc.Close()

	// Two real queries on the first socket: the only replies it gets.
	// The junk may have filled the server's receive buffer on a busy
	// machine, and a query dropped with it: like any DNS client over udp,
	// ask again after a timeout (a late reply to an earlier copy is no
	// reply to junk).
	co := &dns.Conn{Conn: conn}
	sent := map[uint16]bool{}
	for i := range 2 {
		m := new(dns.Msg)
		m.SetQuestion("api.", dns.TypeA)
		sent[m.Id] = true
		var r *dns.Msg
		for try := 0; r == nil; try++ {
			if try == 5 {
				t.Fatalf("query %d: no reply to 5 tries", i)
			}
			if err := co.WriteMsg(m); err != nil {
				t.Fatal(err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			for r == nil {
				got, err := co.ReadMsg()
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if !sent[got.Id] {
					t.Fatalf("reply %d: id %d (queries %v): a reply to junk?", i, got.Id, sent)
				}
				if got.Id == m.Id {
					r = got
				}
			}
		}
		if len(r.Answer) != 2 { // the node sees both services named api
			t.Fatalf("reply %d: %d answers", i, len(r.Answer))
		}
	}
	if got := resultOf(query(t, addr, callAPI, "tcp", "db.", dns.TypeA)); len(got.Addrs) != 3 {
		t.Fatalf("tcp after junk: %+v", got)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Config
		err  string
	}{
		{"ok", Config{Addr: loopback, Upstreams: []string{"192.0.2.53:53", "192.0.2.54", "[2001:db8::1]:5353"}}, ""},
		{"no addr", Config{}, "listen address is required"},
		{"port", Config{Addr: loopback, Port: 70000}, "port 70000 is out of range"},
		{"timeout", Config{Addr: loopback, Timeout: -1}, "timeout -1ns is negative"},
		{"upstream name", Config{Addr: loopback, Upstreams: []string{"dns.example:53"}}, `upstream "dns.example:53" is not ip:port`},
		{"upstream port 0", Config{Addr: loopback, Upstreams: []string{"192.0.2.1:0"}}, "port 0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			switch {
			case c.err == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Fatalf("Validate: %v, want %q", err, c.err)
			}
			if _, nerr := New(c.cfg); (nerr == nil) != (err == nil) {
				t.Fatalf("New: %v, Validate: %v", nerr, err)
			}
		})
	}
	s, err := New(Config{Addr: loopback, Upstreams: []string{"192.0.2.54"}})
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.Port != DefaultPort || s.cfg.Timeout != DefaultTimeout || !slices.Equal(s.cfg.Upstreams, []string{"192.0.2.54:53"}) {
		t.Fatalf("defaults: port %d timeout %s upstreams %v", s.cfg.Port, s.cfg.Timeout, s.cfg.Upstreams)
	}
}

// Run fails when the address is taken, and Ready stays open; a second
// Run of a server is refused.
func TestRunErrors(t *testing.T) {
	port := freePort(t, loopback)
	pc, err := net.ListenPacket("udp", netip.AddrPortFrom(loopback, uint16(port)).String())
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	s, err := New(Config{Addr: loopback, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Run on a taken port: %v", err)
	}
	select {
	case <-s.Ready():
		t.Fatal("Ready closed by a Run that could not listen")
	default:
	}
	s2, _ := runServer(t, Config{}, nil)
	if err := s2.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Run: %v", err)
	}
}

// One tcp connection serves any number of queries (the library closes it
// after 128 unless told otherwise).
func TestTCPManyQueries(t *testing.T) {
	_, addr := runServer(t, Config{}, testView())
	cl := client(callAPI, "tcp")
	co, err := cl.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()
	for i := range 300 {
		m := new(dns.Msg)
		m.SetQuestion("db.", dns.TypeA)
		r, _, err := cl.ExchangeWithConn(m, co)
		if err != nil {
			t.Fatalf("query %d: %v", i, err)
		}
		if len(r.Answer) != 3 {
			t.Fatalf("query %d: %v", i, r.Answer)
		}
	}
}

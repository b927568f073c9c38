package dns

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/netplane/netns"
)

// loopback is where test servers listen.
var loopback = netip.MustParseAddr("127.0.0.1")

// freePort returns a port free for both udp and tcp on addr (a moment
// ago: another process may take it, which fails the test loudly).
func freePort(t testing.TB, addr netip.Addr) int {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", netip.AddrPortFrom(addr, uint16(port)).String())
		ln.Close()
		if err == nil {
			pc.Close()
			return port
		}
	}
	t.Fatal("no port free for both udp and tcp")
	return 0
}

// runServer starts a server on loopback serving v and returns it with its
// address; it is stopped (and Run's result checked) when the test ends.
func runServer(t testing.TB, cfg Config, v *api.NetView) (*Server, string) {
	t.Helper()
	if !cfg.Addr.IsValid() {
		cfg.Addr = loopback
	}
	if cfg.Port == 0 {
		cfg.Port = freePort(t, cfg.Addr)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.SetView(v)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-s.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("run: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return s, netip.AddrPortFrom(cfg.Addr, uint16(cfg.Port)).String()
}

// client asks from the caller's address (loopback addresses are all
// local, so a test can be any local task).
func client(caller netip.Addr, network string) *dns.Client {
	d := &net.Dialer{}
	if caller.IsValid() {
		if network == "tcp" {
			d.LocalAddr = &net.TCPAddr{IP: caller.AsSlice()}
		} else {
			d.LocalAddr = &net.UDPAddr{IP: caller.AsSlice()}
		}
	}
	return &dns.Client{Net: network, Dialer: d, Timeout: 5 * time.Second}
}

// query asks server for name (type qtype) from caller over network.
func query(t testing.TB, server string, caller netip.Addr, network, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	r, _, err := client(caller, network).Exchange(m, server)
	if err != nil {
		t.Fatalf("%s %s from %s over %s: %v", dns.TypeToString[qtype], name, caller, network, err)
	}
	if r.Id != m.Id {
		t.Fatalf("reply id %d to query %d", r.Id, m.Id)
	}
	return r
}

// upstream is a resolver run by the test: example.test. answers
// 192.0.2.1, big.test. 60 addresses (truncated over udp without EDNS),
// anything else NXDOMAIN, or every name SERVFAIL when failing.
type upstream struct {
	addr    string
	failing bool
	count   atomic.Int64
	tcp     atomic.Int64
	mu      sync.Mutex
	names   []string
	ids     []uint16
}

func (u *upstream) seen() (names []string, ids []uint16) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.names), slices.Clone(u.ids)
}

// runUpstream starts an upstream on a free loopback port, inside ns.
func runUpstream(t testing.TB, ns netns.NS, failing bool) *upstream {
	t.Helper()
	return runUpstreamAt(t, ns, netip.AddrPortFrom(loopback, uint16(freePort(t, loopback))).String(), failing)
}

// runUpstreamAt starts an upstream at addr (udp and tcp), inside ns.
func runUpstreamAt(t testing.TB, ns netns.NS, addr string, failing bool) *upstream {
	t.Helper()
	u := &upstream{failing: failing, addr: addr}
	var pc net.PacketConn
	var ln net.Listener
	if err := ns.Do(func() (err error) {
		if pc, err = net.ListenPacket("udp", u.addr); err != nil {
			return err
		}
		ln, err = net.Listen("tcp", u.addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		u.count.Add(1)
		_, udp := w.RemoteAddr().(*net.UDPAddr)
		if !udp {
			u.tcp.Add(1)
		}
		u.mu.Lock()
		u.names = append(u.names, r.Question[0].Name)
		u.ids = append(u.ids, r.Id)
		u.mu.Unlock()
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		switch {
		case u.failing:
			m.Rcode = dns.RcodeServerFailure
		case q.Name == "example.test." && q.Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 1)})
		case q.Name == "big.test." && q.Qtype == dns.TypeA:
			for i := range 60 {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(198, 51, 100, byte(i+1))})
			}
		case q.Name == "example.test." || q.Name == "big.test.":
		default:
			m.Rcode = dns.RcodeNameError
		}
		if udp {
			m.Truncate(clientSize(r))
		}
		_ = w.WriteMsg(m)
	})
	servers := []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h, MaxTCPQueries: -1}}
	var wg sync.WaitGroup
	for _, srv := range servers {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		wg.Go(func() { _ = srv.ActivateAndServe() })
		<-started
	}
	t.Cleanup(func() {
		for _, srv := range servers {
			_ = srv.Shutdown()
		}
		wg.Wait()
	})
	return u
}

// blackhole returns a udp address that takes queries and never answers.
func blackhole(t testing.TB) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String()
}

// refused returns a udp address where nothing listens (the kernel
// answers port unreachable).
func refused(t testing.TB) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(freePort(t, loopback))
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// netnsOwn is the process's own network namespace.
var netnsOwn = netns.NS{}

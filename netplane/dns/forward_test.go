package dns

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// A forwarded query reaches the upstream with the client's id, over udp
// and tcp, and its answer comes back.
func TestForward(t *testing.T) {
	up := runUpstream(t, netnsOwn, false)
	_, addr := runServer(t, Config{Upstreams: []string{up.addr}}, testView())
	for i, network := range []string{"udp", "tcp"} {
		m := new(dns.Msg)
		m.SetQuestion("example.test.", dns.TypeA)
		m.Id = 0xbee0 + uint16(i)
		r, _, err := client(callFront, network).Exchange(m, addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := resultOf(r); r.Id != m.Id || len(got.Addrs) != 1 || got.Addrs[0] != "192.0.2.1" {
			t.Fatalf("%s: id %#x, %+v", network, r.Id, got)
		}
	}
	names, ids := up.seen()
	if !slices.Equal(ids, []uint16{0xbee0, 0xbee1}) || !slices.Equal(names, []string{"example.test.", "example.test."}) {
		t.Fatalf("upstream saw %v with ids %#x", names, ids)
	}
}

// An upstream answer too large for udp is fetched again over tcp: whole
// for a tcp client, truncated (TC set) for a udp one.
func TestForwardTruncated(t *testing.T) {
	up := runUpstream(t, netnsOwn, false)
	_, addr := runServer(t, Config{Upstreams: []string{up.addr}}, testView())
	r := query(t, addr, callFront, "tcp", "big.test.", dns.TypeA)
	if r.Truncated || len(r.Answer) != 60 {
		t.Fatalf("tcp client: truncated %v, %d records, want all 60", r.Truncated, len(r.Answer))
	}
	if n, tcp := up.count.Load(), up.tcp.Load(); n != 2 || tcp != 1 {
		t.Fatalf("upstream got %d queries, %d over tcp; want udp then tcp", n, tcp)
	}
	r = query(t, addr, callFront, "udp", "big.test.", dns.TypeA)
	if !r.Truncated || len(r.Answer) >= 60 {
		t.Fatalf("udp client: truncated %v, %d records", r.Truncated, len(r.Answer))
	}
	if tcp := up.tcp.Load(); tcp != 2 {
		t.Fatalf("upstream got %d tcp queries, want 2", tcp)
	}
}

// Failing upstreams (silent, refusing, answering SERVFAIL) are skipped
// for the next; with none left, or none at all, the answer is SERVFAIL,
// well before the client gives up.
func TestForwardFailover(t *testing.T) {
	const timeout = 200 * time.Millisecond
	good := runUpstream(t, netnsOwn, false)
	bad := runUpstream(t, netnsOwn, true)
	hole, closed := blackhole(t), refused(t)
	for _, c := range []struct {
		name      string
		upstreams []string
		want      string
		goodSees  int64
	}{
		{"silent then good", []string{hole, good.addr}, "NOERROR", 1},
		{"refused then good", []string{closed, good.addr}, "NOERROR", 1},
		{"servfail then good", []string{bad.addr, good.addr}, "NOERROR", 1},
		{"good first", []string{good.addr, hole}, "NOERROR", 1},
		{"silent", []string{hole}, "SERVFAIL", 0},
		{"refused", []string{closed}, "SERVFAIL", 0},
		{"silent and refused", []string{hole, closed}, "SERVFAIL", 0},
		{"servfail", []string{bad.addr}, "SERVFAIL", 0},
		{"none", nil, "SERVFAIL", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := good.count.Load()
			_, addr := runServer(t, Config{Upstreams: c.upstreams, Timeout: timeout}, testView())
			m := new(dns.Msg)
			m.SetQuestion("example.test.", dns.TypeA)
			cl := client(callFront, "udp")
			cl.Timeout = 20 * timeout * time.Duration(1+len(c.upstreams))
			r, _, err := cl.Exchange(m, addr)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			if got := dns.RcodeToString[r.Rcode]; got != c.want {
				t.Fatalf("rcode %s, want %s", got, c.want)
			}
			if c.want == "NOERROR" && len(r.Answer) != 1 {
				t.Fatalf("answer %v", r.Answer)
			}
			if n := good.count.Load() - before; n != c.goodSees {
				t.Fatalf("the good upstream got %d queries, want %d", n, c.goodSees)
			}
		})
	}
}

// When Run ends, forwarded queries under way are cut short: Run returns
// long before the upstream timeout, and the client gets SERVFAIL.
func TestForwardCancelledByRun(t *testing.T) {
	s, err := New(Config{Addr: loopback, Port: freePort(t, loopback), Upstreams: []string{blackhole(t)}, Timeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-s.Ready()
	addr := s.cfg.listenAddr()
	replies := make(chan *dns.Msg, 1)
	go func() {
		m := new(dns.Msg)
		m.SetQuestion("example.test.", dns.TypeA)
		r, _, _ := client(callFront, "udp").Exchange(m, addr)
		replies <- r
	}()
	waitFor(t, 5*time.Second, "the query to be forwarded", func() bool { return len(s.inflight) == 1 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return when its context ended")
	}
	if r := <-replies; r == nil || r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("reply %v, want SERVFAIL", r)
	}
}

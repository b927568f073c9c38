package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/gitorc/gitorc/cluster/api"
)

// Log keys.
const (
	keyAddr     = "addr"
	keyUpstream = "upstream"
	keyName     = "name"
	keyErr      = "err"
)

// Limits of the server.
const (
	// maxInflight bounds the queries being forwarded at once; past it,
	// forwarded names answer SERVFAIL at once.
	maxInflight = 1024
	// ednsSize is the UDP payload size the server advertises and reads.
	ednsSize = 1232
	// warnEvery rate-limits the warning that no upstream answered.
	warnEvery = 30 * time.Second
)

// ErrRunning is returned by a second Run.
var ErrRunning = errors.New("dns server already running")

// Server answers the cluster's names from the last view SetView gave it
// and forwards the rest. Create it with New, start it with Run.
type Server struct {
	cfg      Config
	log      *slog.Logger
	ix       atomic.Pointer[index]
	rot      atomic.Uint32 // rotates answers per query
	ready    chan struct{}
	running  atomic.Bool
	client   *dns.Client
	dialer   net.Dialer
	inflight chan struct{}
	warned   atomic.Int64 // unix nanoseconds of the last warning
}

// New returns a server that answers nothing but forwarded names until
// SetView.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		ready:    make(chan struct{}),
		client:   &dns.Client{Timeout: cfg.Timeout},
		inflight: make(chan struct{}, maxInflight),
	}
	s.ix.Store(buildIndex(nil))
	return s, nil
}

// SetView makes v what the server answers, atomically: queries see the
// previous view or this one, never a mix. v is not retained (nil answers
// no cluster name).
func (s *Server) SetView(v *api.NetView) {
	s.ix.Store(buildIndex(v))
}

// Ready is closed once Run listens on udp and tcp.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Run listens on udp and tcp Addr:Port inside NS and serves until ctx
// ends, then stops, waiting for the queries under way (forwarded ones
// are cut short: SERVFAIL). It returns an error if it cannot listen, or
// if serving fails; nil once ctx ended. A server runs once: a second Run
// returns ErrRunning.
func (s *Server) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	addr := s.cfg.listenAddr()
	var pc net.PacketConn
	var ln net.Listener
	err := s.cfg.NS.Do(func() (err error) {
		if pc, err = net.ListenPacket("udp", addr); err != nil {
			return err
		}
		if ln, err = net.Listen("tcp", addr); err != nil {
			pc.Close()
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("dns listen: %w", err)
	}
	// Forwarded queries end with hctx, cancelled before the servers stop
	// (which waits for every query under way).
	hctx, hcancel := context.WithCancel(ctx)
	defer hcancel()
	h := &handler{s: s, ctx: hctx}
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	servers := []*dns.Server{
		{PacketConn: pc, Handler: h, UDPSize: ednsSize, MsgAcceptFunc: accept, NotifyStartedFunc: notify},
		// A tcp connection serves queries until idle (the library's
		// default closes it after 128).
		{Listener: ln, Handler: h, MsgAcceptFunc: accept, NotifyStartedFunc: notify, MaxTCPQueries: -1},
	}
	errc := make(chan error, len(servers))
	for _, srv := range servers {
		go func() { errc <- srv.ActivateAndServe() }()
	}
	pending, up := len(servers), 0
	var serveErr error
	for up < len(servers) && serveErr == nil {
		select {
		case <-started:
			up++
		case serveErr = <-errc:
			pending--
		}
	}
	if serveErr == nil {
		close(s.ready)
		s.log.Info("dns server listening", keyAddr, addr, keyUpstream, s.cfg.Upstreams)
		select {
		case <-ctx.Done():
		case serveErr = <-errc:
			pending--
		}
	}
	hcancel()
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout+time.Second)
	defer cancel()
	for _, srv := range servers {
		_ = srv.ShutdownContext(sctx) // "not started" for one that failed
	}
	pc.Close()
	ln.Close()
	for ; pending > 0; pending-- {
		if err := <-errc; err != nil && serveErr == nil && ctx.Err() == nil {
			serveErr = err
		}
	}
	if serveErr != nil {
		return fmt.Errorf("dns serve %s: %w", addr, serveErr)
	}
	return nil
}

// accept drops every packet that is not a plain query with one question:
// responses (often reflected junk), updates, notifies.
func accept(dh dns.Header) dns.MsgAcceptAction {
	const qr = 1 << 15
	opcode := int(dh.Bits>>11) & 0xF
	if dh.Bits&qr != 0 || opcode != dns.OpcodeQuery || dh.Qdcount != 1 || dh.Ancount != 0 || dh.Nscount != 0 || dh.Arcount > 2 {
		return dns.MsgIgnore
	}
	return dns.MsgAccept
}

// handler serves the queries of one Run.
type handler struct {
	s   *Server
	ctx context.Context
}

func (h *handler) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	if len(r.Question) != 1 {
		return
	}
	caller, udp := remote(w)
	if m := h.s.answer(caller, r); m != nil {
		if udp {
			m.Truncate(clientSize(r))
		}
		_ = w.WriteMsg(m)
		return
	}
	h.s.forward(h.ctx, w, r, udp)
}

// remote returns the caller's address and whether it asked over udp.
func remote(w dns.ResponseWriter) (netip.Addr, bool) {
	switch a := w.RemoteAddr().(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap(), true
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap(), false
	}
	return netip.Addr{}, false
}

// clientSize is the largest udp reply the client takes.
func clientSize(r *dns.Msg) int {
	if opt := r.IsEdns0(); opt != nil && opt.UDPSize() > dns.MinMsgSize {
		return int(opt.UDPSize())
	}
	return dns.MinMsgSize
}

// answer returns the reply to a query for a cluster name by the caller
// at caller, or nil when the name is to be forwarded.
func (s *Server) answer(caller netip.Addr, r *dns.Msg) *dns.Msg {
	ix := s.ix.Load()
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	an, ok := ix.scopeOf(caller).names[name]
	if !ok && !ix.local(name) {
		return nil
	}
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	m.RecursionAvailable = true
	if r.IsEdns0() != nil {
		m.SetEdns0(ednsSize, false)
	}
	if !ok {
		m.Rcode = dns.RcodeNameError
		return m
	}
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		return m
	}
	hdr := func(t uint16, ttl uint32) dns.RR_Header {
		return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
	}
	if n := len(an.addrs); n > 0 && (q.Qtype == dns.TypeA || q.Qtype == dns.TypeAAAA || q.Qtype == dns.TypeANY) {
		off := int(s.rot.Add(1) % uint32(n))
		for i := range n {
			a := an.addrs[(off+i)%n]
			switch {
			case a.Is4() && q.Qtype != dns.TypeAAAA:
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr(dns.TypeA, an.ttl), A: a.AsSlice()})
			case a.Is6() && q.Qtype != dns.TypeA:
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr(dns.TypeAAAA, an.ttl), AAAA: a.AsSlice()})
			}
		}
	}
	if q.Qtype == dns.TypePTR || q.Qtype == dns.TypeANY {
		for _, p := range an.ptrs {
			m.Answer = append(m.Answer, &dns.PTR{Hdr: hdr(dns.TypePTR, 0), Ptr: p})
		}
	}
	return m
}

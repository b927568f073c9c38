package storetest

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// ErrUnreachable is returned by dials and forwards across a partition.
var ErrUnreachable = errors.New("unreachable: partitioned")

// Net is a fault-injecting network of stream layers over loopback TCP.
// Every connection is owned by the stream that dialled it, so cutting a
// link closes exactly the connections its two ends dialled to each other.
type Net struct {
	mu      sync.Mutex
	cut     map[[2]string]bool
	streams map[string]*Stream // by address
	// drop makes forwards across a cut link hang (packets dropped) instead
	// of failing at once (refused); see SetDrop.
	drop bool
}

// SetDrop chooses how a cut link treats forwards (writes and barriers a
// follower sends its leader): with drop, a forward sent across it, or one
// whose link is cut before its answer came back, waits until its context
// ends, as a TCP connection to a host whose packets are dropped does;
// without, it is refused at once. Raft's own connections are refused
// either way.
func (n *Net) SetDrop(drop bool) {
	n.mu.Lock()
	n.drop = drop
	n.mu.Unlock()
}

// dropped reports whether a forward from a to b is lost.
func (n *Net) dropped(a, b string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.drop && n.cut[[2]string{a, b}]
}

// NewNet returns a network with every link up.
func NewNet() *Net {
	return &Net{cut: map[[2]string]bool{}, streams: map[string]*Stream{}}
}

// Listen returns a stream layer on addr ("127.0.0.1:0" for a new port).
func (n *Net) Listen(addr string) (*Stream, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	s := &Stream{net: n, ln: ln, addr: ln.Addr().String(), conns: map[*conn]struct{}{}}
	n.mu.Lock()
	n.streams[s.addr] = s
	n.mu.Unlock()
	return s, nil
}

// Blocked reports whether a and b cannot talk.
func (n *Net) Blocked(a, b string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cut[[2]string{a, b}]
}

// Cut severs the link between a and b in both directions.
func (n *Net) Cut(a, b string) {
	n.mu.Lock()
	n.cut[[2]string{a, b}] = true
	n.cut[[2]string{b, a}] = true
	var doomed []*conn
	for _, pair := range [][2]string{{a, b}, {b, a}} {
		if s := n.streams[pair[0]]; s != nil {
			for c := range s.conns {
				if c.peer == pair[1] {
					doomed = append(doomed, c)
				}
			}
		}
	}
	n.mu.Unlock()
	for _, c := range doomed {
		c.Close()
	}
}

// HealAll restores every link.
func (n *Net) HealAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut = map[[2]string]bool{}
}

// Stream is one manager's raft.StreamLayer on Net.
type Stream struct {
	net  *Net
	ln   net.Listener
	addr string

	// guarded by net.mu
	conns  map[*conn]struct{}
	closed bool
}

var _ raft.StreamLayer = (*Stream)(nil)

func (s *Stream) track(c net.Conn, peer string) (net.Conn, error) {
	s.net.mu.Lock()
	defer s.net.mu.Unlock()
	if s.closed || (peer != "" && s.net.cut[[2]string{s.addr, peer}]) {
		c.Close()
		return nil, ErrUnreachable
	}
	tc := &conn{Conn: c, s: s, peer: peer}
	s.conns[tc] = struct{}{}
	return tc, nil
}

// Accept accepts an inbound connection.
func (s *Stream) Accept() (net.Conn, error) {
	c, err := s.ln.Accept()
	if err != nil {
		return nil, err
	}
	return s.track(c, "")
}

// Dial connects to addr unless the link is cut.
func (s *Stream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if s.net.Blocked(s.addr, string(addr)) {
		return nil, ErrUnreachable
	}
	c, err := net.DialTimeout("tcp", string(addr), timeout)
	if err != nil {
		return nil, err
	}
	return s.track(c, string(addr))
}

// Addr is the stream's address.
func (s *Stream) Addr() net.Addr { return s.ln.Addr() }

// Close closes the listener and every connection of the stream.
func (s *Stream) Close() error {
	s.net.mu.Lock()
	s.closed = true
	conns := s.conns
	s.conns = map[*conn]struct{}{}
	if s.net.streams[s.addr] == s {
		delete(s.net.streams, s.addr)
	}
	s.net.mu.Unlock()
	err := s.ln.Close()
	for c := range conns {
		c.Conn.Close()
	}
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

type conn struct {
	net.Conn
	s    *Stream
	peer string // the address dialled; empty for accepted connections
}

func (c *conn) Close() error {
	c.s.net.mu.Lock()
	delete(c.s.conns, c)
	c.s.net.mu.Unlock()
	return c.Conn.Close()
}

package store

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// TCPStreamLayer is a plain-TCP raft.StreamLayer that owns its
// connections: Close closes the listener and every connection accepted or
// dialled through it, so a stopped manager leaves nothing half-open
// (raft's NetworkTransport does not close accepted connections itself).
type TCPStreamLayer struct {
	ln        net.Listener
	advertise net.Addr

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

var _ raft.StreamLayer = (*TCPStreamLayer)(nil)

// ListenTCP listens on bind; advertise, if not empty, is the address peers
// are told to dial.
func ListenTCP(bind, advertise string) (*TCPStreamLayer, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", bind, err)
	}
	s := &TCPStreamLayer{ln: ln, advertise: ln.Addr(), conns: map[net.Conn]struct{}{}}
	if advertise != "" {
		a, err := net.ResolveTCPAddr("tcp", advertise)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("advertise address %s: %w", advertise, err)
		}
		if a.IP == nil || a.IP.IsUnspecified() {
			ln.Close()
			return nil, fmt.Errorf("advertise address %s: not routable", advertise)
		}
		s.advertise = a
	}
	return s, nil
}

func (s *TCPStreamLayer) track(c net.Conn) (net.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	tc := &trackedConn{Conn: c, s: s}
	s.conns[tc] = struct{}{}
	return tc, nil
}

// Accept waits for the next inbound connection.
func (s *TCPStreamLayer) Accept() (net.Conn, error) {
	c, err := s.ln.Accept()
	if err != nil {
		return nil, err
	}
	return s.track(c)
}

// Dial connects to a peer.
func (s *TCPStreamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", string(addr), timeout)
	if err != nil {
		return nil, err
	}
	return s.track(c)
}

// Addr is the advertised address.
func (s *TCPStreamLayer) Addr() net.Addr { return s.advertise }

// Close closes the listener and all connections.
func (s *TCPStreamLayer) Close() error {
	s.mu.Lock()
	s.closed = true
	conns := s.conns
	s.conns = map[net.Conn]struct{}{}
	s.mu.Unlock()
	err := s.ln.Close()
	for c := range conns {
		c.(*trackedConn).Conn.Close()
	}
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

type trackedConn struct {
	net.Conn
	s *TCPStreamLayer
}

func (c *trackedConn) Close() error {
	c.s.mu.Lock()
	delete(c.s.conns, c)
	c.s.mu.Unlock()
	return c.Conn.Close()
}

package node

import (
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/gitorc/gitorc/cluster/store"
	"github.com/hashicorp/raft"
)

// tlsLayer runs Raft between managers over mutual TLS: the store's TCP
// layer underneath (which owns and closes every connection), a TLS
// handshake on top that admits only managers of this cluster.
//
// Each inbound connection's handshake runs on its own, outside Accept: a
// peer that connects and says nothing holds up only its own connection,
// never the managers' (it used to stall every new Raft connection for
// the handshake timeout). At most maxPendingHandshakes run at once: a
// connection beyond them drops the oldest one still waiting, so that a
// flood of silent connections cannot lock the managers out (theirs take
// milliseconds).
type tlsLayer struct {
	*store.TCPStreamLayer
	server, client *tls.Config

	once     sync.Once
	accepted chan acceptedConn
	done     chan struct{} // closed when the accept loop ended
	stop     chan struct{} // closed by Close
	stopOnce sync.Once

	mu      sync.Mutex
	pending []net.Conn // handshakes in progress, oldest first
}

type acceptedConn struct {
	c   net.Conn
	err error
}

var _ raft.StreamLayer = (*tlsLayer)(nil)

// handshakeTimeout bounds a peer's TLS handshake; tests lengthen it.
var handshakeTimeout = 10 * time.Second

// maxPendingHandshakes bounds the handshakes in progress.
const maxPendingHandshakes = 64

func (l *tlsLayer) Accept() (net.Conn, error) {
	l.once.Do(l.start)
	select {
	case a := <-l.accepted:
		return a.c, a.err
	case <-l.done:
		return nil, net.ErrClosed
	case <-l.stop:
		return nil, net.ErrClosed
	}
}

// start runs the loop that accepts TCP connections and hands each to its
// own handshake.
func (l *tlsLayer) start() {
	l.accepted = make(chan acceptedConn)
	l.done, l.stop = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(l.done)
		for {
			c, err := l.TCPStreamLayer.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				// Raft's transport sees the error (and backs off).
				select {
				case l.accepted <- acceptedConn{err: err}:
					continue
				case <-l.stop:
					return
				}
			}
			l.mu.Lock()
			if len(l.pending) >= maxPendingHandshakes {
				l.pending[0].Close() // a flood, not managers: its handshake fails
				l.pending = l.pending[1:]
			}
			l.pending = append(l.pending, c)
			l.mu.Unlock()
			go l.handshake(c)
		}
	}()
}

// Close closes the listener and every connection, and ends the accept
// loop and the handshakes in progress.
func (l *tlsLayer) Close() error {
	l.once.Do(l.start)
	l.stopOnce.Do(func() { close(l.stop) })
	return l.TCPStreamLayer.Close()
}

func (l *tlsLayer) handshake(c net.Conn) {
	defer func() {
		l.mu.Lock()
		if i := slices.Index(l.pending, c); i >= 0 {
			l.pending = slices.Delete(l.pending, i, i+1)
		}
		l.mu.Unlock()
	}()
	tc := tls.Server(c, l.server)
	_ = tc.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := tc.Handshake(); err != nil {
		c.Close() // not a manager of this cluster: drop it
		return
	}
	_ = tc.SetDeadline(time.Time{})
	select {
	case l.accepted <- acceptedConn{c: tc}:
	case <-l.stop:
		tc.Close()
	}
}

func (l *tlsLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := l.TCPStreamLayer.Dial(addr, timeout)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(c, l.client)
	_ = tc.SetDeadline(time.Now().Add(timeout))
	if err := tc.Handshake(); err != nil {
		c.Close()
		return nil, err
	}
	_ = tc.SetDeadline(time.Time{})
	return tc, nil
}

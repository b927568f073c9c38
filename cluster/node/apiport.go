package node

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/gitorc/gitorc/cluster/ca"
)

// The manager's API port serves two protocols over TLS: gRPC (h2) for
// nodes (dispatcher, join, renewal, forwarded writes) and the control API
// (HTTP/1.1) for admins. apiPort reads each connection's ClientHello
// without answering it, and hands the connection, unread, to the server
// of the protocol the client offers: a client that offers http/1.1 (the
// CLI; curl, which offers h2 and http/1.1) goes to the admin API, any
// other (gRPC clients offer h2 only) to gRPC. Each server then runs its
// own handshake with its own tls.Config, so the nodes' side is exactly
// what it is without the admin API: one port to open and advertise, and
// no second listener to configure.

// helloTimeout bounds the wait for a new connection's ClientHello.
const helloTimeout = 10 * time.Second

// apiPort splits a listener's connections between gRPC and the admin API.
type apiPort struct {
	ln    net.Listener
	grpc  *connQueue
	admin *connQueue
	log   interface{ Debug(string, ...any) }

	mu      sync.Mutex
	pending map[net.Conn]struct{}
	closed  bool
}

func newAPIPort(ln net.Listener, log interface{ Debug(string, ...any) }) *apiPort {
	return &apiPort{ln: ln, grpc: newConnQueue(ln.Addr()), admin: newConnQueue(ln.Addr()), log: log,
		pending: map[net.Conn]struct{}{}}
}

// Run accepts connections until ctx ends or the listener fails, then
// closes the listener, both queues and the connections still being read.
func (p *apiPort) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	defer p.close()
	go func() { <-ctx.Done(); p.close() }()
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		if !p.track(conn) {
			conn.Close()
			return nil
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.route(conn)
		}()
	}
}

func (p *apiPort) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.pending[c] = struct{}{}
	return true
}

func (p *apiPort) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.pending, c)
}

func (p *apiPort) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	_ = p.ln.Close()
	for c := range p.pending {
		_ = c.Close()
	}
	p.grpc.Close()
	p.admin.Close()
}

// route reads conn's ClientHello and queues it for its protocol's server.
func (p *apiPort) route(conn net.Conn) {
	defer p.untrack(conn)
	_ = conn.SetReadDeadline(time.Now().Add(helloTimeout))
	protos, replay, err := peekALPN(conn)
	_ = conn.SetReadDeadline(time.Time{})
	if err != nil {
		p.log.Debug("api port: no TLS ClientHello", "remote", conn.RemoteAddr().String(), "err", err)
		conn.Close()
		return
	}
	q := p.grpc
	if slices.Contains(protos, ca.ALPNAdmin) {
		q = p.admin
	}
	q.put(replay)
}

// errPeeked stops the handshake peekALPN starts once it has the hello.
var errPeeked = errors.New("client hello read")

// peekALPN reads a TLS ClientHello from conn and returns the protocols it
// offers by ALPN, and a connection that replays what was read: nothing
// is written to the client.
func peekALPN(conn net.Conn) ([]string, net.Conn, error) {
	rec := &recordingConn{Conn: conn}
	var protos []string
	var hello bool
	err := tls.Server(rec, &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		protos, hello = slices.Clone(h.SupportedProtos), true
		return nil, errPeeked
	}}).Handshake()
	if !hello {
		return nil, nil, err
	}
	return protos, &replayConn{Conn: conn, r: io.MultiReader(bytes.NewReader(rec.buf.Bytes()), conn)}, nil
}

// recordingConn keeps what is read and drops what is written (the alert
// the aborted handshake sends).
type recordingConn struct {
	net.Conn
	buf bytes.Buffer
}

func (c *recordingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.buf.Write(b[:n])
	return n, err
}

func (c *recordingConn) Write(b []byte) (int, error) { return len(b), nil }

// replayConn reads what peekALPN read first, then the connection.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// connQueue is a net.Listener fed by apiPort.
type connQueue struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// put hands c to Accept, or closes it once the queue is closed.
func (q *connQueue) put(c net.Conn) {
	select {
	case q.conns <- c:
	case <-q.done:
		c.Close()
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.conns:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }

package main

import (
	"crypto/tls"
	"net"
	"time"

	"github.com/gitorc/gitorc/cluster/store"
	"github.com/hashicorp/raft"
)

// tlsLayer runs Raft between managers over mutual TLS: the store's TCP
// layer underneath (which owns and closes every connection), a TLS
// handshake on top that admits only managers of this cluster.
type tlsLayer struct {
	*store.TCPStreamLayer
	server, client *tls.Config
}

var _ raft.StreamLayer = (*tlsLayer)(nil)

// handshakeTimeout bounds a peer's TLS handshake, so a silent connection
// cannot hold up Raft's accept loop.
const handshakeTimeout = 10 * time.Second

func (l *tlsLayer) Accept() (net.Conn, error) {
	for {
		c, err := l.TCPStreamLayer.Accept()
		if err != nil {
			return nil, err
		}
		tc := tls.Server(c, l.server)
		_ = tc.SetDeadline(time.Now().Add(handshakeTimeout))
		if err := tc.Handshake(); err != nil {
			c.Close() // not a manager of this cluster: drop it, keep accepting
			continue
		}
		_ = tc.SetDeadline(time.Time{})
		return tc, nil
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

package node

import (
	"net"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/ca"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/hashicorp/raft"
)

// raftLayer is a manager's Raft layer on loopback with a certificate of
// root.
func raftLayer(t *testing.T, root *ca.RootCA, id string) *tlsLayer {
	t.Helper()
	csr, key, err := ca.NewCSR(id)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := root.Issue(csr, id, api.RoleManager)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.LoadNodeCert(certPEM, key, root.Certificate())
	if err != nil {
		t.Fatal(err)
	}
	cfg := ca.TLSConfig{CA: root.Certificate(), Cert: cert, PeerRoles: []api.NodeRole{api.RoleManager}}
	srv, err := cfg.Server()
	if err != nil {
		t.Fatal(err)
	}
	cli, err := cfg.Client()
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := store.ListenTCP("127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	l := &tlsLayer{TCPStreamLayer: tcp, server: srv, client: cli}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// A connection that never speaks TLS does not hold up a manager's: its
// handshake waits on its own, and a flood of them is bounded.
func TestRaftLayerSilentConnection(t *testing.T) {
	old := handshakeTimeout
	handshakeTimeout = time.Hour // a silent peer would hold Accept that long
	t.Cleanup(func() { handshakeTimeout = old })
	root, err := ca.NewRootCA(ca.Config{Organization: "raft-layer-test"})
	if err != nil {
		t.Fatal(err)
	}
	m1, m2 := raftLayer(t, root, "m1"), raftLayer(t, root, "m2")
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := m1.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	var silent []net.Conn
	for range maxPendingHandshakes + 8 { // beyond the cap: closed at once
		c, err := net.Dial("tcp", m1.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		silent = append(silent, c)
	}
	defer func() {
		for _, c := range silent {
			c.Close()
		}
	}()
	// The silent ones took the handshake slots: a manager's connection
	// finds one free once the extra ones are dropped, so give the loop
	// room by closing a few of the silent ones.
	for _, c := range silent[:8] {
		c.Close()
	}
	c, err := m2.Dial(raft.ServerAddress(m1.Addr().String()), 10*time.Second)
	if err != nil {
		t.Fatalf("a manager could not connect while silent connections wait: %v", err)
	}
	defer c.Close()
	select {
	case in, ok := <-accepted:
		if !ok {
			t.Fatal("accept failed")
		}
		in.Close()
	case <-time.After(30 * time.Second):
		t.Fatal("Raft's Accept is held up by silent connections")
	}
}

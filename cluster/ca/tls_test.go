package ca

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// result is one side of a handshake.
type result struct {
	state tls.ConnectionState
	err   error
}

// handshake runs a real TLS handshake over TCP on 127.0.0.1 and one byte
// of application data (in TLS 1.3 the server's verdict on the client's
// certificate reaches the client only with the first read).
func handshake(t *testing.T, server, client *tls.Config) (srv, cli result) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second)) // a hang guard, not a timing assertion
		tc := tls.Server(c, server)
		err = tc.Handshake()
		if err == nil {
			_, err = tc.Write([]byte{1})
		}
		done <- result{state: tc.ConnectionState(), err: err}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	tc := tls.Client(c, client)
	err = tc.Handshake()
	if err == nil {
		_, err = io.ReadFull(tc, make([]byte, 1))
	}
	cli = result{state: tc.ConnectionState(), err: err}
	c.Close()
	srv = <-done
	return srv, cli
}

func mustServer(t *testing.T, c TLSConfig) *tls.Config {
	t.Helper()
	cfg, err := c.Server()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func mustClient(t *testing.T, c TLSConfig) *tls.Config {
	t.Helper()
	cfg, err := c.Client()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestMutualTLSManagerWorker(t *testing.T) {
	clk := newClock()
	ca := newCA(t, clk)
	manager := issue(t, ca, "m1", api.RoleManager)
	worker := issue(t, ca, "w1", api.RoleWorker)

	srv, cli := handshake(t,
		mustServer(t, TLSConfig{CA: ca.Certificate(), Cert: manager, Now: clk.Now}),
		mustClient(t, TLSConfig{CA: ca.Certificate(), Cert: worker, PeerRoles: []api.NodeRole{api.RoleManager}, Now: clk.Now}))
	if srv.err != nil || cli.err != nil {
		t.Fatalf("handshake: server %v, client %v", srv.err, cli.err)
	}
	if id, err := PeerIdentity(srv.state); err != nil || id.NodeID != "w1" || id.Role != api.RoleWorker {
		t.Errorf("server sees %+v, %v; want worker w1", id, err)
	}
	if id, err := PeerIdentity(cli.state); err != nil || id.NodeID != "m1" || id.Role != api.RoleManager {
		t.Errorf("client sees %+v, %v; want manager m1", id, err)
	}
	// A manager-only call made by the worker is refused.
	if _, err := RequireRole(srv.state, api.RoleManager); !errors.Is(err, ErrRoleNotAllowed) {
		t.Errorf("RequireRole(manager) for a worker: err = %v, want ErrRoleNotAllowed", err)
	}
	if id, err := RequireRole(srv.state, api.RoleWorker, api.RoleManager); err != nil || id.NodeID != "w1" {
		t.Errorf("RequireRole(any): %+v, %v", id, err)
	}
}

func TestMutualTLSRefusals(t *testing.T) {
	clk := newClock()
	ca := newCA(t, clk)
	other := newCA(t, clk)
	manager := issue(t, ca, "m1", api.RoleManager)
	worker := issue(t, ca, "w1", api.RoleWorker)
	forged := issue(t, other, "m2", api.RoleManager)
	expiring := issue(t, ca, "w2", api.RoleWorker)
	late := newClock()
	late.Advance(DefaultCertValidity + time.Hour)

	cfg := func(cert *NodeCert, roles ...api.NodeRole) TLSConfig {
		return TLSConfig{CA: ca.Certificate(), Cert: cert, PeerRoles: roles, Now: clk.Now}
	}
	tests := []struct {
		name           string
		server, client TLSConfig
		wantServerErr  error // nil: the server side just fails
		wantClientErr  error
		serverMsg      string // in the server's error
	}{
		{name: "client certificate from another CA",
			server: cfg(manager), client: TLSConfig{CA: ca.Certificate(), Cert: forged, Now: clk.Now}, serverMsg: "unknown authority"},
		{name: "no client certificate",
			server: cfg(manager), client: cfg(nil), serverMsg: "didn't provide a certificate"},
		{name: "worker on a manager-only listener",
			server: cfg(manager, api.RoleManager), client: cfg(worker), wantServerErr: ErrRoleNotAllowed},
		{name: "server from another CA",
			server: TLSConfig{CA: other.Certificate(), Cert: forged, Now: clk.Now}, client: cfg(worker), wantClientErr: ErrUntrusted},
		{name: "client wants a manager, server is a worker",
			server: cfg(worker), client: cfg(manager, api.RoleManager), wantClientErr: ErrRoleNotAllowed},
		{name: "expired client certificate",
			server: TLSConfig{CA: ca.Certificate(), Cert: manager, Now: late.Now}, client: cfg(expiring), serverMsg: "expired"},
		{name: "expired server certificate",
			server: cfg(manager), client: TLSConfig{CA: ca.Certificate(), Cert: worker, Now: late.Now}, wantClientErr: ErrCertExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, cli := handshake(t, mustServer(t, tc.server), mustClient(t, tc.client))
			if srv.err == nil && cli.err == nil {
				t.Fatal("connection established")
			}
			if tc.serverMsg != "" && (srv.err == nil || !strings.Contains(srv.err.Error(), tc.serverMsg)) {
				t.Errorf("server err = %v, want it to say %q", srv.err, tc.serverMsg)
			}
			if tc.wantServerErr != nil && !errors.Is(srv.err, tc.wantServerErr) {
				t.Errorf("server err = %v, want %v", srv.err, tc.wantServerErr)
			}
			if tc.wantClientErr != nil && !errors.Is(cli.err, tc.wantClientErr) {
				t.Errorf("client err = %v, want %v", cli.err, tc.wantClientErr)
			}
		})
	}
}

func TestJoinPinsCAByToken(t *testing.T) {
	clk := newClock()
	ca := newCA(t, clk)
	other := newCA(t, clk)
	manager := issue(t, ca, "m1", api.RoleManager)
	worker := issue(t, ca, "w1", api.RoleWorker)
	tokens, _ := NewJoinTokens(ca.Digest())
	foreign, _ := NewJoinTokens(other.Digest())
	joinServer := TLSConfig{CA: ca.Certificate(), Cert: manager, AllowNoClientCert: true, Now: clk.Now}

	t.Run("token of this cluster", func(t *testing.T) {
		srv, cli := handshake(t, mustServer(t, joinServer), JoinClientConfig(tokens.Worker, clk.Now))
		if srv.err != nil || cli.err != nil {
			t.Fatalf("server %v, client %v", srv.err, cli.err)
		}
		if _, err := PeerIdentity(srv.state); !errors.Is(err, ErrUntrusted) {
			t.Errorf("anonymous joiner has an identity: %v", err)
		}
		// The joiner then checks the CA it is handed against its token.
		if _, err := tokens.Worker.VerifyCA(ca.CertPEM()); err != nil {
			t.Error(err)
		}
	})
	t.Run("token of another cluster", func(t *testing.T) {
		_, cli := handshake(t, mustServer(t, joinServer), JoinClientConfig(foreign.Worker, clk.Now))
		if !errors.Is(cli.err, ErrTokenCAMismatch) {
			t.Errorf("client err = %v, want ErrTokenCAMismatch", cli.err)
		}
	})
	t.Run("a worker posing as the join endpoint", func(t *testing.T) {
		posing := TLSConfig{CA: ca.Certificate(), Cert: worker, AllowNoClientCert: true, Now: clk.Now}
		_, cli := handshake(t, mustServer(t, posing), JoinClientConfig(tokens.Worker, clk.Now))
		if !errors.Is(cli.err, ErrRoleNotAllowed) {
			t.Errorf("client err = %v, want ErrRoleNotAllowed", cli.err)
		}
	})
	t.Run("server without the CA in its chain", func(t *testing.T) {
		bare, err := LoadNodeCert(manager.CertPEM(), manager.KeyPEM(), nil)
		if err != nil {
			t.Fatal(err)
		}
		s := joinServer
		s.Cert = bare
		_, cli := handshake(t, mustServer(t, s), JoinClientConfig(tokens.Worker, clk.Now))
		if !errors.Is(cli.err, ErrTokenCAMismatch) {
			t.Errorf("client err = %v, want ErrTokenCAMismatch", cli.err)
		}
	})
}

func TestTLSConfigValidate(t *testing.T) {
	ca := newCA(t, newClock())
	nc := issue(t, ca, "n1", api.RoleWorker)
	if _, err := (TLSConfig{}).Server(); err == nil {
		t.Error("server without a CA")
	}
	if _, err := (TLSConfig{CA: ca.Certificate()}).Server(); err == nil {
		t.Error("server without a certificate")
	}
	if _, err := (TLSConfig{CA: nc.Leaf, Cert: nc}).Client(); err == nil {
		t.Error("a node certificate accepted as CA")
	}
}

package ca

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// issueAdmin returns an admin certificate and key (PEM) of ca for name.
func issueAdmin(t *testing.T, ca *RootCA, name string, ttl time.Duration) (certPEM, keyPEM []byte, id AdminIdentity) {
	t.Helper()
	csr, key, err := NewAdminCSR(name)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, id, err = ca.IssueAdmin(csr, name, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, key, id
}

func TestIssueAdminAndVerify(t *testing.T) {
	clk := newClock()
	ca := newCA(t, clk)
	certPEM, keyPEM, issued := issueAdmin(t, ca, "alice", 0)
	id, err := ca.VerifyAdmin(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	if id != issued || id.Name != "alice" || id.Organization != "cluster1" || id.Serial == "" ||
		!id.NotAfter.Equal(clk.Now().Add(DefaultAdminValidity).Truncate(time.Second)) {
		t.Errorf("identity %+v, issued as %+v", id, issued)
	}
	leaf, err := ParseCertificatePEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(leaf.Subject.OrganizationalUnit, []string{OUAdmin}) || leaf.IsCA || len(leaf.DNSNames) != 0 ||
		!slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("OU %v, CA %v, DNS %v, EKU %v", leaf.Subject.OrganizationalUnit, leaf.IsCA, leaf.DNSNames, leaf.ExtKeyUsage)
	}
	if SerialString(leaf) != id.Serial {
		t.Errorf("serial %s, identity says %s", SerialString(leaf), id.Serial)
	}
	if _, got, err := LoadAdminCert(certPEM, keyPEM); err != nil || got != id {
		t.Errorf("LoadAdminCert: %+v, %v", got, err)
	}

	// A TTL is honoured, and the certificate expires with it.
	short, _, _ := issueAdmin(t, ca, "ci-deploy", 2*time.Hour)
	if _, err := ca.VerifyAdmin(short); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2*time.Hour + time.Second)
	if _, err := ca.VerifyAdmin(short); !errors.Is(err, ErrCertExpired) {
		t.Errorf("after its ttl: err = %v, want ErrCertExpired", err)
	}
	if _, err := ca.VerifyAdmin(certPEM); err != nil {
		t.Errorf("the 90-day certificate: %v", err)
	}
}

func TestIssueAdminRejects(t *testing.T) {
	ca := newCA(t, newClock())
	csr, _, err := NewCSR("alice")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, admin string
		csr         []byte
		ttl         time.Duration
		msg         string
	}{
		{"bad name", "alice smith", csr, 0, "invalid admin name"},
		{"empty name", "", csr, 0, "invalid admin name"},
		{"short ttl", "alice", csr, time.Minute, "shorter than 1h0m0s"},
		{"no csr", "alice", []byte("junk"), 0, "no PEM certificate request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ca.IssueAdmin(tc.csr, tc.admin, tc.ttl)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %v, want %q", err, tc.msg)
			}
		})
	}
}

// Node and admin certificates never stand in for each other.
func TestAdminAndNodeCertificatesAreSeparate(t *testing.T) {
	clk := newClock()
	ca := newCA(t, clk)
	adminPEM, adminKey, _ := issueAdmin(t, ca, "alice", 0)
	admin, err := ParseCertificatePEM(adminPEM)
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range []api.NodeRole{api.RoleWorker, api.RoleManager} {
		nc := issue(t, ca, "n-"+role.String(), role)
		if _, err := ca.VerifyAdmin(nc.CertPEM()); !errors.Is(err, ErrNotAdmin) || !strings.Contains(err.Error(), role.String()+" certificate of node n-"+role.String()) {
			t.Errorf("%s certificate as admin: err = %v, want ErrNotAdmin naming the node", role, err)
		}
		if _, _, err := LoadAdminCert(nc.CertPEM(), nc.KeyPEM()); !errors.Is(err, ErrNotAdmin) {
			t.Errorf("LoadAdminCert of a %s certificate: %v", role, err)
		}
	}
	if _, err := IdentityOf(admin); !errors.Is(err, ErrInvalidCert) {
		t.Errorf("an admin certificate read as a node's: err = %v", err)
	}
	if _, err := ca.Verify(adminPEM); err == nil {
		t.Error("an admin certificate verified as a node's")
	}
	if _, err := LoadNodeCert(adminPEM, adminKey, ca.Certificate()); err == nil {
		t.Error("an admin certificate loaded as a node's")
	}
	// Another CA's admin certificate is not ours.
	theirs, _, _ := issueAdmin(t, newCA(t, clk), "alice", 0)
	if _, err := ca.VerifyAdmin(theirs); !errors.Is(err, ErrUntrusted) {
		t.Errorf("another cluster's admin: err = %v, want ErrUntrusted", err)
	}
}

// Over real TLS: the admin API's server sees an admin, a node or nobody;
// a node's gRPC listener refuses an admin; the admin's client requires a
// manager's certificate on the server.
func TestAdminTLS(t *testing.T) {
	clk := newClock()
	ca := newCA(t, clk)
	manager := issue(t, ca, "m1", api.RoleManager)
	worker := issue(t, ca, "w1", api.RoleWorker)
	adminPEM, adminKey, adminID := issueAdmin(t, ca, "alice", 0)
	adminPair, _, err := LoadAdminCert(adminPEM, adminKey)
	if err != nil {
		t.Fatal(err)
	}
	adminSrv, err := TLSConfig{CA: ca.Certificate(), Cert: manager, Now: clk.Now}.AdminServer()
	if err != nil {
		t.Fatal(err)
	}
	cli := func(cert tls.Certificate) *tls.Config {
		c, err := AdminClientConfig(ca.Certificate(), cert, clk.Now)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	t.Run("admin", func(t *testing.T) {
		srv, c := handshake(t, adminSrv, cli(adminPair))
		if srv.err != nil || c.err != nil {
			t.Fatalf("server %v, client %v", srv.err, c.err)
		}
		if id, err := AdminPeer(srv.state); err != nil || id != adminID {
			t.Errorf("admin peer %+v, %v", id, err)
		}
		if srv.state.NegotiatedProtocol != ALPNAdmin {
			t.Errorf("ALPN %q", srv.state.NegotiatedProtocol)
		}
	})
	t.Run("worker certificate", func(t *testing.T) {
		srv, c := handshake(t, adminSrv, cli(worker.TLS))
		if srv.err != nil || c.err != nil {
			t.Fatalf("server %v, client %v", srv.err, c.err)
		}
		if _, err := AdminPeer(srv.state); !errors.Is(err, ErrNotAdmin) {
			t.Errorf("worker as admin peer: %v", err)
		}
	})
	t.Run("no certificate", func(t *testing.T) {
		c := cli(tls.Certificate{})
		c.GetClientCertificate = nil
		srv, cerr := handshake(t, adminSrv, c)
		if srv.err != nil || cerr.err != nil {
			t.Fatalf("server %v, client %v", srv.err, cerr.err)
		}
		if _, err := AdminPeer(srv.state); !errors.Is(err, ErrNoClientCert) {
			t.Errorf("anonymous peer: %v", err)
		}
	})
	t.Run("admin on the nodes' listener", func(t *testing.T) {
		nodeSrv := mustServer(t, TLSConfig{CA: ca.Certificate(), Cert: manager, PeerRoles: []api.NodeRole{api.RoleManager, api.RoleWorker},
			AllowNoClientCert: true, Now: clk.Now})
		srv, _ := handshake(t, nodeSrv, cli(adminPair))
		if srv.err == nil {
			t.Error("a node listener admitted an admin certificate")
		}
	})
	t.Run("server is a worker", func(t *testing.T) {
		posing, err := TLSConfig{CA: ca.Certificate(), Cert: worker, Now: clk.Now}.AdminServer()
		if err != nil {
			t.Fatal(err)
		}
		_, c := handshake(t, posing, cli(adminPair))
		if !errors.Is(c.err, ErrRoleNotAllowed) {
			t.Errorf("client err = %v, want ErrRoleNotAllowed", c.err)
		}
	})
	t.Run("expired admin", func(t *testing.T) {
		late := newClock()
		late.Advance(DefaultAdminValidity + time.Hour)
		lateSrv, err := TLSConfig{CA: ca.Certificate(), Cert: manager, Now: late.Now}.AdminServer()
		if err != nil {
			t.Fatal(err)
		}
		// The manager's own certificate has expired too by then: the
		// client checks it against the same late clock.
		c, err := AdminClientConfig(ca.Certificate(), adminPair, clk.Now)
		if err != nil {
			t.Fatal(err)
		}
		srv, _ := handshake(t, lateSrv, c)
		if srv.err == nil {
			t.Error("an expired admin certificate passed the handshake")
		}
	})
}

package ca

import (
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// rotation is a root rotation half-way: the old root, the new one, the
// new one's key certified by the old one.
type rotation struct {
	old, next *RootCA
	crossPEM  []byte
	cross     *x509.Certificate
}

func newRotation(t *testing.T, clk *fakeClock) rotation {
	t.Helper()
	old, next := newCA(t, clk), newCA(t, clk)
	crossPEM, err := old.CrossSign(next.Certificate())
	if err != nil {
		t.Fatal(err)
	}
	cross, err := ParseCertificatePEM(crossPEM)
	if err != nil {
		t.Fatal(err)
	}
	return rotation{old: old, next: next, crossPEM: crossPEM, cross: cross}
}

// issueChain is a certificate of the new root, issued with the
// cross-signed certificate after it, presenting roots.
func (r rotation) issueChain(t *testing.T, id string, role api.NodeRole, roots ...*x509.Certificate) *NodeCert {
	t.Helper()
	csr, key, err := NewCSR(id)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := r.next.Issue(csr, id, role)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := LoadNodeCertChain(append(certPEM, r.crossPEM...), key, roots)
	if err != nil {
		t.Fatal(err)
	}
	return nc
}

func TestCrossSign(t *testing.T) {
	clk := newClock()
	r := newRotation(t, clk)
	c := r.cross
	if !c.IsCA || c.Subject.String() != r.next.Certificate().Subject.String() || !c.PublicKey.(*ecdsa.PublicKey).Equal(r.next.Certificate().PublicKey) {
		t.Errorf("cross-signed certificate: CA %v, subject %s, want the new root's subject and key", c.IsCA, c.Subject)
	}
	if !SignedBy(c, r.old.Certificate()) || SignedBy(c, r.next.Certificate()) {
		t.Error("the cross-signed certificate is not the old root's signature alone")
	}
	if c.NotAfter.After(r.old.Certificate().NotAfter) {
		t.Errorf("cross-signed certificate outlives the old root: %s", c.NotAfter)
	}
	if _, err := r.old.CrossSign(issue(t, r.next, "n1", api.RoleWorker).Leaf); !errors.Is(err, ErrInvalidCert) {
		t.Errorf("cross-signing a leaf: %v, want ErrInvalidCert", err)
	}
}

// A certificate of the new root, with the cross-signed certificate,
// verifies under the old root alone and under the new one; alone, only
// under the new one. Go's own verifier refuses the chain through the old
// root, whose path length is zero: the reason for verifyChain's anchors.
func TestChainThroughCrossSignedVerifiesUnderBothRoots(t *testing.T) {
	clk := newClock()
	r := newRotation(t, clk)
	nc := r.issueChain(t, "w1", api.RoleWorker)
	leaf := nc.Leaf
	if got := nc.Intermediates(); len(got) != 1 || !got[0].Equal(r.cross) {
		t.Fatalf("intermediates %d, want the cross-signed certificate", len(got))
	}
	chain := []*x509.Certificate{leaf, r.cross}
	for name, roots := range map[string][]*x509.Certificate{
		"old root":  {r.old.Certificate()},
		"new root":  {r.next.Certificate()},
		"both":      {r.old.Certificate(), r.next.Certificate()},
		"both, rev": {r.next.Certificate(), r.old.Certificate()},
	} {
		id, err := VerifyNodeChain(chain, roots, clk.Now())
		if err != nil || id.NodeID != "w1" {
			t.Errorf("%s: %+v, %v", name, id, err)
		}
	}
	if _, err := VerifyNodeChain([]*x509.Certificate{leaf}, []*x509.Certificate{r.old.Certificate()}, clk.Now()); !errors.Is(err, ErrUntrusted) {
		t.Errorf("the new root's leaf alone under the old root: %v, want ErrUntrusted", err)
	}
	inter := x509.NewCertPool()
	inter.AddCert(r.cross)
	roots := x509.NewCertPool()
	roots.AddCert(r.old.Certificate())
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: clk.Now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("Go's verifier took the chain through a root of path length 0: verifyChain's anchors are not needed")
	}
	// The bundle a node saves holds the leaf and the cross-signed one.
	again, err := LoadNodeCertChain(nc.CertPEM(), nc.KeyPEM(), nil)
	if err != nil || len(again.Intermediates()) != 1 || len(again.TLS.Certificate) != 2 {
		t.Errorf("reloaded: %v", err)
	}
}

// Once the new root alone is trusted, certificates of the old root are
// refused, with or without the cross-signed certificate beside them; a
// CA certificate signed by no trusted root is no anchor.
func TestAfterSwitchOldRootRefused(t *testing.T) {
	clk := newClock()
	r := newRotation(t, clk)
	old := issue(t, r.old, "w1", api.RoleWorker)
	newOnly := []*x509.Certificate{r.next.Certificate()}
	for name, chain := range map[string][]*x509.Certificate{
		"leaf":                    {old.Leaf},
		"leaf and old root":       {old.Leaf, r.old.Certificate()},
		"leaf and cross-signed":   {old.Leaf, r.cross},
		"leaf, cross, both roots": {old.Leaf, r.cross, r.old.Certificate(), r.next.Certificate()},
	} {
		if _, err := VerifyNodeChain(chain, newOnly, clk.Now()); !errors.Is(err, ErrUntrusted) {
			t.Errorf("%s: %v, want ErrUntrusted", name, err)
		}
	}
	if _, err := r.next.Verify(old.CertPEM()); !errors.Is(err, ErrUntrusted) {
		t.Errorf("RootCA.Verify of the old root's certificate: %v", err)
	}
	// Another cluster's root cross-signing the new root makes nothing
	// trusted under the old one.
	other := newCA(t, clk)
	foreignPEM, err := other.CrossSign(r.next.Certificate())
	if err != nil {
		t.Fatal(err)
	}
	foreign, _ := ParseCertificatePEM(foreignPEM)
	nc := r.issueChain(t, "w2", api.RoleWorker)
	if _, err := VerifyNodeChain([]*x509.Certificate{nc.Leaf, foreign}, []*x509.Certificate{r.old.Certificate()}, clk.Now()); !errors.Is(err, ErrUntrusted) {
		t.Errorf("through another root's cross-signature: %v, want ErrUntrusted", err)
	}
	// A cross-signed certificate past its validity anchors nothing.
	late := clk.Now().Add(DefaultRootValidity + time.Hour)
	if crossSigned(r.cross, []*x509.Certificate{r.old.Certificate()}, late) {
		t.Error("an expired cross-signed certificate is an anchor")
	}
}

// Real handshakes across a rotation: nodes that trust the old root alone
// and nodes with certificates of the new one reach each other both ways;
// after the switch (the roots func changes, no new config) the old
// root's certificates are refused by node and admin listeners.
func TestRotationHandshakes(t *testing.T) {
	clk := newClock()
	r := newRotation(t, clk)
	oldRoots := []*x509.Certificate{r.old.Certificate()}
	var trusted atomic.Pointer[[]*x509.Certificate]
	both := []*x509.Certificate{r.old.Certificate(), r.next.Certificate()}
	trusted.Store(&both)
	roots := func() []*x509.Certificate { return *trusted.Load() }

	oldManager := issue(t, r.old, "m1", api.RoleManager)
	oldWorker := issue(t, r.old, "w1", api.RoleWorker)
	newManager := r.issueChain(t, "m2", api.RoleManager, both...)
	newWorker := r.issueChain(t, "w2", api.RoleWorker, both...)

	ok := func(name string, server, client TLSConfig) {
		t.Helper()
		srv, cli := handshake(t, mustServer(t, server), mustClient(t, client))
		if srv.err != nil || cli.err != nil {
			t.Errorf("%s: server %v, client %v", name, srv.err, cli.err)
		}
	}
	ok("old-root worker (trusting it alone) to a renewed manager",
		TLSConfig{Roots: roots, Cert: newManager, Now: clk.Now},
		TLSConfig{CA: r.old.Certificate(), Cert: oldWorker, PeerRoles: []api.NodeRole{api.RoleManager}, Now: clk.Now})
	ok("renewed worker to a manager that trusts the old root alone",
		TLSConfig{Roots: func() []*x509.Certificate { return oldRoots }, Cert: oldManager, Now: clk.Now},
		TLSConfig{Roots: roots, Cert: newWorker, Now: clk.Now})
	ok("renewed worker to a renewed manager, both trusting both",
		TLSConfig{Roots: roots, Cert: newManager, Now: clk.Now},
		TLSConfig{Roots: roots, Cert: newWorker, PeerRoles: []api.NodeRole{api.RoleManager}, Now: clk.Now})

	// A joining node whose token pins the old root finds it in the chain.
	tokens, _ := NewJoinTokens(r.old.Digest())
	srv, cli := handshake(t, mustServer(t, TLSConfig{Roots: roots, Cert: newManager, AllowNoClientCert: true, Now: clk.Now}),
		JoinClientConfig(tokens.Worker, clk.Now))
	if srv.err != nil || cli.err != nil {
		t.Errorf("join with a token of the old root during the rotation: server %v, client %v", srv.err, cli.err)
	}

	// An admin certificate of the old root opens the admin API until the
	// switch, one of the new root after it.
	adminOld, adminOldKey, _ := issueAdmin(t, r.old, "alice", 0)
	adminNew, adminNewKey, _ := issueAdmin(t, r.next, "bob", 0)
	adminSrv, err := TLSConfig{Roots: roots, Cert: newManager, Now: clk.Now}.AdminServer()
	if err != nil {
		t.Fatal(err)
	}
	admin := func(certPEM, keyPEM []byte, pin *x509.Certificate) error {
		t.Helper()
		pair, _, err := LoadAdminCert(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := AdminClientConfig(pin, pair, clk.Now)
		if err != nil {
			t.Fatal(err)
		}
		srv, cli := handshake(t, adminSrv, cfg)
		if srv.err != nil {
			return srv.err
		}
		if cli.err != nil {
			return cli.err
		}
		if _, err := AdminPeer(srv.state); err != nil {
			return err
		}
		return nil
	}
	if err := admin(adminOld, adminOldKey, r.old.Certificate()); err != nil {
		t.Errorf("old admin certificate during the rotation: %v", err)
	}

	// The switch: the new root alone.
	newOnly := []*x509.Certificate{r.next.Certificate()}
	trusted.Store(&newOnly)
	srv, cli = handshake(t, mustServer(t, TLSConfig{Roots: roots, Cert: newManager, Now: clk.Now}),
		mustClient(t, TLSConfig{CA: r.old.Certificate(), Cert: oldWorker, Now: clk.Now}))
	if srv.err == nil || !errors.Is(srv.err, ErrUntrusted) {
		t.Errorf("old-root worker after the switch: server %v, client %v; want refused as untrusted", srv.err, cli.err)
	}
	_, cli = handshake(t, mustServer(t, TLSConfig{CA: r.old.Certificate(), Cert: oldManager, Now: clk.Now}),
		mustClient(t, TLSConfig{Roots: roots, Cert: newWorker, Now: clk.Now}))
	if !errors.Is(cli.err, ErrUntrusted) {
		t.Errorf("a manager of the old root, to a worker after the switch: %v, want ErrUntrusted", cli.err)
	}
	ok("renewed nodes after the switch",
		TLSConfig{Roots: roots, Cert: newManager, Now: clk.Now},
		TLSConfig{Roots: roots, Cert: newWorker, Now: clk.Now})
	if err := admin(adminOld, adminOldKey, r.old.Certificate()); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("old admin certificate after the switch: %v, want refused", err)
	}
	if err := admin(adminNew, adminNewKey, r.next.Certificate()); err != nil {
		t.Errorf("new admin certificate after the switch: %v", err)
	}
}

func TestParseCertificatesPEM(t *testing.T) {
	clk := newClock()
	r := newRotation(t, clk)
	bundle := EncodeCertificatesPEM(r.old.Certificate(), r.next.Certificate())
	got, err := ParseCertificatesPEM(bundle)
	if err != nil || len(got) != 2 || !got[1].Equal(r.next.Certificate()) {
		t.Fatalf("bundle: %d, %v", len(got), err)
	}
	for name, b := range map[string][]byte{
		"empty":       nil,
		"a key":       r.old.KeyPEM(),
		"cert, key":   append(append([]byte{}, r.old.CertPEM()...), r.old.KeyPEM()...),
		"not PEM":     []byte("hello"),
		"garbage DER": []byte("-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n"),
	} {
		if _, err := ParseCertificatesPEM(b); !errors.Is(err, ErrInvalidCert) {
			t.Errorf("%s: %v, want ErrInvalidCert", name, err)
		}
	}
	// A leaf after the leaf is no certificate chain of ours.
	a, b := issue(t, r.old, "a", api.RoleWorker), issue(t, r.old, "b", api.RoleWorker)
	if _, err := LoadNodeCertChain(append(a.CertPEM(), b.CertPEM()...), a.KeyPEM(), nil); !errors.Is(err, ErrInvalidCert) {
		t.Errorf("two leaves: %v, want ErrInvalidCert", err)
	}
}

package ca

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/google/go-cmp/cmp"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *fakeClock { return &fakeClock{now: time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newCA(t *testing.T, clk *fakeClock) *RootCA {
	t.Helper()
	ca, err := NewRootCA(Config{Organization: "cluster1", Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// issue returns a node certificate of ca for id and role.
func issue(t *testing.T, ca *RootCA, id string, role api.NodeRole) *NodeCert {
	t.Helper()
	csr, key, err := NewCSR(id)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.Issue(csr, id, role)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := LoadNodeCert(certPEM, key, ca.Certificate())
	if err != nil {
		t.Fatal(err)
	}
	return nc
}

func TestIssueAndVerify(t *testing.T) {
	clk := newClock()
	ca := newCA(t, clk)
	for _, role := range []api.NodeRole{api.RoleWorker, api.RoleManager} {
		t.Run(role.String(), func(t *testing.T) {
			nc := issue(t, ca, "node-"+role.String(), role)
			id, err := ca.Verify(nc.CertPEM())
			if err != nil {
				t.Fatal(err)
			}
			want := Identity{NodeID: "node-" + role.String(), Role: role, Organization: "cluster1",
				NotBefore: clk.Now().Add(-ClockSkew).Truncate(time.Second),
				NotAfter:  clk.Now().Add(DefaultCertValidity).Truncate(time.Second)}
			if diff := cmp.Diff(want, id); diff != "" {
				t.Errorf("identity (-want +got):\n%s", diff)
			}
			leaf := nc.Leaf
			if got := leaf.Subject.OrganizationalUnit; !slices.Equal(got, []string{RoleOU(role)}) {
				t.Errorf("OU = %v, want %s", got, RoleOU(role))
			}
			if !slices.Equal(leaf.DNSNames, []string{RoleOU(role), "node-" + role.String()}) {
				t.Errorf("DNS names = %v", leaf.DNSNames)
			}
			if leaf.IsCA {
				t.Error("node certificate is a CA")
			}
		})
	}
}

func TestIssueIgnoresCSRSubject(t *testing.T) {
	ca := newCA(t, newClock())
	csr, _, err := NewCSR("i-am-a-manager")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.Issue(csr, "n1", api.RoleWorker)
	if err != nil {
		t.Fatal(err)
	}
	id, err := ca.Verify(certPEM)
	if err != nil || id.NodeID != "n1" || id.Role != api.RoleWorker {
		t.Errorf("identity %+v, %v; want n1 as worker", id, err)
	}
}

func TestCertificateExpiry(t *testing.T) {
	clk := newClock()
	ca := newCA(t, clk)
	nc := issue(t, ca, "n1", api.RoleWorker)

	if nc.NeedsRenewal(clk.Now()) {
		t.Error("a new certificate needs renewal")
	}
	clk.Advance(DefaultCertValidity * 2 / 3)
	if !nc.NeedsRenewal(clk.Now()) {
		t.Errorf("at two thirds of its life (renew before %s, now %s) no renewal is due", nc.RenewBefore(), clk.Now())
	}
	if _, err := ca.Verify(nc.CertPEM()); err != nil {
		t.Errorf("still valid: %v", err)
	}
	clk.Advance(DefaultCertValidity/3 + time.Second)
	if _, err := ca.Verify(nc.CertPEM()); !errors.Is(err, ErrCertExpired) {
		t.Errorf("after expiry: err = %v, want ErrCertExpired", err)
	}
}

func TestCertificateNotAfterRoot(t *testing.T) {
	clk := newClock()
	ca, err := NewRootCA(Config{Now: clk.Now, RootValidity: 48 * time.Hour, CertValidity: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(24 * time.Hour)
	nc := issue(t, ca, "n1", api.RoleWorker)
	if nc.Leaf.NotAfter.After(ca.Certificate().NotAfter) {
		t.Errorf("node certificate outlives its CA: %s > %s", nc.Leaf.NotAfter, ca.Certificate().NotAfter)
	}
}

func TestVerifyRejectsOtherCA(t *testing.T) {
	clk := newClock()
	ours, theirs := newCA(t, clk), newCA(t, clk)
	forged := issue(t, theirs, "n1", api.RoleManager)
	if _, err := ours.Verify(forged.CertPEM()); !errors.Is(err, ErrUntrusted) {
		t.Errorf("err = %v, want ErrUntrusted", err)
	}
}

func TestIssueRejects(t *testing.T) {
	ca := newCA(t, newClock())
	good, _, err := NewCSR("n1")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(good)
	tampered := slices.Clone(block.Bytes)
	tampered[len(tampered)-5] ^= 0xff // in the signature
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	edDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "n1"}}, edKey)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		csr  []byte
		id   string
		role api.NodeRole
		want error
		msg  string
	}{
		{name: "not PEM", csr: []byte("hello"), id: "n1", want: ErrInvalidCSR},
		{name: "bad signature", csr: pemEncode("CERTIFICATE REQUEST", tampered), id: "n1", want: ErrInvalidCSR},
		{name: "ed25519 key", csr: pemEncode("CERTIFICATE REQUEST", edDER), id: "n1", want: ErrInvalidCSR},
		{name: "bad node id", csr: good, id: "N1/..", msg: "invalid node id"},
		{name: "empty node id", csr: good, id: "", msg: "invalid node id"},
		{name: "unknown role", csr: good, id: "n1", role: 7, msg: "unknown role"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ca.Issue(tc.csr, tc.id, tc.role)
			if err == nil {
				t.Fatal("issued")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			if tc.msg != "" && !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %v, want it to say %q", err, tc.msg)
			}
		})
	}
}

func TestLoadRootCA(t *testing.T) {
	clk := newClock()
	ca := newCA(t, clk)
	loaded, err := LoadRootCA(Config{Organization: "cluster1", Now: clk.Now}, ca.CertPEM(), ca.KeyPEM())
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Digest() != ca.Digest() {
		t.Error("digest changed across load")
	}
	nc := issue(t, loaded, "n1", api.RoleWorker)
	if _, err := ca.Verify(nc.CertPEM()); err != nil {
		t.Errorf("certificate of the loaded CA does not verify with the original: %v", err)
	}
	other := newCA(t, clk)
	if _, err := LoadRootCA(Config{}, ca.CertPEM(), other.KeyPEM()); err == nil {
		t.Error("loaded a CA with another CA's key")
	}
	if _, err := LoadRootCA(Config{}, nc.CertPEM(), nc.KeyPEM()); !errors.Is(err, ErrInvalidCert) {
		t.Errorf("loading a node certificate as CA: err = %v, want ErrInvalidCert", err)
	}
}

func TestLoadNodeCertKeyMismatch(t *testing.T) {
	ca := newCA(t, newClock())
	a, b := issue(t, ca, "a", api.RoleWorker), issue(t, ca, "b", api.RoleWorker)
	if _, err := LoadNodeCert(a.CertPEM(), b.KeyPEM(), nil); err == nil {
		t.Error("paired a certificate with another node's key")
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero config (defaults): %v", err)
	}
	bad := Config{RootValidity: time.Minute, CertValidity: 48 * time.Hour}
	err := bad.Validate()
	if err == nil || !strings.Contains(err.Error(), "shorter than an hour") || !strings.Contains(err.Error(), "exceeds root validity") {
		t.Errorf("err = %v, want both problems", err)
	}
	if _, err := NewRootCA(bad); err == nil {
		t.Error("NewRootCA accepted an invalid config")
	}
}

func TestKeysNeverPrint(t *testing.T) {
	clk := newClock()
	ca := newCA(t, clk)
	nc := issue(t, ca, "n1", api.RoleWorker)
	for _, s := range []string{ca.String(), nc.String(), ca.LogValue().String(), nc.LogValue().String()} {
		if strings.Contains(s, "PRIVATE KEY") || strings.Contains(s, string(ca.KeyPEM())) {
			t.Errorf("printed a key: %s", s)
		}
	}
}

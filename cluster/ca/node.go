package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// NewCSR creates a P-256 key and a certificate signing request for it, on
// the node that wants a certificate. The key stays on the node; keyPEM is
// PKCS#8 PEM for the node to keep (encrypted) with its certificate.
func NewCSR(nodeID string) (csrPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate node key: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader,
		&x509.CertificateRequest{Subject: pkix.Name{CommonName: nodeID}}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create csr: %w", err)
	}
	keyPEM, err = marshalKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pemEncode("CERTIFICATE REQUEST", der), keyPEM, nil
}

// NodeCert is a node's certificate and key, ready for TLS. It prints and
// logs as its identity, never its key.
type NodeCert struct {
	Leaf     *x509.Certificate
	Identity Identity
	// TLS presents the leaf, the certificates issued with it (the
	// cross-signed root during a rotation) and, when known, the roots, so
	// that a joining node can check the CA against its token's digest.
	TLS     tls.Certificate
	inter   []*x509.Certificate
	certPEM []byte
	keyPEM  []byte
}

// LoadNodeCert pairs a certificate (PEM, as Issue returns it, possibly
// followed by the certificates issued with it) with its key (PEM, as
// NewCSR returns it). ca, when not nil, is sent along in TLS handshakes.
func LoadNodeCert(certPEM, keyPEM []byte, ca *x509.Certificate) (*NodeCert, error) {
	var roots []*x509.Certificate
	if ca != nil {
		roots = append(roots, ca)
	}
	return LoadNodeCertChain(certPEM, keyPEM, roots)
}

// LoadNodeCertChain is LoadNodeCert with the roots the node trusts now
// (two during a rotation), all sent along in TLS handshakes.
func LoadNodeCertChain(certPEM, keyPEM []byte, roots []*x509.Certificate) (*NodeCert, error) {
	certs, err := ParseCertificatesPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("load node certificate: %w", err)
	}
	leaf := certs[0]
	id, err := IdentityOf(leaf)
	if err != nil {
		return nil, fmt.Errorf("load node certificate: %w", err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load node certificate of %s: %w", id.NodeID, err)
	}
	if !key.PublicKey.Equal(leaf.PublicKey) {
		return nil, fmt.Errorf("load node certificate of %s: private key does not match the certificate", id.NodeID)
	}
	inter := certs[1:]
	for _, c := range inter {
		if !c.IsCA {
			return nil, fmt.Errorf("load node certificate of %s: %w: a certificate after the leaf is not a CA", id.NodeID, ErrInvalidCert)
		}
	}
	chain := [][]byte{leaf.Raw}
	for _, c := range inter {
		chain = append(chain, c.Raw)
	}
	for _, r := range roots {
		if !slices.ContainsFunc(certs, func(c *x509.Certificate) bool { return c.Equal(r) }) {
			chain = append(chain, r.Raw)
		}
	}
	return &NodeCert{
		Leaf:     leaf,
		Identity: id,
		TLS:      tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf},
		inter:    inter,
		certPEM:  EncodeCertificatesPEM(certs...),
		keyPEM:   keyPEM,
	}, nil
}

// WithRoots returns the certificate presenting roots after it instead: the
// node's trust changed (a rotation began or ended).
func (c *NodeCert) WithRoots(roots []*x509.Certificate) (*NodeCert, error) {
	return LoadNodeCertChain(c.certPEM, c.keyPEM, roots)
}

// Intermediates are the certificates issued with the leaf (the
// cross-signed root, for a certificate issued during a rotation).
func (c *NodeCert) Intermediates() []*x509.Certificate { return c.inter }

// CertPEM returns the certificate in PEM, with the certificates issued
// with it.
func (c *NodeCert) CertPEM() []byte { return c.certPEM }

// KeyPEM returns the private key (PKCS#8 PEM) for the caller to store
// encrypted. Callers must not log it.
func (c *NodeCert) KeyPEM() []byte { return c.keyPEM }

// RenewBefore is the time by which the node should have a new certificate:
// when a third of the certificate's lifetime remains. Renewing from then
// on leaves time for retries while the managers are unreachable.
func (c *NodeCert) RenewBefore() time.Time { return RenewBefore(c.Leaf) }

// NeedsRenewal reports whether now is at or past RenewBefore.
func (c *NodeCert) NeedsRenewal(now time.Time) bool { return !now.Before(c.RenewBefore()) }

// RenewBefore is NodeCert.RenewBefore for a bare certificate.
func RenewBefore(cert *x509.Certificate) time.Time {
	life := cert.NotAfter.Sub(cert.NotBefore)
	return cert.NotAfter.Add(-life / 3)
}

func (c *NodeCert) String() string {
	return fmt.Sprintf("%s certificate of %s", c.Identity.Role, c.Identity.NodeID)
}

// LogValue logs the certificate's identity and expiry.
func (c *NodeCert) LogValue() slog.Value {
	return slog.GroupValue(slog.String("node", c.Identity.NodeID), slog.String("role", c.Identity.Role.String()),
		slog.Time("not_after", c.Leaf.NotAfter))
}

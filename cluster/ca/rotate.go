package ca

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"time"
)

// Rotating the root CA (gitorc ca rotate, as docker swarm ca --rotate).
//
// The leader makes a new root and has the current root certify the new
// root's key: the cross-signed certificate (CrossSign) carries the new
// root's subject, key and key ID, issued by the current root. Nodes then
// trust both roots, and get certificates of the new root which they
// present with the cross-signed certificate after the leaf: a node that
// still trusts the old root alone (it was down, or has not checked in yet)
// verifies such a chain through it, a node that trusts the new root
// verifies the leaf directly. Once every node shows a certificate of the
// new root, the cluster trusts the new root alone, and certificates of the
// old root are refused.
//
// Roots are made with a path length of zero (no intermediate CAs under
// them), and Go's verifier holds a root to it, so a chain leaf → cross-
// signed → old root does not verify as such. A verifier here instead
// takes as a trust anchor any CA certificate the peer presents that one of
// its roots signed directly (verifyChain): one level, from a root the
// verifier trusts. The cluster's roots sign CA certificates for this and
// nothing else.

// CrossSign returns (PEM) a CA certificate for next's key and subject,
// signed by this root: what lets nodes that trust this root verify
// certificates next issues. It is valid from now until the earlier of the
// two roots' expiry.
func (ca *RootCA) CrossSign(next *x509.Certificate) ([]byte, error) {
	if next == nil || !next.IsCA {
		return nil, fmt.Errorf("cross-sign: %w: not a CA certificate", ErrInvalidCert)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := ca.cfg.Now()
	notAfter := next.NotAfter
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               next.Subject,
		SubjectKeyId:          next.SubjectKeyId,
		NotBefore:             now.Add(-ClockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, next.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("cross-sign %s: %w", DigestOf(next), err)
	}
	return pemEncode("CERTIFICATE", der), nil
}

// SignedBy reports whether root's key signed cert (a leaf, or a
// cross-signed certificate): which root a node's certificate belongs to.
func SignedBy(cert, root *x509.Certificate) bool {
	return cert != nil && root != nil && cert.CheckSignatureFrom(root) == nil
}

// ParseCertificatesPEM parses every certificate of a PEM bundle (a root,
// or the roots a node trusts during a rotation; a leaf and the
// certificates that come with it), refusing other blocks.
func ParseCertificatesPEM(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for rest := bytes.TrimSpace(b); len(rest) > 0; rest = bytes.TrimSpace(rest) {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil || block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%w: certificate %d of the bundle is not a PEM certificate", ErrInvalidCert, len(out)+1)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate %d of the bundle: %w", ErrInvalidCert, len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no PEM certificate", ErrInvalidCert)
	}
	return out, nil
}

// EncodeCertificatesPEM writes certificates as one PEM bundle.
func EncodeCertificatesPEM(certs ...*x509.Certificate) []byte {
	var b []byte
	for _, c := range certs {
		b = append(b, pemEncode("CERTIFICATE", c.Raw)...)
	}
	return b
}

// VerifyNodeChain verifies a node's chain as a peer would (chain[0] the
// leaf, the rest what it presents with it) against roots at now, and
// returns who it names: the check a node makes of another's certificate.
func VerifyNodeChain(chain, roots []*x509.Certificate, now time.Time) (Identity, error) {
	return verifyChain(chain, roots, now, x509.ExtKeyUsageClientAuth)
}

// verifyChain verifies a presented chain (leaf first) against roots: the
// roots, and the CA certificates of the chain that a root signed directly
// (cross-signed during a rotation), are the trust anchors.
func verifyChain(chain, roots []*x509.Certificate, now time.Time, usage x509.ExtKeyUsage) (Identity, error) {
	if len(chain) == 0 {
		return Identity{}, fmt.Errorf("%w: peer presented no certificate", ErrUntrusted)
	}
	anchors := x509.NewCertPool()
	for _, r := range roots {
		anchors.AddCert(r)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
		if crossSigned(c, roots, now) {
			anchors.AddCert(c)
		}
	}
	return verifyNode(chain[0], inter, anchors, now, usage)
}

// crossSigned reports whether c is a CA certificate, valid now, that one
// of roots signed.
func crossSigned(c *x509.Certificate, roots []*x509.Certificate, now time.Time) bool {
	if !c.IsCA || !c.BasicConstraintsValid || now.Before(c.NotBefore) || now.After(c.NotAfter) {
		return false
	}
	for _, r := range roots {
		if r.IsCA && !bytes.Equal(r.Raw, c.Raw) && SignedBy(c, r) {
			return true
		}
	}
	return false
}

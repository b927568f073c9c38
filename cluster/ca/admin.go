package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// Admin certificates are client certificates for the people and programs
// that run the CLI away from a manager: their OU is OUAdmin, never a
// node's role, their CN the admin's name, and their only extended key
// usage client authentication. IdentityOf refuses them (they name no
// role), so they open no node-to-node link; AdminIdentityOf refuses node
// certificates, so a node's certificate opens no admin API.
const (
	OUAdmin = "gitorc-admin"
	// DefaultAdminValidity is an admin certificate's lifetime unless the
	// issuer asks for another.
	DefaultAdminValidity = 90 * 24 * time.Hour
	// MinAdminValidity is the shortest lifetime an admin may ask for.
	MinAdminValidity = time.Hour
	// ALPNAdmin is the protocol the admin API speaks over TLS: HTTP/1.1,
	// so a manager tells it from gRPC (h2) on the same port.
	ALPNAdmin = "http/1.1"
)

// adminNameRe restricts admin names to what reads well in a CN and a
// listing: "alice", "ci-deploy", "ops.bob".
var adminNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// ValidAdminName checks an admin certificate's name.
func ValidAdminName(name string) error {
	if !adminNameRe.MatchString(name) {
		return fmt.Errorf("invalid admin name %q: want letters, digits, '.', '_' and '-', at most 63", name)
	}
	return nil
}

// AdminIdentity is who an admin certificate names.
type AdminIdentity struct {
	Name string
	// Serial is the certificate's serial number in lowercase hex: what a
	// revocation names.
	Serial       string
	Organization string
	NotBefore    time.Time
	NotAfter     time.Time
}

// SerialString is how a certificate's serial number is written in
// AdminIdentity and revocations: lowercase hex, no separators.
func SerialString(cert *x509.Certificate) string { return cert.SerialNumber.Text(16) }

// AdminIdentityOf reads an admin certificate's identity. It does not
// verify the certificate (VerifyAdmin or a verified TLS peer does); it
// fails with ErrNotAdmin for a node's certificate or any other.
func AdminIdentityOf(cert *x509.Certificate) (AdminIdentity, error) {
	id := AdminIdentity{Name: cert.Subject.CommonName, Serial: SerialString(cert),
		NotBefore: cert.NotBefore, NotAfter: cert.NotAfter}
	if len(cert.Subject.Organization) > 0 {
		id.Organization = cert.Subject.Organization[0]
	}
	ous := cert.Subject.OrganizationalUnit
	if len(ous) != 1 || ous[0] != OUAdmin {
		what := "a certificate without the admin OU"
		if nid, err := IdentityOf(cert); err == nil {
			what = fmt.Sprintf("the %s certificate of node %s", nid.Role, nid.NodeID)
		}
		return AdminIdentity{}, fmt.Errorf("%w: %s is not an admin certificate (OU %s)", ErrNotAdmin, what, OUAdmin)
	}
	if err := ValidAdminName(id.Name); err != nil {
		return AdminIdentity{}, fmt.Errorf("%w: %w", ErrInvalidCert, err)
	}
	if !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageClientAuth) || slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		return AdminIdentity{}, fmt.Errorf("%w: admin certificate of %q must be for client authentication only", ErrInvalidCert, id.Name)
	}
	return id, nil
}

// NewAdminCSR creates a P-256 key and a CSR for an admin certificate, on
// the admin's machine: the key never leaves it.
func NewAdminCSR(name string) (csrPEM, keyPEM []byte, err error) {
	if err := ValidAdminName(name); err != nil {
		return nil, nil, err
	}
	return NewCSR(name)
}

// IssueAdmin signs an admin certificate from a CSR (PEM) for name, valid
// for ttl (DefaultAdminValidity when 0, never past the root's expiry).
// As Issue, it takes only the CSR's public key. It returns the
// certificate in PEM and who it names.
func (ca *RootCA) IssueAdmin(csrPEM []byte, name string, ttl time.Duration) ([]byte, AdminIdentity, error) {
	if err := ValidAdminName(name); err != nil {
		return nil, AdminIdentity{}, fmt.Errorf("issue admin certificate: %w", err)
	}
	if ttl == 0 {
		ttl = DefaultAdminValidity
	}
	if ttl < MinAdminValidity {
		return nil, AdminIdentity{}, fmt.Errorf("issue admin certificate for %s: ttl %s is shorter than %s", name, ttl, MinAdminValidity)
	}
	pub, err := csrKey(csrPEM)
	if err != nil {
		return nil, AdminIdentity{}, fmt.Errorf("issue admin certificate for %s: %w", name, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, AdminIdentity{}, err
	}
	now := ca.cfg.Now()
	notAfter := now.Add(ttl)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{CommonName: name, OrganizationalUnit: []string{OUAdmin},
			Organization: []string{ca.cfg.Organization}},
		NotBefore:             now.Add(-ClockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, AdminIdentity{}, fmt.Errorf("issue admin certificate for %s: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, AdminIdentity{}, err
	}
	id, err := AdminIdentityOf(cert)
	if err != nil {
		return nil, AdminIdentity{}, err
	}
	return pemEncode("CERTIFICATE", der), id, nil
}

// csrKey checks a CSR (PEM) and returns its P-256 public key.
func csrKey(csrPEM []byte) (*ecdsa.PublicKey, error) {
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("%w: no PEM certificate request", ErrInvalidCSR)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCSR, err)
	}
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: want an ECDSA P-256 key", ErrInvalidCSR)
	}
	return pub, nil
}

// VerifyAdmin checks that an admin certificate (PEM) was issued by this
// CA, is valid now and is an admin's, and returns who it names.
// Revocation is the caller's business (the store keeps the list).
func (ca *RootCA) VerifyAdmin(certPEM []byte) (AdminIdentity, error) {
	cert, err := ParseCertificatePEM(certPEM)
	if err != nil {
		return AdminIdentity{}, fmt.Errorf("verify: %w", err)
	}
	return verifyAdmin(cert, ca.pool, ca.cfg.Now())
}

func verifyAdmin(cert *x509.Certificate, roots *x509.CertPool, now time.Time) (AdminIdentity, error) {
	if _, err := AdminIdentityOf(cert); err != nil {
		return AdminIdentity{}, err
	}
	_, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		var invalid x509.CertificateInvalidError
		if errors.As(err, &invalid) && invalid.Reason == x509.Expired {
			return AdminIdentity{}, fmt.Errorf("admin certificate of %q: %w (valid %s to %s)", cert.Subject.CommonName, ErrCertExpired,
				cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339))
		}
		return AdminIdentity{}, fmt.Errorf("admin certificate of %q: %w: %w", cert.Subject.CommonName, ErrUntrusted, err)
	}
	return AdminIdentityOf(cert)
}

// AdminPeer returns the admin a server connection's client is, from the
// chain the handshake verified (AdminServer). It fails with ErrNoClientCert
// when the client showed no certificate and with ErrNotAdmin when it
// showed another kind (a node's).
func AdminPeer(cs tls.ConnectionState) (AdminIdentity, error) {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return AdminIdentity{}, ErrNoClientCert
	}
	return AdminIdentityOf(cs.VerifiedChains[0][0])
}

// AdminServer returns a tls.Config for a manager's admin API: TLS 1.3,
// this manager's certificate, HTTP/1.1 by ALPN, and client certificates
// verified against the CA (chain, validity, client usage) when given.
// Whether the client is an admin, and not revoked, is for the HTTP layer
// to check with AdminPeer, so that a refusal comes with a message (401
// without a certificate, 403 for a node's) instead of a bare TLS alert.
func (c TLSConfig) AdminServer() (*tls.Config, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.certificate() == nil {
		return nil, errors.New("tls config: a server needs a certificate")
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{ALPNAdmin},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return &c.certificate().TLS, nil
		},
		ClientAuth: tls.VerifyClientCertIfGiven,
		ClientCAs:  c.pool(),
		Time:       c.now,
	}
	if c.Roots != nil {
		// The roots trusted now, at each handshake: a rotation that ends
		// refuses admin certificates of the old root from then on.
		base := cfg.Clone()
		cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
			now := base.Clone()
			now.ClientCAs = c.pool()
			return now, nil
		}
	}
	return cfg, nil
}

// AdminClientConfig returns a tls.Config for the CLI calling a manager's
// admin API with an admin certificate: the server must chain to the
// pinned CA and be a manager (by identity: node certificates carry no
// addresses, so host names are not checked).
func AdminClientConfig(caCert *x509.Certificate, cert tls.Certificate, now func() time.Time) (*tls.Config, error) {
	if caCert == nil || !caCert.IsCA {
		return nil, fmt.Errorf("tls config: %w: the CA certificate is not a CA", ErrInvalidCert)
	}
	if now == nil {
		now = time.Now
	}
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		NextProtos:         []string{ALPNAdmin},
		InsecureSkipVerify: true, // verified against the pinned CA below
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &cert, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := verifyPeer(cs, []*x509.Certificate{caCert}, now())
			if err != nil {
				return err
			}
			if id.Role != api.RoleManager {
				return fmt.Errorf("peer %s is a %s: %w", id.NodeID, id.Role, ErrRoleNotAllowed)
			}
			return nil
		},
	}, nil
}

// LoadAdminCert pairs an admin certificate with its key (PEM both) and
// checks that it is an admin's; validity is the server's to judge, but
// callers may compare NotAfter with their clock for a clearer message.
func LoadAdminCert(certPEM, keyPEM []byte) (tls.Certificate, AdminIdentity, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, AdminIdentity{}, fmt.Errorf("load admin certificate: %w", err)
	}
	id, err := AdminIdentityOf(pair.Leaf)
	if err != nil {
		return tls.Certificate{}, AdminIdentity{}, fmt.Errorf("load admin certificate: %w", err)
	}
	return pair, id, nil
}

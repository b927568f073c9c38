package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"regexp"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// The OU of a node certificate names the node's role.
const (
	OUManager = "gitorc-manager"
	OUWorker  = "gitorc-worker"
)

// RootCommonName is the CN of a root certificate.
const RootCommonName = "gitorc root CA"

// RoleOU returns the OU that carries role in a certificate.
func RoleOU(role api.NodeRole) string {
	if role == api.RoleManager {
		return OUManager
	}
	return OUWorker
}

// RootCA is the cluster's certificate authority: its certificate and
// private key. It prints and logs as its digest, never its key.
type RootCA struct {
	cfg     Config
	cert    *x509.Certificate
	certPEM []byte
	key     *ecdsa.PrivateKey
	keyPEM  []byte
	digest  Digest
	pool    *x509.CertPool
}

// NewRootCA creates a root CA with a new P-256 key (bootstrap).
func NewRootCA(cfg Config) (*RootCA, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ca config: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ca key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := cfg.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: RootCommonName, Organization: []string{cfg.Organization}},
		NotBefore:             now.Add(-ClockSkew),
		NotAfter:              now.Add(cfg.RootValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create ca certificate: %w", err)
	}
	keyPEM, err := marshalKey(key)
	if err != nil {
		return nil, err
	}
	return LoadRootCA(cfg, pemEncode("CERTIFICATE", der), keyPEM)
}

// LoadRootCA restores a root CA from the PEM its CertPEM and KeyPEM
// returned (a manager's restart, or a new leader).
func LoadRootCA(cfg Config, certPEM, keyPEM []byte) (*RootCA, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ca config: %w", err)
	}
	cert, err := ParseCertificatePEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("load ca: %w", err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("load ca: %w: not a CA certificate", ErrInvalidCert)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load ca: %w", err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New("load ca: private key does not match the certificate")
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &RootCA{cfg: cfg, cert: cert, certPEM: pemEncode("CERTIFICATE", cert.Raw), key: key,
		keyPEM: keyPEM, digest: DigestOf(cert), pool: pool}, nil
}

// Certificate returns the root certificate.
func (ca *RootCA) Certificate() *x509.Certificate { return ca.cert }

// CertPEM returns the root certificate in PEM; it is public.
func (ca *RootCA) CertPEM() []byte { return ca.certPEM }

// KeyPEM returns the CA's private key (PKCS#8 PEM) for the store to
// encrypt at rest. Callers must not log it.
func (ca *RootCA) KeyPEM() []byte { return ca.keyPEM }

// Digest returns the digest join tokens pin.
func (ca *RootCA) Digest() Digest { return ca.digest }

// Pool returns a pool holding only the root certificate.
func (ca *RootCA) Pool() *x509.CertPool { return ca.pool }

func (ca *RootCA) String() string { return "root CA " + ca.digest.String() }

// LogValue logs the CA by digest and expiry, never its key.
func (ca *RootCA) LogValue() slog.Value {
	return slog.GroupValue(slog.String("digest", ca.digest.String()),
		slog.Time("not_after", ca.cert.NotAfter))
}

// nodeIDRe restricts node IDs to what fits a CN and a DNS name.
var nodeIDRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Issue signs a node certificate from a CSR (PEM): the CN is nodeID and
// the OU the role, whatever the CSR asked for; only its public key is
// used. The certificate is valid for Config.CertValidity and holds the DNS
// names of the role's OU and the node ID, so a peer can require "a
// manager" by name. It returns the certificate in PEM.
func (ca *RootCA) Issue(csrPEM []byte, nodeID string, role api.NodeRole) ([]byte, error) {
	if !nodeIDRe.MatchString(nodeID) {
		return nil, fmt.Errorf("issue certificate: invalid node id %q: want lowercase letters, digits and '-'", nodeID)
	}
	if role != api.RoleManager && role != api.RoleWorker {
		return nil, fmt.Errorf("issue certificate for %s: unknown role %s", nodeID, role)
	}
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("issue certificate for %s: %w: no PEM certificate request", nodeID, ErrInvalidCSR)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("issue certificate for %s: %w: %w", nodeID, ErrInvalidCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("issue certificate for %s: %w: %w", nodeID, ErrInvalidCSR, err)
	}
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("issue certificate for %s: %w: want an ECDSA P-256 key", nodeID, ErrInvalidCSR)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := ca.cfg.Now()
	notAfter := now.Add(ca.cfg.CertValidity)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	ou := RoleOU(role)
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{CommonName: nodeID, OrganizationalUnit: []string{ou},
			Organization: []string{ca.cfg.Organization}},
		DNSNames:              []string{ou, nodeID},
		NotBefore:             now.Add(-ClockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("issue certificate for %s: %w", nodeID, err)
	}
	return pemEncode("CERTIFICATE", der), nil
}

// Verify checks that a node certificate (PEM) was issued by this CA and is
// valid now, and returns who it names.
func (ca *RootCA) Verify(certPEM []byte) (Identity, error) {
	cert, err := ParseCertificatePEM(certPEM)
	if err != nil {
		return Identity{}, fmt.Errorf("verify: %w", err)
	}
	return verifyNode(cert, nil, ca.pool, ca.cfg.Now(), x509.ExtKeyUsageClientAuth)
}

// verifyNode verifies cert (with optional intermediates) against roots at
// now, and returns its identity.
func verifyNode(cert *x509.Certificate, inter *x509.CertPool, roots *x509.CertPool, now time.Time, usage x509.ExtKeyUsage) (Identity, error) {
	_, err := cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{usage}})
	if err != nil {
		var invalid x509.CertificateInvalidError
		if errors.As(err, &invalid) && invalid.Reason == x509.Expired {
			return Identity{}, fmt.Errorf("certificate of %q: %w: %w", cert.Subject.CommonName, ErrCertExpired, err)
		}
		return Identity{}, fmt.Errorf("certificate of %q: %w: %w", cert.Subject.CommonName, ErrUntrusted, err)
	}
	return IdentityOf(cert)
}

// Identity is who a node certificate names.
type Identity struct {
	NodeID       string
	Role         api.NodeRole
	Organization string
	NotBefore    time.Time
	NotAfter     time.Time
}

// IdentityOf reads the node ID and role from a certificate. It does not
// verify the certificate: use RootCA.Verify or a verified TLS peer.
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	id := Identity{NodeID: cert.Subject.CommonName, NotBefore: cert.NotBefore, NotAfter: cert.NotAfter}
	if len(cert.Subject.Organization) > 0 {
		id.Organization = cert.Subject.Organization[0]
	}
	if id.NodeID == "" {
		return Identity{}, fmt.Errorf("%w: no node id (CN)", ErrInvalidCert)
	}
	roles := 0
	for _, ou := range cert.Subject.OrganizationalUnit {
		switch ou {
		case OUManager:
			id.Role, roles = api.RoleManager, roles+1
		case OUWorker:
			id.Role, roles = api.RoleWorker, roles+1
		}
	}
	if roles != 1 {
		return Identity{}, fmt.Errorf("%w: certificate of %q must name exactly one role (OU %s or %s)",
			ErrInvalidCert, id.NodeID, OUManager, OUWorker)
	}
	return id, nil
}

// ParseCertificatePEM parses the first certificate of a PEM block list.
func ParseCertificatePEM(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%w: no PEM certificate", ErrInvalidCert)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCert, err)
	}
	return cert, nil
}

func newSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return serial, nil
}

func pemEncode(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func marshalKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal key: %w", err)
	}
	return pemEncode("PRIVATE KEY", der), nil
}

func parseKey(b []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("no PEM PKCS#8 private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		return nil, errors.New("private key is not ECDSA P-256")
	}
	return key, nil
}

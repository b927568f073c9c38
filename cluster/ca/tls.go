package ca

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// TLSConfig describes one side of a mutual TLS link between nodes.
type TLSConfig struct {
	// CA is the cluster's root certificate; peers must chain to it.
	CA *x509.Certificate
	// Roots, if set, returns the roots trusted now, at each handshake: the
	// cluster's root, two during a rotation (rotate.go). It takes
	// precedence over CA.
	Roots func() []*x509.Certificate
	// Cert is this node's certificate. Required for a server; a client
	// without one can only reach servers that allow it (AllowNoClientCert).
	Cert *NodeCert
	// PeerRoles are the roles accepted from the peer; empty accepts any.
	PeerRoles []api.NodeRole
	// AllowNoClientCert lets clients without a certificate connect (the
	// join endpoint). A client certificate, if presented, is still
	// verified. Server only.
	AllowNoClientCert bool
	// Now is the clock for certificate validity; nil is time.Now.
	Now func() time.Time
	// Current, if set, returns this node's certificate at each handshake,
	// so a renewed certificate is used without restarting listeners or
	// redialling by hand. It takes precedence over Cert.
	Current func() *NodeCert
	// Admit, if set, is asked about every verified peer after the role
	// check: a node removed from the cluster keeps a valid certificate
	// until it expires, and Admit refuses it.
	Admit func(Identity) error
}

// certificate is this node's certificate now, nil if it has none.
func (c TLSConfig) certificate() *NodeCert {
	if c.Current != nil {
		return c.Current()
	}
	return c.Cert
}

// Validate checks the fields both sides need.
func (c TLSConfig) Validate() error {
	roots := c.roots()
	if len(roots) == 0 {
		return errors.New("tls config: no CA certificate")
	}
	for _, r := range roots {
		if r == nil || !r.IsCA {
			return errors.New("tls config: CA certificate is not a CA")
		}
	}
	return nil
}

// roots are the certificates trusted now.
func (c TLSConfig) roots() []*x509.Certificate {
	if c.Roots != nil {
		return c.Roots()
	}
	if c.CA == nil {
		return nil
	}
	return []*x509.Certificate{c.CA}
}

func (c TLSConfig) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c TLSConfig) pool() *x509.CertPool {
	p := x509.NewCertPool()
	for _, r := range c.roots() {
		p.AddCert(r)
	}
	return p
}

func (c TLSConfig) checkRole(id Identity) error {
	if len(c.PeerRoles) > 0 && !slices.Contains(c.PeerRoles, id.Role) {
		return fmt.Errorf("peer %s is a %s: %w", id.NodeID, id.Role, ErrRoleNotAllowed)
	}
	if c.Admit != nil {
		return c.Admit(id)
	}
	return nil
}

// Server returns a tls.Config for a node's listener: TLS 1.3, this node's
// certificate, client certificates required (unless AllowNoClientCert)
// and verified against the roots trusted now (through a cross-signed root
// the client presents, during a rotation: verifyChain), and the client's
// role checked. The verification is this package's, in
// VerifyConnection: Go's would hold the old root to its path length, so
// ConnectionState.VerifiedChains stays empty (PeerIdentity reads the
// verified peer all the same).
func (c TLSConfig) Server() (*tls.Config, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.certificate() == nil {
		return nil, errors.New("tls config: a server needs a certificate")
	}
	auth := tls.RequireAnyClientCert
	if c.AllowNoClientCert {
		auth = tls.RequestClientCert
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return &c.certificate().TLS, nil
		},
		ClientAuth: auth,
		Time:       c.now,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return nil // no client certificate, allowed above
			}
			id, err := verifyChain(cs.PeerCertificates, c.roots(), c.now(), x509.ExtKeyUsageClientAuth)
			if err != nil {
				return err
			}
			return c.checkRole(id)
		},
	}, nil
}

// Client returns a tls.Config for dialing another node: TLS 1.3, this
// node's certificate if any, and the server verified against the pinned
// CA (by identity, not host name: node certificates carry no addresses),
// with its role checked.
func (c TLSConfig) Client() (*tls.Config, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The chain is verified in VerifyConnection against the pinned
		// CA; host names mean nothing for nodes.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := verifyPeer(cs, c.roots(), c.now())
			if err != nil {
				return err
			}
			return c.checkRole(id)
		},
	}
	if c.certificate() != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &c.certificate().TLS, nil
		}
	}
	return cfg, nil
}

// JoinClientConfig returns a tls.Config for a node that joins with a
// token and knows nothing else: the server must present a CA whose digest
// the token pins, and a certificate of a manager signed by it.
func JoinClientConfig(t Token, now func() time.Time) *tls.Config {
	if now == nil {
		now = time.Now
	}
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // verified against the pinned CA below
		VerifyConnection: func(cs tls.ConnectionState) error {
			var ca *x509.Certificate
			for _, c := range cs.PeerCertificates[min(1, len(cs.PeerCertificates)):] {
				if t.verifyCA(c) == nil {
					ca = c
					break
				}
			}
			if ca == nil {
				return fmt.Errorf("join: %w: the server presented no CA with digest %s", ErrTokenCAMismatch, t.Digest)
			}
			id, err := verifyPeer(cs, []*x509.Certificate{ca}, now())
			if err != nil {
				return fmt.Errorf("join: %w", err)
			}
			if id.Role != api.RoleManager {
				return fmt.Errorf("join: peer %s is a %s: %w", id.NodeID, id.Role, ErrRoleNotAllowed)
			}
			return nil
		},
	}
}

// verifyPeer verifies the server's chain of a client connection.
func verifyPeer(cs tls.ConnectionState, roots []*x509.Certificate, now time.Time) (Identity, error) {
	return verifyChain(cs.PeerCertificates, roots, now, x509.ExtKeyUsageServerAuth)
}

// PeerIdentity returns who the peer of a connection is, for connections
// set up with this package's configs only: their VerifyConnection
// verified the peer's chain (on either side, VerifiedChains is left empty
// but for the admin server's Go-verified chains). It fails when the peer
// presented no certificate.
func PeerIdentity(cs tls.ConnectionState) (Identity, error) {
	switch {
	case len(cs.VerifiedChains) > 0:
		return IdentityOf(cs.VerifiedChains[0][0])
	case len(cs.PeerCertificates) > 0:
		return IdentityOf(cs.PeerCertificates[0])
	}
	return Identity{}, fmt.Errorf("%w: peer presented no certificate", ErrUntrusted)
}

// RequireRole returns ErrRoleNotAllowed (wrapped) unless the connection's
// peer has one of roles: the check a manager-only call makes.
func RequireRole(cs tls.ConnectionState, roles ...api.NodeRole) (Identity, error) {
	id, err := PeerIdentity(cs)
	if err != nil {
		return Identity{}, err
	}
	if !slices.Contains(roles, id.Role) {
		return id, fmt.Errorf("peer %s is a %s: %w", id.NodeID, id.Role, ErrRoleNotAllowed)
	}
	return id, nil
}

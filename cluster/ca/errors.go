package ca

import "errors"

var (
	// ErrInvalidToken is returned for a join token that does not parse.
	ErrInvalidToken = errors.New("invalid join token")
	// ErrTokenCAMismatch is returned when a token's CA digest is not this
	// cluster's: the token belongs to another cluster, or the CA a joining
	// node was shown is not the one the token pins.
	ErrTokenCAMismatch = errors.New("join token does not match the cluster's CA")
	// ErrTokenRejected is returned for a well-formed token of this cluster
	// whose secret is not current (wrong, or rotated away).
	ErrTokenRejected = errors.New("join token rejected")
	// ErrInvalidCSR is returned for a certificate signing request that does
	// not parse, is not self-signed correctly, or has an unsupported key.
	ErrInvalidCSR = errors.New("invalid certificate signing request")
	// ErrInvalidCert is returned for a certificate that is not a gitorc
	// node certificate (no node ID or role), or does not parse.
	ErrInvalidCert = errors.New("invalid certificate")
	// ErrCertExpired is returned for a certificate outside its validity.
	ErrCertExpired = errors.New("certificate expired or not yet valid")
	// ErrUntrusted is returned for a certificate not signed by the CA.
	ErrUntrusted = errors.New("certificate not signed by the cluster's CA")
	// ErrRoleNotAllowed is returned when a peer's role may not make the call.
	ErrRoleNotAllowed = errors.New("role not allowed")
	// ErrNotAdmin is returned for a certificate that is not an admin
	// certificate (a node's, say) where only an admin's opens the door.
	ErrNotAdmin = errors.New("not an admin certificate")
	// ErrNoClientCert is returned when a client showed no certificate.
	ErrNoClientCert = errors.New("no client certificate")
)

package ca

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"fmt"
	"log/slog"
	"math/big"
	"strings"

	"github.com/gitorc/gitorc/cluster/api"
)

// A join token is "GTRC-1-<digest>-<secret>": the version, the SHA-256 of
// the CA certificate's DER and a 128-bit secret, both in lowercase base 36
// of fixed width (50 and 25 characters), as swarmkit's SWMTKN does.
const (
	TokenPrefix  = "GTRC"
	TokenVersion = "1"

	digestLen    = sha256.Size
	digestChars  = 50
	secretLen    = 16
	secretChars  = 25
	redactedText = "[redacted]"
)

// Digest is the SHA-256 of a CA certificate's DER.
type Digest [digestLen]byte

// DigestOf returns the digest of a CA certificate.
func DigestOf(cert *x509.Certificate) Digest { return sha256.Sum256(cert.Raw) }

// String returns the digest as it appears in a token.
func (d Digest) String() string { return encode36(d[:], digestChars) }

// ParseDigest parses what Digest.String returns.
func ParseDigest(s string) (Digest, error) {
	var d Digest
	if err := decode36(s, digestChars, d[:]); err != nil {
		return d, fmt.Errorf("ca digest: %w", err)
	}
	return d, nil
}

// Token is a parsed join token. It prints and logs with its secret
// redacted; Encode returns the whole token.
type Token struct {
	Digest Digest
	secret [secretLen]byte
}

// NewToken returns a token with a new random secret for the CA digest d.
func NewToken(d Digest) (Token, error) {
	t := Token{Digest: d}
	if _, err := rand.Read(t.secret[:]); err != nil {
		return Token{}, fmt.Errorf("token secret: %w", err)
	}
	return t, nil
}

// ParseToken parses "GTRC-1-<digest>-<secret>".
func ParseToken(s string) (Token, error) {
	parts := strings.Split(strings.TrimSpace(s), "-")
	if len(parts) != 4 || parts[0] != TokenPrefix {
		return Token{}, fmt.Errorf("%w: want %s-%s-<ca digest>-<secret>", ErrInvalidToken, TokenPrefix, TokenVersion)
	}
	if parts[1] != TokenVersion {
		return Token{}, fmt.Errorf("%w: version %q is not supported, want %s", ErrInvalidToken, parts[1], TokenVersion)
	}
	var t Token
	if err := decode36(parts[2], digestChars, t.Digest[:]); err != nil {
		return Token{}, fmt.Errorf("%w: ca digest: %w", ErrInvalidToken, err)
	}
	if err := decode36(parts[3], secretChars, t.secret[:]); err != nil {
		return Token{}, fmt.Errorf("%w: secret: %w", ErrInvalidToken, err)
	}
	return t, nil
}

// Encode returns the whole token, secret included: for the operator
// (gitorc token) and for the store, never for a log.
func (t Token) Encode() string {
	return TokenPrefix + "-" + TokenVersion + "-" + t.Digest.String() + "-" + encode36(t.secret[:], secretChars)
}

// String returns the token with its secret redacted.
func (t Token) String() string {
	return TokenPrefix + "-" + TokenVersion + "-" + t.Digest.String() + "-" + redactedText
}

// GoString redacts the secret too (%#v).
func (t Token) GoString() string { return t.String() }

// LogValue logs the token with its secret redacted.
func (t Token) LogValue() slog.Value { return slog.StringValue(t.String()) }

// IsZero reports whether t is the zero Token.
func (t Token) IsZero() bool { return t == Token{} }

// VerifyCA checks that a CA certificate (PEM) presented to a joining node
// is the one the token pins, and returns it.
func (t Token) VerifyCA(caPEM []byte) (*x509.Certificate, error) {
	cert, err := ParseCertificatePEM(caPEM)
	if err != nil {
		return nil, fmt.Errorf("pin ca: %w", err)
	}
	if err := t.verifyCA(cert); err != nil {
		return nil, err
	}
	return cert, nil
}

func (t Token) verifyCA(cert *x509.Certificate) error {
	d := DigestOf(cert)
	if subtle.ConstantTimeCompare(d[:], t.Digest[:]) != 1 {
		return fmt.Errorf("pin ca: %w: presented CA has digest %s, token pins %s", ErrTokenCAMismatch, d, t.Digest)
	}
	if !cert.IsCA {
		return fmt.Errorf("pin ca: %w: not a CA certificate", ErrInvalidCert)
	}
	return nil
}

// JoinTokens are a cluster's current worker and manager tokens. The store
// keeps them (as Encode strings); the leader checks joins against them.
type JoinTokens struct {
	Worker  Token
	Manager Token
}

// NewJoinTokens returns a worker and a manager token for the CA digest d,
// with independent secrets.
func NewJoinTokens(d Digest) (JoinTokens, error) {
	w, err := NewToken(d)
	if err != nil {
		return JoinTokens{}, err
	}
	m, err := NewToken(d)
	if err != nil {
		return JoinTokens{}, err
	}
	return JoinTokens{Worker: w, Manager: m}, nil
}

// Token returns the token that admits role.
func (j JoinTokens) Token(role api.NodeRole) Token {
	if role == api.RoleManager {
		return j.Manager
	}
	return j.Worker
}

// Rotate gives role's token a new secret; the old token stops working.
func (j *JoinTokens) Rotate(role api.NodeRole) error {
	t, err := NewToken(j.Token(role).Digest)
	if err != nil {
		return fmt.Errorf("rotate %s token: %w", role, err)
	}
	if role == api.RoleManager {
		j.Manager = t
	} else {
		j.Worker = t
	}
	return nil
}

// Check parses a presented token and returns the role it admits. Both
// secrets are compared in constant time, whatever the outcome.
func (j JoinTokens) Check(presented string) (api.NodeRole, error) {
	t, err := ParseToken(presented)
	if err != nil {
		return 0, err
	}
	if subtle.ConstantTimeCompare(t.Digest[:], j.Worker.Digest[:]) != 1 {
		return 0, fmt.Errorf("%w: the token is for another cluster", ErrTokenCAMismatch)
	}
	worker := !j.Worker.IsZero() && subtle.ConstantTimeCompare(t.secret[:], j.Worker.secret[:]) == 1
	manager := !j.Manager.IsZero() && subtle.ConstantTimeCompare(t.secret[:], j.Manager.secret[:]) == 1
	switch {
	case manager:
		return api.RoleManager, nil
	case worker:
		return api.RoleWorker, nil
	}
	return 0, fmt.Errorf("%w: the secret is wrong or was rotated", ErrTokenRejected)
}

// String redacts both secrets.
func (j JoinTokens) String() string {
	return "worker " + j.Worker.String() + ", manager " + j.Manager.String()
}

// LogValue redacts both secrets.
func (j JoinTokens) LogValue() slog.Value { return slog.StringValue(j.String()) }

// encode36 writes b as a big-endian number in base 36, left-padded to width.
func encode36(b []byte, width int) string {
	s := new(big.Int).SetBytes(b).Text(36)
	if len(s) < width {
		s = strings.Repeat("0", width-len(s)) + s
	}
	return s
}

// decode36 reads what encode36 wrote into out (len(out) bytes).
func decode36(s string, width int, out []byte) error {
	if len(s) != width {
		return fmt.Errorf("%d characters, want %d", len(s), width)
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z') {
			return fmt.Errorf("character %q is not in [0-9a-z]", c)
		}
	}
	n, ok := new(big.Int).SetString(s, 36)
	if !ok || n.BitLen() > 8*len(out) {
		return fmt.Errorf("value does not fit in %d bytes", len(out))
	}
	n.FillBytes(out)
	return nil
}

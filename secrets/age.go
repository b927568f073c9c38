package secrets

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/gitorc/gitorc/cluster/api"
)

// MaxSecretSize bounds a secret's plaintext, as Swarm bounds secrets (500 KiB).
const MaxSecretSize = 500 << 10

// HashPrefix starts every DataHash: a keyed hash, so that a hash shown in
// a diff cannot be matched against a dictionary of likely passwords.
const HashPrefix = "hmac-sha256:"

var (
	// ErrWrongRecipient: the file was sealed for another cluster's recipient.
	ErrWrongRecipient = errors.New("sealed for another recipient")
	// ErrNotSealed: the input is not an age file.
	ErrNotSealed = errors.New("not an age-sealed file")
	// ErrTooLarge: the plaintext exceeds MaxSecretSize.
	ErrTooLarge = fmt.Errorf("secret larger than %d bytes", MaxSecretSize)
)

// Identity is the cluster's private age (X25519) identity. It prints and
// logs as its public recipient only.
type Identity struct {
	id      *age.X25519Identity
	hashKey []byte
}

// GenerateIdentity creates a new cluster identity.
func GenerateIdentity() (*Identity, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, fmt.Errorf("generate identity: %w", err)
	}
	return newIdentity(id), nil
}

// ParseIdentity reads an identity from its secret key ("AGE-SECRET-KEY-1…").
func ParseIdentity(secret api.SecretBytes) (*Identity, error) {
	id, err := age.ParseX25519Identity(strings.TrimSpace(string(secret.Reveal())))
	if err != nil {
		return nil, errors.New("parse identity: not an age X25519 secret key")
	}
	return newIdentity(id), nil
}

func newIdentity(id *age.X25519Identity) *Identity {
	k := sha256.Sum256([]byte("gitorc secret hash key\x00" + id.String()))
	return &Identity{id: id, hashKey: k[:]}
}

// Recipient is the public key that seals secrets for this identity.
func (i *Identity) Recipient() string { return i.id.Recipient().String() }

// SecretKey returns the private key, for the store to keep encrypted.
func (i *Identity) SecretKey() api.SecretBytes { return api.SecretBytes(i.id.String()) }

func (i *Identity) String() string       { return "identity for " + i.Recipient() }
func (i *Identity) LogValue() slog.Value { return slog.StringValue(i.String()) }

// Hash is the keyed content hash of a secret's plaintext, as shown in plans
// and diffs. It is stable for a cluster and reveals nothing without its key.
func (i *Identity) Hash(plaintext api.SecretBytes) string {
	m := hmac.New(sha256.New, i.hashKey)
	m.Write(plaintext.Reveal())
	return HashPrefix + hex.EncodeToString(m.Sum(nil))
}

// Open decrypts a sealed file, armored or binary.
func (i *Identity) Open(sealed []byte) (api.SecretBytes, error) {
	var r io.Reader = bytes.NewReader(sealed)
	trimmed := bytes.TrimSpace(sealed)
	switch {
	case bytes.HasPrefix(trimmed, []byte(armor.Header)):
		r = armor.NewReader(bytes.NewReader(trimmed))
	case bytes.HasPrefix(sealed, []byte("age-encryption.org/")):
	default:
		return nil, ErrNotSealed
	}
	dec, err := age.Decrypt(r, i.id)
	if err != nil {
		var noMatch *age.NoIdentityMatchError
		if errors.As(err, &noMatch) {
			return nil, fmt.Errorf("%w: reseal it with this cluster's recipient %s (gitorc seal)", ErrWrongRecipient, i.Recipient())
		}
		return nil, fmt.Errorf("open sealed file: %w", err)
	}
	out, err := io.ReadAll(io.LimitReader(dec, MaxSecretSize+1))
	if err != nil {
		return nil, fmt.Errorf("open sealed file: %w", err)
	}
	if len(out) > MaxSecretSize {
		return nil, ErrTooLarge
	}
	return api.SecretBytes(out), nil
}

// Seal encrypts plaintext for a recipient as an armored age file, the form
// committed to Git.
func Seal(recipient string, plaintext api.SecretBytes) ([]byte, error) {
	if len(plaintext) > MaxSecretSize {
		return nil, ErrTooLarge
	}
	rcpt, err := ParseRecipient(recipient)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	a := armor.NewWriter(&buf)
	w, err := age.Encrypt(a, rcpt)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	if _, err := w.Write(plaintext.Reveal()); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	if err := a.Close(); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return buf.Bytes(), nil
}

// ParseRecipient checks a recipient ("age1…").
func ParseRecipient(s string) (*age.X25519Recipient, error) {
	r, err := age.ParseX25519Recipient(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("invalid recipient %q: want an age X25519 recipient (age1…)", strings.TrimSpace(s))
	}
	return r, nil
}

// ReadRecipientFile reads the first recipient of a recipients file such as
// .gitorc/recipient.txt ('#' comments and blank lines allowed).
func ReadRecipientFile(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if _, err := ParseRecipient(line); err != nil {
			return "", err
		}
		return line, nil
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", errors.New("no recipient in file")
}

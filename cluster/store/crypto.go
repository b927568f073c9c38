package store

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/nacl/secretbox"
)

const (
	keyFileName     = "datakey.json"
	unlockKeyPrefix = "GTRC-UNLOCK-1-"
	nonceSize       = 24
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// DataKey is the cluster's symmetric data key: secret payloads are sealed
// with it (NaCl secretbox) before they are proposed. Every manager holds
// the same key; it never prints.
type DataKey [32]byte

// NewDataKey returns a random data key.
func NewDataKey() (*DataKey, error) {
	var k DataKey
	if _, err := rand.Read(k[:]); err != nil {
		return nil, fmt.Errorf("generate data key: %w", err)
	}
	return &k, nil
}

func (k *DataKey) String() string       { return "[redacted]" }
func (k *DataKey) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// UnlockKey seals the data key file of an autolocked manager. The operator
// keeps its Encode()d form; it never prints otherwise.
type UnlockKey [32]byte

// NewUnlockKey returns a random unlock key.
func NewUnlockKey() (*UnlockKey, error) {
	var k UnlockKey
	if _, err := rand.Read(k[:]); err != nil {
		return nil, fmt.Errorf("generate unlock key: %w", err)
	}
	return &k, nil
}

// Encode returns the form an operator stores and types back:
// "GTRC-UNLOCK-1-<base32>".
func (k *UnlockKey) Encode() string { return unlockKeyPrefix + b32.EncodeToString(k[:]) }

func (k *UnlockKey) String() string       { return "[redacted]" }
func (k *UnlockKey) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// ParseUnlockKey parses an Encode()d unlock key.
func ParseUnlockKey(s string) (*UnlockKey, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, unlockKeyPrefix) {
		return nil, fmt.Errorf("parse unlock key: must start with %q", unlockKeyPrefix)
	}
	b, err := b32.DecodeString(strings.TrimPrefix(s, unlockKeyPrefix))
	if err != nil || len(b) != 32 {
		return nil, errors.New("parse unlock key: malformed key")
	}
	var k UnlockKey
	copy(k[:], b)
	return &k, nil
}

// seal encrypts plaintext as nonce || secretbox(plaintext).
func seal(key *[32]byte, plaintext []byte) ([]byte, error) {
	var nonce [nonceSize]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return secretbox.Seal(nonce[:], plaintext, &nonce, key), nil
}

// open reverses seal.
func open(key *[32]byte, sealed []byte) ([]byte, error) {
	if len(sealed) < nonceSize+secretbox.Overhead {
		return nil, ErrDecrypt
	}
	var nonce [nonceSize]byte
	copy(nonce[:], sealed[:nonceSize])
	out, ok := secretbox.Open(nil, sealed[nonceSize:], &nonce, key)
	if !ok {
		return nil, ErrDecrypt
	}
	return out, nil
}

// keyFile is datakey.json: the data key, plain or sealed by an unlock key.
type keyFile struct {
	Version int    `json:"version"`
	Sealed  bool   `json:"sealed"`
	Key     []byte `json:"key"`
}

// loadKeyFile reads the key file; it returns fs.ErrNotExist when absent.
func loadKeyFile(dir string) (*keyFile, error) {
	b, err := os.ReadFile(filepath.Join(dir, keyFileName))
	if err != nil {
		return nil, err
	}
	var kf keyFile
	if err := json.Unmarshal(b, &kf); err != nil {
		return nil, fmt.Errorf("read %s: %w", keyFileName, err)
	}
	return &kf, nil
}

// unwrap returns the data key held by the file, opening it with unlock
// when the file is sealed. A sealed file and no unlock key give ErrLocked.
func (kf *keyFile) unwrap(unlock *UnlockKey) (*DataKey, error) {
	raw := kf.Key
	if kf.Sealed {
		if unlock == nil {
			return nil, ErrLocked
		}
		var err error
		if raw, err = open((*[32]byte)(unlock), kf.Key); err != nil {
			return nil, ErrBadUnlockKey
		}
	}
	if len(raw) != 32 {
		return nil, fmt.Errorf("read %s: key has %d bytes, want 32", keyFileName, len(raw))
	}
	var k DataKey
	copy(k[:], raw)
	return &k, nil
}

// writeKeyFile stores key, sealed by unlock when it is not nil, atomically.
func writeKeyFile(dir string, key *DataKey, unlock *UnlockKey) error {
	kf := keyFile{Version: 1, Key: key[:]}
	if unlock != nil {
		sealed, err := seal((*[32]byte)(unlock), key[:])
		if err != nil {
			return err
		}
		kf.Sealed, kf.Key = true, sealed
	}
	b, err := json.Marshal(kf)
	if err != nil {
		return fmt.Errorf("write %s: %w", keyFileName, err)
	}
	tmp := filepath.Join(dir, keyFileName+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", keyFileName, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, keyFileName)); err != nil {
		return fmt.Errorf("write %s: %w", keyFileName, err)
	}
	return nil
}

// SaveDataKey keeps key as the data key of the store that will be opened
// in dataDir, unless that directory holds one already. A manager given the
// key (joining, or promoted) saves it before it records its new role, so
// that a restart in between opens its store instead of finding a manager
// role without a key (ErrNoDataKey). Under autolock, unlock seals it: the
// key is never on disk in clear.
func SaveDataKey(dataDir string, key *DataKey, unlock *UnlockKey) error {
	if _, err := loadKeyFile(dataDir); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("write %s: %w", keyFileName, err)
	}
	return writeKeyFile(dataDir, key, unlock)
}

// KeyFileOpens reports whether the data key file in dataDir is sealed by
// unlock (autolock): for checks that a rotation reached a manager.
func KeyFileOpens(dataDir string, unlock *UnlockKey) (bool, error) {
	kf, err := loadKeyFile(dataDir)
	if err != nil {
		return false, err
	}
	if !kf.Sealed {
		return false, nil
	}
	if _, err := kf.unwrap(unlock); errors.Is(err, ErrBadUnlockKey) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return true, nil
}

// resolveDataKey finds this manager's data key: from its key file, or from
// the config for a new data dir (generated on bootstrap). It returns
// ErrLocked when the file is sealed and no unlock key is configured.
func resolveDataKey(cfg *Config) (*DataKey, error) {
	kf, err := loadKeyFile(cfg.DataDir)
	switch {
	case err == nil:
		key, err := kf.unwrap(cfg.UnlockKey)
		if err != nil {
			return nil, err
		}
		if !kf.Sealed && cfg.UnlockKey != nil { // autolock turned on
			if err := writeKeyFile(cfg.DataDir, key, cfg.UnlockKey); err != nil {
				return nil, err
			}
		}
		return key, nil
	case errors.Is(err, fs.ErrNotExist):
	default:
		return nil, err
	}
	key := cfg.DataKey
	if key == nil {
		if !cfg.Bootstrap {
			return nil, ErrNoDataKey
		}
		if key, err = NewDataKey(); err != nil {
			return nil, err
		}
	}
	if err := writeKeyFile(cfg.DataDir, key, cfg.UnlockKey); err != nil {
		return nil, err
	}
	return key, nil
}

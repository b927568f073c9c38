package wg

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// loadOrCreateKey reads the private key at path (base64, as wg genkey
// writes it), or makes a new one there (0600) when the file does not
// exist. A key file others may read is made 0600. Errors never quote the
// file's content.
func loadOrCreateKey(path string, log *slog.Logger) (wgtypes.Key, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		k, perr := wgtypes.ParseKey(strings.TrimSpace(string(b)))
		clear(b)
		if perr != nil {
			return wgtypes.Key{}, fmt.Errorf("key file %s: not a base64 WireGuard key", path)
		}
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(path, 0o600); err != nil {
				return wgtypes.Key{}, fmt.Errorf("key file %s: %w", path, err)
			}
			log.Warn("key file was readable by others; made it 0600", "file", path, "mode", fi.Mode().Perm().String())
		}
		return k, nil
	case !errors.Is(err, os.ErrNotExist):
		return wgtypes.Key{}, fmt.Errorf("key file: %w", err)
	}
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("generate key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return wgtypes.Key{}, fmt.Errorf("key file: %w", err)
	}
	// O_EXCL: two processes racing to create the key cannot both win and
	// end with different keys.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return loadOrCreateKey(path, log)
	}
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("key file: %w", err)
	}
	_, err = f.WriteString(k.String() + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return wgtypes.Key{}, fmt.Errorf("key file %s: %w", path, err)
	}
	log.Info("created a WireGuard key", "file", path)
	return k, nil
}

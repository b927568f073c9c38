package wg

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "wireguard.key")
	d1, err := New(Config{KeyFile: path})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Fatalf("key file mode %v, want 0600", m)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// As wg genkey writes it: base64 and a newline.
	if !bytes.HasSuffix(b, []byte("\n")) || len(b) != 45 {
		t.Fatalf("key file holds %d bytes, want 44 of base64 and a newline", len(b))
	}
	priv, err := wgtypes.ParseKey(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := d1.PublicKey(), priv.PublicKey().String(); got != want {
		t.Fatalf("public key %s, want %s (derived from the file's private key)", got, want)
	}
	d2, err := New(Config{KeyFile: path})
	if err != nil {
		t.Fatal(err)
	}
	if d2.PublicKey() != d1.PublicKey() {
		t.Fatal("a second New made another key")
	}

	// A key written by someone else (wg genkey) is used as it is; one
	// readable by others is made 0600.
	other, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	path2 := filepath.Join(t.TempDir(), "wg.key")
	if err := os.WriteFile(path2, []byte(other.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d3, err := New(Config{KeyFile: path2})
	if err != nil {
		t.Fatal(err)
	}
	if d3.PublicKey() != other.PublicKey().String() {
		t.Fatal("the existing key was not used")
	}
	if fi, _ := os.Stat(path2); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v after New, want 0600", fi.Mode().Perm())
	}

	// A file that is not a key is an error that does not quote it.
	path3 := filepath.Join(t.TempDir(), "bad.key")
	if err := os.WriteFile(path3, []byte("secret-not-a-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{KeyFile: path3}); err == nil || strings.Contains(err.Error(), "secret-not-a-key") {
		t.Fatalf("New with a bad key file: %v", err)
	}
}

// The private key shows nowhere: not in the Device however it is
// formatted, not in its logs.
func TestKeyRedacted(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	path := filepath.Join(t.TempDir(), "wg.key")
	d, err := New(Config{KeyFile: path, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	priv, _ := wgtypes.ParseKey(strings.TrimSpace(string(b)))
	log.Info("device", "d", d, "key", d.key)
	shown := []string{fmt.Sprintf("%v %+v %#v %s %x", d, d, d, d.key, d.key), logs.String()}
	for _, s := range shown {
		if strings.Contains(s, priv.String()) || strings.Contains(s, hexKey(priv)) {
			t.Fatalf("private key shown: %s", s)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{KeyFile: "/k"}, true},
		{"no key file", Config{}, false},
		{"long name", Config{KeyFile: "/k", Name: "sixteen-chars-xx"}, false},
		{"slash", Config{KeyFile: "/k", Name: "a/b"}, false},
		{"small mtu", Config{KeyFile: "/k", MTU: 500}, false},
		{"mtu", Config{KeyFile: "/k", MTU: 1280}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

package secrets

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
)

func TestSealOpenRoundTrip(t *testing.T) {
	id, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	for _, plain := range []string{"", "hunter2", strings.Repeat("x", MaxSecretSize)} {
		sealed, err := Seal(id.Recipient(), api.SecretBytes(plain))
		if err != nil {
			t.Fatal(err)
		}
		if plain != "" && bytes.Contains(sealed, []byte(plain)) {
			t.Fatal("plaintext visible in the sealed file")
		}
		got, err := id.Open(sealed)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		if string(got.Reveal()) != plain {
			t.Errorf("round trip lost data (%d bytes in, %d out)", len(plain), len(got))
		}
	}
}

func TestOpenErrors(t *testing.T) {
	id, _ := GenerateIdentity()
	other, _ := GenerateIdentity()
	sealed, _ := Seal(other.Recipient(), api.SecretBytes("s3cret"))
	if _, err := id.Open(sealed); !errors.Is(err, ErrWrongRecipient) || !strings.Contains(err.Error(), id.Recipient()) {
		t.Errorf("wrong recipient: %v", err)
	}
	if _, err := id.Open([]byte("password=hunter2\n")); !errors.Is(err, ErrNotSealed) {
		t.Errorf("plaintext file: %v", err)
	}
	mine, _ := Seal(id.Recipient(), api.SecretBytes("s3cret"))
	tampered := bytes.Replace(mine, []byte("\n"), []byte("\nAA"), 3)
	if _, err := id.Open(tampered); err == nil {
		t.Error("tampered file opened")
	}
	if _, err := Seal(id.Recipient(), make(api.SecretBytes, MaxSecretSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("too large: %v", err)
	}
	if _, err := Seal("age1notarecipient", api.SecretBytes("x")); err == nil || !strings.Contains(err.Error(), "invalid recipient") {
		t.Errorf("bad recipient: %v", err)
	}
}

func TestIdentityRoundTripAndRedaction(t *testing.T) {
	id, _ := GenerateIdentity()
	again, err := ParseIdentity(id.SecretKey())
	if err != nil {
		t.Fatal(err)
	}
	if again.Recipient() != id.Recipient() {
		t.Error("parsed identity has another recipient")
	}
	secret := string(id.SecretKey().Reveal())
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("loaded", "identity", id, "key", id.SecretKey())
	for _, out := range []string{fmt.Sprint(id), fmt.Sprintf("%+v", id), logs.String(), fmt.Sprint(id.SecretKey())} {
		if strings.Contains(out, secret) || strings.Contains(out, "AGE-SECRET-KEY") {
			t.Errorf("secret key leaked: %s", out)
		}
	}
	if _, err := ParseIdentity(api.SecretBytes("AGE-SECRET-KEY-1NOPE")); err == nil || strings.Contains(err.Error(), "NOPE") {
		t.Errorf("bad key: %v (must not echo the key)", err)
	}
}

func TestHashIsKeyedAndStable(t *testing.T) {
	a, _ := GenerateIdentity()
	b, _ := GenerateIdentity()
	h1, h2 := a.Hash(api.SecretBytes("pw")), a.Hash(api.SecretBytes("pw"))
	if h1 != h2 || !strings.HasPrefix(h1, HashPrefix) {
		t.Errorf("unstable or unprefixed: %s %s", h1, h2)
	}
	if a.Hash(api.SecretBytes("pw")) == b.Hash(api.SecretBytes("pw")) {
		t.Error("two clusters hash a secret alike: the hash is not keyed")
	}
	if a.Hash(api.SecretBytes("pw")) == a.Hash(api.SecretBytes("pw2")) {
		t.Error("different secrets hash alike")
	}
}

func TestReadRecipientFile(t *testing.T) {
	id, _ := GenerateIdentity()
	got, err := ReadRecipientFile(strings.NewReader("# cluster recipient\n\n" + id.Recipient() + "\n"))
	if err != nil || got != id.Recipient() {
		t.Errorf("got %q %v", got, err)
	}
	if _, err := ReadRecipientFile(strings.NewReader("# nothing\n")); err == nil {
		t.Error("empty file accepted")
	}
}

// FuzzOpen: any input opens or fails cleanly, never panics.
func FuzzOpen(f *testing.F) {
	id, _ := GenerateIdentity()
	sealed, _ := Seal(id.Recipient(), api.SecretBytes("seed"))
	f.Add(sealed)
	f.Add([]byte("age-encryption.org/v1\n-> X25519 abc\n"))
	f.Add([]byte("-----BEGIN AGE ENCRYPTED FILE-----\n-----END AGE ENCRYPTED FILE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = id.Open(data)
	})
}

package ca

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
)

func TestTokenRoundTrip(t *testing.T) {
	ca := newCA(t, newClock())
	tok, err := NewToken(ca.Digest())
	if err != nil {
		t.Fatal(err)
	}
	s := tok.Encode()
	if !strings.HasPrefix(s, "GTRC-1-") || len(s) != len("GTRC-1-")+digestChars+1+secretChars {
		t.Fatalf("token %q has the wrong shape", s)
	}
	back, err := ParseToken(s)
	if err != nil {
		t.Fatal(err)
	}
	if back != tok {
		t.Error("token changed across Encode/Parse")
	}
	if d, err := ParseDigest(ca.Digest().String()); err != nil || d != ca.Digest() {
		t.Errorf("digest round trip: %v", err)
	}
}

func TestTokenNeverPrintsSecret(t *testing.T) {
	ca := newCA(t, newClock())
	tokens, err := NewJoinTokens(ca.Digest())
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{tokens.Worker.Encode()[len(tokens.Worker.Encode())-secretChars:],
		tokens.Manager.Encode()[len(tokens.Manager.Encode())-secretChars:]}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("tokens", "join", tokens, "worker", tokens.Worker)
	outputs := []string{
		fmt.Sprint(tokens.Worker), fmt.Sprintf("%v %+v %#v", tokens.Worker, tokens.Worker, tokens.Worker),
		fmt.Sprint(tokens), fmt.Sprintf("%+v", tokens), logged.String(),
	}
	for _, out := range outputs {
		for _, sec := range secrets {
			if strings.Contains(out, sec) {
				t.Errorf("secret printed: %s", out)
			}
		}
		if !strings.Contains(out, redactedText) {
			t.Errorf("no redaction mark in %s", out)
		}
	}
}

func TestJoinTokensCheckAndRotate(t *testing.T) {
	ca := newCA(t, newClock())
	j, err := NewJoinTokens(ca.Digest())
	if err != nil {
		t.Fatal(err)
	}
	if j.Worker == j.Manager {
		t.Fatal("worker and manager tokens share a secret")
	}
	for _, role := range []api.NodeRole{api.RoleWorker, api.RoleManager} {
		got, err := j.Check(j.Token(role).Encode())
		if err != nil || got != role {
			t.Errorf("%s token: role %s, err %v", role, got, err)
		}
	}

	oldWorker, oldManager := j.Worker.Encode(), j.Manager.Encode()
	if err := j.Rotate(api.RoleWorker); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Check(oldWorker); !errors.Is(err, ErrTokenRejected) {
		t.Errorf("rotated worker token: err = %v, want ErrTokenRejected", err)
	}
	if role, err := j.Check(j.Worker.Encode()); err != nil || role != api.RoleWorker {
		t.Errorf("new worker token: %s, %v", role, err)
	}
	if role, err := j.Check(oldManager); err != nil || role != api.RoleManager {
		t.Errorf("manager token after a worker rotation: %s, %v", role, err)
	}
	if j.Worker.Digest != ca.Digest() {
		t.Error("rotation changed the digest")
	}
	if err := j.Rotate(api.RoleManager); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Check(oldManager); !errors.Is(err, ErrTokenRejected) {
		t.Errorf("rotated manager token: err = %v, want ErrTokenRejected", err)
	}

	other, _ := NewJoinTokens(newCA(t, newClock()).Digest())
	if _, err := j.Check(other.Worker.Encode()); !errors.Is(err, ErrTokenCAMismatch) {
		t.Errorf("another cluster's token: err = %v, want ErrTokenCAMismatch", err)
	}
}

func TestTokenTamper(t *testing.T) {
	ca := newCA(t, newClock())
	j, _ := NewJoinTokens(ca.Digest())
	s := j.Worker.Encode()
	// Change every character of digest and secret in turn: never admitted.
	for i := len("GTRC-1-"); i < len(s); i++ {
		if s[i] == '-' {
			continue
		}
		c := byte('a')
		if s[i] == 'a' {
			c = 'b'
		}
		bad := s[:i] + string(c) + s[i+1:]
		role, err := j.Check(bad)
		if err == nil {
			t.Fatalf("tampered token %s admitted as %s", bad, role)
		}
		inDigest := i < len("GTRC-1-")+digestChars
		switch {
		case inDigest && !errors.Is(err, ErrTokenCAMismatch) && !errors.Is(err, ErrInvalidToken):
			t.Errorf("char %d: err = %v, want a CA mismatch", i, err)
		case !inDigest && !errors.Is(err, ErrTokenRejected) && !errors.Is(err, ErrInvalidToken):
			t.Errorf("char %d: err = %v, want rejected", i, err)
		}
	}
}

func TestParseTokenErrors(t *testing.T) {
	ca := newCA(t, newClock())
	tok, _ := NewToken(ca.Digest())
	good := tok.Encode()
	parts := strings.Split(good, "-")
	tests := []struct{ name, in, msg string }{
		{"empty", "", "want GTRC-1-<ca digest>-<secret>"},
		{"swarm token", "SWMTKN-1-" + parts[2] + "-" + parts[3], "want GTRC-1-"},
		{"missing secret", strings.Join(parts[:3], "-"), "want GTRC-1-"},
		{"version 2", "GTRC-2-" + parts[2] + "-" + parts[3], `version "2" is not supported`},
		{"short digest", "GTRC-1-" + parts[2][1:] + "-" + parts[3], "ca digest: 49 characters, want 50"},
		{"upper case", "GTRC-1-" + strings.ToUpper(parts[2]) + "-" + parts[3], "is not in [0-9a-z]"},
		{"overflow", "GTRC-1-" + strings.Repeat("z", digestChars) + "-" + parts[3], "does not fit in 32 bytes"},
		{"long secret", "GTRC-1-" + parts[2] + "-" + parts[3] + "0", "secret: 26 characters, want 25"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseToken(tc.in)
			if !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %v, want ErrInvalidToken saying %q", err, tc.msg)
			}
		})
	}
	if _, err := ParseToken("  " + good + "\n"); err != nil {
		t.Errorf("surrounding space: %v", err)
	}
}

func TestTokenPinsCA(t *testing.T) {
	clk := newClock()
	ours, theirs := newCA(t, clk), newCA(t, clk)
	tok, _ := NewToken(ours.Digest())
	cert, err := tok.VerifyCA(ours.CertPEM())
	if err != nil || cert.Subject.CommonName != RootCommonName {
		t.Fatalf("our CA: %v", err)
	}
	if _, err := tok.VerifyCA(theirs.CertPEM()); !errors.Is(err, ErrTokenCAMismatch) {
		t.Errorf("another CA: err = %v, want ErrTokenCAMismatch", err)
	}
	if _, err := tok.VerifyCA([]byte("junk")); !errors.Is(err, ErrInvalidCert) {
		t.Errorf("junk: err = %v, want ErrInvalidCert", err)
	}
}

func FuzzParseToken(f *testing.F) {
	f.Add("GTRC-1-" + strings.Repeat("0", digestChars) + "-" + strings.Repeat("0", secretChars))
	f.Add("GTRC-1--")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			return
		}
		again, err := ParseToken(tok.Encode())
		if err != nil || again != tok {
			t.Fatalf("re-parse of %q: %v", tok.Encode(), err)
		}
	})
}

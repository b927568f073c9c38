package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/e2e/gitopsenv"
)

// The remote CLI from another host (a worker's netns, not the manager's):
// with an admin certificate, status, ps, diff and sync --wait work over
// the manager's API port; a worker's node certificate, no certificate
// and a revoked admin certificate are refused.
func TestRemoteCLIFromAnotherHost_Root(t *testing.T) {
	requireE2E(t)
	bin := buildGitorc(t)
	env := gitopsenv.Start(t, gitopsenv.Options{Hosts: 2, Bin: bin, Interval: time.Hour, Secret: "e2e-hook"})
	certs := t.TempDir()
	admin := filepath.Join(certs, "alice")
	if out, err := env.Gitorc("admin-cert", "issue", "alice", "--out", admin); err != nil {
		t.Fatalf("admin-cert issue: %v\n%s", err, out)
	}
	// The worker's own node certificate, as an admin directory.
	node := filepath.Join(certs, "worker")
	if err := os.MkdirAll(node, 0o700); err != nil {
		t.Fatal(err)
	}
	for from, to := range map[string]string{"ca.pem": "ca.pem", "node.pem": "cert.pem", "node-key.pem": "key.pem"} {
		b, err := os.ReadFile(filepath.Join(env.DataDir(2), "pki", from))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(node, to), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	host := "tcp://" + env.Net.Host(1).Addr.String() + ":4270"
	h2 := env.Net.Host(2)
	remote := func(tlsDir string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		full := append([]string{"--host", host}, args...)
		if tlsDir != "" {
			full = append([]string{"--tls-dir", tlsDir}, full...)
		}
		// GITORC_CONFIG: no contexts of this machine's user.
		cmd := h2.Command(ctx, bin, full...)
		cmd.Env = append(os.Environ(), "GITORC_CONFIG="+certs, "GITORC_SOCKET=", "GITORC_HOST=", "GITORC_TLS_DIR=")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	rev, err := env.Repo.Commit("main", "web", map[string]string{"stacks/app/compose.yaml": env.Stack("web", 1, "1")})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := remote(admin, "diff"); err == nil || !strings.Contains(out, "+ service app_web (create)") {
		t.Errorf("remote diff (exit 1: changes): %v\n%s", err, out)
	}
	if out, err := remote(admin, "sync", "--wait", "--timeout", "90s"); err != nil || !strings.Contains(out, "synced") {
		t.Fatalf("remote sync --wait: %v\n%s", err, out)
	}
	if out, err := remote(admin, "status"); err != nil || !strings.Contains(out, rev[:12]) {
		t.Errorf("remote status: %v\n%s", err, out)
	}
	env.WaitFor("app_web running", 60*time.Second, func() bool {
		out, err := remote(admin, "ps", "app_web")
		return err == nil && strings.Contains(out, "running")
	})
	if out, err := remote(node, "status"); err == nil || !strings.Contains(out, "not an admin certificate") {
		t.Errorf("a worker's node certificate: %v\n%s", err, out)
	}
	if out, err := remote("", "status"); err == nil || !strings.Contains(out, "admin certificate") {
		t.Errorf("no certificate: %v\n%s", err, out)
	}
	if out, err := env.Gitorc("admin-cert", "revoke", "alice"); err != nil {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	if out, err := remote(admin, "status"); err == nil || !strings.Contains(out, "revoked") {
		t.Errorf("a revoked certificate: %v\n%s", err, out)
	}
}

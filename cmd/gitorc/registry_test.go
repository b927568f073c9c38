package main

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runStdin is run with standard input.

func TestRegistryLogin(t *testing.T) {
	serveAPI(t)
	out, errOut, code := runIn(t, "pw-one\n", "registry", "login", "registry.example.com:5000", "-u", "ci", "--password-stdin")
	if code != 0 || !strings.Contains(out, "login for registry.example.com:5000 set (user ci)") {
		t.Fatalf("login: exit %d\n%s%s", code, out, errOut)
	}
	// A docker config.json: auth and username/password entries.
	cfg := filepath.Join(t.TempDir(), "config.json")
	auth := base64.StdEncoding.EncodeToString([]byte("robot:pw-two"))
	if err := os.WriteFile(cfg, []byte(`{"auths": {"https://index.docker.io/v1/": {"auth": "`+auth+`"},
		"ghcr.example.com": {"username": "bot", "password": "pw-three"}, "helper.example.com": {}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "registry", "login", "--docker-config", cfg)
	out = mustRun(t, "registry", "ls")
	var got []string
	for _, r := range rows(out) {
		got = append(got, strings.Join(r[:2], " "))
	}
	if want := "HOST USER|ghcr.example.com bot|registry-1.docker.io robot|registry.example.com:5000 ci"; strings.Join(got, "|") != want {
		t.Errorf("registry ls: %q, want %q", got, want)
	}
	if strings.Contains(out, "pw-") || len(rows(out)) != 4 {
		t.Errorf("registry ls:\n%s", out)
	}
	if out := mustRun(t, "registry", "ls", "-o", "json"); strings.Contains(out, "pw-") || !strings.Contains(out, `"host": "ghcr.example.com"`) {
		t.Errorf("registry ls -o json:\n%s", out)
	}
	mustFail(t, "never on the command line", "registry", "login", "registry.example.com:5000", "-u", "ci")
	mustRun(t, "registry", "logout", "ghcr.example.com")
	mustFail(t, "no login for registry ghcr.example.com", "registry", "logout", "ghcr.example.com")
	if out := mustRun(t, "registry", "ls"); len(rows(out)) != 3 {
		t.Errorf("after logout:\n%s", out)
	}
}

// External secrets, configs and networks: created for stacks that
// declare them external, listed, refused when they exist or when a stack
// owns or a service uses them, removed.
func TestExternalObjects(t *testing.T) {
	serveAPI(t)
	out, errOut, code := runIn(t, "s3cret-content", "secret", "create", "shared_token", "-")
	if code != 0 || !strings.Contains(out, "secret shared_token created (hmac-sha256:") {
		t.Fatalf("secret create: exit %d\n%s%s", code, out, errOut)
	}
	if _, errOut, _ := runIn(t, "x", "secret", "create", "shared_token", "-"); !strings.Contains(errOut, "secret shared_token exists") {
		t.Errorf("second create: %s", errOut)
	}
	out = mustRun(t, "secret", "ls")
	if !strings.Contains(out, "shared_token") || !strings.Contains(out, "current, external") || strings.Contains(out, "s3cret") {
		t.Errorf("secret ls:\n%s", out)
	}
	if out := mustRun(t, "secret", "inspect", "shared_token"); strings.Contains(out, "s3cret") || !strings.Contains(out, `"external": true`) {
		t.Errorf("secret inspect:\n%s", out)
	}
	mustRun(t, "secret", "rm", "shared_token")
	mustFail(t, `secret "shared_token" not found`, "secret", "rm", "shared_token")

	cfg := filepath.Join(t.TempDir(), "motd")
	if err := os.WriteFile(cfg, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "config", "create", "shared_motd", cfg)
	if out := mustRun(t, "config", "ls", "-o", "json"); !strings.Contains(out, `"name": "shared_motd"`) {
		t.Errorf("config ls:\n%s", out)
	}
	mustRun(t, "config", "rm", "shared_motd")

	mustRun(t, "network", "create", "shared_net", "--internal")
	if out := mustRun(t, "network", "ls"); !strings.Contains(out, "shared_net") {
		t.Errorf("network ls:\n%s", out)
	}
	mustFail(t, "network shop_default has services [shop_mon shop_web]: remove them from it first", "network", "rm", "shop_default")
	mustFail(t, `"10.64.9/24" is not a CIDR subnet`, "network", "create", "clash", "--subnet", "10.64.9/24")
	mustRun(t, "network", "rm", "shared_net")
}

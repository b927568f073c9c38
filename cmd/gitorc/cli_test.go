package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/secrets"
)

// run executes the CLI in-process and returns stdout, stderr and the exit code.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return runIn(t, "", args...)
}

// runIn runs the CLI as run does, with stdin as its standard input.
func runIn(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := newRootCmd()
	var out, errw bytes.Buffer
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&out)
	cmd.SetErr(&errw)
	cmd.SetArgs(args)
	err := cmd.Execute()
	code := 0
	if err != nil {
		code = 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		if err.Error() != "" {
			errw.WriteString(err.Error())
		}
	}
	return out.String(), errw.String(), code
}

func TestValidateExamplesAndFixtures(t *testing.T) {
	fixtures, _ := filepath.Glob("../../compose/testdata/seed-stacks/*.yml")
	args := append([]string{"validate", "../../examples"}, fixtures...)
	out, errOut, code := run(t, args...)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"ok: stack shop (3 services", "ok: stack web (1 services", "ok: stack tutorial-myapp (3 services"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestValidateListsEveryProblemAndFails(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("services:\n  web:\n    image: x\n    deploy:\n      replcas: 3\n  db:\n    image: y\n    deploy:\n      mode: sometimes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := run(t, "validate", bad)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{`bad.yaml:5: services.web.deploy: unknown key "replcas"`, `bad.yaml:9: services.db.deploy.mode: invalid deploy mode "sometimes"`} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if !strings.Contains(out, "2 problem(s)") {
		t.Errorf("stdout: %s", out)
	}
	jsonOut, _, code := run(t, "validate", "-o", "json", bad)
	var reports []validateReport
	if err := json.Unmarshal([]byte(jsonOut), &reports); err != nil || code != 1 {
		t.Fatalf("json: %v exit %d\n%s", err, code, jsonOut)
	}
	if len(reports) != 1 || reports[0].Valid || len(reports[0].Errors) != 2 {
		t.Errorf("report %+v", reports)
	}
	if _, _, code := run(t, "validate", filepath.Join(dir, "missing.yaml")); code != 1 {
		t.Errorf("missing file: exit %d, want 1", code)
	}
}

func TestStackConfigShowsDefaults(t *testing.T) {
	out, errOut, code := run(t, "stack", "config", "--output", "json", "--name", "myapp", "../../compose/testdata/seed-stacks/tutorial-myapp.yml")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var bundles []api.Bundle
	if err := json.Unmarshal([]byte(out), &bundles); err != nil {
		t.Fatal(err)
	}
	if len(bundles) != 1 || len(bundles[0].Services) != 3 {
		t.Fatalf("bundles: %+v", bundles)
	}
	web := bundles[0].Services[2]
	if web.Name != "myapp_web" || web.Replicas != 3 || web.Update.Monitor.String() != "5s" || web.Task.Resources.Limits.Memory.String() != "256MiB" {
		t.Errorf("web: %+v", web)
	}
	yamlOut, _, code := run(t, "stack", "config", "--name", "myapp", "../../compose/testdata/seed-stacks/tutorial-myapp.yml")
	for _, want := range []string{"name: myapp_web", "replicas: 3", "failure_action: pause", "memory: 256MiB", "cpus: 0.5",
		"- node.role==worker", "target: /run/secrets/db_password", "condition: on-failure", "max_attempts: 3"} {
		if !strings.Contains(yamlOut, want) {
			t.Errorf("yaml lacks %q", want)
		}
	}
	if code != 0 {
		t.Errorf("yaml exit %d", code)
	}
}

func TestVersion(t *testing.T) {
	out, _, code := run(t, "version")
	if code != 0 || !strings.HasPrefix(out, "gitorc dev ") {
		t.Errorf("version: %q exit %d", out, code)
	}
}

func TestSealFindsTheRepositoryRecipient(t *testing.T) {
	id, err := secrets.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	if err := os.MkdirAll(filepath.Join(repo, ".gitorc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, recipientFile), []byte(id.Recipient()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(repo, "stacks/db"), 0o755); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(t.TempDir(), "pw.txt")
	if err := os.WriteFile(plain, []byte("hunter2"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(repo, "stacks/db/pw.age")
	stdout, stderr, code := run(t, "seal", plain, "-o", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if strings.Contains(stdout+stderr, "hunter2") {
		t.Fatal("plaintext echoed")
	}
	sealed, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := id.Open(sealed)
	if err != nil || string(got.Reveal()) != "hunter2" {
		t.Fatalf("open: %v", err)
	}
	if _, stderr, code := run(t, "seal", plain, "-o", filepath.Join(t.TempDir(), "x.age")); code == 0 || !strings.Contains(stderr, "no recipient") {
		t.Errorf("outside a repository: exit %d %s", code, stderr)
	}
}

package containerd

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/gitorc/gitorc/cluster/api"
)

func TestNextHealth(t *testing.T) {
	type probe struct {
		ok      bool
		inStart bool
	}
	tests := []struct {
		name   string
		probes []probe
		want   health
	}{
		{"first success is healthy", []probe{{ok: true}}, health{State: api.HealthHealthy}},
		{"failures in the start period do not count", []probe{{false, true}, {false, true}, {false, true}},
			health{State: api.HealthStarting}},
		{"retries failures make it unhealthy", []probe{{ok: true}, {}, {}, {}},
			health{State: api.HealthUnhealthy, Failures: 3, Message: "unhealthy: 3 consecutive failures: out"}},
		{"below retries stays healthy", []probe{{ok: true}, {}, {}},
			health{State: api.HealthHealthy, Failures: 2}},
		{"after a success in the start period failures count", []probe{{true, true}, {false, true}, {false, true}, {false, true}},
			health{State: api.HealthUnhealthy, Failures: 3, Message: "unhealthy: 3 consecutive failures: out"}},
		{"a success resets", []probe{{ok: true}, {}, {}, {ok: true}, {}}, health{State: api.HealthHealthy, Failures: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := health{State: api.HealthStarting}
			for _, p := range tc.probes {
				h = nextHealth(h, p.ok, " out\n", p.inStart, 3)
			}
			if diff := cmp.Diff(tc.want, h); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestProcessArgs(t *testing.T) {
	ic := ocispec.ImageConfig{Entrypoint: []string{"/entry"}, Cmd: []string{"serve"}}
	tests := []struct {
		name    string
		c       api.ContainerSpec
		want    []string
		wantErr bool
	}{
		{"image defaults", api.ContainerSpec{}, []string{"/entry", "serve"}, false},
		{"args replace cmd", api.ContainerSpec{Args: []string{"check"}}, []string{"/entry", "check"}, false},
		{"command replaces entrypoint and drops cmd", api.ContainerSpec{Command: []string{"sh"}}, []string{"sh"}, false},
		{"both", api.ContainerSpec{Command: []string{"sh"}, Args: []string{"-c", "x"}}, []string{"sh", "-c", "x"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := processArgs(ic, &tc.c)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if _, err := processArgs(ocispec.ImageConfig{}, &api.ContainerSpec{}); !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("no command: err = %v, want ErrInvalidSpec", err)
	}
}

func TestReadAuthFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config.json")
	// "alice:pw" and a token login.
	content := `{"auths": {
		"https://index.docker.io/v1/": {"auth": "YWxpY2U6cHc="},
		"registry.example.com:5000": {"username": "bob", "password": "x"},
		"ghcr.io": {"identitytoken": "tok"}}}`
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := readAuthFile(p)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]credential{
		"registry-1.docker.io":      {"alice", "pw"},
		"registry.example.com:5000": {"bob", "x"},
		"ghcr.io":                   {"", "tok"},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(credential{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if m, err := readAuthFile(filepath.Join(t.TempDir(), "missing.json")); err != nil || len(m) != 0 {
		t.Errorf("missing file: %v %v", m, err)
	}
}

func TestCleanRuntimeErr(t *testing.T) {
	err := errors.New(`failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: "/nope": stat /nope: no such file or directory: unknown`)
	got := cleanRuntimeErr(err)
	if got.Error() != `exec: "/nope": stat /nope: no such file or directory` || !errors.Is(got, err) {
		t.Errorf("got %q", got)
	}
}

func TestRotate(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "t.log")
	for i, content := range []string{"first\n", "second\n", "third\n"} {
		if err := os.WriteFile(p, []byte(strings.Repeat(content, 10)), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := rotate(p, 10, 2); err != nil {
			t.Fatalf("rotate %d: %v", i, err)
		}
	}
	read := func(name string) string { b, _ := os.ReadFile(filepath.Join(dir, name)); return string(b) }
	if read("t.log") != "" || !strings.HasPrefix(read("t.log.1"), "third") || !strings.HasPrefix(read("t.log.2"), "second") {
		t.Errorf("after rotation: log %q, .1 %q, .2 %q", read("t.log"), read("t.log.1"), read("t.log.2"))
	}
	if _, err := os.Stat(filepath.Join(dir, "t.log.3")); err == nil {
		t.Errorf("kept more than 2 rotated files")
	}
}

func TestLastLines(t *testing.T) {
	if got := string(lastLines([]byte("a\nb\nc\n"), 2)); got != "b\nc\n" {
		t.Errorf("got %q", got)
	}
	if got := lastLines([]byte("a\n"), 0); got != nil {
		t.Errorf("got %q", got)
	}
}

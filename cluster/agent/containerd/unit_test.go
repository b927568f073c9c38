package containerd

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/gitorc/gitorc/cluster/agent/containerd/imagetest"
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

func TestImageHealthcheck(t *testing.T) {
	// As docker build writes a HEALTHCHECK into the image's config.
	docker := `{"architecture":"amd64","os":"linux","config":{"Cmd":["nginx"],` +
		`"Healthcheck":{"Test":["CMD-SHELL","curl -f http://localhost/ || exit 1"],` +
		`"Interval":30000000000,"Timeout":3000000000,"StartPeriod":5000000000,"StartInterval":1000000000,"Retries":4}},` +
		`"rootfs":{"type":"layers","diff_ids":[]}}`
	tests := []struct {
		name    string
		config  string
		want    *api.Healthcheck
		wantErr string
	}{
		{"docker's", docker, &api.Healthcheck{Test: []string{"CMD-SHELL", "curl -f http://localhost/ || exit 1"},
			Interval: api.Duration(30 * time.Second), Timeout: api.Duration(3 * time.Second),
			StartPeriod: api.Duration(5 * time.Second), StartInterval: api.Duration(time.Second), Retries: 4}, ""},
		{"exec form, timings left to the defaults", `{"config":{"Healthcheck":{"Test":["CMD","/bin/check","-q"]}}}`,
			&api.Healthcheck{Test: []string{"CMD", "/bin/check", "-q"}}, ""},
		{"none", `{"config":{"Cmd":["sh"]}}`, nil, ""},
		{"no config at all", `{"architecture":"amd64"}`, nil, ""},
		{"HEALTHCHECK NONE", `{"config":{"Healthcheck":{"Test":["NONE"]}}}`, nil, ""},
		{"empty test inherits nothing", `{"config":{"Healthcheck":{"Interval":1000}}}`, nil, ""},
		{"unknown test", `{"config":{"Healthcheck":{"Test":["RUN","x"]}}}`, nil,
			`healthcheck: test must start with CMD, CMD-SHELL or NONE, not "RUN"`},
		{"no command", `{"config":{"Healthcheck":{"Test":["CMD-SHELL"]}}}`, nil, "healthcheck: CMD-SHELL needs a command"},
		{"negative", `{"config":{"Healthcheck":{"Test":["CMD","true"],"Retries":-1}}}`, nil,
			"healthcheck: durations and retries must not be negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := imageHealthcheck([]byte(tc.config))
			if gotErr := fmt.Sprint(err); err != nil || tc.wantErr != "" {
				if gotErr != tc.wantErr {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// imagetest writes a healthcheck where Docker does, and the executor
// reads it back.
func TestImageHealthcheckFromImagetest(t *testing.T) {
	img, err := imagetest.Build(ocispec.ImageConfig{Cmd: []string{"sleep", "1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if hc, err := imageHealthcheck(img.Config); err != nil || hc != nil {
		t.Fatalf("plain image: healthcheck %+v, err %v", hc, err)
	}
	withHC, err := img.WithHealthcheck(imagetest.Healthcheck{Test: []string{"CMD", "true"},
		Interval: time.Second, StartPeriod: time.Minute, StartInterval: 100 * time.Millisecond, Retries: 2})
	if err != nil {
		t.Fatal(err)
	}
	got, err := imageHealthcheck(withHC.Config)
	if err != nil {
		t.Fatal(err)
	}
	want := &api.Healthcheck{Test: []string{"CMD", "true"}, Interval: api.Duration(time.Second),
		StartPeriod: api.Duration(time.Minute), StartInterval: api.Duration(100 * time.Millisecond), Retries: 2}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(withHC.Config, &cfg); err != nil || cfg.Config.Cmd[0] != "sleep" {
		t.Errorf("the rest of the config changed: %+v, %v", cfg.Config, err)
	}
	if withHC.ConfigDesc.Digest == img.ConfigDesc.Digest || !strings.Contains(string(withHC.Manifest), withHC.ConfigDesc.Digest.String()) {
		t.Errorf("manifest does not name the new config")
	}
}

func TestTaskHealthcheck(t *testing.T) {
	spec := &api.Healthcheck{Test: []string{"CMD", "spec"}}
	image := &api.Healthcheck{Test: []string{"CMD", "image"}}
	disabled := &api.Healthcheck{Test: []string{"NONE"}}
	tests := []struct {
		name        string
		spec, image *api.Healthcheck
		want        *api.Healthcheck
	}{
		{"neither", nil, nil, nil},
		{"the spec's", spec, nil, spec},
		{"the spec's wins over the image's", spec, image, spec},
		{"the image's when the spec has none", nil, image, image},
		{"disable switches the image's off", disabled, image, nil},
		{"disable without an image healthcheck", disabled, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := taskHealthcheck(tc.spec, tc.image); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
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

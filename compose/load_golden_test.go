package compose

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/golden files")

// goldenCases are the stack files whose normalized form is kept in
// testdata/golden: the seed fixtures and the project's examples.
func goldenCases(t *testing.T) map[string]Source {
	t.Helper()
	cases := map[string]Source{}
	fixtures, err := filepath.Glob("testdata/seed-stacks/*.yml")
	if err != nil || len(fixtures) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range fixtures {
		name := strings.TrimSuffix(filepath.Base(f), ".yml")
		cases["seed-"+name] = Source{Name: name, Files: []string{f}, Root: "testdata"}
	}
	examples, err := filepath.Glob("../examples/*/compose.yaml")
	if err != nil || len(examples) < 2 {
		t.Fatalf("want at least two examples, found %v (%v)", examples, err)
	}
	for _, f := range examples {
		name := filepath.Base(filepath.Dir(f))
		cases["example-"+name] = Source{Name: name, Files: []string{f}, Root: ".."}
	}
	return cases
}

type golden struct {
	Bundle   api.Bundle `json:"bundle"`
	Warnings []string   `json:"warnings,omitempty"`
}

func TestGolden(t *testing.T) {
	for name, src := range goldenCases(t) {
		t.Run(name, func(t *testing.T) {
			st, err := Load(context.Background(), src)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			g := golden{Bundle: st.Bundle}
			for _, w := range st.Warnings {
				g.Warnings = append(g.Warnings, w.String())
			}
			got, err := json.MarshalIndent(g, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", "golden", name+".json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./compose -update to create it)", err)
			}
			if !bytes.Equal(want, got) {
				t.Errorf("normalized %s differs from %s (-want +got):\n%s", name, path, cmp.Diff(string(want), string(got)))
			}
		})
	}
}

// The values the tutorial's stack file sets, and the Swarm defaults it
// leaves out, as gitorc must read them.
func TestTutorialStackAsSwarmReadsIt(t *testing.T) {
	st, err := Load(context.Background(), Source{Name: "myapp", Files: []string{"testdata/seed-stacks/tutorial-myapp.yml"}})
	if err != nil {
		t.Fatal(err)
	}
	svc := map[string]api.ServiceSpec{}
	for _, s := range st.Bundle.Services {
		svc[s.Name] = s
	}
	web, apiSvc, db := svc["myapp_web"], svc["myapp_api"], svc["myapp_db"]
	wantUpdate := api.UpdateConfig{Parallelism: 1, Delay: api.Duration(10 * time.Second), FailureAction: api.FailurePause,
		Monitor: api.Duration(5 * time.Second), Order: api.OrderStopFirst}
	if diff := cmp.Diff(wantUpdate, web.Update); diff != "" {
		t.Errorf("web update_config (-want +got):\n%s", diff)
	}
	wantRestart := api.RestartPolicy{Condition: api.RestartOnFailure, Delay: api.Duration(5 * time.Second), MaxAttempts: 3}
	if diff := cmp.Diff(wantRestart, web.Task.Restart); diff != "" {
		t.Errorf("web restart_policy (-want +got):\n%s", diff)
	}
	if web.Mode != api.ModeReplicated || web.Replicas != 3 {
		t.Errorf("web: %s x%d, want replicated x3", web.Mode, web.Replicas)
	}
	if l := web.Task.Resources.Limits; l.NanoCPUs != 500_000_000 || l.Memory != 256<<20 {
		t.Errorf("web limits: cpus %s memory %s, want 0.5 and 256MiB", l.NanoCPUs, l.Memory)
	}
	if got := apiSvc.Task.Placement.Constraints; len(got) != 1 || got[0].String() != "node.role==worker" {
		t.Errorf("api constraints %v, want [node.role==worker]", got)
	}
	wantSecret := []api.FileRef{{Name: "db_password", Target: "/run/secrets/db_password", UID: "0", GID: "0", Mode: 0o444}}
	if diff := cmp.Diff(wantSecret, db.Task.Container.Secrets); diff != "" {
		t.Errorf("db secrets (-want +got):\n%s", diff)
	}
	if len(st.Bundle.Secrets) != 1 || !st.Bundle.Secrets[0].External {
		t.Errorf("secrets %+v, want the external db_password", st.Bundle.Secrets)
	}
	if web.Endpoint.Ports[0] != (api.PortConfig{Protocol: api.ProtocolTCP, Target: 80, Published: 80, Mode: api.PublishIngress}) {
		t.Errorf("web port %+v, want 80:80/tcp ingress", web.Endpoint.Ports[0])
	}
}

// Loading is deterministic: the same files give byte-identical specs.
func TestLoadIsDeterministic(t *testing.T) {
	src := Source{Name: "shop", Files: []string{"../examples/shop/compose.yaml"}}
	var first []byte
	for i := 0; i < 5; i++ {
		st, err := Load(context.Background(), src)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(st.Bundle)
		if first == nil {
			first = b
		} else if !bytes.Equal(first, b) {
			t.Fatalf("load %d differs from the first", i)
		}
	}
}

// FuzzLoad feeds arbitrary bytes to the loader: it must return a stack or
// an error, never panic, and every diagnostic must name the file.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/seed-stacks/*.yml")
	examples, _ := filepath.Glob("../examples/*/compose.yaml")
	for _, p := range append(seeds, examples...) {
		b, err := os.ReadFile(p)
		if err == nil {
			f.Add(b)
		}
	}
	for _, tc := range invalidStacks {
		f.Add([]byte(tc.yaml))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		file := filepath.Join(dir, "compose.yaml")
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
		st, err := Load(context.Background(), Source{Name: "fuzz", Files: []string{file}, Root: dir})
		if err == nil {
			if st == nil {
				t.Fatal("nil stack and nil error")
			}
			return
		}
		if es, ok := err.(Errors); ok {
			for _, d := range es {
				if d.File == "" {
					t.Fatalf("diagnostic without a file: %s", d)
				}
			}
		}
	})
}

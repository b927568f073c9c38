package reconcile

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const svc = "services:\n  app:\n    image: app:1\n"

func names(l *Layout) []string {
	var out []string
	for _, s := range l.Stacks {
		out = append(out, s.Name)
	}
	return out
}

func TestDiscoverOneStackPerDirectory(t *testing.T) {
	root := writeTree(t, map[string]string{
		"stacks/Web/compose.yaml":    svc,
		"stacks/db/docker-stack.yml": svc,
		"stacks/db/notes.txt":        "not a stack",
		"docs/readme.md":             "nothing",
		".hidden/compose.yaml":       svc,
		"stacks/db/sub/compose.yml":  svc,
	})
	l, err := ReadLayout(root)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"db", "sub", "web"}, names(l)); diff != "" {
		t.Errorf("stacks (-want +got):\n%s", diff)
	}
	stacks, err := LoadAll(context.Background(), root, root, l)
	if err != nil {
		t.Fatal(err)
	}
	if got := stacks[2].Bundle.Services[0].Name; got != "web_app" {
		t.Errorf("service name %s, want web_app", got)
	}
}

func TestDiscoverRejectsAmbiguity(t *testing.T) {
	root := writeTree(t, map[string]string{"a/compose.yaml": svc, "a/docker-stack.yml": svc})
	_, err := ReadLayout(root)
	if err == nil || !strings.Contains(err.Error(), "a holds compose.yaml and docker-stack.yml") {
		t.Errorf("err %v, want one naming both files", err)
	}
}

func TestLayoutFileOrdersByDependencies(t *testing.T) {
	root := writeTree(t, map[string]string{
		"gitorc.yaml": `stacks:
  - name: web
    files: [apps/web/compose.yaml, apps/web/prod.yaml]
    depends_on: [db, cache]
  - name: db
    files: [apps/db/compose.yaml]
  - name: cache
    files: [apps/cache/compose.yaml]
    depends_on: [db]
`,
		"apps/web/compose.yaml":     svc,
		"apps/web/prod.yaml":        "services:\n  app:\n    deploy:\n      replicas: 4\n",
		"apps/db/compose.yaml":      svc,
		"apps/cache/compose.yaml":   svc,
		"apps/ignored/compose.yaml": svc,
	})
	l, err := ReadLayout(root)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"db", "cache", "web"}, names(l)); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
	stacks, err := LoadAll(context.Background(), root, root, l)
	if err != nil {
		t.Fatal(err)
	}
	web := stacks[2].Bundle
	if web.Services[0].Replicas != 4 || !cmp.Equal(web.Stack.DependsOn, []string{"db", "cache"}) {
		t.Errorf("web: replicas %d depends_on %v", web.Services[0].Replicas, web.Stack.DependsOn)
	}
}

func TestLayoutFileErrors(t *testing.T) {
	cases := []struct {
		name, layout string
		want         string
	}{
		{"unknown key", "stacks:\n  - name: a\n    file: [a.yaml]\n", `gitorc.yaml:3: unknown key "file"`},
		{"cycle", "stacks:\n  - name: a\n    files: [a.yaml]\n    depends_on: [b]\n  - name: b\n    files: [a.yaml]\n    depends_on: [a]\n",
			"gitorc.yaml: stack dependency cycle: a -> b -> a"},
		{"problems together", "stacks:\n  - name: A\n    files: [missing.yaml]\n  - name: b\n    files: [../x.yaml]\n    depends_on: [zz]\n", strings.Join([]string{
			`gitorc.yaml: stacks[0]: name "A" must be lowercase letters, digits, '-' and '_'`,
			`gitorc.yaml: stacks[0] (A): missing.yaml: no such file`,
			`gitorc.yaml: stacks[1] (b): ../x.yaml must be a path inside the repository`,
			`gitorc.yaml: stacks[1] (b): depends_on names unknown stack "zz"`,
		}, "\n")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := writeTree(t, map[string]string{"gitorc.yaml": tc.layout, "a.yaml": svc})
			_, err := ReadLayout(root)
			if err == nil || err.Error() != tc.want {
				t.Errorf("err:\n%v\nwant:\n%s", err, tc.want)
			}
		})
	}
}

func TestLoadAllReportsEveryBrokenStack(t *testing.T) {
	root := writeTree(t, map[string]string{
		"a/compose.yaml": "services:\n  app:\n    image: a\n    deploy:\n      mode: nope\n",
		"b/compose.yaml": "services:\n  app:\n    deploy: {replicas: -1}\n",
		"c/compose.yaml": svc,
	})
	l, err := ReadLayout(root)
	if err != nil {
		t.Fatal(err)
	}
	stacks, err := LoadAll(context.Background(), root, root, l)
	if len(stacks) != 1 || err == nil {
		t.Fatalf("%d stacks, err %v; want 1 and an error", len(stacks), err)
	}
	for _, want := range []string{"a/compose.yaml:5: services.app.deploy.mode", "b/compose.yaml:3: services.app.deploy.replicas", "b/compose.yaml:2: services.app.image: image is required"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// gitorc.yaml's profiles: of a stack are its active compose profiles.
func TestLayoutProfiles(t *testing.T) {
	stack := "services:\n  app:\n    image: app:1\n  debug:\n    image: debug:1\n    profiles: [debug]\n  metrics:\n    image: m:1\n    profiles: [ops]\n"
	root := writeTree(t, map[string]string{
		"gitorc.yaml":      "stacks:\n  - name: web\n    files: [web/compose.yaml]\n    profiles: [ops]\n",
		"web/compose.yaml": stack,
	})
	l, err := ReadLayout(root)
	if err != nil {
		t.Fatal(err)
	}
	stacks, err := LoadAll(context.Background(), root, root, l)
	if err != nil || len(stacks) != 1 {
		t.Fatalf("%d stacks, %v", len(stacks), err)
	}
	var got []string
	for _, s := range stacks[0].Bundle.Services {
		got = append(got, s.Name)
	}
	if strings.Join(got, ",") != "web_app,web_metrics" {
		t.Errorf("services %v, want web_app and web_metrics (profile ops)", got)
	}
	if len(stacks[0].Warnings) != 1 || !strings.Contains(stacks[0].Warnings[0].String(), "services.debug.profiles: not deployed") {
		t.Errorf("warnings %v, want one about debug", stacks[0].Warnings)
	}
}

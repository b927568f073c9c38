package compose

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// canaryTree makes a repository directory beside files it must never read:
// outside/canary.env (CANARY=<secret>), outside/canary.yaml (a service
// whose environment holds the secret) and outside/canary.txt. It returns
// the repository, the outside directory and the secret.
func canaryTree(t *testing.T) (repo, outside, secret string) {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	secret = "canary-" + hex.EncodeToString(b)
	base := t.TempDir()
	repo, outside = filepath.Join(base, "repo"), filepath.Join(base, "outside")
	for name, content := range map[string]string{
		"canary.env":  "CANARY=" + secret + "\n",
		"canary.yaml": "services:\n  leak:\n    image: x\n    environment:\n      LEAK: " + secret + "\n",
		"canary.txt":  secret + "\n",
	} {
		writeFile(t, filepath.Join(outside, name), content)
	}
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	return repo, outside, secret
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, name string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, name); err != nil {
		t.Fatal(err)
	}
}

// Every file a stack reads must resolve inside its tree: a path that
// leaves it (absolute, through "..", or through a symlink) is an error at
// the line that names it, the stack does not load, and nothing of the
// file outside reaches the result or the error.
func TestPathsStayInsideTheTree(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string // in the repository; OUT is the outside directory
		links map[string]string // repository path -> target
		want  []string
	}{
		{
			name:  "include_dotdot",
			files: map[string]string{"web/compose.yaml": "include:\n  - ../../outside/canary.yaml\nservices:\n  web:\n    image: x\n"},
			want:  []string{`web/compose.yaml:2: include.0: ../../outside/canary.yaml is outside the repository`},
		},
		{
			name:  "include_absolute",
			files: map[string]string{"web/compose.yaml": "include:\n  - path: OUT/canary.yaml\nservices:\n  web:\n    image: x\n"},
			want:  []string{`web/compose.yaml:2: include.0.path: OUT/canary.yaml is outside the repository`},
		},
		{
			name: "include_env_file",
			files: map[string]string{
				"web/compose.yaml": "include:\n  - path: lib.yaml\n    env_file: ../../outside/canary.env\nservices:\n  web:\n    image: x\n",
				"web/lib.yaml":     "services:\n  lib:\n    image: x:${CANARY}\n",
			},
			want: []string{`web/compose.yaml:3: include.0.env_file: ../../outside/canary.env is outside the repository`},
		},
		{
			name:  "extends_file",
			files: map[string]string{"web/compose.yaml": "services:\n  web:\n    extends:\n      file: ../../outside/canary.yaml\n      service: leak\n"},
			want:  []string{`web/compose.yaml:4: services.web.extends.file: ../../outside/canary.yaml is outside the repository`},
		},
		{
			name: "extends_file_nested",
			files: map[string]string{
				"web/compose.yaml": "services:\n  web:\n    extends:\n      file: base.yaml\n      service: base\n",
				"web/base.yaml":    "services:\n  base:\n    extends:\n      file: OUT/canary.yaml\n      service: leak\n",
			},
			want: []string{`web/base.yaml:4: services.base.extends.file: OUT/canary.yaml is outside the repository`},
		},
		{
			name:  "env_file",
			files: map[string]string{"web/compose.yaml": "services:\n  web:\n    image: x\n    env_file: ../../outside/canary.env\n"},
			want:  []string{`web/compose.yaml:4: services.web.env_file: ../../outside/canary.env is outside the repository`},
		},
		{
			name:  "env_file_absolute_long_syntax",
			files: map[string]string{"web/compose.yaml": "services:\n  web:\n    image: x\n    env_file:\n      - path: OUT/canary.env\n"},
			want:  []string{`web/compose.yaml:5: services.web.env_file.0.path: OUT/canary.env is outside the repository`},
		},
		{
			// Known only after interpolation: refused after compose-go
			// resolved it, before it reads it.
			name:  "env_file_from_variable",
			files: map[string]string{"web/compose.yaml": "services:\n  web:\n    image: x\n    env_file: ${DIR:-../../outside}/canary.env\n"},
			want:  []string{`web/compose.yaml:4: services.web.env_file: OUT/canary.env is outside the repository`},
		},
		{
			name:  "label_file",
			files: map[string]string{"web/compose.yaml": "services:\n  web:\n    image: x\n    label_file: ../../outside/canary.env\n"},
			want:  []string{`web/compose.yaml:4: services.web.label_file: ../../outside/canary.env is outside the repository`},
		},
		{
			name:  "config_file",
			files: map[string]string{"web/compose.yaml": "services:\n  web:\n    image: x\n    configs: [c]\nconfigs:\n  c:\n    file: ../../outside/canary.txt\n"},
			want:  []string{`web/compose.yaml:7: configs.c.file: ../../outside/canary.txt is outside the repository`},
		},
		{
			name:  "secret_file",
			files: map[string]string{"web/compose.yaml": "services:\n  web:\n    image: x\n    secrets: [s]\nsecrets:\n  s:\n    file: OUT/canary.txt\n"},
			want:  []string{`web/compose.yaml:7: secrets.s.file: OUT/canary.txt is outside the repository`},
		},
		{
			name:  "symlinked_include",
			files: map[string]string{"web/compose.yaml": "include:\n  - lib.yaml\nservices:\n  web:\n    image: x\n"},
			links: map[string]string{"web/lib.yaml": "../../outside/canary.yaml"},
			want:  []string{`web/compose.yaml:2: include.0: lib.yaml is outside the repository (through a symlink)`},
		},
		{
			name:  "symlinked_env_file",
			files: map[string]string{"web/compose.yaml": "services:\n  web:\n    image: x\n    env_file: app.env\n"},
			links: map[string]string{"web/app.env": "OUT/canary.env"},
			want:  []string{`web/compose.yaml:4: services.web.env_file: app.env is outside the repository (through a symlink)`},
		},
		{
			name:  "symlinked_directory",
			files: map[string]string{"web/compose.yaml": "services:\n  web:\n    image: x\n    configs: [c]\nconfigs:\n  c:\n    file: shared/canary.txt\n"},
			links: map[string]string{"web/shared": "OUT"},
			want:  []string{`web/compose.yaml:7: configs.c.file: shared/canary.txt is outside the repository (through a symlink)`},
		},
		{
			name:  "symlinked_dotenv",
			files: map[string]string{"web/compose.yaml": "services:\n  web:\n    image: x:${CANARY}\n"},
			links: map[string]string{"web/.env": "../../outside/canary.env"},
			want:  []string{`web/.env: outside the repository (through a symlink)`},
		},
		{
			name:  "symlinked_stack_file",
			links: map[string]string{"web/compose.yaml": "../../outside/canary.yaml"},
			want:  []string{`web/compose.yaml: outside the repository (through a symlink)`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			repo, outside, secret := canaryTree(t)
			for name, content := range tc.files {
				writeFile(t, filepath.Join(repo, name), strings.ReplaceAll(content, "OUT", outside))
			}
			for name, target := range tc.links {
				symlink(t, strings.ReplaceAll(target, "OUT", outside), filepath.Join(repo, name))
			}
			src := Source{Name: "web", Files: []string{filepath.Join(repo, "web/compose.yaml")}, Root: repo, Tree: repo}
			st, err := Load(context.Background(), src)
			if err == nil {
				t.Fatalf("loaded: %+v", st.Bundle)
			}
			if st != nil {
				t.Errorf("a stack came back with the error: %+v", st.Bundle)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("the error holds the outside file's content: %v", err)
			}
			var got []string
			var errs Errors
			if errors.As(err, &errs) {
				for _, d := range errs {
					got = append(got, d.String())
				}
			} else {
				got = []string{err.Error()}
			}
			var want []string
			for _, w := range tc.want {
				want = append(want, strings.ReplaceAll(w, "OUT", outside))
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

// Paths that stay inside the tree load as before, "../" included, and a
// tree given through a symlinked directory is still the tree.
func TestPathsInsideTheTreeLoad(t *testing.T) {
	repo, _, _ := canaryTree(t)
	for name, content := range map[string]string{
		"web/compose.yaml":  "include:\n  - ../common/lib.yaml\nservices:\n  web:\n    image: x:${TAG}\n    env_file: ../common/app.env\n    extends:\n      file: ../common/base.yaml\n      service: base\n    configs: [c]\nconfigs:\n  c:\n    file: ./conf/c.txt\n",
		"web/.env":          "TAG=1\n",
		"web/conf/c.txt":    "hello\n",
		"common/lib.yaml":   "services:\n  lib:\n    image: lib\n",
		"common/app.env":    "MODE=prod\n",
		"common/base.yaml":  "services:\n  base:\n    image: base\n    environment: {FROM: base}\n",
		"common/other.yaml": "services: {}\n",
	} {
		writeFile(t, filepath.Join(repo, name), content)
	}
	symlink(t, "../common/app.env", filepath.Join(repo, "web/linked.env"))
	link := filepath.Join(t.TempDir(), "repo-link")
	symlink(t, repo, link)
	for _, tree := range []string{repo, link} {
		st, err := Load(context.Background(), Source{Name: "web", Files: []string{filepath.Join(tree, "web/compose.yaml")}, Root: tree, Tree: tree})
		if err != nil {
			t.Fatalf("tree %s: %v", tree, err)
		}
		var env []string
		for _, s := range st.Bundle.Services {
			if s.Name == "web_web" {
				env = s.Task.Container.Env
				if s.Task.Container.Image != "x:1" {
					t.Errorf("image %s, want x:1", s.Task.Container.Image)
				}
			}
		}
		if diff := cmp.Diff([]string{"FROM=base", "MODE=prod"}, env); diff != "" {
			t.Errorf("web env (-want +got):\n%s", diff)
		}
		if len(st.Bundle.Services) != 2 {
			t.Errorf("services %d, want web and the included lib", len(st.Bundle.Services))
		}
	}
}

// Variables in the paths of include: and extends.file would be known only
// once compose-go reads them: they are refused at their line.
func TestIncludePathVariablesRefused(t *testing.T) {
	repo, _, _ := canaryTree(t)
	writeFile(t, filepath.Join(repo, "compose.yaml"), "include:\n  - ${LIB}/lib.yaml\nservices:\n  web:\n    image: x\n    extends:\n      file: ${BASE}.yaml\n      service: b\n")
	_, err := Load(context.Background(), Source{Name: "web", Files: []string{filepath.Join(repo, "compose.yaml")}, Root: repo, Tree: repo,
		Env: map[string]string{"LIB": "..", "BASE": "base"}})
	want := fmt.Sprint(Errors{
		{File: "compose.yaml", Line: 2, Path: "include.0", Msg: "${LIB}/lib.yaml: variables are not allowed in the path of a file the stack reads"},
		{File: "compose.yaml", Line: 7, Path: "services.web.extends.file", Msg: "${BASE}.yaml: variables are not allowed in the path of a file the stack reads"},
	})
	if err == nil || err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
}

// bareUses finds the first line of each bare use of a variable, as the
// per-variable search it replaces did.
func TestBareUses(t *testing.T) {
	data := "a: $A\nb: ${B}\nc: ${C:-x} $$D ${E?err}\nd: $A ${B}x $F_1-$G\ne: $$$H ${I\nf: $D\n"
	want := map[string]int{"A": 1, "B": 2, "F_1": 4, "G": 4, "D": 6}
	if diff := cmp.Diff(want, bareUses([]byte(data))); diff != "" {
		t.Errorf("uses (-want +got):\n%s", diff)
	}
}

// FuzzLoadStaysInTree loads arbitrary stack files from a repository that
// holds an included file, an env file and a symlink out, beside an outside
// directory whose files hold a canary: whatever the file says, the canary
// reaches neither the loaded stack nor the error.
func FuzzLoadStaysInTree(f *testing.F) {
	base := f.TempDir()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		f.Fatal(err)
	}
	secret := "canary-" + hex.EncodeToString(b)
	repo, outside := filepath.Join(base, "repo"), filepath.Join(base, "outside")
	for name, content := range map[string]string{
		"outside/canary.env":  "CANARY=" + secret + "\n",
		"outside/canary.yaml": "services:\n  leak:\n    image: x\n    environment:\n      LEAK: " + secret + "\n",
		"outside/.env":        "CANARY=" + secret + "\n",
		"repo/web/lib.yaml":   "services:\n  lib:\n    image: lib\n",
		"repo/web/app.env":    "MODE=prod\n",
		"repo/web/.env":       "TAG=1\n",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(base, name)), 0o755); err != nil {
			f.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(base, name), []byte(content), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(repo, "web", "out")); err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		"include: [lib.yaml]\nservices:\n  web:\n    image: x:${TAG}\n    env_file: app.env\n",
		"include: [../../outside/canary.yaml]\n",
		"include: [out/canary.yaml]\n",
		"include:\n  - path: lib.yaml\n    env_file: out/canary.env\n    project_directory: ../../outside\n",
		"services:\n  web:\n    extends: {file: " + outside + "/canary.yaml, service: leak}\n",
		"services:\n  web:\n    image: x\n    env_file: [{path: out/canary.env}]\n    label_file: ../../outside/canary.env\n",
		"services:\n  web:\n    image: x\n    env_file: ${D:-out}/canary.env\n",
		"services:\n  web:\n    image: x\n    configs: [c]\nconfigs:\n  c:\n    file: out/canary.env\n",
	} {
		f.Add([]byte(seed))
	}
	file := filepath.Join(repo, "web", "compose.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
		st, err := Load(context.Background(), Source{Name: "fuzz", Files: []string{file}, Root: repo, Tree: repo})
		if err != nil {
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("the error holds the canary: %v", err)
			}
			return
		}
		if strings.Contains(fmt.Sprintf("%+v %v", st.Bundle, st.Warnings), secret) {
			t.Fatalf("the stack holds the canary: %+v", st.Bundle)
		}
	})
}

// The resource loader placed before compose-go's own takes only absolute
// paths outside the tree, and refuses them.
func TestTreeGuard(t *testing.T) {
	repo, outside, _ := canaryTree(t)
	tr, err := openTree(repo)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.close()
	symlink(t, outside, filepath.Join(repo, "out"))
	g := treeGuard{tr}
	for p, want := range map[string]bool{
		filepath.Join(outside, "canary.yaml"):   true,
		filepath.Join(repo, "out/canary.yaml"):  true,
		filepath.Join(repo, "../outside/x"):     true,
		filepath.Join(repo, "web/compose.yaml"): false,
		"web/compose.yaml":                      false, // relative: the raw pass's
		"../outside/canary.yaml":                false,
	} {
		if got := g.Accept(p); got != want {
			t.Errorf("Accept(%s) = %v, want %v", p, got, want)
		}
		if want {
			if _, err := g.Load(context.Background(), p); !errors.Is(err, ErrOutsideTree) {
				t.Errorf("Load(%s) = %v, want ErrOutsideTree", p, err)
			}
		}
	}
	if (treeGuard{&tree{}}).Accept(filepath.Join(outside, "canary.yaml")) {
		t.Error("an unconfined load refused a path")
	}
}

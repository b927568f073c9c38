package reconcile

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/compose"
	"github.com/google/go-cmp/cmp"
)

// canaryRepo makes a repository directory beside a directory it must
// never read from, whose files hold a random secret: outside/.env and
// outside/canary.env (CANARY=<secret>), outside/canary.yaml (a service
// with the secret in its environment) and outside/canary.txt.
func canaryRepo(t *testing.T, files map[string]string, links map[string]string) (repo, outside, secret string) {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	secret = "canary-" + hex.EncodeToString(b)
	base := t.TempDir()
	repo, outside = filepath.Join(base, "repo"), filepath.Join(base, "outside")
	put := func(p, content string) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	put(filepath.Join(outside, ".env"), "CANARY="+secret+"\n")
	put(filepath.Join(outside, "canary.env"), "CANARY="+secret+"\n")
	put(filepath.Join(outside, "canary.yaml"), "services:\n  app:\n    image: x\n    environment:\n      LEAK: "+secret+"\n")
	put(filepath.Join(outside, "canary.txt"), secret+"\n")
	put(filepath.Join(outside, "compose.yaml"), "services:\n  app:\n    image: x:${CANARY}\n")
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		put(filepath.Join(repo, name), strings.ReplaceAll(content, "OUT", outside))
	}
	for name, target := range links {
		p := filepath.Join(repo, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(strings.ReplaceAll(target, "OUT", outside), p); err != nil {
			t.Fatal(err)
		}
	}
	return repo, outside, secret
}

// A repository loads only from inside itself: gitorc.yaml's dir:, files:
// and env_files:, discovered stack files, gitorc.yaml itself, and every
// file a stack names. A path out (absolute, "..", a symlink) fails the
// whole layout or stack, and the canary outside is in no result or error.
func TestLayoutStaysInsideTheRepository(t *testing.T) {
	const web = "services:\n  app:\n    image: x:${CANARY:-none}\n"
	cases := []struct {
		name  string
		files map[string]string
		links map[string]string
		want  string // the error, OUT for the outside directory
	}{
		{
			name: "dir_dotdot",
			files: map[string]string{
				"gitorc.yaml":      "stacks:\n  - name: web\n    files: [web/compose.yaml]\n    dir: ../outside\n",
				"web/compose.yaml": web,
			},
			want: "gitorc.yaml: stacks[0] (web): dir ../outside must be a directory inside the repository",
		},
		{
			name: "dir_absolute",
			files: map[string]string{
				"gitorc.yaml":      "stacks:\n  - name: web\n    files: [web/compose.yaml]\n    dir: OUT\n",
				"web/compose.yaml": web,
			},
			want: "gitorc.yaml: stacks[0] (web): dir OUT must be a directory inside the repository",
		},
		{
			name: "dir_symlink",
			files: map[string]string{
				"gitorc.yaml":      "stacks:\n  - name: web\n    files: [web/compose.yaml]\n    dir: elsewhere\n",
				"web/compose.yaml": web,
			},
			links: map[string]string{"elsewhere": "OUT"},
			want:  "gitorc.yaml: stacks[0] (web): dir elsewhere is outside the repository (through a symlink)",
		},
		{
			name:  "files_symlink",
			files: map[string]string{"gitorc.yaml": "stacks:\n  - name: web\n    files: [web/compose.yaml]\n"},
			links: map[string]string{"web/compose.yaml": "../../outside/canary.yaml"},
			want:  "gitorc.yaml: stacks[0] (web): web/compose.yaml is outside the repository (through a symlink)",
		},
		{
			name: "env_files_symlink",
			files: map[string]string{
				"gitorc.yaml":      "stacks:\n  - name: web\n    files: [web/compose.yaml]\n    env_files: [web/app.env]\n",
				"web/compose.yaml": web,
			},
			links: map[string]string{"web/app.env": "OUT/canary.env"},
			want:  "gitorc.yaml: stacks[0] (web): web/app.env is outside the repository (through a symlink)",
		},
		{
			name:  "layout_file_symlink",
			links: map[string]string{"gitorc.yaml": "OUT/canary.yaml"},
			want:  "gitorc.yaml is outside the repository (through a symlink)",
		},
		{
			name:  "discovered_stack_file_symlink",
			links: map[string]string{"web/compose.yaml": "OUT/canary.yaml"},
			want:  "web/compose.yaml is outside the repository (through a symlink)",
		},
		{
			name:  "discovered_stack_env_file",
			files: map[string]string{"web/compose.yaml": "services:\n  app:\n    image: x\n    env_file: ../../outside/canary.env\n"},
			want:  "web/compose.yaml:4: services.app.env_file: ../../outside/canary.env is outside the repository",
		},
		{
			name:  "discovered_stack_include",
			files: map[string]string{"web/compose.yaml": "include: [OUT/canary.yaml]\nservices:\n  app:\n    image: x\n"},
			want:  "web/compose.yaml:1: include.0: OUT/canary.yaml is outside the repository",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			repo, outside, secret := canaryRepo(t, tc.files, tc.links)
			want := strings.ReplaceAll(tc.want, "OUT", outside)
			l, err := ReadLayout(repo)
			if err == nil {
				stacks, lerr := LoadAll(context.Background(), repo, repo, l)
				for _, s := range stacks {
					if got := fmt.Sprintf("%+v", s.Bundle); strings.Contains(got, secret) {
						t.Errorf("stack %s holds the canary", s.Bundle.Stack.Name)
					}
				}
				err = lerr
			} else if l != nil {
				t.Errorf("a layout came back with the error: %+v", l)
			}
			if err == nil {
				t.Fatal("loaded")
			}
			msg := strings.ReplaceAll(err.Error(), repo+string(filepath.Separator), "")
			if strings.Contains(msg, secret) {
				t.Fatalf("the error holds the canary: %v", err)
			}
			if msg != want {
				t.Errorf("error:\n%s\nwant:\n%s", msg, want)
			}
		})
	}
}

// The commit's loader (ReadLayout, LoadAll, then the files of secrets and
// configs) reads nothing through a symlink that leaves the tree.
func TestLoadTreeReadsNoFileOutside(t *testing.T) {
	const stack = "services:\n  app:\n    image: x\n    configs: [c]\nconfigs:\n  c:\n    file: shared/canary.txt\n"
	repo, _, secret := canaryRepo(t, map[string]string{"web/compose.yaml": stack}, map[string]string{"web/shared": "OUT"})
	c := Controller{cfg: ControllerConfig{Cluster: newMemCluster()}}
	state, problems, err := c.loadTree(context.Background(), repo)
	if err != nil {
		t.Fatal(err)
	}
	if len(state.Configs) > 0 || len(state.Services) > 0 {
		t.Errorf("a state came back: %+v", state)
	}
	want := "web/compose.yaml:7: configs.c.file: shared/canary.txt is outside the repository (through a symlink)"
	if strings.Join(problems, "\n") != want {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(problems, "\n"), want)
	}
	if strings.Contains(fmt.Sprint(problems, state), secret) {
		t.Error("the canary reached the problems or the state")
	}
}

// A commit with one stack that reads a file outside the repository fails
// as a whole: nothing of it is applied, the message names the line, the
// canary is in no record, state or object, and it is not retried.
func TestSyncRefusesACommitThatReadsOutside(t *testing.T) {
	_, outside, secret := canaryRepo(t, nil, nil)
	h := newHarness(t)
	h.clock.onWait = func() { h.cluster.orchestrate() }
	h.repo.commit("good", map[string]string{"web/compose.yaml": stack("app:1", 1)})
	h.sync(t)
	before, _ := h.cluster.Actual(context.Background())

	bad := h.repo.commit("leak", map[string]string{
		"web/compose.yaml": stack("app:2", 2),
		"api/compose.yaml": "services:\n  app:\n    image: api:1\n    env_file: " + outside + "/canary.env\n",
	})
	rec := h.sync(t)
	if rec.Result != api.SyncFailed || rec.Revision != bad {
		t.Fatalf("record %+v", rec)
	}
	want := "api/compose.yaml:4: services.app.env_file: " + outside + "/canary.env is outside the repository"
	if !strings.Contains(rec.Message, want) {
		t.Errorf("message lacks %q:\n%s", want, rec.Message)
	}
	after, _ := h.cluster.Actual(context.Background())
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("the commit changed the cluster (-before +after):\n%s", diff)
	}
	if got := fmt.Sprintf("%+v %+v %+v", rec, h.cluster.sync, after); strings.Contains(got, secret) {
		t.Error("the canary reached the sync record, state or cluster")
	}
	if rec := h.sync(t); rec.ID != "" {
		t.Errorf("refused commit retried: %+v", rec)
	}
}

// A commit whose tree is over the size limits fails (and is not retried)
// with the path and the limit, before anything of it is loaded.
func TestSyncRefusesATreeOverTheLimits(t *testing.T) {
	h := newHarness(t)
	h.clock.onWait = func() { h.cluster.orchestrate() }
	h.repo.commit("good", map[string]string{"web/compose.yaml": stack("app:1", 1)})
	h.sync(t)
	bad := h.repo.commit("big", map[string]string{
		"web/compose.yaml": stack("app:2", 1),
		"web/huge.age":     strings.Repeat("x", 5<<20),
	})
	rec := h.sync(t)
	want := "web/huge.age at commit " + bad[:7] + ": 5 MiB, over the limit of 4 MiB for a file"
	if rec.Result != api.SyncFailed || rec.Revision != bad || !strings.Contains(rec.Message, want) {
		t.Fatalf("record %+v\nwant failed with %q", rec, want)
	}
	if h.cluster.image("web_app") != "app:1" {
		t.Errorf("image %s, want app:1 still", h.cluster.image("web_app"))
	}
	if rec := h.sync(t); rec.ID != "" {
		t.Errorf("refused commit retried: %+v", rec)
	}
}

// FuzzReadLayout reads arbitrary gitorc.yaml files in a repository beside
// an outside directory whose files hold a canary (and with a symlink to
// it): the canary reaches neither a loaded stack nor an error.
func FuzzReadLayout(f *testing.F) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		f.Fatal(err)
	}
	secret := "canary-" + hex.EncodeToString(b)
	base := f.TempDir()
	repo, outside := filepath.Join(base, "repo"), filepath.Join(base, "outside")
	for name, content := range map[string]string{
		"outside/.env":          "CANARY=" + secret + "\n",
		"outside/compose.yaml":  "services:\n  app:\n    image: x:${CANARY}\n",
		"outside/canary.yaml":   "services:\n  app:\n    image: x\n    environment:\n      LEAK: " + secret + "\n",
		"repo/web/compose.yaml": "services:\n  app:\n    image: x:${CANARY:-none}\n",
		"repo/web/app.env":      "MODE=prod\n",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(base, name)), 0o755); err != nil {
			f.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(base, name), []byte(content), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(repo, "out")); err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		"stacks:\n  - name: web\n    files: [web/compose.yaml]\n    env_files: [web/app.env]\n",
		"stacks:\n  - name: web\n    files: [web/compose.yaml]\n    dir: ../outside\n",
		"stacks:\n  - name: web\n    files: [web/compose.yaml]\n    dir: out\n",
		"stacks:\n  - name: web\n    files: [out/canary.yaml]\n",
		"stacks:\n  - name: web\n    files: [web/compose.yaml]\n    env_files: [" + outside + "/.env]\n",
	} {
		f.Add([]byte(seed))
	}
	layout := filepath.Join(repo, LayoutFile)
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(layout, data, 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := ReadLayout(repo)
		if err == nil {
			var stacks []*compose.Stack
			stacks, err = LoadAll(context.Background(), repo, repo, l)
			for _, s := range stacks {
				if got := fmt.Sprintf("%+v", s.Bundle); strings.Contains(got, secret) {
					t.Fatalf("a stack holds the canary: %s", got)
				}
			}
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Fatalf("the error holds the canary: %v", err)
		}
	})
}

// gitorc.yaml over 1 MiB is refused before it is parsed.
func TestLayoutFileOverTheLimit(t *testing.T) {
	root := writeTree(t, map[string]string{"gitorc.yaml": "stacks: []\n" + strings.Repeat("#\n", 600_000)})
	if _, err := ReadLayout(root); err == nil || err.Error() != "gitorc.yaml: 1.14 MiB, over the limit of 1 MiB" {
		t.Errorf("err %v", err)
	}
}

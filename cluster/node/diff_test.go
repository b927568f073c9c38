//go:build porting

package node

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/reconcile"
	"github.com/gitorc/gitorc/secrets"
)

// gitorc diff against a real daemon following a local repository: exit
// 0, 1 and 2 with the lines a user reads, for HEAD, a revision and a
// working tree; drift from gitorc service scale; secrets by hash only.
func TestDiffOnDaemon(t *testing.T) {
	repo := newStacksRepo(t)
	c1 := repo.commit("first", map[string]string{
		"web/compose.yaml": webStack("registry.example/app:1", 0, ""),
		"db/compose.yaml":  webStack("registry.example/pg:16", 0, ""),
	})
	d, socket := gitopsNode(t, repo, time.Hour)
	// Automatic syncs off: the commits below stay undeployed.
	setSuspended(t, d, true)

	diff := func(args ...string) (string, string, int) {
		t.Helper()
		return run(t, append([]string{"diff", "--socket", socket}, args...)...)
	}
	out, errOut, code := diff()
	if code != diffSame || !strings.Contains(out, "revision "+c1[:7]+" against the cluster:") ||
		!strings.Contains(out, "0 to create, 0 to update, 0 to delete") {
		t.Fatalf("nothing changed: exit %d\n%s%s", code, out, errOut)
	}

	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"image changed", map[string]string{"web/compose.yaml": webStack("registry.example/app:2", 0, "")},
			[]string{"~ service web_app (update)", `task.container.image: "registry.example/app:1" -> "registry.example/app:2"`,
				"0 to create, 1 to update, 0 to delete"}},
		{"replicas changed", map[string]string{"web/compose.yaml": webStack("registry.example/app:1", 3, "")},
			[]string{"~ service web_app (update)", "replicas: 0 -> 3"}},
		{"service added", map[string]string{"web/compose.yaml": webStack("registry.example/app:1", 0,
			"  worker:\n    image: registry.example/worker:1\n    deploy:\n      replicas: 0\n")},
			[]string{"+ service web_worker (create)", "1 to create, 0 to update, 0 to delete"}},
		{"service removed (prune)", map[string]string{"db/compose.yaml": ""},
			[]string{"- service db_app (delete)", "- network db_default (delete)", "0 to create, 0 to update, 2 to delete"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			head := repo.commit(tc.name, tc.files)
			out, errOut, code := diff()
			if code != diffDiffers {
				t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
			}
			if !strings.Contains(out, "revision "+head[:7]+" against the cluster:") {
				t.Errorf("not HEAD %s:\n%s", head[:7], out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("diff lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "\x1b[") {
				t.Errorf("colours on a non-terminal:\n%q", out)
			}
			// The same as JSON, for scripts.
			js, _, code := diff("-o", "json")
			var res reconcile.Diff
			if err := json.Unmarshal([]byte(js), &res); err != nil || code != diffDiffers || res.Revision != head || !res.Differs() {
				t.Errorf("json: exit %d %v\n%s", code, err, js)
			}
			// Back to the first commit's stacks: nothing differs again.
			repo.git("revert", "--no-edit", "HEAD")
			if out, errOut, code := diff(); code != diffSame {
				t.Errorf("after the revert: exit %d\n%s%s", code, out, errOut)
			}
		})
	}

	// A revision: the commit of an image change, by an abbreviated hash.
	changed := repo.commit("image 3", map[string]string{"web/compose.yaml": webStack("registry.example/app:3", 0, "")})
	repo.git("revert", "--no-edit", "HEAD")
	out, errOut, code = diff("--revision", changed[:9])
	if code != diffDiffers || !strings.Contains(out, `"registry.example/app:3"`) || !strings.Contains(out, "revision "+changed[:7]) {
		t.Errorf("--revision: exit %d\n%s%s", code, out, errOut)
	}
	if _, errOut, code := diff("--revision", "nosuchbranch"); code != diffError || !strings.Contains(errOut, "nosuchbranch not found") {
		t.Errorf("unknown revision: exit %d %s", code, errOut)
	}
	// A local working tree, not committed.
	repo.write(map[string]string{"web/compose.yaml": webStack("registry.example/app:4", 0, "")})
	out, errOut, code = diff("--local", repo.dir)
	if code != diffDiffers || !strings.Contains(out, "local tree "+repo.dir) || !strings.Contains(out, `"registry.example/app:4"`) {
		t.Errorf("--local: exit %d\n%s%s", code, out, errOut)
	}
	repo.git("checkout", "--", ".")

	// Broken YAML: exit 2 with the file:line problem.
	repo.commit("broken", map[string]string{"web/compose.yaml": "services:\n  app:\n    image: [x\n"})
	out, errOut, code = diff()
	if code != diffError || !strings.Contains(out, "problem: web/compose.yaml:3") || !strings.Contains(errOut, "cannot be applied: 1 problem(s)") {
		t.Errorf("broken YAML: exit %d\n%s%s", code, out, errOut)
	}
	repo.git("revert", "--no-edit", "HEAD")

	// Drift: a service scaled by hand.
	if _, errOut, code := run(t, "service", "scale", "--socket", socket, "web_app=2"); code != 0 {
		t.Fatalf("scale: %s", errOut)
	}
	out, errOut, code = diff()
	if code != diffDiffers || !strings.Contains(out, "~ service web_app (update) drift: changed outside Git") ||
		!strings.Contains(out, "replicas: 2 -> 0") {
		t.Errorf("drift: exit %d\n%s%s", code, out, errOut)
	}
	// Suspended, the drift stays: self-heal waits for automatic syncs.
	if spec := specOf(t, d, "web_app"); spec.Replicas != 2 {
		t.Errorf("replicas %d while suspended", spec.Replicas)
	}
}

// Secrets are opened on the daemon and shown by their keyed hash only:
// never the plaintext, in text or JSON.
func TestDiffShowsSecretsByHashOnly(t *testing.T) {
	repo := newStacksRepo(t)
	repo.commit("no secret yet", map[string]string{"web/compose.yaml": webStack("registry.example/app:1", 0, "")})
	d, socket := gitopsNode(t, repo, time.Hour)
	setSuspended(t, d, true)
	ident, err := d.identity(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	const plain = "hunter2-is-the-password"
	sealed, err := secrets.Seal(ident.Recipient(), api.SecretBytes(plain))
	if err != nil {
		t.Fatal(err)
	}
	withSecret := webStack("registry.example/app:1", 0, "    secrets: [pw]\nsecrets:\n  pw:\n    file: ./pw.age\n")
	first := repo.commit("secret", map[string]string{"web/compose.yaml": withSecret, "web/pw.age": string(sealed)})
	out, errOut, code := run(t, "diff", "--socket", socket)
	if code != diffDiffers || !strings.Contains(out, "+ secret  web_pw (create)") || strings.Contains(out+errOut, plain) {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	setSuspended(t, d, false)
	waitSynced(t, socket, first)
	setSuspended(t, d, true)

	// Rotated: the diff shows both keyed hashes, never the content.
	resealed, err := secrets.Seal(ident.Recipient(), api.SecretBytes(plain+"-rotated"))
	if err != nil {
		t.Fatal(err)
	}
	repo.commit("rotate", map[string]string{"web/pw.age": string(resealed)})
	out, errOut, code = run(t, "diff", "--socket", socket)
	js, _, _ := run(t, "diff", "--socket", socket, "-o", "json")
	want := fmt.Sprintf("data_hash: %q -> %q", ident.Hash(api.SecretBytes(plain)), ident.Hash(api.SecretBytes(plain+"-rotated")))
	if code != diffDiffers || !strings.Contains(out, "~ secret  web_pw (update)") || !strings.Contains(out, want) {
		t.Fatalf("rotated: exit %d, want %s\n%s%s", code, want, out, errOut)
	}
	if strings.Contains(out+errOut+js, plain) {
		t.Fatal("secret plaintext in gitorc diff's output")
	}
	// Sealed for another cluster: a problem, named by file.
	other, _ := secrets.GenerateIdentity()
	foreign, _ := secrets.Seal(other.Recipient(), api.SecretBytes(plain))
	repo.commit("foreign", map[string]string{"web/pw.age": string(foreign)})
	out, errOut, code = run(t, "diff", "--socket", socket)
	if code != diffError || !strings.Contains(out, "web/pw.age: secret") || strings.Contains(out+errOut, plain) {
		t.Errorf("foreign secret: exit %d\n%s%s", code, out, errOut)
	}
}

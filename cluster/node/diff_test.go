package node

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/gitorc/gitorc/reconcile"
	"github.com/gitorc/gitorc/secrets"
)

// diffOf asks the node for a diff, as gitorc diff does, and returns it
// with the answer as it came (the JSON gitorc diff -o json prints).
func diffOf(t *testing.T, socket string, req controlapi.DiffRequest) (reconcile.Diff, string, error) {
	t.Helper()
	plan, err := client.Unix(socket).Diff(context.Background(), req)
	if err != nil {
		return reconcile.Diff{}, "", err
	}
	var res reconcile.Diff
	if err := json.Unmarshal(plan, &res); err != nil {
		t.Fatalf("decode the diff: %v\n%s", err, plan)
	}
	return res, string(plan), nil
}

// stepOf is the step of a diff on object kind/name, nil if none.
func stepOf(d reconcile.Diff, kind reconcile.Kind, name string) *reconcile.Step {
	for i, s := range d.Changeset.Steps {
		if s.Kind == kind && s.Name == name {
			return &d.Changeset.Steps[i]
		}
	}
	return nil
}

// hasChange reports whether the step changes path from from to to.
func hasChange(s *reconcile.Step, path, from, to string) bool {
	if s == nil {
		return false
	}
	for _, c := range s.Changes {
		if c.Path == path && c.From == from && c.To == to {
			return true
		}
	}
	return false
}

// changesTo reports whether some step of the diff sets a field to to.
func changesTo(d reconcile.Diff, to string) bool {
	for _, s := range d.Changeset.Steps {
		for _, c := range s.Changes {
			if c.To == to {
				return true
			}
		}
	}
	return false
}

// counts are a changeset's creations, updates and deletions.
func counts(d reconcile.Diff) [3]int {
	n := d.Changeset.Counts()
	return [3]int{n[reconcile.Create], n[reconcile.Update], n[reconcile.Delete]}
}

// hasProblem reports whether a problem of the diff holds s.
func hasProblem(d reconcile.Diff, s string) bool {
	for _, p := range d.Changeset.Problems {
		if strings.Contains(p, s) {
			return true
		}
	}
	return false
}

// gitorc diff against a real daemon following a local repository (the
// diff the control API answers, which gitorc diff prints and turns into
// its exit code): nothing, changes and problems, for HEAD, a revision and
// a working tree; drift from gitorc service scale; secrets by hash only.
func TestDiffOnDaemon(t *testing.T) {
	repo := newStacksRepo(t)
	c1 := repo.commit("first", map[string]string{
		"web/compose.yaml": webStack("registry.example/app:1", 0, ""),
		"db/compose.yaml":  webStack("registry.example/pg:16", 0, ""),
	})
	d, socket := gitopsNode(t, repo, time.Hour)
	// Automatic syncs off: the commits below stay undeployed.
	setSuspended(t, d, true)

	diff := func(req controlapi.DiffRequest) (reconcile.Diff, string) {
		t.Helper()
		res, js, err := diffOf(t, socket, req)
		if err != nil {
			t.Fatalf("diff %+v: %v", req, err)
		}
		return res, js
	}
	res, js := diff(controlapi.DiffRequest{})
	if res.Differs() || len(res.Changeset.Problems) > 0 || res.Revision != c1 || counts(res) != [3]int{} {
		t.Fatalf("nothing changed: %s", js)
	}

	type step struct {
		kind   reconcile.Kind
		name   string
		action reconcile.Action
		change *reconcile.Change // one of the step's changes, when not nil
	}
	tests := []struct {
		name   string
		files  map[string]string
		want   []step
		counts *[3]int // create, update, delete; nil: not checked
	}{
		{"image changed", map[string]string{"web/compose.yaml": webStack("registry.example/app:2", 0, "")},
			[]step{{reconcile.KindService, "web_app", reconcile.Update,
				&reconcile.Change{Path: "task.container.image", From: `"registry.example/app:1"`, To: `"registry.example/app:2"`}}},
			&[3]int{0, 1, 0}},
		{"replicas changed", map[string]string{"web/compose.yaml": webStack("registry.example/app:1", 3, "")},
			[]step{{reconcile.KindService, "web_app", reconcile.Update, &reconcile.Change{Path: "replicas", From: "0", To: "3"}}}, nil},
		{"service added", map[string]string{"web/compose.yaml": webStack("registry.example/app:1", 0,
			"  worker:\n    image: registry.example/worker:1\n    deploy:\n      replicas: 0\n")},
			[]step{{reconcile.KindService, "web_worker", reconcile.Create, nil}}, &[3]int{1, 0, 0}},
		{"service removed (prune)", map[string]string{"db/compose.yaml": ""},
			[]step{{reconcile.KindService, "db_app", reconcile.Delete, nil}, {reconcile.KindNetwork, "db_default", reconcile.Delete, nil}},
			&[3]int{0, 0, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			head := repo.commit(tc.name, tc.files)
			res, js := diff(controlapi.DiffRequest{})
			if !res.Differs() || len(res.Changeset.Problems) > 0 {
				t.Fatalf("no difference, or problems: %s", js)
			}
			if res.Revision != head {
				t.Errorf("not HEAD %s: %s", head[:7], res.Revision)
			}
			for _, w := range tc.want {
				s := stepOf(res, w.kind, w.name)
				if s == nil || s.Action != w.action || (w.change != nil && !hasChange(s, w.change.Path, w.change.From, w.change.To)) {
					t.Errorf("diff lacks %s %s (%s) %+v: %s", w.kind, w.name, w.action, w.change, js)
				}
			}
			if tc.counts != nil && counts(res) != *tc.counts {
				t.Errorf("create, update, delete %v, want %v: %s", counts(res), *tc.counts, js)
			}
			// Back to the first commit's stacks: nothing differs again.
			repo.git("revert", "--no-edit", "HEAD")
			if res, js := diff(controlapi.DiffRequest{}); res.Differs() || len(res.Changeset.Problems) > 0 {
				t.Errorf("after the revert: %s", js)
			}
		})
	}

	// A revision: the commit of an image change, by an abbreviated hash.
	changed := repo.commit("image 3", map[string]string{"web/compose.yaml": webStack("registry.example/app:3", 0, "")})
	repo.git("revert", "--no-edit", "HEAD")
	res, js = diff(controlapi.DiffRequest{Revision: changed[:9]})
	if !res.Differs() || !changesTo(res, `"registry.example/app:3"`) || res.Revision != changed {
		t.Errorf("a revision: %s", js)
	}
	if _, _, err := diffOf(t, socket, controlapi.DiffRequest{Revision: "nosuchbranch"}); err == nil || !strings.Contains(err.Error(), "nosuchbranch not found") {
		t.Errorf("unknown revision: %v", err)
	}
	// A local working tree, not committed.
	repo.write(map[string]string{"web/compose.yaml": webStack("registry.example/app:4", 0, "")})
	res, js = diff(controlapi.DiffRequest{Dir: repo.dir})
	if !res.Differs() || res.Dir != repo.dir || !changesTo(res, `"registry.example/app:4"`) {
		t.Errorf("a local tree: %s", js)
	}
	repo.git("checkout", "--", ".")

	// Broken YAML: a problem, with its file:line.
	repo.commit("broken", map[string]string{"web/compose.yaml": "services:\n  app:\n    image: [x\n"})
	res, js = diff(controlapi.DiffRequest{})
	if len(res.Changeset.Problems) != 1 || !hasProblem(res, "web/compose.yaml:3") {
		t.Errorf("broken YAML: %s", js)
	}
	repo.git("revert", "--no-edit", "HEAD")

	// Drift: a service scaled by hand.
	if _, err := client.Unix(socket).Scale(context.Background(), "web_app", 2, 0); err != nil {
		t.Fatalf("scale: %v", err)
	}
	res, js = diff(controlapi.DiffRequest{})
	if s := stepOf(res, reconcile.KindService, "web_app"); !res.Differs() || s == nil || s.Action != reconcile.Update || !s.Drift ||
		!hasChange(s, "replicas", "2", "0") {
		t.Errorf("drift: %s", js)
	}
	// Suspended, the drift stays: self-heal waits for automatic syncs.
	if spec := specOf(t, d, "web_app"); spec.Replicas != 2 {
		t.Errorf("replicas %d while suspended", spec.Replicas)
	}
}

// Secrets are opened on the daemon and shown by their keyed hash only:
// never the plaintext, anywhere in the diff the API answers (which
// gitorc diff prints, as text or JSON).
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
	res, js, err := diffOf(t, socket, controlapi.DiffRequest{})
	if s := stepOf(res, reconcile.KindSecret, "web_pw"); err != nil || !res.Differs() || s == nil || s.Action != reconcile.Create ||
		strings.Contains(js, plain) {
		t.Fatalf("%v: %s", err, js)
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
	res, js, err = diffOf(t, socket, controlapi.DiffRequest{})
	from, to := fmt.Sprintf("%q", ident.Hash(api.SecretBytes(plain))), fmt.Sprintf("%q", ident.Hash(api.SecretBytes(plain+"-rotated")))
	if s := stepOf(res, reconcile.KindSecret, "web_pw"); err != nil || !res.Differs() || s == nil || s.Action != reconcile.Update ||
		!hasChange(s, "data_hash", from, to) {
		t.Fatalf("rotated: %v, want data_hash %s -> %s: %s", err, from, to, js)
	}
	if strings.Contains(js, plain) {
		t.Fatal("secret plaintext in the diff")
	}
	// Sealed for another cluster: a problem, named by file.
	other, _ := secrets.GenerateIdentity()
	foreign, _ := secrets.Seal(other.Recipient(), api.SecretBytes(plain))
	repo.commit("foreign", map[string]string{"web/pw.age": string(foreign)})
	res, js, err = diffOf(t, socket, controlapi.DiffRequest{})
	if err != nil || !hasProblem(res, "web/pw.age: secret") || strings.Contains(js, plain) {
		t.Errorf("foreign secret: %v: %s", err, js)
	}
}

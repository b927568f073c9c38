//go:build porting

package node

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/cluster/store/storetest"
	"github.com/google/go-cmp/cmp"
)

// specs is every service spec of the cluster, by name.
func specs(t *testing.T, d *daemon) map[string]api.ServiceSpec {
	t.Helper()
	out := map[string]api.ServiceSpec{}
	err := d.store.View(func(tx store.ReadTx) error {
		svcs, err := store.Find[api.Service](tx, store.All())
		for _, s := range svcs {
			out[s.Spec.Name] = s.Spec
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// On a real daemon following a local repository: drift restored by
// self-heal, gitorc history, gitorc rollback --to pinning an older
// revision until the next commit, a broken commit changing nothing.
func TestSelfHealHistoryRollbackOnDaemon(t *testing.T) {
	repo := newStacksRepo(t)
	c1 := repo.commit("one", map[string]string{"web/compose.yaml": webStack("registry.example/app:1", 0, "")})
	d, socket := gitopsNode(t, repo, 500*time.Millisecond)

	// Self-heal: a service scaled by hand is put back by the next poll.
	if _, errOut, code := run(t, "service", "scale", "--socket", socket, "web_app=3"); code != 0 {
		t.Fatalf("scale: %s", errOut)
	}
	if err := storetest.WaitFor(func() bool { return specOf(t, d, "web_app").Replicas == 0 }, 30*time.Second); err != nil {
		t.Fatalf("drift never restored: replicas %d", specOf(t, d, "web_app").Replicas)
	}
	hist := historyOf(t, socket)
	last := hist[len(hist)-1]
	if last.Trigger != api.TriggerSelfHeal || last.Revision != c1 || last.Result != api.SyncSynced ||
		!strings.Contains(last.Message, "service web_app (replicas) restored to revision "+c1[:7]) {
		t.Errorf("self-heal record %+v", last)
	}
	if st, _ := syncState(t, socket); st.Phase != api.SyncSynced || st.Revision != c1 {
		t.Errorf("state after self-heal %+v", st)
	}

	// A second revision, then a rollback to the first.
	c2 := repo.commit("two", map[string]string{"web/compose.yaml": webStack("registry.example/app:2", 0, "")})
	waitSynced(t, socket, c2)
	out, errOut, code := run(t, "rollback", "--socket", socket, "--to", c1[:7], "--wait")
	if code != 0 || !strings.Contains(out, "pinned to "+c1[:7]+" by rollback (until the next commit or gitorc sync)") ||
		!strings.Contains(out, "synced: ") {
		t.Fatalf("rollback: exit %d\n%s%s", code, out, errOut)
	}
	if img := specOf(t, d, "web_app").Task.Container.Image; img != "registry.example/app:1" {
		t.Errorf("after the rollback: image %s", img)
	}
	status, _, _ := run(t, "status", "--socket", socket)
	if !strings.Contains(status, "pinned to "+c1[:7]+" by rollback (until the next commit or gitorc sync)") {
		t.Errorf("status does not say pinned:\n%s", status)
	}
	hist = historyOf(t, socket)
	if last := hist[len(hist)-1]; last.Trigger != api.TriggerRollback || last.Revision != c1 || last.Result != api.SyncSynced {
		t.Errorf("rollback record %+v", last)
	}
	text, _, code := run(t, "history", "--socket", socket)
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if code != 0 || len(lines) != len(hist)+1 || !strings.HasPrefix(lines[0], "REVISION") ||
		!strings.HasPrefix(lines[len(lines)-1], c1[:7]) || !strings.Contains(lines[len(lines)-1], "rollback") {
		t.Errorf("history: exit %d\n%s", code, text)
	}

	// Refused: a revision nobody knows, or one that failed.
	if _, errOut, code := run(t, "rollback", "--socket", socket, "--to", "ffffffff"); code == 0 || !strings.Contains(errOut, "ffffffff not found") {
		t.Errorf("unknown revision: exit %d %s", code, errOut)
	}

	// The next commit releases the pin and deploys.
	c3 := repo.commit("three", map[string]string{"web/compose.yaml": webStack("registry.example/app:3", 0, "")})
	st := waitSynced(t, socket, c3)
	if st.Pin != nil || specOf(t, d, "web_app").Task.Container.Image != "registry.example/app:3" {
		t.Errorf("pin not released by the new commit: %+v", st)
	}
	status, _, _ = run(t, "status", "--socket", socket)
	if strings.Contains(status, "pinned") {
		t.Errorf("status still says pinned:\n%s", status)
	}

	// A broken commit changes nothing; it is failed, with file:line.
	before := specs(t, d)
	broken := repo.commit("broken", map[string]string{"web/compose.yaml": webStack("registry.example/app:4", 0, "    replcas: 2\n")})
	if err := storetest.WaitFor(func() bool {
		st, err := syncState(t, socket)
		return err == nil && slices.Contains(st.FailedRevisions, broken)
	}, 30*time.Second); err != nil {
		t.Fatal("the broken commit was never failed")
	}
	status, _, _ = run(t, "status", "--socket", socket)
	if !strings.Contains(status, "sync:       failed") || !strings.Contains(status, "web/compose.yaml:6") {
		t.Errorf("status of a broken commit:\n%s", status)
	}
	if diff := cmp.Diff(before, specs(t, d)); diff != "" {
		t.Errorf("a broken commit changed the cluster (-before +after):\n%s", diff)
	}
	if _, errOut, code := run(t, "rollback", "--socket", socket, "--to", broken); code == 0 || !strings.Contains(errOut, "failed before") {
		t.Errorf("rollback to a failed revision: exit %d %s", code, errOut)
	}

	// The whole story, once each, in order; no record twice.
	var got []string
	ids := map[string]bool{}
	for _, h := range historyOf(t, socket) {
		if ids[h.ID] {
			t.Errorf("record %s twice", h.ID)
		}
		ids[h.ID] = true
		name := map[string]string{c1: "c1", c2: "c2", c3: "c3", broken: "broken"}[h.Revision]
		trigger := h.Trigger.String()
		if h.Trigger == api.TriggerPoll || h.Trigger == api.TriggerWatch {
			trigger = "auto"
		}
		got = append(got, fmt.Sprintf("%s %s %s", name, trigger, h.Result))
	}
	want := []string{"c1 auto synced", "c1 self-heal synced", "c2 auto synced", "c1 rollback synced", "c3 auto synced", "broken auto failed"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
}

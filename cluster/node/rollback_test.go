package node

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi/client"
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

// syncOutcome waits until the sync request id ended, as gitorc sync
// --wait and gitorc rollback --wait do, and returns it with its outcome.
func syncOutcome(t *testing.T, socket, id string) api.SyncRequest {
	t.Helper()
	var req api.SyncRequest
	if err := storetest.WaitFor(func() bool {
		var err error
		req, err = client.Unix(socket).SyncRequest(context.Background(), id)
		return err == nil && req.Done()
	}, 60*time.Second); err != nil {
		t.Fatalf("sync request %s never ended: %+v", id, req)
	}
	return req
}

// manualSync asks for a sync now and waits for its outcome, as gitorc
// sync --wait does; a sync that failed or degraded fails the test (gitorc
// sync --wait's exit code 1).
func manualSync(t *testing.T, socket string) api.SyncRequest {
	t.Helper()
	req, err := client.Unix(socket).Sync(context.Background())
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	done := syncOutcome(t, socket, req.ID)
	if done.Result == api.SyncFailed || done.Result == api.SyncDegraded {
		t.Fatalf("sync: %s: %s", done.Result, done.Message)
	}
	return done
}

// On a real daemon following a local repository: drift restored by
// self-heal, the sync history, a rollback to an older revision (what
// gitorc rollback --to asks) pinning it until the next commit, a broken
// commit changing nothing.
func TestSelfHealHistoryRollbackOnDaemon(t *testing.T) {
	ctx := context.Background()
	repo := newStacksRepo(t)
	c1 := repo.commit("one", map[string]string{"web/compose.yaml": webStack("registry.example/app:1", 0, "")})
	d, socket := gitopsNode(t, repo, 500*time.Millisecond)
	c := client.Unix(socket)

	// Self-heal: a service scaled by hand is put back by the next poll.
	if _, err := c.Scale(ctx, "web_app", 3, 0); err != nil {
		t.Fatalf("scale: %v", err)
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

	// A second revision, then a rollback to the first, waited for as
	// gitorc rollback --wait does.
	c2 := repo.commit("two", map[string]string{"web/compose.yaml": webStack("registry.example/app:2", 0, "")})
	waitSynced(t, socket, c2)
	ans, err := c.Rollback(ctx, c1[:7])
	if err != nil || ans.Pin.Revision != c1 || ans.Request == "" {
		t.Fatalf("rollback: %+v %v", ans, err)
	}
	if req := syncOutcome(t, socket, ans.Request); req.Result != api.SyncSynced {
		t.Fatalf("rollback's sync: %s: %s", req.Result, req.Message)
	}
	if img := specOf(t, d, "web_app").Task.Container.Image; img != "registry.example/app:1" {
		t.Errorf("after the rollback: image %s", img)
	}
	if pin := statusOf(t, socket).State.Pin; pin == nil || pin.Revision != c1 {
		t.Errorf("status does not say pinned to %s: %+v", c1[:7], pin)
	}
	hist = historyOf(t, socket)
	if last := hist[len(hist)-1]; last.Trigger != api.TriggerRollback || last.Revision != c1 || last.Result != api.SyncSynced {
		t.Errorf("rollback record %+v", last)
	}

	// Refused: a revision nobody knows, or one that failed.
	if _, err := c.Rollback(ctx, "ffffffff"); err == nil || !strings.Contains(err.Error(), "ffffffff not found") {
		t.Errorf("unknown revision: %v", err)
	}

	// The next commit releases the pin and deploys.
	c3 := repo.commit("three", map[string]string{"web/compose.yaml": webStack("registry.example/app:3", 0, "")})
	st := waitSynced(t, socket, c3)
	if st.Pin != nil || specOf(t, d, "web_app").Task.Container.Image != "registry.example/app:3" {
		t.Errorf("pin not released by the new commit: %+v", st)
	}
	if pin := statusOf(t, socket).State.Pin; pin != nil {
		t.Errorf("status still says pinned: %+v", pin)
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
	if st := statusOf(t, socket).State; st.Phase != api.SyncFailed || !strings.Contains(st.Message, "web/compose.yaml:6") {
		t.Errorf("status of a broken commit: %+v", st)
	}
	if diff := cmp.Diff(before, specs(t, d)); diff != "" {
		t.Errorf("a broken commit changed the cluster (-before +after):\n%s", diff)
	}
	if _, err := c.Rollback(ctx, broken); err == nil || !strings.Contains(err.Error(), "failed before") {
		t.Errorf("rollback to a failed revision: %v", err)
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

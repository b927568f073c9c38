package node

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/cluster/store/storetest"
	"github.com/google/go-cmp/cmp"
)

// runningImages counts a service's running tasks by image.
func runningImages(t *testing.T, d *daemon, service string) map[string]int {
	t.Helper()
	out := map[string]int{}
	err := d.store.View(func(tx store.ReadTx) error {
		svcs, err := store.Find[api.Service](tx, store.ByName(service))
		if err != nil || len(svcs) == 0 {
			return err
		}
		tasks, err := store.Find[api.Task](tx, store.ByService(svcs[0].ID))
		for _, tk := range tasks {
			if tk.Status.State == api.TaskRunning && tk.DesiredState == api.TaskRunning {
				out[tk.Spec.Container.Image]++
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The GitOps loop on a real node with containers: a commit whose image
// cannot start fails its rollout, the cluster goes back to the previous
// good revision's specs (and tasks), the commit is marked failed, the
// sync status and history say so, it is not retried while HEAD stays on
// it, and the next good commit deploys normally.
// (A short name: containerd's socket lives under the test's temporary
// directory, and a unix socket path must stay under 108 bytes.)
func TestGitOpsRevert_Root(t *testing.T) {
	tmp := t.TempDir()
	reg := testRegistry(t, tmp)
	image := reg.Addr + "/gitorc/busybox:1"
	stack := func(image string, replicas int) string {
		return fmt.Sprintf("services:\n  app:\n    image: %s\n    command: [\"sleep\", \"3600\"]\n    deploy:\n      replicas: %d\n"+
			"      update_config:\n        monitor: 1s\n", image, replicas)
	}
	repo := newStacksRepo(t)
	good := repo.commit("good", map[string]string{"web/compose.yaml": stack(image, 2)})

	dir := filepath.Join(tmp, "node")
	d, err := testBootstrap(testFlags{dataDir: dir, listen: freeAddr(t), raftListen: freeAddr(t), insecure: []string{reg.Addr},
		repo: repo.dir, branch: "main", interval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	startNode(t, d, "node")
	socket := socketFile(dir)
	t.Cleanup(func() {
		// Whatever happened, the stacks go before the node: pruned by Git.
		repo.commit("teardown", map[string]string{"web/compose.yaml": ""})
		_ = storetest.WaitFor(func() bool { return liveTasks(d.store) == 0 }, 60*time.Second)
	})
	waitSynced(t, socket, good)
	if got := runningImages(t, d, "web_app"); got[image] != 2 {
		t.Fatalf("synced without its tasks running: %v", got)
	}

	// An image that cannot be pulled: the rollout fails.
	missing := reg.Addr + "/gitorc/busybox:missing"
	bad := repo.commit("bad image", map[string]string{"web/compose.yaml": stack(missing, 2)})
	var st api.SyncState
	if err := storetest.WaitFor(func() bool {
		st, err = syncState(t, socket)
		return err == nil && st.InFlight == nil && st.Phase == api.SyncDegraded && st.Revision == good
	}, 3*time.Minute); err != nil {
		t.Fatalf("never reverted: %+v", st)
	}
	if !strings.Contains(st.Message, "revision "+bad[:7]+" degraded") || !strings.Contains(st.Message, "reverted to "+good[:7]) ||
		st.LastGoodRevision != good || len(st.FailedRevisions) != 1 || st.FailedRevisions[0] != bad {
		t.Errorf("state after the revert %+v", st)
	}
	if img := specOf(t, d, "web_app").Task.Container.Image; img != image {
		t.Errorf("spec not back on the good image: %s", img)
	}
	var running map[string]int
	if err := storetest.WaitFor(func() bool {
		running = runningImages(t, d, "web_app")
		return running[image] == 2 && len(running) == 1
	}, time.Minute); err != nil {
		t.Errorf("tasks not back on the good image: %v", running)
	}
	if st := statusOf(t, socket).State; st.Phase != api.SyncDegraded || !strings.Contains(st.Message, "reverted to "+good[:7]) ||
		len(st.FailedRevisions) != 1 || st.FailedRevisions[0] != bad {
		t.Errorf("status does not say degraded, reverted to %s, %s failed: %+v", good[:7], bad[:7], st)
	}
	want := []string{good[:7] + " synced", bad[:7] + " degraded", good[:7] + " revert/synced"}
	summary := func() []string {
		var out []string
		for _, h := range historyOf(t, socket) {
			s := h.Revision[:7] + " " + h.Result.String()
			if h.Trigger == api.TriggerRevert {
				s = h.Revision[:7] + " revert/" + h.Result.String()
			}
			out = append(out, s)
		}
		return out
	}
	if diff := cmp.Diff(want, summary()); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}

	// No retry loop: polls go on (the fetch time moves twice) and leave
	// the failed commit alone.
	seen := st.LastFetch
	polls := 0
	if err := storetest.WaitFor(func() bool {
		s, err := syncState(t, socket)
		if err == nil && s.LastFetch.After(seen) {
			seen, polls = s.LastFetch, polls+1
		}
		return polls >= 2
	}, 30*time.Second); err != nil {
		t.Fatal("the loop stopped polling")
	}
	if diff := cmp.Diff(want, summary()); diff != "" {
		t.Errorf("the failed commit was retried (-want +got):\n%s", diff)
	}
	if img := specOf(t, d, "web_app").Task.Container.Image; img != image {
		t.Errorf("spec moved off the good image: %s", img)
	}

	// The next good commit deploys normally.
	next := repo.commit("scale up", map[string]string{"web/compose.yaml": stack(image, 3)})
	st = waitSynced(t, socket, next)
	if st.LastGoodRevision != next {
		t.Errorf("state %+v", st)
	}
	if got := runningImages(t, d, "web_app"); got[image] != 3 {
		t.Errorf("next commit's tasks: %v", got)
	}
}

package node

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/cluster/store/storetest"
	"github.com/gitorc/gitorc/reconcile/gittest"
	"github.com/gitorc/gitorc/reconcile/storecluster"
)

// stacksRepo is a local Git repository of stacks, driven with the git CLI.
type stacksRepo struct {
	*gittest.Repo
	t   *testing.T
	dir string
}

func newStacksRepo(t *testing.T) *stacksRepo {
	t.Helper()
	g := gittest.New(t, filepath.Join(t.TempDir(), "stacks"))
	return &stacksRepo{Repo: g, t: t, dir: g.Dir}
}

func (r *stacksRepo) git(args ...string) string { r.t.Helper(); return r.Git(args...) }

func (r *stacksRepo) write(files map[string]string) { r.t.Helper(); r.Write(files) }

// commit writes files and commits them; it returns the commit.
func (r *stacksRepo) commit(msg string, files map[string]string) string {
	r.t.Helper()
	return r.Commit(msg, files)
}

// webStack is a stack whose service needs no worker to be synced: no
// replicas, or as many as asked of an image that is never pulled.
func webStack(image string, replicas int, extra string) string {
	return fmt.Sprintf("services:\n  app:\n    image: %s\n    deploy:\n      replicas: %d\n%s", image, replicas, extra)
}

// gitopsNode bootstraps a manager without a worker that follows repo,
// and waits until it synced HEAD.
func gitopsNode(t *testing.T, repo *stacksRepo, interval time.Duration) (*daemon, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "m")
	d, err := testBootstrap(testFlags{dataDir: dir, listen: freeAddr(t), raftListen: freeAddr(t), noWorker: true,
		repo: repo.dir, branch: "main", interval: interval})
	if err != nil {
		t.Fatal(err)
	}
	startNode(t, d, "manager")
	waitSynced(t, socketFile(dir), repo.git("rev-parse", "HEAD"))
	return d, socketFile(dir)
}

// syncState reads the node's sync state through its control socket.
func syncState(t *testing.T, socket string) (api.SyncState, error) {
	t.Helper()
	rep, err := client.Unix(socket).SyncStatus(context.Background())
	return rep.State, err
}

// waitSynced waits until the node runs commit, synced.
func waitSynced(t *testing.T, socket, commit string) api.SyncState {
	t.Helper()
	var st api.SyncState
	if err := storetest.WaitFor(func() bool {
		var err error
		st, err = syncState(t, socket)
		return err == nil && st.Revision == commit && st.Phase == api.SyncSynced && st.InFlight == nil
	}, 60*time.Second); err != nil {
		t.Fatalf("never synced %s: %+v", commit[:7], st)
	}
	return st
}

// setSuspended suspends or resumes automatic syncs, as gitorc suspend
// and resume do.
func setSuspended(t *testing.T, d *daemon, on bool) {
	t.Helper()
	if _, err := storecluster.New(d.store).UpdateSync(context.Background(), func(s *api.SyncState) error {
		s.Suspended = on
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// specOf returns a service's spec, nil when there is none.
func specOf(t *testing.T, d *daemon, name string) *api.ServiceSpec {
	t.Helper()
	var spec *api.ServiceSpec
	err := d.store.View(func(tx store.ReadTx) error {
		svcs, err := store.Find[api.Service](tx, store.ByName(name))
		if len(svcs) == 1 {
			spec = &svcs[0].Spec
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

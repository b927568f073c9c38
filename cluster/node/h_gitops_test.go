package node

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/gitorc/gitorc/cluster/store/storetest"
	"github.com/gitorc/gitorc/e2e/gitserver"
)

// startLoggedNode runs a node and returns its log (for leak checks).
func startLoggedNode(t *testing.T, d *daemon) *strings.Builder {
	t.Helper()
	logs := &strings.Builder{}
	d.log = slog.New(slog.NewTextHandler(&syncWriter{w: logs}, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v", err)
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs.String())
		}
	})
	return logs
}

// statusOf returns the sync report gitorc status prints.
func statusOf(t *testing.T, socket string) controlapi.SyncReport {
	t.Helper()
	rep, err := client.Unix(socket).SyncStatus(context.Background())
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	return rep
}

// zeroReplicaStack is a stack whose one service has no replicas: tests
// of the GitOps loop that need no containers deploy it.
func zeroReplicaStack(image string) map[string]string {
	return map[string]string{"app/compose.yaml": "services:\n  web:\n    image: " + image + "\n    deploy:\n      replicas: 0\n"}
}

// servedRepo is a Git repository under dir whose main branch holds
// zeroReplicaStack("busybox:1") (commit first), served by git
// http-backend until the test ends.
func servedRepo(t *testing.T, dir string) (repo *gitserver.Repo, srv *gitserver.Server, first string) {
	t.Helper()
	repo, err := gitserver.NewRepo(filepath.Join(dir, "git"))
	if err != nil {
		t.Fatal(err)
	}
	if first, err = repo.Commit("main", "first", zeroReplicaStack("busybox:1")); err != nil {
		t.Fatal(err)
	}
	if srv, err = gitserver.Serve(repo, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return repo, srv, first
}

// webhookManager bootstraps (without running it) a manager that runs no
// tasks, follows a repository served by git http-backend (polling only
// hourly) and serves webhooks signed with secret on hookAddr.
func webhookManager(t *testing.T, secret string) (repo *gitserver.Repo, first, dir, hookAddr string, d *daemon) {
	t.Helper()
	if why := gitserver.Requirements(); why != "" {
		t.Skip(why)
	}
	tmp := t.TempDir()
	repo, srv, first := servedRepo(t, tmp)
	hookAddr, dir = freeAddr(t), filepath.Join(tmp, "m")
	d, err := testBootstrap(testFlags{dataDir: dir, listen: freeAddr(t), raftListen: freeAddr(t), noWorker: true, plan: testPlan,
		repo: srv.URL, branch: "main", interval: time.Hour, webhookListen: hookAddr, webhookSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	return repo, first, dir, hookAddr, d
}

// waitSync polls the sync report (gitorc status) until cond holds, and returns that report.
func waitSync(t *testing.T, socket, what string, cond func(controlapi.SyncReport) bool) controlapi.SyncReport {
	t.Helper()
	var rep controlapi.SyncReport
	if err := storetest.WaitFor(func() bool {
		var err error
		rep, err = client.Unix(socket).SyncStatus(context.Background())
		return err == nil && cond(rep)
	}, 60*time.Second); err != nil {
		t.Fatalf("never %s: %+v", what, rep.State)
	}
	return rep
}

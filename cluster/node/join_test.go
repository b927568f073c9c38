package node

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/ca"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/gitorc/gitorc/cluster/dispatcher/wire"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/cluster/store/storetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// A worker joins with the token, runs the cluster's tasks, and a wrong
// token or a session without a certificate is refused.
func TestJoinWorker_Root(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	reg := testRegistry(t, tmp)

	// A manager that runs no tasks itself.
	mgr, err := testBootstrap(testFlags{dataDir: filepath.Join(tmp, "m"), listen: freeAddr(t), raftListen: freeAddr(t), noWorker: true})
	if err != nil {
		t.Fatal(err)
	}
	startNode(t, mgr, "manager")
	socket := socketFile(mgr.dir)
	api1 := client.Unix(socket)
	var tok controlapi.TokenReport
	if err := storetest.WaitFor(func() bool {
		var err error
		tok, err = api1.Token(ctx, "worker")
		return err == nil
	}, 30*time.Second); err != nil {
		t.Fatal("no worker token")
	}

	// A wrong token (right CA, wrong secret) is refused.
	good, _ := ca.ParseToken(tok.Token)
	wrong := strings.TrimSuffix(tok.Token, tok.Token[len(tok.Token)-4:]) + "zzzz"
	if _, err := testJoin(ctx, testFlags{dataDir: filepath.Join(tmp, "bad")}, wrong, mgr.state.Advertise); err == nil || !strings.Contains(err.Error(), "join refused") {
		t.Errorf("wrong token: %v", err)
	}
	// A client with no certificate reaches Join only, never a session.
	cc, err := grpc.NewClient(mgr.state.Advertise, grpc.WithTransportCredentials(credentials.NewTLS(ca.JoinClientConfig(good, nil))))
	if err != nil {
		t.Fatal(err)
	}
	stream, err := wire.OpenSession(ctx, cc)
	if err == nil {
		_ = stream.Send(&wire.WorkerMessage{Hello: &wire.Hello{}})
		_, err = stream.Recv()
	}
	cc.Close()
	if err == nil {
		t.Error("a session without a certificate was accepted")
	}

	// The worker joins and runs the stack.
	w, err := testJoin(ctx, testFlags{dataDir: filepath.Join(tmp, "w"), insecure: []string{reg.Addr}}, tok.Token, mgr.state.Advertise)
	if err != nil {
		t.Fatal(err)
	}
	if w.state.Role != api.RoleWorker || w.pki.current().Identity.Role != api.RoleWorker {
		t.Fatalf("joined as %s with a %s certificate", w.state.Role, w.pki.current().Identity.Role)
	}
	stopWorker := startNode(t, w, "worker")
	stack := fmt.Sprintf("services:\n  app:\n    image: %s/gitorc/busybox:1\n    command: [\"sleep\", \"3600\"]\n    deploy:\n      replicas: 2\n", reg.Addr)
	file := filepath.Join(tmp, "compose.yaml")
	if err := os.WriteFile(file, []byte(stack), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := deployStackFile(ctx, api1, "j", file); err != nil {
		t.Fatalf("deploy: %v", err)
	}
	var got map[string]int
	if err := storetest.WaitFor(func() bool { got = tasksOf(t, mgr.store, "j_app"); return got["running"] == 2 }, 90*time.Second); err != nil {
		t.Fatalf("tasks on the joined worker: %v", got)
	}
	var onWorker int
	_ = mgr.store.View(func(tx store.ReadTx) error {
		tasks, err := store.Find[api.Task](tx, store.ByNode(w.state.ID))
		onWorker = len(tasks)
		return err
	})
	if onWorker != 2 {
		t.Errorf("%d tasks on the joined worker, want 2", onWorker)
	}

	// A manager does not leave without --force; the worker leaves with
	// its tasks' containers stopped and its state deleted. (What gitorc
	// leave prints of the report: cmd/gitorc's TestLeaveOutwaitsTheCallTimeout.)
	if rep, err := api1.Leave(ctx, false); err == nil || !strings.Contains(err.Error(), "demote it first") {
		t.Errorf("a manager left without --force: %+v, %v", rep, err)
	}
	left, err := client.Unix(socketFile(w.dir)).WithTimeout(LeaveDrainTimeout+time.Minute).Leave(ctx, false)
	if err != nil || left.Node != w.state.ID || left.Role != api.RoleWorker {
		t.Fatalf("leave: %+v, %v; want node %s, a worker, left", left, err, w.state.ID)
	}
	stopWorker()
	if _, err := os.Stat(stateFile(w.dir)); err == nil {
		t.Error("the node that left kept its state")
	}
	if m := mountsUnder(w.dir); len(m) > 0 {
		t.Errorf("mounts left under the node that left: %v", m)
	}
	if out, _ := exec.Command("pgrep", "-f", "--", "-address "+w.dir+"/").Output(); len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("container shims left by the node that left: %s", out)
	}
	if cs, err := decodePlan(api1.RemoveStack(ctx, "j")); err != nil || !cs.HasChanges() {
		t.Errorf("rm: %+v, %v; want the stack's removal", cs, err)
	}
}

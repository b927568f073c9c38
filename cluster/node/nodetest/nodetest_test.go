package nodetest_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/gitorc/gitorc/cluster/node"
	"github.com/gitorc/gitorc/cluster/node/nodetest"
	"github.com/gitorc/gitorc/cluster/store/storetest"
)

// managers counts the nodes the cluster holds as managers.
func managers(t *testing.T, n *nodetest.Node) int {
	t.Helper()
	nodes, err := n.Client().Nodes(context.Background())
	if err != nil {
		return -1
	}
	c := 0
	for _, nd := range nodes {
		if nd.Spec.Role == api.RoleManager {
			c++
		}
	}
	return c
}

// A node's life through its public API, three in one process: a cluster
// is bootstrapped, two managers join it, one is demoted and promoted back
// (its role follows the cluster's word), then demoted again and leaves,
// deleting its state; the cluster forgets it.
func TestNodeLifecycle(t *testing.T) {
	tmp := t.TempDir()
	m1 := nodetest.Bootstrap(t, filepath.Join(tmp, "m1"), node.Bootstrap{Settings: node.Settings{NoWorker: true}})
	if m1.Report.Role != api.RoleManager || m1.Report.Worker || m1.Report.Recipient == "" {
		t.Fatalf("bootstrap report: %+v", m1.Report)
	}
	m2 := nodetest.Join(t, filepath.Join(tmp, "m2"), m1, "manager", node.Settings{NoWorker: true})
	m3 := nodetest.Join(t, filepath.Join(tmp, "m3"), m1, "manager", node.Settings{NoWorker: true})
	if m2.Report.Role != api.RoleManager || m3.Report.Role != api.RoleManager {
		t.Fatalf("joined as %s and %s, want managers", m2.Report.Role, m3.Report.Role)
	}
	if err := storetest.WaitFor(func() bool { return managers(t, m1) == 3 }, 60*time.Second); err != nil {
		t.Fatalf("managers = %d, want 3", managers(t, m1))
	}
	ctx := context.Background()
	id := m3.Report.Node
	setRole := func(want api.NodeRole) {
		t.Helper()
		if _, err := m1.Client().UpdateNode(ctx, id, controlapi.NodeUpdate{Role: want.String()}); err != nil {
			t.Fatalf("make m3 a %s: %v", want, err)
		}
	}
	// Demoted, the node leaves Raft and restarts as a worker: its socket
	// answers, but no longer serves the control API (a worker's serves
	// gitorc leave).
	demote := func() {
		t.Helper()
		setRole(api.RoleWorker)
		if err := storetest.WaitFor(func() bool {
			n, err := m1.Client().Node(ctx, id)
			_, infoErr := m3.Client().Info(ctx)
			return err == nil && n.Manager == nil && client.StatusOf(infoErr) == http.StatusNotFound
		}, 60*time.Second); err != nil {
			t.Fatal("m3 never became a worker")
		}
	}
	demote()
	// Promoted, it joins Raft again and serves the control API as a
	// manager that knows the leader.
	setRole(api.RoleManager)
	if err := storetest.WaitFor(func() bool {
		info, err := m3.Client().Info(ctx)
		return err == nil && info.Role == api.RoleManager && info.Leader != ""
	}, 60*time.Second); err != nil {
		t.Fatal("m3, promoted again, is no manager that knows the leader")
	}
	if _, err := m3.Client().Leave(ctx, false); err == nil {
		t.Fatal("a manager left without being demoted first")
	}
	demote()
	rep, err := m3.Client().Leave(ctx, false)
	if err != nil || rep.Node != id {
		t.Fatalf("leave: %+v, %v", rep, err)
	}
	m3.Stop() // its Run has returned: leaving stops the node
	if _, err := os.Stat(filepath.Join(m3.Dir, "node.json")); !os.IsNotExist(err) {
		t.Errorf("the left node's state is still there: %v", err)
	}
	if _, err := m1.Client().RemoveNode(ctx, id, false); err != nil {
		t.Fatalf("node rm of the node that left: %v", err)
	}
	if err := storetest.WaitFor(func() bool { return managers(t, m1) == 2 }, 60*time.Second); err != nil {
		t.Errorf("managers = %d after m3 left, want 2", managers(t, m1))
	}
}

package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/gitorc/gitorc/cluster/store/storetest"
	"github.com/gitorc/gitorc/reconcile"
	"github.com/gitorc/gitorc/secrets"
)

// A single-node cluster, for real: bootstrap (store, CA, mutual TLS,
// dispatcher, controllers, agent on its own containerd), then a stack with
// a sealed secret deployed by hand runs healthy, and removing it stops it.
func TestBootstrapDeployRemove_Root(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tmp := t.TempDir()
	reg := testRegistry(t, tmp)

	dataDir := filepath.Join(tmp, "node")
	d, err := testBootstrap(testFlags{dataDir: dataDir, listen: freeAddr(t), raftListen: freeAddr(t), insecure: []string{reg.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	d.log = slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil))
	done := make(chan error, 1)
	go func() { done <- d.run(ctx) }()
	socket := socketFile(dataDir)
	defer func() {
		// Whatever happened, stop the stack's containers before the node.
		_, _ = client.Unix(socket).RemoveStack(context.Background(), "demo")
		_ = storetest.WaitFor(func() bool { return liveTasks(d.store) == 0 }, 30*time.Second)
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v", err)
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs.String())
		}
	}()
	if err := storetest.WaitFor(func() bool {
		info, err := client.Unix(socket).Info(ctx)
		return err == nil && info.IsLeader
	}, 30*time.Second); err != nil {
		t.Fatal("the node never led its cluster")
	}

	// The stack: a sealed secret, a healthcheck that reads it.
	recipient, err := os.ReadFile(recipientPath(dataDir))
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := secrets.Seal(strings.TrimSpace(string(recipient)), api.SecretBytes("hunter2"))
	if err != nil {
		t.Fatal(err)
	}
	stackDir := filepath.Join(tmp, "stack")
	if err := os.MkdirAll(stackDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stackDir, "pw.age"), sealed, 0o644); err != nil {
		t.Fatal(err)
	}
	stack := fmt.Sprintf(`services:
  web:
    image: %s/gitorc/busybox:1
    command: ["sleep", "3600"]
    secrets: [pw]
    healthcheck:
      test: ["CMD-SHELL", "grep -q hunter2 /run/secrets/pw"]
      interval: 1s
      retries: 2
    deploy:
      replicas: 2
secrets:
  pw:
    file: ./pw.age
`, reg.Addr)
	file := filepath.Join(stackDir, "compose.yaml")
	if err := os.WriteFile(file, []byte(stack), 0o644); err != nil {
		t.Fatal(err)
	}
	plan, cs := mustDeployStackFile(t, socket, "demo", file)
	if !hasStepOf(cs, reconcile.KindService, "demo_web", reconcile.Create) || bytes.Contains(plan, []byte("hunter2")) {
		t.Errorf("deploy answered the plan:\n%s", plan)
	}
	var got map[string]int
	if err := storetest.WaitFor(func() bool {
		got = tasksOf(t, d.store, "demo_web")
		return got["running/healthy"] == 2
	}, 90*time.Second); err != nil {
		t.Fatalf("tasks never ran healthy: %v", got)
	}

	// What an operator sees, from the live node: the stack's tasks (gitorc
	// ps demo), its services with their replicas (gitorc service ls).
	c := client.Unix(socket)
	tasks, err := c.Tasks(ctx, client.TaskFilter{Stack: "demo"})
	running := 0
	for _, tk := range tasks {
		if tk.ServiceName == "demo_web" && tk.Status.State == api.TaskRunning {
			running++
		}
	}
	if err != nil || running < 2 {
		t.Errorf("the stack's tasks (gitorc ps): %d of demo_web running, %v: %+v", running, err, tasks)
	}
	svcs, err := c.Services(ctx)
	var web *controlapi.Service
	for i := range svcs {
		if svcs[i].Spec.Name == "demo_web" {
			web = &svcs[i]
		}
	}
	if err != nil || web == nil || web.Running != 2 || web.Desired != 2 {
		t.Errorf("the services (gitorc service ls): demo_web %+v, %v", web, err)
	}

	if rm, err := c.RemoveStack(ctx, "demo"); err != nil {
		t.Fatalf("rm: %v", err)
	} else if err := json.Unmarshal(rm, &cs); err != nil || !hasStepOf(cs, reconcile.KindService, "demo_web", reconcile.Delete) {
		t.Errorf("rm answered the plan (%v):\n%s", err, rm)
	}
	if err := storetest.WaitFor(func() bool { return liveTasks(d.store) == 0 }, 60*time.Second); err != nil {
		t.Fatal("tasks of the removed stack still run")
	}
}

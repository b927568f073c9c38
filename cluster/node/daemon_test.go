//go:build porting

package node

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/gitorc/gitorc/cluster/store/storetest"
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
	d, err := bootstrap(bootstrapFlags{dataDir: dataDir, listen: freeAddr(t), raftListen: freeAddr(t), insecure: []string{reg.Addr}})
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
		_, _, _ = run(t, "stack", "rm", "--socket", socket, "demo")
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
	out, errOut, code := run(t, "stack", "deploy", "--socket", socket, "-c", file, "demo")
	if code != 0 {
		t.Fatalf("deploy: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "+ service demo_web (create)") || strings.Contains(out+errOut, "hunter2") {
		t.Errorf("deploy printed:\n%s", out)
	}
	var got map[string]int
	if err := storetest.WaitFor(func() bool {
		got = tasksOf(t, d.store, "demo_web")
		return got["running/healthy"] == 2
	}, 90*time.Second); err != nil {
		t.Fatalf("tasks never ran healthy: %v", got)
	}

	// What an operator sees, from the live node.
	psOut, errOut, code := run(t, "ps", "--socket", socket, "demo")
	if code != 0 || strings.Count(psOut, "running") < 2 || !strings.Contains(psOut, "demo_web") {
		t.Errorf("gitorc ps: exit %d\n%s%s", code, psOut, errOut)
	}
	lsOut, errOut, code := run(t, "service", "ls", "--socket", socket)
	if code != 0 || !strings.Contains(lsOut, "demo_web") || !strings.Contains(lsOut, "2/2") {
		t.Errorf("gitorc service ls: exit %d\n%s%s", code, lsOut, errOut)
	}

	if _, errOut, code := run(t, "stack", "rm", "--socket", socket, "demo"); code != 0 {
		t.Fatalf("rm: exit %d: %s", code, errOut)
	}
	if err := storetest.WaitFor(func() bool { return liveTasks(d.store) == 0 }, 60*time.Second); err != nil {
		t.Fatal("tasks of the removed stack still run")
	}
}

package containerd_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/gitorc/gitorc/cluster/agent"
	"github.com/gitorc/gitorc/cluster/agent/containerd"
	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/netplane/cni"
	"github.com/gitorc/gitorc/netplane/netns"
)

// cniNetwork is the TaskNetwork of CNI's plugins alone (netplane's
// attacher, without the rest of the plane).
type cniNetwork struct{ a *cni.Attacher }

func (n cniNetwork) Attach(ctx context.Context, taskID, addr, nsPath string) (string, error) {
	p, err := netip.ParsePrefix(addr)
	if err != nil {
		return "", err
	}
	return "10.99.0.1", n.a.Attach(ctx, taskID, p, nsPath)
}

func (n cniNetwork) Detach(ctx context.Context, taskID, nsPath string) error {
	return n.a.Detach(ctx, taskID, nsPath)
}

// BenchmarkPrepareNetwork_Root measures Prepare of a task on the network
// plane (CNI's ptp and static plugins into a node namespace the benchmark
// makes) for an image already on the node: image check, attachment,
// container create. Run with
// `go test ./cluster/agent/containerd -run '^$' -bench PrepareNetwork -benchtime 20x`.
func BenchmarkPrepareNetwork_Root(b *testing.B) {
	requireRoot(b)
	ctx := context.Background()
	dir := b.TempDir()
	nodeNS := filepath.Join(dir, "node-ns")
	if err := netns.Create(nodeNS); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = netns.Remove(nodeNS) })
	a, err := cni.New(cni.Config{NS: netns.NS{Path: nodeNS}, CacheDir: filepath.Join(dir, "cni"), Logger: testLogger()})
	if err != nil {
		b.Skip(err)
	}
	dataDir := filepath.Join(dir, "data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		b.Fatal(err)
	}
	e, err := containerd.New(ctx, containerd.Config{DataDir: dataDir, Address: env.exec.Address(),
		InsecureRegistries: []string{env.reg.Addr}, Network: cniNetwork{a}, Logger: testLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = e.Close() })
	for i := 0; i < b.N; i++ {
		task := newTask(b, env.image, func(t *api.Task) { t.Addr = "10.99.0.7/24" })
		if err := e.Prepare(ctx, task, agent.Files{}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if _, err := e.Remove(ctx, task.ID); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

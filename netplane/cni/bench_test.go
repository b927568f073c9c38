package cni

import (
	"context"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
)

// BenchmarkAttach_Root measures one Attach and one Detach of a task
// namespace on a node namespace, what an idempotent Attach (CNI CHECK)
// costs, and, to show where the time goes, one bare exec of a plugin and
// the two ways of bringing lo up (the loopback plugin, or netlink in
// process as Attach does). Run with
// `go test ./netplane/cni -run '^$' -bench . -benchtime 100x`.
func BenchmarkAttach_Root(b *testing.B) {
	requireRoot(b)
	ctx := context.Background()
	n := newTestNode(b, 0)
	task := n.task(b, "task")
	addr := netip.MustParsePrefix("10.64.3.7/24")
	must := func(err error) {
		b.Helper()
		if err != nil {
			b.Fatal(err)
		}
	}

	b.Run("attach", func(b *testing.B) {
		for b.Loop() {
			must(n.a.Attach(ctx, "task", addr, task))
			b.StopTimer()
			must(n.a.Detach(ctx, "task", task))
			b.StartTimer()
		}
	})
	b.Run("detach", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			must(n.a.Attach(ctx, "task", addr, task))
			b.StartTimer()
			must(n.a.Detach(ctx, "task", task))
		}
	})
	b.Run("attach-again", func(b *testing.B) {
		must(n.a.Attach(ctx, "task", addr, task))
		for b.Loop() {
			must(n.a.Attach(ctx, "task", addr, task))
		}
		must(n.a.Detach(ctx, "task", task))
	})
	b.Run("plugin-exec", func(b *testing.B) {
		// One exec of a Go plugin binary answering VERSION: the floor of
		// every CNI call (ADD, CHECK and DEL each exec ptp and static).
		ptp := filepath.Join(DefaultPluginDirs[0], "ptp")
		for b.Loop() {
			cmd := exec.Command(ptp)
			cmd.Env = []string{"CNI_COMMAND=VERSION"}
			cmd.Stdin = strings.NewReader(`{"cniVersion":"1.0.0"}`)
			if out, err := cmd.Output(); err != nil {
				b.Fatalf("%v: %s", err, out)
			}
		}
	})
	b.Run("lo-loopback-plugin", func(b *testing.B) {
		conf, err := libcni.NetworkPluginConfFromBytes([]byte(`{"cniVersion":"1.0.0","name":"lo","type":"loopback"}`))
		must(err)
		c := libcni.NewCNIConfigWithCacheDir(DefaultPluginDirs, filepath.Join(n.dir, "lo-cache"), nil)
		rt := &libcni.RuntimeConf{ContainerID: "task", NetNS: task, IfName: "lo"}
		for b.Loop() {
			must(n.ns.Do(func() error { _, err := c.AddNetwork(ctx, conf, rt); return err }))
		}
	})
	b.Run("lo-netlink", func(b *testing.B) {
		for b.Loop() {
			must(linkUp(task, "lo"))
		}
	})
}

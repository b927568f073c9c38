package containerd_test

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/gitorc/gitorc/cluster/agent"
	"github.com/gitorc/gitorc/netplane/cni"
	"github.com/gitorc/gitorc/netplane/netns"
)

// BenchmarkStartFloor_Root is the floor of a deploy on this machine
// without gitorc's control plane: n containers started at once straight
// through containerd's client, each in a network namespace of its own
// attached with CNI's ptp and static plugins (as the network plane
// attaches tasks), until all run. Variants: "cni/shim-each" (a shim per
// container, as ctr run), "cni/shim-per-25" (gitorc's layout: 25 slots a
// shim, creates in one shim one at a time, as containerd 1.6 needs) and
// "nocni/shim-per-25" (the same without the network). It reports the wall
// time per deploy (ms/deploy) and the machine's CPU time per container
// (cpu-ms/task, every process, from /proc/stat). Run with
// `go test ./cluster/agent/containerd -run '^$' -bench StartFloor -benchtime 3x`.
func BenchmarkStartFloor_Root(b *testing.B) {
	requireRoot(b)
	ctx := namespaced(context.Background())
	cl := env.exec.Client()
	pulled := newTask(b, env.image) // the image on the node, as a deploy finds it
	if err := env.exec.Prepare(ctx, pulled, agent.Files{}); err != nil {
		b.Fatal(err)
	}
	if _, err := env.exec.Remove(ctx, pulled.ID); err != nil {
		b.Fatal(err)
	}
	img, err := cl.GetImage(ctx, "docker.io/"+env.image)
	if err != nil {
		if img, err = cl.GetImage(ctx, env.image); err != nil {
			b.Fatal(err)
		}
	}
	dir := b.TempDir()
	nodeNS := filepath.Join(dir, "node-ns")
	if err := netns.Create(nodeNS); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = netns.Remove(nodeNS) })
	att, err := cni.New(cni.Config{NS: netns.NS{Path: nodeNS}, CacheDir: filepath.Join(dir, "cni"), Logger: testLogger()})
	if err != nil {
		b.Skip(err)
	}
	for _, n := range []int{10, 50} {
		for _, v := range []struct {
			name    string
			cni     bool
			perShim int // 0: a shim each
		}{{"cni/shim-each", true, 0}, {"cni/shim-per-25", true, 25}, {"nocni/shim-per-25", false, 25}} {
			b.Run(fmt.Sprintf("n%d/%s", n, v.name), func(b *testing.B) {
				var wall, cpu time.Duration
				for i := 0; i < b.N; i++ {
					ids := make([]string, n)
					for j := range ids {
						ids[j] = fmt.Sprintf("floor-%d-%d", i, j)
					}
					var locks [2]sync.Mutex // a shim group's creates, one at a time
					start, cpu0 := time.Now(), machineCPU(b)
					errs := make(chan error, n)
					for j, id := range ids {
						go func() {
							opts := []oci.SpecOpts{oci.WithImageConfig(img), oci.WithProcessArgs("sleep", "3600")}
							if v.cni {
								ns := filepath.Join(dir, id)
								if err := netns.Create(ns); err != nil {
									errs <- err
									return
								}
								addr := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 99, 0, byte(j + 2)}), 24)
								if err := att.Attach(ctx, id, addr, ns); err != nil {
									errs <- err
									return
								}
								opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: ns}))
							}
							var lock *sync.Mutex
							if v.perShim > 0 {
								g := j / v.perShim
								lock = &locks[g]
								opts = append(opts, oci.WithAnnotations(map[string]string{"io.containerd.runc.v2.group": fmt.Sprintf("floor-%d-%d", i, g)}))
							}
							c, err := cl.NewContainer(ctx, id, client.WithNewSnapshot(id, img), client.WithNewSpec(opts...))
							if err != nil {
								errs <- err
								return
							}
							if lock != nil {
								lock.Lock()
							}
							t, err := c.NewTask(ctx, cio.NullIO)
							if lock != nil {
								lock.Unlock()
							}
							if err == nil {
								err = t.Start(ctx)
							}
							errs <- err
						}()
					}
					var failed error
					for range ids {
						if err := <-errs; err != nil && failed == nil {
							failed = err
						}
					}
					wall += time.Since(start)
					cpu += machineCPU(b) - cpu0
					b.StopTimer()
					for _, id := range ids {
						if err := removeCtr(ctx, id); err != nil && !errdefs.IsNotFound(err) && failed == nil {
							failed = err
						}
						if v.cni {
							ns := filepath.Join(dir, id)
							if err := att.Detach(ctx, id, ns); err != nil && failed == nil {
								failed = err
							}
							_ = netns.Remove(ns)
						}
					}
					if failed != nil {
						b.Fatal(failed)
					}
					b.StartTimer()
				}
				b.ReportMetric(float64(wall.Milliseconds())/float64(b.N), "ms/deploy")
				b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N*n), "cpu-ms/task")
			})
		}
	}
}

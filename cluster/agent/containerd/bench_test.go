package containerd_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/gitorc/gitorc/cluster/agent"
	"github.com/gitorc/gitorc/cluster/api"
)

// runningSignal reports on ch when a task reaches running (or ends).
type runningSignal struct{ ch chan api.TaskStatus }

func (r runningSignal) ReportTaskStatus(_ context.Context, _ string, st api.TaskStatus) error {
	if st.State >= api.TaskRunning {
		r.ch <- st
	}
	return nil
}

// BenchmarkTaskStart_Root measures assigned → running through the agent
// and the executor for an image already on the node, against a bare
// `ctr run -d` of the same image on the same containerd. Run with
// `go test ./cluster/agent/containerd -run '^$' -bench TaskStart -benchtime 30x`.
func BenchmarkTaskStart_Root(b *testing.B) {
	requireRoot(b)
	ctx := context.Background()
	// Make sure the image is present and unpacked.
	warm := newTask(b, env.image)
	if err := env.exec.Prepare(ctx, warm, agent.Files{}); err != nil {
		b.Fatal(err)
	}
	if _, err := env.exec.Remove(ctx, warm.ID); err != nil {
		b.Fatal(err)
	}

	b.Run("gitorc", func(b *testing.B) {
		a, sig, stop := runBenchAgent(b, 16)
		defer stop()
		for i := 0; i < b.N; i++ {
			task := newTask(b, env.image)
			a.Assign([]agent.Assignment{{Task: task}})
			st := <-sig.ch
			if st.State != api.TaskRunning {
				b.Fatalf("task %s: %s %s", task.ID, st.State, st.Message)
			}
			b.StopTimer()
			a.Assign(nil) // reaped
			waitFor(b, 30*time.Second, func() (bool, string) {
				return observed(b, env.exec, task.ID) == nil, "not reaped"
			})
			b.StartTimer()
		}
	})

	b.Run("ctr", func(b *testing.B) {
		ctrBin, err := exec.LookPath("ctr")
		if err != nil {
			b.Skip("needs ctr (Debian's containerd package)")
		}
		name := "docker.io/" + env.image // how the executor stored it
		if img, err := env.exec.Client().GetImage(namespaced(ctx), env.image); err == nil {
			name = img.Name()
		}
		for i := 0; i < b.N; i++ {
			id := fmt.Sprintf("ctr-bench-%d", i)
			out, err := exec.Command(ctrBin, "-a", env.exec.Address(), "-n", "gitorc", "run", "-d", name, id, "sleep", "3600").CombinedOutput()
			if err != nil {
				b.Fatalf("ctr run: %v: %s", err, out)
			}
			b.StopTimer()
			if err := removeCtr(ctx, id); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
}

// runBenchAgent runs an agent over the test executor until stop; sig
// hears of each task that reaches running (or ends). A benchmark function
// runs once per b.N tried: stop the agent before it returns, since an
// agent reaps the containers of tasks it was not assigned.
func runBenchAgent(b *testing.B, buffer int) (a *agent.Agent, sig runningSignal, stop func()) {
	sig = runningSignal{ch: make(chan api.TaskStatus, buffer)}
	a, err := agent.New(agent.Config{Executor: env.exec, Reporter: sig, Logger: testLogger(), Interval: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	return a, sig, func() { cancel(); <-done }
}

func removeCtr(ctx context.Context, id string) error {
	ctx = namespaced(ctx)
	c, err := env.exec.Client().LoadContainer(ctx, id)
	if err != nil {
		return err
	}
	if t, err := c.Task(ctx, nil); err == nil {
		if _, err := t.Delete(ctx, processKill); err != nil {
			return err
		}
	}
	return c.Delete(ctx, snapshotCleanup)
}

// BenchmarkBurstStart_Root measures a burst: 10 tasks assigned at once
// until all run, as a push of a 10-replica service lands on a node, and
// the machine's CPU time that took per task (every process, from
// /proc/stat). "containerd" is the floor without gitorc: the same 10
// containers created and started at once straight through containerd's
// client, a shim each (as ctr run does). Run with
// `go test ./cluster/agent/containerd -run '^$' -bench BurstStart -benchtime 5x`.
func BenchmarkBurstStart_Root(b *testing.B) {
	requireRoot(b)
	const burst = 10
	ctx := context.Background()
	b.Run("gitorc", func(b *testing.B) {
		a, sig, stop := runBenchAgent(b, burst)
		defer stop()
		var cpu time.Duration
		for i := 0; i < b.N; i++ {
			var as []agent.Assignment
			for range burst {
				as = append(as, agent.Assignment{Task: newTask(b, env.image)})
			}
			before := machineCPU(b)
			a.Assign(as)
			for range burst {
				if st := <-sig.ch; st.State != api.TaskRunning {
					b.Fatalf("%s %s", st.State, st.Message)
				}
			}
			cpu += machineCPU(b) - before
			b.StopTimer()
			a.Assign(nil) // reaped
			waitFor(b, 60*time.Second, func() (bool, string) {
				obs, err := env.exec.Observe(ctx)
				return err == nil && len(obs) == 0, "not reaped"
			})
			b.StartTimer()
		}
		b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N*burst), "cpu-ms/task")
	})
	b.Run("containerd", func(b *testing.B) {
		cl := env.exec.Client()
		nctx := namespaced(ctx)
		img, err := cl.GetImage(nctx, "docker.io/"+env.image)
		if err != nil {
			if img, err = cl.GetImage(nctx, env.image); err != nil {
				b.Fatal(err)
			}
		}
		var cpu time.Duration
		for i := 0; i < b.N; i++ {
			ids := make([]string, burst)
			for j := range ids {
				ids[j] = fmt.Sprintf("burst-%d-%d", i, j)
			}
			before := machineCPU(b)
			errs := make(chan error, burst)
			for _, id := range ids {
				go func() {
					c, err := cl.NewContainer(nctx, id, client.WithNewSnapshot(id, img),
						client.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs("sleep", "3600")))
					if err != nil {
						errs <- err
						return
					}
					t, err := c.NewTask(nctx, cio.NullIO)
					if err == nil {
						err = t.Start(nctx)
					}
					errs <- err
				}()
			}
			for range ids {
				if err := <-errs; err != nil {
					b.Fatal(err)
				}
			}
			cpu += machineCPU(b) - before
			b.StopTimer()
			for _, id := range ids {
				if err := removeCtr(ctx, id); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
		}
		b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N*burst), "cpu-ms/task")
	})
}

// machineCPU is the CPU time every process on the machine has used.
func machineCPU(tb testing.TB) time.Duration {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		tb.Fatal(err)
	}
	// cpu  user nice system idle iowait irq softirq steal ...
	f := strings.Fields(strings.SplitN(string(data), "\n", 2)[0])
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			tb.Fatal(err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

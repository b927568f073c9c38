package containerd_test

import (
	"context"
	"fmt"
	"os/exec"
	"testing"
	"time"

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
		sig := runningSignal{ch: make(chan api.TaskStatus, 16)}
		a, err := agent.New(agent.Config{Executor: env.exec, Reporter: sig, Logger: testLogger(), Interval: time.Second})
		if err != nil {
			b.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = a.Run(rctx) }()
		defer func() { cancel(); <-done }()
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

package containerd_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/agent"
	"github.com/gitorc/gitorc/cluster/agent/containerd"
	"github.com/gitorc/gitorc/cluster/api"
)

// BenchmarkGroupStart_Root measures starting n replicas of one service on
// a node at once, as a deploy lands them: each prepared and started
// concurrently (as the agent does), until all run. perShim is
// Config.TasksPerShim (1000: one shim for the service, as before); runtime is
// Config.Runtime. Run with
// `go test ./cluster/agent/containerd -run '^$' -bench GroupStart -benchtime 3x`.
func BenchmarkGroupStart_Root(b *testing.B) {
	requireRoot(b)
	for _, n := range []int{10, 50} {
		for _, perShim := range []int{1000, 25, 10, 5} {
			for _, runtime := range []string{"runc", "crun"} {
				if runtime == "crun" && !containerd.RuntimeWorks(context.Background(), runtime) {
					continue
				}
				b.Run(fmt.Sprintf("n%d/perShim%d/%s", n, perShim, runtime), func(b *testing.B) {
					e := benchExecutor(b, perShim, runtime)
					var busy time.Duration
					for i := 0; i < b.N; i++ {
						tasks := make([]*api.Task, n)
						for j := range tasks {
							tasks[j] = newTask(b, env.image, trapTERM, func(t *api.Task) {
								t.ServiceID = fmt.Sprintf("svc-bench-%d-%d", n, i)
								t.Slot = uint64(j + 1)
							})
						}
						start := time.Now()
						errs := make(chan error, n)
						for _, task := range tasks {
							go func() {
								err := e.Prepare(context.Background(), task, agent.Files{})
								if err == nil {
									err = e.Start(context.Background(), task.ID)
								}
								errs <- err
							}()
						}
						for range tasks {
							if err := <-errs; err != nil {
								b.Error(err)
							}
						}
						busy += time.Since(start)
						b.StopTimer()
						for _, task := range tasks {
							go func() {
								_, err := e.Remove(context.Background(), task.ID)
								errs <- err
							}()
						}
						for range tasks {
							if err := <-errs; err != nil {
								b.Error(err)
							}
						}
						b.StartTimer()
						if b.Failed() {
							return
						}
					}
					b.ReportMetric(float64(busy.Milliseconds())/float64(b.N*n), "ms/task")
				})
			}
		}
	}
}

// benchExecutor is an executor on the shared containerd with a data dir
// of its own.
func benchExecutor(b *testing.B, perShim int, runtime string) *containerd.Executor {
	b.Helper()
	e, err := containerd.New(context.Background(), containerd.Config{
		DataDir:            b.TempDir(),
		Address:            env.exec.Address(),
		InsecureRegistries: []string{env.reg.Addr},
		TasksPerShim:       perShim,
		Runtime:            runtime,
		Logger:             testLogger(),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = e.Close() })
	return e
}

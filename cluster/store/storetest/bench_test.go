package storetest_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/cluster/store/storetest"
)

// benchCluster is 3 managers over loopback TCP with the store's LAN
// defaults (fsync on), snapshots out of the way.
func benchCluster(b *testing.B) *storetest.Cluster {
	opts := storetest.Options{Raft: store.RaftTuning{SnapshotThreshold: 1 << 30, SnapshotInterval: time.Hour}}
	switch os.Getenv("STORE_BENCH_TUNE") {
	case "test":
		opts.Raft = storetest.TestTuning()
	case "nosync":
		opts.Raft.NoSync = true
	}
	if os.Getenv("STORE_BENCH_LOG") != "" {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return storetest.New(b, opts)
}

// cpuTime is the CPU time (user and system) the process has used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// profileTimed profiles the timed part of a benchmark round when
// STORE_BENCH_CPUPROFILE or STORE_BENCH_TRACE names a file (the last,
// longest round of each benchmark wins), and reports cpu-us/op: the CPU
// time the process (all three managers and the writers) spent per op in
// the timed part, which a busy shared machine disturbs less than the
// wall-clock rates. Call it right after ResetTimer and call what it
// returns when the timed part ends.
func profileTimed(b *testing.B) func() {
	cpu0 := cpuTime()
	var stops []func()
	if p := os.Getenv("STORE_BENCH_CPUPROFILE"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
	}
	if p := os.Getenv("STORE_BENCH_TRACE"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			b.Fatal(err)
		}
		if err := trace.Start(f); err != nil {
			b.Fatal(err)
		}
		stops = append(stops, func() { trace.Stop(); f.Close() })
	}
	return func() {
		b.StopTimer()
		b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-us/op")
		for _, stop := range stops {
			stop()
		}
	}
}

func benchTask(i int) *api.Task {
	return &api.Task{ServiceID: "svc", ServiceName: "shop_web", Slot: uint64(i), NodeID: fmt.Sprintf("node-%d", i%5),
		DesiredState: api.TaskRunning, Spec: api.TaskSpec{Container: api.ContainerSpec{Image: "registry.local/shop/web:1.4.2",
			Env: []string{"A=1", "B=2"}}}}
}

// BenchmarkCommitLatency: one object per transaction, one transaction at a
// time, on the leader: ns/op is the commit latency of a single entry.
func BenchmarkCommitLatency(b *testing.B) {
	c := benchCluster(b)
	defer c.Close() // one cluster at a time: b.N rounds re-enter the function
	s := c.Store(c.Leader())
	ctx := context.Background()
	b.ResetTimer()
	stopProfile := profileTimed(b)
	for i := 0; i < b.N; i++ {
		if _, err := s.Update(ctx, func(tx store.Tx) error { return tx.Create(benchTask(i)) }); err != nil {
			b.Fatal(err)
		}
	}
	stopProfile()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
}

// BenchmarkBatchedWrites: object writes in transactions of `batch` objects
// from `workers` concurrent writers on the leader; ns/op is per object.
func BenchmarkBatchedWrites(b *testing.B) {
	for _, bc := range []struct{ workers, batch int }{{1, 100}, {8, 100}, {8, 500}} {
		b.Run(fmt.Sprintf("workers=%d/batch=%d", bc.workers, bc.batch), func(b *testing.B) {
			c := benchCluster(b)
			defer c.Close()
			s := c.Store(c.Leader())
			var next atomic.Int64
			var entries atomic.Int64
			b.ResetTimer()
			stopProfile := profileTimed(b)
			var wg sync.WaitGroup
			for range bc.workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						start := next.Add(int64(bc.batch)) - int64(bc.batch)
						if start >= int64(b.N) {
							return
						}
						end := min(start+int64(bc.batch), int64(b.N))
						_, err := s.Update(context.Background(), func(tx store.Tx) error {
							for i := start; i < end; i++ {
								if err := tx.Create(benchTask(int(i))); err != nil {
									return err
								}
							}
							return nil
						})
						if err != nil {
							b.Error(err)
							return
						}
						entries.Add(1)
					}
				}()
			}
			wg.Wait()
			stopProfile()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "objects/s")
			b.ReportMetric(float64(entries.Load())/b.Elapsed().Seconds(), "txns/s")
		})
	}
}

// BenchmarkConcurrentCommits: many writers on the leader, each committing
// one object per transaction: the batching is Raft's (BatchApplyCh, one
// log write and one AppendEntries for every entry queued meanwhile) and the
// FSM's (ApplyBatch, one database transaction per Raft batch), not the
// caller's. ns/op is per commit.
func BenchmarkConcurrentCommits(b *testing.B) {
	for _, writers := range []int{16, 64, 256} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			c := benchCluster(b)
			defer c.Close()
			s := c.Store(c.Leader())
			var next atomic.Int64
			b.ResetTimer()
			stopProfile := profileTimed(b)
			var wg sync.WaitGroup
			for range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						if _, err := s.Update(context.Background(), func(tx store.Tx) error {
							return tx.Create(benchTask(int(i)))
						}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			stopProfile()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
		})
	}
}

package scheduler

import (
	"fmt"
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
)

// benchNodes returns n ready, active nodes with roomy resources, spread
// over 10 zones.
func benchNodes(n int) []NodeInfo {
	out := make([]NodeInfo, n)
	for i := range out {
		out[i] = NodeInfo{Node: mkNode(fmt.Sprintf("node%06d", i),
			withResources(1024*cpu, 4096*gib), withLabels("zone", fmt.Sprintf("z%d", i%10)))}
	}
	return out
}

// benchTasks returns n pending tasks spread over services services, with
// opts applied to each.
func benchTasks(n, services int, opts ...func(*api.Task)) []*api.Task {
	out := make([]*api.Task, n)
	for i := range out {
		svc := fmt.Sprintf("svc%06d", i%services)
		out[i] = mkTask(fmt.Sprintf("task%07d", i), svc, uint64(i/services+1), opts...)
	}
	return out
}

func benchSchedule(b *testing.B, nodes, tasks, services int, opts ...func(*api.Task)) {
	ns := benchNodes(nodes)
	ts := benchTasks(tasks, services, opts...)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		ds := Schedule(ns, nil, ts)
		if ds[len(ds)-1].Err != nil {
			b.Fatal(ds[len(ds)-1].Err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(tasks), "ns/task")
}

// The swarmkit benchmark's shape: tasks with an empty spec (one group).
func BenchmarkSchedule1kNodes1kTasks(b *testing.B)   { benchSchedule(b, 1e3, 1e3, 1) }
func BenchmarkSchedule1kNodes10kTasks(b *testing.B)  { benchSchedule(b, 1e3, 1e4, 1) }
func BenchmarkSchedule1kNodes100kTasks(b *testing.B) { benchSchedule(b, 1e3, 1e5, 1) }

// Closer to a real cluster: 100 services, each task reserving CPU and
// memory, a constraint and a spread preference over zones.
func BenchmarkSchedule1kNodes100kTasksPlacement(b *testing.B) {
	benchSchedule(b, 1e3, 1e5, 100, reserve(cpu/10, 64*mib), constrain("node.role==worker"), spread("zone"))
}

// The least sharing: every task its own service, 10k groups over 1k nodes.
func BenchmarkSchedule1kNodes10kServices(b *testing.B) { benchSchedule(b, 1e3, 1e4, 1e4) }

package scheduler

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gitorc/gitorc/cluster/allocator"
	"github.com/gitorc/gitorc/cluster/api"
)

// addrCluster is nodes nodes with a /24 subnet each and tasks tasks
// spread at random, each with an address on its node (one in ten ended),
// and a decision placing a task on every node.
func addrCluster(nodes, tasks int) (map[string]*api.Node, []*api.Task, []Decision) {
	r := rand.New(rand.NewPCG(3, 4))
	byID := map[string]*api.Node{}
	var ids []string
	for i := range nodes {
		id := fmt.Sprintf("node%05d", i)
		byID[id] = &api.Node{Meta: api.Meta{ID: id}, Subnet: fmt.Sprintf("10.%d.%d.0/24", 64+i/256, i%256)}
		ids = append(ids, id)
	}
	next := map[string]int{}
	var ts []*api.Task
	for i := range tasks {
		n := r.IntN(nodes)
		next[ids[n]]++
		t := &api.Task{Meta: api.Meta{ID: fmt.Sprintf("task%06d", i)}, NodeID: ids[n],
			Addr: fmt.Sprintf("10.%d.%d.%d/24", 64+n/256, n%256, 1+next[ids[n]]%250), Status: api.TaskStatus{State: api.TaskRunning}}
		if r.IntN(10) == 0 {
			t.Status.State = api.TaskFailed
		}
		ts = append(ts, t)
	}
	var ds []Decision
	for _, id := range ids {
		ds = append(ds, Decision{Task: &api.Task{Meta: api.Meta{ID: "new-" + id}}, NodeID: id})
	}
	return byID, ts, ds
}

// The allocators made from the tasks grouped by node give the same
// addresses, in the same order, as allocators that read every task.
func TestTaskAddrsAsFromEveryTask(t *testing.T) {
	nodes, tasks, decisions := addrCluster(50, 5000)
	got, err := taskAddrs(decisions, func(id string) *api.Node { return nodes[id] }, tasks)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(nodes) {
		t.Fatalf("allocators for %d nodes, want %d", len(got), len(nodes))
	}
	for id, n := range nodes {
		want, err := allocator.NewTaskAddrs(n, tasks)
		if err != nil {
			t.Fatal(err)
		}
		for range 20 {
			a, errA := got[id].Next()
			b, errB := want.Next()
			if a != b || (errA == nil) != (errB == nil) {
				t.Fatalf("node %s: next address %q (%v), from every task %q (%v)", id, a, errA, b, errB)
			}
		}
	}
}

// BenchmarkTaskAddrs is the address allocators of a scheduling pass that
// places a task on each of 5,000 nodes of a 100,000-task cluster: from
// the tasks grouped by node, against each node's allocator reading every
// task (as before).
func BenchmarkTaskAddrs(b *testing.B) {
	nodes, tasks, decisions := addrCluster(5000, 100000)
	node := func(id string) *api.Node { return nodes[id] }
	b.Run("grouped", func(b *testing.B) {
		for b.Loop() {
			if _, err := taskAddrs(decisions, node, tasks); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("every-task", func(b *testing.B) {
		for b.Loop() {
			for _, d := range decisions {
				if _, err := allocator.NewTaskAddrs(node(d.NodeID), tasks); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

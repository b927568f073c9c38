package scheduler

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/google/go-cmp/cmp"
)

func TestExplanationAggregatesOverNodes(t *testing.T) {
	nodes := infos(
		mkNode("a", withResources(4*cpu, 256*mib), withLabels("zone", "eu")),
		mkNode("b", withResources(4*cpu, 256*mib), withLabels("zone", "eu")),
		mkNode("c", withAvailability(api.AvailabilityDrain), withLabels("zone", "eu")),
		mkNode("d", withLabels("zone", "us")),
		mkNode("e", withLabels("zone", "us")),
		mkNode("f"),
	)
	ds := Schedule(nodes, nil, []*api.Task{mkTask("t1", "s", 1, reserve(0, 512*mib), constrain("node.labels.zone==eu"))})
	want := "no suitable node: 3 nodes fail constraint node.labels.zone==eu, 2 nodes lack 512MiB memory, 1 node is draining"
	if ds[0].Err == nil || ds[0].Err.Error() != want {
		t.Fatalf("err = %v\nwant %s", ds[0].Err, want)
	}
	if !errors.Is(ds[0].Err, ErrNoSuitableNode) {
		t.Error("explanation does not match ErrNoSuitableNode")
	}
	var e *NoSuitableNodeError
	if !errors.As(ds[0].Err, &e) || len(e.Reasons) != 3 {
		t.Errorf("errors.As: %#v", ds[0].Err)
	}
}

func TestExplanations(t *testing.T) {
	tests := []struct {
		name  string
		nodes []*api.Node
		svcs  map[string]*api.Service
		tasks []*api.Task
		want  string // error of the last task
	}{
		{name: "empty cluster", tasks: []*api.Task{mkTask("t", "s", 1)},
			want: "no suitable node: the cluster has no nodes"},
		{name: "all down", nodes: []*api.Node{mkNode("a", withState(api.NodeDown)), mkNode("b", withState(api.NodeDown)), mkNode("c", withAvailability(api.AvailabilityPause))},
			tasks: []*api.Task{mkTask("t", "s", 1)},
			want:  "no suitable node: 2 nodes are down, 1 node is paused"},
		{name: "capacity runs out within the batch", nodes: []*api.Node{mkNode("a", withResources(cpu, gib)), mkNode("b", withResources(cpu, gib))},
			tasks: mkTasks("s", 3, reserve(cpu, 0)),
			want:  "no suitable node: 2 nodes lack 1 CPU"},
		{name: "max replicas", nodes: []*api.Node{mkNode("a"), mkNode("b")},
			tasks: mkTasks("s", 5, maxPerNode(2)),
			want:  "no suitable node: 2 nodes already run max_replicas_per_node=2 tasks of the service"},
		{name: "host port", nodes: []*api.Node{mkNode("a"), mkNode("b", withAvailability(api.AvailabilityDrain))},
			svcs:  map[string]*api.Service{"web": hostService("web", 80)},
			tasks: mkTasks("web", 2),
			want:  "no suitable node: 1 node is draining, 1 node already publishes host port 80/tcp"},
		{name: "platform", nodes: []*api.Node{mkNode("a"), mkNode("b")},
			tasks: []*api.Task{mkTask("t", "s", 1, platforms(api.Platform{OS: "linux", Architecture: "arm64"}))},
			want:  "no suitable node: 2 nodes do not run platform linux/arm64"},
		{name: "bound to a missing node", nodes: []*api.Node{mkNode("a")},
			tasks: []*api.Task{mkTask("t", "s", 0, func(t *api.Task) { t.NodeID = "zz" })},
			want:  "no suitable node: node zz is not in the cluster"},
		{name: "bound to a draining node", nodes: []*api.Node{mkNode("a", withAvailability(api.AvailabilityDrain)), mkNode("b")},
			tasks: []*api.Task{mkTask("t", "s", 0, func(t *api.Task) { t.NodeID = "a" })},
			want:  "no suitable node: 1 node is draining"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ds := Schedule(infos(tc.nodes...), tc.svcs, tc.tasks)
			last := ds[len(ds)-1]
			if last.Err == nil {
				t.Fatalf("last task placed on %s, want error %q", last.NodeID, tc.want)
			}
			if got := last.Err.Error(); got != tc.want {
				t.Errorf("err = %q\nwant  %q", got, tc.want)
			}
		})
	}
}

func TestBoundTaskPlacedOnItsNode(t *testing.T) {
	ds := Schedule(infos(mkNode("a"), mkNode("b")), nil,
		[]*api.Task{mkTask("g1", "global", 0, func(t *api.Task) { t.NodeID = "b" })})
	if ds[0].NodeID != "b" || ds[0].Err != nil {
		t.Fatalf("decision %+v, want node b", ds[0])
	}
}

func TestSpreadServiceThenTotal(t *testing.T) {
	// a runs 2 tasks of s, b runs 3 tasks of another service, c is empty.
	nodes := []NodeInfo{
		{Node: mkNode("a"), Tasks: []*api.Task{
			mkTask("x1", "s", 1, onNode("a", api.TaskRunning)), mkTask("x2", "s", 2, onNode("a", api.TaskRunning))}},
		{Node: mkNode("b"), Tasks: []*api.Task{
			mkTask("y1", "o", 1, onNode("b", api.TaskRunning)), mkTask("y2", "o", 2, onNode("b", api.TaskRunning)),
			mkTask("y3", "o", 3, onNode("b", api.TaskRunning))}},
		{Node: mkNode("c")},
	}
	ds := Schedule(nodes, nil, mkTasks("s", 6))
	var got []string
	for _, d := range ds {
		got = append(got, d.NodeID)
	}
	// (tasks of s, total) per node: a (2,2), b (0,3), c (0,0).
	// c (0,0); b (0,3); c (1,1); b (1,4) has fewer of s than a and c (2,2);
	// a and c tie at (2,2): ID order, a then c.
	want := []string{"c", "b", "c", "b", "a", "c"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("placements (-want +got):\n%s", diff)
	}
}

func TestSpreadIgnoresTerminalTasks(t *testing.T) {
	nodes := []NodeInfo{
		{Node: mkNode("a"), Tasks: []*api.Task{mkTask("x1", "s", 1, onNode("a", api.TaskShutdown))}},
		{Node: mkNode("b"), Tasks: []*api.Task{mkTask("y1", "o", 1, onNode("b", api.TaskRunning))}},
	}
	if ds := Schedule(nodes, nil, mkTasks("s", 1)); ds[0].NodeID != "a" {
		t.Errorf("placed on %s, want a (its only task has shut down)", ds[0].NodeID)
	}
}

func TestSpreadPreferences(t *testing.T) {
	// Three zones: eu has 4 nodes, us 1, and one node has no zone label.
	var nodes []*api.Node
	for i := range 4 {
		nodes = append(nodes, mkNode(fmt.Sprintf("eu%d", i), withLabels("zone", "eu")))
	}
	nodes = append(nodes, mkNode("us0", withLabels("zone", "us")), mkNode("none"))
	ds := Schedule(infos(nodes...), nil, mkTasks("s", 9, spread("zone")))
	got, errs := placements(ds)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	zone := map[string]int{}
	for id, n := range got {
		zone[id[:2]] += n
	}
	// Balanced across label values, the nodes without the label a group
	// of their own: 3 each.
	if diff := cmp.Diff(map[string]int{"eu": 3, "us": 3, "no": 3}, zone); diff != "" {
		t.Errorf("tasks per zone (-want +got):\n%s", diff)
	}
	// Within eu, spread over the nodes.
	for i := range 3 {
		if got[fmt.Sprintf("eu%d", i)] != 1 {
			t.Errorf("eu nodes: %v, want one task on each of eu0..eu2", got)
		}
	}
}

func TestSpreadPreferencesTree(t *testing.T) {
	// zone, then rack: zone a has racks 1 and 2, zone b rack 1 only.
	nodes := infos(
		mkNode("a1x", withLabels("zone", "a", "rack", "1")),
		mkNode("a1y", withLabels("zone", "a", "rack", "1")),
		mkNode("a2x", withLabels("zone", "a", "rack", "2")),
		mkNode("b1x", withLabels("zone", "b", "rack", "1")),
	)
	got, errs := placements(Schedule(nodes, nil, mkTasks("s", 8, spread("zone", "rack"))))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	want := map[string]int{"b1x": 4, "a2x": 2, "a1x": 1, "a1y": 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("placements (-want +got):\n%s", diff)
	}
}

func TestSpreadPreferencesCountExistingTasks(t *testing.T) {
	nodes := []NodeInfo{
		{Node: mkNode("e1", withLabels("zone", "eu")), Tasks: []*api.Task{
			mkTask("x1", "s", 1, onNode("e1", api.TaskRunning)), mkTask("x2", "s", 2, onNode("e1", api.TaskRunning))}},
		{Node: mkNode("e2", withLabels("zone", "eu"))},
		{Node: mkNode("u1", withLabels("zone", "us"))},
	}
	got, _ := placements(Schedule(nodes, nil, mkTasks("s", 2, spread("zone"))))
	if got["u1"] != 2 {
		t.Errorf("placements %v, want both new tasks in us (eu already has 2)", got)
	}
}

func TestSpreadPreferenceBranchFull(t *testing.T) {
	// us can take one task only: the rest goes to eu.
	nodes := infos(
		mkNode("e1", withLabels("zone", "eu")), mkNode("e2", withLabels("zone", "eu")),
		mkNode("u1", withLabels("zone", "us"), withResources(cpu, gib)),
	)
	got, errs := placements(Schedule(nodes, nil, mkTasks("s", 5, spread("zone"), reserve(cpu, 0))))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if diff := cmp.Diff(map[string]int{"e1": 2, "e2": 2, "u1": 1}, got); diff != "" {
		t.Errorf("placements (-want +got):\n%s", diff)
	}
}

func TestBatchAccounting(t *testing.T) {
	t.Run("resources across services", func(t *testing.T) {
		nodes := infos(mkNode("a", withResources(2*cpu, 2*gib)))
		tasks := append(mkTasks("s1", 1, reserve(cpu, gib)), mkTasks("s2", 2, reserve(cpu, gib))...)
		got, errs := placements(Schedule(nodes, nil, tasks))
		if got["a"] != 2 || len(errs) != 1 {
			t.Errorf("placed %v, errors %v; want 2 placed and one lacking resources", got, errs)
		}
	})
	t.Run("host ports across services", func(t *testing.T) {
		svcs := map[string]*api.Service{"a": hostService("a", 80), "b": hostService("b", 80)}
		tasks := append(mkTasks("a", 1), mkTasks("b", 1)...)
		ds := Schedule(infos(mkNode("n1"), mkNode("n2")), svcs, tasks)
		if ds[0].NodeID == "" || ds[1].NodeID == "" || ds[0].NodeID == ds[1].NodeID {
			t.Errorf("decisions %+v, want the two services on different nodes", ds)
		}
	})
	t.Run("bound tasks reserve first", func(t *testing.T) {
		nodes := infos(mkNode("a", withResources(cpu, gib)), mkNode("b", withResources(cpu, gib)))
		tasks := append(mkTasks("r", 2, reserve(cpu, 0)), mkTask("g", "global", 0, reserve(cpu, 0), func(t *api.Task) { t.NodeID = "a" }))
		got, errs := placements(Schedule(nodes, nil, tasks))
		if got["a"] != 1 || got["b"] != 1 || len(errs) != 1 {
			t.Errorf("placed %v, errors %v", got, errs)
		}
	})
	t.Run("successive batches", func(t *testing.T) {
		s := New(infos(mkNode("a"), mkNode("b")), nil)
		first := s.Schedule(mkTasks("s", 1))
		second := s.Schedule([]*api.Task{mkTask("s.later", "s", 9)})
		if first[0].NodeID == second[0].NodeID {
			t.Errorf("both batches chose %s; the second must see the first", first[0].NodeID)
		}
	})
	t.Run("spread across groups of one service", func(t *testing.T) {
		// Two spec versions of one service (a rolling update) are two
		// groups; the second sees the first's tasks.
		tasks := append(mkTasks("s", 2), mkTasks("s", 2, reserve(0, mib))...)
		tasks[2].ID, tasks[3].ID = "s.v2.1", "s.v2.2"
		got, _ := placements(Schedule(infos(mkNode("a"), mkNode("b"), mkNode("c"), mkNode("d")), nil, tasks))
		if len(got) != 4 {
			t.Errorf("placements %v, want one task on each node", got)
		}
	})
}

func TestDeterministicAndOrderIndependent(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	nodes, svcs, tasks := randomCluster(r, 30, 200)
	base := Schedule(nodes, svcs, tasks)
	want := map[string]string{}
	for _, d := range base {
		want[d.Task.ID] = decisionString(d)
	}
	for i := range 5 {
		shuffled := append([]*api.Task(nil), tasks...)
		r.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
		shuffledNodes := append([]NodeInfo(nil), nodes...)
		r.Shuffle(len(shuffledNodes), func(a, b int) { shuffledNodes[a], shuffledNodes[b] = shuffledNodes[b], shuffledNodes[a] })
		got := map[string]string{}
		for _, d := range Schedule(shuffledNodes, svcs, shuffled) {
			got[d.Task.ID] = decisionString(d)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("run %d differs (-first +this):\n%s", i, diff)
		}
	}
}

func decisionString(d Decision) string {
	if d.Err != nil {
		return d.Err.Error()
	}
	return d.NodeID
}

func TestDecisionsInInputOrder(t *testing.T) {
	tasks := []*api.Task{mkTask("z", "b", 1), mkTask("y", "a", 1), mkTask("x", "b", 2)}
	ds := Schedule(infos(mkNode("n")), nil, tasks)
	for i, d := range ds {
		if d.Task != tasks[i] {
			t.Errorf("decision %d is for %s, want %s", i, d.Task.ID, tasks[i].ID)
		}
	}
}

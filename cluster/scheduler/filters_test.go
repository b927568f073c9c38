package scheduler

import (
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
)

// filterCase runs one filter on one node, already running the given tasks.
type filterCase struct {
	name    string
	node    *api.Node
	running []*api.Task
	task    *api.Task
	want    int    // reason code, 0 passes
	explain string // Explain(code, 2) when want != 0
}

func runFilterCases(t *testing.T, f filter, services map[string]*api.Service, cases []filterCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := New([]NodeInfo{{Node: tc.node, Tasks: tc.running}}, services)
			g := s.newGroup(tc.task)
			if !f.Enabled(g) {
				if tc.want != 0 {
					t.Fatalf("%s is not enabled for the task", f.Name())
				}
				return
			}
			got := f.Check(g, s.nodes[0])
			if got != tc.want {
				t.Fatalf("%s: Check = %d, want %d", f.Name(), got, tc.want)
			}
			if got != 0 {
				if e := f.Explain(g, got, 2); e != tc.explain {
					t.Errorf("Explain = %q, want %q", e, tc.explain)
				}
			}
		})
	}
}

func TestReadyFilter(t *testing.T) {
	runFilterCases(t, readyFilter{}, nil, []filterCase{
		{name: "ready active", node: mkNode("n1"), task: mkTask("t", "s", 1)},
		{name: "down", node: mkNode("n1", withState(api.NodeDown)), task: mkTask("t", "s", 1),
			want: readyDown, explain: "2 nodes are down"},
		{name: "disconnected", node: mkNode("n1", withState(api.NodeDisconnected)), task: mkTask("t", "s", 1),
			want: readyDisconnected, explain: "2 nodes are disconnected"},
		{name: "unknown", node: mkNode("n1", withState(api.NodeUnknown)), task: mkTask("t", "s", 1),
			want: readyUnknown, explain: "2 nodes are not ready"},
		{name: "paused", node: mkNode("n1", withAvailability(api.AvailabilityPause)), task: mkTask("t", "s", 1),
			want: readyPaused, explain: "2 nodes are paused"},
		{name: "draining", node: mkNode("n1", withAvailability(api.AvailabilityDrain)), task: mkTask("t", "s", 1),
			want: readyDraining, explain: "2 nodes are draining"},
		{name: "never connected and drained reads draining (a manager without a worker)",
			node: mkNode("n1", withState(api.NodeUnknown), withAvailability(api.AvailabilityDrain)),
			task: mkTask("t", "s", 1), want: readyDraining, explain: "2 nodes are draining"},
		{name: "down and draining reads down", node: mkNode("n1", withState(api.NodeDown), withAvailability(api.AvailabilityDrain)),
			task: mkTask("t", "s", 1), want: readyDown, explain: "2 nodes are down"},
	})
}

func TestResourceFilter(t *testing.T) {
	n := func() *api.Node { return mkNode("n1", withResources(2*cpu, 1*gib)) }
	runFilterCases(t, resourceFilter{}, nil, []filterCase{
		{name: "no reservation", node: n(), task: mkTask("t", "s", 1)},
		{name: "fits exactly", node: n(), task: mkTask("t", "s", 1, reserve(2*cpu, 1*gib))},
		{name: "memory", node: n(), task: mkTask("t", "s", 1, reserve(0, 2*gib)),
			want: lackMemory, explain: "2 nodes lack 2GiB memory"},
		{name: "cpu", node: n(), task: mkTask("t", "s", 1, reserve(cpu/2*5, 0)),
			want: lackCPU, explain: "2 nodes lack 2.5 CPUs"},
		{name: "one cpu", node: mkNode("n1", withResources(0, gib)), task: mkTask("t", "s", 1, reserve(cpu, 0)),
			want: lackCPU, explain: "2 nodes lack 1 CPU"},
		{name: "both", node: n(), task: mkTask("t", "s", 1, reserve(3*cpu, 512*mib*3)),
			want: lackCPU | lackMemory, explain: "2 nodes lack 3 CPUs and 1536MiB memory"},
		{name: "existing reservations count", node: n(),
			running: []*api.Task{mkTask("r1", "o", 1, reserve(cpu, 768*mib), onNode("n1", api.TaskRunning))},
			task:    mkTask("t", "s", 1, reserve(cpu, 512*mib)),
			want:    lackMemory, explain: "2 nodes lack 512MiB memory"},
		{name: "terminal tasks release", node: n(),
			running: []*api.Task{mkTask("r1", "o", 1, reserve(2*cpu, gib), onNode("n1", api.TaskFailed))},
			task:    mkTask("t", "s", 1, reserve(2*cpu, gib))},
	})
}

func TestConstraintFilter(t *testing.T) {
	labelled := func() *api.Node { return mkNode("n1", withLabels("zone", "eu", "disk", "SSD")) }
	cases := []filterCase{
		{name: "node.id ==", node: mkNode("n1"), task: mkTask("t", "s", 1, constrain("node.id==n1"))},
		{name: "node.id !=", node: mkNode("n1"), task: mkTask("t", "s", 1, constrain("node.id!=n1")),
			want: 1, explain: "2 nodes fail constraint node.id!=n1"},
		{name: "hostname", node: mkNode("n1"), task: mkTask("t", "s", 1, constrain("node.hostname==HOST-n1"))},
		{name: "hostname mismatch", node: mkNode("n1"), task: mkTask("t", "s", 1, constrain("node.hostname==other")),
			want: 1, explain: "2 nodes fail constraint node.hostname==other"},
		{name: "role", node: mkNode("n1", withRole(api.RoleManager)), task: mkTask("t", "s", 1, constrain("node.role==manager"))},
		{name: "role mismatch", node: mkNode("n1"), task: mkTask("t", "s", 1, constrain("node.role==manager")),
			want: 1, explain: "2 nodes fail constraint node.role==manager"},
		{name: "role !=", node: mkNode("n1"), task: mkTask("t", "s", 1, constrain("node.role!=manager"))},
		{name: "label ==", node: labelled(), task: mkTask("t", "s", 1, constrain("node.labels.zone==eu"))},
		{name: "label value case-insensitive", node: labelled(), task: mkTask("t", "s", 1, constrain("node.labels.disk==ssd"))},
		{name: "label == other", node: labelled(), task: mkTask("t", "s", 1, constrain("node.labels.zone==us")),
			want: 1, explain: "2 nodes fail constraint node.labels.zone==us"},
		{name: "label != same", node: labelled(), task: mkTask("t", "s", 1, constrain("node.labels.zone!=eu")),
			want: 1, explain: "2 nodes fail constraint node.labels.zone!=eu"},
		{name: "absent label ==", node: mkNode("n1"), task: mkTask("t", "s", 1, constrain("node.labels.zone==eu")),
			want: 1, explain: "2 nodes fail constraint node.labels.zone==eu"},
		{name: "absent label != matches", node: mkNode("n1"), task: mkTask("t", "s", 1, constrain("node.labels.zone!=eu"))},
		{name: "os", node: mkNode("n1"), task: mkTask("t", "s", 1, constrain("node.platform.os==linux"))},
		{name: "os !=", node: mkNode("n1"), task: mkTask("t", "s", 1, constrain("node.platform.os!=linux")),
			want: 1, explain: "2 nodes fail constraint node.platform.os!=linux"},
		{name: "arch normalized", node: mkNode("n1", withPlatform("linux", "x86_64")), task: mkTask("t", "s", 1, constrain("node.platform.arch==amd64"))},
		{name: "arch mismatch", node: mkNode("n1"), task: mkTask("t", "s", 1, constrain("node.platform.arch==arm64")),
			want: 1, explain: "2 nodes fail constraint node.platform.arch==arm64"},
		{name: "first failing counts", node: labelled(), task: mkTask("t", "s", 1, constrain("node.role==worker", "node.labels.zone==us", "node.id==x")),
			want: 2, explain: "2 nodes fail constraint node.labels.zone==us"},
	}
	runFilterCases(t, constraintFilter{}, nil, cases)
}

func TestPlatformFilter(t *testing.T) {
	runFilterCases(t, platformFilter{}, nil, []filterCase{
		{name: "any", node: mkNode("n1"), task: mkTask("t", "s", 1)},
		{name: "match", node: mkNode("n1"), task: mkTask("t", "s", 1, platforms(api.Platform{OS: "linux", Architecture: "amd64"}))},
		{name: "match second", node: mkNode("n1", withPlatform("linux", "aarch64")),
			task: mkTask("t", "s", 1, platforms(api.Platform{OS: "linux", Architecture: "amd64"}, api.Platform{OS: "linux", Architecture: "arm64"}))},
		{name: "os only", node: mkNode("n1"), task: mkTask("t", "s", 1, platforms(api.Platform{OS: "linux"}))},
		{name: "mismatch", node: mkNode("n1"),
			task: mkTask("t", "s", 1, platforms(api.Platform{OS: "linux", Architecture: "arm64"}, api.Platform{OS: "windows"})),
			want: 1, explain: "2 nodes do not run platform linux/arm64 or windows/*"},
	})
}

func TestHostPortFilter(t *testing.T) {
	svcs := map[string]*api.Service{
		"web":   hostService("web", 80, 443),
		"other": hostService("other", 443),
		"udp":   {Meta: api.Meta{ID: "udp"}, Spec: api.ServiceSpec{Endpoint: api.EndpointSpec{Ports: []api.PortConfig{{Protocol: api.ProtocolUDP, Target: 80, Published: 80, Mode: api.PublishHost}}}}},
		"ingress": {Meta: api.Meta{ID: "ingress"}, Spec: api.ServiceSpec{Endpoint: api.EndpointSpec{Ports: []api.PortConfig{
			{Protocol: api.ProtocolTCP, Target: 80, Published: 80, Mode: api.PublishIngress}}}}},
		"allocated": {Meta: api.Meta{ID: "allocated"}, Spec: api.ServiceSpec{Endpoint: api.EndpointSpec{Ports: []api.PortConfig{
			{Protocol: api.ProtocolTCP, Target: 80, Mode: api.PublishHost}}}},
			Endpoint: &api.Endpoint{Ports: []api.PortConfig{{Protocol: api.ProtocolTCP, Target: 80, Published: 8080, Mode: api.PublishHost}}}},
	}
	run := func(svc string) []*api.Task {
		return []*api.Task{mkTask("r-"+svc, svc, 1, onNode("n1", api.TaskRunning))}
	}
	runFilterCases(t, hostPortFilter{}, svcs, []filterCase{
		{name: "free", node: mkNode("n1"), task: mkTask("t", "web", 1)},
		{name: "same service twice", node: mkNode("n1"), running: run("web"), task: mkTask("t", "web", 2),
			want: 1, explain: "2 nodes already publish host port 80/tcp"},
		{name: "other service shares one port", node: mkNode("n1"), running: run("other"), task: mkTask("t", "web", 1),
			want: 2, explain: "2 nodes already publish host port 443/tcp"},
		{name: "udp does not clash with tcp", node: mkNode("n1"), running: run("udp"), task: mkTask("t", "web", 1)},
		{name: "ingress ports are not host ports", node: mkNode("n1"), running: run("ingress"), task: mkTask("t", "web", 1)},
		{name: "allocated endpoint wins", node: mkNode("n1"), running: run("allocated"), task: mkTask("t", "allocated", 2),
			want: 1, explain: "2 nodes already publish host port 8080/tcp"},
		{name: "finished task frees the port", node: mkNode("n1"),
			running: []*api.Task{mkTask("r", "web", 1, onNode("n1", api.TaskComplete))}, task: mkTask("t", "web", 2)},
	})
}

func TestMaxReplicasFilter(t *testing.T) {
	running := func(n int) []*api.Task {
		var ts []*api.Task
		for i := range n {
			ts = append(ts, mkTask("r"+string(rune('a'+i)), "s", uint64(i+1), onNode("n1", api.TaskRunning)))
		}
		return ts
	}
	runFilterCases(t, maxReplicasFilter{}, nil, []filterCase{
		{name: "unlimited", node: mkNode("n1"), running: running(5), task: mkTask("t", "s", 9)},
		{name: "below", node: mkNode("n1"), running: running(1), task: mkTask("t", "s", 9, maxPerNode(2))},
		{name: "at max", node: mkNode("n1"), running: running(2), task: mkTask("t", "s", 9, maxPerNode(2)),
			want: 1, explain: "2 nodes already run max_replicas_per_node=2 tasks of the service"},
	})
}

func TestMatchConstraintUnknownKey(t *testing.T) {
	c := api.Constraint{Key: "engine.labels.x", Op: api.OpNe, Value: "y"}
	if MatchConstraint(c, mkNode("n1")) {
		t.Error("a constraint on an unknown attribute matched")
	}
}

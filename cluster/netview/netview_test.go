package netview

import (
	"encoding/json"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gitorc/gitorc/cluster/api"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// Each node's view of the fixture, printed as JSON, is its golden file
// (testdata/<node>.golden; go test ./cluster/netview -update rewrites them).
func TestViewGolden(t *testing.T) {
	ix := NewIndex(fixture())
	for _, node := range []string{"n1", "n2", "n3", "n5"} {
		t.Run(node, func(t *testing.T) {
			got, err := json.MarshalIndent(ix.View(node), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", node+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./cluster/netview -update)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("view of %s (-golden +got):\n%s", node, diff)
			}
		})
	}
}

// The order the objects come in changes nothing: equal states give
// deep-equal views.
func TestViewIgnoresInputOrder(t *testing.T) {
	want := NewIndex(fixture())
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		in := fixture()
		shuffle(r, in.Nodes)
		shuffle(r, in.Networks)
		shuffle(r, in.Services)
		shuffle(r, in.Tasks)
		for _, s := range in.Services {
			shuffle(r, s.Spec.Networks)
		}
		got := NewIndex(in)
		for _, node := range []string{"n1", "n2", "n3", "n4", "n5", "unknown"} {
			if diff := cmp.Diff(want.View(node), got.View(node)); diff != "" {
				t.Fatalf("view of %s after shuffling (-want +got):\n%s", node, diff)
			}
		}
	}
}

func shuffle[T any](r *rand.Rand, s []T) {
	r.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
}

// small is a two-node cluster with network a (and b) and service sa on a;
// tasks are added by each case.
func small(tasks ...*api.Task) Input {
	wg := &api.WireGuardInfo{PublicKey: "k", Port: 51820}
	return Input{
		Nodes: []*api.Node{
			{Meta: api.Meta{ID: "n1"}, Subnet: "10.64.1.0/24", Description: api.NodeDescription{WireGuard: wg},
				Status: api.NodeStatus{Addr: "192.0.2.1"}},
			{Meta: api.Meta{ID: "n2"}, Subnet: "10.64.2.0/24", Description: api.NodeDescription{WireGuard: wg},
				Status: api.NodeStatus{Addr: "192.0.2.2"}},
		},
		Networks: []*api.Network{{Meta: api.Meta{ID: "na"}, Spec: api.NetworkSpec{Name: "a"}},
			{Meta: api.Meta{ID: "nb"}, Spec: api.NetworkSpec{Name: "b"}}},
		Services: []*api.Service{{Meta: api.Meta{ID: "sa"}, Spec: api.ServiceSpec{Name: "sa",
			Networks: []api.NetworkAttachment{{Target: "a"}}}, Endpoint: &api.Endpoint{VIP: "10.96.0.2"}}},
		Tasks: tasks,
	}
}

// running is a task of sa on node, running (no healthcheck), desired running.
func running(id, node, addr string) *api.Task {
	return &api.Task{Meta: api.Meta{ID: id}, ServiceID: "sa", NodeID: node, Addr: addr, DesiredState: api.TaskRunning,
		Status: api.TaskStatus{State: api.TaskRunning}}
}

func with(t *api.Task, change func(*api.Task)) *api.Task { change(t); return t }

func members(v *api.NetView, netID string) []string {
	for _, n := range v.Networks {
		if n.ID == netID {
			return n.Members
		}
	}
	return nil
}

func backends(v *api.NetView, svcID string) []string {
	for _, s := range v.Services {
		if s.ID == svcID {
			var out []string
			for _, b := range s.Backends {
				out = append(out, b.TaskID)
			}
			return out
		}
	}
	return nil
}

func serviceOf(v *api.NetView, svcID string) *api.NetService {
	for i := range v.Services {
		if v.Services[i].ID == svcID {
			return &v.Services[i]
		}
	}
	return nil
}

func TestViewRules(t *testing.T) {
	healthchecked := func(in Input) Input { // the tasks' own spec counts
		in.Services[0].Spec.Task.Container.Healthcheck = checkCurl
		for _, t := range in.Tasks {
			t.Spec.Container.Healthcheck = checkCurl
		}
		return in
	}
	type result struct {
		Members  []string
		Backends []string
	}
	membership := func(v *api.NetView) any { return result{members(v, "na"), backends(v, "sa")} }
	for _, tc := range []struct {
		name string
		in   Input
		node string
		got  func(*api.NetView) any
		want any
	}{
		{name: "terminal tasks are not members",
			in: small(running("t1", "n1", "10.64.1.2/24"),
				with(running("t2", "n2", "10.64.2.2/24"), func(t *api.Task) { t.Status.State = api.TaskComplete }),
				with(running("t3", "n2", "10.64.2.3/24"), func(t *api.Task) {
					t.Status.State, t.DesiredState = api.TaskShutdown, api.TaskShutdown
				}),
				with(running("t4", "n1", "10.64.1.4/24"), func(t *api.Task) { t.Status.State = api.TaskFailed })),
			node: "n1", got: membership, want: result{[]string{"10.64.1.2"}, []string{"t1"}}},
		{name: "a task without an address is not a member",
			in:   small(running("t1", "n1", "10.64.1.2/24"), with(running("t2", "n2", ""), func(t *api.Task) { t.Status.State = api.TaskAssigned })),
			node: "n1", got: membership, want: result{[]string{"10.64.1.2"}, []string{"t1"}}},
		{name: "draining tasks are members but not backends",
			in:   small(running("t1", "n1", "10.64.1.2/24"), with(running("t2", "n2", "10.64.2.2/24"), func(t *api.Task) { t.DrainingSince = epoch })),
			node: "n1", got: membership, want: result{[]string{"10.64.1.2", "10.64.2.2"}, []string{"t1"}}},
		{name: "a running but unhealthy task is not a backend",
			in: healthchecked(small(
				with(running("t1", "n1", "10.64.1.2/24"), func(t *api.Task) { t.Status.Health = api.HealthHealthy }),
				with(running("t2", "n2", "10.64.2.2/24"), func(t *api.Task) { t.Status.Health = api.HealthUnhealthy }),
				with(running("t3", "n2", "10.64.2.3/24"), func(t *api.Task) { t.Status.Health = api.HealthStarting }))),
			node: "n1", got: membership, want: result{[]string{"10.64.1.2", "10.64.2.2", "10.64.2.3"}, []string{"t1"}}},
		{name: "starting tasks and tasks not wanted running are members but not backends",
			in: small(running("t1", "n1", "10.64.1.2/24"),
				with(running("t2", "n2", "10.64.2.2/24"), func(t *api.Task) { t.Status.State = api.TaskStarting }),
				with(running("t3", "n2", "10.64.2.3/24"), func(t *api.Task) { t.DesiredState = api.TaskShutdown })),
			node: "n1", got: membership, want: result{[]string{"10.64.1.2", "10.64.2.2", "10.64.2.3"}, []string{"t1"}}},
		{name: "members and backends are sorted by address, numerically",
			in:   small(running("t1", "n1", "10.64.1.10/24"), running("t2", "n1", "10.64.1.9/24"), running("t3", "n2", "10.64.2.1/24")),
			node: "n1", got: membership, want: result{[]string{"10.64.1.9", "10.64.1.10", "10.64.2.1"}, []string{"t2", "t1", "t3"}}},
		{name: "a network name with no network object is skipped",
			in: func() Input {
				in := small(running("t1", "n1", "10.64.1.2/24"))
				in.Services[0].Spec.Networks = append(in.Services[0].Spec.Networks, api.NetworkAttachment{Target: "gone"})
				return in
			}(),
			node: "n1", got: func(v *api.NetView) any { return []any{v.Tasks[0].Networks, v.Services[0].Networks} },
			want: []any{[]string{"na"}, []api.NetAttachment{{NetworkID: "na"}}}},
		{name: "aliases are merged, sorted and deduplicated",
			in: func() Input {
				in := small(running("t1", "n1", "10.64.1.2/24"))
				in.Services[0].Spec.Networks = []api.NetworkAttachment{{Target: "a", Aliases: []string{"z", "x"}},
					{Target: "b"}, {Target: "a", Aliases: []string{"y", "x"}}}
				return in
			}(),
			node: "n1", got: func(v *api.NetView) any { return v.Services[0].Networks },
			want: []api.NetAttachment{{NetworkID: "na", Aliases: []string{"x", "y", "z"}}, {NetworkID: "nb"}}},
		{name: "a node sees only the networks of its tasks",
			in:   small(running("t1", "n1", "10.64.1.2/24")),
			node: "n2", got: func(v *api.NetView) any { return []any{len(v.Networks), len(v.Services), len(v.Tasks)} },
			want: []any{0, 0, 0}},
		{name: "every node sees the services publishing a port and their networks",
			in: func() Input {
				in := small(running("t1", "n1", "10.64.1.2/24"))
				in.Services[0].Spec.Endpoint.Ports = []api.PortConfig{{Target: 80, Published: 8080}}
				return in
			}(),
			node: "n2", got: func(v *api.NetView) any { return []any{members(v, "na"), backends(v, "sa"), len(v.Tasks)} },
			want: []any{[]string{"10.64.1.2"}, []string{"t1"}, 0}},
		{name: "services on the view's networks, not others",
			in: func() Input {
				in := small(running("t1", "n1", "10.64.1.2/24"))
				in.Services = append(in.Services, &api.Service{Meta: api.Meta{ID: "sb"}, Spec: api.ServiceSpec{Name: "sb",
					Networks: []api.NetworkAttachment{{Target: "b"}}}},
					&api.Service{Meta: api.Meta{ID: "sa2"}, Spec: api.ServiceSpec{Name: "sa2",
						Networks: []api.NetworkAttachment{{Target: "a"}}}})
				return in
			}(),
			node: "n1", got: func(v *api.NetView) any {
				var ids []string
				for _, s := range v.Services {
					ids = append(ids, s.ID)
				}
				return ids
			},
			want: []string{"sa", "sa2"}},
		{name: "peers: not self, not removed, not without subnet or WireGuard; down nodes stay",
			in: func() Input {
				in := small()
				wg := &api.WireGuardInfo{PublicKey: "k", Port: 51999}
				in.Nodes = append(in.Nodes,
					&api.Node{Meta: api.Meta{ID: "down"}, Subnet: "10.64.3.0/24", Description: api.NodeDescription{WireGuard: wg},
						Status: api.NodeStatus{State: api.NodeDown, Addr: "192.0.2.3:4270"}},
					&api.Node{Meta: api.Meta{ID: "v6"}, Subnet: "10.64.4.0/24", Description: api.NodeDescription{WireGuard: wg},
						Status: api.NodeStatus{Addr: "2001:db8::4"}},
					&api.Node{Meta: api.Meta{ID: "removed"}, Subnet: "10.64.5.0/24", Description: api.NodeDescription{WireGuard: wg},
						Status: api.NodeStatus{Addr: "192.0.2.5"}, RemovedAt: epoch},
					&api.Node{Meta: api.Meta{ID: "nosubnet"}, Description: api.NodeDescription{WireGuard: wg},
						Status: api.NodeStatus{Addr: "192.0.2.6"}},
					&api.Node{Meta: api.Meta{ID: "nowg"}, Subnet: "10.64.7.0/24", Status: api.NodeStatus{Addr: "192.0.2.7"}},
					&api.Node{Meta: api.Meta{ID: "noaddr"}, Subnet: "10.64.8.0/24", Description: api.NodeDescription{WireGuard: wg}})
				return in
			}(),
			node: "n1", got: func(v *api.NetView) any {
				var out []string
				for _, p := range v.Peers {
					out = append(out, p.NodeID+"="+p.Endpoint)
				}
				return out
			},
			want: []string{"down=192.0.2.3:51999", "n2=192.0.2.2:51820", "v6=[2001:db8::4]:51999"}},
		{name: "the default pools without a cluster object",
			in:   small(),
			node: "n1", got: func(v *api.NetView) any { return []string{v.Subnet, v.TaskPool, v.VIPPool} },
			want: []string{"10.64.1.0/24", api.DefaultTaskPool, api.DefaultVIPPool}},
		{name: "the pools of the cluster object",
			in: func() Input {
				in := small()
				in.Cluster = &api.Cluster{Spec: api.ClusterSpec{Network: api.NetworkConfig{TaskPool: "10.128.0.0/16", NodeSubnetBits: 26, VIPPool: "10.129.0.0/24"}}}
				return in
			}(),
			node: "n1", got: func(v *api.NetView) any { return []string{v.TaskPool, v.VIPPool} },
			want: []string{"10.128.0.0/16", "10.129.0.0/24"}},
		{name: "a VIP only in vip mode, plain",
			in: func() Input {
				in := small(running("t1", "n1", "10.64.1.2/24"))
				in.Services[0].Endpoint.VIP = "10.96.0.7/16"
				in.Services = append(in.Services, &api.Service{Meta: api.Meta{ID: "rr"}, Spec: api.ServiceSpec{Name: "rr",
					Endpoint: api.EndpointSpec{Mode: api.EndpointDNSRR}, Networks: []api.NetworkAttachment{{Target: "a"}}},
					Endpoint: &api.Endpoint{VIP: "10.96.0.8"}})
				return in
			}(),
			node: "n1", got: func(v *api.NetView) any { return []string{serviceOf(v, "sa").VIP, serviceOf(v, "rr").VIP} },
			want: []string{"10.96.0.7", ""}},
		{name: "allocated ports win; spec ports only when published",
			in: func() Input {
				in := small(running("t1", "n1", "10.64.1.2/24"))
				in.Services[0].Spec.Endpoint.Ports = []api.PortConfig{{Target: 80}, {Target: 443, Published: 8443}}
				in.Services = append(in.Services, &api.Service{Meta: api.Meta{ID: "alloc"}, Spec: api.ServiceSpec{Name: "alloc",
					Endpoint: api.EndpointSpec{Ports: []api.PortConfig{{Target: 80}}}},
					Endpoint: &api.Endpoint{Ports: []api.PortConfig{{Target: 80, Published: 30000}}}})
				return in
			}(),
			node: "n2", got: func(v *api.NetView) any { return []any{serviceOf(v, "sa").Ports, serviceOf(v, "alloc").Ports} },
			want: []any{[]api.PortConfig{{Target: 443, Published: 8443}}, []api.PortConfig{{Target: 80, Published: 30000}}}},
		{name: "a short name only in a stack",
			in: func() Input {
				in := small(running("t1", "n1", "10.64.1.2/24"))
				in.Services = append(in.Services, &api.Service{Meta: api.Meta{ID: "st"}, Spec: api.ServiceSpec{Name: "shop_api",
					Stack: "shop", Networks: []api.NetworkAttachment{{Target: "a"}}}})
				return in
			}(),
			node: "n1", got: func(v *api.NetView) any { return []string{serviceOf(v, "sa").ShortName, serviceOf(v, "st").ShortName} },
			want: []string{"", "api"}},
		{name: "local tasks: plain addresses by ID, a task of an unknown service on no network",
			in: small(running("t2", "n1", "10.64.1.3/24"), running("t1", "n1", "10.64.1.2/24"),
				with(running("t3", "n1", "10.64.1.4/24"), func(t *api.Task) { t.ServiceID = "gone" })),
			node: "n1", got: func(v *api.NetView) any { return v.Tasks },
			want: []api.NetTask{{ID: "t1", ServiceID: "sa", Addr: "10.64.1.2", Networks: []string{"na"}},
				{ID: "t2", ServiceID: "sa", Addr: "10.64.1.3", Networks: []string{"na"}},
				{ID: "t3", ServiceID: "gone", Addr: "10.64.1.4"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.got(NewIndex(tc.in).View(tc.node))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// A view of an empty cluster has the pools and nothing else, with nil
// lists (so that JSON leaves them out).
func TestViewOfEmptyCluster(t *testing.T) {
	got := NewIndex(Input{}).View("n1")
	want := &api.NetView{NodeID: "n1", TaskPool: api.DefaultTaskPool, VIPPool: api.DefaultVIPPool}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

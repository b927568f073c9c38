package netview

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
)

// bigCluster is 1,000 nodes, 50 networks, 200 services (each on one to
// three networks, one in ten publishing a port) and 10,000 tasks spread
// at random: nine in ten running and healthy, the rest starting, failed
// or draining.
func bigCluster() Input {
	const nodes, networks, services, tasks = 1000, 50, 200, 10000
	r := rand.New(rand.NewPCG(11, 12))
	in := Input{Cluster: &api.Cluster{Meta: api.Meta{ID: api.ClusterID}, Spec: api.ClusterSpec{Network: api.DefaultNetworkConfig()}}}
	for i := range nodes {
		in.Nodes = append(in.Nodes, &api.Node{Meta: api.Meta{ID: fmt.Sprintf("node%04d", i)},
			Subnet:      fmt.Sprintf("10.%d.%d.0/24", 64+i/256, i%256),
			Description: api.NodeDescription{Hostname: fmt.Sprintf("host%04d", i), WireGuard: &api.WireGuardInfo{PublicKey: fmt.Sprintf("key%040d", i), Port: 51820}},
			Status:      api.NodeStatus{State: api.NodeReady, Addr: fmt.Sprintf("192.168.%d.%d", i/250, 1+i%250)}})
	}
	for i := range networks {
		in.Networks = append(in.Networks, &api.Network{Meta: api.Meta{ID: fmt.Sprintf("net%03d", i)},
			Spec: api.NetworkSpec{Name: fmt.Sprintf("stack%d_net%d", i/5, i), Internal: i%3 == 0}})
	}
	for i := range services {
		s := &api.Service{Meta: api.Meta{ID: fmt.Sprintf("svc%03d", i)}, Spec: api.ServiceSpec{Name: fmt.Sprintf("stack%d_svc%d", i/20, i),
			Stack: fmt.Sprintf("stack%d", i/20)}, Endpoint: &api.Endpoint{VIP: fmt.Sprintf("10.96.%d.%d", i/250, 1+i%250)}}
		for range 1 + r.IntN(3) {
			s.Spec.Networks = append(s.Spec.Networks, api.NetworkAttachment{Target: in.Networks[r.IntN(networks)].Spec.Name,
				Aliases: []string{fmt.Sprintf("alias%d", i)}})
		}
		if i%10 == 0 {
			s.Endpoint.Ports = []api.PortConfig{{Target: 80, Published: uint32(30000 + i)}}
		}
		in.Services = append(in.Services, s)
	}
	next := make([]int, nodes) // last host number given on each node
	for i := range tasks {
		n := r.IntN(nodes)
		next[n]++
		s := in.Services[i%services]
		t := &api.Task{Meta: api.Meta{ID: fmt.Sprintf("task%05d", i)}, ServiceID: s.ID, NodeID: in.Nodes[n].ID,
			Addr:         fmt.Sprintf("10.%d.%d.%d/24", 64+n/256, n%256, 1+next[n]),
			DesiredState: api.TaskRunning, Status: api.TaskStatus{State: api.TaskRunning, Health: api.HealthHealthy}}
		t.Spec.Container.Healthcheck = checkCurl
		switch r.IntN(30) {
		case 0:
			t.Status.State = api.TaskStarting
		case 1:
			t.Status.State = api.TaskFailed
		case 2:
			t.DrainingSince = epoch
		}
		in.Tasks = append(in.Tasks, t)
	}
	return in
}

// BenchmarkNewIndex is the cluster-wide work, once per store state.
func BenchmarkNewIndex(b *testing.B) {
	in := bigCluster()
	b.ReportAllocs()
	for b.Loop() {
		NewIndex(in)
	}
}

// BenchmarkView is one node's view from a built index (target < 50 ms).
func BenchmarkView(b *testing.B) {
	in := bigCluster()
	ix := NewIndex(in)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ix.View(in.Nodes[i%len(in.Nodes)].ID)
		i++
	}
}

// BenchmarkViewEveryNode is the views of all 1,000 nodes from one index:
// the work of one store change with every node connected.
func BenchmarkViewEveryNode(b *testing.B) {
	in := bigCluster()
	ix := NewIndex(in)
	b.ReportAllocs()
	for b.Loop() {
		for _, n := range in.Nodes {
			ix.View(n.ID)
		}
	}
}

// BenchmarkViewEqualUnchanged compares a node's view with the same view
// computed again from a fresh index (equal, shares no memory): what the
// dispatcher does per connected node on every store change, and the
// node's plane on every view it gets, before deciding there is nothing to
// send or apply.
func BenchmarkViewEqualUnchanged(b *testing.B) {
	in := bigCluster()
	id := in.Nodes[0].ID
	x, y := NewIndex(in).View(id), NewIndex(in).View(id)
	b.ReportAllocs()
	for b.Loop() {
		if !x.Equal(y) {
			b.Fatal("equal views compare unequal")
		}
	}
}

// BenchmarkViewEncodeEveryNode is the encoding of all 1,000 nodes' views
// from one index, as sessions send them after a change: json.Marshal of
// each view, against ViewJSON (the index's encodings made afresh in each
// iteration, as for a new store state).
func BenchmarkViewEncodeEveryNode(b *testing.B) {
	in := bigCluster()
	ix := NewIndex(in)
	b.Run("marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, n := range in.Nodes {
				if _, err := json.Marshal(ix.View(n.ID)); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("pieces", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ix.enc = pieces{networks: make([]atomic.Pointer[[]byte], len(ix.networks)),
				services: make([]atomic.Pointer[[]byte], len(ix.services))}
			for _, n := range in.Nodes {
				if _, err := ix.ViewJSON(n.ID); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

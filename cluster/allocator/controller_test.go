package allocator_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/allocator"
	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/cluster/store/storetest"
	"github.com/google/go-cmp/cmp"
)

// syncBuffer is a log sink safe for the controller's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type fixture struct {
	t    *testing.T
	st   *store.Store
	c    *allocator.Controller
	logs *syncBuffer
}

// newFixture is a controller on a one-manager store.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	cl := storetest.New(t, storetest.Options{Managers: 1})
	if _, err := cl.WaitLeader(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, st: cl.Store(cl.Leader()), logs: &syncBuffer{}}
	c, err := allocator.NewController(allocator.Config{Store: f.st, Logger: slog.New(slog.NewTextHandler(f.logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	f.c = c
	return f
}

func (f *fixture) update(fn func(tx store.Tx) error) {
	f.t.Helper()
	if _, err := f.st.Update(context.Background(), fn); err != nil {
		f.t.Fatal(err)
	}
}

// pass runs one allocation pass and reports whether it wrote anything.
func (f *fixture) pass() bool {
	f.t.Helper()
	before := f.st.Index()
	if err := f.c.Pass(context.Background()); err != nil {
		f.t.Fatalf("Pass: %v", err)
	}
	return f.st.Index() != before
}

func (f *fixture) setPlan(cfg api.NetworkConfig) {
	f.update(func(tx store.Tx) error {
		return tx.Create(&api.Cluster{Meta: api.Meta{ID: api.ClusterID}, Spec: api.ClusterSpec{Network: cfg}})
	})
}

func (f *fixture) addNode(id string, addrs ...string) {
	f.update(func(tx store.Tx) error {
		return tx.Create(&api.Node{Meta: api.Meta{ID: id}, Spec: api.NodeSpec{Name: id},
			Description: api.NodeDescription{Hostname: id, Addrs: append([]string{"192.168.7.1"}, addrs...)}})
	})
}

func (f *fixture) removeNode(id string) {
	f.update(func(tx store.Tx) error {
		n, err := store.Get[api.Node](tx, id)
		if err != nil {
			return err
		}
		n.RemovedAt = time.Now()
		return tx.Update(n)
	})
}

func (f *fixture) node(id string) *api.Node {
	f.t.Helper()
	var n *api.Node
	err := f.st.View(func(tx store.ReadTx) (err error) { n, err = store.Get[api.Node](tx, id); return err })
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

// createService stores a service and returns its ID, "svc-<name>": store
// IDs sort in creation order only to the millisecond, and what the
// allocator gives depends on that order.
func (f *fixture) createService(name string, mode api.EndpointMode, ports ...api.PortConfig) string {
	f.t.Helper()
	s := &api.Service{Meta: api.Meta{ID: "svc-" + name}, Spec: api.ServiceSpec{Name: name, Mode: api.ModeReplicated, Replicas: 1,
		Task:     api.TaskSpec{Container: api.ContainerSpec{Image: "registry.local/" + name}},
		Endpoint: api.EndpointSpec{Mode: mode, Ports: ports}}}
	f.update(func(tx store.Tx) error { return tx.Create(s) })
	return s.ID
}

// editService changes a service as reconcile does: read, change, update.
func (f *fixture) editService(id string, change func(*api.Service)) {
	f.update(func(tx store.Tx) error {
		s, err := store.Get[api.Service](tx, id)
		if err != nil {
			return err
		}
		change(s)
		return tx.Update(s)
	})
}

func (f *fixture) service(id string) *api.Service {
	f.t.Helper()
	var s *api.Service
	err := f.st.View(func(tx store.ReadTx) (err error) { s, err = store.Get[api.Service](tx, id); return err })
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func ingress(target, published uint32) api.PortConfig {
	return api.PortConfig{Protocol: api.ProtocolTCP, Target: target, Published: published, Mode: api.PublishIngress}
}

func TestControllerWritesDefaultPlan(t *testing.T) {
	f := newFixture(t)
	if !f.pass() {
		t.Fatal("the first pass on an empty store wrote nothing")
	}
	var cl *api.Cluster
	err := f.st.View(func(tx store.ReadTx) (err error) { cl, err = store.Get[api.Cluster](tx, api.ClusterID); return err })
	if err != nil {
		t.Fatalf("cluster object: %v", err)
	}
	if d := cmp.Diff(api.DefaultNetworkConfig(), cl.Spec.Network); d != "" {
		t.Errorf("plan (-want +got):\n%s", d)
	}
	if f.pass() {
		t.Error("a pass with nothing to do wrote to the store")
	}
	// A plan already there wins.
	f2 := newFixture(t)
	f2.setPlan(api.NetworkConfig{TaskPool: "10.200.0.0/16", NodeSubnetBits: 24, VIPPool: "10.201.0.0/24"})
	f2.addNode("n1")
	f2.pass()
	if got := f2.node("n1").Subnet; got != "10.200.0.0/24" {
		t.Errorf("node subnet = %q, want one of the recorded plan", got)
	}
}

func TestControllerNodes(t *testing.T) {
	f := newFixture(t)
	f.setPlan(api.NetworkConfig{TaskPool: "10.64.0.0/26", NodeSubnetBits: 28, VIPPool: "10.96.0.0/24"}) // 4 subnets
	for _, id := range []string{"n1", "n2", "n3"} {
		f.addNode(id)
	}
	f.addNode("lan", "10.64.0.9") // in the task pool
	if !f.pass() {
		t.Fatal("nothing written")
	}
	want := map[string]string{"n1": "10.64.0.0/28", "n2": "10.64.0.16/28", "n3": "10.64.0.32/28", "lan": ""}
	for id, subnet := range want {
		if got := f.node(id).Subnet; got != subnet {
			t.Errorf("node %s subnet = %q, want %q", id, got, subnet)
		}
	}
	if e := f.node("lan").SubnetError; !strings.Contains(e, "node lan: address 10.64.0.9 is in the task pool 10.64.0.0/26") {
		t.Errorf("lan SubnetError = %q", e)
	}
	if f.pass() {
		t.Error("a second pass wrote to the store")
	}

	// The pool's last subnet, then none: the node says why.
	f.addNode("n4")
	f.addNode("n5")
	f.pass()
	if got := f.node("n4").Subnet; got != "10.64.0.48/28" {
		t.Errorf("n4 subnet = %q, want the last one", got)
	}
	n5 := f.node("n5")
	if n5.Subnet != "" || n5.SubnetError != "task pool 10.64.0.0/26 has no free /28 for node n5" {
		t.Errorf("n5: subnet %q, error %q; want none, and why", n5.Subnet, n5.SubnetError)
	}
	if f.pass() {
		t.Error("a full pool is rewritten every pass")
	}

	// A removed node's subnet is freed and goes to the waiting node.
	f.removeNode("n2")
	f.pass()
	if n := f.node("n2"); n.Subnet != "" || n.SubnetError != "" {
		t.Errorf("removed n2 still holds %q / %q", n.Subnet, n.SubnetError)
	}
	if n := f.node("n5"); n.Subnet != "10.64.0.16/28" || n.SubnetError != "" {
		t.Errorf("n5: subnet %q, error %q; want n2's old 10.64.0.16/28", n.Subnet, n.SubnetError)
	}
	if f.pass() {
		t.Error("a settled pass wrote to the store")
	}
}

func TestControllerServices(t *testing.T) {
	f := newFixture(t)
	f.setPlan(api.NetworkConfig{TaskPool: "10.64.0.0/16", NodeSubnetBits: 24, VIPPool: "10.96.0.0/30"}) // 2 VIPs
	web := f.createService("1web", api.EndpointVIP, ingress(80, 0), ingress(443, 443),
		api.PortConfig{Protocol: api.ProtocolUDP, Target: 53, Mode: api.PublishHost, Published: 30000})
	dns := f.createService("2dns", api.EndpointDNSRR)
	api1 := f.createService("3api", api.EndpointVIP, ingress(8080, 0))
	late := f.createService("4late", api.EndpointVIP)
	f.pass()

	w := f.service(web)
	if w.Endpoint == nil || w.Endpoint.VIP != "10.96.0.1" {
		t.Fatalf("web endpoint = %+v, want VIP 10.96.0.1", w.Endpoint)
	}
	wantPorts := []api.PortConfig{ingress(80, 30000), ingress(443, 443),
		{Protocol: api.ProtocolUDP, Target: 53, Mode: api.PublishHost, Published: 30000}}
	if d := cmp.Diff(wantPorts, w.Endpoint.Ports); d != "" {
		t.Errorf("web ports (-want +got):\n%s", d)
	}
	if s := f.service(dns); s.Endpoint != nil {
		t.Errorf("dnsrr service without ports got %+v", s.Endpoint)
	}
	a := f.service(api1)
	if a.Endpoint == nil || a.Endpoint.VIP != "10.96.0.2" || len(a.Endpoint.Ports) != 1 || a.Endpoint.Ports[0].Published != 30001 {
		t.Errorf("api endpoint = %+v, want 10.96.0.2 and port 30001", a.Endpoint)
	}
	if s := f.service(late); s.Endpoint == nil || s.Endpoint.VIP != "" || s.Endpoint.Problem != "VIP pool 10.96.0.0/30 exhausted" {
		t.Errorf("late got %+v from a full VIP pool, want no VIP and the problem", s.Endpoint)
	}
	if logs := f.logs.String(); strings.Count(logs, "service 4late gets no VIP: VIP pool 10.96.0.0/30 exhausted") != 1 {
		t.Errorf("logs do not say once that late has no VIP:\n%s", logs)
	}
	if f.pass() {
		t.Error("a settled pass wrote to the store")
	}
	if n := strings.Count(f.logs.String(), "allocation impossible"); n != 1 {
		t.Errorf("the same problem was logged %d times", n)
	}

	// A spec update that keeps web's port 80 keeps its published port;
	// other writers' fields are left alone.
	f.editService(web, func(s *api.Service) {
		prev := s.Spec
		s.PreviousSpec = &prev
		s.Spec.Endpoint.Ports = []api.PortConfig{ingress(80, 0), ingress(81, 0)}
		s.Spec.Labels = map[string]string{"v": "2"}
	})
	if !f.pass() {
		t.Fatal("a spec update did not change Endpoint.Ports")
	}
	w = f.service(web)
	if d := cmp.Diff([]api.PortConfig{ingress(80, 30000), ingress(81, 30002)}, w.Endpoint.Ports); d != "" {
		t.Errorf("web ports after update (-want +got):\n%s", d)
	}
	if w.Spec.Labels["v"] != "2" || w.Endpoint.VIP != "10.96.0.1" {
		t.Errorf("web after the pass: labels %v, VIP %q", w.Spec.Labels, w.Endpoint.VIP)
	}

	// web switches to dnsrr: its VIP is freed, and goes to late.
	f.editService(web, func(s *api.Service) {
		s.Spec.Endpoint.Mode = api.EndpointDNSRR
		for i := range s.Spec.Endpoint.Ports {
			s.Spec.Endpoint.Ports[i].Mode = api.PublishHost
			s.Spec.Endpoint.Ports[i].Published = 9000 + uint32(i)
		}
	})
	f.pass()
	f.pass()
	if w = f.service(web); w.Endpoint.VIP != "" || w.Endpoint.Ports[0].Published != 9000 {
		t.Errorf("dnsrr web endpoint = %+v", w.Endpoint)
	}
	if s := f.service(late); s.Endpoint == nil || s.Endpoint.VIP != "10.96.0.1" {
		t.Errorf("late endpoint = %+v, want web's old VIP", s.Endpoint)
	}

	// A deleted service's port is free: a new service may have it.
	f.update(func(tx store.Tx) error { return tx.Delete(store.KindService, api1, 0) })
	f.pass()
	next := f.createService("5next", api.EndpointDNSRR, ingress(1, 0), ingress(2, 0), ingress(3, 0))
	f.pass()
	var got []uint32
	for _, p := range f.service(next).Endpoint.Ports {
		got = append(got, p.Published)
	}
	// No service holds a chosen port any more: the search starts at the
	// beginning of the range, and the freed 30000 to 30002 are free.
	if d := cmp.Diff([]uint32{30000, 30001, 30002}, got); d != "" {
		t.Errorf("ports after the others are freed (-want +got):\n%s", d)
	}
	if f.pass() {
		t.Error("a settled pass wrote to the store")
	}
}

func TestControllerRun(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	f.addNode("n1")
	svc := f.createService("web", api.EndpointVIP, ingress(80, 0))
	err := storetest.WaitFor(func() bool {
		var n *api.Node
		var s *api.Service
		err := f.st.View(func(tx store.ReadTx) (err error) {
			if n, err = store.Get[api.Node](tx, "n1"); err != nil {
				return err
			}
			s, err = store.Get[api.Service](tx, svc)
			return err
		})
		return err == nil && n.Subnet == "10.64.0.0/24" && s.Endpoint != nil && s.Endpoint.VIP == "10.96.0.1" &&
			len(s.Endpoint.Ports) == 1 && s.Endpoint.Ports[0].Published == 30000
	}, 10*time.Second)
	if err != nil {
		t.Fatalf("the running controller did not allocate: node %+v, service %+v", f.node("n1"), f.service(svc).Endpoint)
	}
}

func TestNewControllerNeedsStore(t *testing.T) {
	if _, err := allocator.NewController(allocator.Config{}); err == nil || !strings.Contains(err.Error(), "store") {
		t.Errorf("err = %v, want one naming the store", err)
	}
}

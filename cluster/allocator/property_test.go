package allocator

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// portKey is a published port.
type portKey struct {
	proto api.Protocol
	port  uint32
}

// world is the store's state as the allocator sees it: Decide and
// TaskAddrs run on it as the Controller and the scheduler do on the store.
type world struct {
	t     *testing.T
	seed  uint64
	log   []string // the steps taken
	r     *rand.Rand
	cfg   api.NetworkConfig
	seq   int
	nodes []*api.Node
	tasks []*api.Task
	svcs  []*api.Service
	// free are the TCP ports of the range the filler service leaves
	// (nil: no filler, the whole range is free).
	free []uint32
}

// Small pools, so that they fill up: 8 node subnets of 5 task addresses,
// 6 VIPs.
func newWorld(t *testing.T, seed uint64) *world {
	w := &world{t: t, seed: seed, r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		cfg: plan("10.64.0.0/26", 29, "10.96.0.0/29")}
	if seed%4 == 0 {
		// Publish all but a few TCP ports of the range explicitly, so that
		// chosen ports run out too.
		for range 5 {
			w.free = append(w.free, FirstDynamicPort+uint32(w.r.IntN(int(LastDynamicPort-FirstDynamicPort+1))))
		}
		w.svcs = append(w.svcs, filler(w.id("s"), api.ProtocolTCP, w.free...))
	}
	return w
}

func (w *world) id(prefix string) string {
	w.seq++
	return fmt.Sprintf("%s%06d", prefix, w.seq)
}

func (w *world) pick(n int) int { return w.r.IntN(n) }

// live are the nodes not removed.
func (w *world) live() []*api.Node {
	var out []*api.Node
	for _, n := range w.nodes {
		if !n.Removed() {
			out = append(out, n)
		}
	}
	return out
}

// randomPorts is a spec's ports: some chosen by the cluster, some
// published explicitly, some on ports of the range.
func (w *world) randomPorts() []api.PortConfig {
	var ps []api.PortConfig
	used := map[portKey]bool{}
	for range w.pick(4) {
		p := api.PortConfig{Target: uint32(80 + w.pick(4)), Protocol: api.Protocol(w.pick(2)), Mode: api.PublishMode(w.pick(2))}
		if w.pick(3) == 0 {
			p.Published = uint32(8000 + w.pick(4))
			if w.pick(2) == 0 {
				p.Published = FirstDynamicPort + uint32(w.pick(8)) // may take a chosen one
				if len(w.free) > 0 {
					p.Published = w.free[w.pick(len(w.free))]
				}
			}
			if used[portKey{p.Protocol, p.Published}] {
				continue // as validation requires
			}
			used[portKey{p.Protocol, p.Published}] = true
		}
		if w.pick(3) == 0 {
			p.Name = "p"
		}
		ps = append(ps, p)
	}
	return ps
}

func (w *world) randomService() *api.Service {
	mode := api.EndpointVIP
	if w.pick(3) == 0 {
		mode = api.EndpointDNSRR
	}
	s := mkService(w.id("s"), mode)
	s.Spec.Endpoint.Ports = w.randomPorts()
	return s
}

// step changes the world at random, as operators, Git and the scheduler do.
func (w *world) step() string {
	switch op := w.pick(12); {
	case op < 2: // a node joins, now and then with addresses in a pool
		n := mkNode(w.id("n"))
		if w.pick(10) == 0 {
			n.Description.Addrs = append(n.Description.Addrs, fmt.Sprintf("10.64.0.%d", w.pick(64)))
		}
		w.nodes = append(w.nodes, n)
		return "join " + n.ID
	case op < 3: // a node is removed; the orchestrator stops its tasks, if at all
		live := w.live()
		if len(live) == 0 {
			return "no node to remove"
		}
		n := live[w.pick(len(live))]
		n.RemovedAt = time.Unix(int64(w.seq), 0)
		end := w.pick(2) == 0
		for _, t := range w.tasks {
			if t.NodeID == n.ID && end {
				t.Status.State = api.TaskShutdown
			}
		}
		return "remove " + n.ID
	case op < 4: // a removed node's tombstone is deleted
		for i, n := range w.nodes {
			if n.Removed() {
				w.nodes = slices.Delete(w.nodes, i, i+1)
				return "forget " + n.ID
			}
		}
		return "no tombstone"
	case op < 7: // the scheduler places a task
		var ready []*api.Node
		for _, n := range w.live() {
			if n.Subnet != "" {
				ready = append(ready, n)
			}
		}
		if len(ready) == 0 {
			return "no node to place on"
		}
		n := ready[w.pick(len(ready))]
		a, err := NewTaskAddrs(n, w.tasks)
		if err != nil {
			w.fatalf("NewTaskAddrs(%s): %v", n.ID, err)
		}
		addr, err := a.Next()
		if err != nil {
			if !errors.Is(err, ErrExhausted) {
				w.fatalf("Next on %s: %v", n.ID, err)
			}
			if held := w.liveTasks(n.ID); held != Usable(netip.MustParsePrefix(n.Subnet)) {
				w.fatalf("node %s exhausted with %d of %d addresses held: %v", n.ID, held, Usable(netip.MustParsePrefix(n.Subnet)), err)
			}
			return "node full " + n.ID
		}
		t := mkTask(w.id("t"), n.ID, addr, api.TaskRunning)
		w.tasks = append(w.tasks, t)
		return "place " + t.ID + " " + addr
	case op < 8: // a task ends
		if len(w.tasks) == 0 {
			return "no task"
		}
		t := w.tasks[w.pick(len(w.tasks))]
		t.Status.State = api.TaskState(int(api.TaskComplete) + w.pick(3))
		return "end " + t.ID
	case op < 9: // an ended task is deleted
		for i, t := range w.tasks {
			if t.Status.State.Terminal() && w.pick(2) == 0 {
				w.tasks = slices.Delete(w.tasks, i, i+1)
				return "delete " + t.ID
			}
		}
		return "no ended task"
	case op < 10: // a service is created
		s := w.randomService()
		w.svcs = append(w.svcs, s)
		return "create " + s.ID
	default: // a service is deleted, switched between vip and dnsrr, or given new ports
		if len(w.svcs) == 0 || len(w.svcs) == 1 && w.free != nil {
			return "no service"
		}
		i := w.pick(len(w.svcs))
		if w.free != nil && i == 0 {
			i = 1 // the filler stays
		}
		s := w.svcs[i]
		switch w.pick(3) {
		case 0:
			w.svcs = slices.Delete(w.svcs, i, i+1)
			return "delete " + s.ID
		case 1:
			s.Spec.Endpoint.Mode = 1 - s.Spec.Endpoint.Mode
			return "switch " + s.ID
		}
		// Keep some ports, add and drop others; the old spec is kept, as
		// reconcile keeps it.
		prev := s.Spec
		prev.Endpoint.Ports = slices.Clone(prev.Endpoint.Ports)
		s.PreviousSpec = &prev
		var ps []api.PortConfig
		for _, p := range s.Spec.Endpoint.Ports {
			if w.pick(3) > 0 {
				ps = append(ps, p)
			}
		}
		s.Spec.Endpoint.Ports = append(ps, w.randomPorts()...)
		s.Spec.Endpoint.Ports = dedupePublished(s.Spec.Endpoint.Ports)
		return "ports " + s.ID
	}
}

// dedupePublished drops ports publishing a port again, as validation does.
func dedupePublished(ps []api.PortConfig) []api.PortConfig {
	seen := map[portKey]bool{}
	var out []api.PortConfig
	for _, p := range ps {
		k := portKey{p.Protocol, p.Published}
		if p.Published != 0 && seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, p)
	}
	return out
}

func (w *world) liveTasks(node string) int {
	n := 0
	for _, t := range w.tasks {
		if t.NodeID == node && t.Addr != "" && !t.Status.State.Terminal() {
			n++
		}
	}
	return n
}

// settle runs allocation passes until one changes nothing (the Controller
// runs again after each of its own commits); it must within a few.
func (w *world) settle() Changes {
	for range 4 {
		ch, err := Decide(w.cfg, w.nodes, w.svcs)
		if err != nil {
			w.fatalf("Decide: %v", err)
		}
		if len(ch.Nodes) == 0 && len(ch.Services) == 0 {
			return ch
		}
	}
	w.fatalf("allocation does not settle")
	return Changes{}
}

// chosenKey names a port the cluster chooses across spec updates.
type chosenKey struct {
	svc, name string
	proto     api.Protocol
	target    uint32
}

// chosenPorts are the ports the cluster chose, by what they publish;
// ports of a service asking twice for the same are left out.
func (w *world) chosenPorts() map[chosenKey]uint32 {
	out := map[chosenKey]uint32{}
	twice := map[chosenKey]bool{}
	for _, s := range w.svcs {
		if s.Endpoint == nil || len(s.Endpoint.Ports) != len(s.Spec.Endpoint.Ports) {
			continue
		}
		for i, p := range s.Spec.Endpoint.Ports {
			if !chosen(p) {
				continue
			}
			k := chosenKey{s.ID, p.Name, p.Protocol, p.Target}
			if _, dup := out[k]; dup {
				twice[k] = true
			}
			out[k] = s.Endpoint.Ports[i].Published
		}
	}
	for k := range twice {
		delete(out, k)
	}
	return out
}

// check asserts what the allocator promises of a settled world.
func (w *world) check(ch Changes, before map[chosenKey]uint32) {
	taskPool, vipPool, _ := w.cfg.Pools()

	// Subnets: one per node not removed (or a reason), none twice, all
	// of the pool's size and in it; none held by removed nodes; a node
	// goes without only when its addresses clash or the pool is full.
	subnets := map[netip.Prefix]string{}
	waiting := 0
	for _, n := range w.nodes {
		if n.Removed() {
			if n.Subnet != "" || n.SubnetError != "" {
				w.fatalf("removed node %s holds %q / %q", n.ID, n.Subnet, n.SubnetError)
			}
			continue
		}
		if (n.Subnet == "") == (n.SubnetError == "") {
			w.fatalf("node %s: subnet %q, error %q: want exactly one", n.ID, n.Subnet, n.SubnetError)
		}
		if n.Subnet == "" {
			if Overlap(w.cfg, n.Description.Addrs) == "" {
				waiting++
			}
			continue
		}
		p := netip.MustParsePrefix(n.Subnet)
		if p.Masked() != p || p.Bits() != w.cfg.NodeSubnetBits || !taskPool.Contains(p.Addr()) {
			w.fatalf("node %s holds %s, not a /%d of %s", n.ID, p, w.cfg.NodeSubnetBits, taskPool)
		}
		if other, dup := subnets[p]; dup {
			w.fatalf("subnet %s held by %s and %s", p, other, n.ID)
		}
		subnets[p] = n.ID
	}
	if waiting > 0 && len(subnets) != 1<<(w.cfg.NodeSubnetBits-taskPool.Bits()) {
		w.fatalf("%d nodes wait for a subnet while %d of %d are held", waiting, len(subnets), 1<<(w.cfg.NodeSubnetBits-taskPool.Bits()))
	}

	// Task addresses: those of tasks that have not ended, on nodes not
	// removed, are in their node's subnet, never its network, gateway or
	// broadcast address, and none twice.
	byNode := map[string]*api.Node{}
	for _, n := range w.nodes {
		byNode[n.ID] = n
	}
	addrs := map[netip.Addr]string{}
	for _, tk := range w.tasks {
		n := byNode[tk.NodeID]
		if tk.Status.State.Terminal() || n == nil || n.Removed() {
			continue
		}
		p := netip.MustParsePrefix(tk.Addr)
		sub := netip.MustParsePrefix(n.Subnet)
		if p.Bits() != sub.Bits() || !sub.Contains(p.Addr()) || p.Addr() == sub.Addr() || p.Addr() == Gateway(sub) || p.Addr() == lastAddr(sub) {
			w.fatalf("task %s on %s (%s) holds %s", tk.ID, n.ID, sub, tk.Addr)
		}
		if other, dup := addrs[p.Addr()]; dup {
			w.fatalf("address %s held by %s and %s", p.Addr(), other, tk.ID)
		}
		addrs[p.Addr()] = tk.ID
	}

	// VIPs: vip-mode services hold one unless the pool is full, dnsrr
	// ones none; none twice, all in the pool.
	vips := map[netip.Addr]string{}
	without := 0
	for _, s := range w.svcs {
		has := s.Endpoint != nil && s.Endpoint.VIP != ""
		switch {
		case !WantsVIP(s) && has:
			w.fatalf("dnsrr service %s holds VIP %s", s.ID, s.Endpoint.VIP)
		case WantsVIP(s) && !has:
			without++
		case has:
			a := netip.MustParseAddr(s.Endpoint.VIP)
			if !vipPool.Contains(a) || a == vipPool.Addr() || a == lastAddr(vipPool) {
				w.fatalf("service %s holds VIP %s, not one of %s", s.ID, a, vipPool)
			}
			if other, dup := vips[a]; dup {
				w.fatalf("VIP %s held by %s and %s", a, other, s.ID)
			}
			vips[a] = s.ID
		}
	}
	if without > 0 && len(vips) != Usable(vipPool)+1 {
		w.fatalf("%d services wait for a VIP while %d of %d are held", without, len(vips), Usable(vipPool)+1)
	}

	// Ports: Endpoint.Ports is the spec's with the chosen ones filled in;
	// a chosen port is in the range, clashes with no other published
	// port; one goes without only when the range is full.
	var explicit [2]portSet // tcp, udp
	for _, s := range w.svcs {
		for _, p := range s.Spec.Endpoint.Ports {
			if p.Published != 0 {
				explicit[p.Protocol].add(p.Published)
			}
		}
	}
	chosenBy := map[portKey]string{}
	missing := map[api.Protocol]int{}
	for _, s := range w.svcs {
		var got []api.PortConfig
		if s.Endpoint != nil {
			got = s.Endpoint.Ports
		}
		if len(got) != len(s.Spec.Endpoint.Ports) {
			w.fatalf("service %s: Endpoint.Ports %v for spec %v", s.ID, got, s.Spec.Endpoint.Ports)
		}
		for i, want := range s.Spec.Endpoint.Ports {
			g := got[i]
			if !chosen(want) {
				if g != want {
					w.fatalf("service %s port %d: %+v, want the spec's %+v", s.ID, i, g, want)
				}
				continue
			}
			g.Published = 0
			if g != want {
				w.fatalf("service %s port %d: %+v, want the spec's %+v", s.ID, i, got[i], want)
			}
			k := portKey{want.Protocol, got[i].Published}
			switch {
			case k.port == 0:
				missing[k.proto]++
				continue
			case !dynamic(k.port):
				w.fatalf("service %s chose %d/%s, outside the range", s.ID, k.port, k.proto)
			case explicit[k.proto].has(k.port):
				w.fatalf("service %s chose %d/%s, which a spec publishes", s.ID, k.port, k.proto)
			}
			if other, dup := chosenBy[k]; dup {
				w.fatalf("port %d/%s chosen for %s and %s", k.port, k.proto, other, s.ID)
			}
			chosenBy[k] = s.ID
		}
	}
	for proto, n := range missing {
		held := 0
		for p := FirstDynamicPort; p <= LastDynamicPort; p++ {
			k := portKey{proto, p}
			if explicit[proto].has(p) || chosenBy[k] != "" {
				held++
			}
		}
		if held != int(LastDynamicPort-FirstDynamicPort+1) {
			w.fatalf("%d %s ports wait while %d of the range are held", n, proto, held)
		}
	}
	// Chosen ports stay while the spec asks for them and no spec takes
	// them explicitly.
	after := w.chosenPorts()
	for k, old := range before {
		now, ok := after[k]
		if ok && old != 0 && !explicit[k.proto].has(old) && now != old {
			for _, s := range w.svcs {
				if s.ID == k.svc {
					w.t.Logf("spec %+v\nendpoint %+v", s.Spec.Endpoint, s.Endpoint)
				}
			}
			w.fatalf("service %s port %d/%s moved from %d to %d", k.svc, k.target, k.proto, old, now)
		}
	}

	// What could not be had is said.
	if (without > 0 || len(missing) > 0) != (len(ch.Problems) > 0) {
		w.fatalf("%d services without a VIP, %v ports missing, problems %v", without, missing, ch.Problems)
	}
}

// fatalf fails the test, saying how the world got here.
func (w *world) fatalf(format string, args ...any) {
	w.t.Helper()
	w.t.Fatalf("seed %d, step %d (the last: %q): %s", w.seed, len(w.log), w.log[max(0, len(w.log)-8):], fmt.Sprintf(format, args...))
}

func TestPropertyAllocation(t *testing.T) {
	seeds, steps := 32, 200
	if testing.Short() {
		seeds = 8
	}
	for seed := range uint64(seeds) {
		w := newWorld(t, seed)
		for range steps {
			before := w.chosenPorts()
			w.log = append(w.log, w.step())
			w.check(w.settle(), before)
		}
	}
}

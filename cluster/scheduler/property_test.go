package scheduler

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
)

// randomCluster builds nodes (some with tasks already), services and
// pending tasks with random placement rules.
func randomCluster(r *rand.Rand, nNodes, nTasks int) ([]NodeInfo, map[string]*api.Service, []*api.Task) {
	pick := func(ss ...string) string { return ss[r.IntN(len(ss))] }
	var nodes []NodeInfo
	for i := range nNodes {
		n := mkNode(fmt.Sprintf("n%02d", i),
			withResources(api.NanoCPUs(1+r.IntN(4))*cpu, api.Bytes(1+r.IntN(8))*gib))
		if r.IntN(8) == 0 {
			n.Status.State = api.NodeState(r.IntN(4))
		}
		if r.IntN(8) == 0 {
			n.Spec.Availability = api.NodeAvailability(r.IntN(3))
		}
		if r.IntN(4) == 0 {
			n.Spec.Role = api.RoleManager
		}
		if r.IntN(5) == 0 {
			n.Description.Platform.Architecture = "arm64"
		}
		n.Spec.Labels = map[string]string{}
		if z := pick("a", "b", "c", ""); z != "" {
			n.Spec.Labels["zone"] = z
		}
		if r.IntN(2) == 0 {
			n.Spec.Labels["disk"] = pick("ssd", "hdd")
		}
		nodes = append(nodes, NodeInfo{Node: n})
	}

	svcs := map[string]*api.Service{}
	specs := map[string][]func(*api.Task){}
	for i := range 12 {
		id := fmt.Sprintf("svc%02d", i)
		var opts []func(*api.Task)
		if r.IntN(2) == 0 {
			opts = append(opts, reserve(api.NanoCPUs(r.IntN(3))*cpu/2, api.Bytes(r.IntN(4))*512*mib))
		}
		if r.IntN(3) == 0 {
			opts = append(opts, constrain(pick("node.labels.zone==a", "node.labels.zone!=b", "node.role==worker",
				"node.labels.disk==ssd", "node.platform.arch==amd64", "node.hostname!=host-n03")))
		}
		if r.IntN(3) == 0 {
			opts = append(opts, spread(pick("zone", "disk")))
		}
		if r.IntN(4) == 0 {
			opts = append(opts, maxPerNode(uint64(1+r.IntN(3))))
		}
		if r.IntN(6) == 0 {
			opts = append(opts, platforms(api.Platform{OS: "linux", Architecture: "arm64"}))
		}
		svc := &api.Service{Meta: api.Meta{ID: id}}
		if r.IntN(4) == 0 {
			svc = hostService(id, uint32(8000+r.IntN(3)))
		}
		svcs[id] = svc
		specs[id] = opts
	}
	ids := make([]string, 0, len(svcs))
	for i := range 12 {
		ids = append(ids, fmt.Sprintf("svc%02d", i))
	}

	// Some tasks already run (they may break today's rules: a node can be
	// over its reservations after it shrank, which must not crash anything).
	for i := range nNodes / 2 {
		ni := r.IntN(nNodes)
		svc := ids[r.IntN(len(ids))]
		st := pick("running", "running", "failed")
		state, _ := api.ParseTaskState(st)
		t := mkTask(fmt.Sprintf("old%03d", i), svc, uint64(i), append(specs[svc], onNode(nodes[ni].Node.ID, state))...)
		nodes[ni].Tasks = append(nodes[ni].Tasks, t)
	}

	var tasks []*api.Task
	for i := range nTasks {
		svc := ids[r.IntN(len(ids))]
		opts := specs[svc]
		if r.IntN(20) == 0 {
			opts = append(append([]func(*api.Task){}, opts...), func(t *api.Task) { t.NodeID = nodes[r.IntN(nNodes)].Node.ID })
		}
		tasks = append(tasks, mkTask(fmt.Sprintf("t%04d", i), svc, uint64(i), opts...))
	}
	return nodes, svcs, tasks
}

// oracle re-states the placement rules independently of the pipeline.
type oracle struct {
	nodes    map[string]*api.Node
	cpu, mem map[string]int64
	perSvc   map[[2]string]int
	ports    map[string]map[hostPort]bool
	svcs     map[string]*api.Service
}

func newOracle(nodes []NodeInfo, svcs map[string]*api.Service) *oracle {
	o := &oracle{nodes: map[string]*api.Node{}, cpu: map[string]int64{}, mem: map[string]int64{},
		perSvc: map[[2]string]int{}, ports: map[string]map[hostPort]bool{}, svcs: svcs}
	for _, ni := range nodes {
		o.nodes[ni.Node.ID] = ni.Node
		o.ports[ni.Node.ID] = map[hostPort]bool{}
		for _, t := range ni.Tasks {
			if !t.Status.State.Terminal() {
				o.add(ni.Node.ID, t)
			}
		}
	}
	return o
}

func (o *oracle) hostPorts(t *api.Task) []hostPort {
	var out []hostPort
	if s := o.svcs[t.ServiceID]; s != nil {
		for _, p := range s.Spec.Endpoint.Ports {
			if p.Mode == api.PublishHost && p.Published != 0 {
				out = append(out, hostPort{p.Published, p.Protocol})
			}
		}
	}
	return out
}

func (o *oracle) add(node string, t *api.Task) {
	o.cpu[node] += int64(t.Spec.Resources.Reservations.NanoCPUs)
	o.mem[node] += int64(t.Spec.Resources.Reservations.Memory)
	o.perSvc[[2]string{node, t.ServiceID}]++
	for _, p := range o.hostPorts(t) {
		o.ports[node][p] = true
	}
}

// fits says why node cannot take t now, or "" when it can.
func (o *oracle) fits(node string, t *api.Task) string {
	n := o.nodes[node]
	if n.Status.State != api.NodeReady || n.Spec.Availability != api.AvailabilityActive {
		return "not ready and active"
	}
	res := t.Spec.Resources.Reservations
	if res.NanoCPUs > 0 && o.cpu[node]+int64(res.NanoCPUs) > int64(n.Description.Resources.NanoCPUs) {
		return "cpu"
	}
	if res.Memory > 0 && o.mem[node]+int64(res.Memory) > int64(n.Description.Resources.Memory) {
		return "memory"
	}
	for _, c := range t.Spec.Placement.Constraints {
		if !MatchConstraint(c, n) {
			return "constraint " + c.String()
		}
	}
	if ps := t.Spec.Placement.Platforms; len(ps) > 0 {
		ok := false
		for _, p := range ps {
			ok = ok || (p.OS == n.Description.Platform.OS && p.Architecture == n.Description.Platform.Architecture)
		}
		if !ok {
			return "platform"
		}
	}
	for _, p := range o.hostPorts(t) {
		if o.ports[node][p] {
			return "port"
		}
	}
	if m := t.Spec.Placement.MaxReplicasPerNode; m > 0 && uint64(o.perSvc[[2]string{node, t.ServiceID}]) >= m {
		return "max replicas"
	}
	return ""
}

// TestPropertyPlacementsSatisfyFilters: on random clusters, every
// placement satisfied every rule at the time it was made (replayed in the
// order groups are scheduled: bound tasks, then by service), and no task is
// left unplaced while some node could still take it.
func TestPropertyPlacementsSatisfyFilters(t *testing.T) {
	placedTotal, unplacedTotal := 0, 0
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 42))
		nodes, svcs, tasks := randomCluster(r, 1+r.IntN(40), r.IntN(300))
		ds := Schedule(nodes, svcs, tasks)
		o := newOracle(nodes, svcs)

		// Replay placements: their order within the batch does not matter
		// to the final check of capacity, but each must fit once all are
		// applied, so check against totals.
		for _, d := range ds {
			if d.Err != nil {
				unplacedTotal++
				continue
			}
			placedTotal++
			if d.Task.NodeID != "" && d.NodeID != d.Task.NodeID {
				t.Fatalf("seed %d: task %s bound to %s placed on %s", seed, d.Task.ID, d.Task.NodeID, d.NodeID)
			}
			if why := o.fits(d.NodeID, d.Task); why != "" {
				t.Fatalf("seed %d: task %s placed on %s which fails %s", seed, d.Task.ID, d.NodeID, why)
			}
			o.add(d.NodeID, d.Task)
		}
		for _, d := range ds {
			if d.Err == nil {
				continue
			}
			candidates := []string{d.Task.NodeID}
			if d.Task.NodeID == "" {
				candidates = candidates[:0]
				for id := range o.nodes {
					candidates = append(candidates, id)
				}
			}
			for _, id := range candidates {
				if _, ok := o.nodes[id]; ok && o.fits(id, d.Task) == "" {
					t.Fatalf("seed %d: task %s left unplaced (%v) but node %s fits it", seed, d.Task.ID, d.Err, id)
				}
			}
		}
	}
	// The random clusters must exercise both outcomes.
	if placedTotal == 0 || unplacedTotal == 0 {
		t.Errorf("placed %d, unplaced %d: the generator does not exercise both", placedTotal, unplacedTotal)
	}
	t.Logf("placed %d tasks, left %d unplaced", placedTotal, unplacedTotal)
}

package scheduler

import (
	"cmp"
	"slices"
	"strings"

	"github.com/gitorc/gitorc/cluster/api"
)

// NodeInfo is a node and the tasks assigned to it. Tasks whose status is
// terminal are ignored; every other task counts against the node's
// resources, host ports and spread.
type NodeInfo struct {
	Node  *api.Node
	Tasks []*api.Task
}

// Decision is the outcome for one pending task: NodeID, or Err (a
// *NoSuitableNodeError, matching ErrNoSuitableNode) whose message belongs
// on the task's status.
type Decision struct {
	Task   *api.Task
	NodeID string
	Err    error
}

// Scheduler holds a snapshot of the cluster during scheduling. Each call
// of Schedule adds its placements to the snapshot, so successive batches
// see earlier decisions. It does no I/O and is not safe for concurrent use.
type Scheduler struct {
	nodes    []*nodeState // sorted by node ID
	byID     map[string]int
	services map[string]*api.Service
	ports    map[string][]hostPort // host-mode ports by service ID
	static   map[string]*staticResult
	counts   map[string]map[int]int // tasks per node (index) by service ID
	scratch  []entry                // a leaf heap reused across groups
	// addrs: a task needs an address of its node's subnet (the address
	// filter runs); see WithAddresses.
	addrs bool
}

// Option changes how a Scheduler decides.
type Option func(*Scheduler)

// WithAddresses makes every placement need an overlay address: a node
// without a task subnet, or whose subnet has no free address, takes no
// task (the address filter). The leader's Controller sets it; the
// allocator gives the address when the placement is committed.
func WithAddresses() Option { return func(s *Scheduler) { s.addrs = true } }

// nodeState is a node as the scheduler sees it during a batch.
type nodeState struct {
	node     *api.Node
	idx      int   // index in Scheduler.nodes
	cpu, mem int64 // reserved by the node's tasks
	total    int   // non-terminal tasks
	ports    map[hostPort]struct{}
}

type hostPort struct {
	port  uint32
	proto api.Protocol
}

// New builds a Scheduler from a snapshot. services maps service IDs to
// services: it is read for host-mode published ports, of pending tasks and
// of tasks already on nodes (a task whose service is absent publishes
// nothing). Neither nodes nor services are modified.
func New(nodes []NodeInfo, services map[string]*api.Service, opts ...Option) *Scheduler {
	s := &Scheduler{
		nodes:    make([]*nodeState, 0, len(nodes)),
		byID:     make(map[string]int, len(nodes)),
		services: services,
		ports:    map[string][]hostPort{},
		static:   map[string]*staticResult{},
		counts:   map[string]map[int]int{},
	}
	for _, o := range opts {
		o(s)
	}
	for _, ni := range nodes {
		if ni.Node != nil {
			s.nodes = append(s.nodes, &nodeState{node: ni.Node})
		}
	}
	slices.SortFunc(s.nodes, func(a, b *nodeState) int { return strings.Compare(a.node.ID, b.node.ID) })
	for i, n := range s.nodes {
		n.idx = i
		s.byID[n.node.ID] = i
	}
	for _, ni := range nodes {
		if ni.Node == nil {
			continue
		}
		n := s.nodes[s.byID[ni.Node.ID]]
		for _, t := range ni.Tasks {
			if t == nil || t.Status.State.Terminal() {
				continue
			}
			s.add(n, t.ServiceID, &t.Spec.Resources.Reservations, s.hostPorts(t.ServiceID))
		}
	}
	return s
}

// Schedule places the pending tasks on the snapshot with the default
// pipeline; see Scheduler.Schedule.
func Schedule(nodes []NodeInfo, services map[string]*api.Service, pending []*api.Task) []Decision {
	return New(nodes, services).Schedule(pending)
}

// Schedule decides a node for each pending task and returns one Decision
// per task, in the order of pending. A task that already names a node (a
// global service's task) is checked against that node only. The result
// does not depend on the order of pending: groups are processed by service
// ID, and tasks within a group by slot and ID.
func (s *Scheduler) Schedule(pending []*api.Task) []Decision {
	out := make([]Decision, len(pending))
	var fixed []int
	groups := map[string][]*group{}
	for i, t := range pending {
		out[i].Task = t
		if t.NodeID != "" {
			fixed = append(fixed, i)
			continue
		}
		gs := groups[t.ServiceID]
		var g *group
		for _, cand := range gs {
			if samePlacement(&cand.spec, &t.Spec) {
				g = cand
				break
			}
		}
		if g == nil {
			g = s.newGroup(t)
			groups[t.ServiceID] = append(gs, g)
		}
		g.tasks = append(g.tasks, i)
	}

	// Tasks bound to a node first: they have no choice.
	slices.SortFunc(fixed, func(a, b int) int { return strings.Compare(pending[a].ID, pending[b].ID) })
	for _, i := range fixed {
		s.scheduleFixed(pending[i], &out[i])
	}

	all := make([]*group, 0, len(groups))
	for _, gs := range groups {
		for _, g := range gs {
			slices.SortFunc(g.tasks, func(a, b int) int {
				ta, tb := pending[a], pending[b]
				if c := cmp.Compare(ta.Slot, tb.Slot); c != 0 {
					return c
				}
				return strings.Compare(ta.ID, tb.ID)
			})
			all = append(all, g)
		}
	}
	slices.SortFunc(all, func(a, b *group) int {
		if c := strings.Compare(a.serviceID, b.serviceID); c != 0 {
			return c
		}
		return strings.Compare(pending[a.tasks[0]].ID, pending[b.tasks[0]].ID)
	})
	for _, g := range all {
		s.scheduleGroup(g, pending, out)
	}
	return out
}

// group is a set of pending tasks of one service with the same
// placement-relevant spec (reservations and placement).
type group struct {
	serviceID string
	spec      api.TaskSpec
	cpu, mem  int64
	ports     []hostPort
	counts    map[int]int // tasks of the service per node index
	tasks     []int       // indices into pending
	filters   []int       // enabled dynamic filters (pipeline indices)
	addrs     bool        // tasks need an address (WithAddresses)
	// full is the last node the address filter found without a free
	// address, named when it is the only one.
	full *api.Node
	// needs are what the container needs of a node's policy (api.Needs);
	// nodes is the number of nodes, to say "no node allows".
	needs []api.Need
	nodes int
}

func (s *Scheduler) newGroup(t *api.Task) *group {
	r := t.Spec.Resources.Reservations
	g := &group{
		serviceID: t.ServiceID,
		spec:      t.Spec,
		cpu:       int64(r.NanoCPUs),
		mem:       int64(r.Memory),
		ports:     s.hostPorts(t.ServiceID),
		counts:    s.serviceCounts(t.ServiceID),
		addrs:     s.addrs,
		needs:     api.Needs(&t.Spec.Container),
		nodes:     len(s.nodes),
	}
	for i, f := range pipeline {
		if !staticFilter[i] && f.Enabled(g) {
			g.filters = append(g.filters, i)
		}
	}
	return g
}

// samePlacement reports whether two task specs place alike.
func samePlacement(a, b *api.TaskSpec) bool {
	pa, pb := &a.Placement, &b.Placement
	return a.Resources.Reservations == b.Resources.Reservations &&
		pa.MaxReplicasPerNode == pb.MaxReplicasPerNode &&
		slices.Equal(pa.Constraints, pb.Constraints) &&
		slices.Equal(pa.Preferences, pb.Preferences) &&
		slices.Equal(pa.Platforms, pb.Platforms) &&
		needsKey(api.Needs(&a.Container)) == needsKey(api.Needs(&b.Container))
}

// hostPorts returns the host-mode published ports of a service, taking
// the allocated endpoint when there is one.
func (s *Scheduler) hostPorts(serviceID string) []hostPort {
	if ps, ok := s.ports[serviceID]; ok {
		return ps
	}
	var ps []hostPort
	if svc := s.services[serviceID]; svc != nil {
		ports := svc.Spec.Endpoint.Ports
		if svc.Endpoint != nil && len(svc.Endpoint.Ports) > 0 {
			ports = svc.Endpoint.Ports
		}
		for _, p := range ports {
			if p.Mode == api.PublishHost && p.Published != 0 {
				ps = append(ps, hostPort{p.Published, p.Protocol})
			}
		}
	}
	s.ports[serviceID] = ps
	return ps
}

func (s *Scheduler) serviceCounts(serviceID string) map[int]int {
	m := s.counts[serviceID]
	if m == nil {
		m = map[int]int{}
		s.counts[serviceID] = m
	}
	return m
}

// add accounts a task on a node.
func (s *Scheduler) add(n *nodeState, serviceID string, r *api.Resources, ports []hostPort) {
	n.cpu += int64(r.NanoCPUs)
	n.mem += int64(r.Memory)
	n.total++
	s.serviceCounts(serviceID)[n.idx]++
	if len(ports) > 0 && n.ports == nil {
		n.ports = map[hostPort]struct{}{}
	}
	for _, p := range ports {
		n.ports[p] = struct{}{}
	}
}

func (s *Scheduler) place(n *nodeState, g *group) {
	s.add(n, g.serviceID, &g.spec.Resources.Reservations, g.ports)
}

// check runs the whole pipeline on one node.
func check(g *group, n *nodeState) (failure, bool) {
	for i, f := range pipeline {
		if f.Enabled(g) {
			if code := f.Check(g, n); code != 0 {
				return failure{uint8(i), code}, false
			}
		}
	}
	return failure{}, true
}

// scheduleFixed checks a task bound to a node against that node.
func (s *Scheduler) scheduleFixed(t *api.Task, d *Decision) {
	i, ok := s.byID[t.NodeID]
	if !ok {
		d.Err = &NoSuitableNodeError{Reasons: []string{"node " + t.NodeID + " is not in the cluster"}}
		return
	}
	n := s.nodes[i]
	g := s.newGroup(t)
	if f, ok := check(g, n); !ok {
		d.Err = explain(g, failures{f: 1})
		return
	}
	s.place(n, g)
	d.NodeID = n.node.ID
}

// staticResult is the verdict of the static filters on every node, shared
// by the groups whose static filters see the same spec.
type staticResult struct {
	eligible []int   // node indices, ascending (node ID order)
	pos      []int32 // position in eligible by node index, or -1
	fails    failures
}

// staticKey identifies what the static filters read of a group's spec.
func staticKey(g *group) string {
	p := &g.spec.Placement
	if len(p.Constraints) == 0 && len(p.Platforms) == 0 && len(g.needs) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(needsKey(g.needs))
	b.WriteByte(2)
	for _, c := range p.Constraints {
		b.WriteString(c.String())
		b.WriteByte(0)
	}
	b.WriteByte(1)
	for _, pl := range p.Platforms {
		b.WriteString(pl.OS)
		b.WriteByte('/')
		b.WriteString(pl.Architecture)
		b.WriteByte(0)
	}
	return b.String()
}

func (s *Scheduler) staticFor(g *group) *staticResult {
	key := staticKey(g)
	if r, ok := s.static[key]; ok {
		return r
	}
	var active []int
	for i, f := range pipeline {
		if staticFilter[i] && f.Enabled(g) {
			active = append(active, i)
		}
	}
	r := &staticResult{fails: failures{}, pos: make([]int32, len(s.nodes))}
	for ni, n := range s.nodes {
		r.pos[ni] = -1
		ok := true
		for _, fi := range active {
			if code := pipeline[fi].Check(g, n); code != 0 {
				r.fails[failure{uint8(fi), code}]++
				ok = false
				break
			}
		}
		if ok {
			r.pos[ni] = int32(len(r.eligible))
			r.eligible = append(r.eligible, ni)
		}
	}
	s.static[key] = r
	return r
}

// scheduleGroup places the tasks of one group.
func (s *Scheduler) scheduleGroup(g *group, pending []*api.Task, out []Decision) {
	st := s.staticFor(g)
	tr := s.buildTree(g, st)
	var dyn failures
	for k, ti := range g.tasks {
		placed := false
		for {
			leaf := tr.pick()
			if leaf == nil {
				break
			}
			e := &leaf.heap[0]
			n := s.nodes[e.node]
			if f, ok := s.checkDynamic(g, n); !ok {
				if dyn == nil {
					dyn = failures{}
				}
				dyn[f]++
				tr.drop(leaf)
				continue
			}
			s.place(n, g)
			e.svc++
			e.total++
			leaf.fixTop()
			tr.placed(leaf)
			out[ti].NodeID = n.node.ID
			placed = true
			break
		}
		if !placed {
			err := explain(g, st.fails, dyn)
			for _, rest := range g.tasks[k:] {
				out[rest].Err = err
			}
			return
		}
	}
}

func (s *Scheduler) checkDynamic(g *group, n *nodeState) (failure, bool) {
	for _, fi := range g.filters {
		if code := pipeline[fi].Check(g, n); code != 0 {
			return failure{uint8(fi), code}, false
		}
	}
	return failure{}, true
}

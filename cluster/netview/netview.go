package netview

import (
	"cmp"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/gitorc/gitorc/cluster/api"
)

// Input is the store state views are computed from: the cluster object
// (nil when absent: the default address plan) and every node, network,
// service and task. Nil entries are ignored; order does not matter.
type Input struct {
	Cluster  *api.Cluster
	Nodes    []*api.Node
	Networks []*api.Network
	Services []*api.Service
	Tasks    []*api.Task
}

// Index is one store state made ready for View. Build it once per state
// and share it: it is immutable, and safe for concurrent use.
type Index struct {
	taskPool, vipPool string
	subnets           map[string]string // node ID → subnet
	peers             []api.NetPeer     // every node that can be a peer, by node ID

	networks []api.NetNetwork // by ID, members filled in
	services []api.NetService // by name, then ID, backends filled in
	// netServices are, per network, the services on it (positions in
	// services, ascending).
	netServices [][]int
	// published are the services that publish a port (positions in
	// services, ascending); publishedNets their networks (positions in
	// networks, ascending, unique).
	published, publishedNets []int
	nodes                    map[string]*nodeTasks
	enc                      pieces // ViewJSON's encodings (encode.go)
}

// nodeTasks are one node's tasks that hold an address.
type nodeTasks struct {
	tasks []api.NetTask // by ID
	nets  []int         // their networks: positions in networks, ascending, unique
}

// addr is a task address, parsed (for sorting) and printed.
type addr struct {
	ip  netip.Addr
	str string
}

// service is what NewIndex keeps of a service while it reads the tasks.
type service struct {
	nets     []int    // positions in networks, ascending
	netIDs   []string // the same networks' IDs, sorted (shared by its tasks' NetTask)
	backends []backend
}

type backend struct {
	addr addr
	api.NetBackend
}

// NewIndex does the cluster-wide part of every node's view.
func NewIndex(in Input) *Index {
	pools := poolsOf(in.Cluster)
	ix := &Index{taskPool: pools.TaskPool, vipPool: pools.VIPPool,
		subnets: map[string]string{}, nodes: map[string]*nodeTasks{}}

	for _, n := range in.Nodes {
		if n == nil {
			continue
		}
		if n.Subnet != "" {
			ix.subnets[n.ID] = n.Subnet
		}
		if p, ok := Peer(n); ok {
			ix.peers = append(ix.peers, p)
		}
	}
	slices.SortFunc(ix.peers, func(a, b api.NetPeer) int { return strings.Compare(a.NodeID, b.NodeID) })

	nets := sortedBy(in.Networks, func(a, b *api.Network) int { return strings.Compare(a.ID, b.ID) })
	netByName := make(map[string]int, len(nets))
	ix.networks = make([]api.NetNetwork, len(nets))
	for i, n := range nets {
		ix.networks[i] = api.NetNetwork{ID: n.ID, Name: n.Spec.Name, Internal: n.Spec.Internal}
		if _, dup := netByName[n.Spec.Name]; !dup {
			netByName[n.Spec.Name] = i
		}
	}

	svcs := sortedBy(in.Services, func(a, b *api.Service) int {
		return cmp.Or(strings.Compare(a.Spec.Name, b.Spec.Name), strings.Compare(a.ID, b.ID))
	})
	svcByID := make(map[string]int, len(svcs))
	info := make([]service, len(svcs))
	ix.services = make([]api.NetService, len(svcs))
	ix.netServices = make([][]int, len(nets))
	publishedNets := map[int]bool{}
	for i, s := range svcs {
		svcByID[s.ID] = i
		atts := attachments(s.Spec.Networks, netByName)
		ns := api.NetService{ID: s.ID, Name: s.Spec.Name, Mode: s.Spec.Endpoint.Mode, Ports: publishedPorts(s)}
		if s.Spec.Stack != "" {
			ns.ShortName = strings.TrimPrefix(s.Spec.Name, s.Spec.Stack+"_")
		}
		if s.Spec.Endpoint.Mode == api.EndpointVIP && s.Endpoint != nil {
			if vip, ok := plainAddr(s.Endpoint.VIP); ok {
				ns.VIP = vip.str
			}
		}
		for _, a := range atts {
			ns.Networks = append(ns.Networks, api.NetAttachment{NetworkID: ix.networks[a.net].ID, Aliases: a.aliases})
			info[i].nets = append(info[i].nets, a.net)
			info[i].netIDs = append(info[i].netIDs, ix.networks[a.net].ID)
			ix.netServices[a.net] = append(ix.netServices[a.net], i)
		}
		if len(ns.Ports) > 0 {
			ix.published = append(ix.published, i)
			for _, p := range info[i].nets {
				publishedNets[p] = true
			}
		}
		ix.services[i] = ns
	}
	ix.publishedNets = sortedKeys(publishedNets)

	members := make([][]addr, len(nets))
	for _, t := range in.Tasks {
		if t == nil || t.Addr == "" || t.Status.State.Terminal() {
			continue
		}
		a, ok := plainAddr(t.Addr)
		if !ok {
			continue // not an address: the allocator never writes one
		}
		si, hasSvc := svcByID[t.ServiceID]
		var svc *service
		if hasSvc {
			svc = &info[si]
			for _, p := range svc.nets {
				members[p] = append(members[p], a)
			}
			if t.InLoadBalancer() {
				svc.backends = append(svc.backends, backend{a, api.NetBackend{TaskID: t.ID, NodeID: t.NodeID, Addr: a.str}})
			}
		}
		if t.NodeID == "" {
			continue
		}
		nt := ix.nodes[t.NodeID]
		if nt == nil {
			nt = &nodeTasks{}
			ix.nodes[t.NodeID] = nt
		}
		task := api.NetTask{ID: t.ID, ServiceID: t.ServiceID, Addr: a.str}
		if svc != nil {
			task.Networks = svc.netIDs
			nt.nets = append(nt.nets, svc.nets...)
		}
		nt.tasks = append(nt.tasks, task)
	}

	for i, m := range members {
		slices.SortFunc(m, func(a, b addr) int { return a.ip.Compare(b.ip) })
		m = slices.CompactFunc(m, func(a, b addr) bool { return a.ip == b.ip })
		if len(m) == 0 {
			continue
		}
		out := make([]string, len(m))
		for j, a := range m {
			out[j] = a.str
		}
		ix.networks[i].Members = out
	}
	for i := range info {
		bs := info[i].backends
		if len(bs) == 0 {
			continue
		}
		slices.SortFunc(bs, func(a, b backend) int {
			return cmp.Or(a.addr.ip.Compare(b.addr.ip), strings.Compare(a.TaskID, b.TaskID))
		})
		out := make([]api.NetBackend, len(bs))
		for j, b := range bs {
			out[j] = b.NetBackend
		}
		ix.services[i].Backends = out
	}
	for _, nt := range ix.nodes {
		slices.SortFunc(nt.tasks, func(a, b api.NetTask) int { return strings.Compare(a.ID, b.ID) })
		slices.Sort(nt.nets)
		nt.nets = slices.Compact(nt.nets)
	}
	ix.enc.networks = make([]atomic.Pointer[[]byte], len(ix.networks))
	ix.enc.services = make([]atomic.Pointer[[]byte], len(ix.services))
	return ix
}

// View is nodeID's view. It shares memory with the index: treat it as
// read-only. A node the index does not know gets the pools and the peers.
func (ix *Index) View(nodeID string) *api.NetView {
	v := &api.NetView{NodeID: nodeID, Subnet: ix.subnets[nodeID], TaskPool: ix.taskPool, VIPPool: ix.vipPool,
		Peers: ix.peersExcept(nodeID)}
	tasks, nets, svcs := ix.parts(nodeID)
	v.Tasks = tasks
	if len(nets) > 0 {
		v.Networks = make([]api.NetNetwork, len(nets))
		for i, p := range nets {
			v.Networks[i] = ix.networks[p]
		}
	}
	if len(svcs) > 0 {
		v.Services = make([]api.NetService, len(svcs))
		for i, s := range svcs {
			v.Services[i] = ix.services[s]
		}
	}
	return v
}

// parts are what nodeID's view holds of the index: its tasks, and the
// positions of its networks (those of its tasks, and those of the
// services that publish a port) and of its services (those on these
// networks, and those that publish a port), ascending.
func (ix *Index) parts(nodeID string) (tasks []api.NetTask, nets, svcs []int) {
	var local []int
	if nt := ix.nodes[nodeID]; nt != nil {
		tasks, local = nt.tasks, nt.nets
	}
	nets = mergeUnique(local, ix.publishedNets)
	seen := make([]bool, len(ix.services))
	add := func(s int) {
		if !seen[s] {
			seen[s] = true
			svcs = append(svcs, s)
		}
	}
	for _, p := range nets {
		for _, s := range ix.netServices[p] {
			add(s)
		}
	}
	for _, s := range ix.published {
		add(s)
	}
	slices.Sort(svcs)
	return tasks, nets, svcs
}

// peerPosition is where nodeID is in ix.peers, if it is.
func (ix *Index) peerPosition(nodeID string) (int, bool) {
	return slices.BinarySearchFunc(ix.peers, nodeID, func(p api.NetPeer, id string) int { return strings.Compare(p.NodeID, id) })
}

// peersExcept is every peer but nodeID.
func (ix *Index) peersExcept(nodeID string) []api.NetPeer {
	i, found := ix.peerPosition(nodeID)
	if !found {
		if len(ix.peers) == 0 {
			return nil
		}
		return ix.peers
	}
	if len(ix.peers) == 1 {
		return nil
	}
	out := make([]api.NetPeer, 0, len(ix.peers)-1)
	return append(append(out, ix.peers[:i]...), ix.peers[i+1:]...)
}

// poolsOf is the cluster's address plan, the default one where it says
// nothing.
func poolsOf(c *api.Cluster) api.NetworkConfig {
	cfg := api.DefaultNetworkConfig()
	if c == nil {
		return cfg
	}
	if p := c.Spec.Network.TaskPool; p != "" {
		cfg.TaskPool = p
	}
	if p := c.Spec.Network.VIPPool; p != "" {
		cfg.VIPPool = p
	}
	return cfg
}

// Peer is n as a peer in the other nodes' views, if it can be one: not
// removed, with a subnet, WireGuard info (public key and port) and an
// address the managers saw it at, whose host is the endpoint's. A down
// node stays a peer: its tasks may still run.
func Peer(n *api.Node) (api.NetPeer, bool) {
	wg := n.Description.WireGuard
	if n.Removed() || n.Subnet == "" || wg == nil || wg.PublicKey == "" || wg.Port == 0 {
		return api.NetPeer{}, false
	}
	host := n.Status.Addr
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" {
		return api.NetPeer{}, false
	}
	name := n.Spec.Name
	if name == "" {
		name = n.Description.Hostname
	}
	return api.NetPeer{NodeID: n.ID, Name: name, PublicKey: wg.PublicKey,
		Endpoint: net.JoinHostPort(host, strconv.Itoa(int(wg.Port))), Subnet: n.Subnet}, true
}

// attachment is a service on one network (a position in networks).
type attachment struct {
	net     int
	aliases []string
}

// attachments resolves a service's networks by name, skipping names with
// no network, merging repeated ones; by network ID, aliases sorted.
func attachments(atts []api.NetworkAttachment, byName map[string]int) []attachment {
	var out []attachment
	for _, a := range atts {
		p, ok := byName[a.Target]
		if !ok {
			continue
		}
		if i := slices.IndexFunc(out, func(x attachment) bool { return x.net == p }); i >= 0 {
			out[i].aliases = append(out[i].aliases, a.Aliases...)
			continue
		}
		out = append(out, attachment{net: p, aliases: slices.Clone(a.Aliases)})
	}
	slices.SortFunc(out, func(a, b attachment) int { return cmp.Compare(a.net, b.net) })
	for i := range out {
		slices.Sort(out[i].aliases)
		out[i].aliases = slices.Compact(out[i].aliases)
		if len(out[i].aliases) == 0 {
			out[i].aliases = nil
		}
	}
	return out
}

// publishedPorts are the ports a service publishes: the allocator's when
// it allocated them, else the spec's with a published port; sorted.
func publishedPorts(s *api.Service) []api.PortConfig {
	src := s.Spec.Endpoint.Ports
	if s.Endpoint != nil && len(s.Endpoint.Ports) > 0 {
		src = s.Endpoint.Ports
	}
	var out []api.PortConfig
	for _, p := range src {
		if p.Published != 0 {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b api.PortConfig) int {
		return cmp.Or(cmp.Compare(a.Published, b.Published), cmp.Compare(a.Protocol, b.Protocol),
			cmp.Compare(a.Target, b.Target), cmp.Compare(a.Mode, b.Mode), strings.Compare(a.Name, b.Name))
	})
	return out
}

// plainAddr parses an address with or without a prefix length.
func plainAddr(s string) (addr, bool) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return addr{p.Addr(), p.Addr().String()}, true
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return addr{}, false
	}
	return addr{a, a.String()}, true
}

// sortedBy is the non-nil elements of in, sorted.
func sortedBy[T any](in []*T, order func(a, b *T) int) []*T {
	out := make([]*T, 0, len(in))
	for _, x := range in {
		if x != nil {
			out = append(out, x)
		}
	}
	slices.SortFunc(out, order)
	return out
}

func sortedKeys(m map[int]bool) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// mergeUnique merges two ascending lists of unique ints.
func mergeUnique(a, b []int) []int {
	switch {
	case len(a) == 0:
		return b
	case len(b) == 0:
		return a
	}
	out := make([]int, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] < b[j]:
			out = append(out, a[i])
			i++
		case a[i] > b[j]:
			out = append(out, b[j])
			j++
		default:
			out = append(out, a[i])
			i, j = i+1, j+1
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

package scheduler

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/gitorc/gitorc/cluster/api"
)

// A filter is one step of the pipeline. Check returns 0 when the node may
// take one more task of the group, or a filter-specific reason code (≥ 1);
// Explain turns a reason shared by n nodes into a phrase such as
// "2 nodes lack 512MiB memory".
//
// Static filters depend only on the node and the group's spec, so their
// verdict is computed once per group (and cached); dynamic filters depend
// on what the node already runs, which placements change.
type filter interface {
	Name() string
	// Enabled reports whether the filter has anything to check for g.
	Enabled(g *group) bool
	Check(g *group, n *nodeState) int
	Explain(g *group, code, nodes int) string
}

// The pipeline, in order. The index of a filter in it identifies the
// filter in failure counts.
var pipeline = []filter{
	readyFilter{},
	resourceFilter{},
	constraintFilter{},
	platformFilter{},
	hostPortFilter{},
	maxReplicasFilter{},
	addressFilter{},
	policyFilter{},
}

// Static filters are evaluated once per group; the others at each pick.
var staticFilter = []bool{true, false, true, true, false, false, false, true}

// count phrases "1 node is" / "2 nodes are".
func count(n int, singular, plural string) string {
	if n == 1 {
		return "1 node " + singular
	}
	return fmt.Sprintf("%d nodes %s", n, plural)
}

// readyFilter passes nodes that are ready and active.
type readyFilter struct{}

const (
	readyOK = iota
	readyDown
	readyDisconnected
	readyUnknown
	readyPaused
	readyDraining
)

func (readyFilter) Name() string        { return "ready" }
func (readyFilter) Enabled(*group) bool { return true }

func (readyFilter) Check(_ *group, n *nodeState) int {
	switch n.node.Status.State {
	case api.NodeReady:
	case api.NodeDown:
		return readyDown
	case api.NodeDisconnected:
		return readyDisconnected
	default:
		// Never connected: a node kept from tasks (a manager without a
		// worker is registered drained) reads as what it was set to.
		if n.node.Spec.Availability == api.AvailabilityActive {
			return readyUnknown
		}
	}
	switch n.node.Spec.Availability {
	case api.AvailabilityActive:
		return readyOK
	case api.AvailabilityPause:
		return readyPaused
	default:
		return readyDraining
	}
}

func (readyFilter) Explain(_ *group, code, n int) string {
	switch code {
	case readyDown:
		return count(n, "is down", "are down")
	case readyDisconnected:
		return count(n, "is disconnected", "are disconnected")
	case readyUnknown:
		return count(n, "is not ready", "are not ready")
	case readyPaused:
		return count(n, "is paused", "are paused")
	default:
		return count(n, "is draining", "are draining")
	}
}

// resourceFilter passes nodes whose unreserved CPU and memory cover the
// task's reservations.
type resourceFilter struct{}

const (
	lackCPU = 1 << iota
	lackMemory
)

func (resourceFilter) Name() string { return "resources" }

func (resourceFilter) Enabled(g *group) bool { return g.cpu > 0 || g.mem > 0 }

func (resourceFilter) Check(g *group, n *nodeState) int {
	code := 0
	have := n.node.Description.Resources
	if g.cpu > 0 && n.cpu+g.cpu > int64(have.NanoCPUs) {
		code |= lackCPU
	}
	if g.mem > 0 && n.mem+g.mem > int64(have.Memory) {
		code |= lackMemory
	}
	return code
}

func (resourceFilter) Explain(g *group, code, n int) string {
	var what []string
	if code&lackCPU != 0 {
		unit := "CPUs"
		if g.cpu == 1e9 {
			unit = "CPU"
		}
		what = append(what, api.NanoCPUs(g.cpu).String()+" "+unit)
	}
	if code&lackMemory != 0 {
		what = append(what, api.Bytes(g.mem).String()+" memory")
	}
	return count(n, "lacks ", "lack ") + strings.Join(what, " and ")
}

// constraintFilter passes nodes that satisfy every placement constraint.
// A failing node is counted against the first constraint it fails.
type constraintFilter struct{}

func (constraintFilter) Name() string { return "constraints" }

func (constraintFilter) Enabled(g *group) bool { return len(g.spec.Placement.Constraints) > 0 }

func (constraintFilter) Check(g *group, n *nodeState) int {
	for i, c := range g.spec.Placement.Constraints {
		if !MatchConstraint(c, n.node) {
			return i + 1
		}
	}
	return 0
}

func (constraintFilter) Explain(g *group, code, n int) string {
	return count(n, "fails constraint ", "fail constraint ") + g.spec.Placement.Constraints[code-1].String()
}

// MatchConstraint reports whether node satisfies c, with Swarm's
// semantics: values compare case-insensitively, and a label the node does
// not have reads as empty, so node.labels.zone!=eu matches a node without
// a zone label and node.labels.zone==eu does not.
func MatchConstraint(c api.Constraint, node *api.Node) bool {
	var have string
	switch {
	case c.Key == api.ConstraintNodeID:
		have = node.ID
	case c.Key == api.ConstraintNodeHostname:
		have = node.Description.Hostname
	case c.Key == api.ConstraintNodeRole:
		have = node.Spec.Role.String()
	case c.Key == api.ConstraintPlatformOS:
		have = normalizeOS(node.Description.Platform.OS)
		c.Value = normalizeOS(c.Value)
	case c.Key == api.ConstraintPlatformArch:
		have = normalizeArch(node.Description.Platform.Architecture)
		c.Value = normalizeArch(c.Value)
	case strings.HasPrefix(c.Key, api.ConstraintLabelPrefix):
		have = node.Spec.Labels[c.Key[len(api.ConstraintLabelPrefix):]]
	default:
		// api.ParseConstraint refuses unknown keys; a constraint built
		// by hand with one matches no node rather than every node.
		return false
	}
	eq := strings.EqualFold(have, c.Value)
	if c.Op == api.OpNe {
		return !eq
	}
	return eq
}

func normalizeOS(os string) string { return strings.ToLower(os) }

// normalizeArch maps the names uname and distributions use to Go's.
func normalizeArch(arch string) string {
	switch a := strings.ToLower(arch); a {
	case "x86_64", "x86-64":
		return "amd64"
	case "aarch64", "arm64/v8":
		return "arm64"
	case "armhf", "armel", "armv7l", "armv7", "arm/v7":
		return "arm"
	case "i386", "i686", "x86":
		return "386"
	default:
		return a
	}
}

// platformFilter passes nodes whose OS and architecture match one of the
// task's platforms; an empty field in a task platform matches anything.
type platformFilter struct{}

func (platformFilter) Name() string { return "platform" }

func (platformFilter) Enabled(g *group) bool { return len(g.spec.Placement.Platforms) > 0 }

func (platformFilter) Check(g *group, n *nodeState) int {
	have := n.node.Description.Platform
	os, arch := normalizeOS(have.OS), normalizeArch(have.Architecture)
	for _, p := range g.spec.Placement.Platforms {
		if (p.OS == "" || normalizeOS(p.OS) == os) &&
			(p.Architecture == "" || normalizeArch(p.Architecture) == arch) {
			return 0
		}
	}
	return 1
}

func (platformFilter) Explain(g *group, _, n int) string {
	want := make([]string, len(g.spec.Placement.Platforms))
	for i, p := range g.spec.Placement.Platforms {
		os, arch := p.OS, p.Architecture
		if os == "" {
			os = "*"
		}
		if arch == "" {
			arch = "*"
		}
		want[i] = os + "/" + arch
	}
	return count(n, "does not run platform ", "do not run platform ") + strings.Join(want, " or ")
}

// hostPortFilter passes nodes where none of the service's host-mode
// published ports is already taken.
type hostPortFilter struct{}

func (hostPortFilter) Name() string { return "host ports" }

func (hostPortFilter) Enabled(g *group) bool { return len(g.ports) > 0 }

func (hostPortFilter) Check(g *group, n *nodeState) int {
	for i, p := range g.ports {
		if _, used := n.ports[p]; used {
			return i + 1
		}
	}
	return 0
}

func (hostPortFilter) Explain(g *group, code, n int) string {
	p := g.ports[code-1]
	return count(n, "already publishes", "already publish") + fmt.Sprintf(" host port %d/%s", p.port, p.proto)
}

// maxReplicasFilter passes nodes that run fewer than max_replicas_per_node
// tasks of the service.
type maxReplicasFilter struct{}

func (maxReplicasFilter) Name() string { return "max replicas per node" }

func (maxReplicasFilter) Enabled(g *group) bool { return g.spec.Placement.MaxReplicasPerNode > 0 }

func (maxReplicasFilter) Check(g *group, n *nodeState) int {
	if uint64(g.counts[n.idx]) >= g.spec.Placement.MaxReplicasPerNode {
		return 1
	}
	return 0
}

func (maxReplicasFilter) Explain(g *group, _, n int) string {
	return count(n, "already runs", "already run") +
		fmt.Sprintf(" max_replicas_per_node=%d tasks of the service", g.spec.Placement.MaxReplicasPerNode)
}

// addressFilter passes nodes with a task subnet that has a free address
// (WithAddresses): every task gets one when it is placed.
type addressFilter struct{}

const (
	addrNoSubnet = iota + 1
	addrFull
)

func (addressFilter) Name() string { return "addresses" }

func (addressFilter) Enabled(g *group) bool { return g.addrs }

func (addressFilter) Check(g *group, n *nodeState) int {
	subnet, err := netip.ParsePrefix(n.node.Subnet)
	if err != nil {
		return addrNoSubnet
	}
	// Every task on the node that has not ended holds an address.
	if n.total >= usable(subnet) {
		g.full = n.node
		return addrFull
	}
	return 0
}

func (addressFilter) Explain(g *group, code, n int) string {
	if code == addrNoSubnet {
		return count(n, "has no task subnet", "have no task subnet")
	}
	if n == 1 && g.full != nil {
		subnet, _ := netip.ParsePrefix(g.full.Subnet)
		return fmt.Sprintf("1 node has no free task address (pool %s exhausted on node %s)", subnet.Masked(), nodeName(g.full))
	}
	return count(n, "has no free task address", "have no free task address") + " (their subnets are exhausted)"
}

// usable counts a node subnet's task addresses: all but the network,
// gateway and broadcast addresses (as cluster/allocator gives them).
func usable(subnet netip.Prefix) int { return max(1<<(32-subnet.Bits())-3, 0) }

func nodeName(n *api.Node) string {
	if n.Spec.Name != "" {
		return n.Spec.Name
	}
	if n.Description.Hostname != "" {
		return n.Description.Hostname
	}
	return n.ID
}

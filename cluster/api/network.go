package api

import (
	"fmt"
	"net/netip"
	"slices"
)

// ClusterID is the ID of the cluster's one Cluster object.
const ClusterID = "cluster"

// Cluster is the cluster-wide configuration, one object (ID ClusterID)
// written at bootstrap.
type Cluster struct {
	Meta
	Spec ClusterSpec `json:"spec"`
	// CA is the cluster's root certificate and any rotation of it
	// (gitorc ca rotate); nil until the first rotation.
	CA *ClusterCA `json:"ca,omitempty"`
}

// ClusterSpec is what bootstrap decides for the whole cluster.
type ClusterSpec struct {
	Network NetworkConfig `json:"network"`
}

// NetworkConfig is the cluster's address plan. Every node gets a subnet of
// TaskPool (of NodeSubnetBits) for its tasks; every vip-mode service gets
// one address of VIPPool.
type NetworkConfig struct {
	TaskPool       string `json:"task_pool"`
	NodeSubnetBits int    `json:"node_subnet_bits"`
	VIPPool        string `json:"vip_pool"`
}

// Defaults of the address plan: away from Docker's 172.17.0.0/16 and the
// private ranges home and office LANs favour (192.168/16, 10.0/16); the
// task pool holds 8,192 node subnets of 253 tasks each, the VIP pool
// 65,534 services.
const (
	DefaultTaskPool       = "10.64.0.0/11"
	DefaultNodeSubnetBits = 24
	DefaultVIPPool        = "10.96.0.0/16"
)

// DefaultNetworkConfig is the address plan bootstrap uses unless told
// otherwise.
func DefaultNetworkConfig() NetworkConfig {
	return NetworkConfig{TaskPool: DefaultTaskPool, NodeSubnetBits: DefaultNodeSubnetBits, VIPPool: DefaultVIPPool}
}

// Limits of an address plan.
const (
	// MaxNodeSubnetBits leaves a node 13 task addresses (a /28).
	MaxNodeSubnetBits = 28
	// MaxVIPPoolBits leaves the cluster 254 VIPs.
	MaxVIPPoolBits = 24
)

// reserved are ranges an address plan may not use.
var reserved = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("224.0.0.0/3"),
}

// Pools returns the parsed pools.
func (c NetworkConfig) Pools() (task, vip netip.Prefix, err error) {
	if task, err = netip.ParsePrefix(c.TaskPool); err != nil {
		return task, vip, fmt.Errorf("task pool: %w", err)
	}
	if vip, err = netip.ParsePrefix(c.VIPPool); err != nil {
		return task, vip, fmt.Errorf("vip pool: %w", err)
	}
	return task.Masked(), vip.Masked(), nil
}

// Validate checks the plan: IPv4 CIDRs in canonical form, no overlap with
// each other or with reserved ranges, room for at least one node subnet.
// Errors name the field ("task_pool", "vip_pool", "node_subnet_bits").
func (c NetworkConfig) Validate() error {
	var es FieldErrors
	parse := func(field, s string) (netip.Prefix, bool) {
		p, err := netip.ParsePrefix(s)
		switch {
		case err != nil:
			es.add(field, "%q is not a CIDR subnet", s)
			return p, false
		case !p.Addr().Is4():
			es.add(field, "%s: only IPv4 pools are supported", s)
			return p, false
		case p.Masked() != p:
			es.add(field, "%s has host bits set: write %s", s, p.Masked())
			return p, false
		}
		for _, r := range reserved {
			if r.Overlaps(p) {
				es.add(field, "%s overlaps the reserved range %s", s, r)
				return p, false
			}
		}
		return p, true
	}
	task, okTask := parse("task_pool", c.TaskPool)
	vip, okVIP := parse("vip_pool", c.VIPPool)
	if okTask {
		switch {
		case c.NodeSubnetBits <= task.Bits():
			es.add("node_subnet_bits", "/%d node subnets do not fit in the task pool %s: use a longer prefix than /%d", c.NodeSubnetBits, task, task.Bits())
		case c.NodeSubnetBits > MaxNodeSubnetBits:
			es.add("node_subnet_bits", "/%d leaves too few task addresses per node: at most /%d", c.NodeSubnetBits, MaxNodeSubnetBits)
		}
	}
	if okVIP && vip.Bits() > MaxVIPPoolBits {
		es.add("vip_pool", "%s is too small: at least a /%d", vip, MaxVIPPoolBits)
	}
	if okTask && okVIP && task.Overlaps(vip) {
		es.add("vip_pool", "%s overlaps the task pool %s", vip, task)
	}
	return es.Err()
}

// Overlaps reports which pool of the plan p overlaps ("task pool
// 10.64.0.0/11"), or "" when none does. The plan must be valid.
func (c NetworkConfig) Overlaps(p netip.Prefix) string {
	task, vip, err := c.Pools()
	if err != nil {
		return ""
	}
	switch {
	case task.Overlaps(p):
		return "the task pool " + task.String()
	case vip.Overlaps(p):
		return "the VIP pool " + vip.String()
	}
	return ""
}

// NetView is everything one node's network plane needs, computed by the
// managers from the store as a pure function of it and streamed to the
// node, which applies it as a whole (netplane Reconfig). It holds no
// secret. Every list is sorted, so that equal states give equal views.
type NetView struct {
	// NodeID is the node the view is for; Subnet its task subnet (CIDR),
	// whose first address is the node's gateway and DNS server.
	NodeID string `json:"node_id"`
	Subnet string `json:"subnet,omitempty"`
	// TaskPool and VIPPool are the cluster's pools (CIDR): traffic between
	// them stays in the overlay, traffic out of them is egress.
	TaskPool string `json:"task_pool"`
	VIPPool  string `json:"vip_pool"`
	// Peers are the other nodes with an overlay endpoint, by node ID.
	Peers []NetPeer `json:"peers,omitempty"`
	// Networks are the networks this node takes part in: those of its
	// tasks, and those of the services they reach. Members lists every
	// task address on the network, cluster-wide.
	Networks []NetNetwork `json:"networks,omitempty"`
	// Services are the services on those networks, and every service that
	// publishes a port, by name.
	Services []NetService `json:"services,omitempty"`
	// Tasks are the tasks on this node that hold an address, by ID.
	Tasks []NetTask `json:"tasks,omitempty"`
}

// NetPeer is another node of the overlay.
type NetPeer struct {
	NodeID    string `json:"node_id"`
	Name      string `json:"name,omitempty"`
	PublicKey string `json:"public_key"`
	// Endpoint is host:port of the node's WireGuard socket.
	Endpoint string `json:"endpoint"`
	// Subnet is the peer's task subnet: what it is allowed to send from
	// and what is routed to it.
	Subnet string `json:"subnet"`
}

// NetNetwork is one isolation domain: its members may talk to each other.
type NetNetwork struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Internal networks give their members no route out of the cluster.
	Internal bool `json:"internal,omitempty"`
	// Members are the plain addresses of every task on the network that
	// holds one and has not ended, cluster-wide, sorted.
	Members []string `json:"members,omitempty"`
}

// NetService is a service as the network plane sees it.
type NetService struct {
	ID string `json:"id"`
	// Name is the cluster-wide name ("shop_api"); ShortName the name in
	// its stack ("api"), empty for a service outside a stack.
	Name      string       `json:"name"`
	ShortName string       `json:"short_name,omitempty"`
	Mode      EndpointMode `json:"mode"`
	// VIP is the service's virtual address (plain), empty in dnsrr mode.
	VIP string `json:"vip,omitempty"`
	// Networks are the networks the service is on, with its aliases there.
	Networks []NetAttachment `json:"networks,omitempty"`
	// Ports are its published ports (Published filled in).
	Ports []PortConfig `json:"ports,omitempty"`
	// Backends are its tasks in the load-balancing set
	// (Task.InLoadBalancer), cluster-wide, sorted by address.
	Backends []NetBackend `json:"backends,omitempty"`
}

// NetAttachment is a service on one network.
type NetAttachment struct {
	NetworkID string   `json:"network_id"`
	Aliases   []string `json:"aliases,omitempty"`
}

// NetBackend is a task that serves a service's traffic.
type NetBackend struct {
	TaskID string `json:"task_id"`
	NodeID string `json:"node_id"`
	Addr   string `json:"addr"` // plain address
}

// NetTask is a task on the node with an address.
type NetTask struct {
	ID        string `json:"id"`
	ServiceID string `json:"service_id"`
	Addr      string `json:"addr"` // plain address
	// Networks are the IDs of the networks the task is on, sorted.
	Networks []string `json:"networks,omitempty"`
}

// Equal reports whether two views hold the same configuration (nil and
// empty lists alike). A node compares each view it gets with the one it
// applied: equal, nothing is done. Every field counts (a test makes sure).
func (v *NetView) Equal(o *NetView) bool {
	if v == o {
		return true
	}
	if v == nil || o == nil {
		return false
	}
	return v.NodeID == o.NodeID && v.Subnet == o.Subnet && v.TaskPool == o.TaskPool && v.VIPPool == o.VIPPool &&
		slices.Equal(v.Peers, o.Peers) &&
		slices.EqualFunc(v.Networks, o.Networks, func(a, b NetNetwork) bool {
			return a.ID == b.ID && a.Name == b.Name && a.Internal == b.Internal && slices.Equal(a.Members, b.Members)
		}) &&
		slices.EqualFunc(v.Services, o.Services, func(a, b NetService) bool {
			return a.ID == b.ID && a.Name == b.Name && a.ShortName == b.ShortName && a.Mode == b.Mode && a.VIP == b.VIP &&
				slices.EqualFunc(a.Networks, b.Networks, func(x, y NetAttachment) bool {
					return x.NetworkID == y.NetworkID && slices.Equal(x.Aliases, y.Aliases)
				}) &&
				slices.Equal(a.Ports, b.Ports) && slices.Equal(a.Backends, b.Backends)
		}) &&
		slices.EqualFunc(v.Tasks, o.Tasks, func(a, b NetTask) bool {
			return a.ID == b.ID && a.ServiceID == b.ServiceID && a.Addr == b.Addr && slices.Equal(a.Networks, b.Networks)
		})
}

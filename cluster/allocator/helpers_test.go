package allocator

import (
	"github.com/gitorc/gitorc/cluster/api"
)

// mkNode returns a node with a LAN address outside every test pool.
func mkNode(id string, opts ...func(*api.Node)) *api.Node {
	n := &api.Node{Meta: api.Meta{ID: id}, Spec: api.NodeSpec{Name: id},
		Description: api.NodeDescription{Hostname: "host-" + id, Addrs: []string{"192.168.1.10"}}}
	for _, o := range opts {
		o(n)
	}
	return n
}

func withSubnet(s string) func(*api.Node) { return func(n *api.Node) { n.Subnet = s } }

// mkTask returns a running task on a node holding addr ("" for none).
func mkTask(id, node, addr string, state api.TaskState) *api.Task {
	return &api.Task{Meta: api.Meta{ID: id}, NodeID: node, Addr: addr, Status: api.TaskStatus{State: state}}
}

// mkService returns a service in an endpoint mode with ports.
func mkService(id string, mode api.EndpointMode, ports ...api.PortConfig) *api.Service {
	return &api.Service{Meta: api.Meta{ID: id},
		Spec: api.ServiceSpec{Name: "svc-" + id, Endpoint: api.EndpointSpec{Mode: mode, Ports: ports}}}
}

func ingress(target, published uint32) api.PortConfig {
	return api.PortConfig{Protocol: api.ProtocolTCP, Target: target, Published: published, Mode: api.PublishIngress}
}

func host(target, published uint32) api.PortConfig {
	return api.PortConfig{Protocol: api.ProtocolTCP, Target: target, Published: published, Mode: api.PublishHost}
}

func udp(p api.PortConfig) api.PortConfig { p.Protocol = api.ProtocolUDP; return p }

func plan(task string, bits int, vip string) api.NetworkConfig {
	return api.NetworkConfig{TaskPool: task, NodeSubnetBits: bits, VIPPool: vip}
}

package netview

import (
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

var (
	epoch     = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	checkCurl = &api.Healthcheck{Test: []string{"CMD", "curl", "-f", "http://localhost/"}}
)

// fixture is a small cluster:
//
//   - nodes n1, n2 (named "edge"), n3 (down), n4 (removed), n5 (no
//     WireGuard info yet);
//   - networks shop_public, shop_backend (internal) and shop_unused (no
//     service on it);
//   - shop_api (vip, healthcheck) on shop_public and on shop_backend with
//     the alias shop-api: tasks running and healthy on n1, starting on n2,
//     running but unhealthy on n3, draining on n2, failed on n1, and one
//     pending without an address;
//   - shop_db (dnsrr) on shop_backend, one task on n3;
//   - shop_cache (vip) on shop_backend with the aliases cache and redis,
//     one task on n2;
//   - shop_web (vip) on shop_public, publishing 8080 (ingress) to 80: tasks
//     on n5 and n3;
//   - shop_ghost on shop_missing, a network that does not exist: one task
//     on n1.
func fixture() Input {
	wg := func(key string, port uint16) *api.WireGuardInfo {
		return &api.WireGuardInfo{PublicKey: key, Port: port}
	}
	node := func(id, subnet, addr string, state api.NodeState, w *api.WireGuardInfo) *api.Node {
		return &api.Node{Meta: api.Meta{ID: id}, Subnet: subnet,
			Description: api.NodeDescription{Hostname: id + ".example", WireGuard: w},
			Status:      api.NodeStatus{State: state, Addr: addr}}
	}
	n2 := node("n2", "10.64.2.0/24", "192.0.2.2", api.NodeReady, wg("a2V5LW4y", 51821))
	n2.Spec.Name = "edge"
	n4 := node("n4", "10.64.4.0/24", "192.0.2.4", api.NodeDown, wg("a2V5LW40", 51820))
	n4.RemovedAt = epoch

	network := func(id, name string, internal bool) *api.Network {
		return &api.Network{Meta: api.Meta{ID: id}, Spec: api.NetworkSpec{Name: "shop_" + name, Stack: "shop",
			Driver: "overlay", Internal: internal}}
	}
	service := func(id, name string, mode api.EndpointMode, vip string, hc *api.Healthcheck, nets ...api.NetworkAttachment) *api.Service {
		s := &api.Service{Meta: api.Meta{ID: id}, Spec: api.ServiceSpec{Name: "shop_" + name, Stack: "shop",
			Endpoint: api.EndpointSpec{Mode: mode}, Networks: nets}}
		s.Spec.Task.Container.Healthcheck = hc
		if vip != "" {
			s.Endpoint = &api.Endpoint{VIP: vip}
		}
		return s
	}
	att := func(name string, aliases ...string) api.NetworkAttachment {
		return api.NetworkAttachment{Target: "shop_" + name, Aliases: aliases}
	}
	web := service("sv-web", "web", api.EndpointVIP, "10.96.0.4", nil, att("public"))
	web.Spec.Endpoint.Ports = []api.PortConfig{{Protocol: api.ProtocolTCP, Target: 80, Published: 8080, Mode: api.PublishIngress}}
	web.Endpoint.Ports = web.Spec.Endpoint.Ports

	services := []*api.Service{
		service("sv-api", "api", api.EndpointVIP, "10.96.0.2", checkCurl, att("public"), att("backend", "shop-api")),
		service("sv-db", "db", api.EndpointDNSRR, "", nil, att("backend")),
		service("sv-cache", "cache", api.EndpointVIP, "10.96.0.3", nil, att("backend", "redis", "cache")),
		web,
		service("sv-ghost", "ghost", api.EndpointVIP, "10.96.0.5", nil, att("missing")),
	}
	svcOf := map[string]*api.Service{}
	for _, s := range services {
		svcOf[s.ID] = s
	}
	task := func(id, svc, node, addr string, state api.TaskState, health api.HealthState) *api.Task {
		s := svcOf[svc]
		return &api.Task{Meta: api.Meta{ID: id}, ServiceID: s.ID, ServiceName: s.Spec.Name, NodeID: node, Addr: addr,
			Spec: s.Spec.Task, DesiredState: api.TaskRunning,
			Status: api.TaskStatus{State: state, Timestamp: epoch, Health: health}}
	}
	draining := task("tk-api-4", "sv-api", "n2", "10.64.2.11/24", api.TaskRunning, api.HealthHealthy)
	draining.DrainingSince = epoch
	failed := task("tk-api-5", "sv-api", "n1", "10.64.1.11/24", api.TaskFailed, api.HealthUnhealthy)
	failed.DesiredState = api.TaskShutdown

	return Input{
		Cluster: &api.Cluster{Meta: api.Meta{ID: api.ClusterID}, Spec: api.ClusterSpec{Network: api.DefaultNetworkConfig()}},
		Nodes: []*api.Node{
			node("n1", "10.64.1.0/24", "192.0.2.1", api.NodeReady, wg("a2V5LW4x", 51820)),
			n2,
			node("n3", "10.64.3.0/24", "192.0.2.3", api.NodeDown, wg("a2V5LW4z", 51820)),
			n4,
			node("n5", "10.64.5.0/24", "192.0.2.5", api.NodeReady, nil),
		},
		Networks: []*api.Network{network("nw-public", "public", false), network("nw-backend", "backend", true),
			network("nw-unused", "unused", false)},
		Services: services,
		Tasks: []*api.Task{
			task("tk-api-1", "sv-api", "n1", "10.64.1.10/24", api.TaskRunning, api.HealthHealthy),
			task("tk-api-2", "sv-api", "n2", "10.64.2.10/24", api.TaskStarting, api.HealthNone),
			task("tk-api-3", "sv-api", "n3", "10.64.3.10/24", api.TaskRunning, api.HealthUnhealthy),
			draining,
			failed,
			task("tk-api-6", "sv-api", "", "", api.TaskPending, api.HealthNone),
			task("tk-db-1", "sv-db", "n3", "10.64.3.20/24", api.TaskRunning, api.HealthNone),
			task("tk-cache-1", "sv-cache", "n2", "10.64.2.20/24", api.TaskRunning, api.HealthNone),
			task("tk-web-1", "sv-web", "n5", "10.64.5.10/24", api.TaskRunning, api.HealthNone),
			task("tk-web-2", "sv-web", "n3", "10.64.3.30/24", api.TaskRunning, api.HealthNone),
			task("tk-ghost-1", "sv-ghost", "n1", "10.64.1.20/24", api.TaskRunning, api.HealthNone),
		},
	}
}

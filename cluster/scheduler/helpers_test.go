package scheduler

import (
	"fmt"

	"github.com/gitorc/gitorc/cluster/api"
)

const (
	gib = api.Bytes(1 << 30)
	mib = api.Bytes(1 << 20)
	cpu = api.NanoCPUs(1e9)
)

// mkNode returns a ready, active linux/amd64 worker with 4 CPUs and 8GiB.
func mkNode(id string, opts ...func(*api.Node)) *api.Node {
	n := &api.Node{
		Meta: api.Meta{ID: id},
		Spec: api.NodeSpec{Role: api.RoleWorker, Availability: api.AvailabilityActive},
		Description: api.NodeDescription{
			Hostname:  "host-" + id,
			Platform:  api.Platform{OS: "linux", Architecture: "amd64"},
			Resources: api.Resources{NanoCPUs: 4 * cpu, Memory: 8 * gib},
		},
		Status: api.NodeStatus{State: api.NodeReady},
	}
	for _, o := range opts {
		o(n)
	}
	return n
}

func withLabels(kv ...string) func(*api.Node) {
	return func(n *api.Node) {
		n.Spec.Labels = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			n.Spec.Labels[kv[i]] = kv[i+1]
		}
	}
}

func withState(s api.NodeState) func(*api.Node) {
	return func(n *api.Node) { n.Status.State = s }
}

func withAvailability(a api.NodeAvailability) func(*api.Node) {
	return func(n *api.Node) { n.Spec.Availability = a }
}

func withResources(c api.NanoCPUs, m api.Bytes) func(*api.Node) {
	return func(n *api.Node) { n.Description.Resources = api.Resources{NanoCPUs: c, Memory: m} }
}

func withRole(r api.NodeRole) func(*api.Node) {
	return func(n *api.Node) { n.Spec.Role = r }
}

func withPlatform(os, arch string) func(*api.Node) {
	return func(n *api.Node) { n.Description.Platform = api.Platform{OS: os, Architecture: arch} }
}

// mkTask returns a pending task of svc.
func mkTask(id, svc string, slot uint64, opts ...func(*api.Task)) *api.Task {
	t := &api.Task{
		Meta:         api.Meta{ID: id},
		ServiceID:    svc,
		Slot:         slot,
		DesiredState: api.TaskRunning,
		Status:       api.TaskStatus{State: api.TaskPending},
	}
	for _, o := range opts {
		o(t)
	}
	return t
}

// mkTasks returns n pending tasks of svc, slots 1..n.
func mkTasks(svc string, n int, opts ...func(*api.Task)) []*api.Task {
	out := make([]*api.Task, n)
	for i := range out {
		out[i] = mkTask(fmt.Sprintf("%s.%03d", svc, i+1), svc, uint64(i+1), opts...)
	}
	return out
}

func reserve(c api.NanoCPUs, m api.Bytes) func(*api.Task) {
	return func(t *api.Task) { t.Spec.Resources.Reservations = api.Resources{NanoCPUs: c, Memory: m} }
}

func constrain(cs ...string) func(*api.Task) {
	return func(t *api.Task) {
		for _, s := range cs {
			c, err := api.ParseConstraint(s)
			if err != nil {
				panic(err)
			}
			t.Spec.Placement.Constraints = append(t.Spec.Placement.Constraints, c)
		}
	}
}

func spread(labels ...string) func(*api.Task) {
	return func(t *api.Task) {
		for _, l := range labels {
			t.Spec.Placement.Preferences = append(t.Spec.Placement.Preferences, api.SpreadOver{Spread: "node.labels." + l})
		}
	}
}

func maxPerNode(n uint64) func(*api.Task) {
	return func(t *api.Task) { t.Spec.Placement.MaxReplicasPerNode = n }
}

func platforms(ps ...api.Platform) func(*api.Task) {
	return func(t *api.Task) { t.Spec.Placement.Platforms = ps }
}

func onNode(id string, state api.TaskState) func(*api.Task) {
	return func(t *api.Task) { t.NodeID, t.Status.State = id, state }
}

// hostService publishes port/tcp in host mode.
func hostService(id string, ports ...uint32) *api.Service {
	s := &api.Service{Meta: api.Meta{ID: id}, Spec: api.ServiceSpec{Name: id}}
	for _, p := range ports {
		s.Spec.Endpoint.Ports = append(s.Spec.Endpoint.Ports,
			api.PortConfig{Protocol: api.ProtocolTCP, Target: p, Published: p, Mode: api.PublishHost})
	}
	return s
}

func infos(nodes ...*api.Node) []NodeInfo {
	out := make([]NodeInfo, len(nodes))
	for i, n := range nodes {
		out[i] = NodeInfo{Node: n}
	}
	return out
}

// placements maps node ID to the number of tasks placed there, and
// returns the error messages of unplaced tasks.
func placements(ds []Decision) (map[string]int, []string) {
	m := map[string]int{}
	var errs []string
	for _, d := range ds {
		if d.Err != nil {
			errs = append(errs, d.Err.Error())
			continue
		}
		m[d.NodeID]++
	}
	return m, errs
}

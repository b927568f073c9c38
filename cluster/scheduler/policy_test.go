package scheduler

import (
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
)

func withPolicy(p api.NodePolicy) func(*api.Node) {
	return func(n *api.Node) { n.Description.Policy = &p }
}

func bindSock(t *api.Task) {
	t.Spec.Container.Mounts = []api.Mount{{Type: api.MountBind, Source: "/var/run/docker.sock", Target: "/var/run/docker.sock"}}
}

func TestPolicyFilter(t *testing.T) {
	sock := api.NodePolicy{AllowBinds: []string{"/var/run"}}
	for _, tc := range []struct {
		name  string
		nodes []*api.Node
		task  *api.Task
		want  string // the node, or the error
	}{
		{"placed only where allowed", []*api.Node{mkNode("a"), mkNode("b", withPolicy(sock)), mkNode("c", withPolicy(api.NodePolicy{AllowBinds: []string{"/srv"}}))},
			mkTask("t", "s", 1, bindSock), "b"},
		{"no node allows", []*api.Node{mkNode("a"), mkNode("b", withPolicy(api.NodePolicy{AllowCaps: []string{"NET_ADMIN"}}))},
			mkTask("t", "s", 1, func(t *api.Task) { t.Spec.Container.CapAdd = []string{"SYS_ADMIN"} }),
			"no suitable node: no node allows capability SYS_ADMIN (gitorc join --allow-cap)"},
		{"the allowing node is down", []*api.Node{mkNode("a"), mkNode("b", withPolicy(sock), withState(api.NodeDown))},
			mkTask("t", "s", 1, bindSock),
			"no suitable node: 1 node is down, 1 node does not allow bind of /var/run/docker.sock (--allow-bind)"},
		{"default needs go anywhere", []*api.Node{mkNode("a")},
			mkTask("t", "s", 1, func(t *api.Task) {
				t.Spec.Container.CapAdd = []string{"NET_BIND_SERVICE"}
				t.Spec.Container.Sysctls = map[string]string{"net.core.somaxconn": "1024"}
			}), "a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := Schedule(infos(tc.nodes...), nil, []*api.Task{tc.task})
			got := ds[0].NodeID
			if ds[0].Err != nil {
				got = ds[0].Err.Error()
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// Tasks of one service with different needs (an update adding a bind)
// are not grouped, nor do they share the static filters' cache.
func TestPolicyNeedsSplitGroups(t *testing.T) {
	nodes := infos(mkNode("a"), mkNode("b"), mkNode("c", withPolicy(api.NodePolicy{AllowBinds: []string{"/var/run"}})))
	plain := mkTask("t1", "s", 1)
	sock := mkTask("t2", "s", 2, bindSock)
	ds := Schedule(nodes, nil, []*api.Task{plain, sock})
	if ds[1].Err != nil || ds[1].NodeID != "c" {
		t.Errorf("task with the bind: node %q, err %v; want node c", ds[1].NodeID, ds[1].Err)
	}
	if ds[0].Err != nil {
		t.Errorf("plain task: %v", ds[0].Err)
	}
}

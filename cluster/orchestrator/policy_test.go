package orchestrator_test

import (
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/store"
)

// A global service whose container needs what only some nodes' policies
// allow (a monitoring agent binding the runtime's socket) runs on those
// nodes only, as if constrained to them.
func TestGlobalServiceOnlyWherePolicyAllows(t *testing.T) {
	s := managers(t)
	addNode(t, s, "n1", nil)
	addNode(t, s, "n2", nil)
	update(t, s, func(tx store.Tx) error {
		n, err := store.Get[api.Node](tx, "n2")
		if err != nil {
			return err
		}
		n.Description.Policy = &api.NodePolicy{AllowBinds: []string{"/run/containerd"}}
		return tx.Update(n)
	})
	update(t, s, func(tx store.Tx) error {
		return tx.Create(&api.Service{Spec: api.ServiceSpec{Name: "mon_agent", Mode: api.ModeGlobal,
			Task: api.TaskSpec{Container: api.ContainerSpec{Image: "agent:1", Mounts: []api.Mount{
				{Type: api.MountBind, Source: "/run/containerd/containerd.sock", Target: "/sock"}}}}}})
	})
	waitPlacement(t, s, "mon_agent", "n2:1")
}

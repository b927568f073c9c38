package reconcile

import (
	"context"
	"strings"
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/google/go-cmp/cmp"
)

// sockStack binds the container runtime's socket: root on the node.
const sockStack = `services:
  app:
    image: app:1
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock
`

func TestSyncRefusesWhatNoNodeAllows(t *testing.T) {
	h := newHarness(t)
	h.clock.onWait = func() { h.cluster.orchestrate() }
	h.cluster.state.Policies = []api.NodePolicy{{}, {AllowBinds: []string{"/srv"}}}
	h.repo.commit("good", map[string]string{"web/compose.yaml": stack("app:1", 1)})
	h.sync(t)
	before, _ := h.cluster.Actual(context.Background())

	bad := h.repo.commit("socket", map[string]string{"web/compose.yaml": sockStack, "db/compose.yaml": stack("pg:16", 1)})
	rec := h.sync(t)
	if rec.Result != api.SyncFailed || rec.Revision != bad {
		t.Fatalf("record %+v", rec)
	}
	want := "web/compose.yaml:5: services.app.volumes.0: bind of /var/run/docker.sock: no node allows it (gitorc join --allow-bind)"
	if !strings.Contains(rec.Message, want) {
		t.Errorf("message lacks %q:\n%s", want, rec.Message)
	}
	after, _ := h.cluster.Actual(context.Background())
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("a refused commit changed the cluster (-before +after):\n%s", diff)
	}

	// Once a node allows it, the next commit deploys.
	h.cluster.mu.Lock()
	h.cluster.state.Policies = append(h.cluster.state.Policies, api.NodePolicy{AllowBinds: []string{"/var/run"}})
	h.cluster.mu.Unlock()
	good := h.repo.commit("allowed", map[string]string{"web/README": "the node allows it now"})
	if rec := h.sync(t); rec.Result != api.SyncSynced || rec.Revision != good {
		t.Errorf("allowed commit: %+v", rec)
	}
}

func TestPlanRefusesWhatNoNodeAllows(t *testing.T) {
	svc := api.ServiceSpec{Name: "s_agent", Task: api.TaskSpec{Container: api.ContainerSpec{Image: "x",
		CapAdd: []string{"CHOWN", "SYS_MODULE"}, Privileged: true}}}
	desired := State{Services: []api.ServiceSpec{svc}}
	for _, tc := range []struct {
		name     string
		policies []api.NodePolicy
		want     []string
	}{
		{"no nodes", nil, []string{
			"service s_agent: task.container.cap_add[1]: capability SYS_MODULE: no node allows it (gitorc join --allow-cap)",
			"service s_agent: task.container.privileged: privileged: no node allows it (gitorc join --allow-privileged)",
		}},
		{"one node allows the capability", []api.NodePolicy{{}, {AllowCaps: []string{"SYS_MODULE"}}}, []string{
			"service s_agent: task.container.privileged: privileged: no node allows it (gitorc join --allow-privileged)",
		}},
		{"allowed", []api.NodePolicy{{AllowCaps: []string{"SYS_MODULE"}, AllowPrivileged: true}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := Plan(desired, State{Policies: tc.policies})
			if diff := cmp.Diff(tc.want, cs.Problems); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

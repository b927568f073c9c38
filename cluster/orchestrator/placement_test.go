package orchestrator

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// A change of placement alone replaces only the tasks it no longer
// allows; the others take the new spec in place, so that the rollout
// (and reconcile.Track, which compares task specs) completes.
func TestPlacementOnlyChange(t *testing.T) {
	zones := map[string]map[string]string{"n1": {"zone": "a"}, "n2": {"zone": "b"}, "n3": {"zone": "c"}}
	zone := func(op api.ConstraintOp, v string) []api.Constraint {
		return []api.Constraint{{Key: "node.labels.zone", Op: op, Value: v}}
	}
	cases := []struct {
		name      string
		nodes     map[string]map[string]string
		replicas  uint64
		before    string // placement before the change
		addNodes  []string
		change    func(*api.Placement)
		replaced  int    // tasks the change replaces
		after     string // placement once it settled
		wantState string // the rollout's final state, "" when none ran
	}{
		{"constraint every node satisfies", zones, 6, "n1:2 n2:2 n3:2", nil,
			func(p *api.Placement) { p.Constraints = zone(api.OpNe, "z") }, 0, "n1:2 n2:2 n3:2", ""},
		{"constraint excluding one node", zones, 6, "n1:2 n2:2 n3:2", nil,
			func(p *api.Placement) { p.Constraints = zone(api.OpNe, "c") }, 2, "n1:3 n2:3", "completed"},
		{"preference only", zones, 6, "n1:2 n2:2 n3:2", nil,
			func(p *api.Placement) { p.Preferences = []api.SpreadOver{{Spread: "node.labels.zone"}} }, 0, "n1:2 n2:2 n3:2", ""},
		{"max_replicas_per_node lowered: the extra ones only", map[string]map[string]string{"n1": nil, "n2": nil}, 4, "n1:2 n2:2", []string{"n3", "n4"},
			func(p *api.Placement) { p.MaxReplicasPerNode = 1 }, 2, "n1:1 n2:1 n3:1 n4:1", "completed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorldOn(t, tc.replicas, cfg(1, api.OrderStopFirst, api.FailurePause), tc.nodes)
			if got := w.placement(w.svc); got != tc.before {
				t.Fatalf("placement before: %s, want %s", got, tc.before)
			}
			for _, id := range tc.addNodes {
				w.addNode(id, nil)
			}
			before := liveIDs(w)
			w.change(w.svc, func(s *api.ServiceSpec) { tc.change(&s.Task.Placement) })
			for i := 0; i < 40; i++ {
				w.now = w.now.Add(time.Second)
				w.step()
			}
			after := liveIDs(w)
			kept := 0
			for id := range before {
				if after[id] {
					kept++
				}
			}
			if replaced := len(before) - kept; replaced != tc.replaced {
				t.Errorf("%d task(s) replaced, want %d (log %v)", replaced, tc.replaced, w.log)
			}
			if got := w.placement(w.svc); got != tc.after {
				t.Errorf("placement after: %s, want %s", got, tc.after)
			}
			state := ""
			if w.svc.Update != nil {
				state = w.svc.Update.State.String()
			}
			if state != tc.wantState {
				t.Errorf("rollout state %q, want %q (%+v)", state, tc.wantState, w.svc.Update)
			}
			// Every live task now has the service's spec: what Track
			// compares to call the revision Synced.
			var stale []string
			for _, tk := range w.tasks {
				if !tk.Status.State.Terminal() && specKey(tk.Spec) != specKey(w.svc.Spec.Task) {
					stale = append(stale, tk.ID)
				}
			}
			if len(stale) > 0 {
				t.Errorf("tasks still on the old spec: %v", stale)
			}
		})
	}
}

func liveIDs(w *world) map[string]bool {
	out := map[string]bool{}
	for _, t := range w.tasks {
		if !t.Status.State.Terminal() && t.DesiredState == api.TaskRunning {
			out[t.ID] = true
		}
	}
	return out
}

// classify, directly: what makes a task dirty.
func TestClassify(t *testing.T) {
	svc := service(api.ModeReplicated, 3, api.RestartPolicy{})
	svc.Spec.Task.Placement.Constraints = []api.Constraint{{Key: "node.labels.disk", Op: api.OpEq, Value: "ssd"}}
	svc.Spec.Endpoint = api.EndpointSpec{Ports: []api.PortConfig{{Target: 80, Published: 8080}}}
	nodes := readyNodes("ssd1", "hdd1")
	ssd := nodes["ssd1"]
	ssd.Spec.Labels = map[string]string{"disk": "ssd"}
	nodes["ssd1"] = ssd
	oldPlacement := svc.Spec.Task
	oldPlacement.Placement = api.Placement{}
	otherImage := svc.Spec.Task
	otherImage.Container.Image = "web:2"
	ep := svc.Spec.Endpoint
	otherEp := api.EndpointSpec{Ports: []api.PortConfig{{Target: 80, Published: 9090}}}
	mk := func(id, node string, spec api.TaskSpec, e *api.EndpointSpec) api.Task {
		x := tk(id, 1, node, api.TaskRunning, t0)
		x.Spec, x.Endpoint = spec, e
		return x
	}
	tasks := []api.Task{
		mk("current", "ssd1", svc.Spec.Task, &ep),
		mk("no-endpoint-recorded", "ssd1", svc.Spec.Task, nil),
		mk("other-endpoint", "ssd1", svc.Spec.Task, &otherEp),
		mk("other-image", "ssd1", otherImage, &ep),
		mk("placement-fits", "ssd1", oldPlacement, &ep),
		mk("placement-unplaced", "", oldPlacement, &ep),
		mk("placement-excluded", "hdd1", oldPlacement, &ep),
	}
	got := classify(svc, tasks, nodes)
	want := map[string]fit{"current": fitCurrent, "no-endpoint-recorded": fitCurrent, "other-endpoint": fitDirty, "other-image": fitDirty,
		"placement-fits": fitAdopt, "placement-unplaced": fitAdopt, "placement-excluded": fitDirty}
	var diffs []string
	for id, f := range want {
		if got[id] != f {
			diffs = append(diffs, id)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Errorf("misjudged: %s (got %v)", strings.Join(diffs, ", "), got)
	}
	// A global service's task on a node it may no longer use is left to
	// the orchestrator to stop: nothing replaces it there.
	svc.Spec.Mode = api.ModeGlobal
	if f := classify(svc, tasks[6:], nodes)["placement-excluded"]; f != fitLeave {
		t.Errorf("global task on an excluded node: %v, want leave", f)
	}
}

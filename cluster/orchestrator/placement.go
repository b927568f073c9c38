package orchestrator

import (
	"encoding/json"
	"sort"

	"github.com/gitorc/gitorc/cluster/api"
)

// fit is how a live task stands against its service's current spec.
type fit uint8

const (
	// fitCurrent runs the service's task spec and endpoint.
	fitCurrent fit = iota
	// fitAdopt differs from the service's task spec only in placement and
	// sits where the new placement still allows it (or is not placed yet):
	// it takes the new spec in place, without a restart.
	fitAdopt
	// fitDirty must be replaced by the update: its spec (placement aside)
	// or endpoint differs, or its node no longer satisfies the placement.
	fitDirty
	// fitLeave is a global service's task on a node the new placement
	// excludes: the orchestrator stops it and nothing replaces it there.
	fitLeave
)

// classify judges every live task of a service (jobs aside). A placement
// change (constraints, preferences, platforms, max_replicas_per_node)
// alone replaces only the tasks it no longer allows: those on nodes that
// fail the constraints or platforms, and those beyond
// max_replicas_per_node on a node (the highest slots; tasks already on
// the new spec are kept first). Preferences only steer new placements.
func classify(svc *api.Service, tasks []api.Task, nodes Nodes) map[string]fit {
	target := specKey(svc.Spec.Task)
	loose := specKey(withoutPlacement(svc.Spec.Task))
	endpoint := endpointKey(&svc.Spec.Endpoint)
	out := make(map[string]fit, len(tasks))
	type staying struct {
		t     *api.Task
		exact bool
	}
	perNode := map[string][]staying{}
	for i := range tasks {
		t := &tasks[i]
		if !live(t) {
			continue
		}
		var f fit
		switch {
		case t.Endpoint != nil && endpointKey(t.Endpoint) != endpoint:
			// Made for another endpoint; tasks that recorded none never differ.
			f = fitDirty
		case specKey(t.Spec) == target:
			f = fitCurrent
		case specKey(withoutPlacement(t.Spec)) != loose:
			f = fitDirty
		default:
			f = placementFit(svc, t, nodes)
		}
		out[t.ID] = f
		if (f == fitCurrent || f == fitAdopt) && t.NodeID != "" {
			perNode[t.NodeID] = append(perNode[t.NodeID], staying{t, f == fitCurrent})
		}
	}
	limit := svc.Spec.Task.Placement.MaxReplicasPerNode
	if limit == 0 || svc.Spec.Mode.IsGlobal() {
		return out
	}
	for _, ss := range perNode {
		if uint64(len(ss)) <= limit {
			continue
		}
		sort.Slice(ss, func(i, j int) bool {
			a, b := ss[i], ss[j]
			if a.exact != b.exact {
				return a.exact
			}
			if a.t.Slot != b.t.Slot {
				return a.t.Slot < b.t.Slot
			}
			return a.t.ID < b.t.ID
		})
		for _, s := range ss[limit:] {
			if !s.exact { // placed under the new limit already: the scheduler's business
				out[s.t.ID] = fitDirty
			}
		}
	}
	return out
}

// placementFit judges a task that differs from the service only in
// placement by where it runs.
func placementFit(svc *api.Service, t *api.Task, nodes Nodes) fit {
	if t.NodeID == "" {
		return fitAdopt // not placed yet: the scheduler places it by the new spec
	}
	n, known := nodes[t.NodeID]
	if !known || eligible(svc, &n) {
		return fitAdopt // a node that is gone is the orchestrator's to evict
	}
	if svc.Spec.Mode.IsGlobal() {
		return fitLeave
	}
	return fitDirty
}

func withoutPlacement(s api.TaskSpec) api.TaskSpec {
	s.Placement = api.Placement{}
	return s
}

// endpointKey identifies an endpoint spec by content.
func endpointKey(e *api.EndpointSpec) string {
	b, _ := json.Marshal(e)
	return string(b)
}

package orchestrator

import (
	"sort"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// Eligible reports whether a global service's task may run on a node
// (constraints, platform); the scheduler's filters answer it.
type Eligible func(node api.Node) bool

// DecideGlobal keeps one task of a global service (or global job) on each
// eligible node that is ready and not drained; paused nodes keep theirs
// but get no new one. Ended tasks are replaced by the restart policy. A
// task it stops that is in the load-balancing set drains for drain first
// (retire).
func DecideGlobal(svc *api.Service, tasks []api.Task, nodes Nodes, eligible Eligible, now time.Time, drain time.Duration) Decision {
	var d Decision
	byNode := groupBy(tasks, func(t *api.Task) string { return t.NodeID })
	ids := make([]string, 0, len(nodes))
	for id := range nodes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for nodeID, g := range byNode {
		g.reap(&d)
		node, known := nodes[nodeID]
		keep := g.evict(nodes, &d, now, drain)
		if known && len(keep) > 0 && !eligible(node) {
			for _, t := range keep {
				d.retire(t, "node no longer eligible", now, drain)
			}
			continue
		}
		if len(keep) == 0 {
			continue
		}
		for _, extra := range duplicates(svc, keep) {
			d.retire(extra, "duplicate task on node", now, drain)
		}
	}
	for _, id := range ids {
		node := nodes[id]
		if node.Status.State != api.NodeReady || node.Spec.Availability != api.AvailabilityActive || !eligible(node) {
			continue
		}
		g := byNode[id]
		if len(g.liveTasks()) > 0 {
			continue
		}
		if len(g) == 0 {
			g.create(&d, newTask(svc, 0, id, nil, now))
			continue
		}
		if stoppedByUs(g[0]) && specKey(g[0].Spec) == specKey(svc.Spec.Task) {
			// Its task was stopped when the node left the service (drain,
			// a constraint) and the node is back: a fresh task, not a
			// restart. (A task an update stopped has the old spec: the
			// updater replaces it.)
			g.create(&d, newTask(svc, 0, id, nil, now))
			continue
		}
		v := decideRestart(svc.Spec.Task.Restart, g[0], svc.Spec.Mode, false)
		switch {
		case !v.restart:
		case now.Before(v.at):
			d.wakeAt(v.at)
		default:
			g.create(&d, newTask(svc, 0, id, v.history, now))
		}
	}
	d.undrainRest(tasks)
	sortDecision(&d)
	return d
}

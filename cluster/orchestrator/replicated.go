package orchestrator

import (
	"sort"
	"strconv"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// DecideReplicated keeps a replicated service at its number of slots:
// refills slots whose task ended (restart policy, delay, attempts), moves
// tasks off nodes that are down or drained, adds slots when scaled up and
// removes the highest-cost ones when scaled down, and reaps history.
// Tasks whose spec is out of date are left to the updater. A task it stops
// that is in the load-balancing set drains for drain first (retire).
func DecideReplicated(svc *api.Service, tasks []api.Task, nodes Nodes, now time.Time, drain time.Duration) Decision {
	var d Decision
	slots := groupBy(tasks, func(t *api.Task) string { return strconv.FormatUint(t.Slot, 10) })
	want := svc.Spec.Replicas
	type candidate struct {
		slot uint64
		task *api.Task
		// runs: a task of the slot runs (its start-first replacement may
		// not yet): the slot is a running one to a scale-down.
		runs bool
	}
	var running []candidate   // one live task per kept slot
	taken := 0                // slots refilled now, after their delay, or left ended by the restart policy
	free := map[uint64]bool{} // slots whose last task we stopped (a scale-down)
	for key, g := range slots {
		slot, _ := strconv.ParseUint(key, 10, 64)
		g.reap(&d)
		keep := g.evict(nodes, &d, now, drain)
		evicted := len(keep) < len(g.liveTasks())
		if len(keep) > 0 {
			runs := false
			for _, t := range keep {
				runs = runs || t.Status.State == api.TaskRunning
			}
			running = append(running, candidate{slot, keep[0], runs})
			for _, extra := range duplicates(svc, keep) { // a slot runs one task
				d.retire(extra, "duplicate task in slot", now, drain)
			}
			continue
		}
		if slot > want || slot == 0 {
			continue // slot no longer wanted: nothing to refill
		}
		v := decideRestart(svc.Spec.Task.Restart, g[0], svc.Spec.Mode, evicted)
		switch {
		case !v.restart:
			if stoppedByUs(g[0]) {
				free[slot] = true
			} else {
				taken++ // the restart policy keeps it ended: the slot stays taken
			}
		case now.Before(v.at):
			taken++
			d.wakeAt(v.at)
		default:
			taken++
			g.create(&d, newTask(svc, slot, "", v.history, now))
		}
	}
	// Scale down: stop the slots above the count, costliest first; the
	// ones an earlier pass chose, and which drain, are chosen again.
	if uint64(len(running)) > want {
		perNode := map[string]int{}
		for _, c := range running {
			perNode[c.task.NodeID]++
		}
		sort.SliceStable(running, func(i, j int) bool {
			a, b := running[i], running[j]
			if a.runs != b.runs {
				return !a.runs // a slot with nothing running yet goes first
			}
			if as, bs := scalingDown(svc, a.task), scalingDown(svc, b.task); as != bs {
				return as
			}
			if perNode[a.task.NodeID] != perNode[b.task.NodeID] {
				return perNode[a.task.NodeID] > perNode[b.task.NodeID]
			}
			return a.slot > b.slot
		})
		excess := uint64(len(running)) - want
		for _, c := range running[:excess] {
			d.retire(c.task, "scaled down", now, drain)
			perNode[c.task.NodeID]--
		}
	}
	// Scale up: as many slots as are missing, the lowest numbers first
	// among those never used and those a scale-down stopped (which one a
	// scale-down picks is the costliest, not the highest: a slot within
	// the count may be one it stopped, and so may be refilled).
	need := int64(want) - int64(len(running)) - int64(taken)
	for slot := uint64(1); need > 0; slot++ {
		if g, used := slots[strconv.FormatUint(slot, 10)]; !used || free[slot] {
			g.create(&d, newTask(svc, slot, "", nil, now))
			need--
		}
	}
	d.undrainRest(tasks)
	sortDecision(&d)
	return d
}

// duplicates are the live tasks of a group beyond its newest one, except
// tasks of another spec: during a start-first update the old task runs
// beside its replacement until that is ready, and the updater stops it.
func duplicates(svc *api.Service, keep []*api.Task) []*api.Task {
	var out []*api.Task
	target := specKey(svc.Spec.Task)
	for _, t := range keep[1:] {
		if specKey(t.Spec) == target || specKey(keep[0].Spec) != target {
			out = append(out, t)
		}
	}
	return out
}

// sortDecision makes decisions deterministic.
func sortDecision(d *Decision) {
	sort.Slice(d.Create, func(i, j int) bool {
		if d.Create[i].Slot != d.Create[j].Slot {
			return d.Create[i].Slot < d.Create[j].Slot
		}
		return d.Create[i].NodeID < d.Create[j].NodeID
	})
	sort.Slice(d.Shutdown, func(i, j int) bool { return d.Shutdown[i].TaskID < d.Shutdown[j].TaskID })
	sort.Strings(d.Replace)
	sort.Strings(d.Drain)
	sort.Strings(d.Draining)
	sort.Strings(d.Undrain)
	sort.Strings(d.Delete)
}

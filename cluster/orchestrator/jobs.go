package orchestrator

import (
	"strconv"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// DecideReplicatedJob runs a replicated job to TotalCompletions successful
// tasks, at most MaxConcurrent at a time; failed tasks are retried in their
// slot by the restart policy. A job's task is never in a load-balancing
// set: drain (retire) stops it at once in practice.
func DecideReplicatedJob(svc *api.Service, tasks []api.Task, nodes Nodes, now time.Time, drain time.Duration) Decision {
	var d Decision
	slots := groupBy(tasks, func(t *api.Task) string { return strconv.FormatUint(t.Slot, 10) })
	total, max := svc.Spec.TotalCompletions, svc.Spec.MaxConcurrent
	if max == 0 {
		max = 1
	}
	var active, done uint64
	for key, g := range slots {
		slot, _ := strconv.ParseUint(key, 10, 64)
		g.reap(&d)
		keep := g.evict(nodes, &d, now, drain)
		evicted := len(keep) < len(g.liveTasks())
		switch {
		case len(keep) > 0:
			active++
		case g[0].Status.State == api.TaskComplete && !evicted:
			done++
		case slot == 0 || slot > total:
		default:
			v := decideRestart(svc.Spec.Task.Restart, g[0], svc.Spec.Mode, evicted)
			switch {
			case !v.restart:
				done++ // gave up: the slot is finished, failed
			case now.Before(v.at):
				d.wakeAt(v.at)
				active++
			case active < max:
				g.create(&d, newTask(svc, slot, "", v.history, now))
				active++
			}
		}
	}
	for slot := uint64(1); slot <= total && active < max; slot++ {
		if _, used := slots[strconv.FormatUint(slot, 10)]; !used {
			d.Create = append(d.Create, newTask(svc, slot, "", nil, now))
			active++
		}
	}
	d.undrainRest(tasks)
	sortDecision(&d)
	return d
}

package orchestrator

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// badRollout is the scenario: 10 replicas with Swarm's default
// restart policy (delay 5s), an update to an image whose tasks exit 1,
// parallelism 2, failure_action rollback.
func badRollout(t *testing.T) *world {
	w := newWorld(t, 10, cfg(2, api.OrderStopFirst, api.FailureRollback))
	w.svc.Spec.Task.Restart = api.DefaultRestartPolicy()
	for i := range w.tasks {
		w.tasks[i].Spec.Restart = w.svc.Spec.Task.Restart
	}
	w.deploy("bad:2")
	return w
}

// slotsOn says, for each slot of the first service, what serves it: the
// image of its ready live task, or "-".
func (w *world) slotsOn() map[string]string {
	out := map[string]string{}
	for slot := uint64(1); slot <= w.svc.Spec.Replicas; slot++ {
		out[strconv.FormatUint(slot, 10)] = "-"
	}
	for i := range w.tasks {
		tk := &w.tasks[i]
		if tk.ServiceID == w.svc.ID && live(tk) && isReady(tk) {
			out[strconv.FormatUint(tk.Slot, 10)] = tk.Spec.Container.Image
		}
	}
	return out
}

// A rollback is completed only when every slot runs a ready task of the
// rolled-back spec: it was reported 1.1 s after the bad update while the
// slots whose bad tasks had failed were still empty, refilled only by the
// restart policy, after its delay.
func TestRollbackCompletesOnlyWhenEverySlotRunsTheOldSpec(t *testing.T) {
	w := badRollout(t)
	var completedAt time.Duration
	for i := 0; i < 300 && completedAt == 0; i++ {
		w.step()
		if w.svc.Update != nil && w.svc.Update.State == api.UpdateRollbackCompleted {
			completedAt = w.now.Sub(t0)
			for slot, img := range w.slotsOn() {
				if img != "web:1" {
					t.Errorf("rollback completed at %s with slot %s on %q: %v", completedAt, slot, img, w.slotsOn())
				}
			}
		}
		w.now = w.now.Add(100 * time.Millisecond)
	}
	if completedAt == 0 {
		t.Fatalf("rollback never completed: %v, %+v", w.log, w.svc.Update)
	}
	if got, want := w.svc.Update.Message, "rolled back: 2 of 2 updated tasks failed: exit code 1"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
}

// The rollback replaces the failed tasks of the spec it rolls away from at
// once, without the restart delay, and they become history
// (desired shutdown, Replaced); the restart delay still applies to an
// ordinary restart of the rolled-back spec's task afterwards.
func TestRollbackReplacesFailedTasksAtOnce(t *testing.T) {
	w := badRollout(t)
	delay := w.svc.Spec.Task.Restart.Delay.Std()
	var startedAt time.Time
	for i := 0; i < 100 && startedAt.IsZero(); i++ {
		w.step()
		if w.svc.Update != nil && w.svc.Update.State == api.UpdateRollbackStarted {
			startedAt = w.now
		}
		w.now = w.now.Add(100 * time.Millisecond)
	}
	if startedAt.IsZero() {
		t.Fatalf("no rollback: %v", w.log)
	}
	w.step() // the rollback's first pass
	var failed []string
	for i := range w.tasks {
		tk := &w.tasks[i]
		if tk.Spec.Container.Image != "bad:2" {
			continue
		}
		failed = append(failed, tk.ID)
		if tk.DesiredState != api.TaskShutdown || !tk.Replaced {
			t.Errorf("failed task %s of slot %d: desired %s, replaced %v; want shutdown, replaced", tk.ID, tk.Slot, tk.DesiredState, tk.Replaced)
		}
		var repl *api.Task
		for j := range w.tasks {
			if o := &w.tasks[j]; o.Slot == tk.Slot && live(o) {
				repl = o
			}
		}
		switch {
		case repl == nil:
			t.Errorf("slot %d: no task %s after the failure (restart delay %s)", tk.Slot, w.now.Sub(tk.Status.Timestamp), delay)
		case repl.Spec.Container.Image != "web:1":
			t.Errorf("slot %d replaced by %s", tk.Slot, repl.Spec.Container.Image)
		case !repl.CreatedAt.Before(tk.Status.Timestamp.Add(delay)):
			t.Errorf("slot %d replaced %s after its failure: waited for the restart delay", tk.Slot, repl.CreatedAt.Sub(tk.Status.Timestamp))
		}
	}
	if len(failed) != 2 {
		t.Fatalf("failed tasks %v, want the 2 of the first batch", failed)
	}
	w.run(100*time.Millisecond, 200)
	if w.svc.Update.State != api.UpdateRollbackCompleted {
		t.Fatalf("state %s", w.svc.Update.State)
	}

	// An ordinary restart: the rolled-back spec's task exits 1.
	victim := w.task(w.tasks[len(w.tasks)-1].ID)
	victim.Status = api.TaskStatus{State: api.TaskFailed, Timestamp: w.now, Err: "exit code 1"}
	failedAt := w.now
	for w.now.Before(failedAt.Add(delay)) {
		w.step()
		if w.slotsOn()[strconv.FormatUint(victim.Slot, 10)] != "-" {
			t.Fatalf("slot %d refilled %s after its task failed, before the restart delay %s", victim.Slot, w.now.Sub(failedAt), delay)
		}
		if got := w.task(victim.ID); got.DesiredState != api.TaskRunning || got.Replaced {
			t.Fatalf("failed task awaiting its restart: desired %s, replaced %v", got.DesiredState, got.Replaced)
		}
		w.now = w.now.Add(500 * time.Millisecond)
	}
	w.step()
	if got := w.slotsOn()[strconv.FormatUint(victim.Slot, 10)]; got != "web:1" {
		t.Errorf("slot %d after the restart delay: %q", victim.Slot, got)
	}
	if got := w.task(victim.ID); got.DesiredState != api.TaskShutdown || !got.Replaced {
		t.Errorf("restarted task: desired %s, replaced %v", got.DesiredState, got.Replaced)
	}
}

// Failed tasks move to desired shutdown when their replacement is made,
// whoever makes it (the restart policy, an update), in every mode; tasks
// the orchestrator stopped are not "replaced" and a job's completed task
// stays complete. The update still counts a replaced task as a failure.
func TestFailedTasksBecomeHistory(t *testing.T) {
	t.Run("restart policy", func(t *testing.T) {
		w := newWorld(t, 2, cfg(1, api.OrderStopFirst, api.FailurePause))
		w.tasks[0].Status = api.TaskStatus{State: api.TaskFailed, Timestamp: w.now, Err: "exit code 1"}
		id := w.tasks[0].ID
		w.step()
		if tk := w.task(id); tk.DesiredState != api.TaskShutdown || !tk.Replaced {
			t.Errorf("replaced task: desired %s, replaced %v", tk.DesiredState, tk.Replaced)
		}
		if got := w.live(); got["web:1"] != 2 {
			t.Errorf("live %v", got)
		}
	})
	t.Run("update counts replaced failures", func(t *testing.T) {
		// crash:2 runs healthy for 2s, then exits: within monitor, a
		// failure; the restart policy (delay 0 here) replaces it, and the
		// update must still count it.
		w := newWorld(t, 4, cfg(1, api.OrderStopFirst, api.FailurePause))
		w.svc.Spec.Update.MaxFailureRatio = 0.6
		w.deploy("crash:2")
		for i := 0; i < 100; i++ {
			ended, replaced := 0, 0
			for _, tk := range w.tasks {
				if tk.Spec.Container.Image == "crash:2" && tk.Status.State == api.TaskFailed {
					ended++
					if tk.Replaced {
						replaced++
					}
				}
				if tk.Status.State == api.TaskShutdown && tk.Replaced {
					t.Fatalf("task %s was stopped, yet marked replaced", tk.ID)
				}
			}
			w.step()
			if w.svc.Update.State == api.UpdatePaused {
				if w.svc.Update.Failed != uint64(ended) || replaced == 0 {
					t.Errorf("paused with %d failed counted; %d crash tasks had failed, %d of them replaced (%q)",
						w.svc.Update.Failed, ended, replaced, w.svc.Update.Message)
				}
				return
			}
			w.now = w.now.Add(time.Second)
		}
		t.Fatalf("never paused: %v %+v", w.log, w.svc.Update)
	})
	t.Run("global", func(t *testing.T) {
		w := newWorldOn(t, 0, cfg(1, api.OrderStopFirst, api.FailurePause), map[string]map[string]string{"n1": nil})
		g := w.addService(api.ServiceSpec{Name: "s_mon", Mode: api.ModeGlobal, Task: api.TaskSpec{Container: api.ContainerSpec{Image: "mon:1"}}})
		for i := 0; i < 3; i++ {
			w.step()
		}
		var first string
		for i := range w.tasks {
			if tk := &w.tasks[i]; tk.ServiceID == g.ID {
				first = tk.ID
				tk.Status = api.TaskStatus{State: api.TaskFailed, Timestamp: w.now, Err: "exit code 1"}
			}
		}
		w.step()
		if tk := w.task(first); tk.DesiredState != api.TaskShutdown || !tk.Replaced {
			t.Errorf("global task: desired %s, replaced %v", tk.DesiredState, tk.Replaced)
		}
		if got := w.liveOf(g); got["mon:1"] != 1 {
			t.Errorf("live %v", got)
		}
	})
	t.Run("replicated job", func(t *testing.T) {
		w := newWorld(t, 0, cfg(1, api.OrderStopFirst, api.FailurePause))
		j := w.addService(api.ServiceSpec{Name: "s_job", Mode: api.ModeReplicatedJob, TotalCompletions: 2, MaxConcurrent: 2,
			Task: api.TaskSpec{Container: api.ContainerSpec{Image: "job:1"}}})
		w.step() // created, then running
		var ids []string
		for i := range w.tasks {
			if tk := &w.tasks[i]; tk.ServiceID == j.ID {
				ids = append(ids, tk.ID)
			}
		}
		if len(ids) != 2 {
			t.Fatalf("job tasks %v", ids)
		}
		w.task(ids[0]).Status = api.TaskStatus{State: api.TaskFailed, Timestamp: w.now, Err: "exit code 3"}
		w.task(ids[1]).Status = api.TaskStatus{State: api.TaskComplete, Timestamp: w.now}
		w.step()
		if tk := w.task(ids[0]); tk.DesiredState != api.TaskShutdown || !tk.Replaced {
			t.Errorf("failed job task: desired %s, replaced %v", tk.DesiredState, tk.Replaced)
		}
		if tk := w.task(ids[1]); tk.DesiredState != api.TaskComplete || tk.Replaced {
			t.Errorf("completed job task: desired %s, replaced %v", tk.DesiredState, tk.Replaced)
		}
		if got := fmt.Sprint(w.liveOf(j)); got != "map[job:1:1]" {
			t.Errorf("live %s", got)
		}
	})
}

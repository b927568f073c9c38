package dispatcher_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/dispatcher/wire"
	"github.com/gitorc/gitorc/cluster/store/storetest"
)

// deltaSession opens nodeID's raw session as a worker that takes
// incremental assignment sets.
func (e *env) deltaSession(nodeID string) *inbox {
	e.t.Helper()
	stream, _, err := e.rawSessionWith(clientTLS(e.t, e.root, e.cert(nodeID, api.RoleWorker)),
		&wire.Hello{Description: api.NodeDescription{Hostname: nodeID, Platform: api.Platform{OS: "linux", Architecture: "amd64"}},
			Deltas: true})
	if err != nil {
		e.t.Fatal(err)
	}
	return newInbox(e.t, stream)
}

// nextSet is the next assignment set, skipping network views.
func (in *inbox) nextSet() *wire.AssignmentSet {
	in.t.Helper()
	for {
		if m := in.next(); m.Assignments != nil {
			return m.Assignments
		}
	}
}

func setTaskIDs(set *wire.AssignmentSet) []string {
	var ids []string
	for _, t := range set.Tasks {
		ids = append(ids, t.ID)
	}
	return ids
}

// A session's first assignment set is complete; after it, a change of
// one task sends a delta of that one task, a change of a task's status
// alone (the node's own report, written back) sends nothing, a task that
// leaves the set is sent as removed, and a session that reconnects starts
// again with a complete set.
func TestAssignmentDeltas(t *testing.T) {
	e := newEnv(t, envOptions{})
	var tasks []api.Object
	for i := 1; i <= 5; i++ {
		tasks = append(tasks, newTask(fmt.Sprintf("t%d", i), "w1"))
	}
	e.create(tasks...)
	msgs := e.deltaSession("w1")

	first := msgs.nextSet()
	if first.Delta || first.Seq != 1 || !slices.Equal(setTaskIDs(first), []string{"t1", "t2", "t3", "t4", "t5"}) {
		t.Fatalf("first set: delta %v, seq %d, tasks %v; want complete, seq 1, t1-t5", first.Delta, first.Seq, setTaskIDs(first))
	}

	change(e, "t3", func(t *api.Task) { t.DesiredState = api.TaskShutdown })
	d := msgs.nextSet()
	if !d.Delta || d.Seq != 2 || !slices.Equal(setTaskIDs(d), []string{"t3"}) || len(d.RemovedTasks) != 0 {
		t.Fatalf("after t3's change: delta %v, seq %d, tasks %v, removed %v; want a delta, seq 2, [t3] only",
			d.Delta, d.Seq, setTaskIDs(d), d.RemovedTasks)
	}
	if got := d.Tasks[0].DesiredState; got != api.TaskShutdown {
		t.Errorf("t3 desired %s in the delta, want shutdown", got)
	}

	// A status-only change sends nothing: the next set is the one of the
	// next change that matters, numbered right after the last.
	change(e, "t2", func(t *api.Task) { t.Status.State = api.TaskRunning; t.Status.Timestamp = e.clock.Now() })
	change(e, "t4", func(t *api.Task) { t.Spec.Container.Env = append(t.Spec.Container.Env, "A=1") })
	d = msgs.nextSet()
	if !d.Delta || d.Seq != 3 || !slices.Equal(setTaskIDs(d), []string{"t4"}) {
		t.Fatalf("after t2's status and t4's spec changes: delta %v, seq %d, tasks %v; want a delta, seq 3, [t4] only",
			d.Delta, d.Seq, setTaskIDs(d))
	}

	// Finished and meant to stay finished: removed from the set.
	change(e, "t5", func(t *api.Task) {
		t.Status.State, t.Status.Timestamp, t.DesiredState = api.TaskShutdown, e.clock.Now(), api.TaskShutdown
	})
	d = msgs.nextSet()
	if !d.Delta || d.Seq != 4 || len(d.Tasks) != 0 || !slices.Equal(d.RemovedTasks, []string{"t5"}) {
		t.Fatalf("after t5 ended: delta %v, seq %d, tasks %v, removed %v; want a delta, seq 4, t5 removed only",
			d.Delta, d.Seq, setTaskIDs(d), d.RemovedTasks)
	}

	// A new session (the old one is replaced) starts with the whole set.
	again := e.deltaSession("w1")
	full := again.nextSet()
	if full.Delta || full.Seq != 1 || !slices.Equal(setTaskIDs(full), []string{"t1", "t2", "t3", "t4"}) {
		t.Fatalf("reconnected: delta %v, seq %d, tasks %v; want complete, seq 1, t1-t4", full.Delta, full.Seq, setTaskIDs(full))
	}
	for _, tk := range full.Tasks {
		if tk.ID == "t2" && tk.Status.State != api.TaskRunning {
			t.Errorf("t2 in the complete set is %s, want its stored status running", tk.Status.State)
		}
	}
}

// A worker that does not ask for deltas gets a complete set on every
// change, as before deltas existed.
func TestNoDeltasWithoutAsking(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.create(newTask("t1", "w1"), newTask("t2", "w1"))
	stream, _, err := e.rawSession(clientTLS(t, e.root, e.cert("w1", api.RoleWorker)), "w1")
	if err != nil {
		t.Fatal(err)
	}
	msgs := newInbox(t, stream)
	if set := msgs.nextSet(); set.Delta || len(set.Tasks) != 2 {
		t.Fatalf("first set: delta %v, tasks %v; want complete, t1 and t2", set.Delta, setTaskIDs(set))
	}
	change(e, "t1", func(t *api.Task) { t.DesiredState = api.TaskShutdown })
	if set := msgs.nextSet(); set.Delta || !slices.Equal(setTaskIDs(set), []string{"t1", "t2"}) {
		t.Fatalf("after t1's change: delta %v, tasks %v; want complete, t1 and t2", set.Delta, setTaskIDs(set))
	}
}

// A fan-out that falls behind the store (its watcher overflows) loses no
// change: it routes what changed meanwhile, and the node gets every task
// of a commit larger than the watcher's buffer.
func TestFanoutBehindLosesNothing(t *testing.T) {
	st := storetest.New(t, storetest.Options{Managers: 1, WatchBuffer: 1}).Store(0)
	e := newEnv(t, envOptions{store: st})
	msgs := e.deltaSession("w1")
	if set := msgs.nextSet(); len(set.Tasks) != 0 {
		t.Fatalf("first set holds %v, want nothing", setTaskIDs(set))
	}
	before := e.disp.FanoutResyncs()
	want := map[string]bool{}
	// 50 events at a time for a watcher that holds 1, until it fell
	// behind (at once, but for a fan-out that kept up under load).
	for round := 0; round < 20 && (round == 0 || e.disp.FanoutResyncs() == before); round++ {
		var tasks []api.Object
		for i := range 50 {
			id := fmt.Sprintf("t%02d-%02d", round, i)
			tasks = append(tasks, newTask(id, "w1"))
			want[id] = true
		}
		e.create(tasks...)
	}
	got := map[string]bool{}
	for len(got) < len(want) {
		set := msgs.nextSet()
		for _, tk := range set.Tasks {
			if !want[tk.ID] {
				t.Fatalf("unexpected task %s", tk.ID)
			}
			got[tk.ID] = true
		}
	}
	if n := e.disp.FanoutResyncs() - before; n < 1 {
		t.Errorf("the fan-out never fell behind (%d resyncs): the test did not test the resync", n)
	}
}

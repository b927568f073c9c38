package containerd_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/gitorc/gitorc/cluster/agent"
	"github.com/gitorc/gitorc/cluster/agent/containerd"
	"github.com/gitorc/gitorc/cluster/api"
)

// shimOf returns the parent process (the runc shim) of a task's process.
func shimOf(t *testing.T, taskID string) int {
	t.Helper()
	ctx := namespaced(context.Background())
	c, err := env.exec.Client().LoadContainer(ctx, taskID)
	if err != nil {
		t.Fatal(err)
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", task.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	// pid (comm) state ppid …: comm may hold spaces, so count from its ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	var ppid int
	if len(f) < 2 {
		t.Fatalf("parse %s", b)
	}
	if _, err := fmt.Sscan(f[1], &ppid); err != nil {
		t.Fatalf("parse %s: %v", b, err)
	}
	return ppid
}

// The replicas of a service on a node share one shim; another service's
// tasks have their own, and removing one task leaves the others running.
func TestTasksOfAServiceShareAShim_Root(t *testing.T) {
	requireRoot(t)
	service := func(id string) func(*api.Task) {
		return func(t *api.Task) { t.ServiceID, t.Slot = id, 1 } // one shim's slots
	}
	a1 := newTask(t, env.image, withCommand("sleep", "3600"), service("svc-a"))
	a2 := newTask(t, env.image, withCommand("sleep", "3600"), service("svc-a"))
	b1 := newTask(t, env.image, withCommand("sleep", "3600"), service("svc-b"))
	for _, task := range []*api.Task{a1, a2, b1} {
		runTask(t, task, agent.Files{})
	}
	sa1, sa2, sb1 := shimOf(t, a1.ID), shimOf(t, a2.ID), shimOf(t, b1.ID)
	if sa1 != sa2 {
		t.Errorf("replicas of one service have shims %d and %d, want one", sa1, sa2)
	}
	if sb1 == sa1 {
		t.Errorf("two services share shim %d", sb1)
	}
	if _, err := env.exec.Remove(context.Background(), a1.ID); err != nil {
		t.Fatal(err)
	}
	if o := observed(t, env.exec, a2.ID); o == nil || o.State != agent.ContainerRunning {
		t.Errorf("after removing its sibling, a2 is %+v, want running", o)
	}
}

// A group's shim is started and ended while its tasks come and go at
// once: a rolling update removes a service's last old tasks while its new
// ones start. Every start must succeed (containerd 1.6 alone races: two
// first tasks both start the group's shim, and a task created as the last
// one is deleted reaches a shim that is shutting down).
func TestShimGroupChurn_Root(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	const perRound, rounds = 5, 6
	mk := func() *api.Task {
		return newTask(t, env.image, withCommand("sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"),
			func(t *api.Task) { t.ServiceID, t.Slot = "svc-churn", 1 }) // one shim's slots
	}
	var prev []*api.Task
	for round := range rounds {
		next := make([]*api.Task, perRound)
		for i := range next {
			next[i] = mk()
		}
		for _, task := range next { // prepared first, so that the starts coincide
			if err := env.exec.Prepare(ctx, task, agent.Files{}); err != nil {
				t.Fatal(err)
			}
		}
		errs := make(chan error, 2*perRound)
		for _, task := range prev {
			go func() {
				_, err := env.exec.Remove(ctx, task.ID)
				errs <- err
			}()
		}
		for _, task := range next {
			go func() { errs <- env.exec.Start(ctx, task.ID) }()
		}
		for range len(prev) + len(next) {
			if err := <-errs; err != nil {
				t.Errorf("round %d: %v", round, err)
			}
		}
		if t.Failed() {
			break
		}
		shim := shimOf(t, next[0].ID)
		for _, task := range next {
			if o := observed(t, env.exec, task.ID); o == nil || o.State != agent.ContainerRunning {
				t.Errorf("round %d: %s is %+v, want running", round, task.ID, o)
			} else if s := shimOf(t, task.ID); s != shim {
				t.Errorf("round %d: %s runs under shim %d, its siblings under %d", round, task.ID, s, shim)
			}
		}
		prev = next
	}
	for _, task := range prev {
		if _, err := env.exec.Remove(ctx, task.ID); err != nil {
			t.Errorf("remove: %v", err)
		}
	}
}

// A service's slots 1…TasksPerShim share a shim, the next slots another.
func TestTasksPerShim_Root(t *testing.T) {
	requireRoot(t)
	slot := func(s uint64) func(*api.Task) { return func(t *api.Task) { t.ServiceID, t.Slot = "svc-shards", s } }
	k := uint64(containerd.DefaultTasksPerShim)
	first := newTask(t, env.image, trapTERM, slot(1))
	last := newTask(t, env.image, trapTERM, slot(k))
	next := newTask(t, env.image, trapTERM, slot(k+1))
	for _, task := range []*api.Task{first, last, next} {
		runTask(t, task, agent.Files{})
	}
	if a, b := shimOf(t, first.ID), shimOf(t, last.ID); a != b {
		t.Errorf("slots 1 and %d run under shims %d and %d, want one", k, a, b)
	}
	if a, b := shimOf(t, first.ID), shimOf(t, next.ID); a == b {
		t.Errorf("slots 1 and %d share shim %d, want two", k+1, a)
	}
}

package containerd

import (
	"testing"
	"time"

	tasktypes "github.com/containerd/containerd/api/types/task"
)

func procStatus(c *procCache, id string) (tasktypes.Status, bool) {
	m, _ := c.snapshot()
	p, ok := m[id]
	return p.status, ok
}

// The process cache never lets an older fact win: a start recorded after
// the exit it raced with, a late exit of a container's earlier process,
// and a full list begun before a change all leave the newer state.
func TestProcCacheOrder(t *testing.T) {
	at := time.Unix(1e9, 0)
	t.Run("exit before the start is recorded", func(t *testing.T) {
		var c procCache
		c.created("a", 10)
		c.exited("a", 10, 3, at)
		c.started("a", 10)
		if st, _ := procStatus(&c, "a"); st != tasktypes.Status_STOPPED {
			t.Fatalf("status = %s, want STOPPED", st)
		}
	})
	t.Run("late exit of an earlier process", func(t *testing.T) {
		var c procCache
		c.created("a", 10)
		c.deleted("a")
		c.created("a", 11)
		c.started("a", 11)
		c.exited("a", 10, 137, at)
		if st, _ := procStatus(&c, "a"); st != tasktypes.Status_RUNNING {
			t.Fatalf("status = %s, want RUNNING", st)
		}
	})
	t.Run("list begun before changes", func(t *testing.T) {
		var c procCache
		c.created("a", 10)
		c.started("a", 10)
		c.created("gone", 12)
		seq0 := c.begin()
		c.exited("a", 10, 0, at) // after the list began
		c.created("b", 11)       // after the list began, so not in it
		c.replace([]*tasktypes.Process{
			{ID: "a", Pid: 10, Status: tasktypes.Status_RUNNING},
			{ID: "c", Pid: 13, Status: tasktypes.Status_RUNNING},
		}, seq0)
		want := map[string]tasktypes.Status{"a": tasktypes.Status_STOPPED, "b": tasktypes.Status_CREATED, "c": tasktypes.Status_RUNNING}
		m, _ := c.snapshot()
		if len(m) != len(want) {
			t.Fatalf("cache = %v, want %v", m, want)
		}
		for id, st := range want {
			if m[id].status != st {
				t.Errorf("%s: status = %s, want %s", id, m[id].status, st)
			}
		}
	})
	t.Run("unknown keeps what was known", func(t *testing.T) {
		var c procCache
		c.created("a", 10)
		c.started("a", 10)
		c.replace([]*tasktypes.Process{{ID: "a", Pid: 10, Status: tasktypes.Status_UNKNOWN}}, c.begin())
		if st, _ := procStatus(&c, "a"); st != tasktypes.Status_RUNNING {
			t.Fatalf("status = %s, want RUNNING", st)
		}
	})
}

// A container list begun before the executor created or deleted a
// container does not undo that.
func TestCtrCacheOrder(t *testing.T) {
	var c ctrCache
	if _, ok := c.snapshot(); ok {
		t.Fatal("an unseeded cache is current")
	}
	c.replace(map[string]map[string]string{"old": {"k": "v"}, "gone": {}}, c.begin())
	seq0 := c.begin()
	c.add("new", map[string]string{"k": "n"})
	c.remove("gone")
	c.replace(map[string]map[string]string{"old": {"k": "v"}, "gone": {}}, seq0)
	m, ok := c.snapshot()
	if !ok || len(m) != 2 || m["new"]["k"] != "n" || m["old"] == nil {
		t.Fatalf("cache = %v (current %v), want old and new", m, ok)
	}
	c.invalidate()
	if _, ok := c.snapshot(); ok {
		t.Fatal("an invalidated cache is current")
	}
}

package containerd

import (
	"context"
	"fmt"
	"sync"
	"time"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	tasktypes "github.com/containerd/containerd/api/types/task"
)

// Observe asks no shim. containerd answers a task list with a State call
// to the shim of every task, one after another, and a runc shim holds
// its lock for the whole of a create: while a deploy creates containers,
// each State call waits for the create in progress. An Observe of 50
// tasks on two busy shims took 0.6-0.8 s, and the agent, which observes
// before each step, started and recorded tasks in batches that far apart.
//
// The executor therefore keeps its tasks' process states itself
// (procCache): from its own calls (a task created, started, deleted) and
// from containerd's exit events (changes.go), which report every exit,
// with its status, as it happens. A full list seeds it when the event
// stream is (re)established and refreshes it every procRefresh; a list
// never overwrites what changed after it began. Without the event stream
// (Run not running, or the stream broken) Observe lists as before.
const procRefresh = 10 * time.Second

// procState is a task's process as the executor knows it.
type procState struct {
	status   tasktypes.Status
	pid      uint32
	exitCode uint32
	exitedAt time.Time
	seq      uint64 // the cache's sequence number at its last change
}

// procCache holds the process states of the namespace's tasks, by
// container ID (absent: no task).
type procCache struct {
	mu   sync.Mutex
	m    map[string]procState
	seq  uint64
	live bool // the exit events are followed: the cache is current
}

func (c *procCache) setLocked(id string, p procState) {
	if c.m == nil {
		c.m = map[string]procState{}
	}
	c.seq++
	p.seq = c.seq
	c.m[id] = p
}

// created records a task just created (its process not started).
func (c *procCache) created(id string, pid uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setLocked(id, procState{status: tasktypes.Status_CREATED, pid: pid})
}

// started records a task's process started, unless its exit is known.
func (c *procCache) started(id string, pid uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.m[id]; ok && p.pid == pid && p.status == tasktypes.Status_STOPPED {
		return
	}
	c.setLocked(id, procState{status: tasktypes.Status_RUNNING, pid: pid})
}

// exited records the exit of a task's process (an exit event). An exit
// of an earlier process of the container (another pid) is stale.
func (c *procCache) exited(id string, pid, code uint32, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.m[id]; ok && p.pid != 0 && pid != 0 && p.pid != pid {
		return
	}
	c.setLocked(id, procState{status: tasktypes.Status_STOPPED, pid: pid, exitCode: code, exitedAt: at})
}

// deleted records a task deleted.
func (c *procCache) deleted(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[id]; ok {
		c.seq++
		delete(c.m, id)
	}
}

// begin returns the sequence number a full list starts at.
func (c *procCache) begin() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seq
}

// replace takes a full list begun at seq0: entries that changed since
// are kept, the rest follow the list. An UNKNOWN state (a shim that did
// not answer in time) keeps what the cache knew.
func (c *procCache) replace(procs []*tasktypes.Process, seq0 uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	listed := make(map[string]bool, len(procs))
	for _, p := range procs {
		id := procContainer(p)
		listed[id] = true
		cur, ok := c.m[id]
		if ok && (cur.seq > seq0 || p.Status == tasktypes.Status_UNKNOWN) {
			continue
		}
		st := procState{status: p.Status, pid: p.Pid, exitCode: p.ExitStatus}
		if p.ExitedAt != nil {
			st.exitedAt = p.ExitedAt.AsTime()
		}
		c.setLocked(id, st)
	}
	for id, cur := range c.m {
		if !listed[id] && cur.seq <= seq0 {
			delete(c.m, id)
		}
	}
}

// snapshot returns a copy of the states, and whether the cache is
// current (the exit events are followed).
func (c *procCache) snapshot() (map[string]procState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]procState, len(c.m))
	for id, p := range c.m {
		out[id] = p
	}
	return out, c.live
}

func (c *procCache) setLive(live bool) {
	c.mu.Lock()
	c.live = live
	c.mu.Unlock()
}

// procContainer is the container a listed process belongs to.
func procContainer(p *tasktypes.Process) string {
	if p.ContainerID != "" {
		return p.ContainerID
	}
	return p.ID // containerd 1.6 names the task by its container's ID only
}

// listTasks lists the namespace's containers, and its tasks through
// containerd (a State call to each task's shim), updates the caches with
// them, and re-attaches the output of any running task not yet read.
func (e *Executor) listTasks(ctx context.Context) ([]*tasktypes.Process, error) {
	if _, err := e.listContainers(ctx); err != nil {
		return nil, err
	}
	seq0 := e.procs.begin()
	resp, err := e.client.TaskService().List(e.ctx(ctx), &tasksapi.ListTasksRequest{})
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	e.procs.replace(resp.Tasks, seq0)
	e.adoptLogs(resp.Tasks)
	return resp.Tasks, nil
}

// refreshProcs lists the tasks every procRefresh until ctx ends: what
// the events might have missed is found then.
func (e *Executor) refreshProcs(ctx context.Context) {
	for {
		t := e.cfg.Clock.NewTimer(procRefresh)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		if _, err := e.listTasks(ctx); err != nil && ctx.Err() == nil {
			e.log.Debug("refresh task states", logKeyErr, err)
		}
	}
}

// ctrCache holds the labels of the namespace's gitorc containers, by ID,
// kept from the executor's own creates and deletes: a container list
// carries every container's whole OCI spec, and costs containerd and the
// executor more than anything else an observation does. It is current
// once a full list seeded it and until a create's outcome is unknown; it
// is listed again with the tasks (listTasks's callers: every procRefresh
// and each new event subscription).
type ctrCache struct {
	mu      sync.Mutex
	m       map[string]map[string]string
	seq     uint64
	changed map[string]uint64 // ID → seq of its last own change
	current bool
}

func (c *ctrCache) add(id string, labels map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.init()
	c.seq++
	c.m[id], c.changed[id] = labels, c.seq
}

func (c *ctrCache) remove(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.init()
	c.seq++
	delete(c.m, id)
	c.changed[id] = c.seq
}

func (c *ctrCache) init() {
	if c.m == nil {
		c.m = map[string]map[string]string{}
	}
	if c.changed == nil {
		c.changed = map[string]uint64{}
	}
}

// invalidate makes the next observation list the containers.
func (c *ctrCache) invalidate() {
	c.mu.Lock()
	c.current = false
	c.mu.Unlock()
}

func (c *ctrCache) begin() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seq
}

// replace takes a full list begun at seq0; own changes made since win.
func (c *ctrCache) replace(list map[string]map[string]string, seq0 uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.init()
	next := make(map[string]map[string]string, len(list))
	for id, labels := range list {
		if c.changed[id] <= seq0 {
			next[id] = labels
		}
	}
	for id, at := range c.changed {
		if at > seq0 {
			if labels, ok := c.m[id]; ok {
				next[id] = labels
			}
		} else {
			delete(c.changed, id)
		}
	}
	c.m, c.current = next, true
}

// snapshot returns the containers' labels when the cache is current.
func (c *ctrCache) snapshot() (map[string]map[string]string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.current {
		return nil, false
	}
	out := make(map[string]map[string]string, len(c.m))
	for id, l := range c.m {
		out[id] = l
	}
	return out, true
}

// listContainers lists the namespace's gitorc containers through
// containerd and updates the cache.
func (e *Executor) listContainers(ctx context.Context) (map[string]map[string]string, error) {
	seq0 := e.ctrs.begin()
	cs, err := e.client.ContainerService().List(e.ctx(ctx), fmt.Sprintf("labels.%q", LabelTaskID))
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := make(map[string]map[string]string, len(cs))
	for _, c := range cs {
		out[c.ID] = c.Labels
	}
	e.ctrs.replace(out, seq0)
	return out, nil
}

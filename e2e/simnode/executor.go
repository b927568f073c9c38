package simnode

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/gitorc/gitorc/cluster/agent"
	"github.com/gitorc/gitorc/cluster/api"
)

// executor is an agent.Executor that keeps tasks in memory: Prepare
// creates a "container", Start runs it, Remove forgets it. Nothing runs.
type executor struct {
	mu    sync.Mutex
	tasks map[string]*agent.Observed
	now   func() time.Time
}

var _ agent.Executor = (*executor)(nil)

func newExecutor() *executor {
	return &executor{tasks: map[string]*agent.Observed{}, now: time.Now}
}

func (e *executor) Prepare(_ context.Context, t *api.Task, _ agent.Files) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.tasks[t.ID]; !ok {
		e.tasks[t.ID] = &agent.Observed{TaskID: t.ID, ContainerID: "sim-" + t.ID, State: agent.ContainerCreated}
	}
	return nil
}

func (e *executor) Start(_ context.Context, taskID string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	o, ok := e.tasks[taskID]
	if !ok {
		return errNoTask
	}
	if o.State == agent.ContainerCreated {
		o.State = agent.ContainerRunning
	}
	return nil
}

func (e *executor) Remove(_ context.Context, taskID string) (agent.Exit, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	o, ok := e.tasks[taskID]
	if !ok {
		return agent.Exit{}, nil
	}
	delete(e.tasks, taskID)
	return agent.Exit{Stopped: o.State == agent.ContainerRunning}, nil
}

func (e *executor) Observe(context.Context) ([]agent.Observed, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]agent.Observed, 0, len(e.tasks))
	for _, o := range e.tasks {
		out = append(out, *o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TaskID < out[j].TaskID })
	return out, nil
}

// running counts the tasks whose process "runs".
func (e *executor) running() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, o := range e.tasks {
		if o.State == agent.ContainerRunning {
			n++
		}
	}
	return n
}

package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// Log keys.
const (
	logKeyTask   = "task"
	logKeyState  = "state"
	logKeyAction = "action"
	logKeyErr    = "err"
)

// Reporter receives every status change of an assigned task, in order per
// task. It should not block for long: the agent calls it from its loop.
type Reporter interface {
	ReportTaskStatus(ctx context.Context, taskID string, st api.TaskStatus) error
}

// Config configures an Agent.
type Config struct {
	Executor Executor
	// Reporter may be nil; Status then is the only way to read statuses.
	Reporter Reporter
	Logger   *slog.Logger
	// Clock defaults to the wall clock.
	Clock Clock
	// Interval is how often containers are observed when nothing else
	// happens; default 1s. An executor that is a ChangeNotifier has them
	// observed as soon as it signals a change too.
	Interval time.Duration
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.Executor == nil {
		return errors.New("agent config: executor is required")
	}
	if c.Interval < 0 {
		return errors.New("agent config: interval must not be negative")
	}
	return nil
}

// Assignment is one task assigned to this node, with the secret and config
// payloads its spec refers to.
type Assignment struct {
	Task  *api.Task
	Files Files
}

type entry struct {
	task   api.Task
	files  Files
	status api.TaskStatus
	// retryAt holds back an action that failed without changing state.
	retryAt time.Time
}

// Agent drives the tasks assigned to this node. Create it with New, feed it
// with Assign and run it with Run.
type Agent struct {
	cfg  Config
	log  *slog.Logger
	wake chan struct{}

	mu       sync.Mutex
	tasks    map[string]*entry
	assigned bool                // a complete assignment set arrived
	forgot   map[string]struct{} // unassigned tasks whose logs are to remove
}

// New returns an agent for cfg.
func New(cfg Config) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = RealClock{}
	}
	if cfg.Interval == 0 {
		cfg.Interval = time.Second
	}
	return &Agent{cfg: cfg, log: cfg.Logger, wake: make(chan struct{}, 1),
		tasks: map[string]*entry{}, forgot: map[string]struct{}{}}, nil
}

// Assign replaces the set of tasks assigned to this node. A task's status
// is the most advanced of the one given and the one the agent holds, so
// statuses never move backwards and an agent that restarts continues from
// what it last reported. Containers of tasks absent from the set are
// removed once the first set arrived.
//
// A set that changes nothing the agent acts on (the same tasks with the
// same desired states, none of their statuses ahead of the agent's: the
// leader sends the set again after each status it records) does not
// wake the agent.
func (a *Agent) Assign(as []Assignment) {
	a.mu.Lock()
	next := make(map[string]*entry, len(as))
	changed := !a.assigned || len(as) != len(a.tasks)
	for _, as := range as {
		t := *as.Task
		e := &entry{task: t, files: as.Files, status: t.Status}
		old, ok := a.tasks[t.ID]
		if ok && old.status.State > e.status.State {
			e.status = old.status
		}
		if !ok || old.task.DesiredState != t.DesiredState || old.status != e.status {
			changed = true
		}
		next[t.ID] = e
	}
	for id := range a.tasks {
		if _, ok := next[id]; !ok {
			a.forgot[id] = struct{}{}
			changed = true
		}
	}
	a.tasks, a.assigned = next, true
	a.mu.Unlock()
	if changed {
		a.kick()
	}
}

// Update changes the set of tasks assigned to this node: the tasks given
// are added or replace those of the same ID, with Assign's rule for their
// statuses, and the tasks removed leave the set (their containers are
// removed). It is Assign for a change, not a whole set: the session
// applies the leader's incremental sets with it. Before the first Assign,
// a removed task's container is not reaped yet (no complete set arrived).
func (a *Agent) Update(changed []Assignment, removed []string) {
	a.mu.Lock()
	for _, as := range changed {
		t := *as.Task
		e := &entry{task: t, files: as.Files, status: t.Status}
		if old, ok := a.tasks[t.ID]; ok {
			if old.status.State > e.status.State {
				e.status = old.status
			}
			e.retryAt = old.retryAt
		}
		a.tasks[t.ID] = e
		delete(a.forgot, t.ID)
	}
	for _, id := range removed {
		if _, ok := a.tasks[id]; ok {
			delete(a.tasks, id)
			a.forgot[id] = struct{}{}
		}
	}
	a.mu.Unlock()
	a.kick()
}

// Status returns the current status of an assigned task.
func (a *Agent) Status(taskID string) (api.TaskStatus, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.tasks[taskID]
	if !ok {
		return api.TaskStatus{}, false
	}
	return e.status, true
}

func (a *Agent) kick() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

type result struct {
	id   string
	tr   Transition
	exit Exit
	err  error
	reap bool
}

type report struct {
	id string
	st api.TaskStatus
}

// Run drives the tasks until ctx ends. Work in flight is abandoned (not
// undone) when ctx ends, and Run waits for it to return.
func (a *Agent) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	results := make(chan result)
	inflight := map[string]bool{}
	var lastErr string
	var changes <-chan struct{} // nil, never ready, without a notifier
	if n, ok := a.cfg.Executor.(ChangeNotifier); ok {
		changes = n.Changes()
	}
	defer wg.Wait()
	for {
		reports, err := a.pass(ctx, &wg, results, inflight)
		if err != nil && err.Error() != lastErr && ctx.Err() == nil {
			a.log.Warn("observe containers", logKeyErr, err)
		}
		lastErr = ""
		if err != nil {
			lastErr = err.Error()
		}
		a.report(ctx, reports)
		if len(reports) > 0 {
			continue // one more step right away
		}
		timer := a.cfg.Clock.NewTimer(a.cfg.Interval)
		select {
		case <-ctx.Done():
			timer.Stop()
			// Drain workers so that wg.Wait returns.
			go func() {
				for range results {
				}
			}()
			wg.Wait()
			close(results)
			return nil
		case r := <-results:
			timer.Stop()
			delete(inflight, r.id)
			rs := a.finish(r)
			// Every other action that has finished too is recorded
			// before the next pass: one observation for all of them, not
			// one each (a deploy of many tasks finishes many at once).
			for more := true; more; {
				select {
				case r := <-results:
					delete(inflight, r.id)
					rs = append(rs, a.finish(r)...)
				default:
					more = false
				}
			}
			a.report(ctx, rs)
		case <-a.wake:
			timer.Stop()
		case <-changes:
			timer.Stop()
		case <-timer.C():
		}
	}
}

// pass observes the containers and starts one step for every task that
// has one to make and no action in flight. Steps without an action are
// applied at once and returned as reports.
func (a *Agent) pass(ctx context.Context, wg *sync.WaitGroup, results chan<- result, inflight map[string]bool) ([]report, error) {
	obs, err := a.cfg.Executor.Observe(ctx)
	if err != nil {
		return nil, fmt.Errorf("observe: %w", err)
	}
	byID := make(map[string]*Observed, len(obs))
	for i := range obs {
		byID[obs[i].TaskID] = &obs[i]
	}
	now := a.cfg.Clock.Now()

	a.mu.Lock()
	defer a.mu.Unlock()
	var reports []report
	ids := make([]string, 0, len(a.tasks))
	for id := range a.tasks {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		e := a.tasks[id]
		if inflight[id] || now.Before(e.retryAt) {
			continue
		}
		o := byID[id]
		if o != nil && !e.status.State.Terminal() && e.status.ContainerID != o.ContainerID && e.status.State >= api.TaskStarting {
			e.status.ContainerID = o.ContainerID
		}
		tr, ok := Step(e.status, e.task.DesiredState, o)
		if !ok {
			continue
		}
		if tr.Action == ActNone {
			e.status = Apply(e.status, tr, Exit{}, nil, now)
			reports = append(reports, report{id, e.status})
			continue
		}
		inflight[id] = true
		t, files := e.task, e.files
		a.log.Debug("task step", logKeyTask, id, logKeyState, e.status.State, logKeyAction, tr.Action)
		wg.Add(1)
		go func() {
			defer wg.Done()
			exit, err := a.do(ctx, &t, files, tr.Action)
			results <- result{id: id, tr: tr, exit: exit, err: err}
		}()
	}
	if !a.assigned {
		return reports, nil
	}
	for id, o := range byID {
		if _, ok := a.tasks[id]; ok || inflight[id] {
			continue
		}
		inflight[id] = true
		delete(a.forgot, id)
		a.log.Info("reap container of unassigned task", logKeyTask, id, "container", o.ContainerID)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := a.cfg.Executor.Remove(ctx, id)
			if err == nil {
				err = a.removeLog(id)
			}
			results <- result{id: id, err: err, reap: true}
		}()
	}
	for id := range a.forgot {
		if _, ok := a.tasks[id]; ok {
			delete(a.forgot, id)
			continue
		}
		if _, ok := byID[id]; ok || inflight[id] {
			continue
		}
		delete(a.forgot, id)
		if err := a.removeLog(id); err != nil {
			a.log.Warn("remove task log", logKeyTask, id, logKeyErr, err)
		}
	}
	return reports, nil
}

func (a *Agent) removeLog(id string) error {
	if lr, ok := a.cfg.Executor.(LogRemover); ok {
		return lr.RemoveLog(id)
	}
	return nil
}

func (a *Agent) do(ctx context.Context, t *api.Task, files Files, act Action) (Exit, error) {
	switch act {
	case ActPrepare:
		return Exit{}, a.cfg.Executor.Prepare(WithProgress(ctx, a.progress(ctx, t.ID)), t, files)
	case ActStart:
		return Exit{}, a.cfg.Executor.Start(ctx, t.ID)
	case ActRemove:
		return a.cfg.Executor.Remove(ctx, t.ID)
	}
	return Exit{}, nil
}

// finish records the outcome of an action.
func (a *Agent) finish(r result) []report {
	if r.reap {
		if r.err != nil && !errors.Is(r.err, context.Canceled) {
			a.log.Warn("reap", logKeyTask, r.id, logKeyErr, r.err)
		}
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.tasks[r.id]
	if !ok {
		return nil // unassigned meanwhile; the reaper takes over
	}
	if r.err != nil && r.tr.FailTo == 0 {
		a.log.Warn("task action; retrying", logKeyTask, r.id, logKeyAction, r.tr.Action, logKeyErr, r.err)
		e.retryAt = a.cfg.Clock.Now().Add(a.cfg.Interval)
		if r.tr.Action != ActRemove || e.status.State.Terminal() || errors.Is(r.err, context.Canceled) {
			return nil
		}
		// A stop that fails (a shim that does not acknowledge it) is
		// retried, and the managers hear of it on the task: its state
		// stays, its message says what holds it up.
		msg := "stopping: " + r.err.Error()
		if e.status.Message == msg {
			return nil
		}
		e.status.Message, e.status.Timestamp = msg, a.cfg.Clock.Now()
		return []report{{r.id, e.status}}
	}
	prev := e.status
	e.status = Apply(e.status, r.tr, r.exit, r.err, a.cfg.Clock.Now())
	if e.status == prev {
		return nil
	}
	return []report{{r.id, e.status}}
}

func (a *Agent) report(ctx context.Context, rs []report) {
	for _, r := range rs {
		a.log.Info("task status", logKeyTask, r.id, logKeyState, r.st.State, "message", r.st.Message)
		if a.cfg.Reporter == nil {
			continue
		}
		if err := a.cfg.Reporter.ReportTaskStatus(ctx, r.id, r.st); err != nil && ctx.Err() == nil {
			a.log.Warn("report task status", logKeyTask, r.id, logKeyErr, err)
		}
	}
}

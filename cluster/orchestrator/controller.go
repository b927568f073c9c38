package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/scheduler"
	"github.com/gitorc/gitorc/cluster/store"
)

// Config is the leader-side orchestrator's.
type Config struct {
	Store  *store.Store
	Logger *slog.Logger
	// Now is the clock; time.Now by default.
	Now func() time.Time
	// DrainDelay is how long a task stays out of its service's
	// load-balancing set before its node is told to stop it, whatever
	// stops it (update, scale-down, node drain or removal, service
	// removal): DefaultDrainDelay when zero; negative stops tasks at once,
	// in the set or not.
	DrainDelay time.Duration
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.Store == nil {
		return errors.New("orchestrator: a store is required")
	}
	return nil
}

// Controller runs the orchestrator on the leader: whenever services, tasks
// or nodes change, it decides every service's tasks and commits the
// decisions in one transaction.
type Controller struct {
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	drain time.Duration // resolved Config.DrainDelay: 0 is no drain
}

// New returns a controller; Run starts it.
func New(cfg Config) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Controller{cfg: cfg, log: cfg.Logger, now: cfg.Now, drain: cfg.DrainDelay}
	switch {
	case c.drain == 0:
		c.drain = DefaultDrainDelay
	case c.drain < 0:
		c.drain = 0
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// Run orchestrates until ctx ends (the node lost leadership, or stops).
func (c *Controller) Run(ctx context.Context) error {
	return c.cfg.Store.RunLoop(ctx, store.LoopConfig{
		Kinds:   []store.Kind{store.KindService, store.KindTask, store.KindNode},
		Now:     c.now,
		OnError: func(err error) { c.log.Warn("orchestrator pass failed", "err", err) },
	}, c.Pass)
}

// Pass decides every service once and commits the result. A version
// conflict (another controller wrote a task meanwhile) retries with a
// fresh view.
func (c *Controller) Pass(ctx context.Context) (time.Time, error) {
	var wake time.Time
	err := store.RetryConflicts(3, func() (err error) {
		wake, err = c.pass(ctx)
		return err
	})
	return wake, err
}

func (c *Controller) pass(ctx context.Context) (time.Time, error) {
	now := c.now()
	var wake time.Time
	var commit []Decision
	var updates []serviceUpdate
	var stale []staleVersion
	err := c.cfg.Store.View(func(tx store.ReadTx) error {
		services, err := store.Find[api.Service](tx, store.All())
		if err != nil {
			return err
		}
		nodeList, err := store.Find[api.Node](tx, store.All())
		if err != nil {
			return err
		}
		nodes := Nodes{}
		for _, n := range nodeList {
			nodes[n.ID] = *n
		}
		tasks := make(map[string][]api.Task, len(services))
		for _, svc := range services {
			ptrs, err := store.Find[api.Task](tx, store.ByService(svc.ID))
			if err != nil {
				return err
			}
			ts := make([]api.Task, len(ptrs))
			for i, t := range ptrs {
				ts[i] = *t
			}
			tasks[svc.ID] = ts
		}
		updates, commit, wake = decideAll(services, tasks, nodes, now, c.drain)
		all, err := store.Find[api.Task](tx, store.All())
		if err != nil {
			return err
		}
		od := decideOrphans(services, all, now, c.drain)
		if stale, err = staleVersions(tx, services, all); err != nil {
			return err
		}
		wake = earliest(wake, od.Wake)
		if !od.Empty() {
			commit = append(commit, od)
		}
		return nil
	})
	if err != nil || len(commit)+len(updates)+len(stale) == 0 {
		return wake, err
	}
	_, err = c.cfg.Store.Update(ctx, func(tx store.Tx) error {
		edits := newTaskEdits(tx)
		for _, u := range updates {
			if err := applyUpdate(tx, edits, u, now); err != nil {
				return err
			}
		}
		for _, d := range commit {
			if err := apply(tx, edits, d, now); err != nil {
				return err
			}
		}
		if err := deleteVersions(tx, stale); err != nil {
			return err
		}
		return edits.flush()
	})
	if err != nil {
		return wake, fmt.Errorf("commit orchestrator decisions: %w", err)
	}
	return wake, nil
}

// decideAll decides every service of a snapshot (tasks by service ID):
// the updater first, then, unless the updater moved tasks or holds the
// service, the orchestrator. It returns what to commit and when to look
// again. drain is how long a task leaves the load-balancing set before it
// is stopped (retire).
//
// Both decide on every pass, even when only the updater's decision is
// committed: a draining task rejoins the set only when neither stops it
// (the updater does not know a scale-down, nor the orchestrator an
// update).
func decideAll(services []*api.Service, tasks map[string][]api.Task, nodes Nodes, now time.Time, drain time.Duration) (updates []serviceUpdate, commit []Decision, wake time.Time) {
	byName := make(map[string]Dependency, len(services))
	for _, svc := range services {
		byName[svc.Spec.Name] = Dependency{Service: svc, Tasks: tasks[svc.ID]}
	}
	settled := map[string]bool{} // dependencies' tasks, judged once per pass
	for _, svc := range services {
		tasks := slices.Clone(tasks[svc.ID])
		gate := func() []string { return waitingFor(svc, byName, nodes, now, settled) }
		ud := DecideUpdate(svc, tasks, nodes, gate, now, drain)
		adopted(tasks, ud.Adopt, svc)
		d := decide(svc, tasks, nodes, now, drain)
		ud.Undrain, d.Undrain = both(ud.Undrain, d.Undrain), nil
		if !ud.Empty() {
			updates = append(updates, serviceUpdate{svc.ID, svc.Spec.Task, svc.Version, ud})
		}
		wake = earliest(wake, ud.Wake)
		if ud.Hold || !ud.Quiet() {
			continue // waiting, or the updater moved tasks: the rest waits for the next pass
		}
		wake = earliest(wake, d.Wake)
		if !d.Empty() {
			commit = append(commit, d)
		}
	}
	return updates, commit, wake
}

// both returns the IDs that are in a and in b, in a's order.
func both(a, b []string) []string {
	if len(a) == 0 || len(b) == 0 {
		return nil
	}
	var out []string
	for _, id := range a {
		if slices.Contains(b, id) {
			out = append(out, id)
		}
	}
	return out
}

// adopted gives the adopted tasks the service's spec in memory, as the
// commit will: the orchestrator then sees them as up to date.
func adopted(tasks []api.Task, ids []string, svc *api.Service) {
	if len(ids) == 0 {
		return
	}
	adopt := map[string]bool{}
	for _, id := range ids {
		adopt[id] = true
	}
	for i := range tasks {
		if adopt[tasks[i].ID] {
			tasks[i].Spec, tasks[i].SpecVersion = svc.Spec.Task, svc.Version
		}
	}
}

// serviceUpdate is an updater decision with the spec it was made for.
type serviceUpdate struct {
	serviceID   string
	spec        api.TaskSpec // what adopted tasks take
	specVersion uint64
	UpdateDecision
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// taskEdits collects the changes a pass makes to existing tasks, so that
// each is read and written once per transaction (a transaction's reads do
// not see its own writes: two updates of one task would lose the first).
type taskEdits struct {
	tx      store.Tx
	tasks   map[string]*api.Task
	changed map[string]bool
	order   []string
}

func newTaskEdits(tx store.Tx) *taskEdits {
	return &taskEdits{tx: tx, tasks: map[string]*api.Task{}, changed: map[string]bool{}}
}

// edit applies fn to the task's pending version; fn reports whether it
// changed anything.
func (e *taskEdits) edit(id string, fn func(*api.Task) bool) error {
	t, ok := e.tasks[id]
	if !ok {
		var err error
		if t, err = store.Get[api.Task](e.tx, id); err != nil {
			return err
		}
		e.tasks[id] = t
		e.order = append(e.order, id)
	}
	if fn(t) {
		e.changed[id] = true
	}
	return nil
}

// flush writes every changed task.
func (e *taskEdits) flush() error {
	for _, id := range e.order {
		if !e.changed[id] {
			continue
		}
		if err := e.tx.Update(e.tasks[id]); err != nil {
			return err
		}
	}
	return nil
}

// applyUpdate writes an updater decision: the service's update status
// (and, for a rollback, its swapped specs), ready stamps, adopted specs,
// and its Decision.
func applyUpdate(tx store.Tx, edits *taskEdits, u serviceUpdate, now time.Time) error {
	if u.Status != nil || u.ClearStatus || u.Rollback {
		svc, err := store.Get[api.Service](tx, u.serviceID)
		if err != nil {
			return err
		}
		if u.Rollback && svc.PreviousSpec != nil {
			failed := svc.Spec
			svc.Spec, svc.PreviousSpec = *svc.PreviousSpec, &failed
		}
		if u.ClearStatus {
			svc.Update = nil
		}
		if u.Status != nil {
			st := *u.Status
			svc.Update = &st
		}
		if err := tx.Update(svc); err != nil {
			return err
		}
	}
	for _, id := range u.Ready {
		if err := edits.edit(id, func(t *api.Task) bool { t.ReadyAt = now; return true }); err != nil {
			return err
		}
	}
	for _, id := range u.Adopt {
		if err := edits.edit(id, func(t *api.Task) bool { t.Spec, t.SpecVersion = u.spec, u.specVersion; return true }); err != nil {
			return err
		}
	}
	return apply(tx, edits, u.Decision, now)
}

// decide picks the decision function for the service's mode.
func decide(svc *api.Service, tasks []api.Task, nodes Nodes, now time.Time, drain time.Duration) Decision {
	switch svc.Spec.Mode {
	case api.ModeGlobal, api.ModeGlobalJob:
		return DecideGlobal(svc, tasks, nodes, func(n api.Node) bool { return eligible(svc, &n) }, now, drain)
	case api.ModeReplicatedJob:
		return DecideReplicatedJob(svc, tasks, nodes, now, drain)
	default:
		return DecideReplicated(svc, tasks, nodes, now, drain)
	}
}

// eligible applies a service's constraints and platforms, and the node's
// policy (what its containers may have: binds, capabilities, …), to a node.
func eligible(svc *api.Service, n *api.Node) bool {
	for _, c := range svc.Spec.Task.Placement.Constraints {
		if !scheduler.MatchConstraint(c, n) {
			return false
		}
	}
	for _, need := range api.Needs(&svc.Spec.Task.Container) {
		if !n.Description.Policy.Allows(need) {
			return false
		}
	}
	ps := svc.Spec.Task.Placement.Platforms
	if len(ps) == 0 {
		return true
	}
	for _, p := range ps {
		if (p.OS == "" || p.OS == n.Description.Platform.OS) &&
			(p.Architecture == "" || p.Architecture == n.Description.Platform.Architecture) {
			return true
		}
	}
	return false
}

// decideOrphans stops the live tasks of services that no longer exist (a
// stack removed from Git, a service deleted from it: none may keep
// running anywhere), those in the load-balancing set after draining for
// drain (retire), and deletes them once they ended. A draining orphan
// never rejoins the set: a service that comes back is a new one.
func decideOrphans(services []*api.Service, tasks []*api.Task, now time.Time, drain time.Duration) Decision {
	known := map[string]bool{}
	for _, s := range services {
		known[s.ID] = true
	}
	var d Decision
	for _, t := range tasks {
		if known[t.ServiceID] {
			continue
		}
		if live(t) {
			d.retire(t, "service removed", now, drain)
		} else if t.Status.State.Terminal() {
			d.Delete = append(d.Delete, t.ID)
		}
	}
	sortDecision(&d)
	return d
}

// apply writes one decision into a transaction: drains (DrainingSince),
// undrains, creations, stops, replaced tasks and deletions.
func apply(tx store.Tx, edits *taskEdits, d Decision, now time.Time) error {
	for i := range d.Create {
		t := d.Create[i]
		if err := tx.Create(&t); err != nil {
			return err
		}
	}
	for _, id := range d.Drain {
		err := edits.edit(id, func(t *api.Task) bool {
			if !t.DrainingSince.IsZero() || t.DesiredState != api.TaskRunning {
				return false
			}
			t.DrainingSince = now
			return true
		})
		if err != nil {
			return err
		}
	}
	for _, id := range d.Undrain {
		err := edits.edit(id, func(t *api.Task) bool {
			if t.DrainingSince.IsZero() {
				return false
			}
			t.DrainingSince = time.Time{}
			return true
		})
		if err != nil {
			return err
		}
	}
	for _, s := range d.Shutdown {
		err := edits.edit(s.TaskID, func(t *api.Task) bool {
			if t.DesiredState == api.TaskShutdown {
				return false
			}
			t.DesiredState = api.TaskShutdown
			if !t.Status.State.Terminal() && t.Status.State < api.TaskAssigned {
				// Never placed: nothing runs, it ends here.
				t.Status = api.TaskStatus{State: api.TaskShutdown, Timestamp: now, Message: s.Reason}
			} else {
				t.Status.Message = "stopping: " + s.Reason
			}
			return true
		})
		if err != nil {
			return err
		}
	}
	for _, id := range d.Replace {
		err := edits.edit(id, func(t *api.Task) bool {
			if t.Replaced || !t.Status.State.Terminal() || t.DesiredState == api.TaskShutdown {
				return false
			}
			t.DesiredState, t.Replaced = api.TaskShutdown, true
			return true
		})
		if err != nil {
			return err
		}
	}
	for _, id := range d.Delete {
		if err := tx.Delete(store.KindTask, id, 0); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
}

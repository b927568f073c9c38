package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	cfg Config
	log *slog.Logger
	now func() time.Time
}

// New returns a controller; Run starts it.
func New(cfg Config) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Controller{cfg: cfg, log: cfg.Logger, now: cfg.Now}
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
		for _, svc := range services {
			ptrs, err := store.Find[api.Task](tx, store.ByService(svc.ID))
			if err != nil {
				return err
			}
			tasks := make([]api.Task, len(ptrs))
			for i, t := range ptrs {
				tasks[i] = *t
			}
			ud := DecideUpdate(svc, tasks, now)
			if !ud.Empty() {
				updates = append(updates, serviceUpdate{svc.ID, ud})
			}
			wake = earliest(wake, ud.Wake)
			if !ud.Quiet() {
				continue // the updater moved tasks: the rest waits for the next pass
			}
			d := decide(svc, tasks, nodes, now)
			wake = earliest(wake, d.Wake)
			if !d.Empty() {
				commit = append(commit, d)
			}
		}
		return orphans(tx, services, &commit)
	})
	if err != nil || len(commit)+len(updates) == 0 {
		return wake, err
	}
	_, err = c.cfg.Store.Update(ctx, func(tx store.Tx) error {
		for _, u := range updates {
			if err := applyUpdate(tx, u, now); err != nil {
				return err
			}
		}
		for _, d := range commit {
			if err := apply(tx, d, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return wake, fmt.Errorf("commit orchestrator decisions: %w", err)
	}
	return wake, nil
}

type serviceUpdate struct {
	serviceID string
	UpdateDecision
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// applyUpdate writes an updater decision: the service's update status
// (and, for a rollback, its swapped specs), ready stamps, and the tasks it
// creates and stops.
func applyUpdate(tx store.Tx, u serviceUpdate, now time.Time) error {
	if u.Status != nil || u.Rollback {
		svc, err := store.Get[api.Service](tx, u.serviceID)
		if err != nil {
			return err
		}
		if u.Rollback && svc.PreviousSpec != nil {
			failed := svc.Spec
			svc.Spec, svc.PreviousSpec = *svc.PreviousSpec, &failed
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
		t, err := store.Get[api.Task](tx, id)
		if err != nil {
			return err
		}
		t.ReadyAt = now
		if err := tx.Update(t); err != nil {
			return err
		}
	}
	return apply(tx, u.Decision, now)
}

// decide picks the decision function for the service's mode.
func decide(svc *api.Service, tasks []api.Task, nodes Nodes, now time.Time) Decision {
	switch svc.Spec.Mode {
	case api.ModeGlobal, api.ModeGlobalJob:
		return DecideGlobal(svc, tasks, nodes, func(n api.Node) bool { return eligible(svc, &n) }, now)
	case api.ModeReplicatedJob:
		return DecideReplicatedJob(svc, tasks, nodes, now)
	default:
		return DecideReplicated(svc, tasks, nodes, now)
	}
}

// eligible applies a service's constraints and platforms to a node.
func eligible(svc *api.Service, n *api.Node) bool {
	for _, c := range svc.Spec.Task.Placement.Constraints {
		if !scheduler.MatchConstraint(c, n) {
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

// orphans stops the live tasks of services that no longer exist (a stack
// removed from Git must not keep running anywhere).
func orphans(tx store.ReadTx, services []*api.Service, commit *[]Decision) error {
	known := map[string]bool{}
	for _, s := range services {
		known[s.ID] = true
	}
	tasks, err := store.Find[api.Task](tx, store.All())
	if err != nil {
		return err
	}
	var d Decision
	for _, t := range tasks {
		if known[t.ServiceID] {
			continue
		}
		if live(t) {
			d.Shutdown = append(d.Shutdown, Stop{TaskID: t.ID, Reason: "service removed"})
		} else if t.Status.State.Terminal() {
			d.Delete = append(d.Delete, t.ID)
		}
	}
	if !d.Empty() {
		*commit = append(*commit, d)
	}
	return nil
}

// apply writes one decision into a transaction.
func apply(tx store.Tx, d Decision, now time.Time) error {
	for i := range d.Create {
		t := d.Create[i]
		if err := tx.Create(&t); err != nil {
			return err
		}
	}
	for _, s := range d.Shutdown {
		t, err := store.Get[api.Task](tx, s.TaskID)
		if err != nil {
			return err
		}
		if t.DesiredState == api.TaskShutdown {
			continue
		}
		t.DesiredState = api.TaskShutdown
		if !t.Status.State.Terminal() && t.Status.State < api.TaskAssigned {
			// Never placed: nothing runs, it ends here.
			t.Status = api.TaskStatus{State: api.TaskShutdown, Timestamp: now, Message: s.Reason}
		} else {
			t.Status.Message = "stopping: " + s.Reason
		}
		if err := tx.Update(t); err != nil {
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

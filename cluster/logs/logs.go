package logs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/store"
)

// Query is what `gitorc logs` asks for.
type Query struct {
	// Service (name or ID) or Task (ID or unique prefix): one of them.
	Service string         `json:"service,omitempty"`
	Task    string         `json:"task,omitempty"`
	Options api.LogOptions `json:"options"`
}

// Source reads one task's log from its node (the dispatcher's TaskLogs).
// It returns ErrNoSession (found with errors.Is) when the node holds no
// session here.
type Source interface {
	TaskLogs(ctx context.Context, nodeID, taskID string, opts api.LogOptions, fn func(recs []api.LogRecord, live bool) error) error
}

// Store is the part of the store a query reads.
type Store interface {
	View(fn func(store.ReadTx) error) error
	ViewAndWatch(fn func(store.ReadTx) error, kinds ...store.Kind) (*store.Watcher, error)
}

// Config configures a Service.
type Config struct {
	Store  Store
	Source Source
	// NoSession is the Source's error for a node without a session.
	NoSession error
	// Leader reports whether this manager leads (holds the sessions).
	Leader func() bool
	// Forward, on a follower, runs the query on the leader.
	Forward func(ctx context.Context, q Query, emit func(api.LogLine) error) error
	Now     func() time.Time
	Logger  *slog.Logger
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.Store == nil || c.Source == nil || c.Leader == nil {
		return errors.New("logs config: store, source and leader are required")
	}
	return nil
}

// Service answers queries.
type Service struct{ cfg Config }

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg}, nil
}

// Errors of a query.
var (
	ErrNotFound = errors.New("no such service or task")
	ErrNoLeader = errors.New("no leader to read the logs through")
)

// Stream answers q: emit gets every line in time order (see the package
// doc) until every task's log was read, or, with Follow, until ctx ends.
func (s *Service) Stream(ctx context.Context, q Query, emit func(api.LogLine) error) error {
	if (q.Service == "") == (q.Task == "") {
		return fmt.Errorf("%w: give a service or a task", store.ErrInvalid)
	}
	if !s.cfg.Leader() {
		if s.cfg.Forward == nil {
			return ErrNoLeader
		}
		return s.cfg.Forward(ctx, q, emit)
	}
	return s.Local(ctx, q, emit)
}

// task is a task being read, with what its lines are labelled with.
type task struct {
	id       int
	t        *api.Task
	nodeName string
	nodeDown bool
}

func (t *task) line(r api.LogRecord) api.LogLine {
	return api.LogLine{Time: r.Time, Task: t.t.ID, Service: t.t.ServiceName, Slot: t.t.Slot, Node: t.nodeName, Stream: r.Stream, Line: r.Line}
}

// event is what a task's reader tells the merge.
type event struct {
	id    int
	recs  []api.LogRecord
	live  bool
	ended bool
	err   error
}

// Local answers q from this manager's sessions.
func (s *Service) Local(ctx context.Context, q Query, emit func(api.LogLine) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		svcID string
		tasks []*task
		w     *store.Watcher
		nodes = map[string]*api.Node{}
	)
	read := func(tx store.ReadTx) error {
		ns, err := store.Find[api.Node](tx, store.All())
		if err != nil {
			return err
		}
		for _, n := range ns {
			nodes[n.ID] = n
		}
		var ts []*api.Task
		if q.Task != "" {
			t, err := findTask(tx, q.Task)
			if err != nil {
				return err
			}
			ts = []*api.Task{t}
		} else {
			svc, err := findService(tx, q.Service)
			if err != nil {
				return err
			}
			svcID = svc.ID
			if ts, err = store.Find[api.Task](tx, store.ByService(svc.ID)); err != nil {
				return err
			}
		}
		for _, t := range ts {
			if t.NodeID != "" {
				tasks = append(tasks, s.newTask(len(tasks), t, nodes))
			}
		}
		return nil
	}
	var err error
	if q.Options.Follow && q.Service != "" {
		w, err = s.cfg.Store.ViewAndWatch(read, store.KindTask, store.KindNode)
		defer func() {
			if w != nil {
				w.Close() // the last one: a watch that ended is opened again
			}
		}()
	} else {
		err = s.cfg.Store.View(read)
	}
	if err != nil {
		return err
	}
	sortTasks(tasks)

	events := make(chan event)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	taken := map[int]chan struct{}{} // a task's reader waits on it until its batch is merged
	m := newMerger()
	byTaskID := map[string]bool{}
	start := func(t *task) {
		t.id = len(byTaskID)
		byTaskID[t.t.ID] = true
		m.add(t.id)
		ch := make(chan struct{}, 1)
		taken[t.id] = ch
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.cfg.Source.TaskLogs(ctx, t.t.NodeID, t.t.ID, q.Options, func(recs []api.LogRecord, live bool) error {
				select {
				case events <- event{id: t.id, recs: recs, live: live}:
				case <-ctx.Done():
					return ctx.Err()
				}
				select {
				case <-ch:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
			select {
			case events <- event{id: t.id, ended: true, err: err}:
			case <-ctx.Done():
			}
		}()
	}
	all := map[int]*task{}
	for _, t := range tasks {
		start(t)
		all[t.id] = t
	}
	var watchC <-chan store.Event
	if w != nil {
		watchC = w.Events()
	}
	for {
		for {
			id, ok := m.next()
			if !ok {
				break
			}
			if err := emit(all[id].line(m.pop(id))); err != nil {
				return err
			}
			if m.empty(id) {
				taken[id] <- struct{}{}
			}
		}
		if m.done() && watchC == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case ev := <-events:
			if ev.ended {
				m.end(ev.id)
				if ev.err != nil && ctx.Err() == nil {
					if err := emit(s.errorLine(all[ev.id], ev.err)); err != nil {
						return err
					}
				}
				continue
			}
			m.feed(ev.id, ev.recs, ev.live)
			if m.empty(ev.id) {
				taken[ev.id] <- struct{}{}
			}
		case sev, ok := <-watchC:
			if !ok {
				// Fell behind the store: watch again, and start the
				// tasks that came meanwhile (the open streams go on).
				s.cfg.Logger.Info("logs: store watch ended: watching again", "err", w.Err())
				w.Close()
				var missed []*api.Task
				w, err = s.cfg.Store.ViewAndWatch(func(tx store.ReadTx) error {
					ns, err := store.Find[api.Node](tx, store.All())
					if err != nil {
						return err
					}
					for _, n := range ns {
						nodes[n.ID] = n
					}
					missed, err = store.Find[api.Task](tx, store.ByService(svcID))
					return err
				}, store.KindTask, store.KindNode)
				if err != nil {
					return err
				}
				watchC = w.Events()
				for _, o := range missed {
					if o.NodeID != "" && !byTaskID[o.ID] {
						t := s.newTask(0, o, nodes)
						start(t)
						all[t.id] = t
					}
				}
				continue
			}
			obj, err := sev.Object()
			if err != nil {
				continue
			}
			switch o := obj.(type) {
			case *api.Node:
				nodes[o.ID] = o
			case *api.Task:
				if o.ServiceID != svcID || o.NodeID == "" || byTaskID[o.ID] || sev.Action == store.ActionDelete {
					continue
				}
				t := s.newTask(0, o, nodes)
				start(t)
				all[t.id] = t
			}
		}
	}
}

func (s *Service) newTask(id int, t *api.Task, nodes map[string]*api.Node) *task {
	tk := &task{id: id, t: t, nodeName: t.NodeID}
	if n := nodes[t.NodeID]; n != nil {
		if n.Spec.Name != "" {
			tk.nodeName = n.Spec.Name
		} else if n.Description.Hostname != "" {
			tk.nodeName = n.Description.Hostname
		}
		tk.nodeDown = n.Status.State == api.NodeDown
	}
	return tk
}

// errorLine says why a task's log could not be read.
func (s *Service) errorLine(t *task, err error) api.LogLine {
	l := t.line(api.LogRecord{Time: s.cfg.Now()})
	var msg string
	switch {
	case s.cfg.NoSession != nil && errors.Is(err, s.cfg.NoSession) && t.nodeDown:
		msg = fmt.Sprintf("node %s is down, its log is not reachable", t.nodeName)
	case s.cfg.NoSession != nil && errors.Is(err, s.cfg.NoSession):
		msg = fmt.Sprintf("node %s holds no session with the leader, its log is not reachable", t.nodeName)
	default:
		msg = err.Error()
	}
	l.Error = fmt.Sprintf("task %s: %s", l.Prefix(), msg)
	return l
}

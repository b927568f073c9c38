package orchestrator

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/scheduler"
)

// world is a simulated cluster under a fake clock. Each step runs one
// orchestrator pass over it (decideAll, as the controller does) and
// commits the result in memory, then the scheduler places new tasks (when
// the world has nodes) and the "agent" runs tasks as their image says:
// images named bad:* exit at once, slow:* never become ready, crash:* run
// healthy for 2s then exit; others are ready. A task with a healthcheck
// runs one step with its health starting before it is healthy. Images
// named hc*:* have a HEALTHCHECK of their own, which the agent runs (and
// reports the health of) when the spec has no healthcheck (nil, not
// disabled); hcslow:* never passes it.
//
// The first service is the one the update tests watch: step returns its
// updater decision and the log records its state changes and creations.
type world struct {
	t      *testing.T
	svcs   []*api.Service
	svc    *api.Service
	tasks  []api.Task
	nodes  Nodes
	now    time.Time
	nextID int
	log    []string
	// wake is when the last step's decisions asked to be run again.
	wake time.Time
	// observe, when set, sees the world after every commit: the
	// orchestrator's, then the agent's.
	observe func(when string)
	// drain is the drain delay the orchestrator is given.
	drain time.Duration
	// inSet is the load-balancing set as the step found it; stoppedInSet
	// the tasks stopped while they were in it, or drained for less than
	// drain, whoever stopped them.
	inSet        map[string]bool
	stoppedInSet []string
}

func newWorld(t *testing.T, replicas uint64, cfg api.UpdateConfig) *world {
	return newWorldOn(t, replicas, cfg, nil)
}

// newWorldOn is a world whose tasks the scheduler places on nodes, named
// by ID with their labels; without nodes, tasks run unplaced.
func newWorldOn(t *testing.T, replicas uint64, cfg api.UpdateConfig, nodes map[string]map[string]string) *world {
	w := &world{t: t, now: t0, nodes: Nodes{}, drain: DefaultDrainDelay}
	for id, labels := range nodes {
		w.addNode(id, labels)
	}
	w.svc = &api.Service{Meta: api.Meta{ID: "svc", Version: 1}, Spec: api.ServiceSpec{Name: "s_web", Mode: api.ModeReplicated, Replicas: replicas,
		Task:   api.TaskSpec{Container: api.ContainerSpec{Image: "web:1"}},
		Update: cfg, Rollback: api.DefaultRollbackConfig()}}
	w.svcs = []*api.Service{w.svc}
	for slot := uint64(1); slot <= replicas; slot++ {
		w.add(newTask(w.svc, slot, "", nil, w.now))
	}
	w.schedule()
	w.agent()
	// Whatever a test does, no task is stopped while it is in the
	// load-balancing set, nor before it drained for w.drain.
	t.Cleanup(func() {
		if len(w.stoppedInSet) > 0 {
			t.Errorf("stopped while in the load-balancing set, or drained for less than %s: %v", w.drain, w.stoppedInSet)
		}
	})
	return w
}

func (w *world) addNode(id string, labels map[string]string) {
	w.nodes[id] = api.Node{Meta: api.Meta{ID: id},
		Spec:        api.NodeSpec{Labels: labels},
		Description: api.NodeDescription{Hostname: id, Platform: api.Platform{OS: "linux", Architecture: "amd64"}, Resources: api.Resources{NanoCPUs: 8e9, Memory: 16 << 30}},
		Status:      api.NodeStatus{State: api.NodeReady}}
}

// addService adds a service without tasks, as a commit would.
func (w *world) addService(spec api.ServiceSpec) *api.Service {
	s := &api.Service{Meta: api.Meta{ID: "svc-" + spec.Name, Version: 1}, Spec: spec}
	w.svcs = append(w.svcs, s)
	return s
}

func (w *world) add(t api.Task) {
	w.nextID++
	t.ID, t.CreatedAt = fmt.Sprintf("t%02d", w.nextID), w.now
	w.tasks = append(w.tasks, t)
}

// deploy changes the image, as a commit would.
func (w *world) deploy(image string) { w.deployTo(w.svc, image) }

func (w *world) deployTo(s *api.Service, image string) {
	w.change(s, func(spec *api.ServiceSpec) { spec.Task.Container.Image = image })
}

// change changes a service's spec as reconcile's commit does: the old
// spec becomes the previous one and the rollout status is dropped.
func (w *world) change(s *api.Service, fn func(*api.ServiceSpec)) {
	prev := s.Spec
	prev.Task.Placement.Constraints = append([]api.Constraint(nil), prev.Task.Placement.Constraints...)
	s.PreviousSpec = &prev
	fn(&s.Spec)
	s.Version++
	s.Update = nil
}

func (w *world) service(id string) *api.Service {
	for _, s := range w.svcs {
		if s.ID == id {
			return s
		}
	}
	w.t.Fatalf("no service %s", id)
	return nil
}

// agent moves tasks along as their image says.
func (w *world) agent() {
	for i := range w.tasks {
		t := &w.tasks[i]
		if t.Status.State.Terminal() || len(w.nodes) > 0 && t.NodeID == "" {
			continue
		}
		img := t.Spec.Container.Image
		hc := t.Spec.Container.Healthcheck
		checked := !hc.Disabled() || hc == nil && strings.HasPrefix(img, "hc")
		switch {
		case t.DesiredState == api.TaskShutdown:
			t.Status = api.TaskStatus{State: api.TaskShutdown, Timestamp: w.now}
		case strings.HasPrefix(img, "bad:"):
			t.Status = api.TaskStatus{State: api.TaskFailed, Timestamp: w.now, Err: "exit code 1"}
		case strings.HasPrefix(img, "slow:"):
			t.Status = api.TaskStatus{State: api.TaskStarting, Timestamp: w.now}
		case strings.HasPrefix(img, "crash:") && !t.ReadyAt.IsZero() && w.now.Sub(t.ReadyAt) >= 2*time.Second:
			t.Status = api.TaskStatus{State: api.TaskFailed, Timestamp: w.now, Err: "exit code 2"}
		case t.DesiredState == api.TaskComplete && t.Status.State == api.TaskRunning:
			t.Status = api.TaskStatus{State: api.TaskComplete, Timestamp: w.now}
		case t.Status.State != api.TaskRunning:
			t.Status = api.TaskStatus{State: api.TaskRunning, Timestamp: w.now}
			if checked {
				t.Status.Health = api.HealthStarting
			}
		case checked && t.Status.Health == api.HealthStarting && !strings.HasPrefix(img, "hcslow:"):
			t.Status.Health, t.Status.Timestamp = api.HealthHealthy, w.now
		}
	}
}

// schedule places new tasks on the world's nodes with the real scheduler.
func (w *world) schedule() {
	if len(w.nodes) == 0 {
		return
	}
	byNode := map[string][]*api.Task{}
	var pending []*api.Task
	for i := range w.tasks {
		t := &w.tasks[i]
		switch {
		case t.Status.State.Terminal():
		case t.Status.State < api.TaskAssigned && t.DesiredState != api.TaskShutdown:
			pending = append(pending, t)
		case t.NodeID != "":
			byNode[t.NodeID] = append(byNode[t.NodeID], t)
		}
	}
	var infos []scheduler.NodeInfo
	for id := range w.nodes {
		n := w.nodes[id]
		infos = append(infos, scheduler.NodeInfo{Node: &n, Tasks: byNode[id]})
	}
	services := map[string]*api.Service{}
	for _, s := range w.svcs {
		services[s.ID] = s
	}
	for _, d := range scheduler.Schedule(infos, services, pending) {
		if d.Err != nil {
			d.Task.Status = api.TaskStatus{State: api.TaskPending, Timestamp: w.now, Err: d.Err.Error()}
			continue
		}
		d.Task.NodeID = d.NodeID
		d.Task.Status = api.TaskStatus{State: api.TaskAssigned, Timestamp: w.now}
	}
}

// step runs one orchestrator pass and commits it, then lets the
// scheduler and the agent act. It returns the first service's updater
// decision.
func (w *world) step() UpdateDecision {
	byID := map[string][]api.Task{}
	for _, t := range w.tasks {
		byID[t.ServiceID] = append(byID[t.ServiceID], t)
	}
	deps := map[string]Dependency{}
	for _, s := range w.svcs {
		deps[s.Spec.Name] = Dependency{Service: s, Tasks: byID[s.ID]}
	}
	w.inSet = map[string]bool{}
	for i := range w.tasks {
		if w.tasks[i].InLoadBalancer() {
			w.inSet[w.tasks[i].ID] = true
		}
	}
	first := DecideUpdate(w.svc, byID[w.svc.ID], w.nodes, func() []string { return WaitingFor(w.svc, deps, w.nodes, w.now) }, w.now, w.drain)
	updates, commit, wake := decideAll(w.svcs, byID, w.nodes, w.now, w.drain)
	w.wake = wake
	for _, u := range updates {
		w.applyUpdate(u)
	}
	all := make([]*api.Task, len(w.tasks))
	for i := range w.tasks {
		all[i] = &w.tasks[i]
	}
	orphaned := decideOrphans(w.svcs, all, w.now, w.drain)
	w.wake = earliest(w.wake, orphaned.Wake)
	for _, d := range append(commit, orphaned) {
		w.apply(d)
	}
	if w.observe != nil {
		w.observe("commit")
	}
	w.schedule()
	w.agent()
	if w.observe != nil {
		w.observe("agent")
	}
	return first
}

func (w *world) applyUpdate(u serviceUpdate) {
	s := w.service(u.serviceID)
	if u.Rollback {
		prev := *s.PreviousSpec
		cur := s.Spec
		s.Spec, s.PreviousSpec = prev, &cur
		if s == w.svc {
			w.log = append(w.log, "rollback")
		}
	}
	if u.ClearStatus {
		s.Update = nil
	}
	if u.Status != nil {
		st := *u.Status
		if s == w.svc && (s.Update == nil || s.Update.State != st.State) {
			w.log = append(w.log, st.State.String())
		}
		s.Update = &st
	}
	for _, id := range u.Ready {
		w.task(id).ReadyAt = w.now
	}
	for _, id := range u.Adopt {
		t := w.task(id)
		t.Spec, t.SpecVersion = u.spec, u.specVersion
	}
	if s == w.svc && len(u.Create) > 0 {
		w.log = append(w.log, fmt.Sprintf("create %d", len(u.Create)))
	}
	w.apply(u.Decision)
}

// apply commits a decision as the controller does. Every stop must find
// its task out of the load-balancing set, drained for w.drain (unless
// that is zero: no drain).
func (w *world) apply(d Decision) {
	for _, id := range d.Drain {
		w.task(id).DrainingSince = w.now
	}
	for _, id := range d.Undrain {
		w.task(id).DrainingSince = time.Time{}
	}
	for _, s := range d.Shutdown {
		t := w.task(s.TaskID)
		if w.drain > 0 && w.inSet[t.ID] || !t.DrainingSince.IsZero() && w.now.Before(t.DrainingSince.Add(w.drain)) {
			w.stoppedInSet = append(w.stoppedInSet, fmt.Sprintf("%s (%s) at %s", t.ID, s.Reason, w.now.Sub(t0)))
		}
		t.DesiredState = api.TaskShutdown
		if t.Status.State < api.TaskAssigned {
			t.Status = api.TaskStatus{State: api.TaskShutdown, Timestamp: w.now, Message: s.Reason}
		}
	}
	for _, id := range d.Replace {
		t := w.task(id)
		if !t.Status.State.Terminal() || t.Replaced {
			w.t.Errorf("replace %s: state %s, replaced %v: only an ended task is replaced, once", id, t.Status.State, t.Replaced)
		}
		t.DesiredState, t.Replaced = api.TaskShutdown, true
	}
	for _, c := range d.Create {
		w.add(c)
	}
	if len(d.Delete) > 0 {
		del := map[string]bool{}
		for _, id := range d.Delete {
			del[id] = true
		}
		kept := w.tasks[:0]
		for _, t := range w.tasks {
			if !del[t.ID] {
				kept = append(kept, t)
			}
		}
		w.tasks = kept
	}
}

func (w *world) task(id string) *api.Task {
	for i := range w.tasks {
		if w.tasks[i].ID == id {
			return &w.tasks[i]
		}
	}
	w.t.Fatalf("no task %s", id)
	return nil
}

// run steps, advancing the clock by tick, until the update settles.
func (w *world) run(tick time.Duration, max int) {
	for i := 0; i < max; i++ {
		d := w.step()
		if d.Empty() && w.svc.Update != nil && w.svc.Update.State != api.UpdateUpdating && w.svc.Update.State != api.UpdateRollbackStarted {
			return
		}
		w.now = w.now.Add(tick)
	}
	w.t.Fatalf("no settled state after %d steps: %v", max, w.log)
}

// live counts the first service's live tasks by image.
func (w *world) live() map[string]int { return w.liveOf(w.svc) }

func (w *world) liveOf(s *api.Service) map[string]int {
	out := map[string]int{}
	for _, t := range w.tasks {
		if t.ServiceID == s.ID && !t.Status.State.Terminal() {
			out[t.Spec.Container.Image]++
		}
	}
	return out
}

// balanced counts the tasks of a service in its load-balancing set.
func (w *world) balanced(s *api.Service) int {
	n := 0
	for i := range w.tasks {
		if t := &w.tasks[i]; t.ServiceID == s.ID && t.InLoadBalancer() {
			n++
		}
	}
	return n
}

// placement summarises a service's live tasks as "node:count", sorted.
func (w *world) placement(s *api.Service) string {
	counts := map[string]int{}
	for _, t := range w.tasks {
		if t.ServiceID == s.ID && !t.Status.State.Terminal() && t.DesiredState == api.TaskRunning {
			counts[t.NodeID]++
		}
	}
	var parts []string
	for n, c := range counts {
		parts = append(parts, fmt.Sprintf("%s:%d", n, c))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

func cfg(parallelism uint64, order api.UpdateOrder, action api.FailureAction) api.UpdateConfig {
	c := api.DefaultUpdateConfig()
	c.Parallelism, c.Order, c.FailureAction = parallelism, order, action
	return c
}

func minInt(a, b int) int {
	if a < b {
		return a
	}
	return b
}

package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/netview"
	"github.com/gitorc/gitorc/cluster/store"
)

// fanoutRetry is how long the fan-out waits before watching the store
// again after it could not (a locked or closed store).
const fanoutRetry = time.Second

// fanout is the dispatcher's one store watcher. It routes each committed
// change to the sessions it may concern and marks what of theirs to read
// again (the assignment set, the network view), waking them; a session
// reads the store only when marked, once for a whole burst of changes.
//
// Each session used to hold a watcher of its own that looked at every
// change of the cluster: with N nodes and T tasks a deployment cost N×T
// event deliveries (20 million for 1,000 nodes and 20,000 tasks, each
// status write of each task going to every session), the store's event
// hub fed thousands of channels from the Raft apply path, and a large
// commit overflowed every watcher at once. Routing costs one lookup per
// change: a task's change goes to its node's session and, when it alters
// what network views hold of it (its address, whether it is a backend),
// to the sessions whose view holds its service.
type fanout struct {
	mu     sync.Mutex
	all    map[*session]struct{}
	byNode map[string]map[*session]struct{}
	bySvc  map[string]map[*session]struct{} // the services each session's view depends on
	byNet  map[string]map[*session]struct{} // the networks (by name) each session's view holds
	// What the fan-out knows of the state it routed up to: each task's
	// route, each node's peer, and the versions of the other objects,
	// so that after it fell behind it routes what changed meanwhile
	// (resync) instead of marking every session.
	tasks    map[string]taskRoute
	nodes    map[string]nodeRoute
	versions map[store.Kind]map[string]uint64 // services, networks, the cluster, secrets, configs
	// index is the store index of the change being routed.
	index uint64
	// resyncs counts the times the fan-out fell behind (tests, logs).
	resyncs int
}

// taskRoute is what the fan-out keeps of a task: its node and service,
// what network views hold of it, and its version.
type taskRoute struct {
	node, service string
	net           taskNet
	version       uint64
}

// nodeRoute is what the fan-out keeps of a node: its version and its
// peer (netview.Peer), if it is one.
type nodeRoute struct {
	version uint64
	peer    api.NetPeer
	isPeer  bool
}

// taskNet is what network views hold of a task (cluster/netview): its
// address while it holds one (Addr set, not terminal; empty otherwise)
// and whether it is a backend of its service.
type taskNet struct {
	addr    string
	backend bool
}

func netOf(t *api.Task) taskNet {
	if t.Addr == "" || t.Status.State.Terminal() {
		return taskNet{}
	}
	return taskNet{addr: t.Addr, backend: t.InLoadBalancer()}
}

// marks is what a session is to read again.
type marks struct {
	assign, view, removed bool
}

func (f *fanout) init() {
	f.all = map[*session]struct{}{}
	f.byNode = map[string]map[*session]struct{}{}
	f.bySvc = map[string]map[*session]struct{}{}
	f.byNet = map[string]map[*session]struct{}{}
	f.tasks = map[string]taskRoute{}
	f.nodes = map[string]nodeRoute{}
	f.versions = map[store.Kind]map[string]uint64{}
	for _, k := range versioned {
		f.versions[k] = map[string]uint64{}
	}
}

// versioned are the kinds whose versions the fan-out keeps.
var versioned = []store.Kind{store.KindService, store.KindNetwork, store.KindCluster, store.KindSecret, store.KindConfig}

// add routes the node's changes to s from now on.
func (f *fanout) add(s *session) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.all[s] = struct{}{}
	addTo(f.byNode, s.id.NodeID, s)
}

// sessions is how many sessions are routed to.
func (f *fanout) sessions() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.all)
}

// remove stops routing to s.
func (f *fanout) remove(s *session) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.all, s)
	removeFrom(f.byNode, s.id.NodeID, s)
	setDeps(f.bySvc, s, s.services, nil)
	setDeps(f.byNet, s, s.networks, nil)
	s.services, s.networks = nil, nil
}

// setView records what s's network view depends on: its services and
// its networks.
func (f *fanout) setView(s *session, n *netState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	setDeps(f.bySvc, s, s.services, n.services)
	setDeps(f.byNet, s, s.networks, n.networks)
	s.services, s.networks = n.services, n.networks
}

// setDeps moves s in index from the keys of was to those of is.
func setDeps(index map[string]map[*session]struct{}, s *session, was, is map[string]bool) {
	for k := range was {
		if !is[k] {
			removeFrom(index, k, s)
		}
	}
	for k := range is {
		if !was[k] {
			addTo(index, k, s)
		}
	}
}

// take returns and clears what s is marked to read again.
func (f *fanout) take(s *session) marks {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := s.marked
	s.marked = marks{}
	return m
}

func addTo(m map[string]map[*session]struct{}, key string, s *session) {
	set := m[key]
	if set == nil {
		set = map[*session]struct{}{}
		m[key] = set
	}
	set[s] = struct{}{}
}

func removeFrom(m map[string]map[*session]struct{}, key string, s *session) {
	if set := m[key]; set != nil {
		delete(set, s)
		if len(set) == 0 {
			delete(m, key)
		}
	}
}

// readAt records the store index s read its assignment set (assign)
// or view at: changes up to it are in what s read.
func (f *fanout) readAt(s *session, index uint64, assign, view bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if assign {
		s.assignAt = max(s.assignAt, index)
	}
	if view {
		s.viewAt = max(s.viewAt, index)
	}
}

// mark marks s for a change committed at index (f.mu held) and wakes it,
// unless s read that part from a state that holds the change already (the
// fan-out runs behind the store).
func mark(s *session, m marks, index uint64) {
	m.assign = m.assign && index > s.assignAt
	m.view = m.view && index > s.viewAt
	if m == (marks{}) {
		return
	}
	s.marked.assign = s.marked.assign || m.assign
	s.marked.view = s.marked.view || m.view
	s.marked.removed = s.marked.removed || m.removed
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (f *fanout) markSet(set map[*session]struct{}, m marks) {
	for s := range set {
		mark(s, m, f.index)
	}
}

// run follows the store until ctx ends. Each (re)start of its watcher
// first routes what changed since the state it knew (resync): nothing
// is lost when it fell behind, and only the sessions concerned read.
func (f *fanout) run(ctx context.Context, st Store, clock Clock, onErr, onResync func(error)) {
	for ctx.Err() == nil {
		w, err := st.ViewAndWatch(f.resync, watched...)
		if err == nil {
			err = f.follow(ctx, w)
			w.Close()
			if errors.Is(err, store.ErrWatchOverflow) || errors.Is(err, store.ErrResync) {
				onResync(err)
				continue
			}
		}
		if ctx.Err() != nil {
			return
		}
		onErr(err)
		t := clock.NewTimer(fanoutRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
	}
}

// resync routes every difference between the state tx holds and the one
// the fan-out knew, as the changes in between would have been.
func (f *fanout) resync(tx store.ReadTx) error {
	tasks, err := store.FindShared[api.Task](tx, store.All())
	if err != nil {
		return fmt.Errorf("resync tasks: %w", err)
	}
	nodes, err := store.FindShared[api.Node](tx, store.All())
	if err != nil {
		return fmt.Errorf("resync nodes: %w", err)
	}
	services, err := store.FindShared[api.Service](tx, store.All())
	if err != nil {
		return fmt.Errorf("resync services: %w", err)
	}
	others := map[store.Kind][]api.Object{}
	for _, k := range []store.Kind{store.KindNetwork, store.KindCluster, store.KindSecret, store.KindConfig} {
		var objs []api.Object
		if sf, ok := tx.(store.SharedFinder); ok {
			objs, err = sf.FindShared(k, store.All()) // no secret payloads opened: only versions are read
		} else {
			objs, err = tx.Find(k, store.All())
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("resync %s: %w", k, err)
		}
		others[k] = objs
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	f.resyncs++
	f.index = tx.Index()
	seen := make(map[string]bool, len(tasks))
	for _, t := range tasks {
		seen[t.ID] = true
		if r, ok := f.tasks[t.ID]; !ok || r.version != t.Version {
			f.routeTask(t.ID, routeOf(t), false)
		}
	}
	for id, r := range f.tasks {
		if !seen[id] {
			f.routeTask(id, r, true)
		}
	}
	clear(seen)
	for _, n := range nodes {
		seen[n.ID] = true
		if r, ok := f.nodes[n.ID]; !ok || r.version != n.Version {
			f.routeNode(n.ID, n, n.Version)
		}
	}
	for id := range f.nodes {
		if !seen[id] {
			f.routeNode(id, nil, 0)
		}
	}
	clear(seen)
	known := f.versions[store.KindService]
	for _, svc := range services {
		seen[svc.ID] = true
		if v, ok := known[svc.ID]; !ok || v != svc.Version {
			f.routeService(svc.ID, svc, svc.Version)
		}
	}
	for id := range known {
		if !seen[id] {
			f.routeService(id, nil, 0)
		}
	}
	for k, objs := range others {
		clear(seen)
		known := f.versions[k]
		for _, o := range objs {
			m := o.GetMeta()
			seen[m.ID] = true
			if v, ok := known[m.ID]; !ok || v != m.Version {
				f.routeOther(k, m.ID, m.Version, false)
			}
		}
		for id := range known {
			if !seen[id] {
				f.routeOther(k, id, 0, true)
			}
		}
	}
	return nil
}

// follow routes the watcher's events until it ends.
func (f *fanout) follow(ctx context.Context, w *store.Watcher) error {
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case ev, ok := <-w.Events():
			if !ok {
				return w.Err()
			}
			f.route(ev)
		}
	}
}

// route routes one change.
func (f *fanout) route(ev store.Event) {
	// The shared object, not a copy: only looked at.
	obj, err := ev.View()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.index = ev.Index
	gone := ev.Action == store.ActionDelete
	switch ev.Kind {
	case store.KindTask:
		t, ok := obj.(*api.Task)
		if err != nil || !ok {
			f.markSet(f.all, marks{assign: true, view: true})
			delete(f.tasks, ev.ID) // routed as new next time
			return
		}
		r := routeOf(t)
		r.version = ev.Version
		f.routeTask(t.ID, r, gone)
	case store.KindNode:
		n, ok := obj.(*api.Node)
		if err != nil || !ok {
			f.markSet(f.all, marks{view: true})
			delete(f.nodes, ev.ID)
			return
		}
		if gone {
			n = nil
		}
		f.routeNode(ev.ID, n, ev.Version)
	case store.KindService:
		svc, ok := obj.(*api.Service)
		if err != nil || !ok {
			f.markSet(f.all, marks{view: true})
			delete(f.versions[store.KindService], ev.ID)
			return
		}
		if gone {
			svc = nil
		}
		f.routeService(ev.ID, svc, ev.Version)
	default:
		f.routeOther(ev.Kind, ev.ID, ev.Version, gone)
	}
}

func routeOf(t *api.Task) taskRoute {
	return taskRoute{node: t.NodeID, service: t.ServiceID, net: netOf(t), version: t.Version}
}

// The route functions mark the sessions a change may concern (f.mu
// held). They err on the side of yes: a session compares what it reads
// with what it sent; a no only spares a read.

// routeTask routes a task's change to cur (its last route, when gone).
func (f *fanout) routeTask(id string, cur taskRoute, gone bool) {
	old, known := f.tasks[id]
	if gone {
		cur.net = taskNet{}
		delete(f.tasks, id)
	} else {
		f.tasks[id] = cur
	}
	moved := known && old.node != cur.node // never done, but cheap to follow
	// A task the fan-out did not know counts as a change of what views
	// hold of it.
	own := marks{assign: true, view: !known || old.net.addr != cur.net.addr || moved}
	f.markSet(f.byNode[cur.node], own)
	if moved {
		f.markSet(f.byNode[old.node], own)
	}
	if !known || old.net != cur.net || moved {
		f.markSet(f.bySvc[cur.service], marks{view: true})
	}
}

// routeNode routes a node's change; n is nil when it is gone.
func (f *fanout) routeNode(id string, n *api.Node, version uint64) {
	old, known := f.nodes[id]
	var cur nodeRoute
	if n != nil {
		cur = nodeRoute{version: version}
		cur.peer, cur.isPeer = netview.Peer(n)
		f.nodes[id] = cur
	} else {
		delete(f.nodes, id)
	}
	f.markSet(f.byNode[id], marks{view: true, removed: n == nil || n.Removed()})
	if !known && cur.isPeer || known && (old.isPeer != cur.isPeer || old.peer != cur.peer) {
		f.markSet(f.all, marks{view: true}) // not a status write (ready, down) that leaves the peer as it is
	}
}

// routeService routes a service's change; svc is nil when it is gone.
func (f *fanout) routeService(id string, svc *api.Service, version uint64) {
	if svc == nil {
		delete(f.versions[store.KindService], id)
	} else {
		f.versions[store.KindService][id] = version
	}
	f.markSet(f.bySvc[id], marks{view: true})
	if svc == nil {
		return
	}
	if len(svc.Spec.Endpoint.Ports) > 0 || (svc.Endpoint != nil && len(svc.Endpoint.Ports) > 0) {
		f.markSet(f.all, marks{view: true}) // may publish a port now: every view holds those
		return
	}
	for _, a := range svc.Spec.Networks {
		f.markSet(f.byNet[a.Target], marks{view: true}) // joins a network those views hold
	}
}

// routeOther routes a change of a network, the cluster, a secret or a
// config.
func (f *fanout) routeOther(kind store.Kind, id string, version uint64, gone bool) {
	if known := f.versions[kind]; known != nil {
		if gone {
			delete(known, id)
		} else {
			known[id] = version
		}
	}
	switch kind {
	case store.KindSecret, store.KindConfig:
		f.markSet(f.all, marks{assign: true}) // rare; a session drops what it already sent
	case store.KindNetwork, store.KindCluster:
		f.markSet(f.all, marks{view: true})
	}
}

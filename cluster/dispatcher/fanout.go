package dispatcher

import (
	"context"
	"errors"
	"math"
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
	tasks  map[string]taskRoute             // by task ID
	peers  map[string]api.NetPeer           // the nodes that are peers, by node ID
	// resyncs counts the times every session was marked at once (tests,
	// logs).
	resyncs int
	// index is the store index of the change being routed (math.MaxUint64
	// for a resync: it marks whatever a session read).
	index uint64
}

// taskRoute is what the fan-out keeps of a task: its node, and what
// network views hold of it.
type taskRoute struct {
	node string
	net  taskNet
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
	f.peers = map[string]api.NetPeer{}
}

// add routes the node's changes to s from now on.
func (f *fanout) add(s *session) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.all[s] = struct{}{}
	addTo(f.byNode, s.id.NodeID, s)
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

// run follows the store until ctx ends. After every (re)start of its
// watcher, and when it fell behind, it marks every session: what changed
// while it was not watching reaches them as a read of the whole.
func (f *fanout) run(ctx context.Context, st Store, clock Clock, onErr, onResync func(error)) {
	for ctx.Err() == nil {
		w, err := st.ViewAndWatch(f.seed, watched...)
		if err == nil {
			f.markAll()
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

// seed reads what routing needs of the state the watcher starts from:
// the peers. Tasks are not read (a resync under a stream of status
// writes would read 100,000 of them while the new watcher fills up): the
// first change of a task the fan-out does not know marks its node's view
// and its service's views, as a change of what they hold of it.
func (f *fanout) seed(tx store.ReadTx) error {
	nodes, err := store.FindShared[api.Node](tx, store.All())
	if err != nil {
		return err
	}
	peers := map[string]api.NetPeer{}
	for _, n := range nodes {
		if p, ok := netview.Peer(n); ok {
			peers[n.ID] = p
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tasks, f.peers = map[string]taskRoute{}, peers
	return nil
}

func (f *fanout) markAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resyncs++
	f.index = math.MaxUint64
	f.markSet(f.all, marks{assign: true, view: true})
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

// route marks the sessions a change may concern. It errs on the side of
// yes: a session compares what it reads with what it sent; a no only
// spares a read.
func (f *fanout) route(ev store.Event) {
	// The shared object, not a copy: only looked at.
	obj, err := ev.View()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.index = ev.Index
	if err != nil {
		f.markSet(f.all, marks{assign: true, view: true})
		return
	}
	switch ev.Kind {
	case store.KindTask:
		t, ok := obj.(*api.Task)
		if !ok {
			f.markSet(f.all, marks{assign: true, view: true})
			return
		}
		old, known := f.tasks[t.ID]
		cur := taskRoute{node: t.NodeID, net: netOf(t)}
		if ev.Action == store.ActionDelete {
			cur.net = taskNet{}
			delete(f.tasks, t.ID)
		} else {
			f.tasks[t.ID] = cur
		}
		moved := known && old.node != cur.node // never done, but cheap to follow
		own := marks{assign: true, view: !known || old.net.addr != cur.net.addr || moved}
		f.markSet(f.byNode[cur.node], own)
		if moved {
			f.markSet(f.byNode[old.node], own)
		}
		if !known || old.net != cur.net || moved {
			f.markSet(f.bySvc[t.ServiceID], marks{view: true})
		}
	case store.KindSecret, store.KindConfig:
		f.markSet(f.all, marks{assign: true}) // rare; a session drops what it already sent
	case store.KindNode:
		n, ok := obj.(*api.Node)
		if !ok {
			f.markSet(f.all, marks{view: true})
			return
		}
		f.markSet(f.byNode[n.ID], marks{view: true, removed: n.Removed() || ev.Action == store.ActionDelete})
		old, was := f.peers[n.ID]
		p, is := netview.Peer(n)
		if ev.Action == store.ActionDelete {
			p, is = api.NetPeer{}, false
		}
		if is {
			f.peers[n.ID] = p
		} else {
			delete(f.peers, n.ID)
		}
		if was != is || p != old { // not a status write (ready, down) that leaves the peer as it is
			f.markSet(f.all, marks{view: true})
		}
	case store.KindService:
		svc, ok := obj.(*api.Service)
		if !ok {
			f.markSet(f.all, marks{view: true})
			return
		}
		f.markSet(f.bySvc[svc.ID], marks{view: true})
		if ev.Action == store.ActionDelete {
			return
		}
		if len(svc.Spec.Endpoint.Ports) > 0 || (svc.Endpoint != nil && len(svc.Endpoint.Ports) > 0) {
			f.markSet(f.all, marks{view: true}) // may publish a port now: every view holds those
			return
		}
		for _, a := range svc.Spec.Networks {
			f.markSet(f.byNet[a.Target], marks{view: true}) // joins a network those views hold
		}
	case store.KindNetwork, store.KindCluster:
		f.markSet(f.all, marks{view: true})
	}
}

package dispatcher

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/netview"
	"github.com/gitorc/gitorc/cluster/store"
)

// netIndexesKept is how many recent store states keep their index: the
// newest, and the one before for a session whose read raced a commit.
const netIndexesKept = 2

// netIndexes shares one netview.Index per store state between every
// session: the first session that needs the view of a state builds its
// index, under mu, so that the others wait for it and take it rather than
// build it again.
type netIndexes struct {
	mu      sync.Mutex
	entries []netIndexEntry // newest last
	builds  atomic.Uint64   // how many indexes were built (tests)
	// shared is the newest state latest handed out, with its index.
	shared struct {
		tx store.ReadTx
		ix *netview.Index
	}
}

type netIndexEntry struct {
	index uint64 // the store index the state is at
	ix    *netview.Index
}

// ReadViewer is an optional Store ability (*store.Store has it): a read
// view that outlives the call that made it, so that sessions can share one
// state and the network index built from it.
type ReadViewer interface {
	ReadView() (store.ReadTx, error)
}

// latest returns a state at least as new as tx's and its index. With a
// ReadViewer it shares builds between sessions: a session whose state is
// older than the newest index built takes that index's state instead (a
// newer state is as good: the changes in between reach the session's
// watcher anyway), and one that needs a build makes it from the newest
// state, for every session waiting behind it. Without, it is get(tx).
// Building per session's own state rebuilt the index of every task once
// per session while status writes committed: with 1,000 simulated nodes,
// 800 sessions queued here.
func (c *netIndexes) latest(s any, tx store.ReadTx) (store.ReadTx, *netview.Index, error) {
	sn, ok := s.(ReadViewer)
	if !ok {
		ix, err := c.get(tx)
		return tx, ix, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shared.tx != nil && c.shared.tx.Index() >= tx.Index() {
		return c.shared.tx, c.shared.ix, nil
	}
	fresh, err := sn.ReadView()
	if err != nil {
		return nil, nil, err
	}
	ix, err := c.getLocked(fresh)
	if err != nil {
		return nil, nil, err
	}
	c.shared.tx, c.shared.ix = fresh, ix
	return fresh, ix, nil
}

// get returns the index of tx's state.
func (c *netIndexes) get(tx store.ReadTx) (*netview.Index, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.getLocked(tx)
}

// getLocked is get with mu held.
func (c *netIndexes) getLocked(tx store.ReadTx) (*netview.Index, error) {
	at := tx.Index()
	for _, e := range c.entries {
		if e.index == at {
			return e.ix, nil
		}
	}
	in, err := netInput(tx)
	if err != nil {
		return nil, err
	}
	ix := netview.NewIndex(in)
	c.builds.Add(1)
	if n := len(c.entries); n > 0 && c.entries[n-1].index > at {
		return ix, nil // an older state than the ones kept: not worth keeping
	}
	c.entries = append(c.entries, netIndexEntry{at, ix})
	if n := len(c.entries); n > netIndexesKept {
		c.entries = append(c.entries[:0], c.entries[n-netIndexesKept:]...)
	}
	return ix, nil
}

// netInput reads what network views are made of: the store's shared
// objects, not copies (the views only read them; copying every task of
// the cluster for each new store state was a fifth of a loaded leader's
// work).
func netInput(tx store.ReadTx) (in netview.Input, err error) {
	in.Cluster, err = store.Get[api.Cluster](tx, api.ClusterID)
	if errors.Is(err, store.ErrNotFound) {
		in.Cluster = nil // the default address plan
	} else if err != nil {
		return in, fmt.Errorf("read cluster: %w", err)
	}
	if in.Nodes, err = store.FindShared[api.Node](tx, store.All()); err != nil {
		return in, fmt.Errorf("read nodes: %w", err)
	}
	if in.Networks, err = store.FindShared[api.Network](tx, store.All()); err != nil {
		return in, fmt.Errorf("read networks: %w", err)
	}
	if in.Services, err = store.FindShared[api.Service](tx, store.All()); err != nil {
		return in, fmt.Errorf("read services: %w", err)
	}
	if in.Tasks, err = store.FindShared[api.Task](tx, store.All()); err != nil {
		return in, fmt.Errorf("read tasks: %w", err)
	}
	return in, nil
}

// netState is a node's current network view, with what decides which
// changes may alter it.
type netState struct {
	view *api.NetView
	// services are the view's services and those of its tasks; tasks its
	// tasks; peers its peers, by node ID.
	services map[string]bool
	tasks    map[string]bool
	peers    map[string]api.NetPeer
}

func newNetState(v *api.NetView) *netState {
	s := &netState{view: v, services: make(map[string]bool, len(v.Services)), tasks: make(map[string]bool, len(v.Tasks)),
		peers: make(map[string]api.NetPeer, len(v.Peers))}
	for _, svc := range v.Services {
		s.services[svc.ID] = true
	}
	for _, t := range v.Tasks {
		s.tasks[t.ID] = true
		s.services[t.ServiceID] = true
	}
	for _, p := range v.Peers {
		s.peers[p.NodeID] = p
	}
	return s
}

// relevant reports whether a change may alter the node's view; obj is
// the changed object (as it was, for a delete; shared: read only), nil if it could not be
// read. It errs on the side of yes: the view is compared with the last
// one sent anyway; a no only spares the work.
func (s *netState) relevant(ev store.Event, obj api.Object, nodeID string) bool {
	switch ev.Kind {
	case store.KindNetwork, store.KindCluster:
		return true // rare, and a network may resolve a name a service was missing
	case store.KindNode:
		n, ok := obj.(*api.Node)
		if !ok || n.ID == nodeID {
			return true
		}
		old, was := s.peers[n.ID]
		if ev.Action == store.ActionDelete {
			return was
		}
		p, is := netview.Peer(n)
		return was != is || p != old // not a status write (down, ready) that leaves the peer as it is
	case store.KindService:
		svc, ok := obj.(*api.Service)
		if !ok || s.services[svc.ID] {
			return true
		}
		if ev.Action == store.ActionDelete {
			return false
		}
		if len(svc.Spec.Endpoint.Ports) > 0 || (svc.Endpoint != nil && len(svc.Endpoint.Ports) > 0) {
			return true // may publish a port now
		}
		for _, a := range svc.Spec.Networks {
			for _, n := range s.view.Networks {
				if n.Name == a.Target {
					return true // joins one of the view's networks
				}
			}
		}
		return false
	case store.KindTask:
		t, ok := obj.(*api.Task)
		return !ok || t.NodeID == nodeID || s.tasks[t.ID] || s.services[t.ServiceID]
	}
	return false
}

package dispatcher

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

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
	entries []netIndexEntry     // newest last
	builds  atomic.Uint64       // how many indexes were built (tests)
	onBuild func(time.Duration) // told how long each build took
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
	start := time.Now() // the leader's work, not a wait: the wall clock
	in, err := netInput(tx)
	if err != nil {
		return nil, err
	}
	ix := netview.NewIndex(in)
	c.builds.Add(1)
	if c.onBuild != nil {
		c.onBuild(time.Since(start))
	}
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

// netState is a node's current network view, with what it depends on
// beyond the node's own tasks (fanout.go): the view's services, whose
// tasks' addresses and backends it holds (its networks' members are the
// addresses of its services' tasks), and the view's networks by name,
// which a service may join.
type netState struct {
	view *api.NetView
	// appendJSON appends the view's JSON encoding, made from the
	// encodings its index shares between views.
	appendJSON func(dst []byte) ([]byte, error)
	services   map[string]bool
	networks   map[string]bool
}

func newNetState(v *api.NetView) *netState {
	s := &netState{view: v, services: make(map[string]bool, len(v.Services)),
		networks: make(map[string]bool, len(v.Networks))}
	for _, n := range v.Networks {
		s.networks[n.Name] = true
	}
	for _, svc := range v.Services {
		s.services[svc.ID] = true
	}
	return s
}

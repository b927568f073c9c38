package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/store"
)

// Managers and the Raft configuration.
//
// A manager's Node object in the store carries its addresses (API and
// Raft). Each manager registers its own once the store has a leader, and
// says when its replica has caught up with the leader. The leader turns
// those objects into Raft membership (membership): a joining manager is
// added as a learner, which cannot weaken the quorum while it copies the
// log, and becomes a voter once caught up; a manager demoted to worker
// (gitorc node demote) is removed from the configuration.

// membershipPeriod is how often the leader re-checks membership besides
// reacting to node changes.
const membershipPeriod = 5 * time.Second

// registerManager records this manager's addresses on its Node object and,
// once its replica has caught up with the leader, marks it so.
func (d *daemon) registerManager(ctx context.Context) error {
	backoff := 200 * time.Millisecond
	for {
		err := d.registerOnce(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		d.log.Debug("register as manager: retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (d *daemon) registerOnce(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// A barrier through the leader: when it returns, this replica holds
	// everything committed before, so it has caught up.
	if err := d.store.Barrier(cctx); err != nil {
		return err
	}
	host, _ := os.Hostname()
	return store.RetryConflicts(5, func() error {
		_, err := d.store.Update(cctx, func(tx store.Tx) error {
			n, err := store.Get[api.Node](tx, d.state.ID)
			create := errors.Is(err, store.ErrNotFound)
			if err != nil && !create {
				return err
			}
			if create {
				n = &api.Node{Meta: api.Meta{ID: d.state.ID}, Spec: api.NodeSpec{Role: api.RoleManager, Availability: api.AvailabilityActive},
					Description: api.NodeDescription{Hostname: host}}
				if !d.state.Worker {
					// No tasks come here (Swarm's way to keep a manager
					// free of them), and the scheduler says so.
					n.Spec.Availability = api.AvailabilityDrain
				}
			}
			want := api.ManagerStatus{RaftID: d.state.ID, Addr: d.state.Advertise, RaftAddr: d.state.RaftAdvertise, CaughtUp: true}
			if n.Manager != nil && *n.Manager == want {
				return nil
			}
			n.Manager = &want
			if create {
				return tx.Create(n)
			}
			return tx.Update(n)
		})
		return err
	})
}

// membership makes the Raft configuration follow the managers' Node
// objects while this manager leads.
func (d *daemon) membership(ctx context.Context) error {
	w, err := d.store.Watch(store.KindNode)
	if err != nil {
		return err
	}
	defer w.Close()
	tick := time.NewTicker(membershipPeriod)
	defer tick.Stop()
	for {
		if err := d.reconcileMembers(ctx); err != nil && ctx.Err() == nil {
			d.log.Warn("manager membership", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case _, ok := <-w.Events():
			if !ok {
				if w, err = d.store.Watch(store.KindNode); err != nil {
					return err
				}
			}
		}
	}
}

// reconcileMembers takes one step per manager towards the configuration
// the nodes ask for.
func (d *daemon) reconcileMembers(ctx context.Context) error {
	members, err := d.store.Members()
	if err != nil {
		return err
	}
	byID := map[string]store.Member{}
	voters := 0
	for _, m := range members {
		byID[m.ID] = m
		if m.Voter {
			voters++
		}
	}
	var nodes []*api.Node
	if err := d.store.View(func(tx store.ReadTx) error {
		nodes, err = store.Find[api.Node](tx, store.All())
		return err
	}); err != nil {
		return err
	}
	var errs []error
	for _, n := range nodes {
		m, inConfig := byID[n.ID]
		switch {
		case n.Spec.Role == api.RoleManager && n.Manager != nil && n.Manager.RaftAddr != "":
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			switch {
			case !inConfig:
				d.log.Info("adding manager as a learner", "node", n.ID, "raft", n.Manager.RaftAddr)
				errs = append(errs, d.store.AddLearner(cctx, n.ID, n.Manager.RaftAddr))
			case !m.Voter && n.Manager.CaughtUp:
				d.log.Info("manager caught up: making it a voter", "node", n.ID)
				errs = append(errs, d.store.AddVoter(cctx, n.ID, n.Manager.RaftAddr))
			}
			cancel()
		case n.Spec.Role == api.RoleWorker && inConfig:
			if m.Voter && voters <= 1 {
				errs = append(errs, fmt.Errorf("node %s: the last manager cannot be demoted", n.ID))
				continue
			}
			d.log.Info("manager demoted: removing it from Raft", "node", n.ID)
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := d.store.RemoveMember(cctx, n.ID)
			cancel()
			if err != nil {
				errs = append(errs, err)
				continue
			}
			errs = append(errs, d.clearManager(ctx, n.ID))
		}
	}
	return errors.Join(errs...)
}

// clearManager drops the manager status of a node out of Raft.
func (d *daemon) clearManager(ctx context.Context, id string) error {
	return store.RetryConflicts(5, func() error {
		_, err := d.store.Update(ctx, func(tx store.Tx) error {
			n, err := store.Get[api.Node](tx, id)
			if err != nil || n.Manager == nil {
				return err
			}
			n.Manager = nil
			return tx.Update(n)
		})
		return err
	})
}

// managerAddrs are the API addresses of every manager, this one first.
func (d *daemon) managerAddrs() []string {
	out := []string{d.state.Advertise}
	_ = d.store.View(func(tx store.ReadTx) error {
		nodes, err := store.Find[api.Node](tx, store.All())
		for _, n := range nodes {
			if n.Manager != nil && n.Spec.Role == api.RoleManager && n.Manager.Addr != "" && !slices.Contains(out, n.Manager.Addr) {
				out = append(out, n.Manager.Addr)
			}
		}
		return err
	})
	return out
}

// resolveManager maps a manager's Raft address to its API address, for
// forwarding writes to the leader.
func (d *daemon) resolveManager(raftAddr string) (string, error) {
	var addr string
	_ = d.store.View(func(tx store.ReadTx) error {
		nodes, err := store.Find[api.Node](tx, store.All())
		for _, n := range nodes {
			if n.Manager != nil && n.Manager.RaftAddr == raftAddr {
				addr = n.Manager.Addr
			}
		}
		return err
	})
	if addr != "" {
		return addr, nil
	}
	// Not registered yet (a leader that just started): the default
	// layout puts the API one port below Raft.
	host, port, err := net.SplitHostPort(raftAddr)
	if err != nil {
		return "", err
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 2 {
		return "", fmt.Errorf("manager at %s: unknown API address", raftAddr)
	}
	return net.JoinHostPort(host, strconv.Itoa(p-1)), nil
}

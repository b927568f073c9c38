package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gitorc/gitorc/cluster/allocator"
	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/store"
)

// recordNetworkPlan writes the address plan bootstrap was given into the
// store's cluster object, once: a plan already there wins (the cluster's
// addresses are allocated from it).
func (d *daemon) recordNetworkPlan(ctx context.Context) error {
	if d.state.Network == nil {
		return nil
	}
	_, err := d.store.Update(ctx, func(tx store.Tx) error {
		_, err := store.Get[api.Cluster](tx, api.ClusterID)
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return tx.Create(&api.Cluster{Meta: api.Meta{ID: api.ClusterID}, Spec: api.ClusterSpec{Network: *d.state.Network}})
	})
	if err != nil {
		return fmt.Errorf("record the address plan: %w", err)
	}
	return nil
}

// runAllocator records the plan and allocates subnets, VIPs and ports
// until ctx ends (the leader's).
func (d *daemon) runAllocator(ctx context.Context) error {
	// Until it is recorded nothing is allocated: the allocator would
	// write the default plan.
	for {
		err := d.recordNetworkPlan(ctx)
		if err == nil {
			break
		}
		d.log.Warn("address plan not recorded yet", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	a, err := allocator.NewController(allocator.Config{Store: d.store, Logger: d.log.With("component", "allocator")})
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

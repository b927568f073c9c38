package allocator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/store"
)

// Config configures a Controller.
type Config struct {
	Store  *store.Store
	Logger *slog.Logger
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.Store == nil {
		return errors.New("allocator: a store is required")
	}
	return nil
}

// Controller is the leader's allocation loop: every node that is not
// removed gets a subnet (or says on SubnetError why it cannot), a removed
// node's subnet is freed, vip-mode services get a VIP and dnsrr ones lose
// theirs, and every service's Endpoint.Ports follows its spec's ports with
// the published ports the cluster chooses filled in. A cluster made before the address plan existed gets the default
// plan written first.
type Controller struct {
	cfg  Config
	log  *slog.Logger
	last string // the problems last reported
}

// NewController returns a controller; Run starts it.
func NewController(cfg Config) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Controller{cfg: cfg, log: cfg.Logger}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Run allocates until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	return c.cfg.Store.RunLoop(ctx, store.LoopConfig{
		Kinds:   []store.Kind{store.KindNode, store.KindService, store.KindCluster},
		OnError: func(err error) { c.log.Warn("allocator pass failed", "err", err) },
	}, func(ctx context.Context) (time.Time, error) { return time.Time{}, c.Pass(ctx) })
}

// Pass allocates what is missing once and commits it in one transaction.
func (c *Controller) Pass(ctx context.Context) error {
	return store.RetryConflicts(5, func() error { return c.pass(ctx) })
}

// ReadConfig returns the cluster's address plan, the default when the
// cluster object does not exist (yet).
func ReadConfig(tx store.ReadTx) (api.NetworkConfig, bool, error) {
	cl, err := store.Get[api.Cluster](tx, api.ClusterID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return api.DefaultNetworkConfig(), false, nil
	case err != nil:
		return api.NetworkConfig{}, false, err
	}
	return cl.Spec.Network, true, nil
}

func (c *Controller) pass(ctx context.Context) error {
	var (
		cfg    api.NetworkConfig
		exists bool
		nodes  []*api.Node
		svcs   []*api.Service
	)
	err := c.cfg.Store.View(func(tx store.ReadTx) (err error) {
		if cfg, exists, err = ReadConfig(tx); err != nil {
			return err
		}
		if nodes, err = store.Find[api.Node](tx, store.All()); err != nil {
			return err
		}
		svcs, err = store.Find[api.Service](tx, store.All())
		return err
	})
	if err != nil {
		return err
	}
	changes, err := Decide(cfg, nodes, svcs)
	if err != nil {
		return err
	}
	c.report(changes.Problems)
	if exists && len(changes.Nodes) == 0 && len(changes.Services) == 0 {
		return nil
	}
	_, err = c.cfg.Store.Update(ctx, func(tx store.Tx) error {
		if !exists {
			err := tx.Create(&api.Cluster{Meta: api.Meta{ID: api.ClusterID}, Spec: api.ClusterSpec{Network: cfg}})
			if err != nil && !errors.Is(err, store.ErrExists) {
				return err
			}
		}
		for _, n := range changes.Nodes {
			if err := tx.Update(n); err != nil {
				return err
			}
		}
		for _, s := range changes.Services {
			if err := tx.Update(s); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("commit allocations: %w", err)
	}
	for _, n := range changes.Nodes {
		switch {
		case n.SubnetError != "":
			c.log.Warn("node gets no task subnet", "node", n.ID, "err", n.SubnetError)
		case n.Subnet != "":
			c.log.Info("node subnet", "node", n.ID, "subnet", n.Subnet)
		}
	}
	return nil
}

// report logs what could not be allocated, once for each new set.
func (c *Controller) report(problems []error) {
	msg := ""
	if err := errors.Join(problems...); err != nil {
		msg = err.Error()
	}
	if msg != c.last && msg != "" {
		c.log.Warn("allocation impossible", "err", msg)
	}
	c.last = msg
}

// Changes are the objects an allocation pass rewrites.
type Changes struct {
	Nodes    []*api.Node
	Services []*api.Service
	// Problems are what could not be allocated (a full VIP pool or
	// published port range).
	Problems []error
}

// Decide is the pure core of a pass: which nodes get or lose a subnet
// (or a reason for having none), which services get or lose a VIP, and
// which services' Endpoint.Ports change: each service's spec ports with
// Published filled in (see Ports), nil when it publishes none.
// The objects returned are the given ones, changed.
func Decide(cfg api.NetworkConfig, nodes []*api.Node, svcs []*api.Service) (Changes, error) {
	var out Changes
	subnets, err := NewSubnets(cfg, nodes)
	if err != nil {
		return out, err
	}
	for _, n := range nodes {
		switch {
		case n.Removed():
			if n.Subnet != "" || n.SubnetError != "" {
				n.Subnet, n.SubnetError = "", ""
				out.Nodes = append(out.Nodes, n)
			}
		case n.Subnet == "":
			s, err := subnets.Next(n)
			why := ""
			if err != nil {
				why = err.Error()
			}
			if s != n.Subnet || why != n.SubnetError {
				n.Subnet, n.SubnetError = s, why
				out.Nodes = append(out.Nodes, n)
			}
		case n.SubnetError != "": // has a subnet: nothing is wrong any more
			n.SubnetError = ""
			out.Nodes = append(out.Nodes, n)
		}
	}
	vips, err := NewVIPs(cfg, svcs)
	if err != nil {
		return out, err
	}
	ports := NewPorts(svcs)
	for _, s := range svcs {
		changed := false
		var problems []string
		has := s.Endpoint != nil && s.Endpoint.VIP != ""
		switch want := WantsVIP(s); {
		case want && !has:
			v, err := vips.Next()
			if err != nil {
				problems = append(problems, err.Error())
				out.Problems = append(out.Problems, fmt.Errorf("service %s gets no VIP: %w", s.Spec.Name, err))
				break
			}
			if s.Endpoint == nil {
				s.Endpoint = &api.Endpoint{}
			}
			s.Endpoint.VIP, changed = v, true
		case !want && has:
			s.Endpoint.VIP, changed = "", true
		}
		ps, err := ports.For(s)
		if err != nil {
			problems = append(problems, err.Error())
			out.Problems = append(out.Problems, err)
		}
		var cur []api.PortConfig
		if s.Endpoint != nil {
			cur = s.Endpoint.Ports
		}
		if !slices.Equal(cur, ps) {
			if s.Endpoint == nil {
				s.Endpoint = &api.Endpoint{}
			}
			s.Endpoint.Ports, changed = ps, true
		}
		// What could not be given stays on the service, where status and
		// the rollout's tracking see it, not in a log only.
		problem := strings.Join(problems, "; ")
		had := ""
		if s.Endpoint != nil {
			had = s.Endpoint.Problem
		}
		if had != problem {
			if s.Endpoint == nil {
				s.Endpoint = &api.Endpoint{}
			}
			s.Endpoint.Problem, changed = problem, true
		}
		if changed {
			out.Services = append(out.Services, s)
		}
	}
	return out, nil
}

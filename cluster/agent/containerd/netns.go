package containerd

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/netplane/netns"
)

// taskNet is what a task attached to the network plane gets: its own
// network namespace, its address and its nameserver.
type taskNet struct {
	nsPath     string
	addr       netip.Addr
	nameserver netip.Addr
}

// netnsPath is where a task's network namespace is bound; it follows from
// the ID alone, so that a container found without its task is cleaned up.
func (e *Executor) netnsPath(taskID string) string {
	return filepath.Join(e.cfg.DataDir, "netns", taskID)
}

// attachNetwork creates the task's network namespace and attaches it to
// the network plane. It returns nil when the task gets none of its own
// (no Config.Network, no address, or HostNetwork): its container then has
// a namespace with loopback only, or the host's. On failure nothing is
// left.
func (e *Executor) attachNetwork(ctx context.Context, t *api.Task) (*taskNet, error) {
	if e.cfg.Network == nil || t.Addr == "" || e.cfg.HostNetwork {
		return nil, nil
	}
	p, err := netip.ParsePrefix(t.Addr)
	if err != nil {
		return nil, fmt.Errorf("%w: address %q is not a CIDR", ErrInvalidSpec, t.Addr)
	}
	tn := &taskNet{nsPath: e.netnsPath(t.ID), addr: p.Addr()}
	if err := netns.Create(tn.nsPath); err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	ns, err := e.cfg.Network.Attach(ctx, t.ID, t.Addr, tn.nsPath)
	if err == nil {
		if tn.nameserver, err = netip.ParseAddr(ns); err != nil {
			err = fmt.Errorf("nameserver %q is not an address", ns)
		}
	}
	if err != nil {
		if derr := e.detachNetwork(context.WithoutCancel(ctx), t.ID); derr != nil {
			e.log.Warn("clean up after failed attach", logKeyTask, t.ID, logKeyErr, derr)
		}
		return nil, fmt.Errorf("attach network %s: %w", t.Addr, err)
	}
	return tn, nil
}

// detachNetwork detaches the task's namespace from the network plane and
// removes it. A task that has none is fine.
func (e *Executor) detachNetwork(ctx context.Context, taskID string) error {
	path := e.netnsPath(taskID)
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if e.cfg.Network != nil {
		if err := e.cfg.Network.Detach(ctx, taskID, path); err != nil {
			return fmt.Errorf("detach network: %w", err)
		}
	}
	if err := netns.Remove(path); err != nil {
		return fmt.Errorf("network: %w", err)
	}
	return nil
}

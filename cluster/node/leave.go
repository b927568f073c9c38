package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/controlapi/server"
)

// errLeft ends a node that left its cluster.
var errLeft = errors.New("left the cluster")

// LeaveDrainTimeout bounds the wait for a leaving node's containers.
const LeaveDrainTimeout = 2 * time.Minute

// Leave is POST /v1/leave: the node stops its session, removes its
// tasks' containers, and stops; run then deletes its state. A manager
// leaves only with force: demoting it first keeps the quorum safe.
func (n nodeAPI) Leave(ctx context.Context, force bool) (controlapi.LeaveReport, error) {
	d := n.d
	d.leaving.Lock()
	defer d.leaving.Unlock()
	if d.state.Role == api.RoleManager && !force {
		return controlapi.LeaveReport{}, server.Errorf(http.StatusConflict,
			"node %s is a manager: demote it first (gitorc node demote %s), or leave with --force, which can cost the cluster its quorum", d.state.ID, d.state.ID)
	}
	rep := controlapi.LeaveReport{Node: d.state.ID, Role: d.state.Role, DataDir: d.dir}
	if abs, err := filepath.Abs(d.dir); err == nil {
		rep.DataDir = abs
	}
	for _, p := range stateFiles(rep.DataDir) {
		if _, err := os.Lstat(p); err == nil {
			rep.Removes = append(rep.Removes, p)
		}
	}
	if d.agent != nil {
		if obs, err := d.exec.Observe(ctx); err == nil {
			rep.Containers = len(obs)
		}
		d.stopSession()
		d.agent.Assign(nil)
		ctx, cancel := context.WithTimeout(ctx, LeaveDrainTimeout)
		defer cancel()
		for {
			obs, err := d.exec.Observe(ctx)
			if err == nil && len(obs) == 0 {
				break
			}
			select {
			case <-ctx.Done():
				return controlapi.LeaveReport{}, unavailable(fmt.Errorf("the node's containers did not stop: %w", ctx.Err()))
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	if d.plane != nil {
		// No task is left: the network plane goes too (interfaces,
		// routes, the nftables table, attachments, keys).
		if err := d.plane.Teardown(ctx); err != nil {
			return controlapi.LeaveReport{}, server.WithStatus(http.StatusInternalServerError, fmt.Errorf("remove the network plane: %w", err))
		}
		rep.NetworkPlane = true
	}
	// The node stops before the answer goes out, so that a client that
	// has it finds the node gone; the control socket lets this request
	// finish (serveSocket).
	select {
	case <-d.left:
	default:
		close(d.left)
	}
	return rep, nil
}

// stateFiles are what a node keeps in its data dir, which it deletes
// when it leaves.
func stateFiles(dir string) []string {
	return []string{stateFile(dir), pkiDir(dir), raftDir(dir), executorDir(dir), networkDir(dir),
		filepath.Join(dir, "gitops"), recipientPath(dir), socketFile(dir)}
}

// forget deletes what a node that left kept in its data dir.
func (d *daemon) forget() error {
	var errs []error
	for _, p := range stateFiles(d.dir) {
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

package main

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
	"github.com/spf13/cobra"
)

// errLeft ends a node that left its cluster.
var errLeft = errors.New("left the cluster")

// leaveDrainTimeout bounds the wait for a leaving node's containers.
const leaveDrainTimeout = 2 * time.Minute

// Leave is POST /v1/leave: the node stops its session, removes its
// tasks' containers, and stops; run then deletes its state. A manager
// leaves only with force: demoting it first keeps the quorum safe.
func (n nodeAPI) Leave(ctx context.Context, force bool) (controlapi.LeaveReport, error) {
	d := n.d
	d.leaving.Lock()
	defer d.leaving.Unlock()
	if d.state.Role == api.RoleManager && !force {
		return controlapi.LeaveReport{}, controlapi.Errorf(http.StatusConflict,
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
		ctx, cancel := context.WithTimeout(ctx, leaveDrainTimeout)
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
			return controlapi.LeaveReport{}, controlapi.WithStatus(http.StatusInternalServerError, fmt.Errorf("remove the network plane: %w", err))
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

func newLeaveCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "leave",
		Short: "Make this node leave its cluster",
		Long: `Stops this node's tasks, stops the node and deletes its state from its data dir.
The managers then see it down and move its tasks; remove it from the list with
gitorc node rm on a manager. A manager must be demoted first (gitorc node demote),
or leave with --force.

With -o json: {"node", "role", "data_dir", "containers_removed",
"network_plane_removed", "removes" (the data dir's paths the node deletes as it
stops)}.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			if isRemote(cmd) {
				return fmt.Errorf("gitorc leave: %w", errNodeLocal)
			}
			// The node answers once its containers stopped, which it bounds
			// by leaveDrainTimeout: wait for that answer.
			out, err := newAPIClient(cmd).WithTimeout(leaveDrainTimeout+time.Minute).Leave(cmd.Context(), force)
			if err != nil {
				return err
			}
			if format == outJSON {
				return writeJSON(cmd.OutOrStdout(), out)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "node %s left the cluster: on a manager, gitorc node rm %s\n", out.Node, out.Node)
			return err
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "leave even as a manager")
	addOutputFlag(cmd)
	return cmd
}

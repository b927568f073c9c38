package main

import (
	"fmt"
	"time"

	"github.com/gitorc/gitorc/cluster/node"
	"github.com/spf13/cobra"
)

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
			// by node.LeaveDrainTimeout: wait for that answer.
			out, err := newAPIClient(cmd).WithTimeout(node.LeaveDrainTimeout+time.Minute).Leave(cmd.Context(), force)
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

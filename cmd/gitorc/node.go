package main

import (
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/spf13/cobra"
)

func newNodeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "node",
		Aliases: []string{"nodes"},
		Short:   "List, inspect, update and remove nodes (without a subcommand: node ls)",
		Args:    cobra.NoArgs,
		RunE:    runNodeLs,
	}
	addOutputFlag(cmd)
	ls := &cobra.Command{Use: "ls", Aliases: []string{"list"}, Short: "List nodes", Args: cobra.NoArgs, RunE: runNodeLs}
	addOutputFlag(ls)
	cmd.AddCommand(ls, newNodeInspectCmd(), newNodeUpdateCmd(), newNodeRmCmd(),
		newNodeRoleCmd("promote", api.RoleManager, `Makes nodes managers. Each one learns it at its next role check (every few
seconds), receives a manager certificate and the cluster's data key, copies
the store as a Raft learner and becomes a voter once it has caught up.`),
		newNodeRoleCmd("demote", api.RoleWorker, `Makes managers workers. The leader removes each from Raft; the node
receives a worker certificate and deletes its copy of the store. The last
manager cannot be demoted.`))
	return cmd
}

// newNodeRoleCmd is node promote|demote: node update --role for each node.
func newNodeRoleCmd(verb string, role api.NodeRole, long string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   verb + " NODE...",
		Short: strings.ToUpper(verb[:1]) + verb[1:] + " nodes to " + role.String() + "s",
		Long:  long + "\n" + nodesJSONDoc("changed"),
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			c := newAPIClient(cmd)
			var done []controlapi.Node
			for _, ref := range args {
				n, err := c.UpdateNode(cmd.Context(), ref, controlapi.NodeUpdate{Role: role.String()})
				if err != nil {
					err = fmt.Errorf("%s %s: %w", verb, ref, err)
					if format == outJSON {
						return writeDoneThen(cmd, done, err)
					}
					return err
				}
				done = append(done, n)
				if format == outText {
					fmt.Fprintf(cmd.OutOrStdout(), "node %s is to be a %s\n", n.Name, role)
				}
			}
			if format == outJSON {
				return writeDoneThen(cmd, done, nil)
			}
			return nil
		},
	}
	addOutputFlag(cmd)
	return cmd
}

// nodesJSONDoc documents the -o json output of the node commands that
// change nodes one by one.
func nodesJSONDoc(what string) string {
	return `With -o json: an array of the nodes ` + what + `, as gitorc node inspect shows
them; when one fails, those before it are printed and the exit code is 1.`
}

func runNodeLs(cmd *cobra.Command, _ []string) error {
	format, err := outputFormat(cmd, outText, outText, outJSON)
	if err != nil {
		return err
	}
	nodes, err := newAPIClient(cmd).Nodes(cmd.Context())
	if err != nil {
		return err
	}
	if format == outJSON {
		return writeJSON(cmd.OutOrStdout(), nodes)
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tROLE\tSTATUS\tAVAILABILITY\tMANAGER\tTASKS\tLABELS")
	for _, n := range nodes {
		mgr := ""
		if n.Manager != nil {
			mgr = "reachable"
			if !n.Manager.CaughtUp {
				mgr = "joining"
			}
			if n.Manager.Leader {
				mgr = "leader"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", shortID(n.ID), n.Name, n.Spec.Role, n.Status.State,
			n.Spec.Availability, mgr, n.Tasks, labelList(n.Spec.Labels))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, w := range nodeWarnings(nodes, now()) {
		fmt.Fprintln(cmd.OutOrStdout(), "warning: "+w)
	}
	return nil
}

// nodeWarnings says what is wrong with nodes that an operator must act
// on: a node that is down, a certificate that its node fails to renew.
func nodeWarnings(nodes []controlapi.Node, at time.Time) []string {
	var out []string
	for _, n := range nodes {
		if n.Removed() {
			continue
		}
		name := n.Name
		if name == "" {
			name = shortID(n.ID)
		}
		if n.Status.State == api.NodeDown {
			msg := "node " + name + " is down"
			if !n.Status.LastHeartbeat.IsZero() {
				msg += fmt.Sprintf(" (last heartbeat %s ago)", age(n.Status.LastHeartbeat))
			}
			if n.Status.Message != "" {
				msg += ": " + n.Status.Message
			}
			out = append(out, msg)
		}
		if st := n.Status; st.CertRenewalOverdue(at) {
			when := "expired " + age(st.CertNotAfter) + " ago"
			if st.CertNotAfter.After(at) {
				when = "expires in " + coarse(st.CertNotAfter.Sub(at))
			}
			out = append(out, fmt.Sprintf("node %s has not renewed its certificate, which %s (%s): it must reach a manager to renew it; see its log",
				name, when, st.CertNotAfter.UTC().Format("2006-01-02 15:04 MST")))
		}
	}
	return out
}

func labelList(labels map[string]string) string {
	var kv []string
	for k, v := range labels {
		kv = append(kv, k+"="+v)
	}
	if len(kv) == 0 {
		return "-"
	}
	slices.Sort(kv)
	return strings.Join(kv, ",")
}

func newNodeInspectCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "inspect NODE...",
		Short: "Show nodes in full (by name, ID or ID prefix)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := outputFormat(cmd, outJSON, outJSON, outYAML)
			if err != nil {
				return err
			}
			c := newAPIClient(cmd)
			nodes := make([]controlapi.Node, len(args))
			for i, a := range args {
				if nodes[i], err = c.Node(cmd.Context(), a); err != nil {
					return err
				}
			}
			if format == outYAML {
				return writeYAML(cmd.OutOrStdout(), nodes)
			}
			return writeJSON(cmd.OutOrStdout(), nodes)
		},
	}
	cmd.Flags().StringP("output", "o", "", "output format: json or yaml")
	return cmd
}

func newNodeUpdateCmd() *cobra.Command {
	var u controlapi.NodeUpdate
	var add []string
	cmd := &cobra.Command{
		Use:   "update NODE",
		Short: "Change a node's availability, role or labels",
		Long: `Changes what an operator sets on a node. --availability drain moves its
tasks elsewhere; pause keeps them but places no new ones.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			for _, kv := range add {
				k, v, _ := strings.Cut(kv, "=")
				if k == "" {
					return fmt.Errorf("--label-add %q: want KEY=VALUE", kv)
				}
				if u.LabelAdd == nil {
					u.LabelAdd = map[string]string{}
				}
				u.LabelAdd[k] = v
			}
			if u.Availability == "" && u.Role == "" && len(u.LabelAdd) == 0 && len(u.LabelRm) == 0 {
				return fmt.Errorf("nothing to update: give --availability, --role, --label-add or --label-rm")
			}
			n, err := newAPIClient(cmd).UpdateNode(cmd.Context(), args[0], u)
			if err != nil {
				return err
			}
			if format == outJSON {
				return writeJSON(cmd.OutOrStdout(), n)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s: availability %s, role %s, labels %s\n", n.Name, n.Spec.Availability, n.Spec.Role, labelList(n.Spec.Labels))
			return err
		},
	}
	cmd.Flags().StringVar(&u.Availability, "availability", "", "active, pause or drain")
	cmd.Flags().StringVar(&u.Role, "role", "", "worker or manager (the desired role)")
	cmd.Flags().StringArrayVar(&add, "label-add", nil, "add or change a label KEY=VALUE (repeatable)")
	cmd.Flags().StringArrayVar(&u.LabelRm, "label-rm", nil, "remove a label KEY (repeatable)")
	addOutputFlag(cmd)
	return cmd
}

func newNodeRmCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm NODE...",
		Aliases: []string{"remove"},
		Short:   "Remove nodes that left the cluster",
		Long: `Removes nodes from the cluster's state. A node that is still ready is refused
unless --force is given; a manager must be demoted first.
` + nodesJSONDoc("removed"),
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			c := newAPIClient(cmd)
			var done []controlapi.Node
			for _, a := range args {
				n, err := c.RemoveNode(cmd.Context(), a, force)
				if err != nil {
					if format == outJSON {
						return writeDoneThen(cmd, done, err)
					}
					return err
				}
				done = append(done, n)
				if format == outText {
					fmt.Fprintf(cmd.OutOrStdout(), "removed node %s (%s)\n", n.Name, n.ID)
				}
			}
			if format == outJSON {
				return writeDoneThen(cmd, done, nil)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove a node even if it is ready")
	addOutputFlag(cmd)
	return cmd
}

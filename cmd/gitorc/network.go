package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/spf13/cobra"
)

func newNetworkCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "network",
		Aliases: []string{"networks"},
		Short:   "List and inspect networks: their services, VIPs and task addresses",
		Long: `Networks are isolation domains of the cluster's encrypted overlay: tasks of services
that share a network reach each other (by name, VIP or address), others cannot.
Every task has one address, from its node's share of the task pool.`,
	}
	ls := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List networks with their services and tasks",
		Args:    cobra.NoArgs,
		RunE:    runNetworkLs,
	}
	addOutputFlag(ls)
	inspect := &cobra.Command{
		Use:   "inspect NETWORK...",
		Short: "Show networks: services with their names and VIPs, tasks with their addresses",
		Args:  cobra.MinimumNArgs(1),
		RunE:  runNetworkInspect,
	}
	addOutputFlag(inspect)
	var req controlapi.CreateNetworkRequest
	var labels []string
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an external network, for stacks that declare it external: true",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			req.Name = args[0]
			if req.Labels, err = labelMap(labels); err != nil {
				return err
			}
			n, err := newAPIClient(cmd).CreateNetwork(cmd.Context(), req)
			if err != nil {
				return err
			}
			if format == outJSON {
				return writeJSON(cmd.OutOrStdout(), n)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "network %s created (%s)\n", n.Spec.Name, shortID(n.ID))
			return nil
		},
	}
	create.Flags().BoolVar(&req.Internal, "internal", false, "no route out of the cluster")
	create.Flags().BoolVar(&req.Attachable, "attachable", false, "services of any stack may join it")
	create.Flags().StringVar(&req.Subnet, "subnet", "", "a subnet (CIDR) to check against the cluster's pools")
	create.Flags().StringArrayVarP(&labels, "label", "l", nil, "label KEY=VALUE (repeat)")
	addOutputFlag(create)
	rm := &cobra.Command{
		Use:     "rm NETWORK...",
		Aliases: []string{"remove"},
		Short:   "Remove external networks no service is on",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return removeEach(cmd, "network", args, func(c *client.Client, name string) (string, error) {
				n, err := c.RemoveNetwork(cmd.Context(), name)
				return n.Spec.Name, err
			})
		},
	}
	addOutputFlag(rm)
	cmd.AddCommand(ls, inspect, create, rm)
	return cmd
}

func runNetworkLs(cmd *cobra.Command, _ []string) error {
	format, err := outputFormat(cmd, outText, outText, outJSON)
	if err != nil {
		return err
	}
	nets, err := newAPIClient(cmd).Networks(cmd.Context())
	if err != nil {
		return err
	}
	if format == outJSON {
		return writeJSON(cmd.OutOrStdout(), nets)
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSTACK\tSCOPE\tSERVICES\tTASKS")
	for _, n := range nets {
		scope := "egress"
		if n.Spec.Internal {
			scope = "internal"
		}
		if n.Spec.External {
			scope += ", external"
		}
		names := make([]string, len(n.Services))
		for i, s := range n.Services {
			names[i] = s.Name
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", shortID(n.ID), n.Spec.Name, orDash(n.Spec.Stack), scope,
			orDash(strings.Join(names, ",")), len(n.Tasks))
	}
	return tw.Flush()
}

func runNetworkInspect(cmd *cobra.Command, args []string) error {
	format, err := outputFormat(cmd, outText, outText, outJSON)
	if err != nil {
		return err
	}
	c := newAPIClient(cmd)
	nets := make([]controlapi.Network, len(args))
	for i, a := range args {
		if nets[i], err = c.Network(cmd.Context(), a); err != nil {
			return err
		}
	}
	if format == outJSON {
		return writeJSON(cmd.OutOrStdout(), nets)
	}
	w := cmd.OutOrStdout()
	for i, n := range nets {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "network %s (%s)\n", n.Spec.Name, n.ID)
		if n.Spec.Internal {
			fmt.Fprintln(w, "  internal: no route out of the cluster")
		} else {
			fmt.Fprintln(w, "  egress: masqueraded out of the cluster")
		}
		if n.Spec.Subnet != "" {
			fmt.Fprintf(w, "  subnet: %s (checked only: tasks take addresses from their node's subnet)\n", n.Spec.Subnet)
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  SERVICE\tNAMES\tMODE\tVIP")
		for _, s := range n.Services {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", s.Name, orDash(strings.Join(append([]string{s.Name}, s.Aliases...), ",")), s.Mode, orDash(s.VIP))
		}
		fmt.Fprintln(tw, "  TASK\tNODE\tADDRESS\tSTATE\tIN LOAD BALANCER")
		for _, t := range n.Tasks {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%t\n", t.Name, orDash(t.Node), t.Addr, t.State, t.InLoadBalancer)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

package main

import "github.com/spf13/cobra"

// newStackPsCmd is `gitorc stack ps STACK`; stack.go adds it.
func newStackPsCmd() *cobra.Command {
	var node string
	cmd := &cobra.Command{
		Use:   "ps STACK",
		Short: "List the tasks of a stack's services",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return listTasks(cmd, "", args[0], node)
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "only tasks on this node")
	addOutputFlag(cmd)
	return cmd
}

// newStackServicesCmd is `gitorc stack services STACK`; stack.go adds it.
func newStackServicesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "services STACK",
		Short: "List a stack's services with their replicas and rollout progress",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return listServices(cmd, args[0])
		},
	}
	addOutputFlag(cmd)
	return cmd
}

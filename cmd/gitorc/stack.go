package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/spf13/cobra"
)

func init() { register(newStackCmd) }

func newStackCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "stack",
		Short: "Work with stacks",
	}
	cmd.AddCommand(newStackConfigCmd(), newStackDeployCmd(), newStackRmCmd(), newStackPsCmd(), newStackServicesCmd())
	return cmd
}

func newStackConfigCmd() *cobra.Command {
	var name string
	var envFiles []string
	cmd := &cobra.Command{
		Use:   "config PATH...",
		Short: "Print stacks as gitorc will deploy them, with every default filled in",
		Long: `Loads each PATH (a stack file, or a repository directory) and prints the
normalized specs: names prefixed with the stack, Swarm's defaults filled in,
secrets known by their file and never by their content.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := outputFormat(cmd, outYAML, outYAML, outJSON)
			if err != nil {
				return err
			}
			results := loadPaths(cmd.Context(), args, name, envFiles)
			var bundles []api.Bundle
			var problems []string
			for _, r := range results {
				for _, w := range r.warnings {
					fmt.Fprintln(cmd.ErrOrStderr(), w.String())
				}
				for _, d := range r.Errors {
					problems = append(problems, d.String())
				}
				if r.Failure != nil {
					problems = append(problems, r.Failure.Error())
				}
				for _, s := range r.Stacks {
					bundles = append(bundles, s.Bundle)
				}
			}
			if len(problems) > 0 {
				return errors.New(strings.Join(problems, "\n"))
			}
			if format == outJSON {
				return writeJSON(cmd.OutOrStdout(), bundles)
			}
			for i, b := range bundles {
				if i > 0 {
					fmt.Fprintln(cmd.OutOrStdout(), "---")
				}
				if err := writeYAML(cmd.OutOrStdout(), b); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "stack name for a single file (default: the file's name)")
	cmd.Flags().StringArrayVar(&envFiles, "env-file", nil, "env file for interpolation of a single file (default: .env beside it)")
	cmd.Flags().StringP("output", "o", "", "output format: yaml or json")
	return cmd
}

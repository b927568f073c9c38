package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/gitorc/gitorc/reconcile"
	"github.com/spf13/cobra"
)

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

// stackChange is gitorc stack deploy|rm -o json: the stack, and the plan
// the manager made for it (reconcile.Changeset: "steps", each with its
// "kind", "name", "stack", "action" and field "changes", secrets by hash
// only; and "problems"). A plan with problems was refused and nothing of
// it applied; otherwise it was applied in one transaction.
type stackChange struct {
	Stack string `json:"stack"`
	reconcile.Changeset
}

// stackChangeDoc documents stackChange in the commands' help.
const stackChangeDoc = `With -o json: {"stack", "steps": [{"kind", "name", "stack", "action", "changes"}],
"problems"}; a plan refused for its problems is printed too, with exit code 1.`

// writeStackChange prints a stack deploy or rm as JSON, and returns err.
// A plan the manager refused for its problems (a conflict answer that
// carries it) is printed as well: the problems are what a script wants.
func writeStackChange(w io.Writer, stack string, cs reconcile.Changeset, err error) error {
	if err != nil {
		var ae *client.Error
		var ans struct {
			Plan *reconcile.Changeset `json:"plan"`
		}
		if !errors.As(err, &ae) || json.Unmarshal(ae.Body, &ans) != nil || ans.Plan == nil || len(ans.Plan.Problems) == 0 {
			return err
		}
		cs = *ans.Plan
	}
	if cs.Steps == nil {
		cs.Steps = []reconcile.Step{}
	}
	if werr := writeJSON(w, stackChange{Stack: stack, Changeset: cs}); werr != nil && err == nil {
		return werr
	}
	return err
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/gitorc/gitorc/compose"
	"github.com/gitorc/gitorc/reconcile"
	"github.com/spf13/cobra"
)

func newStackDeployCmd() *cobra.Command {
	var files, envFiles, profiles []string
	var wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "deploy -c FILE [-c FILE...] NAME",
		Short: "Deploy a stack by hand, as docker stack deploy does (Git is the usual way)",
		Long: `Deploys a stack by hand, as docker stack deploy does (Git is the usual way),
and prints the plan the manager applied.
` + stackChangeDoc,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			if len(files) == 0 {
				return fmt.Errorf("no stack file: give one or more with -c FILE")
			}
			cwd, _ := os.Getwd()
			src := compose.Source{Name: args[0], Files: files, EnvFiles: envFiles, Root: cwd, Profiles: profiles}
			src.Policies, src.CheckPolicies = clusterPolicies(cmd)
			st, err := compose.Load(cmd.Context(), src)
			if err != nil {
				return err
			}
			for _, w := range st.Warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), w.String())
			}
			req, err := deployRequestFor(st, filepath.Dir(files[0]))
			if err != nil {
				return err
			}
			cs, err := stackPlan(newAPIClient(cmd).DeployStack(cmd.Context(), args[0], req))
			if format == outJSON {
				return writeStackChange(cmd.OutOrStdout(), args[0], cs, err)
			}
			if err != nil {
				return err
			}
			if err := reconcile.Format(cmd.OutOrStdout(), cs, false, false); err != nil || !wait {
				return err
			}
			return waitStack(cmd, newAPIClient(cmd), args[0], timeout)
		},
	}
	cmd.Flags().StringArrayVarP(&files, "compose-file", "c", nil, "stack file (repeat to merge overrides)")
	cmd.Flags().StringArrayVar(&profiles, "profile", nil, "an active compose profile (repeat; \"*\" for all)")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until every service of the stack has rolled out, printing image pulls per node as they go")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "with --wait, give up after this long")
	cmd.Flags().StringArrayVar(&envFiles, "env-file", nil, "env file for interpolation")
	addOutputFlag(cmd)
	return cmd
}

// stackPlan decodes the plan a stack deploy or rm answered.
func stackPlan(plan controlapi.Plan, err error) (reconcile.Changeset, error) {
	var cs reconcile.Changeset
	if err != nil {
		return cs, err
	}
	if err := json.Unmarshal(plan, &cs); err != nil {
		return cs, fmt.Errorf("stack plan: decode answer: %w", err)
	}
	return cs, nil
}

// deployRequestFor reads what a stack's files refer to: sealed secrets go
// as they are (the daemon opens them), configs as their content.
func deployRequestFor(st *compose.Stack, dir string) (controlapi.DeployRequest, error) {
	desired, sealed, err := reconcile.DeployPayload(st, dir)
	return controlapi.DeployRequest{Desired: desired, Sealed: sealed}, err
}

func newStackRmCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a stack's services, networks, secrets, configs and volumes",
		Long: `Removes a stack's services, networks, secrets, configs and volumes, and prints
the plan the manager applied; a stack with nothing to remove is an error.
` + stackChangeDoc,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			cs, err := stackPlan(newAPIClient(cmd).RemoveStack(cmd.Context(), args[0]))
			if err != nil {
				return err
			}
			if !cs.HasChanges() {
				return fmt.Errorf("stack %s: nothing to remove", strings.TrimSpace(args[0]))
			}
			if format == outJSON {
				return writeStackChange(cmd.OutOrStdout(), args[0], cs, nil)
			}
			return reconcile.Format(cmd.OutOrStdout(), cs, false, false)
		},
	}
	addOutputFlag(cmd)
	return cmd
}

// waitStack waits until every service of a stack runs its desired tasks
// with no rollout in flight, printing the image pulls per node as they
// go; a rollout that failed (paused, rolled back) ends the wait with an
// error.
func waitStack(cmd *cobra.Command, c *client.Client, stack string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
	defer cancel()
	var pulls pullWatch
	for {
		pulls.poll(ctx, c, cmd.OutOrStdout())
		svcs, err := c.Services(ctx)
		if err == nil {
			done, failed := true, []string{}
			for _, s := range svcs {
				if s.Spec.Stack != stack {
					continue
				}
				switch u := s.Update; {
				case u != nil && (u.State == api.UpdatePaused || u.State == api.UpdateRollbackCompleted || u.State == api.UpdateRollbackPaused):
					failed = append(failed, fmt.Sprintf("%s (%s)", s.Spec.Name, s.Progress()))
				case u != nil && u.State != api.UpdateCompleted && u.State != api.UpdateNone:
					done = false
				case s.Spec.Mode.IsJob():
					done = done && s.Completed >= s.Desired
				case s.Spec.Mode.IsGlobal():
					// Desired counts the nodes given a task: none yet is
					// not done.
					done = done && s.Desired > 0 && s.Running >= s.Desired
				default:
					done = done && s.Running >= s.Desired
				}
			}
			if len(failed) > 0 {
				return fmt.Errorf("stack %s did not roll out: %s", stack, strings.Join(failed, ", "))
			}
			if done {
				fmt.Fprintf(cmd.OutOrStdout(), "stack %s rolled out\n", stack)
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stack %s still rolling out after %s: see gitorc stack ps %s", stack, timeout, stack)
		case <-time.After(syncPollEvery):
		}
	}
}

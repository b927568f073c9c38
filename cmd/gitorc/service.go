package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/spf13/cobra"
)

func newServiceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "service",
		Aliases: []string{"services"},
		Short:   "List, inspect, scale, roll back and redeploy services",
	}
	cmd.AddCommand(newServiceLsCmd(), newServiceInspectCmd(), newServiceScaleCmd(), newServiceRollbackCmd(), newServiceUpdateCmd())
	return cmd
}

func newServiceLsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List services with their replicas and rollout progress",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return listServices(cmd, "")
		},
	}
	addOutputFlag(cmd)
	return cmd
}

// listServices prints every service, or those of one stack.
func listServices(cmd *cobra.Command, stack string) error {
	format, err := outputFormat(cmd, outText, outText, outJSON)
	if err != nil {
		return err
	}
	all, err := getServices(cmd, newAPIClient(cmd))
	if err != nil {
		return err
	}
	svcs := all[:0]
	for _, s := range all {
		if stack == "" || s.Spec.Stack == stack {
			svcs = append(svcs, s)
		}
	}
	if stack != "" && len(svcs) == 0 {
		return fmt.Errorf("stack %q has no services", stack)
	}
	if format == outJSON {
		return writeJSON(cmd.OutOrStdout(), svcs)
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tMODE\tREPLICAS\tIMAGE\tPORTS\tUPDATE")
	var problems []string
	for _, s := range svcs {
		replicas := fmt.Sprintf("%d/%d", s.Running, s.Desired)
		if s.Spec.Mode.IsJob() {
			replicas = fmt.Sprintf("%d/%d completed", s.Completed, s.Desired)
		}
		progress := s.Update.Progress(now())
		if progress == "" {
			progress = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", shortID(s.ID), s.Spec.Name, s.Spec.Mode, replicas, s.Spec.Task.Container.Image, ports(s.Service), progress)
		if s.Endpoint != nil && s.Endpoint.Problem != "" {
			problems = append(problems, s.Spec.Name+": "+s.Endpoint.Problem)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, p := range problems {
		fmt.Fprintln(cmd.OutOrStdout(), p)
	}
	return nil
}

// ports is a service's published ports as docker service ls shows them:
// *:8080->80/tcp on every node (ingress), host:8080->80/tcp on the nodes
// of its tasks; "-" when none. Ports the allocator has not filled in yet
// show *:?.
func ports(s api.Service) string {
	ps := s.Spec.Endpoint.Ports
	if s.Endpoint != nil && len(s.Endpoint.Ports) > 0 {
		ps = s.Endpoint.Ports
	}
	var out []string
	for _, p := range ps {
		where := "*"
		if p.Mode == api.PublishHost {
			where = "host"
		}
		pub := "?"
		if p.Published != 0 {
			pub = strconv.FormatUint(uint64(p.Published), 10)
		}
		out = append(out, fmt.Sprintf("%s:%s->%d/%s", where, pub, p.Target, p.Protocol))
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, ",")
}

// rollouts returns a "NAME: progress" line for each service whose rollout
// is news: in flight, waiting for what it depends on, paused, or rolled
// back (a completed one is not).
func rollouts(svcs []controlapi.Service, at time.Time) []string {
	var out []string
	for _, s := range svcs {
		if s.Update == nil || s.Update.State == api.UpdateNone || s.Update.State == api.UpdateCompleted {
			continue
		}
		out = append(out, s.Spec.Name+": "+s.Update.Progress(at))
	}
	sort.Strings(out)
	return out
}

// printRollouts is gitorc status's rollout section: a line for each
// service whose rollout is in flight, held, paused or rolled back.
func printRollouts(cmd *cobra.Command, c *client.Client) error {
	svcs, err := getServices(cmd, c)
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	if lines := rollouts(svcs, now()); len(lines) > 0 {
		fmt.Fprintln(w, "rollouts:")
		for _, l := range lines {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
	if lines := unserved(svcs); len(lines) > 0 {
		fmt.Fprintln(w, "not served:")
		for _, l := range lines {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
	return nil
}

// unserved is a line for each service whose published ports or VIP
// cannot be served: no task in its load-balancing set (connections are
// refused), or what the allocator could not give it.
func unserved(svcs []controlapi.Service) []string {
	var out []string
	for _, s := range svcs {
		if s.Endpoint != nil && s.Endpoint.Problem != "" {
			out = append(out, s.Spec.Name+": "+s.Endpoint.Problem)
		}
		if p := ports(s.Service); p != "-" && s.Serving == 0 && !s.Spec.Mode.IsJob() {
			out = append(out, fmt.Sprintf("%s: %s: no healthy task, connections are refused", s.Spec.Name, p))
		}
	}
	sort.Strings(out)
	return out
}

// getServices fetches every service.
func getServices(cmd *cobra.Command, c *client.Client) ([]controlapi.Service, error) {
	return c.Services(cmd.Context())
}

func newServiceInspectCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "inspect SERVICE...",
		Short: "Show services in full: spec, previous spec, rollout state",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := outputFormat(cmd, outJSON, outJSON, outYAML)
			if err != nil {
				return err
			}
			c := newAPIClient(cmd)
			svcs := make([]controlapi.Service, len(args))
			for i, a := range args {
				if svcs[i], err = c.Service(cmd.Context(), a); err != nil {
					return err
				}
			}
			if format == outYAML {
				return writeYAML(cmd.OutOrStdout(), svcs)
			}
			return writeJSON(cmd.OutOrStdout(), svcs)
		},
	}
	cmd.Flags().StringP("output", "o", "", "output format: json or yaml")
	return cmd
}

// serviceAction makes a change to a service (scale, rollback, force)
// and prints a line, or the service as JSON.
func serviceAction(cmd *cobra.Command, change func(*client.Client) (controlapi.Service, error), line func(controlapi.Service) string) error {
	format, err := outputFormat(cmd, outText, outText, outJSON)
	if err != nil {
		return err
	}
	s, err := change(newAPIClient(cmd))
	if err != nil {
		return err
	}
	if format == outJSON {
		return writeJSON(cmd.OutOrStdout(), s)
	}
	_, err = fmt.Fprintln(cmd.OutOrStdout(), line(s))
	return err
}

func newServiceScaleCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "scale SERVICE=REPLICAS...",
		Short: "Set the replica count of replicated services (drift from Git until Git agrees)",
		Long: `Sets the replica count of replicated services; the GitOps loop reports it as
drift until Git says the same.
With -o json: an array of the services scaled, as gitorc service inspect shows
them; when one fails, those before it are printed and the exit code is 1.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			type scale struct {
				name string
				n    uint64
			}
			var todo []scale
			for _, a := range args {
				name, num, ok := strings.Cut(a, "=")
				n, err := strconv.ParseUint(num, 10, 64)
				if !ok || name == "" || err != nil {
					return fmt.Errorf("%q: want SERVICE=REPLICAS, e.g. shop_web=5", a)
				}
				todo = append(todo, scale{name, n})
			}
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			if format == outJSON {
				// One document for all: an array of the services scaled.
				var done []controlapi.Service
				for _, s := range todo {
					svc, err := newAPIClient(cmd).Scale(cmd.Context(), s.name, s.n, 0)
					if err != nil {
						return writeDoneThen(cmd, done, err)
					}
					done = append(done, svc)
				}
				return writeDoneThen(cmd, done, nil)
			}
			for _, s := range todo {
				change := func(c *client.Client) (controlapi.Service, error) { return c.Scale(cmd.Context(), s.name, s.n, 0) }
				err := serviceAction(cmd, change, func(svc controlapi.Service) string {
					return fmt.Sprintf("%s scaled to %d (the GitOps loop reports this as drift until Git says the same)", svc.Spec.Name, svc.Spec.Replicas)
				})
				if err != nil {
					return err
				}
			}
			return nil
		},
	}
	addOutputFlag(cmd)
	return cmd
}

func newServiceRollbackCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollback SERVICE",
		Short: "Roll a service back to its previous spec",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rollback := func(c *client.Client) (controlapi.Service, error) {
				return c.RollbackService(cmd.Context(), args[0], 0)
			}
			return serviceAction(cmd, rollback, func(s controlapi.Service) string {
				return fmt.Sprintf("%s: rolling back to %s", s.Spec.Name, s.Spec.Task.Container.Image)
			})
		},
	}
	addOutputFlag(cmd)
	return cmd
}

func newServiceUpdateCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "update SERVICE --force",
		Short: "Redeploy a service with its current spec (--force)",
		Long: `Replaces every task of the service by a rolling update with the same spec.
Other changes belong in Git: edit the stack file and push.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !force {
				return fmt.Errorf("nothing to update: only --force is supported here; change the service in Git")
			}
			update := func(c *client.Client) (controlapi.Service, error) { return c.ForceUpdate(cmd.Context(), args[0], 0) }
			return serviceAction(cmd, update, func(s controlapi.Service) string {
				return fmt.Sprintf("%s: redeploying %d task(s) (force update %d)", s.Spec.Name, s.Desired, s.Spec.Task.ForceUpdate)
			})
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "replace every task even though the spec is unchanged")
	addOutputFlag(cmd)
	return cmd
}

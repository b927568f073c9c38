package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/spf13/cobra"
)

func newCACmd() *cobra.Command {
	inspect := func(cmd *cobra.Command, _ []string) error {
		format, err := outputFormat(cmd, outText, outText, outJSON)
		if err != nil {
			return err
		}
		rep, err := newAPIClient(cmd).CA(cmd.Context())
		if err != nil {
			return err
		}
		if format == outJSON {
			return writeJSON(cmd.OutOrStdout(), rep)
		}
		printCA(cmd.OutOrStdout(), rep)
		return nil
	}
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Show the cluster's root CA and any rotation of it (ca inspect), or rotate it",
		Args:  cobra.NoArgs,
		RunE:  inspect,
	}
	addOutputFlag(cmd)
	ins := &cobra.Command{
		Use:   "inspect",
		Short: "Show the cluster's root CA (its digest, what join tokens pin) and any rotation in progress",
		Args:  cobra.NoArgs,
		RunE:  inspect,
	}
	addOutputFlag(ins)
	var detach bool
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Move the cluster onto a new root CA, without restarting any task",
		Long: `Makes a new root CA and moves every node (managers and workers) onto a certificate
of it, as docker swarm ca --rotate does; no task restarts. It prints progress (nodes on
the new root / all) and ends when the cluster trusts the new root alone; --detach returns
at once (gitorc ca shows the progress). A node that is down holds the rotation until it
is back, or removed (gitorc node rm --force).

When it ends, certificates of the old root are refused: the join tokens change (gitorc
token shows the new ones), and admin certificates issued before the rotation stop
working (issue new ones with gitorc admin-cert issue).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			c := newAPIClient(cmd)
			rep, err := c.RotateCA(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if rep.Rotation == nil { // ended already
				if format == outJSON {
					return writeJSON(out, rep)
				}
				printCA(out, rep)
				return nil
			}
			target := rep.Rotation.NewRoot
			if format == outText {
				if rep.Started != nil && *rep.Started {
					fmt.Fprintf(out, "rotation started: new root %s\n", target)
				} else {
					fmt.Fprintf(out, "a rotation is in progress already: to root %s\n", target)
				}
			}
			if detach {
				if format == outJSON {
					return writeJSON(out, rep)
				}
				return nil
			}
			final, err := waitRotation(cmd.Context(), c, target, rep, func(r *controlapi.RotationReport) {
				if format == outText {
					fmt.Fprintln(out, progressLine(r))
				}
			})
			if err != nil {
				return err
			}
			if format == outJSON {
				return writeJSON(out, final)
			}
			fmt.Fprintf(out, "root rotated: the cluster trusts %s alone; certificates of the old root are refused.\n"+
				"The join tokens changed (gitorc token worker|manager). Admin certificates issued before the\n"+
				"rotation no longer work: issue new ones with gitorc admin-cert issue.\n", final.Root)
			return nil
		},
	}
	rotate.Flags().BoolVarP(&detach, "detach", "d", false, "return once the rotation has started")
	addOutputFlag(rotate)
	cmd.AddCommand(ins, rotate)
	return cmd
}

// waitRotation polls the CA until the cluster trusts target alone,
// calling progress when the nodes on the new root change.
func waitRotation(ctx context.Context, c *client.Client, target string, rep controlapi.CAReport, progress func(*controlapi.RotationReport)) (controlapi.CAReport, error) {
	last := ""
	for {
		if rep.Rotation == nil && rep.Root == target {
			return rep, nil
		}
		if rep.Rotation == nil || rep.Rotation.NewRoot != target {
			return rep, fmt.Errorf("gitorc ca rotate: the rotation to %s was replaced or cancelled: the root is %s", target, rep.Root)
		}
		if line := progressLine(rep.Rotation); line != last {
			progress(rep.Rotation)
			last = line
		}
		select {
		case <-ctx.Done():
			return rep, fmt.Errorf("gitorc ca rotate: stopped waiting (the rotation goes on: gitorc ca shows it): %w", ctx.Err())
		case <-time.After(time.Second):
		}
		prev := rep
		var err error
		if rep, err = c.CA(ctx); err != nil {
			if prev.Rotation != nil && prev.Rotation.Done == prev.Rotation.Nodes && c.Remote() {
				// Every node was on the new root: the rotation ended, and
				// this admin certificate, the old root's, is refused now.
				return controlapi.CAReport{Root: target}, fmt.Errorf("gitorc ca rotate: the rotation to %s has ended, and this admin certificate, of the old root, is refused now: issue a new one with gitorc admin-cert issue (%w)", target, err)
			}
			return rep, err
		}
	}
}

// progressLine says how far a rotation is.
func progressLine(r *controlapi.RotationReport) string {
	s := fmt.Sprintf("nodes on the new root: %d/%d", r.Done, r.Nodes)
	if len(r.Pending) > 0 {
		var names []string
		for _, p := range r.Pending {
			name := p.ID
			if p.Hostname != "" && p.Hostname != p.ID {
				name += " (" + p.Hostname + ")"
			}
			if p.State != api.NodeReady.String() {
				name += " [" + p.State + "]"
			}
			names = append(names, name)
		}
		s += "; waiting for " + strings.Join(names, ", ")
	}
	return s
}

func printCA(w io.Writer, rep controlapi.CAReport) {
	fmt.Fprintf(w, "root CA:   %s (expires %s)\n", rep.Root, rep.RootNotAfter.Format("2006-01-02"))
	if !rep.RotatedAt.IsZero() {
		fmt.Fprintf(w, "rotated:   %s\n", rep.RotatedAt.Format(time.RFC3339))
	}
	if r := rep.Rotation; r != nil {
		fmt.Fprintf(w, "rotation:  to %s, started %s ago\n           %s\n", r.NewRoot, age(r.Started), progressLine(r))
	} else {
		fmt.Fprintln(w, "rotation:  none")
	}
}

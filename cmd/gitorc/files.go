package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/spf13/cobra"
)

func init() {
	register(func() *cobra.Command { return newFileObjectCmd("secret", "secrets") })
	register(func() *cobra.Command { return newFileObjectCmd("config", "configs") })
}

// newFileObjectCmd is gitorc secret|config: their versions, never their
// content.
func newFileObjectCmd(kind, plural string) *cobra.Command {
	cmd := &cobra.Command{
		Use:     kind,
		Aliases: []string{plural},
		Short:   fmt.Sprintf("List %s and their versions (never their content)", plural),
		Long: fmt.Sprintf(`A %[1]s's version is the hash of its content. A commit that changes the content
makes a new version and rolls the services that use it; tasks keep the version they
started with until they are replaced, and the cluster keeps an earlier version while
a task or a rollback may still need it, then deletes it.`, kind),
	}
	ls := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   fmt.Sprintf("List %s: each version with the services and tasks that use it", plural),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			var objs []controlapi.FileObject
			if err := newAPIClient(cmd).call(cmd.Context(), "GET", "/v1/"+plural, nil, &objs); err != nil {
				return err
			}
			if format == outJSON {
				return writeJSON(cmd.OutOrStdout(), objs)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tSTACK\tVERSION\tSTATE\tSERVICES\tTASKS\tUPDATED")
			for _, o := range objs {
				state := "current"
				switch {
				case o.VersionOf != "":
					state = "kept"
				case o.External:
					state = "current, external"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", shortID(o.ID), o.Name, orDash(o.Stack), orDash(shortHash(o.DataHash)),
					state, orDash(strings.Join(o.Services, ",")), o.Tasks, age(o.UpdatedAt))
			}
			return tw.Flush()
		},
	}
	addOutputFlag(ls)
	cmd.AddCommand(ls)
	return cmd
}

// shortHash is a content hash as a person compares them: its algorithm
// and 12 hex digits.
func shortHash(h string) string {
	alg, hex, ok := strings.Cut(h, ":")
	if !ok || len(hex) <= 12 {
		return h
	}
	return alg + ":" + hex[:12]
}

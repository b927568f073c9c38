package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/spf13/cobra"
)

func newSecretCmd() *cobra.Command { return newFileObjectCmd("secret", "secrets") }
func newConfigCmd() *cobra.Command { return newFileObjectCmd("config", "configs") }

// newFileObjectCmd is gitorc secret|config: their versions, never their
// content.
func newFileObjectCmd(kind, plural string) *cobra.Command {
	fk := client.FileKind(plural)
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
			objs, err := newAPIClient(cmd).Files(cmd.Context(), fk)
			if err != nil {
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
	inspect := &cobra.Command{
		Use:   "inspect NAME...",
		Short: fmt.Sprintf("Show %s: every version with its users (never the content)", plural),
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			objs, err := newAPIClient(cmd).Files(cmd.Context(), fk)
			if err != nil {
				return err
			}
			out := []controlapi.FileObject{}
			for _, name := range args {
				n := len(out)
				for _, o := range objs {
					if o.Name == name || o.ID == name {
						out = append(out, o)
					}
				}
				if len(out) == n {
					return fmt.Errorf("%s %q not found", kind, name)
				}
			}
			return writeJSON(cmd.OutOrStdout(), out)
		},
	}
	addOutputFlag(inspect)
	var labels []string
	create := &cobra.Command{
		Use:   "create NAME FILE|-",
		Short: fmt.Sprintf("Create an external %s from a file or standard input, for stacks that declare it external: true", kind),
		Long: fmt.Sprintf(`Creates a %[1]s that stacks use as external (external: true). It is stored in the
cluster's replicated store (a secret encrypted, as every secret); Git never holds it,
and no sync changes or prunes it. A name a stack owns is refused. To change one,
remove it (gitorc %[1]s rm, once no service uses it) and create it again.`, kind),
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			var data []byte
			if args[1] == "-" {
				data, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), 1<<20))
			} else {
				data, err = os.ReadFile(args[1])
			}
			if err != nil {
				return err
			}
			lm, err := labelMap(labels)
			if err != nil {
				return err
			}
			req := controlapi.CreateFileRequest{Name: args[0], Labels: lm, Data: data}
			o, err := newAPIClient(cmd).CreateFile(cmd.Context(), fk, req)
			if err != nil {
				return err
			}
			if format == outJSON {
				return writeJSON(cmd.OutOrStdout(), o)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s created (%s)\n", kind, o.Name, shortHash(o.DataHash))
			return nil
		},
	}
	create.Flags().StringArrayVarP(&labels, "label", "l", nil, "label KEY=VALUE (repeat)")
	addOutputFlag(create)
	rm := &cobra.Command{
		Use:     "rm NAME...",
		Aliases: []string{"remove"},
		Short:   fmt.Sprintf("Remove external %s no service uses", plural),
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return removeEach(cmd, kind, args, func(c *client.Client, name string) (string, error) {
				_, err := c.RemoveFile(cmd.Context(), fk, name)
				return name, err
			})
		},
	}
	addOutputFlag(rm)
	cmd.AddCommand(ls, inspect, create, rm)
	return cmd
}

// removeEach is an rm command: it removes each named object in turn (rm
// returns the name removed) and prints what it removed, a line each or
// {"removed": [...]} with -o json; it stops at the first refusal.
func removeEach(cmd *cobra.Command, kind string, names []string, rm func(c *client.Client, name string) (string, error)) error {
	format, err := outputFormat(cmd, outText, outText, outJSON)
	if err != nil {
		return err
	}
	c := newAPIClient(cmd)
	removed := []string{}
	for _, name := range names {
		got, err := rm(c, name)
		if err != nil {
			return err
		}
		removed = append(removed, got)
		if format != outJSON {
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s removed\n", kind, got)
		}
	}
	if format == outJSON {
		return writeJSON(cmd.OutOrStdout(), map[string][]string{"removed": removed})
	}
	return nil
}

// labelMap parses KEY=VALUE labels.
func labelMap(ls []string) (map[string]string, error) {
	if len(ls) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, l := range ls {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("label %q: want KEY=VALUE", l)
		}
		out[k] = v
	}
	return out, nil
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

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/reconcile"
	"github.com/spf13/cobra"
)

// Exit codes of gitorc diff, as flux diff has them.
const (
	diffSame    = 0
	diffDiffers = 1
	diffError   = 2
)

func newDiffCmd() *cobra.Command {
	var revision, local string
	var verbose bool
	cmd := &cobra.Command{
		Use:   "diff [--revision REV | --local DIR]",
		Short: "What syncing would change: Git HEAD, a revision or a local working tree against the cluster",
		Long: `Compares the stacks of the source's HEAD (fetched first), of a revision (a commit,
full or abbreviated, or a ref the manager's clone holds) or of a working tree on this
host (--local, the repository's root: the source's sub-path applies) with what the
cluster holds, the way a sync would plan it, and prints the changes field by field.
Objects changed behind Git's back (gitorc service scale ...) are marked as drift.
Secrets show a keyed hash of their content, never the content.

Exit status: 0 no difference, 1 differences, 2 an error (a revision that does not
load, with its file:line problems, included).`,
		// A misused command is an error (2), never "differences" (1).
		Args: func(cmd *cobra.Command, args []string) error {
			if err := cobra.NoArgs(cmd, args); err != nil {
				return &exitError{code: diffError, err: err}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return &exitError{code: diffError, err: err}
			}
			if revision != "" && local != "" {
				return &exitError{code: diffError, err: errors.New("--revision and --local: give one")}
			}
			req := controlapi.DiffRequest{Revision: revision}
			if local != "" {
				abs, err := filepath.Abs(local)
				if err != nil {
					return &exitError{code: diffError, err: err}
				}
				req.Dir = abs
			}
			plan, err := newAPIClient(cmd).Diff(cmd.Context(), req)
			if err != nil {
				return &exitError{code: diffError, err: err}
			}
			var res reconcile.Diff
			if err := json.Unmarshal(plan, &res); err != nil {
				return &exitError{code: diffError, err: fmt.Errorf("POST /v1/sync/diff: decode answer: %w", err)}
			}
			out := cmd.OutOrStdout()
			if format == outJSON {
				if err := writeJSON(out, res); err != nil {
					return &exitError{code: diffError, err: err}
				}
			} else {
				if res.Dir != "" {
					fmt.Fprintf(out, "local tree %s against the cluster:\n", res.Dir)
				} else {
					fmt.Fprintf(out, "revision %s against the cluster:\n", reconcile.ShortCommit(res.Revision))
				}
				if err := reconcile.Format(out, res.Changeset, colorOutput(out), verbose); err != nil {
					return &exitError{code: diffError, err: err}
				}
			}
			switch {
			case len(res.Changeset.Problems) > 0:
				return &exitError{code: diffError, err: fmt.Errorf("%s cannot be applied: %d problem(s)", diffSubject(res), len(res.Changeset.Problems))}
			case res.Differs():
				return &exitError{code: diffDiffers, err: errors.New("")}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&revision, "revision", "", "a commit (full or abbreviated) or ref instead of HEAD")
	cmd.Flags().StringVar(&local, "local", "", "a working tree on this host instead of a commit")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "list unchanged objects too")
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &exitError{code: diffError, err: err} })
	addOutputFlag(cmd)
	return cmd
}

func diffSubject(d reconcile.Diff) string {
	if d.Dir != "" {
		return d.Dir
	}
	return "revision " + reconcile.ShortCommit(d.Revision)
}

// colorOutput reports whether w is a terminal that should get colours:
// never for a pipe or a file, nor with NO_COLOR set (no-color.org).
func colorOutput(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" || strings.EqualFold(os.Getenv("TERM"), "dumb") {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/compose"
	"github.com/gitorc/gitorc/reconcile"
	"github.com/spf13/cobra"
)

// loaded is the outcome of loading the stacks of one command-line path.
type loaded struct {
	Path     string               `json:"path"`
	Stacks   []*compose.Stack     `json:"-"`
	Errors   []compose.Diagnostic `json:"-"`
	Failure  error                `json:"-"` // a problem that is not a stack file diagnostic
	warnings []compose.Diagnostic
}

// loadPaths loads every stack under each path: a directory is a repository
// layout (gitorc.yaml, or one stack per directory), a file is one stack.
func loadPaths(ctx context.Context, paths []string, name string, envFiles []string) []loaded {
	cwd, _ := os.Getwd()
	var out []loaded
	for _, p := range paths {
		r := loaded{Path: p}
		st, err := os.Stat(p)
		switch {
		case err != nil:
			r.Failure = err
		case st.IsDir():
			layout, err := reconcile.ReadLayout(p)
			if err != nil {
				r.Failure = err
				break
			}
			if len(layout.Stacks) == 0 {
				r.Failure = fmt.Errorf("%s: no stacks: no %s and no directory holding %s", p, reconcile.LayoutFile, strings.Join(reconcile.StackFileNames[:3], ", "))
				break
			}
			r.Stacks, err = reconcile.LoadAll(ctx, p, cwd, layout)
			r.absorb(err)
		default:
			src := compose.Source{Name: name, Files: []string{p}, EnvFiles: envFiles, Root: cwd}
			if src.Name == "" {
				base := filepath.Base(p)
				src.Name = strings.ToLower(strings.TrimSuffix(base, filepath.Ext(base)))
			}
			s, err := compose.Load(ctx, src)
			if s != nil {
				r.Stacks = append(r.Stacks, s)
			}
			r.absorb(err)
		}
		for _, s := range r.Stacks {
			r.warnings = append(r.warnings, s.Warnings...)
		}
		out = append(out, r)
	}
	return out
}

// absorb sorts an error into diagnostics (stack file problems) and others.
func (r *loaded) absorb(err error) {
	if err == nil {
		return
	}
	var rest []error
	var walk func(error)
	walk = func(err error) {
		var ds compose.Errors
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		if errors.As(err, &ds) {
			r.Errors = append(r.Errors, ds...)
			return
		}
		rest = append(rest, err)
	}
	walk(err)
	r.Failure = errors.Join(rest...)
}

func (r *loaded) failed() bool { return r.Failure != nil || len(r.Errors) > 0 }

type validateReport struct {
	Path     string   `json:"path"`
	Valid    bool     `json:"valid"`
	Stacks   []string `json:"stacks,omitempty"`
	Errors   []string `json:"errors,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

func newValidateCmd() *cobra.Command {
	var name string
	var envFiles []string
	cmd := &cobra.Command{
		Use:   "validate PATH...",
		Short: "Check stack files and repository layouts; list every problem",
		Long: `Loads each PATH as gitorc would deploy it and reports every problem with its
file, line and field. A directory is a repository: the stacks its gitorc.yaml
lists, or one stack per directory holding a compose.yaml or docker-stack.yml.
A file is one stack, named after the file unless --name is given.

Exit status: 0 when everything is valid, 1 when anything is not.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return err
			}
			results := loadPaths(cmd.Context(), args, name, envFiles)
			bad := 0
			var reports []validateReport
			for _, r := range results {
				rep := validateReport{Path: r.Path, Valid: !r.failed()}
				for _, s := range r.Stacks {
					rep.Stacks = append(rep.Stacks, s.Bundle.Stack.Name)
				}
				for _, d := range r.Errors {
					rep.Errors = append(rep.Errors, d.String())
				}
				if r.Failure != nil {
					rep.Errors = append(rep.Errors, strings.Split(r.Failure.Error(), "\n")...)
				}
				for _, w := range r.warnings {
					rep.Warnings = append(rep.Warnings, w.String())
				}
				if r.failed() {
					bad++
				}
				reports = append(reports, rep)
			}
			if format == outJSON {
				if err := writeJSON(cmd.OutOrStdout(), reports); err != nil {
					return err
				}
			} else {
				printValidate(cmd.OutOrStdout(), cmd.ErrOrStderr(), results, reports)
			}
			if bad > 0 {
				return &exitError{code: 1, err: errors.New("")}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "stack name for a single file (default: the file's name)")
	cmd.Flags().StringArrayVar(&envFiles, "env-file", nil, "env file for interpolation of a single file (default: .env beside it)")
	cmd.Flags().StringP("output", "o", "", "output format: text or json")
	return cmd
}

func printValidate(out, errw io.Writer, results []loaded, reports []validateReport) {
	for i, r := range results {
		rep := reports[i]
		for _, w := range rep.Warnings {
			fmt.Fprintln(errw, w)
		}
		for _, e := range rep.Errors {
			fmt.Fprintln(errw, e)
		}
		for _, s := range r.Stacks {
			fmt.Fprintf(out, "ok: stack %s (%s)\n", s.Bundle.Stack.Name, summary(s.Bundle))
		}
		if r.failed() {
			fmt.Fprintf(out, "invalid: %s: %d problem(s)\n", r.Path, len(rep.Errors))
		}
	}
}

func summary(b api.Bundle) string {
	return fmt.Sprintf("%d services, %d networks, %d volumes, %d secrets, %d configs",
		len(b.Services), len(b.Networks), len(b.Volumes), len(b.Secrets), len(b.Configs))
}

package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/reconcile"
	"github.com/gitorc/gitorc/reconcile/gitsource"
	"github.com/gitorc/gitorc/reconcile/storecluster"
	"github.com/spf13/cobra"
)

// Exit codes of gitorc diff, as flux diff has them.
const (
	diffSame    = 0
	diffDiffers = 1
	diffError   = 2
)

// differ answers diffs on this manager, leader or not: it keeps its own
// clone of the source (the leader's loop has another), fetched when a
// diff asks for HEAD, and plans with a reconcile.Controller over the
// store, so a diff takes the path a sync takes.
type differ struct {
	d *daemon

	mu  sync.Mutex
	key [3]string // URL, ref and path of the source src follows
	src *gitsource.Source
}

// source returns the clone for the cluster's current source, starting a
// new one when the source changed.
func (df *differ) source(spec api.SourceSpec) (*gitsource.Source, error) {
	df.mu.Lock()
	defer df.mu.Unlock()
	key := [3]string{spec.URL, spec.Ref, spec.Path}
	if df.src != nil && df.key == key {
		return df.src, nil
	}
	sum := sha256.Sum256([]byte(strings.Join(key[:], "\x00")))
	root := filepath.Join(df.d.dir, "gitops", "diff")
	dir := filepath.Join(root, hex.EncodeToString(sum[:6]))
	// Clones of earlier sources are of no more use.
	if olds, err := os.ReadDir(root); err == nil {
		for _, o := range olds {
			if o.Name() != filepath.Base(dir) {
				_ = os.RemoveAll(filepath.Join(root, o.Name()))
			}
		}
	}
	auth, err := df.d.gitAuth(spec.URL)
	if err != nil {
		return nil, err
	}
	src, err := gitsource.New(gitsource.Config{URL: spec.URL, Ref: spec.Ref, Path: spec.Path, DataDir: dir, Auth: auth,
		Logger: df.d.log.With("component", "diff")})
	if err != nil {
		return nil, err
	}
	df.src, df.key = src, key
	return src, nil
}

// noSource stands for the Git source of a cluster that has none: a diff
// of a local directory needs no Git.
type noSource struct{}

var errNoGitSource = errors.New("the cluster follows no Git source (bootstrap --repo sets one): give --local DIR")

func (noSource) Fetch(context.Context) (gitsource.Revision, error) {
	return gitsource.Revision{}, errNoGitSource
}
func (noSource) Materialize(context.Context, string, string) error { return errNoGitSource }

// controller is a controller for one diff or rollback lookup.
func (df *differ) controller(ctx context.Context, st api.SyncState) (*reconcile.Controller, error) {
	var src reconcile.Source = noSource{}
	if st.Source.URL != "" {
		s, err := df.source(st.Source)
		if err != nil {
			return nil, err
		}
		src = s
	}
	ident, err := df.d.identity(ctx)
	if err != nil {
		return nil, fmt.Errorf("the cluster's identity (to open sealed secrets): %w", err)
	}
	return reconcile.NewController(reconcile.ControllerConfig{Source: src, Cluster: storecluster.New(df.d.store),
		Secrets: ident, Logger: df.d.log.With("component", "diff"), Workdir: filepath.Join(df.d.dir, "gitops", "diff-work")})
}

// diff answers one request. A local directory is the repository's working
// tree: the source's sub-path applies under it, as in a commit.
func (df *differ) diff(ctx context.Context, req reconcile.DiffRequest) (reconcile.Diff, int, error) {
	st, err := storecluster.New(df.d.store).Sync(ctx)
	if err != nil {
		return reconcile.Diff{}, http.StatusServiceUnavailable, err
	}
	if req.Dir != "" {
		if !filepath.IsAbs(req.Dir) {
			return reconcile.Diff{}, http.StatusBadRequest, fmt.Errorf("local directory %s: give an absolute path", req.Dir)
		}
		if st.Source.Path != "" {
			req.Dir = filepath.Join(req.Dir, filepath.FromSlash(st.Source.Path))
		}
	} else if st.Source.URL == "" {
		return reconcile.Diff{}, http.StatusConflict, errNoGitSource
	}
	ctl, err := df.controller(ctx, st)
	if err != nil {
		return reconcile.Diff{}, http.StatusServiceUnavailable, err
	}
	res, err := ctl.Diff(ctx, req)
	if err != nil {
		code := http.StatusBadGateway // the Git source
		if errors.Is(err, gitsource.ErrCommitNotFound) || req.Dir != "" {
			code = http.StatusBadRequest
		}
		return reconcile.Diff{}, code, err
	}
	return res, http.StatusOK, nil
}

var _ controlapi.Differ = (*differ)(nil)

// Diff is POST /v1/sync/diff: a reconcile.Diff of the request. Secrets in
// it are content hashes, never data. Rollback shares the clone.
func (df *differ) Diff(ctx context.Context, req controlapi.DiffRequest) (controlapi.Plan, error) {
	res, code, err := df.diff(ctx, reconcile.DiffRequest{Revision: req.Revision, Dir: req.Dir})
	if err != nil {
		return nil, controlapi.WithStatus(code, err)
	}
	return json.Marshal(res)
}

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
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := outputFormat(cmd, outText, outText, outJSON)
			if err != nil {
				return &exitError{code: diffError, err: err}
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
					fmt.Fprintf(out, "revision %s against the cluster:\n", shortCommit(res.Revision))
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
	cmd.MarkFlagsMutuallyExclusive("revision", "local")
	addOutputFlag(cmd)
	return cmd
}

func diffSubject(d reconcile.Diff) string {
	if d.Dir != "" {
		return d.Dir
	}
	return "revision " + shortCommit(d.Revision)
}

// shortCommit abbreviates a commit hash as git log --oneline does.
func shortCommit(c string) string {
	if len(c) > 7 {
		return c[:7]
	}
	if c == "" {
		return "-"
	}
	return c
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

package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/controlapi/server"
	"github.com/gitorc/gitorc/reconcile"
	"github.com/gitorc/gitorc/reconcile/gitsource"
	"github.com/gitorc/gitorc/reconcile/storecluster"
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

var _ server.Differ = (*differ)(nil)

// Diff is POST /v1/sync/diff: a reconcile.Diff of the request. Secrets in
// it are content hashes, never data. Rollback shares the clone.
func (df *differ) Diff(ctx context.Context, req controlapi.DiffRequest) (controlapi.Plan, error) {
	res, code, err := df.diff(ctx, reconcile.DiffRequest{Revision: req.Revision, Dir: req.Dir})
	if err != nil {
		return nil, server.WithStatus(code, err)
	}
	return json.Marshal(res)
}

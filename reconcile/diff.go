package reconcile

import (
	"context"
	"errors"
	"fmt"
	"os"
)

// RevisionResolver is an optional ability of a Source: turning an
// abbreviated commit or a ref of the clone into a full commit hash.
// *gitsource.Source has it.
type RevisionResolver interface {
	ResolveRevision(rev string) (string, error)
}

// DiffRequest names what Diff compares with the cluster: the source's
// current commit (after a fetch) when both fields are empty.
type DiffRequest struct {
	// Revision is a commit, full or abbreviated, or a ref the clone holds.
	Revision string `json:"revision,omitempty"`
	// Dir is a directory of stacks on this host, as a commit's tree under
	// the source's sub-path would hold them: a working tree not committed
	// yet.
	Dir string `json:"dir,omitempty"`
}

// Diff is what would change if the cluster followed a revision: gitorc
// diff. Secrets appear by their content hash only.
type Diff struct {
	// Revision is the commit compared; Dir the directory, for a local tree.
	Revision  string    `json:"revision,omitempty"`
	Dir       string    `json:"dir,omitempty"`
	Changeset Changeset `json:"changeset"`
}

// Differs reports whether following the revision would change the
// cluster. Drift alone (a change by hand that Git made too) does not.
func (d Diff) Differs() bool { return d.Changeset.HasChanges() }

// Diff plans a revision against the cluster without applying anything,
// by the path a sync takes (planCommit): the same loading, secrets opened
// with the same identity and hashed, the same plan. A revision that does
// not load has its problems on the changeset. It does not wait for a sync
// in progress.
func (c *Controller) Diff(ctx context.Context, req DiffRequest) (Diff, error) {
	if req.Dir != "" {
		if req.Revision != "" {
			return Diff{}, errors.New("diff: give a revision or a local directory, not both")
		}
		fi, err := os.Stat(req.Dir)
		if err != nil {
			return Diff{}, fmt.Errorf("diff: %w", err)
		}
		if !fi.IsDir() {
			return Diff{}, fmt.Errorf("diff: %s is not a directory", req.Dir)
		}
		desired, problems, err := c.loadTree(ctx, req.Dir)
		if err != nil {
			return Diff{}, fmt.Errorf("diff %s: %w", req.Dir, err)
		}
		_, cs, err := c.plan(ctx, desired, problems)
		if err != nil {
			return Diff{}, fmt.Errorf("diff %s: %w", req.Dir, err)
		}
		return Diff{Dir: req.Dir, Changeset: cs}, nil
	}
	rev, err := c.cfg.Source.Fetch(ctx)
	if err != nil {
		return Diff{}, fmt.Errorf("diff: fetch: %w", err)
	}
	commit := rev.Commit
	if req.Revision != "" {
		if commit, err = c.resolve(req.Revision); err != nil {
			return Diff{}, fmt.Errorf("diff: %w", err)
		}
	}
	_, cs, err := c.planCommit(ctx, commit)
	if err != nil {
		return Diff{}, fmt.Errorf("diff %s: %w", short(commit), err)
	}
	return Diff{Revision: commit, Changeset: cs}, nil
}

// resolve turns a revision a user typed into a full commit hash.
func (c *Controller) resolve(rev string) (string, error) {
	if r, ok := c.cfg.Source.(RevisionResolver); ok {
		return r.ResolveRevision(rev)
	}
	if len(rev) == 40 {
		return rev, nil
	}
	return "", fmt.Errorf("revision %q: give the full commit hash", rev)
}

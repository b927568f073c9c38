package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/reconcile/gitsource"
)

// Step 5 of a sync, first half: a revision loaded (materialized, its
// stacks and sealed files read) and planned against the cluster.

// planCommit loads a commit and plans it against the cluster: the one
// path that sync, revert, self-heal and Diff share. Problems (file:line
// where the loader knows it) are on the changeset, whose plan is then
// empty: a revision that does not load is not planned. The error is for
// failures that say nothing about the revision: I/O, a cancelled context.
func (c *Controller) planCommit(ctx context.Context, commit string) (State, Changeset, error) {
	desired, problems, err := c.load(ctx, commit)
	if err != nil {
		return State{}, Changeset{}, err
	}
	return c.plan(ctx, desired, problems)
}

// plan plans a loaded desired state against the cluster's.
func (c *Controller) plan(ctx context.Context, desired State, problems []string) (State, Changeset, error) {
	if len(problems) > 0 {
		return State{}, Changeset{Problems: problems}, nil
	}
	actual, err := c.cfg.Cluster.Actual(ctx)
	if err != nil {
		return State{}, Changeset{}, fmt.Errorf("read cluster: %w", err)
	}
	desired = Pin(desired)
	return desired, Plan(desired, actual), nil
}

// load materializes a commit into a temporary tree and loads it. The
// last commit that loaded is kept: a commit's content never changes, and
// self-heal re-plans the same commit at every poll.
func (c *Controller) load(ctx context.Context, commit string) (State, []string, error) {
	c.lastMu.Lock()
	last := c.last
	c.lastMu.Unlock()
	if last.commit == commit && commit != "" {
		return last.desired.clone(), nil, nil
	}
	desired, problems, err := c.loadCommit(ctx, commit)
	if err == nil && len(problems) == 0 {
		c.lastMu.Lock()
		c.last = loaded{commit: commit, desired: desired.clone()}
		c.lastMu.Unlock()
	}
	return desired, problems, err
}

// loaded is a commit's desired state.
type loaded struct {
	commit  string
	desired State
}

// clone copies the lists of a state, so that a caller cannot change the
// controller's copy.
func (s State) clone() State {
	return State{Networks: slices.Clone(s.Networks), Secrets: slices.Clone(s.Secrets), Configs: slices.Clone(s.Configs),
		Volumes: slices.Clone(s.Volumes), Services: slices.Clone(s.Services), Pools: s.Pools, Kept: slices.Clone(s.Kept),
		Reserved: slices.Clone(s.Reserved), Policies: slices.Clone(s.Policies)}
}

func (c *Controller) loadCommit(ctx context.Context, commit string) (State, []string, error) {
	if err := os.MkdirAll(c.cfg.Workdir, 0o700); err != nil {
		return State{}, nil, fmt.Errorf("workdir: %w", err)
	}
	dir, err := os.MkdirTemp(c.cfg.Workdir, "rev-"+short(commit)+"-")
	if err != nil {
		return State{}, nil, fmt.Errorf("workdir: %w", err)
	}
	defer os.RemoveAll(dir)
	if err := c.cfg.Source.Materialize(ctx, commit, dir); err != nil {
		if ctx.Err() != nil {
			return State{}, nil, err
		}
		if errors.Is(err, gitsource.ErrUnsafeSymlink) || errors.Is(err, gitsource.ErrCommitNotFound) ||
			errors.Is(err, gitsource.ErrPathNotFound) || errors.Is(err, gitsource.ErrTooLarge) {
			// The revision itself is wrong (a pin to a commit the clone
			// lacks, a sub-path it does not have, a tree over the size
			// limits): fail it, do not retry.
			return State{}, []string{err.Error()}, nil
		}
		return State{}, nil, fmt.Errorf("materialize %s: %w", short(commit), err)
	}
	return c.loadTree(ctx, dir)
}

// loadTree returns the desired state of the stacks under dir, or the
// problems that make it inapplicable, with paths relative to dir.
func (c *Controller) loadTree(ctx context.Context, dir string) (State, []string, error) {
	layout, err := ReadLayout(dir)
	if err != nil {
		return State{}, splitLines(relativize(err.Error(), dir)), nil
	}
	// The nodes' policies: a service none of them allows is refused at
	// its line (Plan refuses it again, for a commit loaded earlier).
	actual, err := c.cfg.Cluster.Actual(ctx)
	if err != nil {
		return State{}, nil, fmt.Errorf("read cluster: %w", err)
	}
	stacks, err := LoadAllFor(ctx, dir, dir, layout, true, actual.Policies)
	if ctx.Err() != nil {
		return State{}, nil, ctx.Err()
	}
	var problems []string
	if err != nil {
		problems = splitLines(relativize(err.Error(), dir))
	}
	dirs := map[string]string{}
	for _, s := range layout.Stacks {
		dirs[s.Name] = s.Dir
	}
	var bundles []api.Bundle
	for _, s := range stacks {
		b := s.Bundle
		b.Secrets = slices.Clone(b.Secrets)
		for i := range b.Secrets {
			if p := c.openSecret(dir, dirs[b.Stack.Name], &b.Secrets[i]); p != "" {
				problems = append(problems, p)
			}
		}
		b.Configs = slices.Clone(b.Configs)
		for i := range b.Configs {
			if p := readConfig(dir, dirs[b.Stack.Name], &b.Configs[i]); p != "" {
				problems = append(problems, p)
			}
		}
		bundles = append(bundles, b)
	}
	if len(problems) > 0 {
		return State{}, problems, nil
	}
	return DesiredState(bundles), nil, nil
}

// openSecret fills a file secret's Data and DataHash from its sealed file,
// or returns the problem. The plaintext goes nowhere else.
func (c *Controller) openSecret(root, stackDir string, s *api.SecretSpec) string {
	if s.External || s.File == "" {
		return ""
	}
	shown := filepath.ToSlash(filepath.Join(stackDir, s.File))
	if filepath.IsAbs(s.File) || !filepath.IsLocal(filepath.Join(stackDir, s.File)) {
		return fmt.Sprintf("%s: secret %s: the file must be inside the repository", shown, s.Name)
	}
	if c.cfg.Secrets == nil {
		return fmt.Sprintf("%s: secret %s: this manager has no identity to open sealed files", shown, s.Name)
	}
	sealed, err := readDataFile(root, filepath.Join(stackDir, s.File))
	if err != nil {
		return fmt.Sprintf("%s: secret %s: %s", shown, s.Name, relativize(err.Error(), root))
	}
	plain, err := c.cfg.Secrets.Open(sealed)
	if err != nil {
		return fmt.Sprintf("%s: secret %s: %v", shown, s.Name, err)
	}
	s.Data, s.DataHash = plain, c.cfg.Secrets.Hash(plain)
	return ""
}

// readConfig fills a file config's Data and DataHash from the commit's
// file, or returns the problem.
func readConfig(root, stackDir string, c *api.ConfigSpec) string {
	if c.External || c.File == "" {
		return ""
	}
	shown := filepath.ToSlash(filepath.Join(stackDir, c.File))
	if filepath.IsAbs(c.File) || !filepath.IsLocal(filepath.Join(stackDir, c.File)) {
		return fmt.Sprintf("%s: config %s: the file must be inside the repository", shown, c.Name)
	}
	data, err := readDataFile(root, filepath.Join(stackDir, c.File))
	if err != nil {
		return fmt.Sprintf("%s: config %s: %s", shown, c.Name, relativize(err.Error(), root))
	}
	sum := sha256.Sum256(data)
	c.Data, c.DataHash = data, "sha256:"+hex.EncodeToString(sum[:])
	return ""
}

package reconcile

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/fsnotify/fsnotify"
)

// WatchRefs watches the refs of a local repository (a working tree's .git
// directory, or a bare repository) with fsnotify, and sends on the
// returned channel whenever a branch or tag may have moved: a commit, a
// push into it, a fetch, git pack-refs. Sends never block: changes the
// receiver has not read yet fold into one. Watching stops when ctx ends;
// the channel is never closed. Pass it as TriggerConfig.Changes.
func WatchRefs(ctx context.Context, repo string, log *slog.Logger) (<-chan struct{}, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	gitDir, err := findGitDir(repo)
	if err != nil {
		return nil, err
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", repo, err)
	}
	if err := w.Add(gitDir); err != nil {
		w.Close()
		return nil, fmt.Errorf("watch %s: %w", gitDir, err)
	}
	for _, sub := range []string{"refs/heads", "refs/tags"} {
		if err := addTree(w, filepath.Join(gitDir, filepath.FromSlash(sub))); err != nil {
			w.Close()
			return nil, err
		}
	}
	out := make(chan struct{}, 1)
	go func() {
		defer w.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				log.WarnContext(ctx, "watch the local repository", "repo", repo, logKeyErr, err)
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if ev.Has(fsnotify.Create) && strings.HasPrefix(ev.Name, filepath.Join(gitDir, "refs")+string(filepath.Separator)) {
					// A new namespace of branches (feature/…) needs its own watch.
					if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
						if err := addTree(w, ev.Name); err != nil {
							log.WarnContext(ctx, "watch the local repository", "repo", repo, logKeyErr, err)
						}
					}
				}
				if !refEvent(gitDir, ev) {
					continue
				}
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}()
	return out, nil
}

// findGitDir returns the directory holding a repository's refs.
func findGitDir(repo string) (string, error) {
	dotGit := filepath.Join(repo, ".git")
	fi, err := os.Stat(dotGit)
	switch {
	case err == nil && fi.IsDir():
		return dotGit, nil
	case err == nil:
		// A linked worktree or submodule: ".git" names the directory.
		b, err := os.ReadFile(dotGit)
		if err != nil {
			return "", fmt.Errorf("watch %s: %w", repo, err)
		}
		dir, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "gitdir: ")
		if !ok {
			return "", fmt.Errorf("watch %s: %s does not name a git directory", repo, dotGit)
		}
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(repo, dir)
		}
		return dir, nil
	}
	if _, err := os.Stat(filepath.Join(repo, "HEAD")); err == nil {
		if fi, err := os.Stat(filepath.Join(repo, "refs")); err == nil && fi.IsDir() {
			return repo, nil // bare
		}
	}
	return "", fmt.Errorf("watch %s: not a Git repository (no .git, no HEAD and refs)", repo)
}

// addTree watches dir and every directory under it; a missing dir is
// not an error (a repository without tags yet).
func addTree(w *fsnotify.Watcher, dir string) error {
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if err := w.Add(p); err != nil {
				return fmt.Errorf("watch %s: %w", p, err)
			}
		}
		return nil
	})
	if os.IsNotExist(err) {
		return nil
	}
	return err
}

// refEvent reports whether a file event may have moved a ref: a change
// under refs/ (lock files aside) or of packed-refs or HEAD.
func refEvent(gitDir string, ev fsnotify.Event) bool {
	if !ev.Has(fsnotify.Create) && !ev.Has(fsnotify.Write) && !ev.Has(fsnotify.Rename) && !ev.Has(fsnotify.Remove) {
		return false
	}
	rel, err := filepath.Rel(gitDir, ev.Name)
	if err != nil || strings.HasSuffix(rel, ".lock") {
		return false
	}
	rel = filepath.ToSlash(rel)
	return rel == "packed-refs" || rel == "HEAD" || strings.HasPrefix(rel, "refs/")
}

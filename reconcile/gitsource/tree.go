package gitsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

const maxSymlinkHops = 8

// Has reports whether the commit is in the clone.
func (s *Source) Has(commit string) bool {
	if !hexCommit.MatchString(commit) {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.repo.CommitObject(plumbing.NewHash(commit))
	return err == nil
}

// root returns the tree of the commit under the sub-path. Callers hold s.mu.
func (s *Source) root(commit string) (*object.Tree, error) {
	if !hexCommit.MatchString(commit) {
		return nil, fmt.Errorf("commit %q: not a 40-hex commit hash", commit)
	}
	c, err := s.repo.CommitObject(plumbing.NewHash(commit))
	if err != nil {
		return nil, errorf(ErrCommitNotFound, "commit %s not in the clone of %s (fetch first)", short(commit), s.ep.display)
	}
	t, err := c.Tree()
	if err != nil {
		return nil, fmt.Errorf("commit %s: tree: %w", short(commit), err)
	}
	if s.subPath == "" {
		return t, nil
	}
	sub, err := t.Tree(s.subPath)
	if err != nil {
		return nil, errorf(ErrPathNotFound, "path %s/ not found at commit %s", s.subPath, short(commit))
	}
	return sub, nil
}

// ReadFile returns the content of a file of the commit. name is relative
// to the source's sub-path, slash-separated; symlinks are followed inside
// the tree only.
func (s *Source) ReadFile(commit, name string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.root(commit)
	if err != nil {
		return nil, err
	}
	p := path.Clean(strings.TrimPrefix(name, "/"))
	for range maxSymlinkHops {
		if p == ".." || strings.HasPrefix(p, "../") {
			return nil, errorf(ErrUnsafeSymlink, "%s at commit %s: points outside the tree", name, short(commit))
		}
		e, err := t.FindEntry(p)
		if err != nil {
			return nil, errorf(ErrPathNotFound, "path %s not found at commit %s", s.display(p), short(commit))
		}
		switch e.Mode {
		case filemode.Regular, filemode.Executable, filemode.Deprecated:
			return s.readBlob(e.Hash, p, commit)
		case filemode.Symlink:
			target, err := s.readBlob(e.Hash, p, commit)
			if err != nil {
				return nil, err
			}
			if path.IsAbs(string(target)) {
				return nil, errorf(ErrUnsafeSymlink, "%s -> %s at commit %s: absolute target", s.display(p), target, short(commit))
			}
			p = path.Join(path.Dir(p), string(target))
		default:
			return nil, fmt.Errorf("path %s at commit %s: not a file", s.display(p), short(commit))
		}
	}
	return nil, errorf(ErrUnsafeSymlink, "%s at commit %s: too many symlinks", name, short(commit))
}

func (s *Source) checkFileSize(size int64, p, commit string) error {
	if limit := s.cfg.maxFile(); size > limit {
		return errorf(ErrTooLarge, "%s at commit %s: %s, over the limit of %s for a file", s.display(p), short(commit),
			formatBytes(size), formatBytes(limit))
	}
	return nil
}

// formatBytes shows a size in the largest binary unit that keeps it at
// least 1, with at most two decimals ("4 MiB", "1.05 MiB").
func formatBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	v, i := float64(n), 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d %s", n, units[0])
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".") + " " + units[i]
}

func (s *Source) display(p string) string {
	if s.subPath == "" {
		return p
	}
	return s.subPath + "/" + p
}

// readBlob reads a blob of at most Config.MaxFileBytes; p and commit
// name it in the error.
func (s *Source) readBlob(h plumbing.Hash, p, commit string) ([]byte, error) {
	b, err := s.repo.BlobObject(h)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", short(h.String()), err)
	}
	if err := s.checkFileSize(b.Size, p, commit); err != nil {
		return nil, err
	}
	r, err := b.Reader()
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", short(h.String()), err)
	}
	defer r.Close()
	return io.ReadAll(r)
}

// Materialize writes the commit's tree under the sub-path into dir, which
// must be missing or empty. File modes (regular, executable) and symlinks
// are kept; a symlink pointing outside the written tree is refused
// (ErrUnsafeSymlink), a dangling one is left out; submodules are skipped.
// A file over Config.MaxFileBytes, a tree whose files add up to more than
// MaxTreeBytes or that holds more than MaxTreeEntries entries is refused
// (ErrTooLarge) from the object headers, before its content is read.
// On error dir may hold part of the tree: callers use a temporary
// directory and remove it.
func (s *Source) Materialize(ctx context.Context, commit, dir string) error {
	if err := prepareDir(dir); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.root(commit)
	if err != nil {
		return err
	}
	w := &writer{s: s, ctx: ctx, root: dir, commit: commit}
	if err := w.tree(t, ""); err != nil {
		return err
	}
	return w.links()
}

func prepareDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("materialize: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("materialize: %w", err)
	}
	if len(ents) > 0 {
		return fmt.Errorf("materialize into %s: %w", dir, ErrNotEmpty)
	}
	return nil
}

type link struct{ rel, target string }

type writer struct {
	s       *Source
	ctx     context.Context
	root    string
	commit  string
	pending []link
	bytes   int64 // written so far
	entries int
}

// count adds an entry of size bytes to the tree, refusing it when the tree
// grows past its limits.
func (w *writer) count(r string, size int64) error {
	if err := w.s.checkFileSize(size, r, w.commit); err != nil {
		return err
	}
	w.bytes += size
	w.entries++
	if limit := w.s.cfg.maxTree(); w.bytes > limit {
		return errorf(ErrTooLarge, "tree at commit %s: over the limit of %s (at %s)", short(w.commit), formatBytes(limit), w.s.display(r))
	}
	if limit := w.s.cfg.maxEntries(); w.entries > limit {
		return errorf(ErrTooLarge, "tree at commit %s: more than %d files and directories (at %s)", short(w.commit), limit, w.s.display(r))
	}
	return nil
}

func (w *writer) tree(t *object.Tree, rel string) error {
	for _, e := range t.Entries {
		if err := w.ctx.Err(); err != nil {
			return fmt.Errorf("materialize %s: %w", short(w.commit), err)
		}
		if e.Name == "" || e.Name == "." || e.Name == ".." || e.Name == ".git" || strings.ContainsAny(e.Name, "/\\\x00") {
			return fmt.Errorf("materialize %s: unsafe entry name %q in %s", short(w.commit), e.Name, w.s.display(rel))
		}
		r := path.Join(rel, e.Name)
		full := filepath.Join(w.root, filepath.FromSlash(r))
		switch e.Mode {
		case filemode.Dir:
			if err := w.count(r, 0); err != nil {
				return err
			}
			sub, err := w.s.repo.TreeObject(e.Hash)
			if err != nil {
				return fmt.Errorf("materialize %s: %s: %w", short(w.commit), w.s.display(r), err)
			}
			if err := os.Mkdir(full, 0o755); err != nil {
				return fmt.Errorf("materialize: %w", err)
			}
			if err := w.tree(sub, r); err != nil {
				return err
			}
		case filemode.Regular, filemode.Deprecated:
			if err := w.file(e.Hash, r, full, 0o644); err != nil {
				return err
			}
		case filemode.Executable:
			if err := w.file(e.Hash, r, full, 0o755); err != nil {
				return err
			}
		case filemode.Symlink:
			if err := w.count(r, 0); err != nil {
				return err
			}
			target, err := w.s.readBlob(e.Hash, r, w.commit)
			if err != nil {
				return err
			}
			w.pending = append(w.pending, link{rel: r, target: string(target)})
		case filemode.Submodule:
			w.s.log.DebugContext(w.ctx, "git submodule skipped", "path", w.s.display(r))
		default:
			return fmt.Errorf("materialize %s: %s: unsupported mode %s", short(w.commit), w.s.display(r), e.Mode)
		}
	}
	return nil
}

func (w *writer) file(h plumbing.Hash, rel, full string, mode os.FileMode) error {
	b, err := w.s.repo.BlobObject(h)
	if err != nil {
		return fmt.Errorf("materialize: blob %s: %w", short(h.String()), err)
	}
	if err := w.count(rel, b.Size); err != nil {
		return err
	}
	r, err := b.Reader()
	if err != nil {
		return fmt.Errorf("materialize: blob %s: %w", short(h.String()), err)
	}
	defer r.Close()
	f, err := os.OpenFile(full, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return fmt.Errorf("materialize: %w", err)
	}
	if _, err := io.Copy(f, io.LimitReader(r, b.Size)); err != nil {
		f.Close()
		return fmt.Errorf("materialize: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("materialize: %w", err)
	}
	// The umask may have narrowed the mode.
	return os.Chmod(full, mode)
}

// links creates the symlinks after every file and directory exists, then
// checks where each really leads: a lexical check alone misses chains of
// links combined with "..".
func (w *writer) links() error {
	for _, l := range w.pending {
		if filepath.IsAbs(l.target) || path.IsAbs(l.target) {
			return w.unsafe(l, "absolute target")
		}
		joined := path.Join(path.Dir(l.rel), l.target)
		if joined == ".." || strings.HasPrefix(joined, "../") {
			return w.unsafe(l, "points outside the tree")
		}
		if err := os.Symlink(filepath.FromSlash(l.target), filepath.Join(w.root, filepath.FromSlash(l.rel))); err != nil {
			return fmt.Errorf("materialize: %w", err)
		}
	}
	if len(w.pending) == 0 {
		return nil
	}
	realRoot, err := filepath.EvalSymlinks(w.root)
	if err != nil {
		return fmt.Errorf("materialize: %w", err)
	}
	for _, l := range w.pending {
		full := filepath.Join(w.root, filepath.FromSlash(l.rel))
		resolved, err := filepath.EvalSymlinks(full)
		if err != nil {
			// Dangling or looping: leave it out rather than let it name
			// something outside later.
			if rmErr := os.Remove(full); rmErr != nil {
				return fmt.Errorf("materialize: %w", rmErr)
			}
			if errors.Is(err, fs.ErrNotExist) {
				w.s.log.WarnContext(w.ctx, "git dangling symlink left out", "path", w.s.display(l.rel), "target", l.target, logKeyCommit, short(w.commit))
				continue
			}
			return w.unsafe(l, "cannot be resolved")
		}
		if resolved != realRoot && !strings.HasPrefix(resolved, realRoot+string(filepath.Separator)) {
			_ = os.Remove(full)
			return w.unsafe(l, "points outside the tree")
		}
	}
	return nil
}

func (w *writer) unsafe(l link, why string) error {
	return errorf(ErrUnsafeSymlink, "%s -> %s at commit %s: %s", w.s.display(l.rel), l.target, short(w.commit), why)
}

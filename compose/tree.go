package compose

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Limits on what one stack reads. A real repository never meets them; a
// hostile or broken one is refused before compose-go spends time and memory
// on it (loading costs about 0.7 MB of allocations per kB of stack file).
const (
	// DefaultMaxFileBytes caps each stack file, env file and label file.
	DefaultMaxFileBytes = 1 << 20
	// DefaultMaxDataBytes caps each file a secret or config is read from.
	DefaultMaxDataBytes = 4 << 20
)

// ErrOutsideTree means a path a stack reads leaves its tree: it is
// absolute, climbs out with "..", or goes through a symlink that does.
var ErrOutsideTree = errors.New("outside the repository")

// errOutsideLink is ErrOutsideTree reached through a symlink.
var errOutsideLink = fmt.Errorf("%w (through a symlink)", ErrOutsideTree)

// ErrTooLarge means a file is over its size limit.
var ErrTooLarge = errors.New("file too large")

// tree confines the files a stack reads to one directory, with os.Root:
// a path is looked up one component at a time and no symlink may lead
// out of it. The zero tree confines nothing (Source.Tree unset).
type tree struct {
	dir  string // absolute, as given (symlinks in it are the caller's)
	root *os.Root
}

func openTree(dir string) (*tree, error) {
	if dir == "" {
		return &tree{}, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	r, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("open stack tree: %w", err)
	}
	return &tree{dir: abs, root: r}, nil
}

func (t *tree) close() {
	if t.root != nil {
		t.root.Close()
	}
}

// rel returns abs relative to the tree, or ErrOutsideTree when its
// lexical form already leaves it.
func (t *tree) rel(abs string) (string, error) {
	rel, err := filepath.Rel(t.dir, abs)
	if err != nil || !filepath.IsLocal(rel) {
		return "", ErrOutsideTree
	}
	return rel, nil
}

// check reports whether abs, an absolute path, stays inside the tree,
// symlinks on its way included. A path that does not exist is inside when
// its lexical form is: reading it fails later, with the usual message.
func (t *tree) check(abs string) error {
	_, err := t.stat(abs)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil
	}
	return err
}

// stat is os.Stat confined to the tree.
func (t *tree) stat(abs string) (fs.FileInfo, error) {
	if t.root == nil {
		return os.Stat(abs)
	}
	rel, err := t.rel(abs)
	if err != nil {
		return nil, err
	}
	st, err := t.root.Stat(rel)
	if err == nil || errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return st, err
	}
	// The lexical path is inside: os.Root refused a symlink that leads
	// out (or loops).
	return nil, errOutsideLink
}

// readFile reads a file of the tree, refusing one over limit bytes
// before reading it (and one that grows past it while read).
func (t *tree) readFile(abs string, limit int64) ([]byte, error) {
	var f *os.File
	var err error
	if t.root == nil {
		f, err = os.Open(abs)
	} else {
		var rel string
		if rel, err = t.rel(abs); err != nil {
			return nil, err
		}
		if f, err = t.root.Open(rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
			err = errOutsideLink
		}
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, errors.New("is a directory, not a file")
	}
	if st.Size() > limit {
		return nil, tooLarge(st.Size(), limit)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, tooLarge(int64(len(data)), limit)
	}
	return data, nil
}

// checkSize refuses a file of the tree over limit bytes, without reading it.
func (t *tree) checkSize(abs string, limit int64) error {
	st, err := t.stat(abs)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil
		}
		return err
	}
	if !st.IsDir() && st.Size() > limit {
		return tooLarge(st.Size(), limit)
	}
	return nil
}

// SizeError is a file over its limit; it matches ErrTooLarge.
type SizeError struct{ Size, Limit int64 }

func (e *SizeError) Error() string {
	return FormatBytes(e.Size) + ", over the limit of " + FormatBytes(e.Limit)
}

// Is makes errors.Is(err, ErrTooLarge) hold.
func (e *SizeError) Is(target error) bool { return target == ErrTooLarge }

func tooLarge(size, limit int64) error { return &SizeError{Size: size, Limit: limit} }

// FormatBytes shows a size in the largest binary unit that keeps it at
// least 1, with at most two decimals ("4 MiB", "1.05 MiB", "12 B").
func FormatBytes(n int64) string {
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

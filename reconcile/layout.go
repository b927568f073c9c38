package reconcile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/compose"
	"go.yaml.in/yaml/v4"
)

// LayoutFile is the optional file at a repository's root (or sub-path)
// that lists its stacks.
const LayoutFile = "gitorc.yaml"

// StackFileNames are the names that make a directory a stack when the
// repository has no gitorc.yaml, in order of preference.
var StackFileNames = []string{"compose.yaml", "compose.yml", "docker-stack.yml", "docker-stack.yaml",
	"docker-compose.yaml", "docker-compose.yml"}

// Layout is the set of stacks a repository declares.
type Layout struct {
	Stacks []StackSource
}

// StackSource is one stack and the files it is loaded from.
type StackSource struct {
	Name      string   `yaml:"name"`
	Files     []string `yaml:"files"`     // relative to the layout root
	EnvFiles  []string `yaml:"env_files"` // relative to the layout root
	DependsOn []string `yaml:"depends_on"`
	// Profiles are the stack's active compose profiles: services that
	// list others are left out (and said to be).
	Profiles []string `yaml:"profiles"`
	// Dir is the stack's working directory, relative to the layout root:
	// by default the directory of its first file.
	Dir string `yaml:"dir"`
}

type layoutDoc struct {
	Stacks []StackSource `yaml:"stacks"`
}

var stackNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// ReadLayout finds the stacks under root: those gitorc.yaml lists, or
// else one per directory holding a stack file, named after the directory.
// Stacks are returned in dependency order (a stack after those it depends
// on), then by name.
//
// Everything is read through os.Root: gitorc.yaml's files:, env_files:
// and dir: must resolve inside root, symlinks included, and so must the
// stack files found; compose.Load then confines every file a stack names
// to root too (StackSource.Source sets compose.Source.Tree).
func ReadLayout(root string) (*Layout, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("read layout: %w", err)
	}
	defer r.Close()
	data, err := readInTree(r, LayoutFile, compose.DefaultMaxFileBytes)
	switch {
	case err == nil:
		return parseLayout(r, data)
	case errors.Is(err, fs.ErrNotExist):
		return discover(root, r)
	case errors.Is(err, compose.ErrOutsideTree):
		return nil, fmt.Errorf("%s is %w", LayoutFile, err)
	case errors.Is(err, compose.ErrTooLarge):
		return nil, fmt.Errorf("%s: %w", LayoutFile, err)
	default:
		return nil, fmt.Errorf("read layout: %w", err)
	}
}

// errOutsideLink is a path of the repository whose lexical form is inside
// it, but that a symlink leads out of.
var errOutsideLink = fmt.Errorf("%w (through a symlink)", compose.ErrOutsideTree)

// statInTree is os.Stat of a path relative to the repository, confined to
// it: a path that leaves it, lexically or through a symlink, is
// compose.ErrOutsideTree.
func statInTree(r *os.Root, name string) (fs.FileInfo, error) {
	if filepath.IsAbs(name) || !filepath.IsLocal(name) {
		return nil, compose.ErrOutsideTree
	}
	st, err := r.Stat(name)
	if err == nil || errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return st, err
	}
	return nil, errOutsideLink
}

// readInTree reads a file of the repository, confined to it, refusing
// one over limit bytes before reading it.
func readInTree(r *os.Root, name string, limit int64) ([]byte, error) {
	if _, err := statInTree(r, name); err != nil {
		return nil, err
	}
	f, err := r.Open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, errOutsideLink
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > limit {
		return nil, &compose.SizeError{Size: st.Size(), Limit: limit}
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && int64(len(data)) > limit {
		err = &compose.SizeError{Size: int64(len(data)), Limit: limit}
	}
	return data, err
}

func parseLayout(root *os.Root, data []byte) (*Layout, error) {
	var doc layoutDoc
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, layoutYAMLError(err)
	}
	var problems []string
	bad := func(format string, args ...any) {
		problems = append(problems, LayoutFile+": "+fmt.Sprintf(format, args...))
	}
	names := map[string]bool{}
	for i, s := range doc.Stacks {
		switch {
		case !stackNameRe.MatchString(s.Name):
			bad("stacks[%d]: name %q must be lowercase letters, digits, '-' and '_'", i, s.Name)
		case names[s.Name]:
			bad("stacks[%d]: stack %q is listed twice", i, s.Name)
		}
		names[s.Name] = true
		if len(s.Files) == 0 {
			bad("stacks[%d] (%s): files must list at least one compose file", i, s.Name)
		}
		for _, f := range append(append([]string(nil), s.Files...), s.EnvFiles...) {
			st, err := statInTree(root, filepath.Clean(f))
			switch {
			case errors.Is(err, errOutsideLink):
				bad("stacks[%d] (%s): %s is %v", i, s.Name, f, err)
			case err != nil && errors.Is(err, compose.ErrOutsideTree):
				bad("stacks[%d] (%s): %s must be a path inside the repository", i, s.Name, f)
			case err != nil:
				bad("stacks[%d] (%s): %s: no such file", i, s.Name, f)
			case st.IsDir():
				bad("stacks[%d] (%s): %s is a directory, not a file", i, s.Name, f)
			}
		}
		if s.Dir != "" {
			st, err := statInTree(root, filepath.Clean(s.Dir))
			switch {
			case errors.Is(err, errOutsideLink):
				bad("stacks[%d] (%s): dir %s is %v", i, s.Name, s.Dir, err)
			case err != nil && errors.Is(err, compose.ErrOutsideTree):
				bad("stacks[%d] (%s): dir %s must be a directory inside the repository", i, s.Name, s.Dir)
			case err != nil || !st.IsDir():
				bad("stacks[%d] (%s): dir %s: no such directory", i, s.Name, s.Dir)
			}
		}
		if s.Dir == "" && len(s.Files) > 0 {
			doc.Stacks[i].Dir = filepath.Dir(s.Files[0])
		}
	}
	for i, s := range doc.Stacks {
		for _, dep := range s.DependsOn {
			if !names[dep] {
				bad("stacks[%d] (%s): depends_on names unknown stack %q", i, s.Name, dep)
			}
		}
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "\n"))
	}
	ordered, err := dependencyOrder(doc.Stacks)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", LayoutFile, err)
	}
	return &Layout{Stacks: ordered}, nil
}

var (
	yamlLineErrRe  = regexp.MustCompile(`line (\d+): (.*)`)
	unknownFieldRe = regexp.MustCompile(`^field (\S+) not found in type .*$`)
)

// layoutYAMLError reports each problem the YAML decoder found as
// "gitorc.yaml:LINE: message".
func layoutYAMLError(err error) error {
	var lines []string
	for _, m := range yamlLineErrRe.FindAllStringSubmatch(err.Error(), -1) {
		msg := unknownFieldRe.ReplaceAllString(m[2], `unknown key "$1"`)
		lines = append(lines, fmt.Sprintf("%s:%s: %s", LayoutFile, m[1], msg))
	}
	if len(lines) == 0 {
		return fmt.Errorf("%s: %s", LayoutFile, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return errors.New(strings.Join(lines, "\n"))
}

func discover(root string, r *os.Root) (*Layout, error) {
	var l Layout
	byName := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if p != root && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		rel, _ := filepath.Rel(root, p)
		var found []string
		for _, n := range StackFileNames {
			st, err := statInTree(r, filepath.Join(rel, n))
			if errors.Is(err, compose.ErrOutsideTree) {
				return fmt.Errorf("%s is %w", filepath.Join(rel, n), err)
			}
			if err == nil && !st.IsDir() {
				found = append(found, n)
			}
		}
		if len(found) == 0 {
			return nil
		}
		if len(found) > 1 {
			return fmt.Errorf("%s holds %s: keep one stack file per directory, or list the files in %s",
				rel, strings.Join(found, " and "), LayoutFile)
		}
		base := filepath.Base(p)
		if rel == "." {
			abs, _ := filepath.Abs(root)
			base = filepath.Base(abs)
		}
		name := normalizeName(base)
		if prev, dup := byName[name]; dup {
			return fmt.Errorf("%s and %s would both be stack %q: rename a directory or list the stacks in %s", prev, rel, name, LayoutFile)
		}
		byName[name] = rel
		l.Stacks = append(l.Stacks, StackSource{Name: name, Dir: rel, Files: []string{filepath.Join(rel, found[0])}})
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(l.Stacks, func(i, j int) bool { return l.Stacks[i].Name < l.Stacks[j].Name })
	return &l, nil
}

// normalizeName makes a directory name a valid stack name.
func normalizeName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		}
	}
	return strings.TrimLeft(b.String(), "-_")
}

// dependencyOrder sorts stacks so that each follows the stacks it depends
// on; ties are broken by name. A cycle is an error naming it.
func dependencyOrder(stacks []StackSource) ([]StackSource, error) {
	byName := map[string]StackSource{}
	for _, s := range stacks {
		byName[s.Name] = s
	}
	const (
		unvisited = iota
		visiting
		done
	)
	state := map[string]int{}
	var out []StackSource
	var visit func(name string, trail []string) error
	visit = func(name string, trail []string) error {
		switch state[name] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("stack dependency cycle: %s", strings.Join(append(trail, name), " -> "))
		}
		state[name] = visiting
		deps := append([]string(nil), byName[name].DependsOn...)
		sort.Strings(deps)
		for _, d := range deps {
			if err := visit(d, append(trail, name)); err != nil {
				return err
			}
		}
		state[name] = done
		out = append(out, byName[name])
		return nil
	}
	names := make([]string, 0, len(stacks))
	for _, s := range stacks {
		names = append(names, s.Name)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := visit(n, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// readDataFile reads the file of a secret or config of the tree at root
// (name relative to it), confined to it and at most
// compose.DefaultMaxDataBytes long.
func readDataFile(root, name string) ([]byte, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	data, err := readInTree(r, name, compose.DefaultMaxDataBytes)
	switch {
	case errors.Is(err, compose.ErrOutsideTree):
		return nil, fmt.Errorf("%s is %w", filepath.ToSlash(name), err)
	case errors.Is(err, compose.ErrTooLarge):
		return nil, fmt.Errorf("%s is %w for a secret or config file", filepath.ToSlash(name), err)
	}
	return data, err
}

// Source returns the compose source of a stack of a layout rooted at root;
// every file the stack reads must resolve inside root (compose.Source.Tree).
func (s StackSource) Source(root string) compose.Source {
	src := compose.Source{Name: s.Name, WorkingDir: filepath.Join(root, s.Dir), Profiles: s.Profiles, Tree: root}
	for _, f := range s.Files {
		src.Files = append(src.Files, filepath.Join(root, f))
	}
	for _, f := range s.EnvFiles {
		src.EnvFiles = append(src.EnvFiles, filepath.Join(root, f))
	}
	return src
}

// LoadAll loads every stack of a layout. It returns the stacks that
// loaded and, joined, the errors of those that did not: callers that apply
// must treat any error as "apply nothing".
func LoadAll(ctx context.Context, root, displayRoot string, l *Layout) ([]*compose.Stack, error) {
	return LoadAllFor(ctx, root, displayRoot, l, false, nil)
}

// LoadAllFor is LoadAll that, with check, refuses at its file:line every
// need of a service that none of the nodes' policies allows
// (compose.Source.CheckPolicies).
func LoadAllFor(ctx context.Context, root, displayRoot string, l *Layout, check bool, policies []api.NodePolicy) ([]*compose.Stack, error) {
	var stacks []*compose.Stack
	var errs []error
	for _, s := range l.Stacks {
		src := s.Source(root)
		src.Root = displayRoot
		src.CheckPolicies, src.Policies = check, policies
		st, err := compose.Load(ctx, src)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		st.Bundle.Stack.DependsOn = s.DependsOn
		stacks = append(stacks, st)
	}
	return stacks, errors.Join(errs...)
}

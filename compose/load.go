package compose

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/gitorc/gitorc/cluster/api"
)

// Source says which files make a stack and how to read them.
type Source struct {
	// Name is the stack name; by default the working directory's name.
	Name string
	// Files are the compose files, later ones overriding earlier ones.
	Files []string
	// WorkingDir resolves relative paths; by default the first file's directory.
	WorkingDir string
	// EnvFiles are read for interpolation, relative to WorkingDir; without
	// them, WorkingDir/.env is read when it exists.
	EnvFiles []string
	// Env are variables for interpolation; they win over env files.
	Env map[string]string
	// Profiles are the active profiles: a service that lists profiles is
	// deployed only when one of them is active, and said to be left out
	// otherwise (Stack.Warnings). "*" activates every profile.
	Profiles []string
	// Root, when set, makes file names in diagnostics relative to it (the
	// repository root, or the CLI's working directory).
	Root string
	// Tree, when set, is the directory every file the stack reads must
	// resolve inside (the repository's materialized tree): its stack
	// files, include:, extends.file, env_file, label_file, .env and env
	// files, and the files of secrets and configs. A path that leaves it —
	// absolute, through "..", or through a symlink — is an error at the
	// line that names it, and nothing of the file is read. Empty confines
	// nothing (files the CLI's user names on their own machine).
	Tree string
	// MaxFileBytes caps each stack, env and label file; 0 means
	// DefaultMaxFileBytes.
	MaxFileBytes int64
	// MaxDataBytes caps each secret's and config's file; 0 means
	// DefaultMaxDataBytes.
	MaxDataBytes int64
	// With CheckPolicies, a service that needs what none of Policies (the
	// cluster's nodes' policies; none: the default policy) allows — a
	// bind of a host path, a capability beyond the default set, a
	// host-level sysctl, privileged, an unconfined profile — is an error
	// at its line. Without, nothing is checked: a load on a laptop knows
	// no cluster, and the managers' planner checks again.
	Policies      []api.NodePolicy
	CheckPolicies bool
}

// Stack is a loaded stack: its desired state and what was ignored.
type Stack struct {
	Bundle   api.Bundle
	Warnings []Diagnostic
}

// Load reads a stack's files and converts them to api specs. On failure
// the error is Errors, listing every problem found, or a plain error when
// a file cannot be read at all. Nothing is returned partly loaded.
func Load(ctx context.Context, src Source) (*Stack, error) {
	if len(src.Files) == 0 {
		return nil, errors.New("no stack files given")
	}
	l, err := newLoad(src)
	if err != nil {
		return nil, err
	}
	defer l.tree.close()
	return l.run(ctx)
}

type load struct {
	src              Source
	files            []string // absolute
	display          map[string]string
	d                *diags
	unset            map[string]bool // variables used but not set
	tree             *tree
	maxFile, maxData int64
	refused          bool              // a path left the tree or a file is too large: compose-go must not run
	extended         map[string]bool   // files extends.file names, checked
	content          map[string][]byte // by display name
}

func newLoad(src Source) (*load, error) {
	l := &load{src: src, display: map[string]string{}, d: &diags{idx: &index{}}, unset: map[string]bool{},
		maxFile: src.MaxFileBytes, maxData: src.MaxDataBytes, extended: map[string]bool{}, content: map[string][]byte{}}
	if l.maxFile <= 0 {
		l.maxFile = DefaultMaxFileBytes
	}
	if l.maxData <= 0 {
		l.maxData = DefaultMaxDataBytes
	}
	for _, f := range src.Files {
		abs, err := filepath.Abs(f)
		if err != nil {
			return nil, err
		}
		l.files = append(l.files, abs)
	}
	if l.src.WorkingDir == "" {
		l.src.WorkingDir = filepath.Dir(l.files[0])
	}
	wd, err := filepath.Abs(l.src.WorkingDir)
	if err != nil {
		return nil, err
	}
	l.src.WorkingDir = wd
	if l.src.Name == "" {
		l.src.Name = loader.NormalizeProjectName(filepath.Base(wd))
	}
	if l.src.Root != "" {
		if l.src.Root, err = filepath.Abs(l.src.Root); err != nil {
			return nil, err
		}
	}
	if l.tree, err = openTree(src.Tree); err != nil {
		return nil, err
	}
	return l, nil
}

// name is how a file is shown to the user.
func (l *load) name(abs string) string {
	if n, ok := l.display[abs]; ok {
		return n
	}
	n := abs
	if l.src.Root != "" {
		if rel, err := filepath.Rel(l.src.Root, abs); err == nil && !strings.HasPrefix(rel, "..") {
			n = rel
		}
	}
	l.display[abs] = n
	return n
}

func (l *load) run(ctx context.Context) (*Stack, error) {
	// 1. Each file as written: syntax, schema, typed fields, key policy,
	// and every path it names for a file to read.
	l.checkEnvFiles()
	for _, f := range l.files {
		if err := l.readFile(f, []string{l.src.WorkingDir, filepath.Dir(f)}, 0); err != nil {
			return nil, err
		}
	}
	if l.refused || hasSyntaxError(l.d.list) {
		errs, _ := l.d.split()
		return nil, errs
	}
	// 2. compose-go: interpolation, include, extends, overrides, merge. When
	// it fails on something the raw pass already reported, the raw pass's
	// diagnostics (all of them, with lines) are the better report.
	proj, err := l.loadProject(ctx)
	if err != nil {
		if errs, _ := l.d.split(); len(errs) > 0 {
			return nil, errs
		}
		return nil, l.composeError(err)
	}
	if proj, err = l.resolveFiles(proj); err != nil {
		return nil, err
	}
	l.warnUnset()
	l.warnDisabled(proj)
	// 3. Conversion to api specs with Swarm's semantics, and validation.
	c := converter{d: l.d, proj: proj, stack: l.src.Name, wd: l.src.WorkingDir, tree: l.tree, maxData: l.maxData,
		policies: l.src.Policies, checkPolicy: l.src.CheckPolicies}
	bundle := c.convert()
	bundle.Stack = api.StackSpec{Name: l.src.Name, EnvFiles: l.src.EnvFiles}
	for _, f := range l.files {
		bundle.Stack.Files = append(bundle.Stack.Files, l.name(f))
	}
	errs, warns := l.d.split()
	if len(errs) > 0 {
		return nil, errs
	}
	return &Stack{Bundle: bundle, Warnings: warns}, nil
}

// warnDisabled says which services the active profiles leave out, so
// that none disappears silently.
func (l *load) warnDisabled(proj *types.Project) {
	active := "no profile is active"
	if len(l.src.Profiles) > 0 {
		active = "the active profiles are " + strings.Join(l.src.Profiles, ", ")
	}
	for _, name := range sortedKeys(proj.DisabledServices) {
		svc := proj.DisabledServices[name]
		l.d.warnf([]string{"services", name, "profiles"}, "not deployed: it runs only with profile %s, and %s (profiles: in gitorc.yaml, --profile for stack deploy)",
			strings.Join(svc.Profiles, " or "), active)
	}
}

func hasSyntaxError(ds []Diagnostic) bool {
	for _, d := range ds {
		if d.Severity == SevError && (strings.HasPrefix(d.Msg, "invalid YAML") || d.Msg == msgEmpty || d.Msg == fmt.Sprintf(msgTooDeep, maxDepth)) {
			return true
		}
	}
	return false
}

// readFile parses and checks one file, then the files it includes. bases
// are the directories its relative paths may start from, compose-go's
// first.
func (l *load) readFile(abs string, bases []string, depth int) error {
	if depth > 16 {
		return fmt.Errorf("%s: include nesting is deeper than 16", l.name(abs))
	}
	data, err := l.tree.readFile(abs, l.maxFile)
	switch {
	case errors.Is(err, ErrOutsideTree) || errors.Is(err, ErrTooLarge):
		l.fileDiag(abs, err, "a stack file")
		return nil
	case err != nil:
		return fmt.Errorf("read stack file: %w", err)
	}
	l.content[l.name(abs)] = data
	f, diag := parseFile(l.name(abs), data)
	if diag != nil {
		l.d.list = append(l.d.list, *diag)
		return nil
	}
	for _, doc := range documents(f.raw) {
		l.checkDoc(f, doc, bases)
		for _, inc := range includeRefs(doc) {
			if err := l.include(f, inc, bases, depth); err != nil {
				return err
			}
		}
	}
	l.d.idx.files = append(l.d.idx.files, f)
	checkRaw(l.d, f)
	return nil
}

// include checks one include: item of f and reads its files. compose-go
// starts the item's paths from the including project's directory, and
// the included files' own paths from the included project's directory.
func (l *load) include(f *fileIndex, inc includeRef, bases []string, depth int) error {
	var paths []string
	for _, r := range inc.paths {
		switch {
		case strings.Contains(r.value, "://"):
			continue // remote: compose-go has no loader for it and says so
		case strings.Contains(r.value, "$"):
			l.refDiag(f, r, r.value+": "+msgPathVariable)
			continue
		}
		if p, ok := l.resolve(f, r, bases, l.maxFile, "a stack file"); ok {
			paths = append(paths, p)
		}
	}
	if len(paths) == 0 || len(paths) < len(inc.paths) {
		return nil
	}
	projectDir := filepath.Dir(paths[0])
	if r := inc.projectDir; r != nil {
		if strings.Contains(r.value, "$") {
			l.refDiag(f, *r, r.value+": "+msgPathVariable)
			return nil
		}
		p, ok := l.resolve(f, *r, bases, 0, "")
		if !ok {
			return nil
		}
		projectDir = p
	}
	for _, r := range inc.envFiles {
		if strings.Contains(r.value, "$") {
			l.refDiag(f, r, r.value+": "+msgPathVariable)
			continue
		}
		if r.value != "/dev/null" {
			l.resolve(f, r, bases, l.maxFile, "an env file")
		}
	}
	if len(inc.envFiles) == 0 {
		l.checkEnvFile(filepath.Join(projectDir, ".env"))
	}
	inner := []string{projectDir}
	for _, p := range paths {
		if filepath.Dir(p) != projectDir {
			inner = append(inner, filepath.Dir(p))
		}
		if err := l.readFile(p, inner, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// checkEnvFiles checks the env files compose-go reads for interpolation
// before any stack file: Source.EnvFiles, or else the working
// directory's .env.
func (l *load) checkEnvFiles() {
	if len(l.src.EnvFiles) == 0 {
		l.checkEnvFile(filepath.Join(l.src.WorkingDir, ".env"))
		return
	}
	for _, f := range l.src.EnvFiles {
		if !filepath.IsAbs(f) {
			f = filepath.Join(l.src.WorkingDir, f)
		}
		l.checkEnvFile(f)
	}
}

func (l *load) checkEnvFile(abs string) {
	err := l.tree.check(abs)
	if err == nil {
		err = l.tree.checkSize(abs, l.maxFile)
	}
	if err != nil {
		l.fileDiag(abs, err, "an env file")
	}
}

func (l *load) loadProject(ctx context.Context) (proj *types.Project, err error) {
	// compose-go panics on some inputs (include: beside a null
	// services:, found by FuzzLoadStaysInTree): a commit must fail, not
	// take the manager down.
	defer func() {
		if r := recover(); r != nil {
			proj, err = nil, fmt.Errorf("compose-go failed on this stack (panic: %v)", r)
		}
	}()
	env := make([]string, 0, len(l.src.Env))
	for k, v := range l.src.Env {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	var envFiles []string
	for _, f := range l.src.EnvFiles {
		if !filepath.IsAbs(f) {
			f = filepath.Join(l.src.WorkingDir, f)
		}
		envFiles = append(envFiles, f)
	}
	opts, err := cli.NewProjectOptions(l.files,
		cli.WithName(l.src.Name),
		cli.WithWorkingDirectory(l.src.WorkingDir),
		cli.WithEnv(env),
		cli.WithEnvFiles(envFiles...),
		cli.WithDotEnv,
		cli.WithEnv(env), // explicit variables win over env files
		cli.WithProfiles(l.src.Profiles),
		cli.WithConsistency(false), // references are checked here, all at once
		cli.WithResourceLoader(treeGuard{l.tree}),
		cli.WithLoadOptions(func(o *loader.Options) {
			// env_file and label_file are read once checked (resolveFiles).
			o.SkipResolveEnvironment, o.SkipResolveLabels = true, true
			if o.Interpolate == nil || o.Interpolate.LookupValue == nil {
				return
			}
			lookup := o.Interpolate.LookupValue
			o.Interpolate.LookupValue = func(key string) (string, bool) {
				v, ok := lookup(key)
				if !ok {
					l.unset[key] = true
				}
				return v, ok
			}
		}),
	)
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(ctx)
}

var (
	// dottedPathRe finds a field path in a compose-go message.
	dottedPathRe = regexp.MustCompile(`\b(?:services|networks|volumes|secrets|configs)(?:[.\[][A-Za-z0-9_.\[\]-]*)?`)
	// decodeErrRe is one mapstructure error: 'services[web].x.y' message.
	decodeErrRe = regexp.MustCompile(`'([^']+)' (.+)`)
)

// composeError turns a compose-go error into diagnostics, locating the
// field it names when it names one.
func (l *load) composeError(err error) error {
	msg := err.Error()
	file := ""
	for _, abs := range l.files {
		if strings.Contains(msg, abs) {
			file = l.name(abs)
		}
	}
	for abs, n := range l.display {
		msg = strings.ReplaceAll(msg, abs, n)
	}
	msg = strings.TrimPrefix(msg, "validating "+file+": ")
	if file == "" {
		file = l.name(l.files[0])
	}
	var out Errors
	if ms := decodeErrRe.FindAllStringSubmatch(msg, -1); strings.HasPrefix(msg, "decoding failed") && ms != nil {
		for _, m := range ms {
			out = append(out, l.locatedDiag(file, m[1], m[2]))
		}
		return out
	}
	msg = strings.Join(strings.Fields(msg), " ")
	return Errors{l.locatedDiag(file, dottedPathRe.FindString(msg), msg)}
}

func (l *load) locatedDiag(file, path, msg string) Diagnostic {
	d := Diagnostic{File: file, Msg: msg}
	if path == "" {
		return d
	}
	path = strings.TrimRight(path, ".")
	parts := strings.Split(strings.NewReplacer("[", ".", "]", "").Replace(path), ".")
	if f, line := l.d.idx.locate(parts, false); line > 0 {
		d.File, d.Line = f, line
	}
	if !strings.HasPrefix(msg, path) {
		d.Path = strings.Join(parts, ".")
	}
	return d
}

// warnUnset warns about variables used without a default and set nowhere,
// which compose replaces with an empty string; the line is the first use.
func (l *load) warnUnset() {
	if len(l.unset) == 0 {
		return
	}
	// One pass over each file, whatever the number of variables: a
	// search per variable made loading quadratic in the file's size.
	uses := make([]map[string]int, len(l.d.idx.files))
	for i, f := range l.d.idx.files {
		uses[i] = bareUses(l.content[f.name])
	}
	for _, name := range sortedKeys(l.unset) {
		for i, f := range l.d.idx.files {
			if line, ok := uses[i][name]; ok {
				l.d.list = append(l.d.list, Diagnostic{File: f.name, Line: line, Severity: SevWarning,
					Msg: fmt.Sprintf("variable %s is not set: it is replaced by an empty string", name)})
				break
			}
		}
	}
}

// bareUses maps each variable a file uses as $NAME or ${NAME} (not
// ${NAME:-default} and the like, whose author chose what happens when it
// is unset, nor the escaped $$NAME) to the line of its first such use.
func bareUses(data []byte) map[string]int {
	uses := map[string]int{}
	line := 1
	for i := 0; i < len(data); i++ {
		switch {
		case data[i] == '\n':
			line++
			continue
		case data[i] != '$' || (i > 0 && data[i-1] == '$'):
			continue
		}
		j := i + 1
		braced := j < len(data) && data[j] == '{'
		if braced {
			j++
		}
		k := j
		for k < len(data) && isNameByte(data[k]) {
			k++
		}
		if k == j || (braced && (k >= len(data) || data[k] != '}')) {
			continue
		}
		if name := string(data[j:k]); uses[name] == 0 {
			uses[name] = line
		}
	}
	return uses
}

func isNameByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// treeGuard stands before compose-go's own file loader for include: and
// extends.file: an absolute path outside the tree is refused before it is
// read. (Relative ones were checked by the raw pass, which refuses the
// variables that could make them anything else.)
type treeGuard struct{ t *tree }

func (g treeGuard) Accept(p string) bool {
	return g.t.root != nil && filepath.IsAbs(p) && g.t.check(p) != nil
}

func (g treeGuard) Load(_ context.Context, p string) (string, error) {
	return "", fmt.Errorf("%s is %w", p, g.t.check(p))
}

func (g treeGuard) Dir(p string) string { return filepath.Dir(p) }

// resolveFiles reads the services' env_file and label_file, which
// compose-go left unread, once each resolved path is checked: inside the
// tree and within the size limit. Paths built from variables are known
// only now.
func (l *load) resolveFiles(proj *types.Project) (*types.Project, error) {
	for _, name := range sortedKeys(proj.Services) {
		s := proj.Services[name]
		at := []string{"services", name}
		l.checkResolved(at, s.ContainerSpec)
		for i, h := range s.PreStart {
			l.checkResolved(append(append([]string(nil), at...), "pre_start", strconv.Itoa(i)), h.ContainerSpec)
		}
	}
	if l.refused {
		errs, _ := l.d.split()
		return nil, errs
	}
	proj, err := proj.WithServicesEnvironmentResolved(false)
	if err != nil {
		return nil, l.composeError(err)
	}
	if proj, err = proj.WithServicesLabelsResolved(false); err != nil {
		return nil, l.composeError(err)
	}
	return proj, nil
}

func (l *load) checkResolved(at []string, c types.ContainerSpec) {
	check := func(key string, i int, p string) {
		err := l.tree.check(p)
		if err == nil {
			err = l.tree.checkSize(p, l.maxFile)
		}
		if err == nil {
			return
		}
		path := append(append([]string(nil), at...), key, strconv.Itoa(i))
		if !l.d.idx.defines(path) {
			path = path[:len(path)-1]
		}
		msg := fmt.Sprintf("%s is %v", l.shown(p), err)
		if errors.Is(err, ErrTooLarge) {
			msg = fmt.Sprintf("%s is %v for an env or label file", l.shown(p), err)
		}
		l.d.errorf(path, "%s", msg)
		l.refused = true
	}
	for i, f := range c.EnvFiles {
		check("env_file", i, f.Path)
	}
	for i, f := range c.LabelFiles {
		check("label_file", i, f)
	}
}

// shown is how a resolved path is named in a message: relative to the
// tree when inside it.
func (l *load) shown(p string) string {
	if l.tree.root != nil {
		if rel, err := l.tree.rel(p); err == nil {
			return filepath.ToSlash(rel)
		}
	}
	return p
}

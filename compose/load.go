package compose

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
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
	return l.run(ctx)
}

type load struct {
	src     Source
	files   []string // absolute
	display map[string]string
	d       *diags
	unset   map[string]bool // variables used but not set
}

func newLoad(src Source) (*load, error) {
	l := &load{src: src, display: map[string]string{}, d: &diags{idx: &index{}}, unset: map[string]bool{}}
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
	// 1. Each file as written: syntax, schema, typed fields, key policy.
	for _, f := range l.files {
		if err := l.readFile(f, 0); err != nil {
			return nil, err
		}
	}
	if hasSyntaxError(l.d.list) {
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
	l.warnUnset()
	l.warnDisabled(proj)
	// 3. Conversion to api specs with Swarm's semantics, and validation.
	c := converter{d: l.d, proj: proj, stack: l.src.Name, wd: l.src.WorkingDir,
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
		if d.Severity == SevError && (strings.HasPrefix(d.Msg, "invalid YAML") || d.Msg == msgEmpty) {
			return true
		}
	}
	return false
}

// readFile parses and checks one file, then the files it includes.
func (l *load) readFile(abs string, depth int) error {
	if depth > 16 {
		return fmt.Errorf("%s: include nesting is deeper than 16", l.name(abs))
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return fmt.Errorf("read stack file: %w", err)
	}
	f, diag := parseFile(l.name(abs), data)
	if diag != nil {
		l.d.list = append(l.d.list, *diag)
		return nil
	}
	for _, inc := range includes(f.raw) {
		p := inc
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(abs), p)
		}
		if err := l.readFile(p, depth+1); err != nil {
			return err
		}
	}
	l.d.idx.files = append(l.d.idx.files, f)
	checkRaw(l.d, f)
	return nil
}

// includes lists the local files a document's include: section names.
func includes(raw any) []string {
	top, _ := raw.(map[string]any)
	list, _ := top["include"].([]any)
	var out []string
	add := func(v any) {
		switch t := v.(type) {
		case string:
			if !strings.Contains(t, "$") && !strings.Contains(t, "://") {
				out = append(out, t)
			}
		case []any:
			for _, x := range t {
				if s, ok := x.(string); ok && !strings.Contains(s, "$") {
					out = append(out, s)
				}
			}
		}
	}
	for _, item := range list {
		switch t := item.(type) {
		case string:
			add(t)
		case map[string]any:
			add(t["path"])
		}
	}
	return out
}

func (l *load) loadProject(ctx context.Context) (*types.Project, error) {
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
		cli.WithLoadOptions(func(o *loader.Options) {
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
	for _, name := range sortedKeys(l.unset) {
		if file, line, ok := l.findBareVar(name); ok {
			l.d.list = append(l.d.list, Diagnostic{File: file, Line: line, Severity: SevWarning,
				Msg: fmt.Sprintf("variable %s is not set: it is replaced by an empty string", name)})
		}
	}
}

// findBareVar finds a use of $NAME or ${NAME} (not ${NAME:-default} and the
// like, whose author chose what happens when it is unset).
func (l *load) findBareVar(name string) (string, int, bool) {
	q := regexp.QuoteMeta(name)
	re := regexp.MustCompile(`(?:^|[^$])\$(?:` + q + `\b|\{` + q + `\})`)
	for _, f := range l.d.idx.files {
		abs := f.name
		for a, n := range l.display {
			if n == f.name {
				abs = a
			}
		}
		data, err := os.ReadFile(abs)
		if err != nil {
			continue
		}
		for i, ln := range strings.Split(string(data), "\n") {
			if re.MatchString(ln) {
				return f.name, i + 1, true
			}
		}
	}
	return "", 0, false
}

package compose

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// Before compose-go reads anything, the raw pass checks every path a stack
// file names for a file the loader reads — include: (its files, env files
// and project directory), extends.file, env_file, label_file, and the
// file: of secrets and configs — and refuses, at its line, one that leaves
// Source.Tree or is over its size limit. The stack is then not handed to
// compose-go at all, so nothing of a file outside is ever read.
//
// Relative paths are checked against every directory compose-go may start
// them from (the project's working directory, the file's own directory),
// so a difference between its rules and these cannot open a way out.
// Paths built from variables are known only after interpolation: in
// include: and extends.file they are refused; env_file and label_file are
// checked again once compose-go resolved them, before they are read;
// secrets' and configs' files are checked at conversion.

// ref is one path a file names, and where.
type ref struct {
	at    []string // field path in the file
	value string
}

// includeRef is one item of include:.
type includeRef struct {
	paths      []ref // the first is the included project's main file
	envFiles   []ref
	projectDir *ref
}

const msgPathVariable = "variables are not allowed in the path of a file the stack reads"

// includeRefs lists a document's include: items.
func includeRefs(doc map[string]any) []includeRef {
	list, _ := doc["include"].([]any)
	var out []includeRef
	for i, item := range list {
		at := []string{"include", strconv.Itoa(i)}
		var inc includeRef
		switch t := item.(type) {
		case string:
			inc.paths = []ref{{at: at, value: t}}
		case map[string]any:
			inc.paths = stringRefs(t["path"], append(at, "path"))
			inc.envFiles = stringRefs(t["env_file"], append(at, "env_file"))
			if pd, ok := t["project_directory"].(string); ok {
				inc.projectDir = &ref{at: append(at, "project_directory"), value: pd}
			}
		}
		out = append(out, inc)
	}
	return out
}

// stringRefs reads a string or a list of strings (or of {path: …}).
func stringRefs(v any, at []string) []ref {
	at = append([]string(nil), at...)
	switch t := v.(type) {
	case string:
		return []ref{{at: at, value: t}}
	case []any:
		var out []ref
		for i, x := range t {
			item := append(append([]string(nil), at...), strconv.Itoa(i))
			switch y := x.(type) {
			case string:
				out = append(out, ref{at: item, value: y})
			case map[string]any:
				if p, ok := y["path"].(string); ok {
					out = append(out, ref{at: append(item, "path"), value: p})
				}
			}
		}
		return out
	}
	return nil
}

// serviceRefs lists the files a document's services (and jobs) read:
// env_file and label_file (theirs and their pre_start hooks'), and
// extends.file separately.
func serviceRefs(doc map[string]any) (reads, extends []ref) {
	for _, kind := range []string{"services", "jobs"} {
		svcs, _ := doc[kind].(map[string]any)
		for _, name := range sortedKeys(svcs) {
			s, _ := svcs[name].(map[string]any)
			at := []string{kind, name}
			reads = append(reads, containerRefs(s, at)...)
			hooks, _ := s["pre_start"].([]any)
			for i, h := range hooks {
				hm, _ := h.(map[string]any)
				reads = append(reads, containerRefs(hm, append(append([]string(nil), at...), "pre_start", strconv.Itoa(i)))...)
			}
			if ext, ok := s["extends"].(map[string]any); ok {
				if f, ok := ext["file"].(string); ok {
					extends = append(extends, ref{at: append(append([]string(nil), at...), "extends", "file"), value: f})
				}
			}
		}
	}
	return reads, extends
}

func containerRefs(s map[string]any, at []string) []ref {
	if s == nil {
		return nil
	}
	var out []ref
	for _, key := range []string{"env_file", "label_file"} {
		out = append(out, stringRefs(s[key], append(append([]string(nil), at...), key))...)
	}
	return out
}

// objectFileRefs lists the file: of a document's secrets and configs.
func objectFileRefs(doc map[string]any) []ref {
	var out []ref
	for _, kind := range []string{"secrets", "configs"} {
		objs, _ := doc[kind].(map[string]any)
		for _, name := range sortedKeys(objs) {
			o, _ := objs[name].(map[string]any)
			if f, ok := o["file"].(string); ok {
				out = append(out, ref{at: []string{kind, name, "file"}, value: f})
			}
		}
	}
	return out
}

// resolve returns r's path against the first of bases, after checking it
// against all of them: inside the tree, and at most limit bytes (limit 0:
// no size check). A problem is added as a diagnostic of f at r's line and
// stops the load before compose-go runs.
func (l *load) resolve(f *fileIndex, r ref, bases []string, limit int64, what string) (string, bool) {
	v := r.value
	if strings.HasPrefix(v, "~") {
		// compose-go would expand it to this manager's home directory.
		l.refDiag(f, r, fmt.Sprintf("%s is %v", v, ErrOutsideTree))
		return "", false
	}
	var first string
	for i, base := range bases {
		p := v
		if !filepath.IsAbs(p) {
			p = filepath.Join(base, p)
		}
		p = filepath.Clean(p)
		if i == 0 {
			first = p
		}
		if err := l.tree.check(p); err != nil {
			l.refDiag(f, r, fmt.Sprintf("%s is %v", v, err))
			return "", false
		}
	}
	if limit > 0 {
		if err := l.tree.checkSize(first, limit); err != nil {
			if errors.Is(err, ErrTooLarge) {
				l.refDiag(f, r, fmt.Sprintf("%s is %v for %s", v, err, what))
			} else {
				l.refDiag(f, r, fmt.Sprintf("%s: %v", v, err))
			}
			return "", false
		}
	}
	return first, true
}

func (l *load) refDiag(f *fileIndex, r ref, msg string) {
	line := f.values[pathKey(r.at)]
	l.d.list = append(l.d.list, Diagnostic{File: f.name, Line: line, Path: strings.Join(r.at, "."), Msg: msg})
	l.refused = true
}

// fileDiag reports a problem with a whole file (a stack file or a .env).
func (l *load) fileDiag(abs string, err error, what string) {
	msg := err.Error()
	if errors.Is(err, ErrTooLarge) {
		msg += " for " + what
	}
	l.d.list = append(l.d.list, Diagnostic{File: l.name(abs), Msg: msg})
	l.refused = true
}

// checkDoc checks the paths one document of a stack file names, except
// include: (readFile follows it): bases are the directories its relative
// paths may start from.
func (l *load) checkDoc(f *fileIndex, doc map[string]any, bases []string) {
	reads, extends := serviceRefs(doc)
	for _, r := range reads {
		if !strings.Contains(r.value, "$") {
			l.resolve(f, r, bases, l.maxFile, "an env or label file")
		}
	}
	for _, r := range objectFileRefs(doc) {
		if !strings.Contains(r.value, "$") {
			l.resolve(f, r, bases, l.maxData, "a secret or config file")
		}
	}
	for _, r := range extends {
		if strings.Contains(r.value, "$") {
			l.refDiag(f, r, r.value+": "+msgPathVariable)
			continue
		}
		if p, ok := l.resolve(f, r, bases, l.maxFile, "a stack file"); ok {
			// compose-go reads the extended file's own relative paths from
			// its directory (and, for nested extends, from the first
			// file's): check it against all of them.
			l.readExtended(p, append([]string{filepath.Dir(p)}, bases...))
		}
	}
}

// readExtended checks a file that extends.file names: its size, and the
// paths its services name. It is not a stack file of its own (only the
// services it lends are used), so the raw pass does not check the rest.
func (l *load) readExtended(abs string, bases []string) {
	if l.extended[abs] || len(l.extended) > 64 {
		return // cycles are compose-go's to report
	}
	l.extended[abs] = true
	data, err := l.tree.readFile(abs, l.maxFile)
	if err != nil {
		return // reported by compose-go, which cannot read it either
	}
	f, diag := parseFile(l.name(abs), data)
	if diag != nil {
		return
	}
	for _, doc := range documents(f.raw) {
		l.checkDoc(f, doc, bases)
	}
}

// documents returns the mapping documents of a decoded file.
func documents(raw any) []map[string]any {
	docs, ok := raw.([]any)
	if !ok {
		docs = []any{raw}
	}
	var out []map[string]any
	for _, d := range docs {
		if m, ok := d.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

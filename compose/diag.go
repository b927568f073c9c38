package compose

import (
	"fmt"
	"sort"
	"strings"
)

// Severity says whether a diagnostic stops a stack from loading.
type Severity uint8

const (
	SevError   Severity = iota // the stack is not loaded
	SevWarning                 // loaded, but something is ignored
)

// Diagnostic is one problem with a stack file.
type Diagnostic struct {
	File     string // as shown to the user (relative to Source.Root)
	Line     int    // 0 when unknown
	Path     string // dotted field path, e.g. services.web.deploy.mode
	Msg      string
	Severity Severity
}

// String formats the diagnostic as "file:line: [warning: ]path: msg".
func (d Diagnostic) String() string {
	var b strings.Builder
	if d.File != "" {
		b.WriteString(d.File)
		if d.Line > 0 {
			fmt.Fprintf(&b, ":%d", d.Line)
		}
		b.WriteString(": ")
	}
	if d.Severity == SevWarning {
		b.WriteString("warning: ")
	}
	if d.Path != "" {
		b.WriteString(d.Path)
		b.WriteString(": ")
	}
	b.WriteString(d.Msg)
	return b.String()
}

// Errors is every error found in a stack's files, in file and line order.
type Errors []Diagnostic

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, d := range es {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// diags collects diagnostics while a stack loads.
type diags struct {
	idx  *index
	list []Diagnostic
}

// at adds a diagnostic for a field path, located through the line index.
func (d *diags) at(sev Severity, path []string, format string, args ...any) {
	file, line := d.idx.locate(path, false)
	d.list = append(d.list, Diagnostic{File: file, Line: line, Path: strings.Join(path, "."),
		Msg: fmt.Sprintf(format, args...), Severity: sev})
}

func (d *diags) errorf(path []string, format string, args ...any) {
	d.at(SevError, path, format, args...)
}
func (d *diags) warnf(path []string, format string, args ...any) {
	d.at(SevWarning, path, format, args...)
}

// split returns the sorted, de-duplicated errors and warnings.
func (d *diags) split() (Errors, []Diagnostic) {
	sort.SliceStable(d.list, func(i, j int) bool {
		a, b := d.list[i], d.list[j]
		if a.File != b.File {
			return d.idx.order(a.File) < d.idx.order(b.File)
		}
		return a.Line < b.Line
	})
	var errs Errors
	var warns []Diagnostic
	// The raw pass and the conversion may both catch a problem: one report
	// per field and message.
	type key struct {
		path, msg string
		sev       Severity
	}
	seen := map[key]bool{}
	for _, x := range d.list {
		k := key{x.Path, x.Msg, x.Severity}
		if x.Path == "" {
			k.path = fmt.Sprintf("%s:%d", x.File, x.Line)
		}
		if seen[k] {
			continue
		}
		seen[k] = true
		if x.Severity == SevError {
			errs = append(errs, x)
		} else {
			warns = append(warns, x)
		}
	}
	return errs, warns
}

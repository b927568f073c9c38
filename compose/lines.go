package compose

import (
	"strconv"
	"strings"

	"go.yaml.in/yaml/v4"
)

// index maps field paths to the file and line that define them, for every
// file of a stack (included files too), so that any problem found after
// compose-go merged them can be reported where the user wrote it.
type index struct {
	files []*fileIndex // in load order; later files override earlier ones
}

type fileIndex struct {
	name   string         // display name
	values map[string]int // path → line of the value
	keys   map[string]int // path → line of the key
	raw    any            // decoded document, for checks before interpolation
}

const sep = "\x1f"

func pathKey(p []string) string { return strings.Join(p, sep) }

func (ix *index) order(name string) int {
	for i, f := range ix.files {
		if f.name == name {
			return i
		}
	}
	return len(ix.files)
}

// locate finds the deepest prefix of path that a file defines, preferring
// the last file (overrides win). With keyLine it returns the line of the
// key rather than of its value.
func (ix *index) locate(path []string, keyLine bool) (string, int) {
	if ix == nil || len(ix.files) == 0 {
		return "", 0
	}
	for n := len(path); n > 0; n-- {
		k := pathKey(path[:n])
		for i := len(ix.files) - 1; i >= 0; i-- {
			f := ix.files[i]
			// The field itself: its value's line (or its key's, on request).
			// A parent standing in for a missing field: the parent's key.
			m := f.keys
			if n == len(path) && !keyLine {
				m = f.values
			}
			if line, ok := m[k]; ok {
				return f.name, line
			}
		}
	}
	return ix.files[0].name, 0
}

// defines reports whether a file of the stack writes this field path.
func (ix *index) defines(path []string) bool {
	k := pathKey(path)
	for _, f := range ix.files {
		if _, ok := f.keys[k]; ok {
			return true
		}
	}
	return false
}

// indexNode records the line of every mapping key and sequence item.
func (f *fileIndex) indexNode(n *yaml.Node, path []string, depth int) {
	if n == nil || depth > 64 {
		return
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
		if n == nil {
			return
		}
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			f.indexNode(c, path, depth+1)
		}
	case yaml.MappingNode:
		var merges []*yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" && k.Tag != "!!str" {
				merges = append(merges, v)
				continue
			}
			p := append(append([]string(nil), path...), k.Value)
			key := pathKey(p)
			f.keys[key] = k.Line
			f.values[key] = v.Line
			f.indexNode(v, p, depth+1)
		}
		// Merged mappings' keys live here too, unless the mapping sets them.
		for _, v := range merges {
			f.indexMerge(v, path, depth+1)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := append(append([]string(nil), path...), strconv.Itoa(i))
			key := pathKey(p)
			f.keys[key] = c.Line
			f.values[key] = c.Line
			f.indexNode(c, p, depth+1)
		}
	}
}

func (f *fileIndex) indexMerge(v *yaml.Node, path []string, depth int) {
	if v.Kind == yaml.AliasNode {
		v = v.Alias
	}
	if v == nil {
		return
	}
	if v.Kind == yaml.SequenceNode {
		for _, c := range v.Content {
			f.indexMerge(c, path, depth+1)
		}
		return
	}
	if v.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		p := append(append([]string(nil), path...), v.Content[i].Value)
		if _, set := f.keys[pathKey(p)]; set {
			continue // the mapping's own keys win over merged ones
		}
		f.keys[pathKey(p)] = v.Content[i].Line
		f.values[pathKey(p)] = v.Content[i+1].Line
		f.indexNode(v.Content[i+1], p, depth+1)
	}
}

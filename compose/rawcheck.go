package compose

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/compose-spec/compose-go/v2/schema"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/go-units"
	"github.com/gitorc/gitorc/cluster/api"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	str2duration "github.com/xhit/go-str2duration/v2"
	"go.yaml.in/yaml/v4"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// The raw pass looks at each file as written, before compose-go merges and
// interpolates it, so that every problem keeps its own line and none hides
// another. Values holding a variable ("${REPLICAS}") are left to the pass
// after interpolation.

// yamlLineRe finds the parser's problem mark: the last "line N[, column M]: ".
var yamlLineRe = regexp.MustCompile(`line (\d+)(?:, column \d+)?: ([^:]*)$`)

const (
	msgEmpty          = "empty stack file"
	msgGlobalReplicas = "replicas cannot be set in %s mode: a global service runs one task per node"
)

// maxDepth bounds the nesting of mappings and sequences in a stack file.
// A real one nests less than 10 levels; compose-go's cost grows with the
// square of the depth (a 20 KB file nested 10,000 deep, YAML's own limit,
// made it allocate 460 MB), so deeper files are refused before it runs.
const maxDepth = 64

const msgTooDeep = "nested deeper than %d levels of mappings and sequences"

// deeperThan returns the line of the first node nested deeper than limit
// (aliases followed: the decoder already bounded their expansion), or 0.
func deeperThan(n *yaml.Node, limit, depth int) int {
	if n == nil {
		return 0
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
		if n == nil {
			return 0
		}
	}
	if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
		if depth++; depth > limit {
			return n.Line
		}
	}
	for _, c := range n.Content {
		if line := deeperThan(c, limit, depth); line > 0 {
			return line
		}
	}
	return 0
}

// parseFile decodes every document of a file into an index entry. A YAML
// syntax error is returned as a diagnostic with its line.
func parseFile(name string, data []byte) (*fileIndex, *Diagnostic) {
	f := &fileIndex{name: name, values: map[string]int{}, keys: map[string]int{}}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []any
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			msg := strings.TrimSpace(strings.TrimPrefix(err.Error(), "yaml: "))
			d := &Diagnostic{File: name, Msg: "invalid YAML: " + msg}
			if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
				d.Line, _ = strconv.Atoi(m[1])
				d.Msg = "invalid YAML: " + m[2]
			}
			return nil, d
		}
		var v any
		if err := n.Decode(&v); err != nil {
			// construct errors, such as a key defined twice in one mapping
			msg := strings.Join(strings.Fields(strings.TrimPrefix(strings.TrimPrefix(err.Error(), "yaml: "), "construct errors:")), " ")
			d := &Diagnostic{File: name, Line: n.Line, Msg: "invalid YAML: " + msg}
			if m := regexp.MustCompile(`^line (\d+): (.*)$`).FindStringSubmatch(msg); m != nil {
				d.Line, _ = strconv.Atoi(m[1])
				d.Msg = "invalid YAML: " + m[2]
			}
			return nil, d
		}
		if line := deeperThan(&n, maxDepth, 0); line > 0 {
			return nil, &Diagnostic{File: name, Line: line, Msg: fmt.Sprintf(msgTooDeep, maxDepth)}
		}
		f.indexNode(&n, nil, 0)
		docs = append(docs, jsonable(v))
	}
	switch len(docs) {
	case 0:
		return nil, &Diagnostic{File: name, Msg: msgEmpty}
	case 1:
		f.raw = docs[0]
	default:
		f.raw = docs // validated one by one
	}
	return f, nil
}

// jsonable turns a decoded YAML value into one encoding/json (and so the
// schema validator) accepts: string keys everywhere.
func jsonable(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = jsonable(x)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[fmt.Sprint(k)] = jsonable(x)
		}
		return m
	case []any:
		for i, x := range t {
			t[i] = jsonable(x)
		}
		return t
	default:
		return v
	}
}

var (
	compiled     *jsonschema.Schema
	compiledErr  error
	compiledOnce sync.Once
)

// composeSchema is compose-go's compose-spec schema, compiled once.
func composeSchema() (*jsonschema.Schema, error) {
	compiledOnce.Do(func() {
		doc, err := jsonschema.UnmarshalJSON(strings.NewReader(schema.Schema))
		if err != nil {
			compiledErr = err
			return
		}
		c := jsonschema.NewCompiler()
		if err := c.AddResource("compose-spec.json", doc); err != nil {
			compiledErr = err
			return
		}
		compiled, compiledErr = c.Compile("compose-spec.json")
	})
	return compiled, compiledErr
}

// checkRaw runs the schema and the typed-field checks over one file.
func checkRaw(d *diags, f *fileIndex) {
	docs, ok := f.raw.([]any)
	if !ok {
		docs = []any{f.raw}
	}
	for _, doc := range docs {
		if _, ok := doc.(map[string]any); !ok {
			d.list = append(d.list, Diagnostic{File: f.name, Line: 1, Msg: "a stack file must be a mapping of top-level keys (services, networks, …)"})
			continue
		}
		checkSchema(d, f, doc)
		checkScalars(d, f, doc)
		checkKeys(d, f, doc)
	}
}

func checkSchema(d *diags, f *fileIndex, doc any) {
	sch, err := composeSchema()
	if err != nil {
		d.list = append(d.list, Diagnostic{File: f.name, Msg: fmt.Sprintf("compose schema: %v", err)})
		return
	}
	// The validator wants plain JSON types (float64 numbers).
	b, err := json.Marshal(doc)
	if err != nil {
		d.list = append(d.list, Diagnostic{File: f.name, Msg: err.Error()})
		return
	}
	var v any
	_ = json.Unmarshal(b, &v)
	err = sch.Validate(v)
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return
	}
	leaves := schemaLeaves(ve)
	p := message.NewPrinter(language.English)
	for _, e := range leaves {
		loc := e.InstanceLocation
		if s, ok := lookup(doc, loc).(string); ok && strings.Contains(s, "$") {
			continue // interpolation may make it valid
		}
		switch k := e.ErrorKind.(type) {
		case *kind.FalseSchema: // an unevaluated (unknown) property
			if len(loc) == 0 {
				continue
			}
			if len(loc) == 1 {
				d.keyIn(f, loc, "unknown top-level key %q", loc[0])
			} else {
				d.keyIn(f, loc, "unknown key %q", loc[len(loc)-1])
			}
		case *kind.AdditionalProperties:
			what := "unknown key %q"
			if len(loc) == 0 {
				what = "unknown top-level key %q"
			}
			for _, prop := range k.Properties {
				d.keyIn(f, append(slices.Clone(loc), prop), what, prop)
			}
		case *kind.Enum:
			if checkedField(loc) {
				continue // reported by checkScalars with gitorc's wording
			}
			d.atIn(f, loc, "%s", e.ErrorKind.LocalizedString(p))
		case *kind.Type:
			if checkedField(loc) {
				continue // reported by checkScalars with gitorc's wording
			}
			d.atIn(f, loc, "must be %s, not %s", article(humanTypes(k.Want)), humanType(k.Got))
		default:
			d.atIn(f, loc, "%s", e.ErrorKind.LocalizedString(p))
		}
	}
}

// atIn and keyIn place a diagnostic in one file (the raw pass knows which).
func (d *diags) atIn(f *fileIndex, path []string, format string, args ...any) {
	d.list = append(d.list, Diagnostic{File: f.name, Line: f.values[pathKey(path)], Path: strings.Join(path, "."),
		Msg: fmt.Sprintf(format, args...)})
}

func (d *diags) keyIn(f *fileIndex, path []string, format string, args ...any) {
	d.list = append(d.list, Diagnostic{File: f.name, Line: f.keys[pathKey(path)], Path: strings.Join(path[:len(path)-1], "."),
		Msg: fmt.Sprintf(format, args...)})
}

// schemaLeaves flattens a validation error tree into the errors a user can
// act on: of the branches of a oneOf/anyOf, the most specific one; and no
// "unevaluated property" echo of a property that failed for its own reason.
func schemaLeaves(e *jsonschema.ValidationError) []*jsonschema.ValidationError {
	var out []*jsonschema.ValidationError
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		switch e.ErrorKind.(type) {
		case *kind.OneOf, *kind.AnyOf:
			if best := mostSpecific(e); best != nil {
				out = append(out, best)
			}
			return
		}
		if len(e.Causes) == 0 {
			out = append(out, e)
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(e)
	var kept []*jsonschema.ValidationError
	for _, l := range out {
		if _, ok := l.ErrorKind.(*kind.FalseSchema); ok && coveredBy(l, out) {
			continue
		}
		kept = append(kept, l)
	}
	return kept
}

func coveredBy(fs *jsonschema.ValidationError, all []*jsonschema.ValidationError) bool {
	for _, o := range all {
		if o == fs {
			continue
		}
		if _, ok := o.ErrorKind.(*kind.FalseSchema); ok {
			continue
		}
		if len(o.InstanceLocation) >= len(fs.InstanceLocation) && slices.Equal(o.InstanceLocation[:len(fs.InstanceLocation)], fs.InstanceLocation) {
			return true
		}
	}
	return false
}

func mostSpecific(e *jsonschema.ValidationError) *jsonschema.ValidationError {
	if len(e.Causes) == 0 {
		return e
	}
	var best *jsonschema.ValidationError
	for _, c := range e.Causes {
		c = mostSpecific(c)
		if specificity(c) > specificity(best) {
			best = c
		}
	}
	return best
}

func specificity(e *jsonschema.ValidationError) int {
	if e == nil {
		return -1
	}
	n := 2 * len(e.InstanceLocation)
	switch e.ErrorKind.(type) {
	case *kind.AdditionalProperties, *kind.FalseSchema:
		n++
	case *kind.Type:
	default:
		n++
	}
	return n
}

func lookup(doc any, path []string) any {
	v := doc
	for _, p := range path {
		switch t := v.(type) {
		case map[string]any:
			v = t[p]
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(t) {
				return nil
			}
			v = t[i]
		default:
			return nil
		}
	}
	return v
}

func humanType(t string) string {
	if t == "object" {
		return "mapping"
	}
	if t == "array" {
		return "list"
	}
	return t
}

func humanTypes(ts []string) string {
	hs := make([]string, len(ts))
	for i, t := range ts {
		hs[i] = humanType(t)
	}
	slices.Sort(hs)
	if len(hs) == 1 {
		return hs[0]
	}
	return strings.Join(hs[:len(hs)-1], ", ") + " or " + hs[len(hs)-1]
}

func article(s string) string {
	if s == "" {
		return s
	}
	if strings.ContainsRune("aeiou", rune(s[0])) {
		return "an " + s
	}
	return "a " + s
}

// Typed fields compose-go's schema lets through as strings (for the sake of
// interpolation) and then rejects one at a time: checked here, all at once.
type scalarKind uint8

const (
	scalarDuration scalarKind = iota
	scalarCount               // a non-negative integer
	scalarRatio               // a number between 0 and 1
	scalarBytes               // a size such as 256M
	scalarCPUs                // a number of CPUs such as 0.5
	scalarMode                // deploy.mode
	scalarFailureAction
	scalarOrder
	scalarCondition
	scalarEndpointMode
)

var scalarFields = map[string]scalarKind{
	"deploy.replicas":                          scalarCount,
	"deploy.update_config.parallelism":         scalarCount,
	"deploy.update_config.delay":               scalarDuration,
	"deploy.update_config.monitor":             scalarDuration,
	"deploy.update_config.max_failure_ratio":   scalarRatio,
	"deploy.rollback_config.parallelism":       scalarCount,
	"deploy.rollback_config.delay":             scalarDuration,
	"deploy.rollback_config.monitor":           scalarDuration,
	"deploy.rollback_config.max_failure_ratio": scalarRatio,
	"deploy.restart_policy.delay":              scalarDuration,
	"deploy.restart_policy.window":             scalarDuration,
	"deploy.restart_policy.max_attempts":       scalarCount,
	"deploy.placement.max_replicas_per_node":   scalarCount,
	"healthcheck.interval":                     scalarDuration,
	"healthcheck.timeout":                      scalarDuration,
	"healthcheck.start_period":                 scalarDuration,
	"healthcheck.start_interval":               scalarDuration,
	"healthcheck.retries":                      scalarCount,
	"stop_grace_period":                        scalarDuration,
	"deploy.resources.limits.pids":             scalarCount,
	"deploy.resources.limits.memory":           scalarBytes,
	"deploy.resources.reservations.memory":     scalarBytes,
	"deploy.resources.limits.cpus":             scalarCPUs,
	"deploy.resources.reservations.cpus":       scalarCPUs,
	"deploy.mode":                              scalarMode,
	"deploy.update_config.failure_action":      scalarFailureAction,
	"deploy.rollback_config.failure_action":    scalarFailureAction,
	"deploy.update_config.order":               scalarOrder,
	"deploy.rollback_config.order":             scalarOrder,
	"deploy.restart_policy.condition":          scalarCondition,
	"deploy.endpoint_mode":                     scalarEndpointMode,
}

// checkedField reports whether a schema location is a service field the
// scalar checks cover.
func checkedField(loc []string) bool {
	if len(loc) < 3 || loc[0] != "services" {
		return false
	}
	_, ok := scalarFields[strings.Join(loc[2:], ".")]
	return ok
}

func checkScalars(d *diags, f *fileIndex, doc any) {
	services, _ := lookup(doc, []string{"services"}).(map[string]any)
	for _, name := range sortedKeys(services) {
		svc, _ := services[name].(map[string]any)
		if svc == nil {
			continue
		}
		for field, k := range scalarFields {
			rel := strings.Split(field, ".")
			v := lookup(svc, rel)
			if v == nil {
				continue
			}
			path := append([]string{"services", name}, rel...)
			if msg := checkScalar(k, v); msg != "" {
				d.atIn(f, path, "%s", msg)
			}
		}
		if mode, ok := lookup(svc, []string{"deploy", "mode"}).(string); ok {
			if m, err := api.ParseServiceMode(mode); err == nil && m.IsGlobal() && lookup(svc, []string{"deploy", "replicas"}) != nil {
				d.atIn(f, []string{"services", name, "deploy", "replicas"}, msgGlobalReplicas, m)
			}
		}
		constraints, _ := lookup(svc, []string{"deploy", "placement", "constraints"}).([]any)
		for i, c := range constraints {
			if s, ok := c.(string); ok && !strings.Contains(s, "$") {
				if _, err := api.ParseConstraint(s); err != nil {
					d.atIn(f, []string{"services", name, "deploy", "placement", "constraints", strconv.Itoa(i)}, "%v", err)
				}
			}
		}
		ports, _ := svc["ports"].([]any)
		for i, pv := range ports {
			pp := []string{"services", name, "ports", strconv.Itoa(i)}
			switch t := pv.(type) {
			case string:
				if !strings.Contains(t, "$") {
					if _, err := types.ParsePortConfig(t); err != nil {
						d.atIn(f, pp, "invalid port %q: %v", t, lowerFirst(err.Error()))
					}
				}
			case map[string]any:
				for field, parse := range map[string]func(string) error{
					"mode":     func(s string) error { _, err := api.ParsePublishMode(s); return err },
					"protocol": func(s string) error { _, err := api.ParseProtocol(s); return err },
				} {
					if s, ok := t[field].(string); ok && !strings.Contains(s, "$") {
						if err := parse(s); err != nil {
							d.atIn(f, append(pp, field), "%v", err)
						}
					}
				}
			}
		}
	}
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

func checkScalar(k scalarKind, v any) string {
	if s, ok := v.(string); ok && strings.Contains(s, "$") {
		return ""
	}
	switch k {
	case scalarDuration:
		s, ok := v.(string)
		if !ok {
			return fmt.Sprintf("%v is not a duration: write it with a unit, such as 10s or 1m30s", v)
		}
		dur, err := str2duration.ParseDuration(s)
		if err != nil {
			return fmt.Sprintf("%q is not a duration: write it such as 10s or 1m30s", s)
		}
		if dur < 0 {
			return fmt.Sprintf("%q must not be negative", s)
		}
	case scalarCount:
		var n int64
		switch t := v.(type) {
		case int:
			n = int64(t)
		case uint64:
			return ""
		case string:
			var err error
			if n, err = strconv.ParseInt(strings.TrimSpace(t), 10, 64); err != nil {
				return fmt.Sprintf("%q is not a whole number", t)
			}
		case float64:
			if t != math.Trunc(t) {
				return fmt.Sprintf("%v is not a whole number", t)
			}
			n = int64(t)
		default:
			return fmt.Sprintf("%v is not a whole number", v)
		}
		if n < 0 {
			return fmt.Sprintf("%d must not be negative", n)
		}
	case scalarBytes:
		switch t := v.(type) {
		case int:
			if t < 0 {
				return fmt.Sprintf("%d must not be negative", t)
			}
		case string:
			if n, err := units.RAMInBytes(t); err != nil || n < 0 {
				return fmt.Sprintf("%q is not a size: write it such as 256M or 1G", t)
			}
		default:
			return fmt.Sprintf("%v is not a size: write it such as 256M or 1G", v)
		}
	case scalarCPUs:
		x, msg := number(v, "a number of CPUs such as 0.5")
		if msg != "" {
			return msg
		}
		if x < 0 {
			return fmt.Sprintf("%v must not be negative", v)
		}
	case scalarMode, scalarFailureAction, scalarOrder, scalarCondition, scalarEndpointMode:
		s, ok := v.(string)
		if !ok {
			return fmt.Sprintf("%v must be a string", v)
		}
		var err error
		switch k {
		case scalarMode:
			_, err = api.ParseServiceMode(s)
		case scalarFailureAction:
			_, err = api.ParseFailureAction(s)
		case scalarOrder:
			_, err = api.ParseUpdateOrder(s)
		case scalarCondition:
			_, err = api.ParseRestartCondition(s)
		case scalarEndpointMode:
			_, err = api.ParseEndpointMode(s)
		}
		if err != nil {
			return err.Error()
		}
	case scalarRatio:
		x, msg := number(v, "a number")
		if msg != "" {
			return msg
		}
		if x < 0 || x > 1 {
			return fmt.Sprintf("%v is not between 0 and 1", v)
		}
	}
	return ""
}

// number reads a YAML number, or a string holding one.
func number(v any, what string) (float64, string) {
	switch t := v.(type) {
	case int:
		return float64(t), ""
	case float64:
		return t, ""
	case string:
		x, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
		if err != nil {
			return 0, fmt.Sprintf("%q is not %s", t, what)
		}
		return x, ""
	}
	return 0, fmt.Sprintf("%v is not %s", v, what)
}

package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v4"
)

// Output formats every command supports with --output.
const (
	outText = "text"
	outJSON = "json"
	outYAML = "yaml"
)

// outputFormat returns the --output value, or def when it is not set.
func outputFormat(cmd *cobra.Command, def string, allowed ...string) (string, error) {
	f, _ := cmd.Flags().GetString("output")
	if f == "" {
		return def, nil
	}
	for _, a := range allowed {
		if f == a {
			return f, nil
		}
	}
	return "", fmt.Errorf("--output %s is not one of %v", f, allowed)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeDoneThen prints, as a JSON array, what a command that acts on
// its arguments one by one did, and returns err: when it failed on one,
// what it did before is printed, so that a script knows. Nothing is
// printed when it failed on the first.
func writeDoneThen[T any](cmd *cobra.Command, done []T, err error) error {
	if err != nil && len(done) == 0 {
		return err
	}
	if done == nil {
		done = []T{}
	}
	if werr := writeJSON(cmd.OutOrStdout(), done); werr != nil && err == nil {
		return werr
	}
	return err
}

// writeYAML prints v as YAML with the field names and order of its JSON
// form, so the two outputs always agree.
func writeYAML(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		return err
	}
	plain(&n)
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return err
	}
	return enc.Close()
}

// plain drops the JSON quoting and flow style the YAML parser kept, except
// where a string would otherwise read as another type.
func plain(n *yaml.Node) {
	n.Style &^= yaml.FlowStyle
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
		n.Style = 0
	}
	for _, c := range n.Content {
		plain(c)
	}
}

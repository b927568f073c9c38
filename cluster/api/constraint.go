package api

import (
	"fmt"
	"strings"
)

// ConstraintOp compares a node attribute to a value.
type ConstraintOp uint8

const (
	OpEq ConstraintOp = iota // ==
	OpNe                     // !=
)

func (o ConstraintOp) String() string {
	if o == OpNe {
		return "!="
	}
	return "=="
}

// Constraint is a placement constraint such as node.role==worker.
type Constraint struct {
	Key   string
	Op    ConstraintOp
	Value string
}

// The attributes a constraint may test. Keys under node.labels. name a
// node label.
const (
	ConstraintNodeID       = "node.id"
	ConstraintNodeHostname = "node.hostname"
	ConstraintNodeRole     = "node.role"
	ConstraintPlatformOS   = "node.platform.os"
	ConstraintPlatformArch = "node.platform.arch"
	ConstraintLabelPrefix  = "node.labels."
)

var constraintKeys = []string{ConstraintNodeID, ConstraintNodeHostname, ConstraintNodeRole,
	ConstraintPlatformOS, ConstraintPlatformArch, ConstraintLabelPrefix + "<name>"}

// ParseConstraint parses "key==value" or "key!=value" as Swarm does,
// allowing spaces around the operator.
func ParseConstraint(s string) (Constraint, error) {
	var c Constraint
	i := strings.Index(s, "==")
	op := OpEq
	if j := strings.Index(s, "!="); j >= 0 && (i < 0 || j < i) {
		i, op = j, OpNe
	}
	if i < 0 {
		return c, fmt.Errorf("invalid constraint %q: want key==value or key!=value", s)
	}
	c.Key, c.Op, c.Value = strings.TrimSpace(s[:i]), op, strings.TrimSpace(s[i+2:])
	if c.Key == "" || c.Value == "" {
		return c, fmt.Errorf("invalid constraint %q: key and value must not be empty", s)
	}
	if strings.ContainsAny(c.Value, "=!") {
		return c, fmt.Errorf("invalid constraint %q: one operator only", s)
	}
	switch {
	case c.Key == ConstraintNodeID, c.Key == ConstraintNodeHostname,
		c.Key == ConstraintPlatformOS, c.Key == ConstraintPlatformArch:
	case c.Key == ConstraintNodeRole:
		if _, err := ParseNodeRole(c.Value); err != nil {
			return c, fmt.Errorf("invalid constraint %q: %w", s, err)
		}
	case strings.HasPrefix(c.Key, ConstraintLabelPrefix) && len(c.Key) > len(ConstraintLabelPrefix):
	case strings.HasPrefix(c.Key, "engine.labels."):
		return c, fmt.Errorf("invalid constraint %q: engine labels do not exist in gitorc, use node.labels", s)
	default:
		return c, fmt.Errorf("invalid constraint %q: unknown attribute %q, want one of %s",
			s, c.Key, strings.Join(constraintKeys, ", "))
	}
	return c, nil
}

// String prints the constraint in the form ParseConstraint reads.
func (c Constraint) String() string { return c.Key + c.Op.String() + c.Value }

func (c Constraint) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

func (c *Constraint) UnmarshalText(b []byte) (err error) {
	*c, err = ParseConstraint(string(b))
	return err
}

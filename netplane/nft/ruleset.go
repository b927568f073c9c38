package nft

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/google/nftables"
)

// Ruleset is the desired content of one inet table: its named sets and
// verdict maps, and its chains. Build makes it; it is not modified after,
// and Apply keeps it as what the kernel holds.
type Ruleset struct {
	// Table is the table's name (family inet).
	Table string
	// Sets are the named sets and verdict maps, sorted by name.
	Sets []*Set
	// Chains are sorted by name.
	Chains []*Chain
}

// Set is a named set, or a verdict map when Map is set.
type Set struct {
	Name string
	// KeyType is nft's name of the key type: "ipv4_addr", or a
	// concatenation such as "inet_proto . inet_service".
	KeyType string
	Map     bool
	// Elems are sorted by the bytes of their key, as the kernel holds it.
	Elems []Elem
	// keyType is the kernel's; a concatenation's fields are 4-byte
	// aligned. Like nft, no set is flagged NFT_SET_CONCAT (nft does so
	// for interval sets only, and the kernel takes a set defined
	// otherwise for another one).
	keyType nftables.SetDatatype
}

// Elem is an element of a set, or of a verdict map with its verdict.
type Elem struct {
	Key     string // nft text of the key: "10.64.1.5", "tcp . 8080"
	Verdict string // maps only: "goto svc-0123456789ab"
	key     []byte
	chain   string // the verdict's chain (goto)
}

// Chain is a chain and its rules; a base chain when Hook is set.
type Chain struct {
	Name  string
	Hook  *Hook
	Rules []Rule
}

// Hook makes a chain a base chain (policy accept).
type Hook struct {
	Type     nftables.ChainType // filter or nat
	Hook     string             // prerouting, input, forward, output, postrouting
	Priority int32              // filter 0, dstnat -100, srcnat 100
}

// Priorities of base chains, as nft names them.
const (
	PriorityFilter int32 = 0
	PriorityDstNAT int32 = -100
	PrioritySrcNAT int32 = 100
)

var hookNums = map[string]*nftables.ChainHook{
	"prerouting":  nftables.ChainHookPrerouting,
	"input":       nftables.ChainHookInput,
	"forward":     nftables.ChainHookForward,
	"output":      nftables.ChainHookOutput,
	"postrouting": nftables.ChainHookPostrouting,
}

// priorityName names the priority as nft does, which knows dstnat in
// prerouting only and srcnat in postrouting only.
func (h *Hook) priorityName() string {
	switch {
	case h.Type == nftables.ChainTypeFilter && h.Priority == PriorityFilter:
		return "filter"
	case h.Type == nftables.ChainTypeNAT && h.Priority == PriorityDstNAT && h.Hook == "prerouting":
		return "dstnat"
	case h.Type == nftables.ChainTypeNAT && h.Priority == PrioritySrcNAT && h.Hook == "postrouting":
		return "srcnat"
	}
	return fmt.Sprint(h.Priority)
}

func (h *Hook) String() string {
	return fmt.Sprintf("type %s hook %s priority %s; policy accept;", h.Type, h.Hook, h.priorityName())
}

// Set returns the set or map named name, or nil.
func (r *Ruleset) Set(name string) *Set {
	i, ok := slices.BinarySearchFunc(r.Sets, name, func(s *Set, n string) int { return strings.Compare(s.Name, n) })
	if !ok {
		return nil
	}
	return r.Sets[i]
}

// Chain returns the chain named name, or nil.
func (r *Ruleset) Chain(name string) *Chain {
	i, ok := slices.BinarySearchFunc(r.Chains, name, func(c *Chain, n string) int { return strings.Compare(c.Name, n) })
	if !ok {
		return nil
	}
	return r.Chains[i]
}

// String renders the ruleset as `nft list table` would (sets, then
// chains, each sorted by name), a script `nft -f` loads.
func (r *Ruleset) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", r.Table)
	first := true
	sep := func() {
		if !first {
			b.WriteString("\n")
		}
		first = false
	}
	for _, s := range r.Sets {
		sep()
		s.render(&b)
	}
	for _, c := range r.Chains {
		sep()
		c.render(&b)
	}
	b.WriteString("}\n")
	return b.String()
}

func (s *Set) kind() string {
	if s.Map {
		return "map"
	}
	return "set"
}

func (s *Set) typeLine() string {
	if s.Map {
		return "type " + s.KeyType + " : verdict"
	}
	return "type " + s.KeyType
}

func (s *Set) render(b *strings.Builder) {
	fmt.Fprintf(b, "\t%s %s {\n\t\t%s\n", s.kind(), s.Name, s.typeLine())
	if len(s.Elems) > 0 {
		b.WriteString("\t\telements = { ")
		for i, e := range s.Elems {
			if i > 0 {
				b.WriteString(",\n\t\t\t     ")
			}
			b.WriteString(e.String())
		}
		b.WriteString(" }\n")
	}
	b.WriteString("\t}\n")
}

func (e Elem) String() string {
	if e.Verdict != "" {
		return e.Key + " : " + e.Verdict
	}
	return e.Key
}

func (c *Chain) render(b *strings.Builder) {
	fmt.Fprintf(b, "\tchain %s {\n", c.Name)
	if c.Hook != nil {
		fmt.Fprintf(b, "\t\t%s\n", c.Hook)
	}
	for _, r := range c.Rules {
		fmt.Fprintf(b, "\t\t%s\n", r.Text)
	}
	b.WriteString("\t}\n")
}

// sameHeader reports whether two sets are of one kind and type.
func (s *Set) sameHeader(o *Set) bool {
	return s.Map == o.Map && s.KeyType == o.KeyType
}

// sameHook reports whether two chains have equal hooks (or none).
func (c *Chain) sameHook(o *Chain) bool {
	if c.Hook == nil || o.Hook == nil {
		return c.Hook == nil && o.Hook == nil
	}
	return *c.Hook == *o.Hook
}

// sameRules reports whether two chains hold equal rules.
func (c *Chain) sameRules(o *Chain) bool {
	if len(c.Rules) != len(o.Rules) {
		return false
	}
	for i := range c.Rules {
		if c.Rules[i].Text != o.Rules[i].Text {
			return false
		}
	}
	return true
}

func compareElems(a, b Elem) int { return bytes.Compare(a.key, b.key) }

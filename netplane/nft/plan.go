package nft

import (
	"bytes"
	"fmt"
	"strings"
)

// plan is what one Apply sends, in one batch: the whole table (full) or
// the steps from the ruleset applied before to the new one. Computing it
// is pure; a plan without steps sends nothing.
type plan struct {
	table string
	full  *Ruleset // replace the table with this ruleset
	ops   []op
}

type opKind int

const (
	opAddChain   opKind = iota // the chain, without rules
	opAddSet                   // the set, without elements
	opAddElems                 // elems into set
	opDelElems                 // elems (by key) out of set
	opFlushChain               // every rule of the chain
	opAddRules                 // every rule of the chain, in order
	opDelChain
	opDelSet
)

type op struct {
	kind  opKind
	set   *Set
	chain *Chain
	elems []Elem
}

func (p *plan) empty() bool { return p.full == nil && len(p.ops) == 0 }

// diff plans the steps from old (what the kernel holds; nil when unknown)
// to r. A change of a set's type or of a base chain's hook, which no view
// makes, replaces the whole table.
//
// Order in the batch: new chains first (maps and rules refer to them),
// new sets, element removals then additions (a key whose verdict changed
// is removed and added again), changed chains flushed and refilled, new
// chains filled, then what went away: chains flushed, chains deleted,
// sets deleted, once nothing refers to them.
func diff(old, r *Ruleset) *plan {
	p := &plan{table: r.Table}
	if old == nil || old.Table != r.Table {
		p.full = r
		return p
	}
	var (
		addChains, fillChains, changedChains, goneChains []*Chain
		addSets, goneSets                                []*Set
		addElems, delElems                               []op
	)
	i, j := 0, 0
	for i < len(old.Sets) || j < len(r.Sets) {
		switch c := cmpNames(old.Sets, i, r.Sets, j, setName); {
		case c < 0:
			goneSets = append(goneSets, old.Sets[i])
			i++
		case c > 0:
			addSets = append(addSets, r.Sets[j])
			if len(r.Sets[j].Elems) > 0 {
				addElems = append(addElems, op{kind: opAddElems, set: r.Sets[j], elems: r.Sets[j].Elems})
			}
			j++
		default:
			o, n := old.Sets[i], r.Sets[j]
			if !o.sameHeader(n) {
				p.full = r
				return p
			}
			add, del := diffElems(o.Elems, n.Elems)
			if len(del) > 0 {
				delElems = append(delElems, op{kind: opDelElems, set: n, elems: del})
			}
			if len(add) > 0 {
				addElems = append(addElems, op{kind: opAddElems, set: n, elems: add})
			}
			i++
			j++
		}
	}
	i, j = 0, 0
	for i < len(old.Chains) || j < len(r.Chains) {
		switch c := cmpNames(old.Chains, i, r.Chains, j, chainName); {
		case c < 0:
			goneChains = append(goneChains, old.Chains[i])
			i++
		case c > 0:
			addChains = append(addChains, r.Chains[j])
			if len(r.Chains[j].Rules) > 0 {
				fillChains = append(fillChains, r.Chains[j])
			}
			j++
		default:
			o, n := old.Chains[i], r.Chains[j]
			if !o.sameHook(n) {
				p.full = r
				return p
			}
			if !o.sameRules(n) {
				changedChains = append(changedChains, n)
			}
			i++
			j++
		}
	}
	for _, c := range addChains {
		p.ops = append(p.ops, op{kind: opAddChain, chain: c})
	}
	for _, s := range addSets {
		p.ops = append(p.ops, op{kind: opAddSet, set: s})
	}
	p.ops = append(p.ops, delElems...)
	p.ops = append(p.ops, addElems...)
	for _, c := range changedChains {
		p.ops = append(p.ops, op{kind: opFlushChain, chain: c})
		if len(c.Rules) > 0 {
			p.ops = append(p.ops, op{kind: opAddRules, chain: c})
		}
	}
	for _, c := range fillChains {
		p.ops = append(p.ops, op{kind: opAddRules, chain: c})
	}
	for _, c := range goneChains {
		if len(c.Rules) > 0 {
			p.ops = append(p.ops, op{kind: opFlushChain, chain: c})
		}
	}
	for _, c := range goneChains {
		p.ops = append(p.ops, op{kind: opDelChain, chain: c})
	}
	for _, s := range goneSets {
		p.ops = append(p.ops, op{kind: opDelSet, set: s})
	}
	return p
}

func setName(s *Set) string     { return s.Name }
func chainName(c *Chain) string { return c.Name }

// cmpNames compares the names at a[i] and b[j] of two sorted lists, an
// exhausted list sorting last.
func cmpNames[T any](a []T, i int, b []T, j int, name func(T) string) int {
	switch {
	case i >= len(a):
		return 1
	case j >= len(b):
		return -1
	}
	x, y := name(a[i]), name(b[j])
	if x == y {
		return 0
	}
	return strings.Compare(x, y)
}

// diffElems returns the elements of n to add and those of o to remove
// (both sorted by key): new keys, and keys whose verdict changed, which
// are removed and added again.
func diffElems(o, n []Elem) (add, del []Elem) {
	i, j := 0, 0
	for i < len(o) || j < len(n) {
		var c int
		switch {
		case i >= len(o):
			c = 1
		case j >= len(n):
			c = -1
		case bytes.Equal(o[i].key, n[j].key): // most often
			c = 0
		default:
			c = bytes.Compare(o[i].key, n[j].key)
		}
		switch {
		case c < 0:
			del = append(del, o[i])
			i++
		case c > 0:
			add = append(add, n[j])
			j++
		default:
			if o[i].Verdict != n[j].Verdict {
				del = append(del, o[i])
				add = append(add, n[j])
			}
			i++
			j++
		}
	}
	return add, del
}

// String renders the plan as the nft script that does the same.
func (p *plan) String() string {
	var b strings.Builder
	t := "inet " + p.table
	if p.full != nil {
		fmt.Fprintf(&b, "add table %s\ndelete table %s\n%s", t, t, p.full)
	}
	for _, o := range p.ops {
		switch o.kind {
		case opAddChain:
			if o.chain.Hook != nil {
				fmt.Fprintf(&b, "add chain %s %s { %s }\n", t, o.chain.Name, o.chain.Hook)
			} else {
				fmt.Fprintf(&b, "add chain %s %s\n", t, o.chain.Name)
			}
		case opAddSet:
			fmt.Fprintf(&b, "add %s %s %s { %s; }\n", o.set.kind(), t, o.set.Name, o.set.typeLine())
		case opAddElems, opDelElems:
			verb := "add"
			parts := make([]string, len(o.elems))
			for i, e := range o.elems {
				parts[i] = e.String()
				if o.kind == opDelElems {
					parts[i] = e.Key
				}
			}
			if o.kind == opDelElems {
				verb = "delete"
			}
			fmt.Fprintf(&b, "%s element %s %s { %s }\n", verb, t, o.set.Name, strings.Join(parts, ", "))
		case opFlushChain:
			fmt.Fprintf(&b, "flush chain %s %s\n", t, o.chain.Name)
		case opAddRules:
			for _, r := range o.chain.Rules {
				fmt.Fprintf(&b, "add rule %s %s %s\n", t, o.chain.Name, r.Text)
			}
		case opDelChain:
			fmt.Fprintf(&b, "delete chain %s %s\n", t, o.chain.Name)
		case opDelSet:
			fmt.Fprintf(&b, "delete %s %s %s\n", o.set.kind(), t, o.set.Name)
		}
	}
	return b.String()
}

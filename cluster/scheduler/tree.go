package scheduler

import (
	"slices"
	"strings"

	"github.com/gitorc/gitorc/cluster/api"
)

// The placement tree of a group. Without spread preferences it is a single
// leaf holding every eligible node. Each preference splits a level by the
// value of a node label (nodes without the label form their own branch),
// and a task goes down the branch holding the fewest tasks of the service,
// as swarmkit balances preferences. At a leaf the node with the fewest
// tasks of the service, then the fewest tasks, then the lowest ID wins.
//
// Branches sit in a heap in their parent and nodes in a heap in their
// leaf, so one pick costs O(depth × log fan-out + log nodes).

// entry is an eligible node in a leaf's heap.
type entry struct {
	node  int // index in Scheduler.nodes (ID order)
	svc   int // tasks of the group's service on the node
	total int // tasks on the node
}

func (a *entry) less(b *entry) bool {
	if a.svc != b.svc {
		return a.svc < b.svc
	}
	if a.total != b.total {
		return a.total < b.total
	}
	return a.node < b.node
}

type branch struct {
	parent   *branch
	pos      int // index in parent.children
	order    int // rank of the branch's label value among its siblings
	svc      int // tasks of the service in the subtree
	children []*branch
	heap     []entry // leaves only
}

func (b *branch) less(c *branch) bool {
	if b.svc != c.svc {
		return b.svc < c.svc
	}
	return b.order < c.order
}

type tree struct {
	root *branch
}

// buildTree arranges the eligible nodes by g's preferences. It costs
// O(eligible nodes + nodes running the service), with no map lookup per
// node, so that many small groups stay cheap.
func (s *Scheduler) buildTree(g *group, st *staticResult) *tree {
	var entries []entry
	if len(g.spec.Placement.Preferences) == 0 {
		// The heap lives only while the group is scheduled: reuse it.
		entries = slices.Grow(s.scratch[:0], len(st.eligible))[:len(st.eligible)]
		s.scratch = entries
	} else {
		entries = make([]entry, len(st.eligible))
	}
	for i, ni := range st.eligible {
		entries[i] = entry{node: ni, total: s.nodes[ni].total}
	}
	for ni, c := range g.counts {
		if p := st.pos[ni]; p >= 0 {
			entries[p].svc = c
		}
	}
	var labels []string
	for _, p := range g.spec.Placement.Preferences {
		if l, ok := strings.CutPrefix(p.Spread, api.ConstraintLabelPrefix); ok && l != "" {
			labels = append(labels, l)
		}
	}
	root := s.buildBranch(entries, labels)
	if len(root.heap) == 0 && len(root.children) == 0 {
		return &tree{}
	}
	return &tree{root: root}
}

func (s *Scheduler) buildBranch(entries []entry, labels []string) *branch {
	b := &branch{}
	for i := range entries {
		b.svc += entries[i].svc
	}
	if len(labels) == 0 {
		b.heap = entries
		for i := len(b.heap)/2 - 1; i >= 0; i-- {
			b.down(i)
		}
		return b
	}
	byValue := map[string][]entry{}
	for _, e := range entries {
		v, ok := s.nodes[e.node].node.Spec.Labels[labels[0]]
		if !ok {
			v = "\x00" // the nodes without the label
		}
		byValue[v] = append(byValue[v], e)
	}
	values := make([]string, 0, len(byValue))
	for v := range byValue {
		values = append(values, v)
	}
	slices.Sort(values)
	for i, v := range values {
		c := s.buildBranch(byValue[v], labels[1:])
		c.parent, c.order, c.pos = b, i, len(b.children)
		b.children = append(b.children, c)
	}
	for i := len(b.children)/2 - 1; i >= 0; i-- {
		b.downChild(i)
	}
	return b
}

// pick returns the leaf the next task goes to, or nil when no eligible
// node is left.
func (t *tree) pick() *branch {
	b := t.root
	if b == nil {
		return nil
	}
	for b.heap == nil {
		b = b.children[0]
	}
	return b
}

// placed records a task put on the top node of leaf.
func (t *tree) placed(leaf *branch) {
	for b := leaf; b.parent != nil; b = b.parent {
		b.svc++
		b.parent.downChild(b.pos)
	}
	t.root.svc++
}

// drop removes the top node of leaf: it cannot take another task of the
// group. Branches left empty are removed from their parents.
func (t *tree) drop(leaf *branch) {
	leaf.popTop()
	if len(leaf.heap) > 0 {
		return
	}
	b := leaf
	for b.parent != nil {
		p := b.parent
		p.removeChild(b.pos)
		if len(p.children) > 0 {
			return
		}
		b = p
	}
	t.root = nil
}

// fixTop restores the leaf heap after its top entry grew.
func (b *branch) fixTop() { b.down(0) }

func (b *branch) popTop() {
	last := len(b.heap) - 1
	b.heap[0] = b.heap[last]
	b.heap = b.heap[:last]
	if last > 0 {
		b.down(0)
	}
	if len(b.heap) == 0 {
		b.heap = nil
	}
}

func (b *branch) down(i int) {
	h := b.heap
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h[r].less(&h[l]) {
			m = r
		}
		if !h[m].less(&h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

func (b *branch) swapChildren(i, j int) {
	c := b.children
	c[i], c[j] = c[j], c[i]
	c[i].pos, c[j].pos = i, j
}

func (b *branch) downChild(i int) {
	c := b.children
	for {
		l := 2*i + 1
		if l >= len(c) {
			return
		}
		m := l
		if r := l + 1; r < len(c) && c[r].less(c[l]) {
			m = r
		}
		if !c[m].less(c[i]) {
			return
		}
		b.swapChildren(i, m)
		i = m
	}
}

func (b *branch) upChild(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !b.children[i].less(b.children[p]) {
			return
		}
		b.swapChildren(i, p)
		i = p
	}
}

func (b *branch) removeChild(i int) {
	last := len(b.children) - 1
	if i != last {
		b.swapChildren(i, last)
	}
	b.children[last].parent = nil
	b.children = b.children[:last]
	if i < last {
		b.downChild(i)
		b.upChild(i)
	}
}

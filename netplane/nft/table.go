package nft

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/gitorc/gitorc/netplane/netns"
)

// Table is gitorc's table in one network namespace. It remembers the
// ruleset it applied last, so that Apply sends only the difference
// without reading the kernel back.
type Table struct {
	ns   netns.NS
	name string

	mu      sync.Mutex
	applied *Ruleset // what the kernel holds; nil: unknown, replace it whole
}

// NewTable returns the table named o.Table (defaults filled in) in the
// namespace ns (the zero NS: the process's own). Nothing is sent before
// Apply or Delete.
func NewTable(ns netns.NS, o Options) *Table {
	return &Table{ns: ns, name: o.WithDefaults().Table}
}

// Limits of one batch's messages.
const (
	// maxElemsPerMsg keeps a message's list of elements under the 64 KiB
	// of a netlink attribute (a verdict element is about 70 bytes).
	maxElemsPerMsg = 512
	// flushTimeout bounds the wait for the kernel's answers to a batch,
	// which it has all sent by the time the batch is written.
	flushTimeout = 30 * time.Second
	// Socket buffers are sized for the batch: per message and element,
	// what the kernel may queue in answer (acks, echoed rules) and what a
	// message may take.
	bufPerMsg  = 2048
	bufPerElem = 128
	bufBase    = 1 << 20
	bufMax     = 1 << 30
)

// ErrTableMismatch is returned by Apply for a ruleset built for another
// table name.
var ErrTableMismatch = errors.New("ruleset is for another table")

// Apply makes the kernel's table equal to r. The first Apply of a Table
// (and the first after a failed one) replaces whatever table of that name
// exists: delete and create in one netlink batch, atomic. Later Applies
// send only the difference (set elements added and removed, changed
// chains flushed and refilled, new and removed chains and sets), in one
// batch, and send nothing when r equals what was applied. It reports
// whether it sent anything. On error the kernel may or may not hold r,
// and the next Apply replaces the table whole. r must not be modified
// afterwards.
func (t *Table) Apply(r *Ruleset) (changed bool, err error) {
	if r == nil {
		return false, errors.New("apply: no ruleset")
	}
	if r.Table != t.name {
		return false, fmt.Errorf("apply %s to table %s: %w", r.Table, t.name, ErrTableMismatch)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	p := diff(t.applied, r)
	if p.empty() {
		return false, nil
	}
	if err := t.send(func(b *batch) { b.plan(p) }); err != nil {
		t.applied = nil
		return false, fmt.Errorf("apply table inet %s in %s: %w", t.name, t.ns, err)
	}
	t.applied = r
	return true, nil
}

// Reset makes the next Apply replace the table whole, as the first one
// does: for a caller that suspects the kernel's table was changed behind
// its back (Apply trusts what it applied last and reads nothing back).
func (t *Table) Reset() {
	t.mu.Lock()
	t.applied = nil
	t.mu.Unlock()
}

// Delete removes the table; it is not an error if there is none.
func (t *Table) Delete() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.applied = nil
	err := t.send(func(b *batch) {
		tbl := b.table()
		b.c.AddTable(tbl) // so that the delete finds one
		b.c.DelTable(tbl)
		b.msgs += 2
	})
	if err != nil {
		return fmt.Errorf("delete table inet %s in %s: %w", t.name, t.ns, err)
	}
	return nil
}

// batch collects one netlink batch and counts its size, to size the
// socket's buffers.
type batch struct {
	c     *nftables.Conn
	name  string
	msgs  int
	elems int
	tbl   *nftables.Table
}

// send fills one batch and sends it, in the table's namespace.
func (t *Table) send(fill func(*batch)) error {
	h, err := t.ns.Handle()
	if err != nil {
		return err
	}
	defer h.Close()
	b := &batch{name: t.name}
	c, err := nftables.New(nftables.WithNetNSFd(int(h)), nftables.WithSockOptions(func(nc *netlink.Conn) error {
		return sizeSocket(nc, min(bufBase+b.msgs*bufPerMsg+b.elems*bufPerElem, bufMax))
	}))
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	b.c = c
	fill(b)
	return c.Flush()
}

// sizeSocket gives the netlink socket buffers of n bytes each way (the
// forced kind, which root may set past the system's maximum) and a
// deadline for the answers.
func sizeSocket(nc *netlink.Conn, n int) error {
	rc, err := nc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	cerr := rc.Control(func(fd uintptr) {
		for _, o := range [][2]int{{unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}, {unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}} {
			if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[0], n); err != nil {
				if !errors.Is(err, syscall.EPERM) {
					serr = err
					return
				}
				if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[1], n); err != nil {
					serr = err
					return
				}
			}
		}
	})
	if err := errors.Join(cerr, serr); err != nil {
		return fmt.Errorf("socket buffers: %w", err)
	}
	return nc.SetReadDeadline(time.Now().Add(flushTimeout))
}

func (b *batch) table() *nftables.Table {
	if b.tbl == nil {
		b.tbl = &nftables.Table{Name: b.name, Family: nftables.TableFamilyINet}
	}
	return b.tbl
}

func (b *batch) plan(p *plan) {
	if r := p.full; r != nil {
		tbl := b.table()
		b.c.AddTable(tbl) // so that the delete finds one
		b.c.DelTable(tbl)
		b.c.AddTable(tbl)
		b.msgs += 3
		for _, c := range r.Chains {
			b.addChain(c)
		}
		for _, s := range r.Sets {
			b.addSet(s)
			b.addElems(s, s.Elems)
		}
		for _, c := range r.Chains {
			b.addRules(c)
		}
		return
	}
	for _, o := range p.ops {
		switch o.kind {
		case opAddChain:
			b.addChain(o.chain)
		case opAddSet:
			b.addSet(o.set)
		case opAddElems:
			b.addElems(o.set, o.elems)
		case opDelElems:
			b.delElems(o.set, o.elems)
		case opFlushChain:
			b.c.FlushChain(b.chain(o.chain))
			b.msgs++
		case opAddRules:
			b.addRules(o.chain)
		case opDelChain:
			b.c.DelChain(b.chain(o.chain))
			b.msgs++
		case opDelSet:
			b.c.DelSet(b.set(o.set))
			b.msgs++
		}
	}
}

func (b *batch) chain(c *Chain) *nftables.Chain {
	nc := &nftables.Chain{Name: c.Name, Table: b.table()}
	if h := c.Hook; h != nil {
		policy := nftables.ChainPolicyAccept
		nc.Type = h.Type
		nc.Hooknum = hookNums[h.Hook]
		nc.Priority = nftables.ChainPriorityRef(nftables.ChainPriority(h.Priority))
		nc.Policy = &policy
	}
	return nc
}

func (b *batch) addChain(c *Chain) {
	b.c.AddChain(b.chain(c))
	b.msgs++
}

func (b *batch) set(s *Set) *nftables.Set {
	ns := &nftables.Set{Table: b.table(), Name: s.Name, KeyType: s.keyType}
	if s.Map {
		ns.IsMap = true
		ns.DataType = nftables.TypeVerdict
	}
	return ns
}

// The errors of the library's batch calls are about marshalling only,
// which valid input never fails; Flush reports any error recorded.
func (b *batch) addSet(s *Set) {
	ns := b.set(s)
	if err := b.c.AddSet(ns, nil); err != nil {
		panic(fmt.Sprintf("nft: add set %s: %v", s.Name, err))
	}
	b.msgs++
}

func (b *batch) addElems(s *Set, elems []Elem) {
	ns := b.set(s)
	for chunk := range chunks(elems) {
		if err := b.c.SetAddElements(ns, setElements(chunk)); err != nil {
			panic(fmt.Sprintf("nft: add elements to %s: %v", s.Name, err))
		}
		b.msgs++
		b.elems += len(chunk)
	}
}

func (b *batch) delElems(s *Set, elems []Elem) {
	ns := b.set(s)
	for chunk := range chunks(elems) {
		if err := b.c.SetDeleteElements(ns, setElements(chunk)); err != nil {
			panic(fmt.Sprintf("nft: delete elements from %s: %v", s.Name, err))
		}
		b.msgs++
		b.elems += len(chunk)
	}
}

func chunks[T any](s []T) func(func([]T) bool) {
	return func(yield func([]T) bool) {
		for len(s) > 0 {
			n := min(len(s), maxElemsPerMsg)
			if !yield(s[:n]) {
				return
			}
			s = s[n:]
		}
	}
}

func setElements(elems []Elem) []nftables.SetElement {
	out := make([]nftables.SetElement, len(elems))
	for i, e := range elems {
		out[i] = nftables.SetElement{Key: e.key}
		if e.chain != "" {
			out[i].VerdictData = &expr.Verdict{Kind: expr.VerdictGoto, Chain: e.chain}
		}
	}
	return out
}

func (b *batch) addRules(c *Chain) {
	nc := b.chain(c)
	for _, r := range c.Rules {
		exprs, a, at := r.exprs()
		if a != nil {
			s := &nftables.Set{Table: b.table(), Anonymous: true, Constant: true, IsMap: a.isMap, KeyType: a.keyType}
			if len(a.elems) > maxElemsPerMsg {
				// The library sizes a constant set by the elements it
				// is created with; this later description wins.
				s.Size = uint32(len(a.elems))
			}
			if a.isMap {
				s.DataType = nftables.TypeVerdict
			}
			first := a.elems[:min(len(a.elems), maxElemsPerMsg)]
			if err := b.c.AddSet(s, first); err != nil {
				panic(fmt.Sprintf("nft: anonymous set of chain %s: %v", c.Name, err))
			}
			b.msgs += 2
			b.elems += len(first)
			if rest := a.elems[len(first):]; len(rest) > 0 {
				// More than a message holds (a service of many
				// backends). The library adds to no anonymous set; the
				// kernel does, in the batch that creates it and before a
				// rule binds it, found by its ID.
				named := *s
				named.Anonymous = false
				for chunk := range chunks(rest) {
					if err := b.c.SetAddElements(&named, chunk); err != nil {
						panic(fmt.Sprintf("nft: anonymous set of chain %s: %v", c.Name, err))
					}
					b.msgs++
					b.elems += len(chunk)
				}
			}
			l := exprs[at].(*expr.Lookup)
			l.SetName, l.SetID = s.Name, s.ID
		}
		b.c.AddRule(&nftables.Rule{Table: b.table(), Chain: nc, Exprs: exprs})
		b.msgs++
	}
}

package allocator

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/gitorc/gitorc/cluster/api"
)

// ErrExhausted matches every error of a pool with no free address.
var ErrExhausted = errors.New("exhausted")

// exhaustedError names the pool and where.
type exhaustedError struct{ msg string }

func (e *exhaustedError) Error() string        { return e.msg }
func (e *exhaustedError) Is(target error) bool { return target == ErrExhausted }

// circle hands out the addresses of a range, skipping used ones, starting
// after the last one given.
type circle struct {
	first, last netip.Addr // inclusive
	used        map[netip.Addr]bool
	cursor      netip.Addr // the last given; invalid: none yet
	free        int
}

func newCircle(first, last netip.Addr) *circle {
	return &circle{first: first, last: last, used: map[netip.Addr]bool{}, free: span(first, last)}
}

// span counts the addresses from first to last (inclusive).
func span(first, last netip.Addr) int {
	a, b := first.As4(), last.As4()
	x := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	y := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	if y < x {
		return 0
	}
	return int(y-x) + 1
}

func (c *circle) in(a netip.Addr) bool {
	return a.Is4() && c.first.Compare(a) <= 0 && a.Compare(c.last) <= 0
}

// use marks an address taken (outside the range: ignored).
func (c *circle) use(a netip.Addr) {
	if c.in(a) && !c.used[a] {
		c.used[a] = true
		c.free--
	}
}

// next takes the first free address after the cursor, wrapping around.
func (c *circle) next() (netip.Addr, bool) {
	if c.free <= 0 {
		return netip.Addr{}, false
	}
	a := c.first
	if c.cursor.IsValid() && c.in(c.cursor) && c.cursor != c.last {
		a = c.cursor.Next()
	}
	for {
		if !c.used[a] {
			c.use(a)
			c.cursor = a
			return a, true
		}
		if a == c.last {
			a = c.first
		} else {
			a = a.Next()
		}
	}
}

// lastAddr is the broadcast address of an IPv4 prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := (uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// Gateway is the node's address in its subnet: the first after the
// network address. Tasks never get it.
func Gateway(subnet netip.Prefix) netip.Addr { return subnet.Masked().Addr().Next() }

// Usable is how many task addresses a node subnet holds: all but the
// network, gateway and broadcast addresses.
func Usable(subnet netip.Prefix) int {
	n := 1<<(32-subnet.Bits()) - 3
	return max(n, 0)
}

// TaskAddrs gives the tasks placed on one node their addresses.
type TaskAddrs struct {
	node   string
	subnet netip.Prefix
	c      *circle
}

// NewTaskAddrs reads what a node's tasks hold: the addresses of those that
// have not ended are used; the most recently created one holding an
// address (the greatest ID) sets where the next search starts. tasks may
// include other nodes' tasks: they are skipped.
func NewTaskAddrs(node *api.Node, tasks []*api.Task) (*TaskAddrs, error) {
	subnet, err := netip.ParsePrefix(node.Subnet)
	if err != nil || !subnet.Addr().Is4() {
		return nil, fmt.Errorf("node %s has no task subnet", nodeLabel(node))
	}
	subnet = subnet.Masked()
	first := Gateway(subnet).Next()
	last := lastAddr(subnet).Prev()
	a := &TaskAddrs{node: nodeLabel(node), subnet: subnet, c: newCircle(first, last)}
	newest := ""
	for _, t := range tasks {
		if t.NodeID != node.ID || t.Addr == "" {
			continue
		}
		p, err := netip.ParsePrefix(t.Addr)
		if err != nil {
			continue
		}
		if !t.Status.State.Terminal() {
			a.c.use(p.Addr())
		}
		if t.ID > newest {
			newest, a.c.cursor = t.ID, p.Addr()
		}
	}
	return a, nil
}

// Free is how many addresses are left.
func (a *TaskAddrs) Free() int { return a.c.free }

// Next gives an address ("10.64.3.7/24").
func (a *TaskAddrs) Next() (string, error) {
	addr, ok := a.c.next()
	if !ok {
		return "", &exhaustedError{fmt.Sprintf("pool %s exhausted on node %s", a.subnet, a.node)}
	}
	return netip.PrefixFrom(addr, a.subnet.Bits()).String(), nil
}

func nodeLabel(n *api.Node) string {
	switch {
	case n.Spec.Name != "":
		return n.Spec.Name
	case n.Description.Hostname != "":
		return n.Description.Hostname + " (" + n.ID + ")"
	}
	return n.ID
}

package allocator

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/gitorc/gitorc/cluster/api"
)

// Subnets gives nodes their subnets of the task pool.
type Subnets struct {
	cfg  api.NetworkConfig
	pool netip.Prefix
	used map[netip.Prefix]bool
	n    int // subnets in the pool
	next int // the lowest index that may be free
}

// NewSubnets reads the subnets every node that was not removed holds.
func NewSubnets(cfg api.NetworkConfig, nodes []*api.Node) (*Subnets, error) {
	pool, _, err := cfg.Pools()
	if err != nil {
		return nil, err
	}
	if cfg.NodeSubnetBits <= pool.Bits() || cfg.NodeSubnetBits > 32 {
		return nil, fmt.Errorf("node subnets of /%d do not fit in the task pool %s", cfg.NodeSubnetBits, pool)
	}
	s := &Subnets{cfg: cfg, pool: pool, used: map[netip.Prefix]bool{}, n: 1 << (cfg.NodeSubnetBits - pool.Bits())}
	for _, n := range nodes {
		if n.Removed() || n.Subnet == "" {
			continue
		}
		if p, err := netip.ParsePrefix(n.Subnet); err == nil {
			s.used[p.Masked()] = true
		}
	}
	return s, nil
}

func (s *Subnets) subnet(i int) netip.Prefix {
	b := s.pool.Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(i) << (32 - s.cfg.NodeSubnetBits)
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), s.cfg.NodeSubnetBits)
}

// Next gives node the lowest free subnet. A node whose own addresses lie
// in one of the cluster's pools gets none: its tasks' traffic and its own
// could not be told apart.
func (s *Subnets) Next(node *api.Node) (string, error) {
	if why := Overlap(s.cfg, node.Description.Addrs); why != "" {
		return "", fmt.Errorf("node %s: %s: it gets no task subnet (bootstrap a cluster with other --task-pool/--vip-pool, or give the node other addresses)", nodeLabel(node), why)
	}
	for ; s.next < s.n; s.next++ {
		p := s.subnet(s.next)
		if !s.used[p] {
			s.used[p] = true
			s.next++
			return p.String(), nil
		}
	}
	return "", &exhaustedError{fmt.Sprintf("task pool %s has no free /%d for node %s", s.pool, s.cfg.NodeSubnetBits, nodeLabel(node))}
}

// Overlap says which of addrs lie in the plan's pools ("address 10.64.0.5
// is in the task pool 10.64.0.0/11"), or "" when none does.
func Overlap(cfg api.NetworkConfig, addrs []string) string {
	var out []string
	for _, a := range addrs {
		ip, err := netip.ParseAddr(a)
		if err != nil {
			continue
		}
		if pool := cfg.Overlaps(netip.PrefixFrom(ip, ip.BitLen())); pool != "" {
			out = append(out, fmt.Sprintf("address %s is in %s", ip, pool))
		}
	}
	return strings.Join(out, ", ")
}

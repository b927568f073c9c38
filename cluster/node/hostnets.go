package node

import (
	"net"
	"net/netip"
	"strings"

	"github.com/gitorc/gitorc/netplane"
)

// HostPrefixes are the IPv4 networks of this host's interfaces, but for
// loopback (which also holds a running node's gateway address) and the
// network plane's own interfaces; host addresses (/32) are no networks.
func HostPrefixes() ([]netip.Prefix, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback != 0 || strings.HasPrefix(i.Name, netplane.LinkPrefix) {
			continue
		}
		addrs, err := i.Addrs()
		if err != nil {
			return nil, err
		}
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			// A /32 is an address of the host alone (a point-to-point
			// link's, as the task veths' gateway address of a network
			// plane already on this host), not a network the pools
			// could hide: only networks count.
			if p, err := netip.ParsePrefix(n.String()); err == nil && p.Addr().Is4() && p.Bits() < 32 {
				out = append(out, p.Masked())
			}
		}
	}
	return out, nil
}

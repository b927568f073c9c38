package netplane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// handle returns a netlink handle on the plane's namespace.
func (p *Plane) handle() (*netlink.Handle, error) {
	ns, err := p.cfg.NS.Handle()
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	return h, nil
}

// ensureGateway makes the loopback interface hold gw (the node's
// gateway, /32): the DNS server's address, present whether or not a task
// is attached (the host ends of tasks' links hold it too). Loopback, not a
// dummy interface: kernels without the dummy driver exist (this project's
// machines are among them). Other task-pool /32s a previous subnet left
// there are removed. p.mu must be held.
func (p *Plane) ensureGateway(gw netip.Prefix) error {
	if p.gateway == gw {
		return nil
	}
	h, err := p.handle()
	if err != nil {
		return err
	}
	defer h.Close()
	lo, err := h.LinkByName(GatewayLink)
	if err != nil {
		return fmt.Errorf("%s: %w", GatewayLink, err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("%s up: %w", GatewayLink, err)
	}
	addrs, err := h.AddrList(lo, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("%s addresses: %w", GatewayLink, err)
	}
	have := false
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		ones, _ := a.Mask.Size()
		if !ok || ones != 32 {
			continue
		}
		switch ip = ip.Unmap(); {
		case ip == gw.Addr():
			have = true
		case p.pool.IsValid() && p.pool.Contains(ip):
			if err := h.AddrDel(lo, &a); err != nil {
				return fmt.Errorf("%s: remove %s: %w", GatewayLink, a.IPNet, err)
			}
		}
	}
	if !have {
		want := &net.IPNet{IP: net.IP(gw.Addr().AsSlice()), Mask: net.CIDRMask(32, 32)}
		if err := h.AddrAdd(lo, &netlink.Addr{IPNet: want}); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("%s: add %s: %w", GatewayLink, want, err)
		}
	}
	p.gateway = gw
	return nil
}

// deleteGateway removes the gateway address from loopback; it is not an
// error if it is absent.
func (p *Plane) deleteGateway() error {
	gw := p.gateway
	if !gw.IsValid() {
		v, err := p.loadView()
		if err != nil || v == nil || v.Subnet == "" {
			return nil
		}
		subnet, err := netip.ParsePrefix(v.Subnet)
		if err != nil {
			return nil
		}
		gw = netip.PrefixFrom(subnet.Masked().Addr().Next(), 32)
	}
	h, err := p.handle()
	if err != nil {
		return err
	}
	defer h.Close()
	lo, err := h.LinkByName(GatewayLink)
	if err != nil {
		return fmt.Errorf("%s: %w", GatewayLink, err)
	}
	a := &netlink.Addr{IPNet: &net.IPNet{IP: net.IP(gw.Addr().AsSlice()), Mask: net.CIDRMask(32, 32)}}
	if err := h.AddrDel(lo, a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("%s: remove %s: %w", GatewayLink, a.IPNet, err)
	}
	p.gateway = netip.Prefix{}
	return nil
}

// HostAddrs lists the node's own unicast IPv4 addresses, leaving out the
// plane's interfaces and the host ends of tasks' links (which hold the
// gateway): what the cluster's pools must not overlap.
func (p *Plane) HostAddrs() ([]string, error) {
	h, err := p.handle()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("links: %w", err)
	}
	var out []string
	for _, l := range links {
		attrs := l.Attrs()
		if attrs.Flags&net.FlagLoopback != 0 || attrs.Name == WireGuardLink || l.Type() == "veth" && p.isTaskLink(h, l) {
			continue
		}
		addrs, err := h.AddrList(l, netlink.FAMILY_V4)
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap().IsGlobalUnicast() {
				out = append(out, ip.Unmap().String())
			}
		}
	}
	return out, nil
}

// isTaskLink reports whether a veth is the host end of a task's link: it
// holds only /32 addresses in the node's gateway.
func (p *Plane) isTaskLink(h *netlink.Handle, l netlink.Link) bool {
	addrs, err := h.AddrList(l, netlink.FAMILY_V4)
	if err != nil || len(addrs) == 0 {
		return false
	}
	for _, a := range addrs {
		if ones, _ := a.Mask.Size(); ones != 32 {
			return false
		}
	}
	return true
}

// ensureVIPRoute routes the VIP pool via the WireGuard interface, from the
// gateway: the node's own connections to a VIP (a proxy on the host, say)
// then find a route on a host without a default one, and nat output
// translates them before they leave. p.mu must be held.
func (p *Plane) ensureVIPRoute(vips netip.Prefix, gw netip.Addr) error {
	if p.vipRoute == vips {
		return nil
	}
	h, err := p.handle()
	if err != nil {
		return err
	}
	defer h.Close()
	wg, err := h.LinkByName(WireGuardLink)
	if err != nil {
		return fmt.Errorf("%s: %w", WireGuardLink, err)
	}
	r := &netlink.Route{LinkIndex: wg.Attrs().Index, Dst: &net.IPNet{IP: net.IP(vips.Addr().AsSlice()), Mask: net.CIDRMask(vips.Bits(), 32)},
		Src: net.IP(gw.AsSlice()), Scope: netlink.SCOPE_LINK}
	if err := h.RouteReplace(r); err != nil {
		return fmt.Errorf("route %s via %s: %w", vips, WireGuardLink, err)
	}
	p.vipRoute = vips
	return nil
}

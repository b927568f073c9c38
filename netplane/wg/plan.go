package wg

import (
	"bytes"
	"cmp"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Peer is another node as the interface should hold it.
type Peer struct {
	PublicKey string       // base64
	Endpoint  string       // host:port (UDP)
	Subnet    netip.Prefix // AllowedIPs, and routed via the interface
}

// state is what the interface holds, or should hold: its addresses
// (link-local ones left out), its peers and the routes the Device made.
type state struct {
	Addrs  []netip.Prefix // sorted
	Peers  map[wgtypes.Key]peerState
	Routes map[netip.Prefix]netip.Addr // destination → source address
}

type peerState struct {
	Endpoint   netip.AddrPort // zero when none
	AllowedIPs []netip.Prefix // sorted
	Keepalive  time.Duration
}

func (p peerState) equal(o peerState) bool {
	return p.Endpoint == o.Endpoint && p.Keepalive == o.Keepalive && slices.Equal(p.AllowedIPs, o.AllowedIPs)
}

// clone copies s deeply enough to change its peers.
func (s *state) clone() *state {
	c := &state{Addrs: slices.Clone(s.Addrs), Peers: maps.Clone(s.Peers), Routes: maps.Clone(s.Routes)}
	return c
}

func (s *state) equal(o *state) bool {
	return slices.Equal(s.Addrs, o.Addrs) && maps.Equal(s.Routes, o.Routes) &&
		maps.EqualFunc(s.Peers, o.Peers, peerState.equal)
}

// desired is the state Reconfig(local, peers) asks for. self is the
// device's own public key, which cannot be a peer.
func desired(local netip.Addr, peers []Peer, self wgtypes.Key) (*state, error) {
	if !local.IsValid() || local.IsUnspecified() || local.IsLinkLocalUnicast() {
		return nil, fmt.Errorf("local address %v: not a usable unicast address", local)
	}
	local = local.Unmap()
	s := &state{
		Addrs:  []netip.Prefix{netip.PrefixFrom(local, local.BitLen())},
		Peers:  make(map[wgtypes.Key]peerState, len(peers)),
		Routes: make(map[netip.Prefix]netip.Addr, len(peers)),
	}
	for _, p := range peers {
		k, err := wgtypes.ParseKey(p.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("peer %q: public key: %w", p.PublicKey, err)
		}
		if k == self {
			return nil, fmt.Errorf("peer %s: the device's own key", p.PublicKey)
		}
		if _, dup := s.Peers[k]; dup {
			return nil, fmt.Errorf("peer %s: listed twice", p.PublicKey)
		}
		ep, err := resolveEndpoint(p.Endpoint)
		if err != nil {
			return nil, fmt.Errorf("peer %s: endpoint: %w", p.PublicKey, err)
		}
		if !p.Subnet.IsValid() {
			return nil, fmt.Errorf("peer %s: no subnet", p.PublicKey)
		}
		sub := netip.PrefixFrom(p.Subnet.Addr().Unmap(), p.Subnet.Bits()).Masked()
		if sub.Addr().Is4() != local.Is4() {
			return nil, fmt.Errorf("peer %s: subnet %s is not of the local address's family", p.PublicKey, sub)
		}
		if _, dup := s.Routes[sub]; dup {
			return nil, fmt.Errorf("peer %s: subnet %s is another peer's too", p.PublicKey, sub)
		}
		s.Peers[k] = peerState{Endpoint: ep, AllowedIPs: []netip.Prefix{sub}, Keepalive: Keepalive}
		s.Routes[sub] = local
	}
	return s, nil
}

// resolveEndpoint parses host:port; a host that is not an address is
// resolved.
func resolveEndpoint(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Port() == 0 || !ap.Addr().IsValid() {
			return netip.AddrPort{}, fmt.Errorf("%q: no port or no address", s)
		}
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	ua, err := net.ResolveUDPAddr("udp", s)
	if err != nil {
		return netip.AddrPort{}, err
	}
	ap := ua.AddrPort()
	if ap.Port() == 0 {
		return netip.AddrPort{}, fmt.Errorf("%q: no port", s)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// plan is what changes an interface from one state to another. Its steps
// run in the order of the fields: addresses first (routes need their
// source on the host), then peers, then routes, and old addresses last.
type plan struct {
	AddAddrs  []netip.Prefix
	Peers     []peerChange // sorted by key (compareKeys)
	SetRoutes []route      // new, or with another source
	DelRoutes []netip.Prefix
	DelAddrs  []netip.Prefix
}

type route struct {
	Dst netip.Prefix
	Src netip.Addr
}

type peerOp int

const (
	peerAdd peerOp = iota + 1
	peerUpdate
	peerRemove
)

func (o peerOp) String() string {
	return [...]string{"?", "add", "update", "remove"}[o]
}

// peerChange is one peer's change. For an update, only the fields whose
// set flag is true change.
type peerChange struct {
	Op            peerOp
	Key           wgtypes.Key
	Peer          peerState
	SetEndpoint   bool
	SetAllowedIPs bool
	SetKeepalive  bool
}

func (p *plan) empty() bool {
	return len(p.AddAddrs)+len(p.Peers)+len(p.SetRoutes)+len(p.DelRoutes)+len(p.DelAddrs) == 0
}

// makePlan computes the changes from have to want; it does no I/O.
func makePlan(have, want *state) *plan {
	p := &plan{}
	for _, a := range want.Addrs {
		if !slices.Contains(have.Addrs, a) {
			p.AddAddrs = append(p.AddAddrs, a)
		}
	}
	for _, a := range have.Addrs {
		if !slices.Contains(want.Addrs, a) {
			p.DelAddrs = append(p.DelAddrs, a)
		}
	}
	for _, k := range sortedKeys(want.Peers) {
		w := want.Peers[k]
		h, ok := have.Peers[k]
		switch {
		case !ok:
			p.Peers = append(p.Peers, peerChange{Op: peerAdd, Key: k, Peer: w,
				SetEndpoint: w.Endpoint.IsValid(), SetAllowedIPs: true, SetKeepalive: true})
		case !h.equal(w):
			c := peerChange{Op: peerUpdate, Key: k, Peer: w,
				SetEndpoint:   w.Endpoint.IsValid() && w.Endpoint != h.Endpoint,
				SetAllowedIPs: !slices.Equal(w.AllowedIPs, h.AllowedIPs),
				SetKeepalive:  w.Keepalive != h.Keepalive,
			}
			if c.SetEndpoint || c.SetAllowedIPs || c.SetKeepalive {
				p.Peers = append(p.Peers, c)
			}
		}
	}
	for _, k := range sortedKeys(have.Peers) {
		if _, ok := want.Peers[k]; !ok {
			p.Peers = append(p.Peers, peerChange{Op: peerRemove, Key: k})
		}
	}
	slices.SortStableFunc(p.Peers, func(a, b peerChange) int { return compareKeys(a.Key, b.Key) })
	for _, dst := range sortedPrefixes(want.Routes) {
		if src, ok := have.Routes[dst]; !ok || src != want.Routes[dst] {
			p.SetRoutes = append(p.SetRoutes, route{Dst: dst, Src: want.Routes[dst]})
		}
	}
	for _, dst := range sortedPrefixes(have.Routes) {
		if _, ok := want.Routes[dst]; !ok {
			p.DelRoutes = append(p.DelRoutes, dst)
		}
	}
	return p
}

// deferKeepalives holds back the persistent keepalive of the peers the
// plan adds whose key sorts before self, and of those already held back
// (pending), and returns the keys it held back.
//
// Turning the keepalive on sends one at once, which starts a handshake.
// When two nodes add each other at the same moment both initiate, and
// the initiations cross. Either each node answers the other's, which
// replaces its own handshake state, and drops the answer to its own as
// invalid: both wait as responders, and nothing passes until one retries
// (REKEY_TIMEOUT, 5 s and up to 1/3 s of jitter). Or wireguard-go, whose
// handshake workers take a peer's initiation and response concurrently,
// makes a session from both that works one way only: nothing passes the
// other way until the sender gives up on hearing back (15 s). Here one
// or the other happened in about a fifth of such starts.
//
// With the keepalive held back on one side only the node with the lower
// key initiates. The Device turns the others on after KeepaliveDelay.
// That sends nothing new when the handshake is done or answered
// (WireGuard initiates at most once per REKEY_TIMEOUT after sending a
// response), and initiates when the peer's initiation came before this
// node knew the peer and was dropped (a fifth of such starts here).
func (p *plan) deferKeepalives(self wgtypes.Key, pending map[wgtypes.Key]time.Time) []wgtypes.Key {
	var held []wgtypes.Key
	kept := p.Peers[:0]
	for _, c := range p.Peers {
		if c.SetKeepalive && c.Peer.Keepalive != 0 &&
			((c.Op == peerAdd && compareKeys(self, c.Key) > 0) || (c.Op == peerUpdate && isPending(pending, c.Key))) {
			c.SetKeepalive = false
			held = append(held, c.Key)
		}
		if c.Op == peerUpdate && !c.SetEndpoint && !c.SetAllowedIPs && !c.SetKeepalive {
			continue
		}
		kept = append(kept, c)
	}
	p.Peers = kept
	return held
}

func isPending(pending map[wgtypes.Key]time.Time, k wgtypes.Key) bool {
	_, ok := pending[k]
	return ok
}

// String prints the plan one step a line, as the tests compare it.
func (p *plan) String() string {
	var b strings.Builder
	for _, a := range p.AddAddrs {
		fmt.Fprintf(&b, "addr add %s\n", a)
	}
	for _, c := range p.Peers {
		fmt.Fprintf(&b, "peer %s %s", c.Op, c.Key)
		if c.SetEndpoint {
			fmt.Fprintf(&b, " endpoint %s", c.Peer.Endpoint)
		}
		if c.SetAllowedIPs {
			fmt.Fprintf(&b, " allowed-ips %s", joinPrefixes(c.Peer.AllowedIPs))
		}
		if c.SetKeepalive {
			fmt.Fprintf(&b, " keepalive %s", c.Peer.Keepalive)
		}
		b.WriteByte('\n')
	}
	for _, r := range p.SetRoutes {
		fmt.Fprintf(&b, "route replace %s src %s\n", r.Dst, r.Src)
	}
	for _, d := range p.DelRoutes {
		fmt.Fprintf(&b, "route del %s\n", d)
	}
	for _, a := range p.DelAddrs {
		fmt.Fprintf(&b, "addr del %s\n", a)
	}
	return b.String()
}

// peerConfigs turns the plan's peer changes into wgctrl's form, which
// both implementations take.
func (p *plan) peerConfigs() []wgtypes.PeerConfig {
	out := make([]wgtypes.PeerConfig, 0, len(p.Peers))
	for _, c := range p.Peers {
		pc := wgtypes.PeerConfig{PublicKey: c.Key}
		switch c.Op {
		case peerRemove:
			pc.Remove = true
			out = append(out, pc)
			continue
		case peerUpdate:
			pc.UpdateOnly = true
		}
		if c.SetEndpoint {
			pc.Endpoint = net.UDPAddrFromAddrPort(c.Peer.Endpoint)
		}
		if c.SetKeepalive {
			ka := c.Peer.Keepalive
			pc.PersistentKeepaliveInterval = &ka
		}
		if c.SetAllowedIPs {
			pc.ReplaceAllowedIPs = true
			for _, a := range c.Peer.AllowedIPs {
				pc.AllowedIPs = append(pc.AllowedIPs, ipNet(a))
			}
		}
		out = append(out, pc)
	}
	return out
}

func ipNet(p netip.Prefix) net.IPNet {
	return net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// prefixOf converts a net.IPNet; ok is false for a malformed one.
func prefixOf(n net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	ones, bits := n.Mask.Size()
	if !ok || bits == 0 {
		return netip.Prefix{}, false
	}
	if bits == 32 {
		a = a.Unmap()
	}
	if a.BitLen() != bits {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, ones), true
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func sortedKeys[V any](m map[wgtypes.Key]V) []wgtypes.Key {
	ks := slices.Collect(maps.Keys(m))
	slices.SortFunc(ks, compareKeys)
	return ks
}

// compareKeys orders keys by their bytes: plans list peers in that order,
// and deferKeepalives decides by it.
func compareKeys(a, b wgtypes.Key) int { return bytes.Compare(a[:], b[:]) }

func sortedPrefixes[V any](m map[netip.Prefix]V) []netip.Prefix {
	ps := slices.Collect(maps.Keys(m))
	slices.SortFunc(ps, comparePrefixes)
	return ps
}

func comparePrefixes(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}

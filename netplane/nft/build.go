package nft

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables"

	"github.com/gitorc/gitorc/cluster/api"
)

// Options are the node-local facts the view does not carry.
type Options struct {
	// Table is the table's name, family inet; DefaultTable when empty.
	Table string
	// WGInterface is the WireGuard interface: traffic leaving by it is not
	// masqueraded. DefaultWGInterface when empty.
	WGInterface string
}

// Defaults of Options.
const (
	DefaultTable       = "gitorc"
	DefaultWGInterface = "gtrc-wg"
)

// HairpinMark is the bit of the packet mark that a backend chain sets (OR,
// keeping the other bits) on a connection from a task to its own service
// (VIP or published port) that picked the task itself; postrouting
// masquerades marked packets, so that the task sees the connection come
// from its gateway and answers through the node (kube-proxy's masquerade
// mark, another bit).
const HairpinMark uint32 = 0x00200000

// PublishedMark is the bit of the conntrack mark that a published port's
// chain sets (OR, keeping the other bits) on the connections it DNATs:
// filter-forward lets them pass whoever the client is (isolation is for
// VIPs, which not everyone may reach), and postrouting masquerades those
// leaving by WireGuard or coming from the node's loopback. A conntrack
// mark, not a packet mark, because it must hold for every packet of the
// connection that forward sees before the first answer (a retransmitted
// SYN, a second datagram), which nat chains no longer see. Another bit
// than HairpinMark: software that copies the conntrack mark into the
// packet mark (connmark restore) must not make it a masquerade mark.
const PublishedMark uint32 = 0x00400000

// Names of the table's fixed sets, maps and chains. Per-object names are
// derived from IDs: "net-<12>" (a network's members), "svc-<12>" (a
// service's VIP), "be-<12>-<12>" (a VIP's backend, service and task ID),
// "pub-<12>-<proto>-<port>" (a published port of a service),
// "pbe-<12>-<12>-<proto>-<target>" (a published port's backend, service
// and task ID, protocol and target port); the first 12 characters of the
// ID, all of it when two IDs share them.
const (
	SetGateways     = "gateways"       // every node's gateway
	SetEgress       = "tasks-egress"   // local tasks on a network that is not internal
	SetConfined     = "tasks-confined" // local tasks on internal networks only
	MapVIPs         = "vips"           // VIP: goto svc-<12>
	MapPorts        = "ports"          // protocol . published port: goto pub-<12>-<proto>-<port>
	ChainForward    = "filter-forward"
	ChainInput      = "filter-input"
	ChainOutput     = "filter-output"
	ChainPrerouting = "nat-prerouting"
	ChainNATOutput  = "nat-output"
	ChainPostroute  = "nat-postrouting"
	ChainIsolate    = "fwd-isolate"  // task pool to task pool
	ChainEgress     = "fwd-egress"   // task pool to outside the pools
	ChainReject     = "reject-admin" // tcp reset, icmp admin-prohibited
)

// Name prefixes of per-object sets and chains.
const (
	prefixNetwork = "net-"
	prefixService = "svc-"
	prefixBackend = "be-"
	prefixPort    = "pub-"
	prefixPortBE  = "pbe-"
	shortIDLen    = 12
	// maxIDNameLen bounds the part of a name taken from an ID; longer IDs
	// are named by a hash.
	maxIDNameLen = 100
	dnsPort      = 53
)

// ErrInvalidView is wrapped by Build's errors about the view.
var ErrInvalidView = errors.New("invalid network view")

// ErrPortConflict is wrapped (with ErrInvalidView) by Build's errors
// about a protocol and published port that two services (or two ports of
// one service) would take on the node. The managers refuse such specs;
// this is the last guard.
var ErrPortConflict = errors.New("published port conflict")

// loopback is where the node's own connections to 127.0.0.1:PORT come
// from (the plane sets route_localnet, so that they may leave lo after
// DNAT; they are masqueraded, answers could not come back otherwise).
var loopback = netip.MustParsePrefix("127.0.0.0/8")

// WithDefaults fills in the defaults.
func (o Options) WithDefaults() Options {
	if o.Table == "" {
		o.Table = DefaultTable
	}
	if o.WGInterface == "" {
		o.WGInterface = DefaultWGInterface
	}
	return o
}

// Validate checks the options, defaults filled in.
func (o Options) Validate() error {
	if !validName(o.Table) {
		return fmt.Errorf("table %q: not an nft identifier", o.Table)
	}
	if len(o.WGInterface) >= ifNameSize || strings.ContainsAny(o.WGInterface, "\"\x00/ ") {
		return fmt.Errorf("wireguard interface %q: not an interface name", o.WGInterface)
	}
	return nil
}

// validName reports whether s is an nft identifier that nft's grammar
// reads back as one (a letter, then letters, digits and -_.).
func validName(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// Fields of the ip header the rules match.
const (
	src = ipv4SaddrOffset
	dst = ipv4DaddrOffset
)

// Build computes the ruleset of a node from its view. It is pure (no I/O)
// and deterministic: equal views give rulesets with equal String. Errors
// wrap ErrInvalidView and name the field at fault.
func Build(v *api.NetView, o Options) (*Ruleset, error) {
	o = o.WithDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if v == nil {
		return nil, fmt.Errorf("%w: no view", ErrInvalidView)
	}
	b := &builder{v: v, o: o, r: &Ruleset{Table: o.Table}}
	if err := b.build(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidView, err)
	}
	return b.r, nil
}

type builder struct {
	v        *api.NetView
	o        Options
	r        *Ruleset
	taskPool netip.Prefix
	vipPool  netip.Prefix
	subnet   netip.Prefix // invalid before the node has one
	gateway  netip.Addr   // invalid without a subnet
	// svcBackends are the parsed backends of services, by ID: services
	// and ports share them.
	svcBackends map[string]parsedBackends
}

// parsedBackends are a service's backends, sorted, and their names.
type parsedBackends struct {
	bes   []backend
	short map[string]string
}

func (b *builder) build() error {
	var err error
	if b.taskPool, err = parsePool(b.v.TaskPool); err != nil {
		return fmt.Errorf("task_pool: %w", err)
	}
	if b.vipPool, err = parsePool(b.v.VIPPool); err != nil {
		return fmt.Errorf("vip_pool: %w", err)
	}
	if b.v.Subnet != "" {
		if b.subnet, err = parsePool(b.v.Subnet); err != nil {
			return fmt.Errorf("subnet: %w", err)
		}
		b.gateway = b.subnet.Addr().Next()
	}
	if err := b.gateways(); err != nil {
		return err
	}
	netSets, err := b.networks()
	if err != nil {
		return err
	}
	if err := b.tasks(); err != nil {
		return err
	}
	if err := b.services(); err != nil {
		return err
	}
	if err := b.ports(); err != nil {
		return err
	}
	b.filter(netSets)
	b.nat()
	slices.SortFunc(b.r.Sets, func(x, y *Set) int { return strings.Compare(x.Name, y.Name) })
	slices.SortFunc(b.r.Chains, func(x, y *Chain) int { return strings.Compare(x.Name, y.Name) })
	for i := 1; i < len(b.r.Sets); i++ {
		if b.r.Sets[i].Name == b.r.Sets[i-1].Name {
			return fmt.Errorf("two sets named %s", b.r.Sets[i].Name)
		}
	}
	for i := 1; i < len(b.r.Chains); i++ {
		if b.r.Chains[i].Name == b.r.Chains[i-1].Name {
			return fmt.Errorf("two chains named %s", b.r.Chains[i].Name)
		}
	}
	return nil
}

// parsePool parses an IPv4 CIDR, host bits cleared.
func parsePool(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, fmt.Errorf("%q is not a CIDR subnet", s)
	}
	if !p.Addr().Is4() || p.Bits() < 1 {
		return p, fmt.Errorf("%s: not an IPv4 subnet", s)
	}
	return p.Masked(), nil
}

// parseAddr parses a plain IPv4 address.
func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return a, fmt.Errorf("%q is not an IPv4 address", s)
	}
	return a, nil
}

func (b *builder) gateways() error {
	var gws []netip.Addr
	if b.gateway.IsValid() {
		gws = append(gws, b.gateway)
	}
	for _, p := range b.v.Peers {
		if p.Subnet == "" {
			continue // no subnet yet: nothing routed to it
		}
		s, err := parsePool(p.Subnet)
		if err != nil {
			return fmt.Errorf("peers: node %s: subnet: %w", p.NodeID, err)
		}
		gws = append(gws, s.Addr().Next())
	}
	b.addrSet(SetGateways, gws)
	return nil
}

// networks makes a set of members per network and returns their names,
// sorted.
func (b *builder) networks() ([]string, error) {
	ids := make([]string, len(b.v.Networks))
	for i, n := range b.v.Networks {
		ids[i] = n.ID
	}
	names, err := shortNames(prefixNetwork, ids)
	if err != nil {
		return nil, fmt.Errorf("networks: %w", err)
	}
	var sets []string
	for _, n := range b.v.Networks {
		members := make([]netip.Addr, 0, len(n.Members))
		for _, m := range n.Members {
			a, err := parseAddr(m)
			if err != nil {
				return nil, fmt.Errorf("networks: %s: members: %w", n.ID, err)
			}
			members = append(members, a)
		}
		b.addrSet(names[n.ID], members)
		sets = append(sets, names[n.ID])
	}
	slices.Sort(sets)
	return sets, nil
}

// tasks sorts the local tasks into those with egress (on at least one
// network that is not internal) and those confined to the cluster.
func (b *builder) tasks() error {
	internal := make(map[string]bool, len(b.v.Networks))
	for _, n := range b.v.Networks {
		internal[n.ID] = n.Internal
	}
	var egress, confined []netip.Addr
	for _, t := range b.v.Tasks {
		a, err := parseAddr(t.Addr)
		if err != nil {
			return fmt.Errorf("tasks: %s: addr: %w", t.ID, err)
		}
		out := false
		for _, n := range t.Networks {
			if in, known := internal[n]; known && !in {
				out = true
			}
		}
		if out {
			egress = append(egress, a)
		} else {
			confined = append(confined, a)
		}
	}
	b.addrSet(SetEgress, egress)
	b.addrSet(SetConfined, confined)
	return nil
}

// services makes the VIP map, a chain per service with a VIP and a chain
// per backend of those.
func (b *builder) services() error {
	var ids []string
	for _, s := range b.v.Services {
		if s.VIP != "" {
			ids = append(ids, s.ID)
		}
	}
	names, err := shortNames(prefixService, ids)
	if err != nil {
		return fmt.Errorf("services: %w", err)
	}
	n := len(b.r.Chains) + 16 + len(ids)
	for _, s := range b.v.Services {
		n += len(s.Backends)
	}
	b.r.Chains = slices.Grow(b.r.Chains, n)
	vips := &Set{Name: MapVIPs, KeyType: nftables.TypeIPAddr.Name, Map: true, keyType: nftables.TypeIPAddr}
	byVIP := make(map[netip.Addr]string)
	for i := range b.v.Services {
		s := &b.v.Services[i]
		if s.VIP == "" {
			continue // dnsrr, or no VIP yet: DNS answers the tasks
		}
		vip, err := parseAddr(s.VIP)
		if err != nil {
			return fmt.Errorf("services: %s: vip: %w", s.ID, err)
		}
		if other, dup := byVIP[vip]; dup {
			return fmt.Errorf("services: %s and %s have the same vip %s", other, s.ID, vip)
		}
		byVIP[vip] = s.ID
		chain := names[s.ID]
		if err := b.service(s, chain); err != nil {
			return fmt.Errorf("services: %s: %w", s.ID, err)
		}
		k := vip.As4()
		vips.Elems = append(vips.Elems, Elem{Key: vip.String(), Verdict: "goto " + chain, key: k[:], chain: chain})
	}
	slices.SortFunc(vips.Elems, compareElems)
	b.r.Sets = append(b.r.Sets, vips)
	return nil
}

type backend struct {
	id   string
	addr netip.Addr
	node string
}

// backends parses a service's backends, sorted by address as the view
// has them; a task listed twice counts once.
func (b *builder) backends(s api.NetService) ([]backend, error) {
	bes := make([]backend, 0, len(s.Backends))
	for _, be := range s.Backends {
		a, err := parseAddr(be.Addr)
		if err != nil {
			return nil, fmt.Errorf("backends: %s: addr: %w", be.TaskID, err)
		}
		bes = append(bes, backend{id: be.TaskID, addr: a, node: be.NodeID})
	}
	slices.SortFunc(bes, func(x, y backend) int {
		return cmp.Or(strings.Compare(x.id, y.id), x.addr.Compare(y.addr))
	})
	bes = slices.CompactFunc(bes, func(x, y backend) bool { return x.id == y.id })
	slices.SortFunc(bes, func(x, y backend) int {
		return cmp.Or(x.addr.Compare(y.addr), strings.Compare(x.id, y.id))
	})
	return bes, nil
}

// backendsOf returns a service's backends (b.backends) and their names
// (backendNames), parsed once per Build.
func (b *builder) backendsOf(s *api.NetService) (parsedBackends, error) {
	if p, ok := b.svcBackends[s.ID]; ok {
		return p, nil
	}
	bes, err := b.backends(*s)
	if err != nil {
		return parsedBackends{}, err
	}
	short, err := backendNames(bes)
	if err != nil {
		return parsedBackends{}, err
	}
	if b.svcBackends == nil {
		b.svcBackends = make(map[string]parsedBackends)
	}
	p := parsedBackends{bes: bes, short: short}
	b.svcBackends[s.ID] = p
	return p, nil
}

// local reports whether a backend runs on this node.
func (b *builder) local(be backend) bool {
	return be.node == b.v.NodeID || b.subnet.IsValid() && b.subnet.Contains(be.addr)
}

// backendNames names the backends by task ID (12 characters, more when
// two share them).
func backendNames(bes []backend) (map[string]string, error) {
	ids := make([]string, len(bes))
	for i, be := range bes {
		ids[i] = be.id
	}
	short, err := shortNames("", ids)
	if err != nil {
		return nil, fmt.Errorf("backends: %w", err)
	}
	return short, nil
}

// rejectRules refuse a connection at once: tcp reset, else icmp port
// unreachable (a service without backend, rather than a black hole).
func rejectRules() []Rule {
	return []Rule{
		newRule().l4proto(protoTCP).rejectTCP().done(),
		newRule().rejectICMPX(icmpxPortUnreachable).done(),
	}
}

func (b *builder) service(s *api.NetService, chain string) error {
	p, err := b.backendsOf(s)
	if err != nil {
		return err
	}
	bes, short := p.bes, p.short
	svc := &Chain{Name: chain}
	b.r.Chains = append(b.r.Chains, svc)
	if len(bes) == 0 {
		// No backend: refuse at once rather than let the VIP black-hole.
		svc.Rules = rejectRules()
		return nil
	}
	chains := make([]string, len(bes))
	cs := make([]Chain, len(bes))
	rules := make([]Rule, 0, 2*len(bes))
	r := newRule()
	for i, be := range bes {
		chains[i] = prefixBackend + strings.TrimPrefix(chain, prefixService) + "-" + short[be.id]
		c := &cs[i]
		c.Name = chains[i]
		// Only a local task can reach its own service through this
		// node's nat and pick itself.
		start := len(rules)
		if b.local(be) {
			rules = append(rules, r.reset().ipPrefix(src, false, netip.PrefixFrom(be.addr, 32)).markOr(HairpinMark).done())
		}
		rules = append(rules, r.reset().dnat(be.addr).done())
		c.Rules = rules[start:len(rules):len(rules)]
		b.r.Chains = append(b.r.Chains, c)
	}
	if len(chains) == 1 {
		svc.Rules = []Rule{newRule().gotoChain(chains[0]).done()}
	} else {
		svc.Rules = []Rule{newRule().numgenVmap(chains).done()}
	}
	return nil
}

// filter makes the filter chains: isolation and egress (forward), the
// confinement of internal tasks (input), unknown VIPs (forward, output).
func (b *builder) filter(netSets []string) {
	filter := func(hook string) *Hook {
		return &Hook{Type: nftables.ChainTypeFilter, Hook: hook, Priority: PriorityFilter}
	}
	tp, vp := b.taskPool, b.vipPool
	b.chain(ChainForward, filter("forward"),
		newRule().ctStateEstRel().accept(),
		// Still a VIP after nat: no service has it.
		newRule().ipPrefix(dst, false, vp).gotoChain(ChainReject),
		// Through a published port: anyone may, task or not, sharing
		// a network with the backend or not.
		newRule().ctDNAT().ctMarkHas(PublishedMark).accept(),
		newRule().ipPrefix(src, false, tp).ipPrefix(dst, false, tp).gotoChain(ChainIsolate),
		newRule().ipPrefix(src, false, tp).gotoChain(ChainEgress),
		// From outside the pools to a task, not through a published
		// port.
		newRule().ipPrefix(dst, false, tp).gotoChain(ChainReject),
	)
	iso := []*rule{newRule().ipSet(src, false, SetGateways).accept()}
	for _, s := range netSets {
		iso = append(iso, newRule().ipSet(src, false, s).ipSet(dst, false, s).accept())
	}
	iso = append(iso, newRule().gotoChain(ChainReject))
	b.chain(ChainIsolate, nil, iso...)
	b.chain(ChainEgress, nil,
		newRule().ipSet(src, false, SetEgress).accept(),
		newRule().gotoChain(ChainReject))
	b.chain(ChainReject, nil,
		newRule().l4proto(protoTCP).rejectTCP(),
		newRule().rejectICMPX(icmpxAdminProhibited))
	in := []*rule{newRule().ctStateEstRel().accept()}
	if b.gateway.IsValid() {
		gw := netip.PrefixFrom(b.gateway, 32)
		for _, p := range []byte{protoUDP, protoTCP} {
			in = append(in, newRule().ipSet(src, false, SetConfined).ipPrefix(dst, false, gw).dport(p, dnsPort).accept())
		}
	}
	in = append(in, newRule().ipSet(src, false, SetConfined).gotoChain(ChainReject))
	b.chain(ChainInput, filter("input"), in...)
	b.chain(ChainOutput, filter("output"),
		newRule().ipPrefix(dst, false, vp).gotoChain(ChainReject))
}

// nat makes the nat chains: VIPs and published ports (prerouting for
// tasks and clients beyond the node, output for the node itself) and
// masquerade.
func (b *builder) nat() {
	dstnat := func(hook string) *Hook {
		return &Hook{Type: nftables.ChainTypeNAT, Hook: hook, Priority: PriorityDstNAT}
	}
	vips := func(hook string) {
		b.chain("nat-"+hook, dstnat(hook),
			newRule().l4protoIn(protoTCP, protoUDP, protoSCTP).ipVmap(dst, MapVIPs),
			// Unknown VIP: refused before routing, which may have no
			// route for it. (Known ones without backend: svc-<id>.)
			newRule().ipPrefix(dst, false, b.vipPool).gotoChain(ChainReject),
			// Published ports, on every address of the node (127.0.0.1
			// included) but the gateways, where tasks ask the node's DNS
			// server (a service publishing port 53 must not answer for
			// it). IPv4 only (ip daddr): tasks have no IPv6 address.
			newRule().ipSet(dst, true, SetGateways).fibLocal().portVmap(MapPorts))
	}
	vips("prerouting")
	vips("output")
	tp := b.taskPool
	b.chain(ChainPostroute, &Hook{Type: nftables.ChainTypeNAT, Hook: "postrouting", Priority: PrioritySrcNAT},
		newRule().markHas(HairpinMark).masquerade(),
		// Egress of tasks, except task to task over WireGuard.
		newRule().ipPrefix(src, false, tp).ipPrefix(dst, true, tp).oifname(true, b.o.WGInterface).masquerade(),
		// The node's own traffic (or ingress) to a remote task: peers
		// accept only sources of our subnet.
		newRule().oifname(false, b.o.WGInterface).ipPrefix(src, true, tp).masquerade(),
		// A published port's remote backend, whoever the client (a task
		// too: the backend's node lets gateways in, not every task).
		newRule().oifname(false, b.o.WGInterface).ctMarkHas(PublishedMark).masquerade(),
		// The node's own 127.0.0.1:PORT: that source cannot leave lo.
		newRule().ipPrefix(src, false, loopback).ctMarkHas(PublishedMark).masquerade(),
	)
}

func (b *builder) chain(name string, h *Hook, rules ...*rule) {
	c := &Chain{Name: name, Hook: h, Rules: make([]Rule, len(rules))}
	for i, r := range rules {
		c.Rules[i] = r.done()
	}
	b.r.Chains = append(b.r.Chains, c)
}

// addrSet adds a set of IPv4 addresses, sorted and without duplicates.
func (b *builder) addrSet(name string, addrs []netip.Addr) {
	s := &Set{Name: name, KeyType: nftables.TypeIPAddr.Name, keyType: nftables.TypeIPAddr}
	slices.SortFunc(addrs, netip.Addr.Compare)
	addrs = slices.Compact(addrs)
	s.Elems = make([]Elem, len(addrs))
	keys := make([]byte, 4*len(addrs))
	for i, a := range addrs {
		k := keys[4*i : 4*i+4 : 4*i+4]
		a4 := a.As4()
		copy(k, a4[:])
		s.Elems[i] = Elem{Key: a.String(), key: k}
	}
	b.r.Sets = append(b.r.Sets, s)
}

// shortNames names each ID prefix + its first 12 characters, or the whole
// ID for IDs that share their first 12 characters with another; an ID that
// is not made of nft identifier characters, or is too long, is named by a
// hash of it.
func shortNames(prefix string, ids []string) (map[string]string, error) {
	part := func(id string, n int) string {
		if len(id) > maxIDNameLen || !validName("x"+id) { // "x": any first character
			h := sha256.Sum256([]byte(id))
			return "x" + hex.EncodeToString(h[:])[:min(n, 2*sha256.Size)]
		}
		if len(id) > n {
			return id[:n]
		}
		return id
	}
	short := make([]string, len(ids))
	count := make(map[string]int, len(ids))
	for i, id := range ids {
		short[i] = part(id, shortIDLen)
		count[short[i]]++
	}
	names := make(map[string]string, len(ids))
	owner := make(map[string]string, len(ids))
	for i, id := range ids {
		if id == "" {
			return nil, errors.New("an empty id")
		}
		p := short[i]
		if count[p] > 1 {
			p = part(id, maxIDNameLen)
		}
		name := prefix + p
		if o, taken := owner[name]; taken && o != id {
			return nil, fmt.Errorf("ids %s and %s get the same name %s", o, id, name)
		}
		owner[name] = id
		names[id] = name
	}
	return names, nil
}

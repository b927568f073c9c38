package nft

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables"

	"github.com/gitorc/gitorc/cluster/api"
)

// portsKeyType is the key of the ports map: protocol and port, each
// field padded to 4 bytes in the kernel's key.
var portsKeyType = nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)

// l4Protos maps the api's protocols to their IP protocol numbers.
var l4Protos = map[api.Protocol]byte{api.ProtocolTCP: protoTCP, api.ProtocolUDP: protoUDP, api.ProtocolSCTP: protoSCTP}

// pubPort is a published port of a service, checked.
type pubPort struct {
	proto     byte
	published uint16
	target    uint16
	host      bool
}

func (p pubPort) String() string {
	return protoNames[p.proto] + " " + strconv.Itoa(int(p.published))
}

// portKey is a protocol and a port: what a published port takes on a
// node, or where it goes.
type portKey struct {
	proto byte
	port  uint16
}

// ports makes the ports map and, for each port the node publishes, a
// chain that marks the connection and picks a backend, and a chain per
// backend that DNATs to it. An ingress port is published on every node,
// to every backend; a host port only on nodes running a backend, to
// those. A port without backend refuses connections.
func (b *builder) ports() error {
	var svcs []*api.NetService
	for i := range b.v.Services {
		if len(b.v.Services[i].Ports) > 0 {
			svcs = append(svcs, &b.v.Services[i])
		}
	}
	// By ID: a conflict's error names the services in one order.
	slices.SortFunc(svcs, func(x, y *api.NetService) int { return strings.Compare(x.ID, y.ID) })
	ids := make([]string, len(svcs))
	for i, s := range svcs {
		ids[i] = s.ID
	}
	names, err := shortNames(prefixPort, ids)
	if err != nil {
		return fmt.Errorf("ports: %w", err)
	}
	m := &Set{Name: MapPorts, KeyType: portsKeyType.Name, Map: true, keyType: portsKeyType}
	claimed := make(map[portKey]*api.NetService)
	for _, s := range svcs {
		if err := b.servicePorts(s, names[s.ID], m, claimed); err != nil {
			return err
		}
	}
	slices.SortFunc(m.Elems, compareElems)
	b.r.Sets = append(b.r.Sets, m)
	return nil
}

// targetChains are the backend chains of one protocol and target port of
// a service: a name per backend (of all of them, in order), and whether
// every backend needs its chain (an ingress port goes to it) or only the
// local ones (host ports only).
type targetChains struct {
	key   portKey
	names []string
	all   bool
}

// servicePorts adds a service's published ports to the ports map m, with
// their chains; claimed holds the ports taken on the node, and by whom.
func (b *builder) servicePorts(s *api.NetService, chain string, m *Set, claimed map[portKey]*api.NetService) error {
	ps, err := parsePorts(s.Ports)
	if err != nil {
		return fmt.Errorf("services: %s: %w", s.ID, err)
	}
	pb, err := b.backendsOf(s)
	if err != nil {
		return fmt.Errorf("services: %s: %w", s.ID, err)
	}
	var local []int // indexes of the local backends in pb.bes
	for i, be := range pb.bes {
		if b.local(be) {
			local = append(local, i)
		}
	}
	svc := strings.TrimPrefix(chain, prefixPort)
	var targets []*targetChains // few: a service has few ports
	targetOf := func(p pubPort) *targetChains {
		k := portKey{p.proto, p.target}
		for _, tc := range targets {
			if tc.key == k {
				return tc
			}
		}
		tc := &targetChains{key: k, names: make([]string, len(pb.bes))}
		suffix := "-" + portSuffix(p.proto, p.target)
		for i, be := range pb.bes {
			tc.names[i] = prefixPortBE + svc + "-" + pb.short[be.id] + suffix
		}
		targets = append(targets, tc)
		return tc
	}
	for _, p := range ps {
		if p.host && len(local) == 0 {
			continue // not published on this node
		}
		k := portKey{p.proto, p.published}
		if o, taken := claimed[k]; taken {
			return fmt.Errorf("ports: %s: services %s (%s) and %s (%s) both publish it on node %s: %w",
				p, o.Name, o.ID, s.Name, s.ID, b.v.NodeID, ErrPortConflict)
		}
		claimed[k] = s
		name := chain + "-" + portSuffix(p.proto, p.published)
		m.Elems = append(m.Elems, portElem(p, name))
		c := &Chain{Name: name}
		b.r.Chains = append(b.r.Chains, c)
		if len(pb.bes) == 0 {
			// An ingress port without backend: refuse at once rather
			// than black-hole (or let a process of the node answer).
			c.Rules = rejectRules()
			continue
		}
		tc := targetOf(p)
		chains := tc.names
		if p.host {
			chains = make([]string, len(local))
			for i, j := range local {
				chains[i] = tc.names[j]
			}
		} else {
			tc.all = true
		}
		c.Rules = make([]Rule, 2)
		c.Rules[0] = newRule().ctMarkOr(PublishedMark).done()
		if len(chains) == 1 {
			c.Rules[1] = newRule().gotoChain(chains[0]).done()
		} else {
			c.Rules[1] = newRule().numgenVmap(chains).done()
		}
	}
	for _, tc := range targets {
		b.backendChains(pb.bes, tc)
	}
	return nil
}

// backendChains makes the backend chains of one protocol and target.
func (b *builder) backendChains(bes []backend, tc *targetChains) {
	cs := make([]Chain, len(bes))
	rules := make([]Rule, 0, len(bes)+4)
	r := newRule()
	for i, be := range bes {
		local := b.local(be)
		if !tc.all && !local {
			continue
		}
		c := &cs[i]
		c.Name = tc.names[i]
		start := len(rules)
		if local {
			// A task reaching its own service through a published
			// port of this node and picking itself.
			rules = append(rules, r.reset().ipPrefix(src, false, netip.PrefixFrom(be.addr, 32)).markOr(HairpinMark).done())
		}
		rules = append(rules, r.reset().l4proto(tc.key.proto).dnatPort(be.addr, tc.key.port).done())
		c.Rules = rules[start:len(rules):len(rules)]
		b.r.Chains = append(b.r.Chains, c)
	}
}

// how describes the port's target and mode: "target 80, ingress".
func (p pubPort) how() string {
	mode := api.PublishIngress
	if p.host {
		mode = api.PublishHost
	}
	return "target " + strconv.Itoa(int(p.target)) + ", " + mode.String()
}

// portSuffix is the "<proto>-<port>" that ends a chain's name.
func portSuffix(proto byte, port uint16) string {
	return protoNames[proto] + "-" + strconv.Itoa(int(port))
}

// portElem is the ports map's element of p: the protocol and the port,
// each in a 4-byte field (the kernel's layout of a concatenation).
func portElem(p pubPort, chain string) Elem {
	k := make([]byte, 8)
	k[0] = p.proto
	k[4], k[5] = byte(p.published>>8), byte(p.published)
	return Elem{Key: protoNames[p.proto] + " . " + strconv.Itoa(int(p.published)),
		Verdict: "goto " + chain, key: k, chain: chain}
}

// parsePorts checks a service's published ports and returns them sorted
// by protocol and port; a port listed twice alike counts once, a port
// listed twice otherwise is a conflict.
func parsePorts(pcs []api.PortConfig) ([]pubPort, error) {
	ps := make([]pubPort, 0, len(pcs))
	for i, pc := range pcs {
		proto, ok := l4Protos[pc.Protocol]
		if !ok {
			return nil, fmt.Errorf("ports[%d]: protocol %d: not tcp, udp or sctp", i, pc.Protocol)
		}
		if pc.Published == 0 || pc.Published > 65535 {
			return nil, fmt.Errorf("ports[%d]: published %d: not a port", i, pc.Published)
		}
		if pc.Target == 0 || pc.Target > 65535 {
			return nil, fmt.Errorf("ports[%d]: target %d: not a port", i, pc.Target)
		}
		if pc.Mode != api.PublishIngress && pc.Mode != api.PublishHost {
			return nil, fmt.Errorf("ports[%d]: mode %d: not ingress or host", i, pc.Mode)
		}
		ps = append(ps, pubPort{proto: proto, published: uint16(pc.Published), target: uint16(pc.Target), host: pc.Mode == api.PublishHost})
	}
	slices.SortFunc(ps, func(x, y pubPort) int {
		return cmp.Or(cmp.Compare(x.proto, y.proto), cmp.Compare(x.published, y.published),
			cmp.Compare(x.target, y.target), cmpBool(x.host, y.host))
	})
	ps = slices.Compact(ps)
	for i := 1; i < len(ps); i++ {
		if ps[i].proto == ps[i-1].proto && ps[i].published == ps[i-1].published {
			return nil, fmt.Errorf("ports: %s published twice (%s, %s): %w", ps[i], ps[i-1].how(), ps[i].how(), ErrPortConflict)
		}
	}
	return ps, nil
}

func cmpBool(x, y bool) int {
	switch {
	case x == y:
		return 0
	case !x:
		return -1
	}
	return 1
}

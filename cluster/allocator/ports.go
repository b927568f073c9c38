package allocator

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gitorc/gitorc/cluster/api"
)

// The range the cluster chooses published ports from, Swarm's: an
// ingress-mode port that leaves Published 0 gets one of these.
const (
	FirstDynamicPort uint32 = 30000
	LastDynamicPort  uint32 = 32767
)

// portSet is a set of the dynamic ports of one protocol: other ports
// never clash with a chosen one.
type portSet [(LastDynamicPort - FirstDynamicPort + 64) / 64]uint64

func (s *portSet) has(port uint32) bool {
	i := port - FirstDynamicPort
	return dynamic(port) && s[i/64]&(1<<(i%64)) != 0
}

func (s *portSet) add(port uint32) {
	if i := port - FirstDynamicPort; dynamic(port) {
		s[i/64] |= 1 << (i % 64)
	}
}

// Ports chooses the published ports of services' ingress-mode ports that
// leave Published 0, from FirstDynamicPort to LastDynamicPort, unique for
// each protocol cluster-wide against every service's published ports,
// ingress and host, given or chosen.
//
// A service keeps the ports it was given (found in Endpoint.Ports by name,
// protocol and target) as long as its spec keeps asking for them and no
// spec publishes the same port explicitly: an explicit port wins, and the
// service that held it gets another. Two services holding the same port
// (which the allocator never does) are resolved in ID order: the older
// keeps it. New ports are taken in a circle, as addresses are, starting
// after the last chosen port of the newest service (the greatest ID)
// holding one.
type Ports struct {
	used    [256]*portSet             // by protocol
	held    map[string]map[int]uint32 // service ID → spec port index → port kept
	circles [256]*portCircle
	cursor  [256]uint32 // where each protocol's search starts
}

// NewPorts reads every service's explicit published ports and the ports
// the allocator gave each, which it keeps.
func NewPorts(services []*api.Service) *Ports {
	byID := func(a, b *api.Service) int { return strings.Compare(a.ID, b.ID) }
	if !slices.IsSortedFunc(services, byID) {
		services = slices.SortedFunc(slices.Values(services), byID)
	}
	p := &Ports{held: map[string]map[int]uint32{}}
	for _, s := range services {
		for _, pc := range s.Spec.Endpoint.Ports {
			if pc.Published != 0 {
				p.set(pc.Protocol).add(pc.Published)
			}
		}
	}
	for _, s := range services {
		p.keep(s)
	}
	return p
}

// keep finds the ports a service holds for its spec's chosen ports. An
// entry of Endpoint.Ports that is a copy of an explicit port of the
// previous spec (what a spec going from "published: 30005" to none leaves)
// is taken only when no other entry fits: the chosen port is the other.
func (p *Ports) keep(s *api.Service) {
	if s.Endpoint == nil || !slices.ContainsFunc(s.Spec.Endpoint.Ports, chosen) {
		return
	}
	copied := make([]bool, len(s.Endpoint.Ports))
	if s.PreviousSpec != nil {
		for j, had := range s.Endpoint.Ports {
			copied[j] = slices.Contains(s.PreviousSpec.Endpoint.Ports, had)
		}
	}
	taken := make([]bool, len(s.Endpoint.Ports))
	for _, copies := range []bool{false, true} {
		for i, want := range s.Spec.Endpoint.Ports {
			if !chosen(want) {
				continue
			}
			if _, ok := p.held[s.ID][i]; ok {
				continue
			}
			for j, had := range s.Endpoint.Ports {
				if taken[j] || copied[j] != copies || had.Mode != api.PublishIngress || had.Name != want.Name ||
					had.Protocol != want.Protocol || had.Target != want.Target || !dynamic(had.Published) {
					continue
				}
				taken[j] = true
				used := p.set(had.Protocol)
				if used.has(had.Published) {
					continue // an explicit port or an older holder wins
				}
				used.add(had.Published)
				if p.held[s.ID] == nil {
					p.held[s.ID] = map[int]uint32{}
				}
				p.held[s.ID][i] = had.Published
				p.cursor[want.Protocol] = had.Published // by ID order: the newest holder's
				break
			}
		}
	}
}

// chosen reports whether the cluster chooses a port's published port.
func chosen(pc api.PortConfig) bool { return pc.Mode == api.PublishIngress && pc.Published == 0 }

// dynamic reports whether port lies in the range the cluster chooses from.
func dynamic(port uint32) bool { return FirstDynamicPort <= port && port <= LastDynamicPort }

// For returns a service's ports with Published filled in: its spec's, in
// order, each with the port it holds or a new one; nil when it publishes
// none. A port that cannot be given (the range is full for its protocol)
// keeps Published 0 (published nowhere, until a pass finds one free) and
// the error, matching ErrExhausted, names the first such port.
func (p *Ports) For(s *api.Service) ([]api.PortConfig, error) {
	spec := s.Spec.Endpoint.Ports
	if len(spec) == 0 {
		return nil, nil
	}
	out := make([]api.PortConfig, len(spec))
	var err error
	for i, pc := range spec {
		out[i] = pc
		if !chosen(pc) {
			continue
		}
		if port, ok := p.held[s.ID][i]; ok {
			out[i].Published = port
			continue
		}
		port, ok := p.circle(pc.Protocol).next()
		if !ok {
			if err == nil {
				err = &exhaustedError{fmt.Sprintf("published port range %d-%d/%s exhausted: service %s port %d/%s gets none",
					FirstDynamicPort, LastDynamicPort, pc.Protocol, s.Spec.Name, pc.Target, pc.Protocol)}
			}
			continue
		}
		out[i].Published = port
	}
	return out, err
}

// set returns the protocol's published ports, made on first use.
func (p *Ports) set(proto api.Protocol) *portSet {
	s := p.used[proto]
	if s == nil {
		s = new(portSet)
		p.used[proto] = s
	}
	return s
}

// circle returns the protocol's free dynamic ports, made on first use,
// once every held and explicit port is known.
func (p *Ports) circle(proto api.Protocol) *portCircle {
	c := p.circles[proto]
	if c == nil {
		c = &portCircle{used: p.set(proto), cursor: p.cursor[proto]}
		for port := FirstDynamicPort; port <= LastDynamicPort; port++ {
			if !c.used.has(port) {
				c.free++
			}
		}
		p.circles[proto] = c
	}
	return c
}

// portCircle hands out the free dynamic ports of one protocol after the
// last one given, wrapping around.
type portCircle struct {
	used   *portSet
	cursor uint32 // the last given; 0: none yet
	free   int
}

func (c *portCircle) next() (uint32, bool) {
	if c.free <= 0 {
		return 0, false
	}
	port := FirstDynamicPort
	if dynamic(c.cursor) && c.cursor != LastDynamicPort {
		port = c.cursor + 1
	}
	for c.used.has(port) {
		if port == LastDynamicPort {
			port = FirstDynamicPort
		} else {
			port++
		}
	}
	c.used.add(port)
	c.cursor = port
	c.free--
	return port, true
}

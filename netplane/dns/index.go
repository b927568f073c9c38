package dns

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/gitorc/gitorc/cluster/api"
)

// index is what one view answers, built once by SetView and read by
// queries without locks: nothing in it changes after buildIndex.
type index struct {
	// callers are the local tasks, by address, with the scope of their
	// networks (tasks on the same networks share one).
	callers map[netip.Addr]*scope
	// all is what a caller that is not a local task sees: every service.
	all *scope
	// known are every service's names (Name, ShortName, aliases on any
	// network), lowercase and fully qualified: they and tasks.<name> are
	// answered here, never forwarded; names under them are forwarded
	// (x.app. may be a real domain while a service is named app).
	known map[string]struct{}
	// pools are the view's task and VIP pools: their reverse names are
	// answered here too.
	pools []netip.Prefix
}

// scope is the answer table of one set of networks: lowercase, fully
// qualified name to its answer.
type scope struct {
	names map[string]*answer
}

// answer is what a visible name answers: A records, or PTR targets for a
// reverse name. Either may be empty (NODATA).
type answer struct {
	addrs []netip.Addr // sorted, deduplicated
	ttl   uint32
	ptrs  []string // fully qualified, sorted
}

// service is a view's service as the index needs it.
type service struct {
	name     string       // Name, canonical
	names    []string     // Name and ShortName, canonical
	vip      netip.Addr   // invalid unless vip mode with a VIP
	dnsrr    bool         // the name answers the backends
	backends []netip.Addr // sorted, deduplicated
	// attached are the service's networks, with its aliases on each.
	attached map[string][]string
	// named, tasks and ptr are what its names, tasks.<name> and the
	// reverse names of its addresses (revs) answer when they are its
	// alone, shared by every scope.
	named, tasks, ptr *answer
	revs              []string
}

// canonical returns a name lowercase and fully qualified ("" for none).
func canonical(s string) string {
	s = strings.TrimSuffix(strings.TrimSpace(s), ".")
	if s == "" {
		return ""
	}
	return strings.ToLower(s) + "."
}

// newService reads one service of the view; unparsable addresses are
// left out.
func newService(s api.NetService) *service {
	svc := &service{name: canonical(s.Name), dnsrr: s.Mode == api.EndpointDNSRR, attached: make(map[string][]string, len(s.Networks))}
	for _, n := range []string{s.Name, s.ShortName} {
		if c := canonical(n); c != "" && !slices.Contains(svc.names, c) {
			svc.names = append(svc.names, c)
		}
	}
	if !svc.dnsrr {
		if a, err := netip.ParseAddr(s.VIP); err == nil {
			svc.vip = a.Unmap()
		}
	}
	for _, b := range s.Backends {
		if a, err := netip.ParseAddr(b.Addr); err == nil {
			svc.backends = append(svc.backends, a.Unmap())
		}
	}
	svc.backends = sortAddrs(svc.backends)
	for _, att := range s.Networks {
		var aliases []string
		for _, al := range att.Aliases {
			if c := canonical(al); c != "" {
				aliases = append(aliases, c)
			}
		}
		svc.attached[att.NetworkID] = append(svc.attached[att.NetworkID], aliases...)
	}
	svc.tasks = &answer{addrs: svc.backends}
	switch {
	case svc.dnsrr:
		svc.named = &answer{addrs: svc.backends}
	case svc.vip.IsValid():
		svc.named = &answer{addrs: []netip.Addr{svc.vip}, ttl: VIPTTL}
	default: // no VIP yet: nothing, and no say in a shared name's TTL
		svc.named = &answer{ttl: VIPTTL}
	}
	if svc.name == "" {
		return svc
	}
	svc.ptr = &answer{ptrs: []string{svc.name}}
	if svc.vip.IsValid() {
		svc.revs = append(svc.revs, reverseName(svc.vip))
	}
	for _, b := range svc.backends {
		svc.revs = append(svc.revs, reverseName(b))
	}
	svc.revs = slices.DeleteFunc(svc.revs, func(r string) bool { return r == "" })
	return svc
}

func sortAddrs(as []netip.Addr) []netip.Addr {
	slices.SortFunc(as, netip.Addr.Compare)
	return slices.Compact(as)
}

// buildIndex computes what v answers. A nil view answers nothing.
func buildIndex(v *api.NetView) *index {
	ix := &index{callers: map[netip.Addr]*scope{}, all: &scope{names: map[string]*answer{}}, known: map[string]struct{}{}}
	if v == nil {
		return ix
	}
	for _, p := range []string{v.TaskPool, v.VIPPool} {
		if pfx, err := netip.ParsePrefix(p); err == nil && pfx.Addr().Is4() {
			ix.pools = append(ix.pools, pfx.Masked())
		}
	}
	services := make([]*service, 0, len(v.Services))
	for _, s := range v.Services {
		svc := newService(s)
		services = append(services, svc)
		for _, n := range svc.names {
			ix.known[n] = struct{}{}
		}
		for _, aliases := range svc.attached {
			for _, al := range aliases {
				ix.known[al] = struct{}{}
			}
		}
	}
	tasksOf := make(map[string]string, len(ix.known))
	for n := range ix.known {
		tasksOf[n] = "tasks." + n
	}
	ix.all = buildScope(services, tasksOf, nil)
	byNets := map[string]*scope{}
	for _, t := range v.Tasks {
		a, err := netip.ParseAddr(t.Addr)
		if err != nil {
			continue
		}
		nets := slices.Clone(t.Networks)
		slices.Sort(nets)
		nets = slices.Compact(nets)
		key := strings.Join(nets, "\x00")
		sc, ok := byNets[key]
		if !ok {
			set := make(map[string]bool, len(nets))
			for _, n := range nets {
				set[n] = true
			}
			sc = buildScope(services, tasksOf, set)
			byNets[key] = sc
		}
		ix.callers[a.Unmap()] = sc
	}
	return ix
}

// buildScope computes the answers of the services a caller on networks
// nets sees (every service when nets is nil). A name or reverse name of
// one service shares that service's answers with other scopes; only names
// of several services get answers of their own.
func buildScope(services []*service, tasksOf map[string]string, nets map[string]bool) *scope {
	byName := newRefs()
	byRev := newRefs()
	for _, svc := range services {
		seen := nets == nil
		for netID, aliases := range svc.attached {
			if nets != nil && !nets[netID] {
				continue
			}
			seen = true
			for _, al := range aliases {
				byName.add(al, svc)
			}
		}
		if !seen {
			continue
		}
		for _, n := range svc.names {
			byName.add(n, svc)
		}
		for _, r := range svc.revs {
			byRev.add(r, svc)
		}
	}
	sc := &scope{names: make(map[string]*answer, 2*len(byName.one)+len(byRev.one))}
	for name, svc := range byName.one {
		sc.names[name] = svc.named
	}
	for name, svcs := range byName.more {
		named := &answer{ttl: VIPTTL}
		for _, svc := range svcs {
			named.addrs = append(named.addrs, svc.named.addrs...)
			if svc.named.ttl == 0 {
				named.ttl = 0
			}
		}
		named.addrs = sortAddrs(named.addrs)
		sc.names[name] = named
	}
	// tasks.<name>; an alias spelt "tasks.x" wins over the tasks of x.
	for name, svc := range byName.one {
		if tn := tasksOf[name]; sc.names[tn] == nil {
			sc.names[tn] = svc.tasks
		}
	}
	for name, svcs := range byName.more {
		tn := tasksOf[name]
		if sc.names[tn] != nil {
			continue
		}
		tasks := &answer{}
		for _, svc := range svcs {
			tasks.addrs = append(tasks.addrs, svc.backends...)
		}
		tasks.addrs = sortAddrs(tasks.addrs)
		sc.names[tn] = tasks
	}
	for rev, svc := range byRev.one {
		sc.names[rev] = svc.ptr
	}
	for rev, svcs := range byRev.more {
		an := &answer{}
		for _, svc := range svcs {
			an.ptrs = append(an.ptrs, svc.name)
		}
		slices.Sort(an.ptrs)
		an.ptrs = slices.Compact(an.ptrs)
		sc.names[rev] = an
	}
	return sc
}

// refs are the services of each name: most names have one (one), the
// others several, each once, in view order (more).
type refs struct {
	one  map[string]*service
	more map[string][]*service
}

func newRefs() *refs {
	return &refs{one: map[string]*service{}, more: map[string][]*service{}}
}

func (r *refs) add(name string, svc *service) {
	if svcs, ok := r.more[name]; ok {
		if !slices.Contains(svcs, svc) {
			r.more[name] = append(svcs, svc)
		}
		return
	}
	first, ok := r.one[name]
	switch {
	case !ok:
		r.one[name] = svc
	case first != svc:
		delete(r.one, name)
		r.more[name] = []*service{first, svc}
	}
}

// scopeOf returns what the caller at a sees.
func (ix *index) scopeOf(a netip.Addr) *scope {
	if sc, ok := ix.callers[a]; ok {
		return sc
	}
	return ix.all
}

// local reports whether name (canonical) is the cluster's, to be
// answered here whether or not the caller sees it: a service name or a
// name under one, or a reverse name in the task or VIP pool.
func (ix *index) local(name string) bool {
	// Exact names and tasks.<name> only: a name under a service's name
	// (x.app. for a service "app") may be a real domain, and goes out.
	if _, ok := ix.known[name]; ok {
		return true
	}
	if rest, ok := strings.CutPrefix(name, "tasks."); ok {
		if _, ok := ix.known[rest]; ok {
			return true
		}
	}
	if a, ok := parseReverse(name); ok {
		for _, p := range ix.pools {
			if p.Contains(a) {
				return true
			}
		}
	}
	return false
}

// reverseName returns the in-addr.arpa name of an IPv4 address ("" for
// IPv6).
func reverseName(a netip.Addr) string {
	if !a.Is4() {
		return ""
	}
	b := a.As4()
	return strconv.Itoa(int(b[3])) + "." + strconv.Itoa(int(b[2])) + "." + strconv.Itoa(int(b[1])) + "." + strconv.Itoa(int(b[0])) + ".in-addr.arpa."
}

// parseReverse returns the IPv4 address of a canonical in-addr.arpa name
// of four labels.
func parseReverse(name string) (netip.Addr, bool) {
	rest, ok := strings.CutSuffix(name, ".in-addr.arpa.")
	if !ok {
		return netip.Addr{}, false
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 4 {
		return netip.Addr{}, false
	}
	var b [4]byte
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 255 || (len(p) > 1 && p[0] == '0') {
			return netip.Addr{}, false
		}
		b[3-i] = byte(n)
	}
	return netip.AddrFrom4(b), true
}

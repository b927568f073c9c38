package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/netplane"
	"github.com/spf13/pflag"
)

// netFlags are the network plane's flags of bootstrap and join.
type netFlags struct {
	wireGuardPort uint16
	dnsUpstreams  []string
}

func (f *netFlags) add(fl *pflag.FlagSet) {
	fl.Uint16Var(&f.wireGuardPort, "wireguard-port", 51820, "UDP port of the node's WireGuard interface (the encrypted overlay between nodes)")
	fl.StringArrayVar(&f.dnsUpstreams, "dns-upstream", nil, "resolver (host[:port]) the node's DNS server forwards names outside the cluster to (repeatable; default: the nameservers of /etc/resolv.conf)")
}

// record checks the flags and keeps them in the node's state.
func (f *netFlags) record(st *nodeState) error {
	ups, err := upstreams(f.dnsUpstreams)
	if err != nil {
		return err
	}
	st.WireGuardPort, st.DNSUpstreams = f.wireGuardPort, ups
	return nil
}

// upstreams normalises --dns-upstream values to host:port (port 53 when
// none is given).
func upstreams(in []string) ([]string, error) {
	var out []string
	for _, u := range in {
		host, port, err := net.SplitHostPort(u)
		if err != nil {
			host, port = u, "53"
		}
		if _, err := netip.ParseAddr(host); err != nil {
			return nil, fmt.Errorf("--dns-upstream %q: not an IP address (host[:port])", u)
		}
		out = append(out, net.JoinHostPort(host, port))
	}
	return out, nil
}

// hostResolvers reads the nameservers of a resolv.conf, as host:53.
// Loopback resolvers (systemd-resolved's 127.0.0.53) work: the node's DNS
// server forwards from the host's network namespace.
func hostResolvers(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "nameserver" {
			if a, err := netip.ParseAddr(fields[1]); err == nil && a.Is4() {
				out = append(out, net.JoinHostPort(a.String(), "53"))
			}
		}
	}
	return out, sc.Err()
}

// planFlags are bootstrap's address plan flags: they hold for the whole
// cluster and are written once, when the first manager first leads.
type planFlags struct {
	taskPool, vipPool string
	nodeSubnetBits    int
}

func (f *planFlags) add(fl *pflag.FlagSet) {
	d := api.DefaultNetworkConfig()
	fl.StringVar(&f.taskPool, "task-pool", d.TaskPool, "the pool every node's task subnet is taken from (CIDR)")
	fl.IntVar(&f.nodeSubnetBits, "node-subnet-size", d.NodeSubnetBits, "prefix length of each node's task subnet (24: 253 tasks per node)")
	fl.StringVar(&f.vipPool, "vip-pool", d.VIPPool, "the pool service VIPs are taken from (CIDR)")
}

// plan checks the address plan, also against the addresses of this host:
// a pool over the host's own network would cut it off.
func (f *planFlags) plan(hostAddrs []netip.Prefix) (api.NetworkConfig, error) {
	c := api.NetworkConfig{TaskPool: f.taskPool, NodeSubnetBits: f.nodeSubnetBits, VIPPool: f.vipPool}
	d := api.DefaultNetworkConfig()
	if c.TaskPool == "" { // unset (not through the flags): the defaults
		c.TaskPool = d.TaskPool
	}
	if c.NodeSubnetBits == 0 {
		c.NodeSubnetBits = d.NodeSubnetBits
	}
	if c.VIPPool == "" {
		c.VIPPool = d.VIPPool
	}
	if err := c.Validate(); err != nil {
		return c, planFlagError(err)
	}
	for _, a := range hostAddrs {
		if pool := c.Overlaps(a); pool != "" {
			return c, fmt.Errorf("%s overlaps this host's network %s: choose another with --task-pool or --vip-pool", pool, a)
		}
	}
	return c, nil
}

// planFlagError names the flags for Validate's fields.
func planFlagError(err error) error {
	s := err.Error()
	for field, flag := range map[string]string{"task_pool": "--task-pool", "vip_pool": "--vip-pool", "node_subnet_bits": "--node-subnet-size"} {
		s = strings.ReplaceAll(s, field, flag)
	}
	return errors.New(s)
}

// hostPrefixes are the IPv4 networks of this host's interfaces, but for
// loopback (which also holds a running node's gateway address) and the
// network plane's own interfaces; host addresses (/32) are no networks.
func hostPrefixes() ([]netip.Prefix, error) {
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

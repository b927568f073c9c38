package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/node"
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

// record checks the flags and gives them to the node's settings.
func (f *netFlags) record(s *node.Settings) error {
	ups, err := upstreams(f.dnsUpstreams)
	if err != nil {
		return err
	}
	s.WireGuardPort, s.DNSUpstreams = f.wireGuardPort, ups
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

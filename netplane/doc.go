// Package netplane is each node's network plane: the WireGuard mesh between
// nodes, the attachment of tasks, nftables rules for network isolation,
// egress, service VIPs and the ingress routing mesh, and the per-node DNS
// server for service discovery. Plane applies whole desired configs
// (api.NetView, computed by the managers): Reconfig applies only the
// difference, and is a no-op when nothing changed.
//
// The model is routed, not bridged: each task has one address from its
// node's subnet of the cluster's task pool, on a veth pair whose host end
// holds the node's gateway address (/32) and a host route to the task
// (CNI's ptp plugin with static IPAM, subpackage cni). Every packet
// between tasks, on one node or across nodes, crosses the node's IP layer,
// where gitorc's one nftables table (subpackage nft) sees it: networks are
// isolation domains (sets of member addresses, a forward rule that passes
// only pairs sharing a network), not separate segments. A bridge would
// switch same-node traffic below nftables' IP hooks, which only
// br_netfilter (a host-wide switch that changes every firewall's
// behaviour) would expose.
//
// Layout on a node (in Config.NS, the process's network namespace unless
// told otherwise):
//
//	lo        also holds the gateway address (/32), where the DNS
//	          server listens (port 53, udp and tcp)
//	gtrc-wg   WireGuard: kernel through wgctrl when the module exists,
//	          else wireguard-go over /dev/net/tun (subpackage wg); one peer
//	          per other node, AllowedIPs = its subnet; a route per peer
//	veth*     host ends of the tasks' veth pairs (ptp plugin)
//	table inet gitorc   isolation, egress masquerade, VIP and ingress DNAT
//
// Under Config.DataDir: wireguard.key (0600, never leaves the node),
// view.json (the last view applied, so that a restarted node serves again
// before it reaches a manager) and cni/ (the CNI cache).
//
// There is no unencrypted mode: traffic between nodes goes only through
// gtrc-wg.
//
// netplane is a leaf: it imports cluster/api and its own subpackages, and
// no other gitorc package.
package netplane

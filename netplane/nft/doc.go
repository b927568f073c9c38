// Package nft owns gitorc's nftables table on a node, `table inet gitorc`:
// Build computes its desired content from the node's api.NetView (pure,
// rendered by Ruleset.String as nft would list it), and Table.Apply makes
// the kernel's table equal to it with github.com/google/nftables, in one
// netlink batch: the whole table the first time (delete and create,
// atomic), only the difference after, nothing when nothing changed. It
// never reads or writes any other table.
//
// The table, for a node whose subnet is S (gateway G, its first address)
// in the task pool P, with the VIP pool V:
//
//	sets  gateways        every node's gateway (this node's and its peers')
//	      net-<id>        the members of a network, cluster-wide
//	      tasks-egress    local tasks on at least one network that is not internal
//	      tasks-confined  local tasks on internal networks only
//	map   vips            VIP : goto svc-<id>
//	map   ports           proto . port : goto pub-<id>-<proto>-<port>
//
//	filter-forward   established,related accept; daddr in V (a VIP nat
//	                 did not translate: unknown) rejected; P to P goes to
//	                 fwd-isolate (saddr a gateway, or saddr and daddr in
//	                 one net-<id>, else rejected); P to elsewhere goes to
//	                 fwd-egress (saddr in tasks-egress, else rejected);
//	                 elsewhere to P is rejected. Before these, a
//	                 connection a published port DNATed (ct status dnat
//	                 and PublishedMark) is accepted, whoever the client
//	                 and whatever the networks
//	filter-input     tasks-confined reach the node only for DNS (G, udp and
//	                 tcp 53)
//	filter-output    the node's own packets to unknown VIPs rejected (as
//	                 filter-forward does: packets nat does not see)
//	reject-admin     tcp reset, else icmpx admin-prohibited: clients fail fast
//	nat-prerouting,  meta l4proto { tcp, udp, sctp } ip daddr vmap @vips:
//	nat-output       tasks (prerouting) and the node (output) reach VIPs;
//	                 any other address of V is rejected there, before
//	                 routing (which may have no route for it); then
//	                 meta nfproto ipv4 fib daddr type local meta
//	                 l4proto . th dport vmap @ports: published ports on
//	                 every address of the node, 127.0.0.1 included
//	svc-<id>         numgen random mod N vmap { i : goto be-<svc>-<task> }
//	                 (kube-proxy's nftables shape; one backend: a goto);
//	                 no backend: tcp reset, else icmp port-unreachable
//	be-<svc>-<task>  a local backend first marks its own connections
//	                 (HairpinMark, OR-ed in); dnat ip to the backend, the
//	                 port kept
//	pub-<svc>-<proto>-<port>
//	                 ct mark |= PublishedMark, then a backend picked as
//	                 svc-<id> does: an ingress port's among every backend,
//	                 cluster-wide; a host port's among the local ones
//	                 (none: the port is not in the map, not published on
//	                 this node); an ingress port without backend: tcp
//	                 reset, else icmp port-unreachable
//	pbe-<svc>-<task>-<proto>-<target>
//	                 the hairpin mark for a local backend, as be- does;
//	                 meta l4proto <proto> dnat ip to the backend:<target>
//	                 (shared by the ports of a service with one target)
//	nat-postrouting  masquerade marked packets (hairpin); P to outside P
//	                 not leaving by WireGuard (egress); sources outside P
//	                 leaving by WireGuard (the node's own, or ingress);
//	                 PublishedMark leaving by WireGuard (a task client too:
//	                 the backend's node lets gateways in, not any task);
//	                 PublishedMark from 127.0.0.0/8 (the node's own
//	                 127.0.0.1:PORT, which needs route_localnet)
//
// Masquerade over WireGuard takes the address of the WireGuard interface,
// which holds the node's gateway (a /32): a source in the node's subnet,
// which the peer's AllowedIPs accept and its fwd-isolate lets in (a
// gateway), and to which the backend's answers are routed back. So an
// ingress connection's backend sees the client's address when it is
// local, the ingress node's gateway when it is remote; a task client of a
// local backend is seen as itself.
//
// The node must route V (the plane routes it via WireGuard) for its own
// connections to VIPs when it has no default route: output routes before
// nat translates.
//
// Per-object names are "net-", "svc-", "be-<svc>-", "pub-" or
// "pbe-<svc>-" and the first 12 characters of the ID, so a change of one
// service touches only its chains and the vips and ports maps. Apply
// diffs by name: set elements are added and removed, a chain whose rules
// changed is flushed and refilled (one backend more or less: its service
// chain, the backend's chain, nothing else), new chains and sets are
// created and old ones deleted.
//
// Published ports come from every service of the view with Ports: a
// port is the protocol and published port on the node, and two services
// taking one on a node (two ingress ports, or one with a host port that
// has a local backend here, or two such host ports) are an error
// wrapping ErrPortConflict: the managers refuse those specs, Build is the
// last guard. The ports map is keyed as nft keys a concatenation (each
// field in 4 bytes) and created as nft creates it (no NFT_SET_CONCAT
// flag, which nft sets for interval sets only). A backend change of a
// service refills its pub- chains besides its svc- chain, and creates or
// deletes the backend's pbe- chains besides its be- chain; the ports map
// changes only when a port comes or goes (a host port's first or last
// local backend).
//
// It imports cluster/api, netplane/netns and libraries only.
package nft

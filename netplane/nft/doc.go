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
//
//	filter-forward   established,related accept; daddr in V (a VIP nat
//	                 did not translate: unknown) rejected; P to P goes to
//	                 fwd-isolate (saddr a gateway, or saddr and daddr in
//	                 one net-<id>, else rejected); P to elsewhere goes to
//	                 fwd-egress (saddr in tasks-egress, else rejected);
//	                 elsewhere to P is rejected (published ports, issue 12,
//	                 will accept their DNATed connections before it)
//	filter-input     tasks-confined reach the node only for DNS (G, udp and
//	                 tcp 53)
//	filter-output    the node's own packets to unknown VIPs rejected (as
//	                 filter-forward does: packets nat does not see)
//	reject-admin     tcp reset, else icmpx admin-prohibited: clients fail fast
//	nat-prerouting,  meta l4proto { tcp, udp, sctp } ip daddr vmap @vips:
//	nat-output       tasks (prerouting) and the node (output) reach VIPs;
//	                 any other address of V is rejected there, before
//	                 routing (which may have no route for it)
//	svc-<id>         numgen random mod N vmap { i : goto be-<svc>-<task> }
//	                 (kube-proxy's nftables shape; one backend: a goto);
//	                 no backend: tcp reset, else icmp port-unreachable
//	be-<svc>-<task>  a local backend first marks its own connections
//	                 (HairpinMark, OR-ed in); dnat ip to the backend, the
//	                 port kept
//	nat-postrouting  masquerade marked packets (hairpin); P to outside P
//	                 not leaving by WireGuard (egress); sources outside P
//	                 leaving by WireGuard (the node's own, or ingress)
//
// The node must route V (say to gtrc-gw) for its own connections to VIPs
// when it has no default route: output routes before nat translates.
//
// Per-object names are "net-", "svc-" or "be-<svc>-" and the first 12
// characters of the ID, so a change of one service touches only its
// chains and the vips map. Apply diffs by name: set elements are added
// and removed, a chain whose rules changed is flushed and refilled (one
// backend more or less: its service chain, the backend's chain, nothing
// else), new chains and sets are created and old ones deleted.
//
// Published ports (issue 12) fit the same model: a map of
// "inet_proto . inet_service : verdict" elements looked up in
// nat-prerouting and nat-output for local destinations, a chain per
// published port picking a backend with numgen as svc-<id> does, and
// backend chains that DNAT to the target port; new sets, chains and rule
// statements, no change to Apply.
//
// It imports cluster/api, netplane/netns and libraries only.
package nft

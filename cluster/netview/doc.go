// Package netview computes each node's network view (api.NetView) from
// the store's objects, on the managers: the whole desired config of a
// node's network plane (peers, networks and their members, services with
// their VIPs, ports and backends, the node's own tasks). It is a pure
// function of its Input: no I/O, no clock, and equal inputs give
// deep-equal views whatever order the objects come in.
//
// NewIndex does the cluster-wide work once per store state (resolving
// networks by name, members, backends, sorting); Index.View then picks one
// node's part of it cheaply, so that every node's session can share one
// Index. Views share memory with their Index: callers treat them as
// read-only.
//
// The rules, in the terms of cluster/api:
//   - a task holds an address when its Addr is set and its status is not
//     terminal; its networks are its service's (ServiceSpec.Networks, by
//     network name; a name with no Network object is skipped);
//   - peers are every other node that is not removed and has a subnet and
//     WireGuard info (public key and port), at the host of the address the
//     managers saw it at; down nodes stay peers (their tasks may still
//     run);
//   - the view's networks are those of the node's tasks that hold an
//     address and those of every service publishing a port (the ingress
//     mesh reaches them from every node); members are the addresses of
//     every task on them, cluster-wide;
//   - the view's services are those on the view's networks and those that
//     publish a port; backends are their tasks in the load-balancing set
//     (api.Task.InLoadBalancer).
//
// Imports: cluster/api only. The dispatcher reads the store and streams
// the views; netplane applies them.
package netview

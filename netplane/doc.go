// Package netplane is each node's network plane: the WireGuard mesh between
// nodes, the CNI bridge tasks attach to, nftables rules for network
// isolation, service VIPs and the ingress routing mesh, and per-node DNS
// for service discovery. It is reconfigured from whole desired configs
// (Reconfig is a no-op when nothing changed).
//
// netplane is a leaf: it imports cluster/api and its own libraries, and no
// other gitorc package.
package netplane

// Package harness builds multi-host clusters on one machine for end-to-end
// tests: each host is a network namespace with its own address on a shared
// bridge; processes run in a host with nsenter --net (not ip netns exec,
// whose private mount namespace hides netns mounts from runc); hosts can be
// cut off and healed, or split into partitions with nftables. Everything it
// creates — namespaces, links, nftables tables, processes — is removed when
// the test ends. It needs root and iproute2, nftables and util-linux.
//
// harness imports no gitorc package: it runs the gitorc binary as a user
// would.
package harness

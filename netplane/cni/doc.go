// Package cni attaches tasks' network namespaces to the node: CNI's ptp
// plugin with static IPAM, from Debian's containernetworking-plugins
// (/usr/lib/cni). Each task gets eth0 with its one address (Task.Addr,
// CIDR of the node's subnet), its subnet's first address as gateway, a
// default route via it, and loopback up; the host end of the veth pair,
// in the node's namespace (Config.NS, from which the plugins are
// executed), holds the gateway as /32 and a /32 route to the task. The
// node routes between its tasks and towards gtrc-wg; nothing is bridged
// and nothing is masqueraded here (ipMasq false: nftables does that).
//
// It uses libcni directly rather than containerd's go-cni wrapper because
// go-cni builds its libcni.CNIConfig with NewCNIConfig, whose cache is the
// host-wide /var/lib/cni, and offers no option to change it. Here the
// cache is Config.CacheDir (the node's data dir's cni/), so that several
// nodes on one machine (tests, demos) never share attachment state and a
// node that leaves removes all of its own and nothing of anyone else's.
// Cache layout: CacheDir/results/gitorc-<id>-eth0 (libcni's format), one
// per attachment; Attached lists them.
//
// Attach is idempotent (an attachment with the same address that passes
// CNI CHECK is kept; another one is replaced); Detach runs CNI DEL with
// the cached config, and first deletes the cached host end (matched by
// name and MAC) when it is still there, so that a task whose namespace
// file is already gone, but whose namespace something still holds, leaves
// no veth behind.
//
// Costs measured here (BenchmarkAttach_Root, 2 vCPUs): Attach ≈ 10 ms,
// Detach ≈ 20 ms, an idempotent Attach (CHECK) ≈ 8.5 ms. Every CNI
// command execs ptp, which execs static (≈ 2.6 ms per exec of these Go
// binaries); Detach is dominated by the kernel's deletion of the veth
// pair (≈ 12 ms, whichever side deletes it). Loopback is set up with one
// netlink call (≈ 0.1 ms) instead of the loopback plugin (≈ 4 ms).
//
// It imports netplane/netns only among gitorc packages.
package cni

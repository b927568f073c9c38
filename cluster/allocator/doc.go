// Package allocator hands out the overlay's addresses on the leader: each
// node's subnet of the cluster's task pool (when it joins; freed when it
// is removed), each task's address in its node's subnet (when the
// scheduler places it, in the same transaction, so that managers know it
// before the task starts), each vip-mode service's VIP, and the published
// port of each ingress-mode port that leaves it to the cluster (30000 to
// 32767, as Swarm). Everything lives in the store (Node.Subnet, Task.Addr,
// Service.Endpoint.VIP and .Ports, which only the allocator writes): what
// is used is read back from it, so nothing is ever handed out twice and a
// new leader continues where the old one stopped.
//
// The core (subnets.go, addrs.go, vips.go, ports.go) is pure: the
// store's objects in, the choice out. To avoid handing a just-freed
// address out again at once (connections to it may still be in other
// nodes' conntrack tables), addresses, VIPs and ports are taken after the
// most recently given one, in a circle. The Controller (controller.go) is
// the leader's loop that gives nodes their subnets and services their VIPs
// and ports; the scheduler gives task addresses with TaskAddrs.
//
// allocator is manager-side: it imports cluster/api and cluster/store;
// never cluster/agent, reconcile or compose.
package allocator

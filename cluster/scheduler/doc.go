// Package scheduler places tasks on nodes. Its decision core (Schedule)
// takes a snapshot of the nodes (with the tasks already on them) and a
// batch of pending tasks, and decides a node for each task, or explains why
// no node fits; it is pure: no store, no I/O, no clock, no goroutines. The
// Controller (controller.go) is the leader's scheduling loop: it reads the
// snapshot from the store, calls Schedule, and commits the decisions in one
// transaction, writing each unplaced task's explanation on its status.
//
// A node must pass every filter of the pipeline (filters.go), in order:
// ready and active, resources (reservations), constraints, platform,
// host-mode published ports, max_replicas_per_node, task addresses, and
// the node's policy (what it lets containers have beyond the defaults:
// binds, capabilities, sysctls, privileged). Each filter explains
// itself, and the explanation of an unplaced task aggregates over nodes:
// "no suitable node: 2 nodes lack 512MiB memory, 1 node is draining".
//
// Among the nodes that pass, ranking spreads a service's tasks first over
// the values of its spread preferences (a tree, as swarmkit does; nodes
// missing a label form their own group), then over nodes (fewest tasks of
// the service), then fewest tasks in total, then node ID. Decisions in a
// batch see the ones made before them.
//
// Tasks of one service with the same placement-relevant spec form a group
// that shares the work: the node-independent filters run once per group
// (and are cached across groups with the same constraints), and nodes are
// taken from a heap, so a group of k tasks over n nodes costs
// O(n + k log n) rather than O(k × n).
//
// The decision core imports cluster/api only; the controller also uses
// cluster/store. Never cluster/agent, reconcile or compose.
package scheduler

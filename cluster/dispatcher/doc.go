// Package dispatcher is the manager side of the one mutual-TLS gRPC
// stream every worker keeps to the leader (protocol in
// cluster/dispatcher/wire).
//
// What it owns:
//   - sessions (session.go): only the leader serves them; a follower
//     answers with wire.NotLeader carrying the leader's dispatcher address,
//     and a leader that loses leadership ends its sessions the same way.
//     Who the worker is comes from its verified certificate (node ID and
//     role), never from a message field;
//   - node registration and liveness (nodes.go): a Hello creates or
//     updates the Node object (description, address) and marks it ready;
//     heartbeats are kept in memory (no Raft write per beat), and a node
//     silent for MissedHeartbeats heartbeat periods (three by default;
//     checked four times a period) is marked down. A new leader
//     gives every ready node the tolerance plus ElectionGrace (10 s, and
//     5 ms for each ready node it inherits, at most a minute) from its
//     election, to find it. Time comes from the injected Clock;
//   - assignments (assign.go): the set of tasks whose NodeID is the node,
//     from assigned on, except those both terminal and desired terminal,
//     with the secret and config payloads they refer to. A session sends
//     the complete set first, then, to a worker that asked for them
//     (wire.Hello.Deltas), only what changed: tasks added or changed,
//     tasks removed, payloads changed. A change of a task's status alone
//     is not sent (the node reported it), as in Swarm. A reconnecting
//     worker gets a complete set again. Secret plaintext leaves the store
//     only on this stream;
//   - routing of store changes (fanout.go): the dispatcher holds one
//     store watcher for all sessions, and marks each change for the
//     sessions it may concern (a task's node; the views that hold the
//     task's service or network); a marked session reads its node's
//     state once for a burst of changes. Sessions never watch the store
//     themselves: that cost every session every change of the cluster;
//   - network views (netview.go): each session also sends the node's
//     api.NetView (cluster/netview) whenever it differs (deep compare)
//     from the last one sent. A session reads its view and its
//     assignment set from one store state, and sends the view first: a
//     task is known to the node's network plane before the node starts
//     it. Bursts of changes are coalesced into one read, as for
//     assignments; a change that cannot alter the node's view (another
//     node's status write, a service on a network the node is not on, a
//     task status write that changes no address and no backend) costs
//     no read. The cluster-wide part of the views, a netview.Index,
//     is built once per store state (keyed by the state's Raft index) by
//     the first session that needs it and shared by all the others;
//   - task status (status.go): updates from all sessions are queued,
//     coalesced per task and written in batched store transactions. A
//     node may only update its own tasks, and a status only moves
//     forward: an older state, or the same state with a timestamp that
//     is not newer, is ignored.
//
// The gRPC server, its listener and its TLS credentials belong to the
// caller (cluster/node), which registers the Dispatcher with Register.
//
// Metrics (metrics.go): the task start latency, from a task's creation
// to the status write that makes it running, as a Prometheus histogram.
//
// Imports: cluster/api, cluster/store (through the narrow Store and
// Leadership interfaces declared here), cluster/ca, cluster/netview and
// cluster/dispatcher/wire. Being manager-side, it never imports
// cluster/agent or its subpackages, nor reconcile or compose.
package dispatcher

// Package session is the worker side of the dispatcher protocol: the
// client that keeps a node's one mutual-TLS gRPC stream to the leader.
//
// A Client dials the managers it knows (in turn), follows a follower's
// redirect to the leader, opens a session with a Hello that describes the
// node, then heartbeats at the period the leader asks for, forwards the
// agent's task statuses in batches, at most one per Config.StatusInterval
// (it is the agent's Reporter), and hands the assignments it receives to
// the agent, with the secret and config payloads every task refers to: it
// asks for incremental sets in its Hello, holds what the session's sets
// add up to (Held: the complete first set and every delta after it, each
// checked to follow the one before, or the session starts again), and
// gives the agent the change (Updater, an optional ability of the
// Assigner; *agent.Agent has it) or, without it, the whole set. The network views it
// receives go to Config.Network (a NetConfigurer, netplane's Plane) in
// one goroutine owned by Run, so that a slow Reconfig never holds up the
// stream: latest wins (views that arrive while one is being applied are
// coalesced into the newest), a failed view is retried after a backoff
// or as soon as a newer one arrives, and a repeated error is logged once.
// The leader sends a view before an assignment set made from the same
// store state; applied in the background, the view may still land after
// the agent started on the assignment. When the stream breaks it
// reconnects with exponential backoff. On every new session it sends the
// latest status of each task again, since the old leader may have lost
// what it had not yet written; the leader ignores what it already has.
//
// Who the node is comes from its certificate (TLS config), never from a
// message. Time comes from an injected agent.Clock.
//
// Imports: cluster/api, cluster/agent (Assignment, Clock, Reporter) and
// cluster/dispatcher/wire, the protocol package shared with the manager.
// Being agent-side, it never imports cluster/store, cluster/dispatcher
// itself or any other manager-side package.
package session

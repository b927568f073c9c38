// Package logs serves `gitorc logs`: the lines of every task of a service
// (or of one task), read from the nodes that hold them and merged by time.
//
// The leader holds every worker's session (cluster/dispatcher), so the
// leader serves a logs query: for each task it asks the task's node over
// the node's session (Source, the dispatcher's TaskLogs) and merges the
// streams (merge.go): a line is written once every stream still reading
// its backlog has a line to compare it with, so the backlogs interleave in
// time order; followed streams that caught up do not hold the others
// back. With Follow it watches the store for new tasks of the service
// and adds their streams as they are placed. A task whose node is down,
// or holds no session, is one error line; the other tasks still print.
//
// A follower does not hold sessions: it forwards the whole query to the
// leader over the managers' gRPC port (rpc.go, managers only) and relays
// the leader's merged lines. One hop, one merge, and the store watch runs
// where the sessions are.
//
// Memory is bounded: each stream holds at most one batch here, and the
// dispatcher's credit window beneath it; a slow reader slows its own
// streams only.
//
// Imports: cluster/api, cluster/store, grpc. Manager-side: never
// cluster/agent.
package logs

// Package agent is the worker side of a node: it holds the tasks the
// dispatcher assigned to this node, drives each one through its state
// machine (assigned → preparing → starting → running → complete | failed |
// shutdown | rejected) with an Executor, and reports every status change.
//
// Deciding is pure and doing is separate: Step (state.go) looks at a task's
// last status, its desired state and what the executor observed, and
// returns one transition; the Agent carries out that transition's action
// and records the outcome. States only move forward, each call makes one
// step, and every step is idempotent, so an agent that restarts re-adopts
// the containers it finds instead of creating them again, and reaps the
// containers of tasks it no longer owns.
//
// The Executor interface is declared here, by its consumer; the containerd
// implementation lives in cluster/agent/containerd.
//
// The agent never imports manager-side packages (cluster/store,
// cluster/orchestrator, cluster/scheduler, cluster/dispatcher,
// cluster/allocator), nor reconcile or compose: tasks arrive through
// Assign (a whole set) and Update (a change to it), and statuses leave
// through a Reporter. It imports cluster/api only.
package agent

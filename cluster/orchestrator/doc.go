// Package orchestrator turns services into tasks: slots of replicated
// services, one task per eligible node for global ones, completions for
// jobs; it replaces tasks that end according to the restart policy (delay,
// max_attempts within window, history kept in the store), moves tasks off
// down and drained nodes, scales up and down, and reaps task history.
//
// Its rolling updater (update.go) replaces out-of-date tasks batch by
// batch, health-gated, and pauses or rolls back a failing rollout; the
// rollout's progress lives in api.UpdateStatus. A placement-only change
// keeps the tasks whose node still fits (placement.go). A task leaves its
// service's load-balancing set (api.Task.InLoadBalancer) DrainDelay
// before it is stopped (traffic.go). A service's rollout, and its first
// tasks, wait for the services it comes after (depends_on, resolved into
// ServiceSpec.RolloutAfter by reconcile) to finish theirs (gate.go).
//
// Deciding is pure (Decide*: service, tasks, nodes and the time in, the
// changes to commit out); a leader-side controller reads the store, calls
// them and commits the result in batches.
//
// orchestrator imports cluster/api (and other manager-side cluster
// packages); never cluster/agent, reconcile or compose.
package orchestrator

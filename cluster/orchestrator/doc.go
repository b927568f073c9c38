// Package orchestrator turns services into tasks: slots of replicated
// services, one task per eligible node for global ones, completions for
// jobs; it replaces tasks that end according to the restart policy (delay,
// max_attempts within window, history kept in the store), moves tasks off
// down and drained nodes, scales up and down, and reaps task history.
//
// A task that ended on its own (failed, or exited where the restart
// policy restarts it) becomes history when its replacement is created, in
// the same commit: desired state shutdown and api.Task.Replaced, as
// Swarm's restart supervisor does; until then (the restart delay) it stays
// desired running, its slot still wanted.
//
// Its rolling updater (update.go) replaces out-of-date tasks batch by
// batch, health-gated, and pauses or rolls back a failing rollout; the
// rollout's progress lives in api.UpdateStatus. An update (or rollback)
// completes only when every slot (or node) runs a ready task of its
// target spec; a slot whose last task, of another spec, failed is
// refilled by the rollout at once, not after the restart delay. A placement-only change
// keeps the tasks whose node still fits (placement.go). A service's
// rollout, and its first tasks, wait for the services it comes after
// (depends_on, resolved into ServiceSpec.RolloutAfter by reconcile) to
// finish theirs (gate.go).
//
// Whatever stops a task — an update, a scale-down, its node drained, down
// or removed, its service removed, its global service's node no longer
// eligible, a duplicate — a task in its service's load-balancing set
// (api.Task.InLoadBalancer) leaves it first (Task.DrainingSince, committed
// on its own) and is stopped only Config.DrainDelay later
// (DefaultDrainDelay); a task not in the set is stopped at once (retire,
// traffic.go).
//
// Deciding is pure (Decide*: service, tasks, nodes, the time and the drain
// delay in, the changes to commit out); a leader-side controller reads the
// store, calls them and commits the result in batches.
//
// StateCollector (metrics.go) exports services by rollout state and
// tasks by service and state for Prometheus, read from the store at each
// scrape.
//
// orchestrator imports cluster/api (and other manager-side cluster
// packages); never cluster/agent, reconcile or compose.
package orchestrator

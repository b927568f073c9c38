// Package orchestrator turns services into tasks: slots of replicated
// services, one task per eligible node for global ones, completions for
// jobs; it replaces tasks that end according to the restart policy (delay,
// max_attempts within window, history kept in the store), moves tasks off
// down and drained nodes, scales up and down, and reaps task history.
//
// Deciding is pure (Decide*: service, tasks, nodes and the time in, the
// changes to commit out); a leader-side controller reads the store, calls
// them and commits the result in batches.
//
// orchestrator imports cluster/api (and other manager-side cluster
// packages); never cluster/agent, reconcile or compose.
package orchestrator

// Package reconcile makes the cluster follow a Git repository.
//
// One sync (sync.go, Controller.Sync): fetch the source's commit, lay its
// tree out in a temporary directory, find its stacks (layout.go), load them
// with package compose, open their sealed secrets, plan the difference with
// the cluster's state (plan.go, a pure function), and commit the whole
// revision with its sync state and history record in one transaction
// (cluster.go, the Cluster interface) — or nothing, when a file does not
// load or the plan has problems. Then track the rollout (track.go) until it
// is Synced or Degraded, and on Degraded re-plan from the last good
// revision, apply it, and mark the commit failed so that it is not retried
// until the source moves.
//
// reconcile imports compose and cluster/api, and reaches the store only
// through the Cluster interface it declares; reconcile/storecluster is
// the one package that implements it over cluster/store. It never imports
// cluster/agent or netplane.
package reconcile

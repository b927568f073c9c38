// Package reconcile makes the cluster follow a Git repository: it finds
// the stacks of a revision (layout.go), loads them with package compose,
// plans the difference with the cluster's state, applies it in one store
// transaction, tracks the rollouts and reverts to the last good revision.
//
// It imports compose and cluster/api, and reaches the store only through
// the narrow client interface it declares. It never imports cluster/agent,
// netplane or the store's implementation.
package reconcile

// Package storecluster implements reconcile.Cluster over cluster/store:
// the sync controller's reads (specs, services and their tasks, the sync
// state) and its one-transaction commits of a revision with its sync
// state and history. It also has reconcile.SyncControl (control.go):
// read-modify-write transactions of the sync state's control fields,
// retried on conflicts (from any manager: followers forward), and a watch
// of the sync state for the leader's trigger loop.
//
// It is the one package under reconcile that may import cluster/store
// (deps_test.go says so); reconcile itself reaches the store only through
// the reconcile.Cluster interface it declares.
package storecluster

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
// The rollout being tracked is on the sync state (InFlight) with its
// history record, so that a new leader finishes it, or its revert, in
// place. A revision the cluster already runs is re-planned at each sync:
// drift is restored (self-heal). A rollback pin (SyncState.Pin) holds the
// cluster on an older revision until a manual sync or a new commit.
// Controller.Diff (diff.go) plans a commit or a local tree by the same
// path without applying it: gitorc diff. A sync's writes of the state are
// merged with what operators wrote meanwhile (state.go).
//
// When to sync (trigger.go, Controller.Run): at once, then on a jittered
// poll, on a change of a local repository's refs (watch.go, fsnotify), and
// on sync requests that any manager writes into the sync state (gitorc
// sync, webhook deliveries) and the leader takes, serves with one sync per
// burst, and answers with the outcome. Automatic syncs wait while the
// state is suspended or outside its cron sync windows (window.go, pure);
// manual ones always run. The control fields of the state (source,
// suspension, requests, deliveries) change through SyncControl, an
// optional ability of the Cluster, never with a sync's commit.
//
// reconcile imports compose and cluster/api, and reaches the store only
// through the Cluster interface it declares; reconcile/storecluster is
// the one package that implements it over cluster/store. It never imports
// cluster/agent or netplane.
package reconcile

// Package node is one gitorc node, the one place that wires a manager's
// and a worker's parts together: New(Config) lays out a new node
// (Bootstrap: a new cluster's first manager; Join: a worker or manager of
// an existing one) or opens the one in its data dir, and Run serves in
// whatever role the cluster gives it until its context ends or it leaves.
// cmd/gitorc only turns flags into a Config and prints what the control
// API returns.
//
// What a manager starts (daemon.go startManager): the Raft store over
// mutual TLS (raftlayer.go; its data key sealed, autolock.go), the
// cluster's keys (clusterkeys.go), the dispatcher and the join service on
// its API port, which it splits between nodes' gRPC and admins' HTTP by
// ALPN (apiport.go, adminapi.go), the control API (controlmount.go: one
// controlapi/server.Config with what the node serves through it — syncAPI,
// differ, stacksAPI, nodeAPI), and, while it leads, the orchestrator, the
// scheduler, the allocator (netplan.go), membership (managers.go), CA
// rotation (carotate.go), the notifier (notify.go) and the GitOps loop
// (gitops.go, hooks.go, source.go, sync.go, diff.go, rollback.go,
// stackdeploy.go). What a worker starts (startWorker): the network plane,
// the containerd executor, the agent and its session to the managers.
// Every node renews its certificate and follows its role (certs.go),
// serves its control socket (leave.go on every node), metrics (metrics.go)
// and, on a manager, the status page (ui.go).
//
// A node keeps everything in its data dir (nodestate.go: node.json, pki/,
// raft/, network/, executor/, gitops/). The tests run nodes in-process
// (harness_test.go); other packages' tests use nodetest.
package node

// Command bench runs gitorc's end-to-end benchmarks and prints a table.
//
// -suite push (the default) measures push-to-running latency with webhooks
// on a cluster of network-namespace hosts (e2e/gitopsenv): each push
// replaces the stack's service by a new one of -replicas replicas of a
// cached image, is announced by a signed GitHub webhook, and is timed
// from just before git commit+push until every replica of the new
// service runs (and, separately, until the revision is Synced). It prints
// a table. Run as root:
//
//	go run ./e2e/bench -hosts 3 -replicas 10 -pushes 20
//
// BENCH_KEEP_LOGS=DIR copies the nodes' logs there before teardown (the
// manager's log times each delivery, fetch and apply).
//
// -suite swarm runs the side-by-side scenarios (deploys, scale, rolling
// updates, rollback, a killed task, stack rm, memory) on a single-node
// gitorc cluster and, where Debian's docker.io is installed, on an
// isolated single-node Docker Swarm, in alternating rounds, and prints
// both and their ratio (BENCHMARKS.md, Side by side with Docker Swarm):
//
//	go run ./e2e/bench -suite swarm -rounds 3 -systems gitorc,swarm
package main

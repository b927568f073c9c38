// Package nodetest runs gitorc nodes in a test's process, through
// cluster/node's public API only: each node on loopback ports with its
// own data dir, stopped when the test ends. The CLI's tests and the e2e
// tools use it; the node's own tests use its internal harness
// (cluster/node/harness_test.go), which can also look inside a node.
package nodetest

// Package gittest is a Git working repository for tests of the GitOps
// loop: a repository on a temporary directory, files written and committed
// with the git CLI. It imports no gitorc package; tests of reconcile, its
// subpackages, cluster/node and cmd/gitorc share it.
package gittest

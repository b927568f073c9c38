// Package gitopsenv starts a gitorc cluster that follows a Git
// repository, for end-to-end tests and e2e/bench: hosts in network
// namespaces (e2e/harness), a registry holding gitorc/busybox:1 and a git
// http-backend on the bridge's gateway (e2e/gitserver), the first host
// bootstrapped with --repo and --webhook-listen, the others joined as
// workers. It drives the real gitorc binary as a user would.
//
// It imports no gitorc package but e2e's helpers, imagetest and the
// control API's and domain model's types; it needs root.
package gitopsenv

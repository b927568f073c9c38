// Package client is the typed client of the control API
// (cluster/controlapi): one method per endpoint, with controlapi's
// request and response types, over a node's control socket (Unix) or a
// manager's API port with an admin certificate (Remote).
//
// A remote call that a follower could not serve (503) and whose answer
// names the leader (controlapi.LeaderHeader) is sent again to the leader.
// An error answer is an *Error with the daemon's message, its status and
// its whole body. Calls are bounded by DefaultTimeout (WithTimeout);
// streams (Events, Logs) by their context only.
//
// Answers that the manager's reconcile packages make (a diff, a stack's
// plan) come as controlapi.Plan, JSON for the caller to decode: the client
// imports cluster/api and cluster/controlapi only (deps_test.go), so that
// the CLI, e2e tools and tests can use it without the manager's insides.
package client

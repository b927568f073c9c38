// Package controlapitest serves the control API (cluster/controlapi/server) over a real one-manager
// store on a unix socket, seeded with a small cluster, for the tests of
// controlapi and of the CLI. It is imported only by tests.
package controlapitest

// Command gitorc is the single gitorc binary: cobra commands, their flags
// and what they print. Nothing here runs on a node: bootstrap, join and
// daemon turn their flags into a cluster/node Config (bootstrap.go,
// join.go) and run that node; every other command is a client of the
// control API.
//
// Every command that prints takes -o/--output json (addOutputFlag,
// outputFormat, writeJSON) and prints one JSON document, described in its
// help; human output is the default. jsonoutput_test.go walks the command
// tree: a command without --output json, or that no test runs with it,
// fails it. Each top-level subcommand lives in its own file; main.go lists
// them (commands).
//
// Commands reach the control API through newAPIClient, the typed client of
// cluster/controlapi/client (one method per endpoint, the types of
// cluster/controlapi): the local socket (root), or a manager's API port
// over mutual TLS with an admin certificate (target.go: --host,
// GITORC_HOST, contexts.go). deps_test.go keeps the rest of the cluster
// out of this package.
package main

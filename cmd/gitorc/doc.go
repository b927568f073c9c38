// Command gitorc is the single gitorc binary.
//
// It owns flag parsing, environment reading and the wiring of concrete
// implementations (store, executor, network plane, Git source); libraries
// never read flags or the environment. Each top-level subcommand lives in
// its own file; main.go lists them (commands).
//
// Every command that prints takes -o/--output json (addOutputFlag,
// outputFormat, writeJSON) and prints one JSON document, described in its
// help; human output is the default. jsonoutput_test.go walks the command
// tree: a command without --output json, or that no test runs with it,
// fails it.
//
// Commands reach the control API through newAPIClient, the typed client of
// cluster/controlapi/client (one method per endpoint): the local socket
// (root), or a manager's API port over mutual TLS with an admin
// certificate (target.go: --host, GITORC_HOST, contexts.go). Managers
// split their API port between the nodes' gRPC and the admins' HTTP/1.1
// by ALPN (apiport.go) and admit admin certificates only (adminapi.go,
// admincert.go). The endpoints are cluster/controlapi's: the daemon gives
// it one Config (controlmount.go) with what the node serves through it —
// syncAPI (the sync endpoints, over storecluster), differ (diff and
// rollback), stacksAPI (stacks by hand) and nodeAPI (tokens, admin
// certificates, the unlock key, leave, /v1/info) — and registers it once.
package main
